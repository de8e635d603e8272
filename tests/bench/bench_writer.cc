// hakit-bench-writer: the I/O side of the replication benchmark, run either
// directly (a plain directory) or inside a hakitd's namespaces (through the
// replicated dir's FUSE mount), so that every case runs the same code.
//
//   hakit-bench-writer seq PATH MIB          MIB MiB in 1 MiB write(2) calls,
//                                            then fdatasync: "mib_s=X"
//   hakit-bench-writer seq2 PATH1 PATH2 MIB  the same data to two files, by
//                                            two threads at once (each as seq):
//                                            "mib_s=X" of data, until both are
//                                            synced
//   hakit-bench-writer lat PATH N            N x (4 KiB pwrite + fdatasync) at
//                                            growing offsets:
//                                            "p50_us=X p99_us=Y mean_us=Z"
// The files are left in place (the caller removes them).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "hakit-bench-writer: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

int Open(const char* path) {
  return ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

bool WriteAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// Writes `mib` MiB of 1 MiB blocks to `fd`, then fdatasync.
bool WriteFile(int fd, long mib) {
  std::vector<char> block(1 << 20);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 131 + 7);
  for (long i = 0; i < mib; ++i) {
    std::memcpy(block.data(), &i, sizeof i);  // no two blocks alike
    if (!WriteAll(fd, block.data(), block.size())) return false;
  }
  return ::fdatasync(fd) == 0;
}

// One file, or two written at the same time by two threads (as the
// primary's and the secondary's copies are): MiB/s of data, until the last
// file is synced.
int Sequential(const std::vector<const char*>& paths, long mib) {
  std::vector<int> fds;
  for (const char* p : paths) {
    int fd = Open(p);
    if (fd < 0) return Fail(std::string("open ") + p);
    fds.push_back(fd);
  }
  std::vector<char> ok(fds.size(), 0);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (std::size_t f = 0; f < fds.size(); ++f) {
    threads.emplace_back([&, f] { ok[f] = WriteFile(fds[f], mib); });
  }
  for (auto& t : threads) t.join();
  double took = Seconds(start);
  for (std::size_t f = 0; f < fds.size(); ++f) {
    if (!ok[f]) return Fail(std::string("write/fdatasync ") + paths[f]);
    ::close(fds[f]);
  }
  std::printf("mib_s=%.1f seconds=%.3f mib=%ld\n", static_cast<double>(mib) / took, took, mib);
  return 0;
}

int Latency(const char* path, long n) {
  int fd = Open(path);
  if (fd < 0) return Fail(std::string("open ") + path);
  char block[4096];
  std::memset(block, 's', sizeof block);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) {
    auto start = Clock::now();
    if (::pwrite(fd, block, sizeof block, static_cast<off_t>(i) * 4096) != 4096) {
      return Fail(std::string("pwrite ") + path);
    }
    if (::fdatasync(fd) != 0) return Fail(std::string("fdatasync ") + path);
    us.push_back(Seconds(start) * 1e6);
  }
  ::close(fd);
  double sum = 0;
  for (double v : us) sum += v;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    std::size_t k = static_cast<std::size_t>(q * static_cast<double>(us.size() - 1) + 0.5);
    return us[std::min(k, us.size() - 1)];
  };
  std::printf("p50_us=%.1f p99_us=%.1f mean_us=%.1f n=%ld\n", at(0.50), at(0.99),
              sum / static_cast<double>(us.size()), n);
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: hakit-bench-writer seq PATH MIB | seq2 PATH1 PATH2 MIB | lat PATH N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::string mode = argv[1];
  if (mode == "seq" && argc == 4) {
    long mib = std::atol(argv[3]);
    if (mib <= 0) return Usage();
    return Sequential({argv[2]}, mib);
  }
  if (mode == "seq2" && argc == 5) {
    long mib = std::atol(argv[4]);
    if (mib <= 0) return Usage();
    return Sequential({argv[2], argv[3]}, mib);
  }
  if (mode == "lat" && argc == 4) {
    long n = std::atol(argv[3]);
    if (n <= 0) return Usage();
    return Latency(argv[2], n);
  }
  return Usage();
}
