#include "hakit/scripts/run_process.h"

#include <thread>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::scripts {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// SIGTERM gives the group this long to clean up before SIGKILL.
constexpr milliseconds kKillGrace{1000};
// Once the program has exited and its group has been killed, the pipes
// normally reach EOF at once. A process that left the group (setsid) may hold
// them open forever; we wait this long for it, then stop reading.
constexpr milliseconds kDrainGrace{100};
// Without a pidfd (kernel < 5.3) the leader's exit is noticed by polling.
constexpr milliseconds kExitPollTick{20};

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// strerror() shares a static buffer between threads; the GNU strerror_r does
// not.
std::string ErrnoText(int err) {
  char buf[256];
  return ::strerror_r(err, buf, sizeof buf);
}

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

int MillisUntil(Clock::time_point when) {
  auto left = std::chrono::ceil<milliseconds>(when - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 24 * 3600 * 1000));
}

sdk::CommandResult StartFailure(std::string error) {
  sdk::CommandResult result;
  result.outcome = sdk::CommandResult::Outcome::kFailedToStart;
  result.error = std::move(error);
  return result;
}

// Why `path` cannot be executed, or nullopt if it can. Checked before
// spawning so that the error names the file rather than a bare errno, and so
// that a directory is told apart from a missing file.
std::optional<std::string> CheckExecutable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoText(errno);
  if (S_ISDIR(st.st_mode)) return ErrnoText(EISDIR);
  if (::access(path.c_str(), X_OK) != 0) return ErrnoText(errno);
  return std::nullopt;
}

// The path to hand to posix_spawn for argv[0], or the reason there is none.
// Lookup uses the child's PATH, not the daemon's: what the script would see.
sdk::Result<std::string> ResolveProgram(const std::string& arg0, const std::string& path_env,
                                        const std::string& working_dir) {
  if (arg0.empty()) return sdk::Status::InvalidArgument("cannot run '': empty program name");
  if (arg0.find('/') != std::string::npos) {
    // The child changes directory before exec, so a relative path is
    // relative to working_dir.
    std::string path = (arg0[0] != '/' && !working_dir.empty()) ? working_dir + "/" + arg0 : arg0;
    if (auto why = CheckExecutable(path)) {
      return sdk::Status::NotFound("cannot run '" + path + "': " + *why);
    }
    return path;
  }
  std::optional<std::string> refused;  // first match that exists but cannot run
  std::size_t begin = 0;
  while (begin <= path_env.size()) {
    std::size_t end = path_env.find(':', begin);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(begin, end - begin);
    begin = end + 1;
    // Empty or relative entries would mean "the current directory": never
    // for a daemon running as root.
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = dir + "/" + arg0;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (!refused) refused = "cannot run '" + candidate + "': " + ErrnoText(errno);
  }
  if (refused) return sdk::Status::NotFound(*refused);
  return sdk::Status::NotFound("cannot run '" + arg0 + "': not found in PATH (" + path_env + ")");
}

// Moves a descriptor above stderr so that the child's dup2() onto 0, 1 and 2
// cannot clobber another pipe end (possible only if the daemon closed its
// standard descriptors).
bool MoveAboveStdio(UniqueFd* fd) {
  if (fd->get() > STDERR_FILENO) return true;
  int moved = ::fcntl(fd->get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) return false;
  fd->Reset(moved);
  return true;
}

// Both ends O_CLOEXEC: a child spawned concurrently by another thread must
// not inherit our write end, or our reader would wait for that child too.
bool MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  if (!MoveAboveStdio(read_end) || !MoveAboveStdio(write_end)) return false;
  // The reader never blocks: it drains what poll() reported, then returns.
  return ::fcntl(read_end->get(), F_SETFL, O_NONBLOCK) == 0;
}

// One output pipe, split into lines for the sink.
class LineReader {
 public:
  LineReader(OutputStream stream, UniqueFd fd, const OutputSink& sink)
      : stream_(stream), fd_(std::move(fd)), sink_(sink) {}

