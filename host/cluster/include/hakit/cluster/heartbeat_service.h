// HeartbeatService: authenticated UDP heartbeats between the two nodes of a
// mirror cluster, on every configured network.
//
// Every `pulse` the service sends, on each network, one frame per registered
// module (heartbeat_codec.h) from local_address:port to peer_address:port,
// and a frame whenever the daemon changes what a module announces, so that
// state changes reach the peer in one network trip rather than one pulse.
// With no module registered it sends a node-level frame, so that networks
// can still be watched.
//
// Received frames are decoded, authenticated, checked against replay and
// against the expected sender, then fed to a PeerTable. Liveness is a
// deadline per network and module pushed forward by each frame, watched by
// one steady_timer armed at the earliest deadline (no polling): the peer of
// a module is lost only when every network has been silent for `timeout`.
//
// Threading: the service runs on the io_context given at construction and
// is not thread-safe. Call every method, and destroy it, on the thread that
// runs that io_context (or before it runs). Listener methods are called
// from the service's handlers on that thread; they may call any method of
// the service, including Stop(), but must not destroy it. An exception
// thrown by a listener is caught and logged: none escapes a handler.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hakit/cluster/heartbeat_codec.h"
#include "hakit/cluster/mirror_fsm.h"
#include "hakit/cluster/peer_table.h"
#include "hakit/sdk/status.h"

namespace hakit {
class Logger;
}

namespace hakit::cluster {

// One heartbeat network (SafeKit's <heartbeat name="..."> with its two
// addresses). Both nodes use the same port on a given network.
struct HeartbeatNetwork {
  std::string lan;            // name, e.g. "default"; unique, non-empty
  std::string local_address;  // IPv4 or IPv6 literal this node binds to
  std::string peer_address;   // the peer's address on this network (same family)
  std::uint16_t port = 0;     // UDP port, non-zero
};

struct HeartbeatConfig {
  std::string local_name;                  // this node's name, sent in every frame
  std::string peer_name;                   // frames from any other sender are refused
  std::vector<HeartbeatNetwork> networks;  // at least one
  // Time between two frames of a module on a network. Default 700 ms.
  std::chrono::milliseconds pulse{700};
  // Silence after which a network is down and, when every network is, the
  // peer lost. Default 30000 ms; must exceed pulse.
  std::chrono::milliseconds timeout{30000};
  // The cluster key bytes (LoadClusterKey), at least 16.
  std::vector<std::uint8_t> key;
  // OnRejected (and the log line) fires at most once per reason per this
  // interval, so a misconfigured or hostile sender cannot flood the log.
  std::chrono::milliseconds reject_report_interval{10000};

  // InvalidArgument naming the first bad field, else ok.
  sdk::Status Validate() const;
};

// What this node announces for one module.
struct LocalInfo {
  State state = State::kStop;
  bool busy = false;
  bool handing_over = false;
  bool was_last_prim = false;
  DataStatus data = DataStatus::kUnknown;
  ConfigHash config_hash{};  // SHA-256 of the module configuration (Sha256())
  std::uint64_t generation = 0;
  std::uint64_t peer_generation_seen = 0;  // see Heartbeat
  bool peer_generation_known = false;
  bool peer_in_sync = false;  // see Heartbeat
  std::vector<ResourceState> resources;

  bool operator==(const LocalInfo&) const = default;
};

// Callbacks to the daemon. Default implementations do nothing.
class HeartbeatListener {
 public:
  virtual ~HeartbeatListener() = default;
  // The peer of `module` became visible, or announced another state, flags,
  // data status, generation, configuration hash or resources, or restarted.
  // info.view.config_matches is false when the configuration hashes differ:
  // the daemon must not pair with such a peer.
  virtual void OnPeerChanged(const std::string& module, const PeerInfo& info) {}
  // Every network has been silent about `module` for `timeout`.
  virtual void OnPeerLost(const std::string& module) {}
  // Network `lan` went silent for `timeout` (up=false) or was heard again.
  virtual void OnNetworkStatus(const std::string& lan, bool up) {}
  // A frame was refused: wrong key, failed authentication, other protocol
  // version, unexpected sender, replay, or a configuration mismatch (the
  // latter also shows in PeerInfo). `from` is "address:port". Rate-limited.
  virtual void OnRejected(const std::string& reason, const std::string& from) {}
};

// For `hakit state`.
struct HeartbeatSnapshot {
  struct Network {
    std::string lan;
    std::string local_address;
    std::string peer_address;
    std::uint16_t port = 0;
    bool up = false;
    std::int64_t last_heard_age_ms = -1;  // -1: never heard
    std::uint64_t frames_sent = 0;
    std::uint64_t frames_received = 0;  // accepted
    std::uint64_t frames_rejected = 0;
    std::string send_error;  // last send error, "" when the last send worked
    bool muted = false;      // test hook active
  };
  struct Module {
    std::string module;
    LocalInfo local;
    bool peer_visible = false;
    bool peer_known = false;  // at least one frame since registration
    State peer_state = State::kStop;
    std::uint64_t peer_sequence = 0;
    std::uint64_t peer_generation = 0;
    bool config_matches = true;
    std::int64_t last_heard_age_ms = -1;
    std::vector<std::int64_t> network_age_ms;  // per network, -1: never
    std::uint64_t rejects = 0;  // refused frames naming this module (replay, mismatch)
  };
  std::string local_name;
  std::string peer_name;
  std::uint64_t boot_id = 0;
  std::uint64_t sequence = 0;  // last sequence sent
  std::chrono::milliseconds pulse{0};
  std::chrono::milliseconds timeout{0};
  std::vector<Network> networks;
  std::vector<Module> modules;
  std::map<std::string, std::uint64_t> rejects_by_reason;  // "bad mac" -> 3, ...
};

class HeartbeatService {
 public:
  // `listener` and `logger` (both may be null) must outlive the service.
  HeartbeatService(boost::asio::io_context& io, HeartbeatConfig config, HeartbeatListener* listener,
                   Logger* logger = nullptr);
  ~HeartbeatService();
  HeartbeatService(const HeartbeatService&) = delete;
  HeartbeatService& operator=(const HeartbeatService&) = delete;

  // Validates the configuration, binds one UDP socket per network and
  // starts sending and receiving. On error nothing stays bound and the
  // Status names the network and address. Call once.
  sdk::Status Start();

  // Closes the sockets and cancels the timers; no listener call after it
  // returns. The peer will see this node lost after its timeout. Idempotent.
  void Stop();

  // Sets what is announced for `module` (registering it). When it differs
  // from the previous announcement the frame goes out at once on every
  // network. InvalidArgument if the frame cannot be encoded (module name
  // over 255 bytes, too many resources).
  sdk::Status SetLocal(const std::string& module, const LocalInfo& info);
  // Stops announcing `module` and forgets its peer; the peer will lose it.
  void RemoveModule(const std::string& module);

  // The latest view of `module`'s peer; nullptr if not registered or no
  // frame yet. Valid until the next call into the service.
  const PeerInfo* Peer(const std::string& module) const;

  HeartbeatSnapshot Snapshot() const;

  // Test hook: a muted network neither sends nor accepts frames, as if its
  // cable were cut at this node. Unknown lan: no effect.
  void MuteNetworkForTest(const std::string& lan, bool muted);

  // This process's boot id (random, non-zero), as sent in every frame.
  std::uint64_t boot_id() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hakit::cluster
