// DurableLog: an append-only file of records, each framed with its length
// and a CRC-32, for state that must survive a crash of the daemon or of the
// machine (the record of what the secondary missed, the hot-zone log).
//
// Appends are buffered in memory; Flush() writes them and waits for the disk
// (fdatasync). Several threads flushing at once share one fdatasync (a flush
// returns as soon as a disk write that covers its appends has completed).
// Replace() swaps the whole content atomically (a new file, fsynced, renamed
// over the old one), which is how a log is compacted or emptied.
//
// Reading back (Open): records are handed to `replay` in order, up to the
// first that is cut short or fails its CRC. Nothing after it is trusted and
// the file is truncated there. A cut at the very end is what a crash during
// an append leaves (that append was never acknowledged); anything else is
// reported as corruption (`corrupt_at()`), and the caller decides what the
// loss of the rest means.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::replication {

class DurableLog {
 public:
  // Opens (creating it and its directory if needed) the log at `path` and
  // replays it.
  static sdk::Result<std::unique_ptr<DurableLog>> Open(
      const std::string& path, const std::function<void(std::string_view)>& replay);
  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  // Buffers one record; returns a ticket for Flush(). Thread-safe.
  std::uint64_t Append(std::string_view record);
  // Everything appended up to `ticket` (0: everything so far) is on disk.
  sdk::Status Flush(std::uint64_t ticket = 0);
  // The log now holds exactly `records`, on disk, whatever was buffered.
  sdk::Status Replace(const std::vector<std::string>& records);

  const std::string& path() const { return path_; }
  // Bytes in the file (written so far).
  std::uint64_t size() const;
  // Where replay stopped on a damaged record that was not the last one.
  std::optional<std::uint64_t> corrupt_at() const { return corrupt_at_; }

 private:
  DurableLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;
  int fd_ = -1;
  std::optional<std::uint64_t> corrupt_at_;
  mutable std::mutex mu_;        // the buffer and the counters
  std::string buffer_;
  std::uint64_t appended_ = 0;   // tickets handed out
  std::uint64_t size_ = 0;
  std::mutex flush_mu_;          // one writer to the file at a time
  std::uint64_t durable_ = 0;    // tickets on disk
  sdk::Status failed_ = sdk::Status::Ok();  // a write or sync failed: every flush fails
};

}  // namespace hakit::replication
