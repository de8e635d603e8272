// The on-disk state that makes reintegration crash-safe: the durable log
// format (torn tail, damage, atomic replacement), the record of what the
// secondary missed as it survives a restart, and the hot-zone log (what is
// on disk before a write is applied, cooling, renames). A child process that
// is killed (SIGKILL, no destructor, no flush at exit) shows what a crash
// leaves.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "hakit/replication/dirty_map.h"
#include "hakit/replication/durable_log.h"
#include "hakit/replication/hot_zones.h"

namespace hakit::replication {
namespace {

namespace fs = std::filesystem;

class RecordLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hakit-recordlog-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs `body` in a child that is then killed: whatever it did not make
  // durable itself is gone with it (buffers, destructors).
  static void InKilledChild(const std::function<void()>& body) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      body();
      ::raise(SIGKILL);
      ::_exit(3);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  }

  static std::vector<std::string> Replay(const std::string& path,
                                         std::optional<std::uint64_t>* corrupt = nullptr) {
    std::vector<std::string> got;
    auto log = DurableLog::Open(path, [&](std::string_view r) { got.emplace_back(r); });
    EXPECT_TRUE(log.ok()) << log.status().message();
    if (corrupt && log.ok()) *corrupt = (*log)->corrupt_at();
    return got;
  }

  fs::path dir_;
};

TEST_F(RecordLogTest, FlushedRecordsSurviveAndBufferedOnesDoNot) {
  const std::string path = Path("log");
  InKilledChild([&] {
    auto log = DurableLog::Open(path, [](std::string_view) {});
    if (!log.ok()) ::_exit(1);
    (*log)->Append("one");
    std::uint64_t t = (*log)->Append("two");
    if (!(*log)->Flush(t).ok()) ::_exit(1);
    (*log)->Append("never flushed");
  });
  EXPECT_EQ(Replay(path), (std::vector<std::string>{"one", "two"}));
}

TEST_F(RecordLogTest, ATornLastRecordIsDroppedAndTheLogGoesOn) {
  const std::string path = Path("log");
  {
    auto log = DurableLog::Open(path, [](std::string_view) {});
    ASSERT_TRUE(log.ok());
    (*log)->Append("first");
    (*log)->Append("second record");
    ASSERT_TRUE((*log)->Flush().ok());
  }
  // A crash in the middle of an append: the file ends inside a record.
  fs::resize_file(path, fs::file_size(path) - 3);
  std::optional<std::uint64_t> corrupt;
  EXPECT_EQ(Replay(path, &corrupt), (std::vector<std::string>{"first"}));
  EXPECT_FALSE(corrupt.has_value());
  {
    auto log = DurableLog::Open(path, [](std::string_view) {});
    ASSERT_TRUE(log.ok());
    (*log)->Append("third");
    ASSERT_TRUE((*log)->Flush().ok());
  }
  EXPECT_EQ(Replay(path), (std::vector<std::string>{"first", "third"}));
}

TEST_F(RecordLogTest, DamageBeforeTheEndIsReported) {
  const std::string path = Path("log");
  {
    auto log = DurableLog::Open(path, [](std::string_view) {});
    ASSERT_TRUE(log.ok());
    (*log)->Append("first");
    (*log)->Append("second");
    (*log)->Append("third");
    ASSERT_TRUE((*log)->Flush().ok());
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8 + 5 + 8 + 2);  // inside "second"
    f.put('X');
  }
  std::optional<std::uint64_t> corrupt;
  EXPECT_EQ(Replay(path, &corrupt), (std::vector<std::string>{"first"}));
  ASSERT_TRUE(corrupt.has_value());
  EXPECT_EQ(*corrupt, 13u);
}

