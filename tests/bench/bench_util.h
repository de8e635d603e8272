// Shared by the benchmark programs: a client that keeps connecting to a
// service from inside a network namespace, a watcher of address changes in a
// namespace (when the VIP appears), summary statistics and hakit log parsing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

#include "hakit/sdk/status.h"

namespace hakit::bench {

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

// Set by SIGINT/SIGTERM: loops give up and the benchmark cleans up.
extern std::atomic<bool> g_interrupted;
void InstallInterruptHandler();

// Milliseconds as a double, for reporting.
double Ms(Clock::duration d);

// A client loop in `netns`: a new non-blocking TCP connection to
// address:port every `interval`, several in flight at once (each given up
// after `attempt_timeout`), so that one SYN lost to a dead node does not hide
// the moment the service answers again. Every reply (the demo application
// answers "hello from NODE #n" and closes) is recorded with the steady time
// it arrived.
class Prober {
 public:
  struct Options {
    std::string netns;
    std::string address;
    uint16_t port = 8080;
    std::chrono::milliseconds interval{5};
    std::chrono::milliseconds attempt_timeout{100};
  };
  explicit Prober(Options options);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Starts the loop; an error if the namespace cannot be entered.
  sdk::Status Start();
  void Stop();

  // The arrival time of the first reply from `node` ("hello from NODE")
  // received at or after `after`; waits up to `timeout` for it.
  std::optional<Clock::time_point> WaitReply(const std::string& node, Clock::time_point after,
                                             std::chrono::milliseconds timeout);
  // Forgets the replies recorded so far (they are kept for WaitReply).
  void Clear();
  std::uint64_t attempts() const { return attempts_.load(); }

 private:
  void Loop();

  Options options_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> attempts_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  std::string start_error_;
  struct Reply {
    Clock::time_point at;
    std::string node;
  };
  std::vector<Reply> replies_;
};

// Watches IPv4 address additions in `netns` (rtnetlink) and records when
// `address` is added, in steady time.
class AddressWatch {
 public:
  AddressWatch(std::string netns, std::string address);
  ~AddressWatch();
  AddressWatch(const AddressWatch&) = delete;
  AddressWatch& operator=(const AddressWatch&) = delete;
  sdk::Status Start();
  void Stop();
  // The first addition of the address at or after `after`.
  std::optional<Clock::time_point> AddedAfter(Clock::time_point after);

 private:
  void Loop();
  std::string netns_;
  std::string address_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  std::string start_error_;
  std::vector<Clock::time_point> added_;
};

struct Summary {
  std::size_t n = 0;
  double min = 0, median = 0, max = 0, mean = 0;
};
Summary Summarize(std::vector<double> values);
// "min/median/max = 1.0/2.0/3.0 ms (n=11)"
std::string FormatSummary(const Summary& s, const char* unit = "ms");

// One line of a hakit log ("2024-05-01T10:00:00.123456Z I message").
struct LogLine {
  WallClock::time_point at;
  std::string level;
  std::string message;
};
std::vector<LogLine> ReadLog(const std::filesystem::path& path);

// The figures a benchmark helper prints ("k1=v1 k2=v2 ..."), by key.
std::map<std::string, double> ParseFigures(const std::string& text);

// CPU seconds (user + system, all threads) that process `pid` used so far;
// 0 if it is gone.
double CpuSeconds(pid_t pid);

// Brings the interfaces `ifnames` of `netns` down back to back (one ioctl
// each, from this process: microseconds apart, where `ip` would take a fork
// and an exec per link), so that a node with two lans loses both at the same
// instant, as in a power cut. Returns the steady time just before the first
// one went down; `done`, if given, receives the time after the last.
sdk::Result<Clock::time_point> LinksDownNow(const std::string& netns,
                                            const std::vector<std::string>& ifnames,
                                            Clock::time_point* done = nullptr);

// Runs `fn` on a new thread inside `netns` and waits for it.
sdk::Status RunInNetns(const std::string& netns, const std::function<void()>& fn);

}  // namespace hakit::bench
