// POSIX behaviour through the primary's mount (pjdfstest-style cases), each
// ending with the real directory compared to the mirror that the sink built
// from the replicated operations.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "fuse_test_util.h"

namespace hakit::replication::testing {
namespace {

using hakit::testing::TreeCompareOptions;

class PosixTest : public InterceptorTest {
 protected:
  void SetUp() override {
    InterceptorTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    MountPrimary();
  }
};

class XattrTest : public InterceptorTest {
 protected:
  void SetUp() override {
    InterceptorTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    MountPrimary(/*xattrs=*/true);
  }
};

TEST_F(PosixTest, CreateWriteRead) {
  ASSERT_TRUE(WriteFile(P("a.txt"), "hello world", 0640));
  EXPECT_EQ(ReadFile(P("a.txt")), "hello world");
  struct stat st{};
  ASSERT_EQ(::stat(P("a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 11);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 0u);
  // The caller's umask applies, the daemon's does not add to it.
  mode_t old = ::umask(0);
  ASSERT_TRUE(WriteFile(P("open.txt"), "x", 0666));
  ::umask(old);
  ASSERT_EQ(::lstat(R("open.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  ASSERT_EQ(::mkdir(P("dir").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("dir/b.bin"), std::string(300000, 'b')));
  EXPECT_EQ(ReadFile(P("dir/b.bin")), std::string(300000, 'b'));
  EXPECT_EQ(ReadFile(R("dir/b.bin")), std::string(300000, 'b'));
  EXPECT_GE(CountOps(OpKind::kCreate), 3);
  EXPECT_GE(fs_->stats().bytes_written, 300012u);
  ExpectMirrored();
}

TEST_F(PosixTest, AppendFromTwoDescriptors) {
  int a = ::open(P("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int b = ::open(P("log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    std::string ra = "A" + std::to_string(i) + ";";
    std::string rb = "B" + std::to_string(i) + ";";
    ASSERT_EQ(::write(a, ra.data(), ra.size()), static_cast<ssize_t>(ra.size()));
    ASSERT_EQ(::write(b, rb.data(), rb.size()), static_cast<ssize_t>(rb.size()));
    expected += ra + rb;
  }
  ::close(a);
  ::close(b);
  EXPECT_EQ(ReadFile(P("log")), expected);
  // Every replicated write says where its data landed: one after another.
  std::uint64_t next = 0;
  for (const auto& r : sink_->log()) {
    if (r.kind != OpKind::kWrite) continue;
    EXPECT_EQ(r.offset, next);
    next = r.offset + r.data_size;
  }
  EXPECT_EQ(next, expected.size());
  ExpectMirrored();
}

TEST_F(PosixTest, ConcurrentAppendsKeepEveryRecord) {
  constexpr int kThreads = 4;
  static constexpr int kRecords = 500, kSize = 16;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      int fd = ::open(P("applog").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      for (int i = 0; i < kRecords; ++i) {
        char rec[kSize + 1];
        std::snprintf(rec, sizeof rec, "t%d-%012d\n", t, i);
        ASSERT_EQ(::write(fd, rec, kSize), kSize);
      }
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  std::string content = ReadFile(P("applog"));
  ASSERT_EQ(content.size(), static_cast<std::size_t>(kThreads * kRecords * kSize));
  for (std::size_t i = 0; i < content.size(); i += kSize) {
    EXPECT_EQ(content[i], 't');
    EXPECT_EQ(content[i + kSize - 1], '\n');
  }
  ExpectMirrored();
}

TEST_F(PosixTest, OpenWithTruncate) {
  ASSERT_TRUE(WriteFile(P("t"), std::string(100000, 'x')));
  int fd = ::open(P("t").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "short", 5), 5);
  ::close(fd);
  EXPECT_EQ(ReadFile(P("t")), "short");
  EXPECT_GE(CountOps(OpKind::kTruncate), 1);
  ExpectMirrored();
  // truncate(2) by path and ftruncate, down and up.
  ASSERT_EQ(::truncate(P("t").c_str(), 3), 0);
  fd = ::open(P("t").c_str(), O_RDWR);
  ASSERT_EQ(::ftruncate(fd, 70000), 0);
  ::close(fd);
  struct stat st{};
  ASSERT_EQ(::stat(P("t").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 70000);
  EXPECT_EQ(ReadFile(P("t")), std::string("sho") + std::string(69997, '\0'));
  ExpectMirrored();
}

TEST_F(PosixTest, RenameOverExistingFile) {
  ASSERT_TRUE(WriteFile(P("a"), "content of a"));
  ASSERT_TRUE(WriteFile(P("b"), "content of b"));
  ASSERT_EQ(::rename(P("a").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(ReadFile(P("b")), "content of a");
  EXPECT_NE(::access(P("a").c_str(), F_OK), 0);
  ExpectMirrored();
  // Over a file someone still has open: that inode keeps working, unnamed.
  ASSERT_TRUE(WriteFile(P("c"), "content of c"));
  int fd = ::open(P("b").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::rename(P("c").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(::pwrite(fd, "zz", 2, 0), 2);
  ::close(fd);
  EXPECT_EQ(ReadFile(P("b")), "content of c");
  // That inode has no name left anywhere: nothing to replicate, no harm.
  EXPECT_EQ(fs_->stats().unreplicated_changes, 0u);
  ExpectMirrored();
}

// The documented limit: a change through an unlinked name of a file that
// still has another name cannot be replicated by path. It is counted.
TEST_F(PosixTest, ChangesThroughAnUnlinkedHardLinkAreCounted) {
  ASSERT_TRUE(WriteFile(P("f"), "original"));
  ASSERT_EQ(::link(P("f").c_str(), P("g").c_str()), 0);
  int fd = ::open(P("f").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::unlink(P("f").c_str()), 0);
  ASSERT_EQ(::pwrite(fd, "CHANGED!", 8, 0), 8);
  ::close(fd);
  EXPECT_EQ(ReadFile(P("g")), "CHANGED!");
  EXPECT_EQ(fs_->stats().unreplicated_changes, 1u);
  sink_->Drain();
  EXPECT_EQ(ReadFile(mirror_ + "/g"), "original");
}

TEST_F(PosixTest, RenameDirectoriesAndFlags) {
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("d/sub").c_str(), 0700), 0);
  ASSERT_TRUE(WriteFile(P("d/sub/f"), "deep"));
  ASSERT_TRUE(WriteFile(P("d/g"), "shallow"));
  ASSERT_EQ(::rename(P("d").c_str(), P("e").c_str()), 0);
  EXPECT_EQ(ReadFile(P("e/sub/f")), "deep");
  ASSERT_EQ(::mkdir(P("other").c_str(), 0755), 0);
  ASSERT_EQ(::rename(P("e/sub").c_str(), P("other/moved").c_str()), 0);
  // Writing through a descriptor opened before its directory moved.
  int fd = ::open(P("other/moved/f").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::rename(P("other").c_str(), P("other2").c_str()), 0);
  ASSERT_EQ(::write(fd, "+more", 5), 5);
  ::close(fd);
  EXPECT_EQ(ReadFile(P("other2/moved/f")), "deep+more");
  ASSERT_TRUE(WriteFile(P("x"), "X"));
  ASSERT_TRUE(WriteFile(P("y"), "Y"));
  EXPECT_EQ(::renameat2(AT_FDCWD, P("x").c_str(), AT_FDCWD, P("y").c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  ASSERT_EQ(::renameat2(AT_FDCWD, P("x").c_str(), AT_FDCWD, P("y").c_str(), RENAME_EXCHANGE), 0);
  EXPECT_EQ(ReadFile(P("x")), "Y");
  EXPECT_EQ(ReadFile(P("y")), "X");
  ASSERT_EQ(::renameat2(AT_FDCWD, P("x").c_str(), AT_FDCWD, P("z").c_str(), RENAME_NOREPLACE), 0);
  ExpectMirrored();
}

TEST_F(PosixTest, HardLinks) {
  ASSERT_TRUE(WriteFile(P("f"), "linked"));
  ASSERT_EQ(::mkdir(P("dir").c_str(), 0755), 0);
  ASSERT_EQ(::link(P("f").c_str(), P("g").c_str()), 0);
  ASSERT_EQ(::link(P("f").c_str(), P("dir/h").c_str()), 0);
  struct stat st{};
  ASSERT_EQ(::stat(P("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3u);
  int fd = ::open(P("g").c_str(), O_WRONLY);
  ASSERT_EQ(::pwrite(fd, "L", 1, 0), 1);
  ::close(fd);
  EXPECT_EQ(ReadFile(P("dir/h")), "Linked");
  ExpectMirrored();
  ASSERT_EQ(::unlink(P("f").c_str()), 0);
  ASSERT_EQ(::lstat(R("g").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  ExpectMirrored();
}

TEST_F(PosixTest, SymbolicLinks) {
  ASSERT_TRUE(WriteFile(P("target.txt"), "pointed at"));
  ASSERT_EQ(::symlink("target.txt", P("rel").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/hostname", P("abs").c_str()), 0);
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("../target.txt", P("d/up").c_str()), 0);
  ASSERT_EQ(::symlink("dangling/nowhere", P("dangling").c_str()), 0);
  char buf[256] = {};
  ASSERT_EQ(::readlink(P("rel").c_str(), buf, sizeof buf), 10);
  EXPECT_STREQ(buf, "target.txt");
  EXPECT_EQ(ReadFile(P("d/up")), "pointed at");
  // Writing through a link changes the target (the kernel resolves it).
  int fd = ::open(P("rel").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "!", 1), 1);
  ::close(fd);
  EXPECT_EQ(ReadFile(P("target.txt")), "pointed at!");
  // A link has an owner of its own.
  ASSERT_EQ(::lchown(P("abs").c_str(), 1234, 4321), 0);
  struct stat st{};
  ASSERT_EQ(::lstat(R("abs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  ExpectMirrored();
}

TEST_F(PosixTest, ChmodChownUtimens) {
  ASSERT_TRUE(WriteFile(P("f"), "attrs"));
  ASSERT_TRUE(WriteFile(P("now"), "now"));
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(P("f").c_str(), 04751), 0);
  ASSERT_EQ(::chmod(P("d").c_str(), 01777), 0);
  ASSERT_EQ(::chown(P("f").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chown(P("d").c_str(), 2000, static_cast<gid_t>(-1)), 0);
  struct stat st{};
  ASSERT_EQ(::stat(P("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 2000u);
  EXPECT_EQ(st.st_gid, 0u);
  timespec times[2] = {{1000000000, 123456789}, {1200000000, 500000000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, P("f").c_str(), times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, P("d").c_str(), times, 0), 0);
  ASSERT_EQ(::stat(P("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 500000000);
  // UTIME_NOW: both sides get the primary's clock.
  timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ::usleep(20000);
  ASSERT_EQ(::utimensat(AT_FDCWD, P("now").c_str(), now, 0), 0);
  TreeCompareOptions options;
  options.mtime_paths = {"f", "d", "now"};
  ExpectMirrored(options);
  // chmod of the replicated dir itself (path "").
  ASSERT_EQ(::chmod(data_.c_str(), 0775), 0);
  ExpectMirrored(options);
  ASSERT_EQ(::chmod(data_.c_str(), 0755), 0);
}

TEST_F(PosixTest, PermissionsAreEnforcedForOtherUsers) {
  ASSERT_TRUE(WriteFile(P("private"), "secret", 0600));
  ASSERT_TRUE(WriteFile(P("readonly"), "public", 0644));
  ASSERT_EQ(::mkdir(P("shared").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(P("shared").c_str(), 0777), 0);
  ASSERT_EQ(::mkdir(P("sgid").c_str(), 0777), 0);
  ASSERT_EQ(::chown(P("sgid").c_str(), 0, 4321), 0);
  ASSERT_EQ(::chmod(P("sgid").c_str(), 02777), 0);
  std::string dir = data_;
  int rc = RunAs(1000, 1000, [&] {
    std::string p = dir + "/private", r = dir + "/readonly";
    if (::open(p.c_str(), O_RDONLY) >= 0 || errno != EACCES) return 1;
    if (::open(r.c_str(), O_WRONLY) >= 0 || errno != EACCES) return 2;
    int fd = ::open(r.c_str(), O_RDONLY);
    if (fd < 0) return 3;
    ::close(fd);
    if (::chmod(r.c_str(), 0777) == 0 || errno != EPERM) return 4;
    if (::unlink(p.c_str()) == 0 || errno != EACCES) return 5;
    std::string mine = dir + "/shared/mine";
    fd = ::open(mine.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0) return 6;
    if (::write(fd, "mine", 4) != 4) return 7;
    ::close(fd);
    if (::mkdir((dir + "/shared/subdir").c_str(), 0750) != 0) return 8;
    if (::symlink("mine", (dir + "/shared/link").c_str()) != 0) return 9;
    if (::mkfifo((dir + "/shared/fifo").c_str(), 0600) != 0) return 10;
    fd = ::open((dir + "/sgid/inherits").c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) return 11;
    ::close(fd);
    if (::chmod(mine.c_str(), 0600) != 0) return 12;  // the owner may
    if (::chown(mine.c_str(), 0, static_cast<gid_t>(-1)) == 0 || errno != EPERM) return 13;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "step that failed in the unprivileged child";
  struct stat st{};
  for (const char* name : {"shared/mine", "shared/subdir", "shared/link", "shared/fifo"}) {
    ASSERT_EQ(::lstat(R(name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, 1000u) << name;
    EXPECT_EQ(st.st_gid, 1000u) << name;
  }
  ASSERT_EQ(::lstat(R("shared/subdir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(::lstat(R("sgid/inherits").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 4321u);
  ExpectMirrored();
}

TEST_F(PosixTest, SparseFiles) {
  int fd = ::open(P("sparse").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::lseek(fd, 1 << 20, SEEK_SET), 1 << 20);
  ASSERT_EQ(::write(fd, "end", 3), 3);
  ASSERT_EQ(::ftruncate(fd, 10 << 20), 0);
  char buf[16] = {1};
  ASSERT_EQ(::pread(fd, buf, sizeof buf, 4096), static_cast<ssize_t>(sizeof buf));
  EXPECT_EQ(std::string(buf, sizeof buf), std::string(sizeof buf, '\0'));
  // SEEK_DATA/SEEK_HOLE pass through.
  EXPECT_EQ(::lseek(fd, 0, SEEK_DATA), 1 << 20);
  ::close(fd);
  struct stat st{};
  ASSERT_EQ(::stat(P("sparse").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 10 << 20);
  ExpectMirrored();
  // The mirror stayed sparse too.
  ASSERT_EQ(::stat((mirror_ + "/sparse").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
}

TEST_F(PosixTest, Fallocate) {
  int fd = ::open(P("alloc").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fallocate(fd, 0, 0, 1 << 20), 0);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  std::string pattern(1 << 20, 'p');
  ASSERT_EQ(::pwrite(fd, pattern.data(), pattern.size(), 0), static_cast<ssize_t>(pattern.size()));
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 3 * 4096), 0);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_ZERO_RANGE, 100000, 5000), 0);
  ::close(fd);
  std::string content = ReadFile(P("alloc"));
  ASSERT_EQ(content.size(), pattern.size());
  EXPECT_EQ(content.substr(4096, 3 * 4096), std::string(3 * 4096, '\0'));
  EXPECT_EQ(content.substr(100000, 5000), std::string(5000, '\0'));
  EXPECT_EQ(content[4095], 'p');
  EXPECT_EQ(CountOps(OpKind::kFallocate), 4);
  ExpectMirrored();
}

TEST_F(PosixTest, OffsetsBeyondFourGiB) {
  constexpr off_t kFar = (5LL << 30) + 123;
  int fd = ::open(P("big").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "far!", 4, kFar), 4);
  char buf[4] = {};
  ASSERT_EQ(::pread(fd, buf, 4, kFar), 4);
  EXPECT_EQ(std::string(buf, 4), "far!");
  ASSERT_EQ(::ftruncate(fd, 6LL << 30), 0);
  ::close(fd);
  bool found = false;
  for (const auto& r : sink_->log()) {
    if (r.kind == OpKind::kWrite && r.offset == static_cast<std::uint64_t>(kFar)) found = true;
  }
  EXPECT_TRUE(found);
  ExpectMirrored();
}

TEST_F(PosixTest, ThousandOpenFiles) {
  constexpr int kFiles = 1000;
  std::vector<int> fds;
  for (int i = 0; i < kFiles; ++i) {
    int fd = ::open(P("f" + std::to_string(i)).c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << i << ": " << std::strerror(errno);
    fds.push_back(fd);
  }
  for (int i = 0; i < kFiles; ++i) {
    std::string content = "file number " + std::to_string(i);
    ASSERT_EQ(::write(fds[i], content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
  }
  for (int i = kFiles - 1; i >= 0; --i) {
    char buf[32] = {};
    ASSERT_GT(::pread(fds[i], buf, sizeof buf, 0), 0);
    EXPECT_EQ(std::string(buf), "file number " + std::to_string(i));
    ::close(fds[i]);
  }
  ExpectMirrored();
}

TEST_F(PosixTest, MkdirRmdirUnlinkMknod) {
  ASSERT_EQ(::mkdir(P("a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(P("a/b").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(P("a/b/c").c_str(), 0555), 0);
  EXPECT_EQ(::mkdir(P("a").c_str(), 0755), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(::rmdir(P("a/b").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(::mkfifo(P("a/fifo").c_str(), 0640), 0);
  ASSERT_EQ(::mknod(P("a/sock").c_str(), S_IFSOCK | 0600, 0), 0);
  EXPECT_EQ(::mknod(P("a/dev").c_str(), S_IFCHR | 0600, makedev(1, 3)), -1);
  struct stat st{};
  ASSERT_EQ(::lstat(R("a/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_TRUE(WriteFile(P("a/file"), "bye"));
  ExpectMirrored();
  ASSERT_EQ(::unlink(P("a/file").c_str()), 0);
  ASSERT_EQ(::unlink(P("a/fifo").c_str()), 0);
  ASSERT_EQ(::rmdir(P("a/b/c").c_str()), 0);
  EXPECT_EQ(::unlink(P("a/missing").c_str()), -1);
  EXPECT_EQ(errno, ENOENT);
  ExpectMirrored();
}

TEST_F(PosixTest, ReaddirListsEverything) {
  std::set<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    std::string name = "entry-with-a-rather-long-name-" + std::to_string(i);
    ASSERT_TRUE(WriteFile(P(name), ""));
    expected.insert(name);
  }
  std::vector<std::string> names;
  ASSERT_TRUE(hakit::testing::tree_compare_internal::ListDir(data_, &names));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), expected);
  ExpectMirrored();
}

TEST_F(PosixTest, FsyncIsReplicatedAsABarrier) {
  int fd = ::open(P("durable").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "data", 4), 4);
  sink_->ClearLog();
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::fdatasync(fd), 0);
  ::close(fd);
  auto log = sink_->log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].kind, OpKind::kFsync);
  EXPECT_EQ(log[0].path, "durable");
  EXPECT_EQ(log[0].flags, 0u);
  EXPECT_EQ(log[1].flags, 1u);
  // O_DSYNC: the kernel asks for a flush after each write.
  sink_->ClearLog();
  fd = ::open(P("durable").c_str(), O_WRONLY | O_DSYNC);
  ASSERT_EQ(::write(fd, "more", 4), 4);
  ::close(fd);
  log = sink_->log();
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log[0].kind, OpKind::kWrite);
  EXPECT_EQ(log[1].kind, OpKind::kFsync);
  // A directory, and the replicated dir itself (path "").
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  sink_->ClearLog();
  int dfd = ::open(P("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::fsync(dfd), 0);
  ::close(dfd);
  dfd = ::open(data_.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::fsync(dfd), 0);
  ::close(dfd);
  log = sink_->log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].path, "d");
  EXPECT_EQ(log[1].path, "");
  ExpectMirrored();
}

TEST_F(PosixTest, WritesArriveInOneMiBRequests) {
  std::string big(4 << 20, 'w');
  int fd = ::open(P("big").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_EQ(::write(fd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  ::close(fd);
  std::size_t largest = 0;
  for (const auto& r : sink_->log()) {
    if (r.kind == OpKind::kWrite) largest = std::max(largest, r.data_size);
  }
  EXPECT_EQ(largest, 1u << 20);
  ExpectMirrored();
}

TEST_F(PosixTest, SharedMmapWritesAreReplicated) {
  ASSERT_TRUE(WriteFile(P("mapped"), std::string(3 * 4096, 'm')));
  int fd = ::open(P("mapped").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* addr = ::mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(addr, MAP_FAILED) << std::strerror(errno);
  std::memcpy(static_cast<char*>(addr) + 4096 + 10, "through mmap", 12);
  ASSERT_EQ(::msync(addr, 3 * 4096, MS_SYNC), 0);
  ::munmap(addr, 3 * 4096);
  ::close(fd);
  EXPECT_EQ(ReadFile(R("mapped")).substr(4096 + 10, 12), "through mmap");
  ExpectMirrored();
}

TEST_F(PosixTest, CopyToolsWork) {
  std::string content(3 << 20, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 % 251);
  ASSERT_TRUE(WriteFile(P("src"), content));
  // cp uses copy_file_range, which falls back to reads and writes.
  EXPECT_EQ(RunCommand({"cp", P("src"), P("dst")}), 0);
  EXPECT_TRUE(ReadFile(P("dst")) == content);
  EXPECT_EQ(RunCommand({"cp", "-a", P("src"), P("preserved")}), 0);
  ExpectMirrored();
}

TEST_F(PosixTest, StatfsReportsTheRealFileSystem) {
  struct statfs through{}, real{};
  ASSERT_EQ(::statfs(data_.c_str(), &through), 0);
  ASSERT_EQ(::fstatfs(fs_->real_dir_fd(), &real), 0);
  EXPECT_EQ(through.f_blocks, real.f_blocks);
  EXPECT_EQ(through.f_bsize, real.f_bsize);
}

TEST_F(PosixTest, XattrsDisabledGiveEnotsup) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  EXPECT_EQ(::setxattr(P("f").c_str(), "user.a", "1", 1, 0), -1);
  EXPECT_EQ(errno, ENOTSUP);
  char buf[64];
  EXPECT_EQ(::getxattr(P("f").c_str(), "user.a", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENOTSUP);
  EXPECT_EQ(::removexattr(P("f").c_str(), "user.a"), -1);
  EXPECT_EQ(errno, ENOTSUP);
  EXPECT_EQ(CountOps(OpKind::kSetXattr), 0);
}

TEST_F(XattrTest, XattrsAreReplicated) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(::setxattr(P("f").c_str(), "user.color", "blue", 4, 0), 0);
  ASSERT_EQ(::setxattr(P("f").c_str(), "user.empty", "", 0, 0), 0);
  ASSERT_EQ(::setxattr(P("d").c_str(), "user.kind", "dir", 3, XATTR_CREATE), 0);
  ASSERT_EQ(::setxattr(data_.c_str(), "user.root", "r", 1, 0), 0);
  ASSERT_EQ(::setxattr(P("f").c_str(), "trusted.admin", "t", 1, 0), 0);
  EXPECT_EQ(::setxattr(P("d").c_str(), "user.kind", "again", 5, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  char buf[256] = {};
  ASSERT_EQ(::getxattr(P("f").c_str(), "user.color", buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "blue");
  ssize_t len = ::listxattr(P("f").c_str(), buf, sizeof buf);
  ASSERT_GT(len, 0);
  std::string list(buf, static_cast<std::size_t>(len));
  EXPECT_NE(list.find("user.color"), std::string::npos);
  ExpectMirrored();
  ASSERT_EQ(::removexattr(P("f").c_str(), "user.color"), 0);
  EXPECT_EQ(::getxattr(P("f").c_str(), "user.color", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  ExpectMirrored();
}

// A POSIX ACL, in the kernel's xattr encoding, granting uid 1000 read.
std::string AclGrantingRead(uid_t uid) {
  auto entry = [](std::uint16_t tag, std::uint16_t perm, std::uint32_t id) {
    std::string e(8, '\0');
    std::memcpy(&e[0], &tag, 2);
    std::memcpy(&e[2], &perm, 2);
    std::memcpy(&e[4], &id, 4);
    return e;
  };
  constexpr std::uint32_t kUndefined = 0xffffffffu;
  std::string acl(4, '\0');
  std::uint32_t version = 2;
  std::memcpy(&acl[0], &version, 4);
  acl += entry(0x01, 6, kUndefined);  // owner rw-
  acl += entry(0x02, 4, uid);         // named user r--
  acl += entry(0x04, 0, kUndefined);  // owning group ---
  acl += entry(0x10, 4, kUndefined);  // mask r--
  acl += entry(0x20, 0, kUndefined);  // other ---
  return acl;
}

TEST_F(XattrTest, AclsAreReplicatedAndEnforced) {
  ASSERT_TRUE(WriteFile(P("acl"), "granted", 0600));
  std::string acl = AclGrantingRead(1000);
  ASSERT_EQ(::setxattr(P("acl").c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0), 0)
      << std::strerror(errno);
  std::string path = P("acl");
  EXPECT_EQ(RunAs(1000, 1000, [&] {
              int fd = ::open(path.c_str(), O_RDONLY);
              if (fd < 0) return 1;
              ::close(fd);
              return ::open(path.c_str(), O_WRONLY) < 0 && errno == EACCES ? 0 : 2;
            }),
            0);
  EXPECT_EQ(RunAs(1001, 1001, [&] { return ::open(path.c_str(), O_RDONLY) < 0 ? 0 : 1; }), 0);
  ExpectMirrored();
}

TEST_F(PosixTest, FailedReplicationIsReportedAsEio) {
  ASSERT_TRUE(WriteFile(P("f"), "before"));
  sink_->set_fail_waits(true);
  int fd = ::open(P("f").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::write(fd, "x", 1), -1);
  EXPECT_EQ(errno, EIO);
  ::close(fd);
  EXPECT_EQ(::mkdir(P("d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EIO);
  EXPECT_GE(fs_->stats().replication_errors, 2u);
  sink_->set_fail_waits(false);
}

}  // namespace
}  // namespace hakit::replication::testing
