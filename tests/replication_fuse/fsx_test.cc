// Randomised tests: an fsx-style operation mix checked against an
// in-memory model, and concurrent writers to the same bytes. Both end with
// the real directory compared to the mirror.
//
// HAKIT_FSX_SECONDS=N runs the random mix for N seconds instead of a fixed
// number of operations; HAKIT_FSX_SEED picks another seed.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fuse_test_util.h"

namespace hakit::replication::testing {
namespace {

constexpr int kFiles = 10;
constexpr std::size_t kMaxFileSize = 2 << 20;
constexpr std::size_t kMaxIo = 64 << 10;
constexpr int kDefaultOps = 20000;

// One name in the test directory: the model of its content and the
// descriptors open on it (they follow the inode through renames).
struct ModelFile {
  bool exists = false;
  std::string content;
  int fd = -1;         // O_RDWR
  int append_fd = -1;  // O_WRONLY|O_APPEND
};

class FsxTest : public InterceptorTest {
 protected:
  void SetUp() override {
    InterceptorTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    MountPrimary();
  }

  std::string Name(int i) const { return P("f" + std::to_string(i)); }

  void Close(ModelFile& f) {
    if (f.fd >= 0) ::close(f.fd);
    if (f.append_fd >= 0) ::close(f.append_fd);
    f.fd = f.append_fd = -1;
  }

