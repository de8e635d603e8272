// Full synchronisation of a secondary while the application keeps writing on
// the primary: the primary walks its tree in a fixed order (depth first,
// names sorted bytewise) and sends what differs from the secondary's
// description of its own tree (manifest.h): missing or extra entries,
// metadata, and the zones of regular files whose hashes differ.
//
// Why it ends identical although the tree changes during the walk: the
// walk's position (SyncCursor) splits the tree in two. Changes to the part
// already walked go to the secondary as usual (the secondary holds those
// entries); changes to the part not yet walked are dropped (the walk will
// read their result when it gets there). The SyncGate, between the
// interceptor and the sender, makes that decision for every change, and each
// step of the walk runs under Interceptor::RunExclusive(), so that a step
// and a change never interleave: the secondary receives them in the order
// the primary's tree went through them. A zone sent over a change already
// replicated is harmless (a write replayed over its own result changes
// nothing), which is why a file's zones can be sent while the file is
// written. A file renamed from the part not walked into the walked part is
// sent whole at once (the rename returns after). The rarer changes that move
// unwalked content into the walked part otherwise (a directory renamed so, a
// link, an exchange, the entry being walked renamed) abort the pass; the next
// pass starts from a new description and sends only what still differs.
//
// The secondary's copy is inconsistent from SYNC_BEGIN until SYNC_END; the
// daemon keeps it from ever becoming primary on its own meanwhile (its data
// generation is the old one until the primary declares it complete).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/replication/dirty_map.h"
#include "hakit/replication/hot_zones.h"
#include "hakit/replication/manifest.h"
#include "hakit/replication/operation.h"
#include "hakit/replication/path_filter.h"
#include "hakit/replication/wire.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {

class Interceptor;
class ReplicationSender;

// The walk's position: nothing walked, everything walked, or an entry (by
// path) with or without everything below it.
class SyncCursor {
 public:
  void SetNothing();
  void SetEverything();
  // `path` is being walked; `subtree_done`: and nothing below it remains.
  void Set(std::string_view path, bool subtree_done);
  // True when `path` is in the walked part (the secondary holds it).
  bool Covers(std::string_view path) const;
  // True when `path` is the entry being walked or one of its parents.
  bool IsOnPath(std::string_view path) const;

 private:
  enum class Kind { kNothing, kEverything, kAt };
  Kind kind_ = Kind::kNothing;
  std::vector<std::string> parts_;
  bool subtree_done_ = false;
};

// The OperationSink of one replicated dir of a primary: forwards to the
// sender, or, during a synchronisation, forwards, drops or rewrites each
// change as the cursor says. Passing is the state of a pair in sync.
// Submit()/Wait() are called by the interceptor under the shared change
// lock; every other method must be called inside RunExclusive() of the same
// dir (or before the mount exists).
class SyncGate : public OperationSink {
 public:
  // `root_fd`: the primary's real directory (Interceptor::real_dir_fd()),
  // read when a rename brings a file into the walked part; -1 = abort then.
  SyncGate(ReplicationSender& sender, std::uint8_t dir_index, int root_fd = -1);
  void set_root_fd(int fd) { root_fd_ = fd; }
  // <notreplicated>: changes to excluded paths are not sent. Not owned.
  void set_filter(const PathFilter* filter) { filter_ = filter; }
  // Where changes are noted while the gate does not pass (dirty_map.h); the
  // sender's owner notes the ones it cannot deliver once it passes. Not
  // owned; may be null.
  void set_dirty(DirtyMap* dirty) { dirty_ = dirty; }
  // Where the extents of changes about to be applied are logged (hot_zones.h),
  // in Prepare(). Not owned; may be null.
  void set_hot(HotZones* hot) { hot_ = hot; }
  // Changes that moved content from an excluded path into the replicated
  // part and could not be sent (a directory): the secondary lacks it.
  std::uint64_t unsent() const { return unsent_.load(); }

  sdk::Status Prepare(const Operation& op) override;
  std::uint64_t Submit(Operation op) override;
  sdk::Status Wait(std::uint64_t ticket) override;

  // Enters synchronisation with nothing walked: every change is dropped.
  void BeginSync();
  // Everything walked: every change passes again.
  void Pass();
  bool passing() const { return passing_; }
  SyncCursor& cursor() { return cursor_; }
  // A change the walk cannot account for happened: the pass must restart.
  bool aborted() const { return aborted_.load(); }
  void ClearAbort() { aborted_ = false; }
  // Changes dropped since BeginSync().
  std::uint64_t dropped() const { return dropped_.load(); }
  // The names created (dropped) since the last call in directory `dir`, a
  // directory being walked: its listing may have been taken before them.
  std::vector<std::string> TakeLateNames(const std::string& dir);

 private:
  std::uint64_t Forward(Operation&& op);
  std::uint64_t Drop();
  std::uint64_t Decide(Operation&& op);
  // A change touching an excluded path; nullopt when it is an ordinary one.
  std::optional<std::uint64_t> Filter(Operation& op);
  // Drops a change that creates `path`, remembering it if its directory is
  // being walked.
  std::uint64_t DropCreation(const std::string& path);
  // Sends the whole non-directory entry at `path` (it replaces whatever the
  // secondary has there); false when it cannot (a directory, an error).
  bool SendWhole(const std::string& path, std::uint64_t* ticket);

