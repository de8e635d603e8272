#include "hakit/common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace hakit {

const char* LevelTag(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo: return "I";
    case LogLevel::kWarning: return "W";
    case LogLevel::kError: return "E";
  }
  return "?";
}

std::string NowUtcIso() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto us = duration_cast<microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(us % 1000000));
  return buf;
}

bool AppendLogLine(const std::filesystem::path& path, LogLevel level, std::string_view message) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  std::string line = NowUtcIso() + " " + LevelTag(level) + " " + std::string(message) + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return false;
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  return ok;
}

Logger::Logger(std::filesystem::path path, bool echo_stderr)
    : path_(std::move(path)), echo_stderr_(echo_stderr) {}

void Logger::Log(LogLevel level, std::string_view message) {
  std::lock_guard lock(mu_);
  AppendLogLine(path_, level, message);
  if (echo_stderr_) {
    std::fprintf(stderr, "%s %s %.*s\n", NowUtcIso().c_str(), LevelTag(level),
                 static_cast<int>(message.size()), message.data());
  }
}

}  // namespace hakit
