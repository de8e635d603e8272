#include "hakit/replication/hot_zones.h"

#include <algorithm>

#include "byte_codec.h"

namespace hakit::replication {

using sdk::Result;
using sdk::Status;

namespace {

// Log records: a kind byte, then its fields.
constexpr char kHot = 'H';    // path, u64 extent, u64 epoch
constexpr char kCool = 'C';   // u64 epoch: extents last touched then or before are cool
constexpr char kEpoch = 'E';  // u64 epoch: the current one (first record of a snapshot)

std::string HotRecord(const std::string& path, std::uint64_t extent, std::uint64_t epoch) {
  std::string r(1, kHot);
  PutStr(&r, path);
  PutU64(&r, extent);
  PutU64(&r, epoch);
  return r;
}

std::string EpochRecord(char kind, std::uint64_t epoch) {
  std::string r(1, kind);
  PutU64(&r, epoch);
  return r;
}

bool AtOrBelow(const std::string& path, const std::string& top) {
  return path == top || (path.size() > top.size() && path.compare(0, top.size(), top) == 0 &&
                         path[top.size()] == '/');
}

}  // namespace

Result<std::unique_ptr<HotZones>> HotZones::Open(const std::string& path, std::uint64_t extent) {
  std::unique_ptr<HotZones> h(new HotZones(std::max<std::uint64_t>(extent, 4096)));
  std::lock_guard lock(h->mu_);
  bool bad_record = false;
  auto log = DurableLog::Open(path, [&](std::string_view record) {
    if (!bad_record && !h->ReplayLocked(record)) bad_record = true;
  });
  if (!log.ok()) return log.status().WithContext("hot-zone log");
  if ((*log)->corrupt_at() || bad_record) {
    return Status::Corruption("hot-zone log " + path + " is damaged" +
                              ((*log)->corrupt_at()
                                   ? " at byte " + std::to_string(*(*log)->corrupt_at())
                                   : std::string(" (a record this version does not know)")));
  }
  h->log_ = std::move(*log);
  // Epochs keep growing across restarts: a new epoch never aliases an old one.
  h->epoch_++;
  h->snapshot_bytes_ = h->log_->size();
  return h;
}

bool HotZones::ReplayLocked(std::string_view record) {
  if (record.empty()) return false;
  BytesIn in(record.substr(1));
  switch (record[0]) {
    case kHot: {
      std::string path;
      std::uint64_t extent = 0, epoch = 0;
      if (!in.Str(&path, 1u << 16) || !in.U64(&extent) || !in.U64(&epoch)) return false;
      hot_[path][extent] = epoch;
      epoch_ = std::max(epoch_, epoch);
      return true;
    }
    case kCool: {
      std::uint64_t epoch = 0;
      if (!in.U64(&epoch)) return false;
      for (auto it = hot_.begin(); it != hot_.end();) {
        std::erase_if(it->second, [&](const auto& e) { return e.second <= epoch; });
        it = it->second.empty() ? hot_.erase(it) : std::next(it);
      }
      epoch_ = std::max(epoch_, epoch);
      return true;
    }
    case kEpoch: {
      std::uint64_t epoch = 0;
      if (!in.U64(&epoch)) return false;
      epoch_ = std::max(epoch_, epoch);
      return true;
    }
    default:
      return false;
  }
}

std::vector<std::string> HotZones::SnapshotLocked() const {
  std::vector<std::string> out{EpochRecord(kEpoch, epoch_)};
  for (const auto& [path, extents] : hot_) {
    for (const auto& [extent, epoch] : extents) out.push_back(HotRecord(path, extent, epoch));
  }
  return out;
}

Status HotZones::Touch(const std::string& path, std::uint64_t offset, std::uint64_t length) {
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mu_);
    const std::uint64_t first = offset / extent_;
    const std::uint64_t last = (offset + std::max<std::uint64_t>(length, 1) - 1) / extent_;
    auto& extents = hot_[path];
    std::uint64_t end = last;
    // A writer going forward through the file (the extent before is hot in
    // this epoch) will want the next ones: logging them now, in the same
    // disk write, spares it a wait at each extent boundary.
    if (auto before = first > 0 ? extents.find(first - 1) : extents.end();
        before != extents.end() && before->second == epoch_ && extents[first] != epoch_) {
      end = last + kAhead;
    }
    for (std::uint64_t e = first; e <= end; ++e) {
      std::uint64_t& epoch = extents[e];
      if (epoch == epoch_) continue;  // hot already: no I/O
      epoch = epoch_;
      ticket = log_->Append(HotRecord(path, e, epoch_));
    }
  }
  return ticket == 0 ? Status::Ok() : log_->Flush(ticket);
}

Status HotZones::Rename(const std::string& from, const std::string& to, bool exchange) {
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::uint64_t>> moved;  // new path, extent
    for (const auto& [path, extents] : hot_) {
      for (const auto& [a, b] : {std::pair{&from, &to}, std::pair{&to, &from}}) {
        if (a == &to && !exchange) continue;
        if (!AtOrBelow(path, *a)) continue;
        const std::string target = *b + path.substr(a->size());
        for (const auto& [extent, epoch] : extents) moved.emplace_back(target, extent);
      }
    }
    for (const auto& [path, extent] : moved) {
      hot_[path][extent] = epoch_;
      ticket = log_->Append(HotRecord(path, extent, epoch_));
    }
  }
  return ticket == 0 ? Status::Ok() : log_->Flush(ticket);
}

std::uint64_t HotZones::Advance() {
  std::lock_guard lock(mu_);
  return epoch_++;
}

Status HotZones::Cool(std::uint64_t epoch) {
  bool compact = false;
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mu_);
    for (auto it = hot_.begin(); it != hot_.end();) {
      std::erase_if(it->second, [&](const auto& e) { return e.second <= epoch; });
      it = it->second.empty() ? hot_.erase(it) : std::next(it);
    }
    ticket = log_->Append(EpochRecord(kCool, epoch));
    compact = log_->size() > 2 * snapshot_bytes_ + (1u << 20);
  }
  if (Status s = log_->Flush(ticket); !s.ok()) return s;
  if (!compact) return Status::Ok();
  std::lock_guard lock(mu_);
  Status s = log_->Replace(SnapshotLocked());
  snapshot_bytes_ = log_->size();
  return s;
}

Status HotZones::Clear() {
  std::lock_guard lock(mu_);
  hot_.clear();
  Status s = log_->Replace(SnapshotLocked());
  snapshot_bytes_ = log_->size();
  return s;
}

HotZones::Ranges HotZones::HotRanges() const {
  std::lock_guard lock(mu_);
  Ranges out;
  for (const auto& [path, extents] : hot_) {
    for (const auto& [extent, epoch] : extents) {
      out[path].emplace_back(extent * extent_, extent_);
    }
  }
  return out;
}

std::size_t HotZones::size() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [path, extents] : hot_) n += extents.size();
  return n;
}

bool HotZones::empty() const {
  std::lock_guard lock(mu_);
  return hot_.empty();
}

}  // namespace hakit::replication
