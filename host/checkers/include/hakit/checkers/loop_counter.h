// LoopCounter: the restart policy's memory. It keeps the times of the
// actions taken within a sliding window (loop_interval) and says how many
// there are at a given time. Like ResourceTable it reads no clock.
#pragma once

#include <chrono>
#include <deque>

#include "hakit/checkers/resource.h"

namespace hakit::checkers {

class LoopCounter {
 public:
  explicit LoopCounter(std::chrono::milliseconds window) : window_(window) {}

  // One more action at `now`.
  void Record(Clock::time_point now);
  // Actions within (now - window, now].
  int Count(Clock::time_point now);
  // Forgets every action (operator command, `hakit resetloop`).
  void Reset() { times_.clear(); }
  std::chrono::milliseconds window() const { return window_; }

 private:
  std::chrono::milliseconds window_;
  std::deque<Clock::time_point> times_;
};

}  // namespace hakit::checkers
