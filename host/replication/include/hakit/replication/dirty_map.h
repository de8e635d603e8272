// DirtyMap: what changed in one replicated dir since the secondary last held
// everything, so that its return costs a copy of what changed rather than a
// comparison of both trees.
//
// The primary notes every change the secondary does not get: the SyncGate
// every change while it does not pass (a synchronisation, no pairing yet),
// the sender's owner what the sender cannot deliver (submitted while not
// replicating, SenderOptions::on_unreplicated; lost in flight, PeerLost).
// What is noted: the zones a write touched, and whole files (or whole
// subtrees, for a rename) whose content was replaced. Removals and metadata
// need no entry: the synchronisation compares names, types, sizes,
// permissions, owners and times of every entry anyway.
//
// The map is usable only while `valid`: from the moment the pair is known to
// hold the same data (a synchronisation ended, or the pairing found nothing
// missing) at `base_generation`. It becomes invalid when the peer is lost
// during a synchronisation (the secondary's copy is incomplete in unknown
// ways) and when it grows past its bound. Without a valid map, the
// synchronisation compares whole trees by checksums.
//
// Persist() keeps it on disk (a DurableLog), so that it survives a restart
// or a crash of the daemon or of the machine: resets, invalidations and
// whole-file (but created), subtree and other entries are on disk before
// Note() returns (before the change is acknowledged); zone entries and
// created files are only buffered, because the hot-zone log (hot_zones.h)
// already holds their extents on disk, before the change was even applied,
// until Flush() has made the buffered entries durable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/replication/durable_log.h"
#include "hakit/replication/operation.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {

class DirtyMap {
 public:
  struct Zones {
    bool whole = false;             // every zone (the content was replaced)
    std::set<std::uint64_t> zones;  // zone indexes
  };

  explicit DirtyMap(std::size_t zone_size, std::size_t max_entries = 4u << 20);

  // Loads the map from the log at `path` (created empty, and so invalid,
  // when absent) and records every change there from now on. A log damaged
  // before its end leaves the map invalid, and says so in the status (the
  // map stays usable: invalid, persisted).
  sdk::Status Persist(const std::string& path);
  // Buffered zone entries are on disk.
  sdk::Status Flush();
  // Rewrites the log as the map is now when it has grown well past that.
  sdk::Status CompactIfLarge();

  // Notes what `op` changes (kind, paths, offset and length are read; the
  // data is not). Thread-safe.
  void Note(OpKind kind, const std::string& path, const std::string& path2, std::uint64_t offset,
            std::uint64_t length);
  // A write's size is its data's, or `length` when the data is gone (the
  // operations a lost sender reports).
  void Note(const Operation& op) {
    const std::uint64_t size =
        op.kind == OpKind::kWrite && !op.data.empty() ? op.data.size() : op.length;
    Note(op.kind, op.path, op.path2, op.offset, size);
  }

  // What changed in the file at `path`.
  Zones Of(const std::string& path) const;

  // Empty and valid from now on, for the data the pair holds at `generation`.
  void Reset(std::uint64_t generation);
  void Invalidate();
  bool valid() const;
  std::uint64_t base_generation() const;
  std::size_t zone_size() const { return zone_size_; }
  // Zones, files and subtrees noted, plus one for any other change: 0 means
  // nothing changed at all.
  std::size_t entries() const;
  // The bytes a synchronisation from this map sends, estimated: noted zones
  // (at most the file's size), whole files and subtrees as `size_of` (the
  // regular-file bytes at a path, 0 when it is gone) says. `size_of` runs
  // without the map's lock held.
  std::uint64_t EstimateBytes(const std::function<std::uint64_t(const std::string&)>& size_of) const;

 private:
  // Counts new entries; past the bound the map becomes invalid, and the
  // ticket of that record is returned (0 otherwise).
  std::uint64_t GrowLocked(std::size_t n);
  // Applies one record of the log (Persist); false when it is not one.
  bool ReplayLocked(std::string_view record);
  // The records that rebuild the map as it is.
  std::vector<std::string> SnapshotLocked() const;
  // Appends `record` to the log, if any; returns its ticket (0: none).
  std::uint64_t LogLocked(const std::string& record);
  // Replaces the log by the map's snapshot (after a reset or invalidation).
  sdk::Status RewriteLocked();
  // Empties the map; `valid`: an empty map means "nothing changed".
  void EmptyLocked(bool valid);
  // RewriteLocked(), or, if that fails, no log and an invalid map.
  void SaveLocked();

  const std::size_t zone_size_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  bool valid_ = false;
  std::uint64_t base_generation_ = 0;
  std::size_t entries_ = 0;
  bool other_changes_ = false;  // a removal or a metadata change
  std::map<std::string, Zones> files_;
  std::set<std::string> subtrees_;  // every path below (and at) these was replaced
  std::unique_ptr<DurableLog> log_;
  std::uint64_t snapshot_bytes_ = 0;  // the log's size after its last rewrite
};

}  // namespace hakit::replication