  bool open() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }
  OutputStream stream() const { return stream_; }
  // Gives up the pipe (and what is buffered of an unfinished line).
  UniqueFd Release(std::string* pending) {
    *pending = std::move(pending_);
    pending_.clear();
    return std::move(fd_);
  }

  // Reads what is available now. Closes the pipe at EOF or on error.
  void ReadAvailable() {
    char buf[16 * 1024];
    while (fd_.valid()) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n > 0) {
        pending_.append(buf, static_cast<std::size_t>(n));
        EmitCompleteLines();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      Close();  // EOF or a read error: nothing more will come
    }
  }

  void Prepend(const std::string& text) { pending_.insert(0, text); }

  // Delivers a last line without newline and stops reading.
  void Close() {
    fd_.Reset();
    if (!pending_.empty()) Emit(pending_);
    pending_.clear();
  }

 private:
  void EmitCompleteLines() {
    std::size_t start = 0;
    for (;;) {
      std::size_t nl = pending_.find('\n', start);
      if (nl == std::string::npos) break;
      Emit(std::string_view(pending_).substr(start, nl - start));
      start = nl + 1;
    }
    pending_.erase(0, start);
    // Bounded memory whatever a program writes without newlines.
    while (pending_.size() >= kMaxLineBytes) {
      Emit(std::string_view(pending_).substr(0, kMaxLineBytes));
      pending_.erase(0, kMaxLineBytes);
    }
  }

  void Emit(std::string_view line) {
    if (!sink_) return;
    // A throwing sink must not unwind past a running child: the child would
    // be left unreaped and its group unkilled.
    try {
      sink_(stream_, line);
    } catch (...) {
    }
  }

  OutputStream stream_;
  UniqueFd fd_;
  const OutputSink& sink_;
  std::string pending_;
};

// Reads the pipes that outlived their program until their last writer closes
// them, on a thread of its own. Blocking reads: nothing else waits for it.
void DetachReaders(LineReader (&readers)[2], const OutputSink& sink) {
  for (LineReader& reader : readers) {
    if (!reader.open()) continue;
    std::string pending;
    UniqueFd fd = reader.Release(&pending);
    int raw = fd.get();
    ::fcntl(raw, F_SETFL, ::fcntl(raw, F_GETFL) & ~O_NONBLOCK);
    std::thread([fd = std::move(fd), stream = reader.stream(), sink = OutputSink(sink),
                 pending = std::move(pending)]() mutable {
      LineReader late(stream, std::move(fd), sink);
      late.Prepend(pending);
      while (late.open()) late.ReadAvailable();
    }).detach();
  }
}

