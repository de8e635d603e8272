// Line-oriented logs: the daemon log and per-module logs. Each line is
// "2026-11-26T11:38:18.123456Z LEVEL message". Appends are atomic per line
// (O_APPEND, one write) so that the daemon and `hakit printi` called from a
// script can share a module log.
#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "hakit/sdk/host_context.h"

namespace hakit {

using sdk::LogLevel;

// "I", "W", "E".
const char* LevelTag(LogLevel level);

// UTC timestamp with microseconds, ISO 8601.
std::string NowUtcIso();

// Appends one formatted line to `path`, creating parent folders. Returns false
// if the file cannot be written (the caller decides whether that matters).
bool AppendLogLine(const std::filesystem::path& path, LogLevel level, std::string_view message);

// A log file plus, optionally, a copy on stderr. Thread-safe.
class Logger {
 public:
  Logger(std::filesystem::path path, bool echo_stderr);
  void Log(LogLevel level, std::string_view message);
  void Info(std::string_view m) { Log(LogLevel::kInfo, m); }
  void Warn(std::string_view m) { Log(LogLevel::kWarning, m); }
  void Error(std::string_view m) { Log(LogLevel::kError, m); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool echo_stderr_;
  std::mutex mu_;
};

}  // namespace hakit