  ReplicationSender& sender_;
  const std::uint8_t dir_index_;
  int root_fd_ = -1;
  const PathFilter* filter_ = nullptr;
  DirtyMap* dirty_ = nullptr;
  HotZones* hot_ = nullptr;
  std::atomic<std::uint64_t> unsent_{0};
  bool passing_ = false;
  SyncCursor cursor_;
  std::atomic<bool> aborted_{false};
  std::atomic<std::uint64_t> dropped_{0};
  std::mutex late_mu_;  // Submit() runs on many threads at once
  std::map<std::string, std::vector<std::string>> late_;  // dir -> names
};

// Collects the MANIFEST frames of the secondary's answers, per dir.
class ManifestCollector {
 public:
  // From the sender's on_manifest (io thread).
  void Push(ManifestChunk&& chunk);
  // Forgets what was collected for `dir_index` (before asking again).
  void Reset(std::uint8_t dir_index);
  // Waits for the whole answer for `dir_index`; Timeout after `timeout` or
  // when `give_up` returns true (checked every 100 ms).
  sdk::Result<Manifest> Take(std::uint8_t dir_index, std::chrono::milliseconds timeout,
                             const std::function<bool()>& give_up);

 private:
  struct Pending {
    std::string data;
    bool done = false;
    std::string error;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint8_t, Pending> pending_;
};

// Counters of a synchronisation, readable while it runs (any thread).
struct SyncProgress {
  using Clock = std::chrono::steady_clock;

  std::atomic<std::uint64_t> entries{0};  // entries walked
  std::atomic<std::uint64_t> bytes_compared{0};
  std::atomic<std::uint64_t> bytes_sent{0};  // zone data sent
  std::atomic<std::uint64_t> zones_sent{0};
  std::atomic<std::uint64_t> passes{0};  // walks started (restarts included)

  // What the synchronisation has to handle, summed over the dirs it
  // synchronises (nbrei of them at once): the current pass's estimate of
  // each, made when the pass starts. With a record of what changed, what the
  // record says must travel (noted zones, whole files), and bytes_done
  // counts bytes sent; without one, the primary's regular-file bytes, all
  // read and compared, and bytes_done counts bytes compared. A pass that
  // restarts takes its bytes back out of both. The tree changes meanwhile,
  // so done may end a little below or above total.
  std::atomic<std::uint64_t> bytes_total{0};
  std::atomic<std::uint64_t> bytes_done{0};
  std::atomic<bool> by_record{false};
  std::atomic<Clock::rep> started{0};  // Clock ticks of the first pass; 0: none yet

  // Called by RunTreeSync when a dir's pass starts walking: `total` replaces
  // `previous`, that dir's last pass's estimate (0 for its first).
  void BeginPass(std::uint64_t total, std::uint64_t previous, bool record) {
    by_record = record;
    bytes_total += total;
    bytes_total -= previous;
    Clock::rep none = 0;
    started.compare_exchange_strong(none, Clock::now().time_since_epoch().count());
  }
  // Bytes per second since the first pass began; 0 before it, or in its
  // first 50 ms (too short to say).
  double rate(Clock::time_point now = Clock::now()) const {
    const Clock::rep start = started.load();
    if (start == 0) return 0;
    const double s = std::chrono::duration<double>(now - Clock::time_point(Clock::duration(start))).count();
    return s < 0.05 ? 0 : static_cast<double>(bytes_done.load()) / s;
  }
  // Seconds left at the current rate; nullopt while the rate is unknown.
  std::optional<double> eta_seconds(Clock::time_point now = Clock::now()) const {
    const double r = rate(now);
    if (r <= 0) return std::nullopt;
    const std::uint64_t total = bytes_total.load(), done = bytes_done.load();
    return done >= total ? 0.0 : static_cast<double>(total - done) / r;
  }
};

struct TreeSyncOptions {
  Interceptor* mount = nullptr;  // the primary's mount of the dir
  SyncGate* gate = nullptr;
  ReplicationSender* sender = nullptr;
  ManifestCollector* manifests = nullptr;
  std::uint8_t dir_index = 0;
  const PathFilter* filter = nullptr;  // <notreplicated>: left alone
  // With a map: only what it notes is sent of files the secondary has (no
  // checksums, on either side); the caller has checked that the map covers
  // every difference (valid, for the secondary's generation, a secondary that
  // did not crash). Null: both trees compared by checksums.
  const DirtyMap* dirty = nullptr;
  // The gate's map: reset (valid, for `generation`) when the secondary is
  // complete. May be null.
  DirtyMap* record = nullptr;
  std::size_t zone_size = kDefaultZoneSize;
  std::uint64_t generation = 0;  // announced in SYNC_END
  // How long the secondary may take to describe its tree.
  std::chrono::milliseconds manifest_timeout{std::chrono::minutes(30)};
  int max_passes = 20;
  // Checked between steps: true stops the synchronisation (Cancelled).
  std::function<bool()> stop;
  std::function<void(const std::string&)> log;
};

// Runs the synchronisation of one dir to its end: ok once SYNC_END is
// durable on the secondary and the gate passes again. An error leaves the
// gate dropping (the secondary stays inconsistent) and says why.
sdk::Status RunTreeSync(const TreeSyncOptions& options, SyncProgress* progress);

// Forgets the hot zones (hot_zones.h) of the dir `mount` serves whose changes
// are safe: it ends the epoch while no change is in progress (so every change
// of the epoch is applied and acknowledged by the peer, or noted in
// `record`), flushes the file system underneath (syncfs) and the record's
// buffered zones, then cools. Changes wait only while the epoch switches.
// A primary calls it periodically (every second) and when it stops.
sdk::Status CoolHotZones(Interceptor& mount, HotZones& hot, DirtyMap& record);

}  // namespace hakit::replication
