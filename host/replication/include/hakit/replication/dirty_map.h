// DirtyMap: what changed in one replicated dir since the secondary last held
// everything, so that its return costs a copy of what changed rather than a
// comparison of both trees.
//
// The primary notes every change the secondary does not get (made while the
// sender is not replicating, lost in flight, or dropped during a
// synchronisation): the zones a write touched, and whole files (or whole
// subtrees, for a rename) whose content was replaced. Removals and metadata
// need no entry: the synchronisation compares names, types, sizes,
// permissions, owners and times of every entry anyway.
//
// The map is usable only while `valid`: from the moment the pair is known to
// hold the same data (a synchronisation ended, or the pairing found nothing
// missing) at `base_generation`. It becomes invalid when the peer is lost
// during a synchronisation (the secondary's copy is incomplete in unknown
// ways), when it grows past its bound, and with the daemon (it lives in
// memory). Without a valid map, the synchronisation compares whole trees by
// checksums.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "hakit/replication/operation.h"

namespace hakit::replication {

class DirtyMap {
 public:
  struct Zones {
    bool whole = false;             // every zone (the content was replaced)
    std::set<std::uint64_t> zones;  // zone indexes
  };

  explicit DirtyMap(std::size_t zone_size, std::size_t max_entries = 4u << 20);

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

 private:
  void GrowLocked(std::size_t n);

  const std::size_t zone_size_;
  const std::size_t max_entries_;
  mutable std::mutex mu_;
  bool valid_ = false;
  std::uint64_t base_generation_ = 0;
  std::size_t entries_ = 0;
  bool other_changes_ = false;  // a removal or a metadata change
  std::map<std::string, Zones> files_;
  std::set<std::string> subtrees_;  // every path below (and at) these was replaced
};

}  // namespace hakit::replication
