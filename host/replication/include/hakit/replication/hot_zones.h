// HotZones: the activity log of a primary's replicated dir (DRBD keeps one
// for the same reason). A primary that crashes may hold writes its peer
// never received, and writes its own disk never got (still in the page cache
// at a power cut) although the peer has them. Either way the two copies
// differ exactly where writes were in flight; when this node comes back and
// follows the other, it names those zones ("suspect") in its description of
// its tree, and the new primary sends them again.
//
// A write's extents (fixed-size ranges of a file, coarser than the
// synchronisation's zones so that a sequential writer rarely waits) are on
// disk in the log before the write is applied (Touch). An extent already
// hot in the current epoch costs no I/O; a writer moving forward through a
// file gets the next kAhead extents logged with the one it enters (one disk
// write per 32 MiB written), at the price of resending them after a crash. Cooling: Advance() starts a new
// epoch (call it while no change is in progress); once every change
// submitted before it is acknowledged by the peer (or noted in the record of
// what the peer missed, made durable) and the local file system is flushed
// (syncfs), Cool() forgets the extents nothing touched since.
//
// A rename carries the extents of the moved file (or tree) to the new name.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "hakit/replication/durable_log.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {

class HotZones {
 public:
  // Byte ranges (offset, length) per path.
  using Ranges = std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>>;

  static constexpr std::uint64_t kDefaultExtent = 4u << 20;
  // Extents logged ahead of a sequential writer (see Touch()).
  static constexpr std::uint64_t kAhead = 7;

  // Loads the log at `path` (created when absent). A log damaged before its
  // end is an error: what it no longer says cannot be known (the caller
  // treats this copy as unknown).
  static sdk::Result<std::unique_ptr<HotZones>> Open(const std::string& path,
                                                     std::uint64_t extent = kDefaultExtent);

  // Before a change of `length` bytes at `offset` of `path` is applied: its
  // extents are hot, on disk. An error means the change must not be made.
  sdk::Status Touch(const std::string& path, std::uint64_t offset, std::uint64_t length);
  // Before `from` is renamed to `to` (an exchange: both ways): hot extents
  // at or below `from` are hot under `to` too.
  sdk::Status Rename(const std::string& from, const std::string& to, bool exchange);

  // A new epoch begins; returns the one that ended.
  std::uint64_t Advance();
  // Extents last touched in `epoch` or before are forgotten (on disk).
  sdk::Status Cool(std::uint64_t epoch);
  // Forgets everything (this copy was made identical to its peer's).
  sdk::Status Clear();

  // Hot byte ranges, per path: [offset, offset + length).
  Ranges HotRanges() const;
  bool empty() const;
  // Hot extents, all files together.
  std::size_t size() const;
  std::uint64_t extent() const { return extent_; }

 private:
  HotZones(std::uint64_t extent) : extent_(extent) {}
  bool ReplayLocked(std::string_view record);
  std::vector<std::string> SnapshotLocked() const;

  const std::uint64_t extent_;
  mutable std::mutex mu_;
  std::unique_ptr<DurableLog> log_;
  std::uint64_t epoch_ = 1;
  std::map<std::string, std::map<std::uint64_t, std::uint64_t>> hot_;  // path -> extent -> epoch
  std::uint64_t snapshot_bytes_ = 0;
};

}  // namespace hakit::replication
