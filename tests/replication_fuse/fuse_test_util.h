// Shared pieces of the interceptor tests: a sink that replays every
// operation into a mirror directory as a secondary would, temporary
// directories, mount guards that clean up even when a test fails, and a
// fixture mounting a primary over data/ mirrored into mirror/.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hakit/replication/interceptor.h"
#include "hakit/replication/operation.h"
#include "tree_compare.h"

namespace hakit::replication::testing {

// What the sink saw of one operation (without the payload).
struct OpRecord {
  OpKind kind;
  std::string path;
  std::string path2;
  std::uint64_t offset;
  std::uint64_t length;
  std::size_t data_size;
  std::uint32_t flags;
  std::uint32_t mode;
  std::int64_t uid;
  std::int64_t gid;
};

// Applies operations to a mirror directory in Submit() order, on a thread
// of its own; Wait() returns once the ticket is applied (async="none").
class MirrorSink : public OperationSink {
 public:
  explicit MirrorSink(int mirror_fd) : mirror_fd_(mirror_fd), thread_([this] { Run(); }) {}

  ~MirrorSink() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::uint64_t Submit(Operation op) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::uint64_t ticket = ++submitted_;
    log_.push_back({op.kind, op.path, op.path2, op.offset, op.length, op.data.size(), op.flags,
                    op.mode, op.uid, op.gid});
    queue_.emplace_back(ticket, std::move(op));
    cv_.notify_all();
    return ticket;
  }

  sdk::Status Wait(std::uint64_t ticket) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return applied_ >= ticket || stop_; });
    if (fail_waits_) return sdk::Status::Timeout("test sink: replication refused");
    return sdk::Status::Ok();
  }

  // Blocks until everything submitted so far is applied.
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return applied_ >= submitted_; });
  }

  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

  std::vector<OpRecord> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  void ClearLog() {
    std::lock_guard<std::mutex> lock(mu_);
    log_.clear();
  }

  void set_fail_waits(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_waits_ = fail;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto [ticket, op] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      sdk::Status status = ApplyOperation(mirror_fd_, op);
      lock.lock();
      if (!status.ok()) errors_.push_back(status.ToString());
      applied_ = ticket;
      cv_.notify_all();
    }
  }

  int mirror_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::uint64_t, Operation>> queue_;
  std::vector<OpRecord> log_;
  std::vector<std::string> errors_;
  std::uint64_t submitted_ = 0;
  std::uint64_t applied_ = 0;
  bool stop_ = false;
  bool fail_waits_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

// True when some FUSE mount sits exactly at `path`.
inline bool IsFuseMounted(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devs, root, point, word;
    if (!(fields >> id >> parent >> devs >> root >> point)) continue;
    if (point != path) continue;
    while (fields >> word) {
      if (word == "-") {
        std::string fstype;
        fields >> fstype;
        if (fstype.rfind("fuse", 0) == 0) return true;
        break;
      }
    }
  }
  return false;
}

inline int RunCommand(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), ::environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Last line of defence: whatever a test did, no FUSE mount stays at `path`
// (fusermount3 -u -z, then a plain lazy umount).
class MountGuard {
 public:
  explicit MountGuard(std::string path) : path_(std::move(path)) {}
  ~MountGuard() {
    for (int i = 0; i < 4 && IsFuseMounted(path_); ++i) {
      if (RunCommand({"fusermount3", "-u", "-z", path_}) != 0) {
        ::umount2(path_.c_str(), MNT_DETACH);
      }
    }
  }
  MountGuard(const MountGuard&) = delete;
  MountGuard& operator=(const MountGuard&) = delete;

 private:
  std::string path_;
};

// A fresh directory under /tmp, removed with its contents.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/hakit-fuse-XXXXXX";
    char* made = ::mkdtemp(templ);
    if (made != nullptr) path_ = made;
    // Tests switch to unprivileged uids that must reach data/ below us.
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `fn` in a forked child with the given credentials; returns its exit
// code (fn's result), or -1 if it died. fn must only make system calls.
inline int RunAs(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      ::_exit(250);
    }
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline bool WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  return ::close(fd) == 0 && ok;
}

inline std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<open failed: " + std::string(std::strerror(errno)) + ">";
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

// data/ (the replicated dir, mounted over) and mirror/ (the local
// "secondary" fed by a MirrorSink), in a fresh temporary directory.
class InterceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts FUSE)";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    tmp_ = std::make_unique<TempDir>();
    ASSERT_FALSE(tmp_->path().empty());
    data_ = tmp_->path() + "/data";
    mirror_ = tmp_->path() + "/mirror";
    ASSERT_EQ(::mkdir(data_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(mirror_.c_str(), 0755), 0);
    mirror_fd_ = ::open(mirror_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(mirror_fd_, 0);
    sink_ = std::make_unique<MirrorSink>(mirror_fd_);
    guard_ = std::make_unique<MountGuard>(data_);
  }

  void TearDown() override {
    fs_.reset();
    sink_.reset();
    guard_.reset();
    if (mirror_fd_ >= 0) ::close(mirror_fd_);
    tmp_.reset();
  }

  void MountPrimary(bool xattrs = false, OperationSink* sink = nullptr) {
    InterceptorOptions options;
    options.dir = data_;
    options.mode = Interceptor::Mode::kPrimary;
    options.sink = sink != nullptr ? sink : sink_.get();
    options.xattrs = xattrs;
    options.threads = 4;
    auto mounted = Interceptor::Mount(options);
    ASSERT_TRUE(mounted.ok()) << mounted.status().ToString();
    fs_ = std::move(mounted).value();
  }

  // A path through the mount.
  std::string P(const std::string& rel) const { return data_ + "/" + rel; }

  // The real directory under the mount, by a path that bypasses it.
  std::string Real() const { return "/proc/self/fd/" + std::to_string(fs_->real_dir_fd()); }
  std::string R(const std::string& rel) const { return Real() + "/" + rel; }

  // The mirror equals the real directory, and every operation applied.
  void ExpectMirrored(const hakit::testing::TreeCompareOptions& options = {}) {
    sink_->Drain();
    auto errors = sink_->errors();
    EXPECT_TRUE(errors.empty()) << "apply errors:\n" << [&] {
      std::string s;
      for (const auto& e : errors) s += "  " + e + "\n";
      return s;
    }();
    auto diffs = hakit::testing::CompareTrees(Real(), mirror_, options);
    EXPECT_TRUE(diffs.empty()) << "real dir vs mirror:\n" << hakit::testing::JoinDifferences(diffs);
  }

  int CountOps(OpKind kind) {
    int n = 0;
    for (const auto& r : sink_->log()) n += r.kind == kind;
    return n;
  }

  std::unique_ptr<TempDir> tmp_;
  std::string data_;
  std::string mirror_;
  int mirror_fd_ = -1;
  std::unique_ptr<MirrorSink> sink_;
  std::unique_ptr<MountGuard> guard_;
  std::unique_ptr<Interceptor> fs_;
};

}  // namespace hakit::replication::testing
