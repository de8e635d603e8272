// The daemon's side of history: Append never blocks on SQLite.
//
// Events go to a bounded in-memory queue that one background thread drains
// into the store in batches. When the store cannot be opened or written
// (locked, corrupt, disk full) the writer reports it once per failure
// streak, keeps the latest `capacity` events, and retries with backoff; when
// writing works again it says so, and an `error` event in the history itself
// records how many events were lost.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hakit/history/event.h"
#include "hakit/history/store.h"
#include "hakit/sdk/status.h"

namespace hakit::history {

class HistoryWriter {
 public:
  struct Options {
    // The database file (Layout::HistoryDb()).
    std::filesystem::path path;
    // Stamped on events appended without a node.
    std::string node;
    // Events kept in memory while the store is unavailable (plus the batch
    // being written); beyond that the oldest are dropped and counted.
    size_t capacity = 10000;
    // Events written per transaction.
    size_t batch_size = 256;
    // Wait between retries after a failure: doubles from retry_min up to
    // retry_max. Flush() retries at once.
    std::chrono::milliseconds retry_min{250};
    std::chrono::milliseconds retry_max{10000};
    HistoryStore::Options store;
    // Called from the writer thread, never with a lock held: once when a
    // failure streak starts (the message names the file and the fix), and
    // when events were dropped for lack of room without a failure streak
    // (a slow disk) ...
    std::function<void(const std::string&)> on_error;
    // ... and once when a failure streak ends, with the number of events
    // dropped meanwhile. Optional.
    std::function<void(const std::string&)> on_recovered;
  };

  // Starts the writer thread; the store is opened there, so a broken file
  // cannot delay the daemon's start.
  explicit HistoryWriter(Options options);
  // Makes one last bounded attempt to write what is queued (about one busy
  // timeout), then stops. Call Flush() first to wait longer.
  ~HistoryWriter();
  HistoryWriter(const HistoryWriter&) = delete;
  HistoryWriter& operator=(const HistoryWriter&) = delete;

  // Queues `event` and returns at once. time_us 0 becomes now (the time of
  // the call, not of the write); an empty node becomes Options::node; details
  // that are not a JSON object are kept as {"raw": "<text>"}, and an empty
  // kind becomes "error", rather than losing the event in the store.
  void Append(Event event);

  // Waits until every event appended before the call is written (or was
  // dropped for lack of room), retrying a failed store at once. Timeout, with
  // the last store error, if that takes longer than `timeout`.
  Status Flush(std::chrono::milliseconds timeout);

  // Events queued and not yet written.
  size_t pending() const;
  // Events dropped because the queue was full.
  uint64_t dropped() const;
  // The last store error; ok when the last attempt worked.
  Status last_error() const;

 private:
  struct Queued {
    uint64_t seq;
    Event event;
  };

  void Run();
  // Drops the oldest queued events beyond capacity. Requires mu_.
  void TrimLocked();
  // Every seq up to this one is written or dropped. Requires mu_.
  uint64_t DoneSeqLocked() const;
  // Opens the store if needed and writes `batch`.
  Status WriteBatch(const std::vector<Queued>& batch);

  const Options options_;
  // Touched by the writer thread only.
  std::unique_ptr<HistoryStore> store_;

  mutable std::mutex mu_;
  std::condition_variable wake_;      // the writer thread: work, retry or stop
  std::condition_variable progress_;  // Flush(): DoneSeqLocked() moved
  std::deque<Queued> queue_;
  // Events are written in seq order; the thread takes a batch off the front
  // of queue_ and puts it back if the write fails.
  size_t in_flight_ = 0;          // events taken by the thread, being written
  uint64_t in_flight_first_ = 0;  // seq of the first of them
  uint64_t next_seq_ = 1;         // seq of the next appended event
  uint64_t dropped_ = 0;
  uint64_t dropped_unreported_ = 0;  // dropped since the last error event
  bool retry_now_ = false;
  bool stop_ = false;
  Status last_error_;

  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace hakit::history
