#include "hakit/replication/dirty_map.h"

#include <unistd.h>

#include <algorithm>

#include "byte_codec.h"

namespace hakit::replication {

DirtyMap::DirtyMap(std::size_t zone_size, std::size_t max_entries)
    : zone_size_(zone_size == 0 ? 1 : zone_size), max_entries_(max_entries) {}

namespace {

// Log records: a kind byte, then its fields.
constexpr char kReset = 'R';    // u64 generation, u64 zone size: valid, empty
constexpr char kInvalid = 'I';  // invalid, empty
constexpr char kZones = 'Z';    // path, u64 first, u64 last
constexpr char kWhole = 'W';    // path
constexpr char kSubtree = 'S';  // path
constexpr char kOther = 'O';

std::string Record(char kind) { return std::string(1, kind); }
std::string Record(char kind, const std::string& path) {
  std::string r(1, kind);
  PutStr(&r, path);
  return r;
}

}  // namespace

std::uint64_t DirtyMap::LogLocked(const std::string& record) {
  return log_ ? log_->Append(record) : 0;
}

bool DirtyMap::ReplayLocked(std::string_view record) {
  if (record.empty()) return false;
  BytesIn in(record.substr(1));
  std::string path;
  switch (record[0]) {
    case kReset: {
      std::uint64_t generation = 0, zone_size = 0;
      if (!in.U64(&generation) || !in.U64(&zone_size)) return false;
      // Zones of another size (ruzone_blocksize changed) say nothing here.
      EmptyLocked(zone_size == zone_size_);
      base_generation_ = generation;
      return true;
    }
    case kInvalid:
      EmptyLocked(false);
      return true;
    case kZones: {
      std::uint64_t first = 0, last = 0;
      if (!in.Str(&path, 1u << 16) || !in.U64(&first) || !in.U64(&last) || last < first) {
        return false;
      }
      if (!valid_) return true;
      Zones& z = files_[path];
      if (z.whole) return true;
      std::size_t added = 0;
      for (std::uint64_t i = first; i <= last && valid_; ++i) added += z.zones.insert(i).second;
      GrowLocked(added);
      return true;
    }
    case kWhole: {
      if (!in.Str(&path, 1u << 16)) return false;
      if (!valid_) return true;
      Zones& z = files_[path];
      if (!z.whole) {
        z.whole = true;
        z.zones.clear();
        GrowLocked(1);
      }
      return true;
    }
    case kSubtree:
      if (!in.Str(&path, 1u << 16)) return false;
      if (valid_ && subtrees_.insert(path).second) GrowLocked(1);
      return true;
    case kOther:
      if (valid_ && !other_changes_) {
        other_changes_ = true;
        GrowLocked(1);
      }
      return true;
    default:
      return false;
  }
}

std::vector<std::string> DirtyMap::SnapshotLocked() const {
  std::vector<std::string> out;
  if (!valid_) {
    out.push_back(Record(kInvalid));
    return out;
  }
  std::string reset = Record(kReset);
  PutU64(&reset, base_generation_);
  PutU64(&reset, zone_size_);
  out.push_back(std::move(reset));
  if (other_changes_) out.push_back(Record(kOther));
  for (const auto& p : subtrees_) out.push_back(Record(kSubtree, p));
  for (const auto& [path, z] : files_) {
    if (z.whole) {
      out.push_back(Record(kWhole, path));
      continue;
    }
    // Runs of consecutive zones, one record each.
    for (auto it = z.zones.begin(); it != z.zones.end();) {
      std::uint64_t first = *it, last = *it;
      for (++it; it != z.zones.end() && *it == last + 1; ++it) last = *it;
      std::string r = Record(kZones, path);
      PutU64(&r, first);
      PutU64(&r, last);
      out.push_back(std::move(r));
    }
  }
  return out;
}

sdk::Status DirtyMap::RewriteLocked() {
  if (!log_) return sdk::Status::Ok();
  sdk::Status s = log_->Replace(SnapshotLocked());
  snapshot_bytes_ = log_->size();
  return s;
}

sdk::Status DirtyMap::Persist(const std::string& path) {
  std::lock_guard lock(mu_);
  bool bad_record = false;
  valid_ = false;
  auto log = DurableLog::Open(path, [&](std::string_view record) {
    if (!bad_record && !ReplayLocked(record)) bad_record = true;
  });
  if (!log.ok()) {
    valid_ = false;
    return log.status().WithContext("record of changes");
  }
  log_ = std::move(*log);
  std::string damage;
  if (log_->corrupt_at()) {
    damage = "damaged at byte " + std::to_string(*log_->corrupt_at());
  } else if (bad_record) {
    damage = "holds a record this version does not know";
  }
  if (!damage.empty()) {
    EmptyLocked(false);
    RewriteLocked();
    return sdk::Status::Corruption("record of changes " + path + " " + damage +
                                   ": the next synchronisation compares checksums");
  }
  snapshot_bytes_ = log_->size();
  return sdk::Status::Ok();
}

sdk::Status DirtyMap::Flush() {
  if (!log_) return sdk::Status::Ok();
  return log_->Flush();
}

sdk::Status DirtyMap::CompactIfLarge() {
  std::lock_guard lock(mu_);
  if (!log_ || log_->size() < 2 * snapshot_bytes_ + (1u << 20)) return sdk::Status::Ok();
  return RewriteLocked();
}

std::uint64_t DirtyMap::GrowLocked(std::size_t n) {
  entries_ += n;
  if (entries_ <= max_entries_) return 0;
  {
    // Too big to be cheaper than a comparison: compare.
    EmptyLocked(false);
    return LogLocked(Record(kInvalid));
  }
}

void DirtyMap::Note(OpKind kind, const std::string& path, const std::string& path2,
                    std::uint64_t offset, std::uint64_t length) {
  std::uint64_t must_flush = 0;  // a ticket to wait for before returning
  {
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
        if (added == 0) return;  // already noted: no I/O
        std::string r = Record(kZones, path);
        PutU64(&r, first);
        PutU64(&r, last);
        LogLocked(r);  // durable at the next Flush(); the hot-zone log covers it
        must_flush = GrowLocked(added);
        break;
      }
      case OpKind::kTruncate:
      case OpKind::kFallocate:
      case OpKind::kCreate:
      case OpKind::kMknod:
      case OpKind::kSymlink:
      case OpKind::kLink: {
        const std::string& target = kind == OpKind::kLink ? path2 : path;
        Zones& z = files_[target];
        if (z.whole) return;
        z.whole = true;
        z.zones.clear();
        const std::uint64_t ticket = LogLocked(Record(kWhole, target));
        // A create's file is in the hot-zone log (Prepare) until flushed.
        must_flush = kind == OpKind::kCreate ? 0 : ticket;
        must_flush = std::max(must_flush, GrowLocked(1));
        break;
      }
      case OpKind::kRename:
        // Whatever now sits at the destination (a file or a whole tree) came
        // from elsewhere; an exchange moves both.
        for (const std::string* p : {&path2, &path}) {
          if (subtrees_.insert(*p).second) {
            must_flush = LogLocked(Record(kSubtree, *p));
            must_flush = std::max(must_flush, GrowLocked(1));
          }
        }
        break;
      case OpKind::kFsync:
        return;  // changes nothing
      default:
        // Removals and metadata: compared by every synchronisation; counted
        // so that an empty map means "nothing changed at all".
        if (other_changes_) return;
        other_changes_ = true;
        must_flush = LogLocked(Record(kOther));
        must_flush = std::max(must_flush, GrowLocked(1));
        break;
    }
  }
  if (must_flush != 0 && log_) {
    if (sdk::Status s = log_->Flush(must_flush); !s.ok()) {
      // The record cannot say what changed: it says nothing rather than
      // too little.
      std::lock_guard lock(mu_);
      EmptyLocked(false);
      SaveLocked();
    }
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

std::uint64_t DirtyMap::EstimateBytes(
    const std::function<std::uint64_t(const std::string&)>& size_of) const {
  // A copy of the little it needs, so that writers noting changes never wait
  // for the file system.
  struct File {
    std::string path;
    bool whole;
    std::uint64_t zones;  // how many
    std::uint64_t last;   // the highest zone index
  };
  std::vector<File> files;
  std::vector<std::string> subtrees;
  {
    std::lock_guard lock(mu_);
    files.reserve(files_.size());
    for (const auto& [path, z] : files_) {
      files.push_back({path, z.whole, z.zones.size(), z.zones.empty() ? 0 : *z.zones.rbegin()});
    }
    subtrees.assign(subtrees_.begin(), subtrees_.end());
  }
  auto below_subtree = [&](const std::string& path) {
    for (std::size_t i = 1; i <= path.size(); ++i) {
      if ((i == path.size() || path[i] == '/') &&
          std::binary_search(subtrees.begin(), subtrees.end(), path.substr(0, i))) {
        return true;
      }
    }
    return false;
  };
  std::uint64_t total = 0;
  for (const auto& t : subtrees) {
    // Nested subtrees count once, at the outermost.
    if (t.find('/') == std::string::npos || !below_subtree(t.substr(0, t.rfind('/')))) {
      total += size_of(t);
    }
  }
  for (const auto& f : files) {
    if (below_subtree(f.path) || (!f.whole && f.zones == 0)) continue;
    const std::uint64_t size = size_of(f.path);
    if (f.whole) {
      total += size;
      continue;
    }
    // Whole zones, but for the highest one where the file ends before it
    // (the zones below it are whole unless the file shrank, which a
    // truncate notes as whole).
    const std::uint64_t start = f.last * zone_size_;
    const std::uint64_t last = size <= start ? 0 : std::min<std::uint64_t>(zone_size_, size - start);
    total += (f.zones - 1) * zone_size_ + last;
  }
  return total;
}

void DirtyMap::Reset(std::uint64_t generation) {
  std::lock_guard lock(mu_);
  EmptyLocked(true);
  base_generation_ = generation;
  SaveLocked();
}

void DirtyMap::Invalidate() {
  std::lock_guard lock(mu_);
  EmptyLocked(false);
  SaveLocked();
}

void DirtyMap::EmptyLocked(bool valid) {
  files_.clear();
  subtrees_.clear();
  entries_ = 0;
  other_changes_ = false;
  valid_ = valid;
}

void DirtyMap::SaveLocked() {
  if (RewriteLocked().ok()) return;
  // The log cannot say what the map says: it says nothing rather than too
  // little (an absent log loads as invalid).
  EmptyLocked(false);
  if (log_) ::unlink(log_->path().c_str());
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
