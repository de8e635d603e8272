// Starting processes inside a namespace. Everything the child needs is
// prepared before fork(): the caller may have other threads, so between fork
// and exec the child may only make async-signal-safe calls (no allocation).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace hakit::testbed {

std::string ExitStatus::ToString() const {
  if (exited()) return "exited with code " + std::to_string(code);
  return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

namespace internal {
namespace {

using sdk::Result;
using sdk::Status;

// The step a child failed at, sent to the parent through the CLOEXEC pipe.
enum Stage : int {
  kSetsid = 1,
  kStdio,
  kSetns,
  kUnshareMount,
  kMakePrivate,
  kMkdir,
  kBindMount,
  kRemountReadOnly,
  kChdir,
  kExec,
};

struct ChildError {
  int stage;
  int index;  // which bind mount / mkdir
  int error;  // errno
};

// One bind mount, as C strings the child can use without allocating.
struct PreparedMount {
  std::vector<std::string> mkdirs;  // the target and its parents, outermost first
  std::string source;
  std::string target;
  bool read_only;
};

void Report(int fd, int stage, int index) {
  ChildError e{stage, index, errno};
  ssize_t ignored = write(fd, &e, sizeof e);
  (void)ignored;
  _exit(127);
}

// Places fd on `target` without CLOEXEC, even if it is already there.
bool PlaceFd(int fd, int target) {
  if (fd == target) return fcntl(fd, F_SETFD, 0) == 0;
  return dup2(fd, target) == target;
}

[[noreturn]] void ChildMain(const ChildSpec& spec, int netns_fd, int null_fd, int err_fd,
                            const std::vector<PreparedMount>& mounts,
                            const std::vector<const char*>& candidates,
                            const std::vector<char*>& argv, const std::vector<char*>& envp) {
  // Start from a clean signal state: the caller may block or ignore signals
  // (a daemon, gtest), and ignored dispositions survive exec.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) sigaction(s, &dfl, nullptr);  // fails harmlessly for some

  // A session of its own: a group to kill as a whole, and no controlling
  // terminal whose signals would reach it.
  if (setsid() < 0) Report(err_fd, kSetsid, 0);

  int out = spec.stdout_fd >= 0 ? spec.stdout_fd : null_fd;
  int err = spec.stderr_fd >= 0 ? spec.stderr_fd : null_fd;
  // dup2 onto 1 before 2: if err == 1 it must be copied after 1 is set.
  if (!PlaceFd(null_fd, 0) || !PlaceFd(out, 1) || !PlaceFd(err == out ? 1 : err, 2)) {
    Report(err_fd, kStdio, 0);
  }

  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) Report(err_fd, kSetns, 0);

  if (spec.private_mounts) {
    if (unshare(CLONE_NEWNS) < 0) Report(err_fd, kUnshareMount, 0);
    // Without this our bind mounts would propagate back into the caller's
    // namespace through shared mounts (systemd makes "/" shared).
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
      Report(err_fd, kMakePrivate, 0);
    }
    // As `ip netns exec` does: a sysfs mounted from inside the namespace lists
    // its interfaces. Best effort, like there (a container may forbid it).
    if (netns_fd >= 0) {
      umount2("/sys", MNT_DETACH);
      mount("sysfs", "/sys", "sysfs", 0, nullptr);
    }
    for (size_t i = 0; i < mounts.size(); ++i) {
      const PreparedMount& m = mounts[i];
      for (const std::string& dir : m.mkdirs) {
        if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) Report(err_fd, kMkdir, int(i));
      }
      if (mount(m.source.c_str(), m.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
        Report(err_fd, kBindMount, int(i));
      }
      if (m.read_only && mount(nullptr, m.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY,
                               nullptr) < 0) {
        Report(err_fd, kRemountReadOnly, int(i));
      }
    }
  }

  if (!spec.working_dir.empty() && chdir(spec.working_dir.c_str()) < 0) Report(err_fd, kChdir, 0);

  // Nothing the caller opened without CLOEXEC leaks into the program; err_fd
  // itself closes on exec, which is how the parent learns of success.
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);

  // execvp's rules: keep going past ENOENT/ENOTDIR, remember EACCES.
  int error = ENOENT;
  bool saw_eacces = false;
  for (const char* path : candidates) {
    execve(path, argv.data(), envp.data());
    error = errno;
    if (error == EACCES) {
      saw_eacces = true;
    } else if (error != ENOENT && error != ENOTDIR) {
      break;
    }
  }
  errno = (saw_eacces && (error == ENOENT || error == ENOTDIR)) ? EACCES : error;
  Report(err_fd, kExec, 0);
  _exit(127);  // not reached
}

