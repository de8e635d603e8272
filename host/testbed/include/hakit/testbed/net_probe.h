// Reachability probes and a tiny TCP server, run from inside a network
// namespace without any external program (the test machines have no ping, nc
// or socat). Each call works on a fresh thread that setns()'s into the
// namespace: setns(CLONE_NEWNET) changes the calling thread only, and a socket
// stays in the namespace it was created in whichever thread uses it.
//
// `netns` is a name listed by `ip netns list` and must not be empty, so that a
// missing host (an empty name from Testbed) never probes from the caller's own
// namespace. Addresses are IPv4 literals. All functions are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "hakit/sdk/status.h"

namespace hakit::testbed {

// ICMP echo from `netns` to `address`, one request every 200 ms, until a reply
// or `timeout`. Ok on a reply; a Timeout error otherwise (naming the last send
// error, if any).
sdk::Status Ping(const std::string& netns, const std::string& address,
                 std::chrono::milliseconds timeout);

// Connects from `netns`, sends `payload`, half-closes, and returns everything
// received until the peer closes. Errors: refused, unreachable, Timeout.
sdk::Result<std::string> TcpRequest(const std::string& netns, const std::string& address,
                                    uint16_t port, const std::string& payload,
                                    std::chrono::milliseconds timeout);

// True when a TCP connection from `netns` is accepted within `timeout`.
bool TryConnect(const std::string& netns, const std::string& address, uint16_t port,
                std::chrono::milliseconds timeout);

// Listens in a namespace and answers each connection with handler(request),
// where the request is what the client sent until it half-closed (or 500 ms
// of silence). Connections are served one at a time: this is a probe target
// for tests and the demo, not a server.
class TcpServer {
 public:
  using Handler = std::function<std::string(const std::string& request)>;

  // `port` 0 picks a free one (see port()). The handler runs on the server's
  // thread.
  static sdk::Result<std::unique_ptr<TcpServer>> Start(const std::string& netns,
                                                       const std::string& address, uint16_t port,
                                                       Handler handler);
  // Stops listening and joins the thread.
  ~TcpServer();

  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  TcpServer(int listen_fd, int stop_fd, uint16_t port, Handler handler);
  void Serve();

  int listen_fd_;
  int stop_fd_;  // an eventfd: readable once the destructor asks to stop
  uint16_t port_;
  Handler handler_;
  std::thread thread_;
};

}  // namespace hakit::testbed
