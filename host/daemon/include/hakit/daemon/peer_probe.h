// PeerProbe: tells "the peer's node is down" from "the peer's node is up and
// its hakitd is not". hakitd listens on the cluster port (TCP) of each of its
// heartbeat addresses; when the peer's heartbeats are late, the probe
// connects to the peer's. A refused connection (TCP reset) comes from a live
// kernel with nothing listening: the daemon died, the application may not
// have. A timeout says nothing (power cut, cable, or a stalled host).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "hakit/common/log.h"
#include "hakit/sdk/status.h"

namespace hakit::daemon {

class PeerProbe {
 public:
  PeerProbe(boost::asio::io_context& io, std::vector<std::string> local_addresses,
            std::vector<std::string> peer_addresses, int port,
            std::chrono::milliseconds connect_timeout, std::shared_ptr<Logger> log);
  ~PeerProbe();

  // Listens on every local address (so that the peer's probes of this node
  // succeed while this daemon lives).
  sdk::Status Start();
  void Stop();

  // Connects to every peer address once (asynchronously).
  void Probe();

  // Whether a probe was refused within the last `window`.
  bool RefusedWithin(std::chrono::milliseconds window) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hakit::daemon
