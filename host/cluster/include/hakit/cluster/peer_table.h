// What this node knows of its peer, per network and per module, built from
// authenticated, fresh heartbeats. Pure bookkeeping: no I/O and no clock of
// its own (every call is given `now`), so liveness rules are tested with a
// fake clock; HeartbeatService feeds it and arms its watchdog timer at
// NextDeadline().
//
// Liveness is a deadline per network and per module, pushed forward by each
// frame (heard + timeout). A network is up while its deadline is ahead; a
// module's peer is visible while any network brought one of its frames
// within the timeout, so losing one of two networks never loses the peer.
//
// Not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hakit/cluster/heartbeat_codec.h"
#include "hakit/cluster/mirror_fsm.h"

namespace hakit::cluster {

// The peer's side of one module, as last announced.
struct PeerInfo {
  // visible, config_matches, state, busy, handing_over, data, was_last_prim
  // and name, ready to go into Facts::peer.
  PeerView view;
  std::uint64_t boot_id = 0;
  std::uint64_t sequence = 0;  // of the frame these fields come from
  std::uint64_t generation = 0;
  std::uint64_t peer_generation_seen = 0;  // see Heartbeat
  bool peer_generation_known = false;
  bool peer_in_sync = false;  // see Heartbeat
  ConfigHash config_hash{};
  std::vector<ResourceState> resources;

  // Equal in what the peer announced (ignores sequence; a new boot id counts
  // as a change because the peer restarted).
  bool SameAnnouncement(const PeerInfo& other) const;
};

// What one call changed, in the order the daemon should hear of it.
struct PeerEvents {
  std::vector<std::pair<std::size_t, bool>> networks;  // (network index, up)
  std::vector<std::string> lost;                       // modules whose peer went invisible
  std::vector<std::pair<std::string, PeerInfo>> changed;
  // The frame just given announces a configuration hash other than ours.
  bool config_mismatch = false;

  bool empty() const { return networks.empty() && lost.empty() && changed.empty(); }
};

class PeerTable {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // `networks`: how many heartbeat networks (indices 0..n-1). `timeout`: how
  // long a network or module may stay silent before it is down / lost.
  PeerTable(std::size_t networks, std::chrono::milliseconds timeout);

  // Registers `module` (or updates our configuration hash for it). Frames
  // for modules not registered keep networks alive but are not recorded. A
  // hash change re-evaluates config_matches and reports a change if the peer
  // is visible.
  void SetModule(const std::string& module, const ConfigHash& local_hash, PeerEvents* events);
  // Forgets `module`; no event.
  void RemoveModule(const std::string& module);

  // An authenticated frame that passed the replay guard, received on
  // `network` at `now`. Announced fields are taken only from a frame newer
  // than the one they came from (same run and higher sequence, or a new
  // run), so a late copy on a slow network never rolls the view back.
  void OnHeartbeat(std::size_t network, const Heartbeat& hb, TimePoint now, PeerEvents* events);

  // Marks down every network, and loses every module, whose deadline is at
  // or before `now`.
  void Expire(TimePoint now, PeerEvents* events);

  // The earliest deadline still ahead of anything up/visible; nullopt when
  // nothing is (no watchdog needed).
  std::optional<TimePoint> NextDeadline() const;

  // For snapshots.
  struct NetworkRecord {
    bool up = false;
    std::optional<TimePoint> heard;  // last accepted frame on this network
    std::uint64_t frames = 0;        // accepted frames
  };
  struct ModuleRecord {
    ConfigHash local_hash{};
    bool have_info = false;                       // at least one frame since registration
    PeerInfo info;                                // info.view.visible is the live visibility
    std::vector<std::optional<TimePoint>> heard;  // per network
    std::optional<TimePoint> last_heard;          // any network
  };
  const std::vector<NetworkRecord>& networks() const { return networks_; }
  const std::map<std::string, ModuleRecord>& modules() const { return modules_; }
  const ModuleRecord* module(const std::string& name) const;
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::chrono::milliseconds timeout_;
  std::vector<NetworkRecord> networks_;
  std::map<std::string, ModuleRecord> modules_;
};

}  // namespace hakit::cluster