  void Open(int i, ModelFile& f) {
    f.fd = ::open(Name(i).c_str(), O_RDWR | O_CREAT, 0644);
    f.append_fd = ::open(Name(i).c_str(), O_WRONLY | O_APPEND);
    ASSERT_GE(f.fd, 0) << Name(i) << ": " << std::strerror(errno);
    ASSERT_GE(f.append_fd, 0);
    f.exists = true;
  }
};

TEST_F(FsxTest, RandomOperationsMatchTheModelAndTheMirror) {
  std::uint64_t seed = 20261126;
  if (const char* s = std::getenv("HAKIT_FSX_SEED")) seed = std::strtoull(s, nullptr, 10);
  double seconds = 0;
  if (const char* s = std::getenv("HAKIT_FSX_SECONDS")) seconds = std::atof(s);
  std::mt19937_64 rng(seed);
  auto uniform = [&](std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  };
  std::vector<ModelFile> files(kFiles);
  std::vector<char> buf(kMaxIo);
  auto start = std::chrono::steady_clock::now();
  long op_count = 0;
  for (;; ++op_count) {
    if (seconds > 0) {
      if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(seconds)) break;
    } else if (op_count >= kDefaultOps) {
      break;
    }
    SCOPED_TRACE("op " + std::to_string(op_count) + " seed " + std::to_string(seed));
    int i = static_cast<int>(uniform(0, kFiles - 1));
    ModelFile& f = files[i];
    if (!f.exists || f.fd < 0) {
      ASSERT_NO_FATAL_FAILURE(Open(i, f));
      if (f.content.empty()) {
        struct stat st{};
        ASSERT_EQ(::fstat(f.fd, &st), 0);
        ASSERT_EQ(st.st_size, 0);
      }
      continue;
    }
    std::size_t size = f.content.size();
    int choice = static_cast<int>(uniform(0, 99));
    if (choice < 35) {  // write at a random offset (holes when past the end)
      std::size_t off = uniform(0, kMaxFileSize - 1);
      std::size_t len = std::min<std::size_t>(uniform(1, kMaxIo), kMaxFileSize - off);
      std::uint8_t base = static_cast<std::uint8_t>(uniform(0, 255));
      for (std::size_t k = 0; k < len; ++k) buf[k] = static_cast<char>(base + k * 7);
      ASSERT_EQ(::pwrite(f.fd, buf.data(), len, static_cast<off_t>(off)),
                static_cast<ssize_t>(len));
      if (f.content.size() < off + len) f.content.resize(off + len, '\0');
      f.content.replace(off, len, buf.data(), len);
    } else if (choice < 45) {  // append through the O_APPEND descriptor
      if (size >= kMaxFileSize) continue;
      std::size_t len = std::min<std::size_t>(uniform(1, kMaxIo / 4), kMaxFileSize - size);
      std::memset(buf.data(), static_cast<int>('a' + op_count % 26), len);
      ASSERT_EQ(::write(f.append_fd, buf.data(), len), static_cast<ssize_t>(len));
      f.content.append(buf.data(), len);
    } else if (choice < 70) {  // read and check
      if (size == 0) continue;
      std::size_t off = uniform(0, size - 1);
      std::size_t len = uniform(1, kMaxIo);
      ssize_t n = ::pread(f.fd, buf.data(), len, static_cast<off_t>(off));
      std::size_t want = std::min(len, size - off);
      ASSERT_EQ(n, static_cast<ssize_t>(want));
      ASSERT_EQ(std::memcmp(buf.data(), f.content.data() + off, want), 0)
          << "read mismatch at " << off << " in f" << i;
    } else if (choice < 78) {  // truncate up or down
      std::size_t to = uniform(0, kMaxFileSize);
      ASSERT_EQ(::ftruncate(f.fd, static_cast<off_t>(to)), 0);
      f.content.resize(to, '\0');
    } else if (choice < 86) {  // fallocate, four flavours
      std::size_t off = uniform(0, kMaxFileSize - 1);
      std::size_t len = std::min<std::size_t>(uniform(1, kMaxIo * 2), kMaxFileSize - off);
      int mode = static_cast<int>(uniform(0, 3));
      if (mode == 0) {
        ASSERT_EQ(::fallocate(f.fd, 0, static_cast<off_t>(off), static_cast<off_t>(len)), 0);
        if (f.content.size() < off + len) f.content.resize(off + len, '\0');
      } else if (mode == 1) {
        ASSERT_EQ(::fallocate(f.fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                              static_cast<off_t>(len)),
                  0);
      } else if (mode == 2) {
        ASSERT_EQ(::fallocate(f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(off), static_cast<off_t>(len)),
                  0);
        if (off < f.content.size()) {
          std::size_t end = std::min(off + len, f.content.size());
          std::fill(f.content.begin() + off, f.content.begin() + end, '\0');
        }
      } else {
        ASSERT_EQ(::fallocate(f.fd, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(off),
                              static_cast<off_t>(len)),
                  0);
        if (f.content.size() < off + len) f.content.resize(off + len, '\0');
        std::fill(f.content.begin() + off, f.content.begin() + off + len, '\0');
      }
    } else if (choice < 92) {  // rename over another name (descriptors follow)
      int j = static_cast<int>(uniform(0, kFiles - 1));
      if (j == i) continue;
      ModelFile& g = files[j];
      Close(g);
      ASSERT_EQ(::rename(Name(i).c_str(), Name(j).c_str()), 0);
      g = f;
      f = ModelFile();
    } else if (choice < 96) {  // close and reopen
      Close(f);
      ASSERT_NO_FATAL_FAILURE(Open(i, f));
    } else if (choice < 98) {  // fsync / fdatasync
      ASSERT_EQ(choice % 2 ? ::fsync(f.fd) : ::fdatasync(f.fd), 0);
    } else {  // unlink (a later op recreates it)
      Close(f);
      ASSERT_EQ(::unlink(Name(i).c_str()), 0);
      f = ModelFile();
    }
  }
  for (int i = 0; i < kFiles; ++i) {
    Close(files[i]);
    if (!files[i].exists) {
      EXPECT_NE(::access(Name(i).c_str(), F_OK), 0) << "f" << i;
      continue;
    }
    EXPECT_TRUE(ReadFile(Name(i)) == files[i].content) << "final content of f" << i;
  }
  RecordProperty("operations", static_cast<int>(op_count));
  ExpectMirrored();
}

// Writers racing over the same few KiB: whatever order the local file saw,
// the mirror must have seen the same one (apply + submit under one lock).
// The kernel already serialises writes through one name (it holds the
// inode lock of the FUSE inode during the request), so the writers go
// through four hard links: four FUSE inodes, one real inode, and only the
// interceptor's per-inode lock keeps the two sides in the same order.
// Only the last writes to each byte show in the end, so the writers share
// one budget (they stop together, racing to the end) and the trees are
// compared after each of several rounds.
TEST_F(FsxTest, ConcurrentWritersToTheSameBytes) {
  constexpr int kThreads = 8, kRounds = 12, kWritesPerRound = 1500;
  constexpr std::size_t kRegion = 16 << 10;
  ASSERT_TRUE(WriteFile(P("shared"), std::string(kRegion, '.')));
  const std::vector<std::string> names = {"shared", "alias1", "alias2", "alias3"};
  for (std::size_t i = 1; i < names.size(); ++i) {
    ASSERT_EQ(::link(P("shared").c_str(), P(names[i]).c_str()), 0);
  }
  for (int round = 0; round < kRounds; ++round) {
    std::atomic<int> budget{kWritesPerRound};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([this, t, round, &names, &budget] {
        std::mt19937 rng(1000 * round + t);
        int fd = ::open(P(names[t % names.size()]).c_str(), O_WRONLY);
        std::vector<char> data(2048);
        for (int n = 0; budget.fetch_sub(1) > 0; ++n) {
          std::size_t len = 1 + rng() % data.size();
          std::size_t off = rng() % (kRegion - len);
          std::memset(data.data(), 'A' + (t * 7 + n) % 26, len);
          if (::pwrite(fd, data.data(), len, static_cast<off_t>(off)) !=
              static_cast<ssize_t>(len)) {
            ADD_FAILURE() << "pwrite: " << std::strerror(errno);
            break;
          }
          if (n % 300 == 299) ::ftruncate(fd, static_cast<off_t>(kRegion + (rng() % 4096)));
        }
        ::close(fd);
      });
    }
    for (auto& t : threads) t.join();
    SCOPED_TRACE("round " + std::to_string(round));
    ExpectMirrored();
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace hakit::replication::testing