std::string Describe(const ChildSpec& spec, const ChildError& e) {
  std::string what;
  switch (e.stage) {
    case kSetsid:
      what = "setsid";
      break;
    case kStdio:
      what = "redirecting stdio";
      break;
    case kSetns:
      what = "entering network namespace '" + spec.netns + "'";
      break;
    case kUnshareMount:
      what = "creating a mount namespace";
      break;
    case kMakePrivate:
      what = "making / private";
      break;
    case kMkdir:
      what = "creating bind mount target " + spec.bind_mounts[e.index].target;
      break;
    case kBindMount:
      what = "bind mounting " + spec.bind_mounts[e.index].source + " on " +
             spec.bind_mounts[e.index].target;
      break;
    case kRemountReadOnly:
      what = "making " + spec.bind_mounts[e.index].target + " read-only";
      break;
    case kChdir:
      what = "changing to " + spec.working_dir;
      break;
    case kExec:
      what = "exec";
      break;
    default:
      what = "step " + std::to_string(e.stage);
      break;
  }
  return what + ": " + strerror(e.error);
}

// True once `pid` has exited, without reaping it.
bool Exited(pid_t pid) {
  siginfo_t info{};
  return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

}  // namespace

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

ExitStatus FromWaitStatus(int wait_status) {
  ExitStatus s;
  if (WIFEXITED(wait_status)) {
    s.code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    s.signal = WTERMSIG(wait_status);
  }
  return s;
}

