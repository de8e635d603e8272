#include "hakit/replication/dirty_map.h"

namespace hakit::replication {

DirtyMap::DirtyMap(std::size_t zone_size, std::size_t max_entries)
    : zone_size_(zone_size == 0 ? 1 : zone_size), max_entries_(max_entries) {}

void DirtyMap::GrowLocked(std::size_t n) {
  entries_ += n;
  if (entries_ > max_entries_) {
    // Too big to be cheaper than a comparison: compare.
    valid_ = false;
    other_changes_ = false;
    files_.clear();
    subtrees_.clear();
    entries_ = 0;
  }
}

void DirtyMap::Note(OpKind kind, const std::string& path, const std::string& path2,
                    std::uint64_t offset, std::uint64_t length) {
  std::lock_guard lock(mu_);
  if (!valid_) return;
  switch (kind) {
    case OpKind::kWrite: {
      if (length == 0) return;
      Zones& z = files_[path];
      if (z.whole) return;
      const std::uint64_t first = offset / zone_size_;
      const std::uint64_t last = (offset + length - 1) / zone_size_;
      std::size_t added = 0;
      for (std::uint64_t i = first; i <= last; ++i) added += z.zones.insert(i).second ? 1 : 0;
      GrowLocked(added);
      return;
    }
    case OpKind::kTruncate:
    case OpKind::kFallocate:
    case OpKind::kCreate:
    case OpKind::kMknod:
    case OpKind::kSymlink: {
      Zones& z = files_[path];
      if (!z.whole) {
        z.whole = true;
        z.zones.clear();
        GrowLocked(1);
      }
      return;
    }
    case OpKind::kLink: {
      Zones& z = files_[path2];
      z.whole = true;
      z.zones.clear();
      GrowLocked(1);
      return;
    }
    case OpKind::kRename:
      // Whatever now sits at the destination (a file or a whole tree) came
      // from elsewhere; an exchange moves both.
      if (subtrees_.insert(path2).second) GrowLocked(1);
      if (subtrees_.insert(path).second) GrowLocked(1);
      return;
    case OpKind::kFsync:
      return;  // changes nothing
    default:
      // Removals and metadata: compared by every synchronisation; counted so
      // that an empty map means "nothing changed at all".
      if (!other_changes_) {
        other_changes_ = true;
        GrowLocked(1);
      }
      return;
  }
}

DirtyMap::Zones DirtyMap::Of(const std::string& path) const {
  std::lock_guard lock(mu_);
  // A replaced subtree at the path or above it.
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if ((i == path.size() || path[i] == '/') && subtrees_.count(path.substr(0, i))) {
      return Zones{true, {}};
    }
  }
  auto it = files_.find(path);
  return it == files_.end() ? Zones{} : it->second;
}

void DirtyMap::Reset(std::uint64_t generation) {
  std::lock_guard lock(mu_);
  other_changes_ = false;
  files_.clear();
  subtrees_.clear();
  entries_ = 0;
  valid_ = true;
  base_generation_ = generation;
}

void DirtyMap::Invalidate() {
  std::lock_guard lock(mu_);
  valid_ = false;
  other_changes_ = false;
  files_.clear();
  subtrees_.clear();
  entries_ = 0;
}

bool DirtyMap::valid() const {
  std::lock_guard lock(mu_);
  return valid_;
}

std::uint64_t DirtyMap::base_generation() const {
  std::lock_guard lock(mu_);
  return base_generation_;
}

std::size_t DirtyMap::entries() const {
  std::lock_guard lock(mu_);
  return entries_;
}

}  // namespace hakit::replication