// posix_spawn's C objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  bool actions_ready = false;
  bool attr_ready = false;
  ~SpawnSetup() {
    if (actions_ready) ::posix_spawn_file_actions_destroy(&actions);
    if (attr_ready) ::posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

sdk::CommandResult RunProcess(const sdk::Command& command,
                              const std::map<std::string, std::string>& base_env,
                              const OutputSink& sink) {
  if (command.argv.empty()) return StartFailure("cannot run a command with an empty argv");

  // The environment: exactly base_env + extra_env, plus a PATH.
  std::map<std::string, std::string> env = base_env;
  for (const auto& [key, value] : command.extra_env) env[key] = value;
  if (env.find("PATH") == env.end()) {
    const char* daemon_path = std::getenv("PATH");
    env["PATH"] = (daemon_path != nullptr && *daemon_path != '\0') ? daemon_path : kDefaultPath;
  }
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [key, value] : env) {
    // A name with '=' cannot be expressed in an environment block; passing
    // it would silently define a different variable.
    if (key.empty() || key.find('=') != std::string::npos) continue;
    env_strings.push_back(key + "=" + value);
  }
  std::vector<char*> envp;
  envp.reserve(env_strings.size() + 1);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  if (!command.working_dir.empty()) {
    struct stat st {};
    if (::stat(command.working_dir.c_str(), &st) != 0) {
      return StartFailure("cannot use working directory '" + command.working_dir +
                          "': " + ErrnoText(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
      return StartFailure("cannot use working directory '" + command.working_dir +
                          "': " + ErrnoText(ENOTDIR));
    }
  }

  sdk::Result<std::string> program =
      ResolveProgram(command.argv[0], env["PATH"], command.working_dir);
  if (!program.ok()) return StartFailure(program.status().message());

  std::vector<std::string> args = command.argv;
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  UniqueFd out_read, out_write, err_read, err_write;
  if (!MakePipe(&out_read, &out_write) || !MakePipe(&err_read, &err_write)) {
    return StartFailure("cannot run '" + *program + "': pipe: " + ErrnoText(errno));
  }

  SpawnSetup setup;
  int rc = ::posix_spawn_file_actions_init(&setup.actions);
  if (rc == 0) {
    setup.actions_ready = true;
    rc = ::posix_spawn_file_actions_addopen(&setup.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&setup.actions, out_write.get(), 1);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&setup.actions, err_write.get(), 2);
  // Descriptors opened without O_CLOEXEC (Boost.Asio's sockets are) must not
  // leak into scripts, or into the applications they leave running: an
  // application holding hakitd's listening socket would keep it open after
  // the daemon died.
  if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);
  if (rc == 0 && !command.working_dir.empty()) {
    rc = ::posix_spawn_file_actions_addchdir_np(&setup.actions, command.working_dir.c_str());
  }
  if (rc == 0) {
    rc = ::posix_spawnattr_init(&setup.attr);
    if (rc == 0) setup.attr_ready = true;
  }
  if (rc == 0) {
    // Own process group: the timeout and the leftover cleanup kill the group.
    // Empty mask and default dispositions: the daemon's blocked or ignored
    // signals (SIGPIPE, SIGTERM on a signal thread) must not leak into
    // scripts, or they could not be stopped.
    sigset_t empty_mask, all_signals;
    ::sigemptyset(&empty_mask);
    ::sigfillset(&all_signals);
    rc = ::posix_spawnattr_setflags(
        &setup.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) rc = ::posix_spawnattr_setpgroup(&setup.attr, 0);
    if (rc == 0) rc = ::posix_spawnattr_setsigmask(&setup.attr, &empty_mask);
    if (rc == 0) rc = ::posix_spawnattr_setsigdefault(&setup.attr, &all_signals);
  }
  if (rc != 0) return StartFailure("cannot run '" + *program + "': spawn setup: " + ErrnoText(rc));

  pid_t pid = -1;
  // glibc's posix_spawn uses clone(CLONE_VM|CLONE_VFORK) and reports exec
  // failures through its return value; the child does nothing else that is
  // unsafe between clone and exec.
  rc = ::posix_spawn(&pid, program->c_str(), &setup.actions, &setup.attr, argv.data(), envp.data());
  Clock::time_point start = Clock::now();
  out_write.Reset();
  err_write.Reset();
  if (rc != 0) return StartFailure("cannot run '" + *program + "': " + ErrnoText(rc));

  // A pidfd makes the leader's exit a poll() event alongside its output. The
  // pid cannot be recycled before we reap it, so opening it late is safe.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  LineReader readers[2] = {LineReader(OutputStream::kStdout, std::move(out_read), sink),
                           LineReader(OutputStream::kStderr, std::move(err_read), sink)};

  std::optional<Clock::time_point> deadline;
  if (command.timeout.count() > 0) deadline = start + command.timeout;
  bool timed_out = false;
  bool kill_sent = false;
  Clock::time_point kill_at{};

  for (;;) {
    Clock::time_point now = Clock::now();
    if (deadline && !timed_out && now >= *deadline) {
      timed_out = true;
      ::kill(-pid, SIGTERM);
      kill_at = now + kKillGrace;
    }
    if (timed_out && !kill_sent && now >= kill_at) {
      ::kill(-pid, SIGKILL);
      kill_sent = true;
    }

    // Has the leader exited? WNOWAIT leaves it a zombie, which keeps its pid
    // (our process group id) reserved while we kill the rest of the group.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      break;
    }

    int wait_ms = -1;
    if (deadline && !timed_out) wait_ms = MillisUntil(*deadline);
    if (timed_out && !kill_sent) wait_ms = MillisUntil(kill_at);
    if (!pidfd.valid()) {
      int tick = static_cast<int>(kExitPollTick.count());
      wait_ms = wait_ms < 0 ? tick : std::min(wait_ms, tick);
    }

    pollfd fds[3];
    nfds_t count = 0;
    LineReader* polled[2] = {nullptr, nullptr};
    for (LineReader& reader : readers) {
      if (!reader.open()) continue;
      polled[count] = &reader;
      fds[count++] = pollfd{reader.fd(), POLLIN, 0};
    }
    nfds_t readers_polled = count;
    if (pidfd.valid()) fds[count++] = pollfd{pidfd.get(), POLLIN, 0};

    int ready = ::poll(fds, count, wait_ms);
    if (ready < 0 && errno != EINTR) {
      // Cannot wait any more: make sure the leader ends, then reap it.
      ::kill(-pid, SIGKILL);
      break;
    }
    for (nfds_t i = 0; ready > 0 && i < readers_polled; ++i) {
      if (fds[i].revents != 0) polled[i]->ReadAvailable();
    }
  }

  // After a timeout the whole group goes. After a normal exit what the
  // program left running stays: start scripts launch the application with
  // `app &`, and that process is the point of the script.
  if (timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sdk::CommandResult result;
  result.duration = std::chrono::duration_cast<milliseconds>(Clock::now() - start);

  // Collect what is still buffered in the pipes. A process that escaped the
  // group may hold a pipe open forever: read for a short grace, then stop.
  Clock::time_point drain_until = Clock::now() + kDrainGrace;
  for (;;) {
    pollfd fds[2];
    LineReader* polled[2] = {nullptr, nullptr};
    nfds_t count = 0;
    for (LineReader& reader : readers) {
      if (!reader.open()) continue;
      polled[count] = &reader;
      fds[count++] = pollfd{reader.fd(), POLLIN, 0};
    }
    if (count == 0) break;
    int wait_ms = MillisUntil(drain_until);
    int ready = ::poll(fds, count, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      // A process left running (the application a start script launched)
      // still holds the pipes. Closing our end would kill it with SIGPIPE at
      // its next write, so a detached reader keeps forwarding its output
      // until it closes them.
      for (LineReader& reader : readers) {
        if (reader.open()) reader.ReadAvailable();
      }
      DetachReaders(readers, sink);
      break;
    }
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents != 0) polled[i]->ReadAvailable();
    }
  }

  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (timed_out) {
    result.outcome = sdk::CommandResult::Outcome::kTimedOut;
  } else if (WIFEXITED(status)) {
    result.outcome = sdk::CommandResult::Outcome::kExited;
  } else {
    result.outcome = sdk::CommandResult::Outcome::kSignaled;
  }
  if (!result.ok()) {
    if (timed_out) {
      result.error = "timed out after " + std::to_string(command.timeout.count()) +
                     " ms; process group killed";
    } else {
      result.error = DescribeResult(result);
    }
  }
  return result;
}

std::string DescribeResult(const sdk::CommandResult& result) {
  using Outcome = sdk::CommandResult::Outcome;
  switch (result.outcome) {
    case Outcome::kExited:
      return "exited with code " + std::to_string(result.exit_code);
    case Outcome::kSignaled:
      return "killed by signal " + std::to_string(result.signal) + " (" +
             SignalName(result.signal) + ")";
    case Outcome::kTimedOut:
      return result.error.empty() ? std::string("timed out") : result.error;
    case Outcome::kFailedToStart:
      return result.error.empty() ? std::string("failed to start") : result.error;
  }
  return "unknown outcome";
}

}  // namespace hakit::scripts
