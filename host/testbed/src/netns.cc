// Named network namespaces: opening them, entering them from a thread, and
// finding the processes inside.
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "internal.h"

namespace hakit::testbed::internal {

using sdk::Result;
using sdk::Status;

Status CheckNetnsName(const std::string& name) {
  if (name.empty()) return Status::InvalidArgument("no network namespace given");
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return Status::InvalidArgument("bad network namespace name '" + name + "'");
  }
  return Status::Ok();
}

Result<int> OpenNetns(const std::string& name) {
  Status check = CheckNetnsName(name);
  if (!check.ok()) return check;
  std::string path = std::string(kNetnsDir) + "/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    std::string message = "network namespace '" + name + "' (" + path + "): " + strerror(e);
    return e == ENOENT ? Status::NotFound(message) : Status::IoError(message);
  }
  return fd;
}

Status RunInNetns(const std::string& netns, const std::function<void()>& fn) {
  Result<int> fd = OpenNetns(netns);
  if (!fd.ok()) return fd.status();
  Status status;
  // A thread of its own: setns(CLONE_NEWNET) moves only the calling thread,
  // and this one ends with the call, so no caller thread is ever moved.
  std::thread thread([&] {
    if (setns(*fd, CLONE_NEWNET) < 0) {
      status = Status::IoError("entering network namespace '" + netns + "': " + strerror(errno));
      return;
    }
    fn();
  });
  thread.join();
  close(*fd);
  return status;
}

ino_t NetnsInode(const std::string& name) {
  struct stat st;
  std::string path = std::string(kNetnsDir) + "/" + name;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::vector<pid_t> PidsInNetns(const std::set<ino_t>& inodes) {
  std::vector<pid_t> pids;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return pids;
  const pid_t self = getpid();
  while (dirent* entry = readdir(dir)) {
    char* end;
    long pid = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self) continue;
    struct stat st;
    std::string path = std::string("/proc/") + entry->d_name + "/ns/net";
    // Fails for zombies (they have left every namespace) and for processes
    // that exited meanwhile: both are rightly skipped.
    if (stat(path.c_str(), &st) == 0 && inodes.count(st.st_ino) > 0) pids.push_back(pid_t(pid));
  }
  closedir(dir);
  return pids;
}

int KillAllInNetns(const std::vector<std::string>& names) {
  std::set<ino_t> inodes;
  for (const std::string& name : names) {
    if (ino_t ino = NetnsInode(name); ino != 0) inodes.insert(ino);
  }
  if (inodes.empty()) return 0;
  // Repeat: a parent killed in the same pass may have forked a moment before.
  std::vector<pid_t> pids;
  for (int round = 0; round < 50; ++round) {
    pids = PidsInNetns(inodes);
    if (pids.empty()) return 0;
    for (pid_t pid : pids) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return int(pids.size());
}

}  // namespace hakit::testbed::internal
