// ModuleReplication: a module's <rfs><replicated dir> directories as the
// daemon runs them (first slice of "synchronous byte-level replication").
//
//  - Primary (before start_prim): an Interceptor kPrimary over every dir, its
//    changes going to one ReplicationSender connected to the peer's receiver
//    (the peer's address on the replication lan, cluster port + 1). A peer
//    that cannot be reached leaves the sender unconnected: the primary runs
//    alone (writes are acknowledged locally), the start is never blocked for
//    longer than a bounded connection attempt.
//  - Secondary (before start_second): an Interceptor kReadOnly over every
//    dir and a ReplicationReceiver applying the primary's changes into the
//    real directories underneath (dir index = position in <rfs>).
//  - Leave (after stop_prim / stop_second): stops replicating, unmounts.
//
//  - Full synchronisation (replication/sync.h): when the pair forms and the
//    secondary may lack something (another data generation, or changes made
//    while not replicating), a background thread compares both trees by
//    zone checksums and sends what differs while the application runs; the
//    secondary is declared complete (SecondHoldsEverything) only after it.
//
//  - Crash safety (replication/dirty_map.h, hot_zones.h): each dir's record
//    of what the secondary missed and its hot-zone log live on disk beside
//    the clean marker (record-<i>.log, hot-<i>.log), so that a restart or a
//    crash of this node, primary or secondary, still ends in a
//    synchronisation of what changed rather than a comparison of everything.
//    While primary, a thread cools the hot zones every second (the changes
//    before are acknowledged, the file system flushed).
//
// Threading: BecomePrimary/BecomeSecond/Leave run on the controller's worker
// thread; PeerIsSecond, SetGeneration and Status on the daemon's io thread.
// Every method is thread-safe and none blocks the io thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "hakit/daemon/module_controller.h"
#include "hakit/replication/manifest.h"
#include "hakit/replication/path_filter.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {
class Interceptor;
class ReplicationSender;
class ReplicationReceiver;
class OperationSink;
class SyncGate;
class DirtyMap;
class HotZones;
class ManifestCollector;
struct SyncProgress;
}  // namespace hakit::replication

namespace hakit::daemon {

struct ReplicationSettings {
  std::string module;
  std::string node;
  std::array<std::uint8_t, 32> config_hash{};
  std::vector<std::uint8_t> key;             // the cluster key: authenticates the channel
  std::vector<std::string> dirs;             // <replicated dir>, in <rfs> order
  std::vector<replication::PathFilter> filters;  // <notreplicated>, one per dir
  // Says what this copy is when it becomes SECOND (consumed then): "clean"
  // (written after a flush when it stopped being SECOND cleanly: it holds
  // everything it acknowledged) or "primary" (it was primary since: it holds
  // its data but where its hot-zone log says). Absent (a crash of a
  // secondary, `hakit second --fullsync`): the primary compares trees. Its
  // directory also holds the record and hot-zone logs; empty: neither
  // marker nor logs (nothing survives the daemon).
  std::string clean_marker;
  bool xattrs = false;                       // acl="on"
  int streams = 6;                           // nbrei: dirs synchronised at once
  bool sync = false;                         // async="none": acknowledged once applied
  std::size_t zone_size = replication::kDefaultZoneSize;  // ruzone_blocksize
  std::string local_address;                 // this node on the replication lan
  std::string peer_address;                  // the peer on the replication lan
  std::uint16_t port = 0;                    // cluster port + 1
  std::chrono::milliseconds timeout{30000};  // heart timeout
  // A synchronisation started or ended on the primary: "sync_start" /
  // "sync_end" / "sync_failed", with figures; on the secondary, after one
  // that replaced, created or removed entries here: "sync_received" (how
  // many, and the file listing them). Any thread; must not block.
  std::function<void(const std::string& what, const nlohmann::json& details)> on_sync;
  // The primary's sender lost its peer (any thread; must not block).
  std::function<void(const std::string& reason, std::uint64_t unapplied)> on_peer_lost;
  // One line for the module log (any thread).
  std::function<void(sdk::LogLevel, const std::string&)> log;
};

class ModuleReplication : public ReplicationSeam {
 public:
  explicit ModuleReplication(ReplicationSettings settings);
  ~ModuleReplication() override;
  ModuleReplication(const ModuleReplication&) = delete;
  ModuleReplication& operator=(const ModuleReplication&) = delete;

