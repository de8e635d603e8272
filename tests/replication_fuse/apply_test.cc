// ApplyOperation on its own: every kind, path safety (no "..", no absolute
// paths, no symbolic link traversal), and idempotent replays.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "fuse_test_util.h"

namespace hakit::replication::testing {
namespace {

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown)";
    root_ = tmp_.path() + "/root";
    outside_ = tmp_.path() + "/outside";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
    fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    if (fd_ >= 0) ::close(fd_);
  }

  sdk::Status Apply(const Operation& op) { return ApplyOperation(fd_, op); }
  std::string In(const std::string& rel) const { return root_ + "/" + rel; }

  TempDir tmp_;
  std::string root_;
  std::string outside_;
  int fd_ = -1;
};

Operation Op(OpKind kind, std::string path, std::string path2 = "") {
  Operation op;
  op.kind = kind;
  op.path = std::move(path);
  op.path2 = std::move(path2);
  return op;
}

Operation Write(std::string path, std::uint64_t offset, std::string data) {
  Operation op = Op(OpKind::kWrite, std::move(path));
  op.offset = offset;
  op.data = std::move(data);
  return op;
}

Operation Create(std::string path, std::uint32_t mode = 0644) {
  Operation op = Op(OpKind::kCreate, std::move(path));
  op.mode = mode;
  return op;
}

TEST(OpKindNameTest, EveryKindHasItsOwnName) {
  std::set<std::string> names;
  for (int k = static_cast<int>(OpKind::kCreate); k <= static_cast<int>(OpKind::kFsync); ++k) {
    std::string name = OpKindName(static_cast<OpKind>(k));
    EXPECT_NE(name, "unknown") << k;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 17u);
  EXPECT_STREQ(OpKindName(OpKind::kWrite), "write");
}

