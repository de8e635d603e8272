#include "hakit/history/writer.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

namespace hakit::history {

HistoryWriter::HistoryWriter(Options options) : options_(std::move(options)) {
  thread_ = std::thread(&HistoryWriter::Run, this);
}

HistoryWriter::~HistoryWriter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HistoryWriter::Append(Event event) {
  if (event.time_us == 0) event.time_us = NowMicros();
  if (event.node.empty()) event.node = options_.node;
  if (event.details.empty()) {
    event.details = "{}";
  } else {
    // The store refuses details that are not a JSON object; losing the
    // whole event over that would be worse than keeping the text.
    auto json = nlohmann::json::parse(event.details, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      event.details = nlohmann::json{{"raw", event.details}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  }
  if (event.kind.empty()) event.kind = KindName(EventKind::kError);
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Queued{next_seq_++, std::move(event)});
    TrimLocked();
  }
  wake_.notify_one();
}

void HistoryWriter::TrimLocked() {
  const size_t capacity = std::max<size_t>(options_.capacity, 1);
  bool dropped_any = false;
  // The batch in flight is not counted: it is either written, or put back at
  // the front and trimmed with the rest, so that what survives a failure
  // streak is always the latest `capacity` events.
  while (queue_.size() > capacity) {
    queue_.pop_front();
    ++dropped_;
    ++dropped_unreported_;
    dropped_any = true;
  }
  if (dropped_any) progress_.notify_all();
}

uint64_t HistoryWriter::DoneSeqLocked() const {
  if (in_flight_ > 0) return in_flight_first_ - 1;
  if (!queue_.empty()) return queue_.front().seq - 1;
  return next_seq_ - 1;
}

Status HistoryWriter::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const uint64_t target = next_seq_ - 1;
  retry_now_ = true;
  wake_.notify_one();
  if (progress_.wait_for(lock, timeout, [&] { return DoneSeqLocked() >= target; })) {
    return Status::Ok();
  }
  std::string msg = "history: " + std::to_string(queue_.size() + in_flight_) +
                    " events still unwritten after " + std::to_string(timeout.count()) + " ms";
  if (!last_error_.ok()) msg += ": " + last_error_.message();
  return Status::Timeout(msg);
}

size_t HistoryWriter::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + in_flight_;
}

uint64_t HistoryWriter::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

Status HistoryWriter::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

Status HistoryWriter::WriteBatch(const std::vector<Queued>& batch) {
  if (!store_) {
    auto store = HistoryStore::Open(options_.path, options_.store);
    if (!store.ok()) return store.status();
    store_ = std::move(store).value();
  }
  std::vector<Event> events;
  events.reserve(batch.size());
  for (const Queued& q : batch) events.push_back(q.event);
  Status s = store_->AppendBatch(events);
  // A lock passes by itself; anything else (file replaced, corrupt, disk
  // full) may be fixed by the operator moving the file, which only a fresh
  // connection sees.
  if (!s.ok() && s.code() != Status::Code::kTimeout) store_.reset();
  return s;
}

void HistoryWriter::Run() {
  auto backoff = options_.retry_min;
  bool failing = false;
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping with nothing left to write

    const size_t n = std::min(queue_.size(), std::max<size_t>(options_.batch_size, 1));
    std::vector<Queued> batch;
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    in_flight_ = batch.size();
    in_flight_first_ = batch.front().seq;
    const bool stopping = stop_;

    lock.unlock();
    Status s = WriteBatch(batch);
    lock.lock();
    in_flight_ = 0;

    if (s.ok()) {
      last_error_ = Status::Ok();
      backoff = options_.retry_min;
      std::string recovered;
      if (failing) {
        failing = false;
        recovered = "history: writing to " + options_.path.string() + " again";
      }
      std::string gap;
      if (dropped_unreported_ > 0) {
        gap = "history: " + std::to_string(dropped_unreported_) + " events were dropped because " +
              options_.path.string() + " could not be written in time (queue of " +
              std::to_string(options_.capacity) + " full)";
        // The gap must show in the history itself, not only in a log.
        Event e = MakeEvent(EventKind::kError, "", gap);
        e.node = options_.node;
        e.details = nlohmann::json{{"dropped_events", dropped_unreported_}}.dump();
        queue_.push_back(Queued{next_seq_++, std::move(e)});
        if (!recovered.empty()) {
          recovered +=
              "; " + std::to_string(dropped_unreported_) + " events were dropped meanwhile";
          gap.clear();  // said once, in the recovery message
        }
        dropped_unreported_ = 0;
      }
      progress_.notify_all();
      if (!recovered.empty() && options_.on_recovered) {
        lock.unlock();
        options_.on_recovered(recovered);
        lock.lock();
      }
      if (!gap.empty() && options_.on_error) {
        lock.unlock();
        options_.on_error(gap);
        lock.lock();
      }
      continue;
    }

    for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
    TrimLocked();
    last_error_ = s;
    if (!failing) {
      failing = true;
      if (options_.on_error) {
        std::string msg = "history: " + s.ToString() + " (keeping up to " +
                          std::to_string(options_.capacity) + " events in memory and retrying)";
        lock.unlock();
        options_.on_error(msg);
        lock.lock();
      }
    }
    progress_.notify_all();
    if (stopping || stop_) break;  // that was the last attempt
    wake_.wait_for(lock, backoff, [&] { return stop_ || retry_now_; });
    retry_now_ = false;
    backoff = std::min(backoff * 2, options_.retry_max);
  }
}

}  // namespace hakit::history