  // At daemon start: detaches a crashed daemon's mount from every dir.
  void CleanupStaleMounts();

  sdk::Status BecomePrimary(bool peer_expected) override;
  sdk::Status BecomeSecond() override;
  void Leave() override;

  // The module runs PRIM: its peer is SECOND. Connects the sender in the
  // background if it is not replicating (ALONE -> PRIM runs no step).
  void PeerIsSecond();
  // This node's data generation, announced in the next handshakes.
  void SetGeneration(std::uint64_t generation);
  // Whether the secondary now holds everything this primary holds: the
  // sender is replicating, no synchronisation is pending, and no change was
  // made since the last one (or the pairing) while not replicating.
  bool SecondHoldsEverything() const;
  // `hakit second --fullsync`: this node's copy is no longer taken as
  // complete. The clean marker goes, and the next BecomeSecond() announces
  // an inconsistent copy whatever marker a Leave() wrote meanwhile, so that
  // the primary compares both trees by checksums instead of trusting its
  // record. Lasts until that BecomeSecond() or the daemon's end.
  void RequestFullSync();
  // For `hakit state`: role, sender or receiver state and counters.
  nlohmann::json StatusJson() const;

  const ReplicationSettings& settings() const { return settings_; }

 private:
  enum class Role { kNone, kPrimary, kSecond };
  // Connection attempts until one succeeds, `budget` passes or Leave().
  sdk::Status ConnectFor(std::chrono::milliseconds budget);
  // Just connected: passes every dir the peer already holds, synchronises
  // the others in the background.
  void AfterConnect();
  void RunSync(std::vector<std::size_t> dirs, bool targeted);
  // Loads each dir's record and hot-zone log (constructor).
  void OpenLogs();
  // Forgets the hot zones of dir `i` whose changes are acknowledged by the
  // peer (or noted in the record) and flushed here; every change from now on
  // waits meanwhile only for a moment.
  void CoolHotZones(std::size_t i);
  void WriteMarker(const std::string& what);
  void Log(sdk::LogLevel level, const std::string& message) const;

  ReplicationSettings settings_;
  mutable std::mutex mu_;  // guards what follows; never held while blocking long
  Role role_ = Role::kNone;
  std::vector<std::unique_ptr<replication::SyncGate>> gates_;  // one per dir
  // What the secondary missed, per dir; for the daemon's lifetime (a
  // primary that stops and starts again keeps its record).
  std::vector<std::unique_ptr<replication::DirtyMap>> dirty_;
  std::vector<std::unique_ptr<replication::HotZones>> hot_;  // one per dir; null without logs
  // Per dir, while SECOND: this copy holds all the primary held when it
  // last declared it complete (no synchronisation under way, nothing failed).
  std::vector<char> complete_;
  bool was_second_ = false;
  // While SECOND: this copy crashed as primary and some dir still has hot
  // zones to name (the receiver's `suspect` holds them) until synchronised.
  std::atomic<bool> suspect_pending_{false};
  std::thread cooler_;
  std::mutex cooler_mu_;
  std::condition_variable cooler_cv_;
  std::unique_ptr<replication::ManifestCollector> manifests_;
  std::thread syncer_;
  std::atomic<bool> syncing_{false};
  std::uint64_t unreplicated_at_pairing_ = 0;  // sender's ops_unreplicated then
  std::shared_ptr<replication::SyncProgress> progress_;
  std::string sync_state_ = "none";  // none, running, done, failed: ...
  std::unique_ptr<replication::ReplicationSender> sender_;
  std::unique_ptr<replication::ReplicationReceiver> receiver_;
  std::vector<std::unique_ptr<replication::Interceptor>> mounts_;
  std::thread connector_;
  std::atomic<bool> connector_done_{true};
  std::atomic<bool> leaving_{false};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> replica_clean_{false};  // see ReplicationSettings::clean_marker
  std::atomic<bool> full_sync_requested_{false};  // see RequestFullSync()
};

}  // namespace hakit::daemon
