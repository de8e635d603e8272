// The SQLite event store behind a node's history (ROOT/var/history.db).
//
// Every call either finishes quickly or fails with a Status that names the
// database file: a lock held by another process is waited for only
// `busy_timeout` (200 ms by default), so neither the daemon nor the CLI can
// hang on history. The schema is versioned with PRAGMA user_version and
// upgraded in one transaction when the store is opened read-write.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hakit/history/event.h"
#include "hakit/sdk/status.h"

struct sqlite3;

namespace hakit::history {

using sdk::Result;
using sdk::Status;

// The schema version this build writes; a file with a higher user_version
// was written by a newer hakit and is refused rather than misread.
inline constexpr int kSchemaVersion = 1;

struct QueryFilter {
  enum class Order { kOldestFirst, kNewestFirst };

  // Only this module's events (empty module = node-wide events only).
  std::optional<std::string> module;
  // Only these kinds (any of them); empty = every kind. Names, so that kinds
  // unknown to this build can be selected too.
  std::vector<std::string> kinds;
  // since <= time_us < until (half-open, so that adjacent windows never
  // overlap).
  std::optional<int64_t> since_us;
  std::optional<int64_t> until_us;
  // At most this many events; 0 = no limit.
  size_t limit = 0;
  // With a limit: keep the latest `limit` matches rather than the earliest
  // (`hakit history -n 20` wants the last 20, still printed oldest first).
  bool latest = false;
  // Order of the result; ties in time keep insertion order.
  Order order = Order::kOldestFirst;
};

class HistoryStore {
 public:
  struct Options {
    // How long a call waits for a lock held by another connection.
    std::chrono::milliseconds busy_timeout{200};
    // Read-only: never creates the file nor upgrades its schema (the CLI
    // reading a node's history).
    bool read_only = false;
  };

  // Opens (creating if needed, with its parent folders) the database at
  // `path` and brings its schema to kSchemaVersion.
  static Result<std::unique_ptr<HistoryStore>> Open(const std::filesystem::path& path,
                                                    Options options);
  static Result<std::unique_ptr<HistoryStore>> Open(const std::filesystem::path& path) {
    return Open(path, Options());
  }

  ~HistoryStore();
  HistoryStore(const HistoryStore&) = delete;
  HistoryStore& operator=(const HistoryStore&) = delete;

  // Appends one event. time_us 0 becomes now; details must be a JSON object
  // (empty text counts as {}); kind must not be empty.
  Status Append(const Event& event);
  // Appends all events or none (one transaction).
  Status AppendBatch(std::span<const Event> events);

  Result<std::vector<Event>> Query(const QueryFilter& filter);

  // The schema version found in the file when it was opened (0 = new file).
  int opened_version() const { return opened_version_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  HistoryStore(std::filesystem::path path, sqlite3* db, std::chrono::milliseconds busy_timeout)
      : path_(std::move(path)), db_(db), busy_timeout_(busy_timeout) {}

  Status Migrate(bool read_only);
  // An error Status for SQLite result `rc` during `what`, naming the file and,
  // for the errors an operator can fix, saying how.
  Status Error(int rc, const std::string& what) const;
  Status Exec(const char* sql, const std::string& what);
  Result<int> UserVersion();

  const std::filesystem::path path_;
  // One connection; calls are serialized so that the daemon's writer and a
  // web console query can share a store.
  std::mutex mu_;
  sqlite3* const db_;
  const std::chrono::milliseconds busy_timeout_;
  int opened_version_ = 0;
};

}  // namespace hakit::history