Result<pid_t> StartChild(const ChildSpec& spec) {
  const std::string who =
      "starting '" + JoinArgv(spec.argv) + "'" + (spec.netns.empty() ? "" : " in " + spec.netns);
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return Status::InvalidArgument(who + ": empty command");
  }
  for (const BindMount& b : spec.bind_mounts) {
    if (b.source.empty() || b.target.empty() || b.target[0] != '/') {
      return Status::InvalidArgument(who + ": a bind mount needs a source and an absolute target");
    }
  }
  if (!spec.bind_mounts.empty() && !spec.private_mounts) {
    return Status::InvalidArgument(who + ": bind mounts need a private mount namespace");
  }

  // Where argv[0] may be: itself if it names a path, else each PATH entry.
  std::vector<std::string> candidate_paths;
  const std::string& program = spec.argv[0];
  if (program.find('/') != std::string::npos) {
    candidate_paths.push_back(program);
  } else {
    auto it = spec.env.find("PATH");
    std::string path = it != spec.env.end() ? it->second : kDefaultPath;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find(':', start);
      if (end == std::string::npos) end = path.size();
      // An empty entry means the current directory: never wanted here.
      if (end > start) candidate_paths.push_back(path.substr(start, end - start) + "/" + program);
      start = end + 1;
    }
  }
  std::vector<const char*> candidates;
  for (const std::string& c : candidate_paths) candidates.push_back(c.c_str());

  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::vector<PreparedMount> mounts;
  for (const BindMount& b : spec.bind_mounts) {
    PreparedMount m{{}, b.source, b.target, b.read_only};
    for (size_t pos = 1; pos <= b.target.size(); ++pos) {
      if (pos == b.target.size() || b.target[pos] == '/') {
        if (b.target[pos - 1] != '/') m.mkdirs.push_back(b.target.substr(0, pos));
      }
    }
    mounts.push_back(std::move(m));
  }

  int netns_fd = -1;
  if (!spec.netns.empty()) {
    Result<int> fd = OpenNetns(spec.netns);
    if (!fd.ok()) return fd.status().WithContext(who);
    netns_fd = *fd;
  }
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  int pipe_fds[2];
  if (null_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) < 0) {
    Status s = Status::IoError(who + ": " + strerror(errno));
    if (netns_fd >= 0) close(netns_fd);
    if (null_fd >= 0) close(null_fd);
    return s;
  }

  pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    ChildMain(spec, netns_fd, null_fd, pipe_fds[1], mounts, candidates, argv, envp);
  }
  int fork_errno = errno;
  close(pipe_fds[1]);
  if (netns_fd >= 0) close(netns_fd);
  close(null_fd);
  if (pid < 0) {
    close(pipe_fds[0]);
    return Status::IoError(who + ": fork: " + strerror(fork_errno));
  }

  // EOF means exec succeeded (the pipe closed on exec); a record means not.
  ChildError e{};
  size_t got = 0;
  while (got < sizeof e) {
    ssize_t n = read(pipe_fds[0], reinterpret_cast<char*>(&e) + got, sizeof e - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  close(pipe_fds[0]);
  if (got == 0) return pid;

  int ignored;
  while (waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
  }
  if (got < sizeof e) return Status::IoError(who + ": the child died before exec");
  std::string message = who + ": " + Describe(spec, e);
  if (e.stage == kExec && e.error == ENOENT) return Status::NotFound(message);
  if (e.stage == kSetns || e.stage == kChdir) {
    return e.error == ENOENT ? Status::NotFound(message) : Status::IoError(message);
  }
  return Status::IoError(message);
}

Result<CommandOutput> RunCaptured(ChildSpec spec, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return Status::IoError(std::string("pipe: ") + strerror(errno));
  spec.stdout_fd = fds[1];
  spec.stderr_fd = fds[1];
  Result<pid_t> started = StartChild(spec);
  close(fds[1]);
  if (!started.ok()) {
    close(fds[0]);
    return started.status();
  }
  const pid_t pid = *started;

  CommandOutput result;
  std::optional<int> wait_status;
  bool eof = false;
  bool timed_out = false;
  // Read until EOF; once the child itself has exited, a background grandchild
  // that still holds the pipe must not keep us waiting: its group is killed.
  while (!eof) {
    auto now = Clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    int wait_ms =
        int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, std::min(wait_ms, 20) + 1);
    if (r > 0) {
      char buf[4096];
      ssize_t n = read(fds[0], buf, sizeof buf);
      if (n > 0) {
        result.output.append(buf, size_t(n));
      } else if (n == 0 || errno != EINTR) {
        eof = true;
      }
    }
    if (!wait_status && Exited(pid)) {
      // Kill the leftovers of the group before reaping the leader: while it
      // is a zombie its pid, hence the group id, cannot be reused.
      kill(-pid, SIGKILL);
      int ws;
      while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
      }
      wait_status = ws;
    }
  }
  close(fds[0]);
  // EOF can come before the exit (a program that closes its output first):
  // it still gets until the deadline to finish.
  while (!timed_out && !wait_status && !Exited(pid)) {
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (timed_out || !wait_status) kill(-pid, SIGKILL);
  if (!wait_status) {
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    wait_status = ws;
  }
  if (timed_out) {
    return Status::Timeout("'" + JoinArgv(spec.argv) + "'" +
                           (spec.netns.empty() ? "" : " in " + spec.netns) +
                           " still running after " + std::to_string(timeout.count()) +
                           " ms; output so far: " + result.output.substr(0, 500));
  }
  result.status = FromWaitStatus(*wait_status);
  return result;
}

}  // namespace internal
}  // namespace hakit::testbed