TEST_F(RecordLogTest, ReplaceSwapsTheWholeContent) {
  const std::string path = Path("log");
  auto log = DurableLog::Open(path, [](std::string_view) {});
  ASSERT_TRUE(log.ok());
  (*log)->Append("a");
  (*log)->Append("b");
  ASSERT_TRUE((*log)->Flush().ok());
  (*log)->Append("buffered, dropped by the replacement");
  ASSERT_TRUE((*log)->Replace({"x", "y"}).ok());
  (*log)->Append("z");
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ(Replay(path), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_FALSE(fs::exists(path + ".new"));
}

TEST_F(RecordLogTest, TheRecordSurvivesACrashAsTheHotZonesLeaveIt) {
  const std::string path = Path("record");
  InKilledChild([&] {
    DirtyMap d(65536);
    if (!d.Persist(path).ok()) ::_exit(1);
    d.Reset(42);
    d.Note(OpKind::kWrite, "flushed", "", 65536 * 5, 10);
    if (!d.Flush().ok()) ::_exit(1);
    // Durable before Note() returns, flushed or not.
    d.Note(OpKind::kTruncate, "created", "", 0, 0);
    d.Note(OpKind::kRename, "a", "dir/b", 0, 0);
    d.Note(OpKind::kChmod, "m", "", 0, 0);
    // Buffered: the hot-zone log holds this write's zone, and the new file,
    // until Flush().
    d.Note(OpKind::kWrite, "buffered", "", 0, 10);
    d.Note(OpKind::kCreate, "new", "", 0, 0);
  });
  DirtyMap d(65536);
  ASSERT_TRUE(d.Persist(path).ok());
  EXPECT_TRUE(d.valid());
  EXPECT_EQ(d.base_generation(), 42u);
  EXPECT_EQ(d.Of("flushed").zones, (std::set<std::uint64_t>{5}));
  EXPECT_TRUE(d.Of("created").whole);
  EXPECT_TRUE(d.Of("dir/b/c").whole);
  EXPECT_TRUE(d.Of("a").whole);
  EXPECT_TRUE(d.Of("buffered").zones.empty());
  EXPECT_FALSE(d.Of("new").whole);
  // flushed's zone, created, two subtrees and "other".
  EXPECT_EQ(d.entries(), 5u);
}

TEST_F(RecordLogTest, TheRecordReloadsAsItWasAndCompacts) {
  const std::string path = Path("record");
  {
    DirtyMap d(4096);
    ASSERT_TRUE(d.Persist(path).ok());
    EXPECT_FALSE(d.valid());  // nothing on disk: nothing known
    d.Reset(3);
    for (int i = 0; i < 20000; ++i) d.Note(OpKind::kWrite, "f", "", (i % 50) * 4096, 100);
    d.Note(OpKind::kWrite, "g", "", 4096 * 7, 4096 * 3);
    ASSERT_TRUE(d.Flush().ok());
    ASSERT_TRUE(d.CompactIfLarge().ok());
  }
  DirtyMap d(4096);
  ASSERT_TRUE(d.Persist(path).ok());
  ASSERT_TRUE(d.valid());
  EXPECT_EQ(d.Of("f").zones.size(), 50u);
  EXPECT_EQ(d.Of("g").zones, (std::set<std::uint64_t>{7, 8, 9}));
  d.Invalidate();
  DirtyMap again(4096);
  ASSERT_TRUE(again.Persist(path).ok());
  EXPECT_FALSE(again.valid());
}

TEST_F(RecordLogTest, ARecordOfAnotherZoneSizeIsInvalid) {
  const std::string path = Path("record");
  {
    DirtyMap d(65536);
    ASSERT_TRUE(d.Persist(path).ok());
    d.Reset(5);
    d.Note(OpKind::kCreate, "a", "", 0, 0);
  }
  DirtyMap same(65536);
  ASSERT_TRUE(same.Persist(path).ok());
  EXPECT_TRUE(same.valid());
  DirtyMap other(1 << 20);  // ruzone_blocksize changed
  ASSERT_TRUE(other.Persist(path).ok());
  EXPECT_FALSE(other.valid());
}

TEST_F(RecordLogTest, ADamagedRecordIsInvalidAndSaysSo) {
  const std::string path = Path("record");
  {
    DirtyMap d(4096);
    ASSERT_TRUE(d.Persist(path).ok());
    d.Reset(9);
    d.Note(OpKind::kTruncate, "a", "", 0, 0);
    d.Note(OpKind::kTruncate, "b", "", 0, 0);
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);  // inside the first record
    f.put('\x7f');
  }
  DirtyMap d(4096);
  auto s = d.Persist(path);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("damaged"), std::string::npos) << s.message();
  EXPECT_FALSE(d.valid());
}