TEST_F(ApplyTest, AppliesEveryKind) {
  Operation mkdir = Op(OpKind::kMkdir, "d");
  mkdir.mode = 0750;
  mkdir.uid = 1234;
  mkdir.gid = 4321;
  ASSERT_TRUE(Apply(mkdir).ok());
  ASSERT_TRUE(Apply(Create("d/f", 0604)).ok());
  ASSERT_TRUE(Apply(Write("d/f", 3, "abc")).ok());
  EXPECT_EQ(ReadFile(In("d/f")), std::string("\0\0\0abc", 6));
  Operation truncate = Op(OpKind::kTruncate, "d/f");
  truncate.length = 4;
  ASSERT_TRUE(Apply(truncate).ok());
  Operation falloc = Op(OpKind::kFallocate, "d/f");
  falloc.offset = 0;
  falloc.length = 8192;
  ASSERT_TRUE(Apply(falloc).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kLink, "d/f", "hard")).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kSymlink, "sym", "d/f")).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kRename, "hard", "d/renamed")).ok());
  Operation fifo = Op(OpKind::kMknod, "fifo");
  fifo.mode = S_IFIFO | 0620;
  ASSERT_TRUE(Apply(fifo).ok());
  Operation chmod = Op(OpKind::kChmod, "d/f");
  chmod.mode = 0600;
  ASSERT_TRUE(Apply(chmod).ok());
  Operation chown = Op(OpKind::kChown, "d/f");
  chown.uid = 77;
  ASSERT_TRUE(Apply(chown).ok());
  Operation utimens = Op(OpKind::kUtimens, "d/f");
  utimens.mtime = {1111111111, 42};
  ASSERT_TRUE(Apply(utimens).ok());
  Operation setx = Op(OpKind::kSetXattr, "d/f");
  setx.name = "user.k";
  setx.data = "v";
  ASSERT_TRUE(Apply(setx).ok());
  Operation fsync = Op(OpKind::kFsync, "d/f");
  ASSERT_TRUE(Apply(fsync).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kFsync, "")).ok());  // the whole file system

  struct stat st{};
  ASSERT_EQ(::stat(In("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 4321u);
  ASSERT_EQ(::stat(In("d/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 77u);
  EXPECT_EQ(st.st_gid, 0u);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1111111111);
  EXPECT_EQ(st.st_mtim.tv_nsec, 42);
  char buf[8] = {};
  EXPECT_EQ(::getxattr(In("d/f").c_str(), "user.k", buf, sizeof buf), 1);
  ASSERT_EQ(::lstat(In("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  EXPECT_EQ(ReadFile(In("sym")).substr(0, 4), std::string("\0\0\0a", 4));

  Operation rmx = Op(OpKind::kRemoveXattr, "d/f");
  rmx.name = "user.k";
  ASSERT_TRUE(Apply(rmx).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kUnlink, "d/renamed")).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kUnlink, "d/f")).ok());
  ASSERT_TRUE(Apply(Op(OpKind::kRmdir, "d")).ok());
  EXPECT_NE(::access(In("d").c_str(), F_OK), 0);
}

TEST_F(ApplyTest, RefusesPathsOutsideTheTree) {
  for (const char* bad : {"../escape", "/etc/passwd", "a/../../b", "./a", "a//b", "a/.", "a/",
                          ".."}) {
    sdk::Status s = Apply(Create(bad));
    EXPECT_EQ(s.code(), sdk::Status::Code::kInvalidArgument) << bad << ": " << s.ToString();
  }
  EXPECT_EQ(Apply(Op(OpKind::kRename, "a", "../b")).code(), sdk::Status::Code::kInvalidArgument);
  EXPECT_EQ(Apply(Op(OpKind::kLink, "a", "/tmp/b")).code(), sdk::Status::Code::kInvalidArgument);
  EXPECT_EQ(Apply(Op(OpKind::kUnlink, "")).code(), sdk::Status::Code::kInvalidArgument);
  Operation nul = Create(std::string("a\0b", 3));
  EXPECT_EQ(Apply(nul).code(), sdk::Status::Code::kInvalidArgument);
  std::vector<std::string> names;
  ASSERT_TRUE(hakit::testing::tree_compare_internal::ListDir(outside_, &names));
  EXPECT_TRUE(names.empty());
}

TEST_F(ApplyTest, NeverFollowsSymbolicLinks) {
  ASSERT_TRUE(WriteFile(outside_ + "/victim", "untouched", 0644));
  ASSERT_EQ(::symlink(outside_.c_str(), In("dirlink").c_str()), 0);
  ASSERT_EQ(::symlink((outside_ + "/victim").c_str(), In("filelink").c_str()), 0);
  ASSERT_EQ(::mkdir(In("real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("../real", In("real/inner").c_str()), 0);

  EXPECT_FALSE(Apply(Create("dirlink/new")).ok());
  EXPECT_FALSE(Apply(Write("dirlink/victim", 0, "owned")).ok());
  EXPECT_FALSE(Apply(Write("filelink", 0, "owned")).ok());
  Operation truncate = Op(OpKind::kTruncate, "filelink");
  EXPECT_FALSE(Apply(truncate).ok());
  Operation chmod = Op(OpKind::kChmod, "filelink");
  chmod.mode = 0777;
  EXPECT_FALSE(Apply(chmod).ok());
  Operation mkdir = Op(OpKind::kMkdir, "dirlink/sub");
  EXPECT_FALSE(Apply(mkdir).ok());
  EXPECT_FALSE(Apply(Op(OpKind::kUnlink, "dirlink/victim")).ok());
  EXPECT_FALSE(Apply(Op(OpKind::kRename, "dirlink/victim", "stolen")).ok());
  EXPECT_FALSE(Apply(Op(OpKind::kLink, "dirlink/victim", "stolen")).ok());
  // Even a link that stays inside the tree is not traversed.
  EXPECT_FALSE(Apply(Create("real/inner/x")).ok());
  Operation setx = Op(OpKind::kSetXattr, "dirlink/victim");
  setx.name = "user.x";
  EXPECT_FALSE(Apply(setx).ok());

  EXPECT_EQ(ReadFile(outside_ + "/victim"), "untouched");
  struct stat st{};
  ASSERT_EQ(::stat((outside_ + "/victim").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  std::vector<std::string> names;
  ASSERT_TRUE(hakit::testing::tree_compare_internal::ListDir(outside_, &names));
  EXPECT_EQ(names, std::vector<std::string>{"victim"});
  // The link itself may be removed, renamed and chowned: that acts on it.
  Operation lchown = Op(OpKind::kChown, "filelink");
  lchown.uid = 99;
  EXPECT_TRUE(Apply(lchown).ok());
  ASSERT_EQ(::stat((outside_ + "/victim").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_TRUE(Apply(Op(OpKind::kUnlink, "filelink")).ok());
  EXPECT_EQ(ReadFile(outside_ + "/victim"), "untouched");
}

TEST_F(ApplyTest, ReplaysAreHarmless) {
  Operation mkdir = Op(OpKind::kMkdir, "d");
  mkdir.mode = 0755;
  Operation write = Write("d/f", 0, "payload");
  Operation link = Op(OpKind::kLink, "d/f", "d/g");
  Operation symlink = Op(OpKind::kSymlink, "s", "d/f");
  Operation rename = Op(OpKind::kRename, "d/g", "d/h");
  Operation fifo = Op(OpKind::kMknod, "p");
  fifo.mode = S_IFIFO | 0600;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    EXPECT_TRUE(Apply(mkdir).ok());
    EXPECT_TRUE(Apply(Create("d/f")).ok());
    EXPECT_TRUE(Apply(write).ok());
    EXPECT_TRUE(Apply(link).ok());
    EXPECT_TRUE(Apply(symlink).ok());
    EXPECT_TRUE(Apply(fifo).ok());
  }
  EXPECT_TRUE(Apply(rename).ok());
  sdk::Status replayed = Apply(rename);
  EXPECT_TRUE(replayed.ok()) << replayed.ToString();
  EXPECT_EQ(ReadFile(In("d/h")), "payload");
  EXPECT_TRUE(Apply(Op(OpKind::kUnlink, "d/h")).ok());
  EXPECT_TRUE(Apply(Op(OpKind::kUnlink, "d/h")).ok());
  EXPECT_TRUE(Apply(Op(OpKind::kRmdir, "nothing")).ok());
  Operation rmx = Op(OpKind::kRemoveXattr, "d/f");
  rmx.name = "user.none";
  EXPECT_TRUE(Apply(rmx).ok());
  // A create with O_TRUNC empties what is there; without, keeps it.
  Operation keep = Create("d/f");
  EXPECT_TRUE(Apply(keep).ok());
  EXPECT_EQ(ReadFile(In("d/f")), "payload");
  Operation trunc = Create("d/f");
  trunc.flags = O_TRUNC;
  EXPECT_TRUE(Apply(trunc).ok());
  EXPECT_EQ(ReadFile(In("d/f")), "");
  // Conflicts are not hidden.
  EXPECT_FALSE(Apply(Op(OpKind::kSymlink, "s", "elsewhere")).ok());
  EXPECT_FALSE(Apply(Op(OpKind::kRename, "missing", "also-missing")).ok());
  EXPECT_FALSE(Apply(Write("missing/f", 0, "x")).ok());
  Operation dev = Op(OpKind::kMknod, "dev");
  dev.mode = S_IFCHR | 0600;
  EXPECT_EQ(Apply(dev).code(), sdk::Status::Code::kInvalidArgument);
}

TEST_F(ApplyTest, ErrorsNameTheOperationAndPath) {
  sdk::Status s = Apply(Write("no/such/file", 0, "x"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("write"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("no/such/file"), std::string::npos) << s.ToString();
}

TEST_F(ApplyTest, WorksWithAnOPathRoot) {
  int opath = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(opath, 0);
  EXPECT_TRUE(ApplyOperation(opath, Create("p")).ok());
  EXPECT_TRUE(ApplyOperation(opath, Write("p", 0, "via O_PATH")).ok());
  Operation chmod = Op(OpKind::kChmod, "");
  chmod.mode = 0711;
  EXPECT_TRUE(ApplyOperation(opath, chmod).ok());
  EXPECT_TRUE(ApplyOperation(opath, Op(OpKind::kFsync, "")).ok());
  ::close(opath);
  EXPECT_EQ(ReadFile(In("p")), "via O_PATH");
  struct stat st{};
  ASSERT_EQ(::stat(root_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
}

}  // namespace
}  // namespace hakit::replication::testing
