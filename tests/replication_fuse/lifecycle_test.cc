// Mount life cycle: read-only (secondary) mounts, stale mounts of a crashed
// daemon, unmounting with files open, refusing a second mount.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <string>

#include "fuse_test_util.h"

namespace hakit::replication::testing {
namespace {

constexpr long kFuseSuperMagic = 0x65735546;

class LifecycleTest : public InterceptorTest {
 protected:
  sdk::Result<std::unique_ptr<Interceptor>> MountMode(Interceptor::Mode mode,
                                                      OperationSink* sink, bool xattrs = false) {
    InterceptorOptions options;
    options.dir = data_;
    options.mode = mode;
    options.sink = sink;
    options.xattrs = xattrs;
    options.threads = 2;
    return Interceptor::Mount(options);
  }

  bool IsFuseFs(const std::string& path) {
    struct statfs sfs{};
    return ::statfs(path.c_str(), &sfs) == 0 && sfs.f_type == kFuseSuperMagic;
  }
};

Operation Op(OpKind kind, std::string path) {
  Operation op;
  op.kind = kind;
  op.path = std::move(path);
  return op;
}

TEST_F(LifecycleTest, ReadOnlyMountRefusesChangesAndShowsTheApplier) {
  ASSERT_TRUE(WriteFile(data_ + "/f", "old content"));
  ASSERT_EQ(::mkdir((data_ + "/d").c_str(), 0755), 0);
  auto mounted = MountMode(Interceptor::Mode::kReadOnly, nullptr, /*xattrs=*/true);
  ASSERT_TRUE(mounted.ok()) << mounted.status().ToString();
  fs_ = std::move(mounted).value();
  EXPECT_EQ(fs_->mode(), Interceptor::Mode::kReadOnly);
  EXPECT_TRUE(IsFuseFs(data_));

  EXPECT_EQ(ReadFile(P("f")), "old content");
  EXPECT_EQ(::open(P("f").c_str(), O_WRONLY), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::open(P("new").c_str(), O_WRONLY | O_CREAT, 0644), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink(P("f").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::chmod(P("f").c_str(), 0600), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::mkdir(P("d2").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::rename(P("f").c_str(), P("g").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::truncate(P("f").c_str(), 0), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::setxattr(P("f").c_str(), "user.x", "1", 1, 0), -1);
  EXPECT_EQ(errno, EROFS);

  // The applier writes below the mount, through the held descriptor; local
  // readers see it at once, even through a descriptor opened before.
  int reader = ::open(P("f").c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);
  char buf[64] = {};
  ASSERT_EQ(::pread(reader, buf, sizeof buf, 0), 11);
  Operation write = Op(OpKind::kWrite, "f");
  write.data = "NEW content, longer";
  ASSERT_TRUE(ApplyOperation(fs_->real_dir_fd(), write).ok());
  Operation create = Op(OpKind::kCreate, "d/g");
  create.mode = 0640;
  ASSERT_TRUE(ApplyOperation(fs_->real_dir_fd(), create).ok());
  EXPECT_EQ(ReadFile(P("f")), "NEW content, longer");
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(::pread(reader, buf, sizeof buf, 0), 19);
  EXPECT_EQ(std::string(buf), "NEW content, longer");
  ::close(reader);
  struct stat st{};
  EXPECT_EQ(::stat(P("d/g").c_str(), &st), 0);
  Operation remove = Op(OpKind::kUnlink, "d/g");
  ASSERT_TRUE(ApplyOperation(fs_->real_dir_fd(), remove).ok());
  EXPECT_EQ(::stat(P("d/g").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(LifecycleTest, StaleMountOfACrashedDaemonIsCleaned) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    InterceptorOptions options;
    options.dir = data_;
    options.threads = 1;
    auto mounted = Interceptor::Mount(options);
    char ok = mounted.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    while (true) ::pause();
  }
  ::close(ready[1]);
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(ok, 'y');
  EXPECT_TRUE(IsFuseMounted(data_));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  struct statfs sfs{};
  EXPECT_EQ(::statfs(data_.c_str(), &sfs), -1);
  EXPECT_EQ(errno, ENOTCONN);
  sdk::Status cleaned = Interceptor::CleanupStaleMount(data_);
  ASSERT_TRUE(cleaned.ok()) << cleaned.ToString();
  EXPECT_FALSE(IsFuseMounted(data_));
  ASSERT_EQ(::statfs(data_.c_str(), &sfs), 0);
  EXPECT_NE(sfs.f_type, kFuseSuperMagic);
  // Nothing to clean: still fine.
  EXPECT_TRUE(Interceptor::CleanupStaleMount(data_).ok());
}

TEST_F(LifecycleTest, MountCleansAStaleMountItself) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    InterceptorOptions options;
    options.dir = data_;
    options.threads = 1;
    auto mounted = Interceptor::Mount(options);
    ::_exit(mounted.ok() ? 0 : 1);  // dies without unmounting
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct statfs sfs{};
  EXPECT_EQ(::statfs(data_.c_str(), &sfs), -1);
  EXPECT_EQ(errno, ENOTCONN);
  auto mounted = MountMode(Interceptor::Mode::kPrimary, sink_.get());
  ASSERT_TRUE(mounted.ok()) << mounted.status().ToString();
  fs_ = std::move(mounted).value();
  ASSERT_TRUE(WriteFile(P("after"), "works"));
  EXPECT_EQ(ReadFile(P("after")), "works");
  ExpectMirrored();
}

// Descriptors of this process open on the real file `rel` (the daemon's).
int CountRealDescriptors(int dir_fd, const char* rel) {
  struct stat target{};
  if (::fstatat(dir_fd, rel, &target, 0) != 0) return -1;
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = std::atoi(entry.path().filename().c_str());
    struct stat st{};
    if (::fstat(fd, &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino) ++count;
  }
  return count;
}

TEST_F(LifecycleTest, UnmountWithAnOpenFileIsLazyAndDoesNotHang) {
  ASSERT_NO_FATAL_FAILURE(MountPrimary());
  int fd = ::open(P("open").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "before", 6), 6);
  EXPECT_EQ(CountRealDescriptors(fs_->real_dir_fd(), "open"), 1);
  auto start = std::chrono::steady_clock::now();
  sdk::Status unmounted = fs_->Unmount();
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(unmounted.ok()) << unmounted.ToString();
  EXPECT_LT(took, 5.0);
  EXPECT_FALSE(IsFuseMounted(data_));
  EXPECT_FALSE(IsFuseFs(data_));
  // The interceptor let go of the real file it held for the application.
  EXPECT_EQ(CountRealDescriptors(fs_->real_dir_fd(), "open"), 0);
  // The descriptor opened through the mount is dead, not hanging.
  EXPECT_EQ(::write(fd, "after", 5), -1);
  EXPECT_TRUE(errno == ENOTCONN || errno == ECONNABORTED) << std::strerror(errno);
  // close(2) may report the dead connection too; the descriptor is freed.
  if (::close(fd) != 0) {
    EXPECT_TRUE(errno == ENOTCONN || errno == ECONNABORTED) << std::strerror(errno);
  }
  // The real directory is back at its path, with what was written.
  EXPECT_EQ(ReadFile(data_ + "/open"), "before");
  EXPECT_TRUE(fs_->Unmount().ok());
  // The real descriptor stays usable after Unmount().
  struct stat st{};
  EXPECT_EQ(::fstatat(fs_->real_dir_fd(), "open", &st, 0), 0);
}

TEST_F(LifecycleTest, RefusesASecondLiveMountAndRemountsAfterUnmount) {
  ASSERT_NO_FATAL_FAILURE(MountPrimary());
  auto second = MountMode(Interceptor::Mode::kPrimary, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("already"), std::string::npos)
      << second.status().ToString();
  ASSERT_TRUE(WriteFile(P("one"), "1"));
  ASSERT_TRUE(fs_->Unmount().ok());
  fs_.reset();
  auto again = MountMode(Interceptor::Mode::kPrimary, sink_.get());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  fs_ = std::move(again).value();
  EXPECT_EQ(ReadFile(P("one")), "1");
  ASSERT_TRUE(WriteFile(P("two"), "2"));
  ExpectMirrored();
}

TEST_F(LifecycleTest, TwoMountsInOneProcess) {
  ASSERT_NO_FATAL_FAILURE(MountPrimary());
  std::string other = tmp_->path() + "/other", other_mirror = tmp_->path() + "/other-mirror";
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(other_mirror.c_str(), 0755), 0);
  MountGuard guard(other);
  int mirror_fd = ::open(other_mirror.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(mirror_fd, 0);
  {
    MirrorSink sink(mirror_fd);
    InterceptorOptions options;
    options.dir = other;
    options.sink = &sink;
    auto second = Interceptor::Mount(options);
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    ASSERT_TRUE(WriteFile(P("first"), "1"));
    ASSERT_TRUE(WriteFile(other + "/second", "2"));
    EXPECT_EQ(ReadFile(other_mirror + "/second"), "2");
    EXPECT_NE(::access((mirror_ + "/second").c_str(), F_OK), 0);
    EXPECT_TRUE((*second)->Unmount().ok());
  }
  ::close(mirror_fd);
  ExpectMirrored();
}

TEST_F(LifecycleTest, MountErrors) {
  InterceptorOptions options;
  options.dir = tmp_->path() + "/missing";
  EXPECT_FALSE(Interceptor::Mount(options).ok());
  options.dir = data_;
  options.threads = 0;
  EXPECT_EQ(Interceptor::Mount(options).status().code(), sdk::Status::Code::kInvalidArgument);
}

TEST_F(LifecycleTest, FuseAloneWithoutASink) {
  auto mounted = MountMode(Interceptor::Mode::kPrimary, nullptr);
  ASSERT_TRUE(mounted.ok()) << mounted.status().ToString();
  fs_ = std::move(mounted).value();
  ASSERT_TRUE(WriteFile(P("f"), "no replication"));
  EXPECT_EQ(ReadFile(P("f")), "no replication");
  int fd = ::open(P("f").c_str(), O_WRONLY | O_APPEND);
  ASSERT_EQ(::write(fd, "+", 1), 1);
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
  EXPECT_EQ(ReadFile(R("f")), "no replication+");
  EXPECT_GE(fs_->stats().operations, 2u);
  EXPECT_TRUE(sink_->log().empty());
}

}  // namespace
}  // namespace hakit::replication::testing
