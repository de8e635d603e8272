// Helpers shared by the tests of host/scripts and generic_module: temporary
// node roots, shell scripts written on the fly, and process liveness checks.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hakit::testing_util {

// A fresh directory removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "hakit-test-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes a /bin/sh script with `body` and the given mode.
inline void WriteScript(const std::filesystem::path& path, const std::string& body,
                        mode_t mode = 0755) {
  std::filesystem::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::trunc);
    out << "#!/bin/sh\n" << body << "\n";
  }
  ::chmod(path.c_str(), mode);
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::vector<std::string> ReadLines(const std::filesystem::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// True if `pid` is a live process. A zombie counts as dead: once killed and
// reparented, an orphan may wait for a reaper that never comes in a container.
inline bool IsAlive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  return stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

// Waits up to `limit` for `pid` to die (signals are delivered asynchronously).
inline bool WaitGone(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (IsAlive(pid)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// The pid a script wrote into `path`, or -1.
inline pid_t ReadPid(const std::filesystem::path& path) {
  std::string text = ReadFile(path);
  try {
    return static_cast<pid_t>(std::stol(text));
  } catch (...) {
    return -1;
  }
}

inline long long MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace hakit::testing_util