TEST_F(RecordLogTest, HotExtentsAreOnDiskBeforeTouchReturns) {
  const std::string path = Path("hot");
  InKilledChild([&] {
    auto h = HotZones::Open(path, 1 << 20);
    if (!h.ok()) ::_exit(1);
    if (!(*h)->Touch("f", (3 << 20) - 10, 20).ok()) ::_exit(1);  // extents 2 and 3
    if (!(*h)->Touch("g", 0, 1).ok()) ::_exit(1);
  });
  auto h = HotZones::Open(path, 1 << 20);
  ASSERT_TRUE(h.ok()) << h.status().message();
  auto r = (*h)->HotRanges();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r["f"], (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2 << 20, 1 << 20},
                                                                           {3 << 20, 1 << 20}}));
  EXPECT_EQ(r["g"], (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 1 << 20}}));
}

TEST_F(RecordLogTest, CoolingForgetsOnlyWhatTheEndedEpochTouched) {
  const std::string path = Path("hot");
  {
    auto h = HotZones::Open(path, 1 << 20);
    ASSERT_TRUE(h.ok());
    ASSERT_TRUE((*h)->Touch("old", 0, 1).ok());
    ASSERT_TRUE((*h)->Touch("both", 0, 1).ok());
    const std::uint64_t ended = (*h)->Advance();
    // Touched again after the epoch ended: stays hot.
    ASSERT_TRUE((*h)->Touch("both", 0, 1).ok());
    ASSERT_TRUE((*h)->Touch("new", 0, 1).ok());
    ASSERT_TRUE((*h)->Cool(ended).ok());
    auto r = (*h)->HotRanges();
    EXPECT_EQ(r.count("old"), 0u);
    EXPECT_EQ(r.count("both"), 1u);
    EXPECT_EQ(r.count("new"), 1u);
  }
  auto h = HotZones::Open(path, 1 << 20);
  ASSERT_TRUE(h.ok());
  auto r = (*h)->HotRanges();
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.count("old"), 0u);
  ASSERT_TRUE((*h)->Clear().ok());
  auto again = HotZones::Open(path, 1 << 20);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->empty());
}

TEST_F(RecordLogTest, ARenameCarriesHotExtentsToTheNewName) {
  auto h = HotZones::Open(Path("hot"), 1 << 20);
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE((*h)->Touch("d/f", 0, 1).ok());
  ASSERT_TRUE((*h)->Touch("x", 5 << 20, 1).ok());
  ASSERT_TRUE((*h)->Rename("d", "e", false).ok());
  ASSERT_TRUE((*h)->Rename("x", "y", true).ok());
  auto r = (*h)->HotRanges();
  EXPECT_EQ(r.count("e/f"), 1u);
  EXPECT_EQ(r.count("y"), 1u);
  EXPECT_EQ(r.count("dd/f"), 0u);
}

TEST_F(RecordLogTest, ADamagedHotLogIsAnError) {
  const std::string path = Path("hot");
  {
    auto h = HotZones::Open(path, 1 << 20);
    ASSERT_TRUE(h.ok());
    ASSERT_TRUE((*h)->Touch("a", 0, 1).ok());
    ASSERT_TRUE((*h)->Touch("b", 0, 1).ok());
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(9);
    f.put('\x7f');
  }
  auto h = HotZones::Open(path, 1 << 20);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("damaged"), std::string::npos) << h.status().message();
}

}  // namespace
}  // namespace hakit::replication
