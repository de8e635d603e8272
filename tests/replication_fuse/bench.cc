// hakit-fuse-bench: what the FUSE interception costs, with no replication.
//
// Measures, on a plain directory and then through the interceptor mounted
// with a null sink ("FUSE alone"):
//  - sequential writes: N MiB in 1 MiB write(2) calls, then fdatasync;
//  - small synchronous writes: 4 KiB pwrite + fdatasync, p50/p99 latency.
// Ends with one line "BENCH fuse_interceptor key=value ...".
//
//   hakit-fuse-bench [--dir PARENT] [--mib N] [--samples N] [--threads N] [--rounds N]
//
// Needs root and /dev/fuse. PARENT (default /var/tmp) gets a temporary
// directory, removed at the end.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>
#include <string>
#include <vector>

#include "hakit/replication/interceptor.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double seq_mib_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Writes `mib` MiB in 1 MiB calls then fdatasync; MiB/s over both.
bool Sequential(const std::string& dir, int mib, double* mib_s) {
  std::string path = dir + "/seq.bin";
  std::vector<char> block(1 << 20, 'x');
  // Start from a quiet disk: what the previous run left dirty is flushed.
  ::sync();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  auto start = Clock::now();
  for (int i = 0; i < mib; ++i) {
    block[0] = static_cast<char>(i);
    if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
      ::close(fd);
      return false;
    }
  }
  bool ok = ::fdatasync(fd) == 0;
  double took = Seconds(start);
  ::close(fd);
  ::unlink(path.c_str());
  ::sync();
  *mib_s = mib / took;
  return ok;
}

// `samples` timed 4 KiB pwrite + fdatasync at growing offsets of `fd`,
// starting at sample `first`; appends microseconds to *us.
bool SmallSync(int fd, int first, int samples, std::vector<double>* us) {
  char block[4096];
  std::memset(block, 's', sizeof block);
  for (int i = first; i < first + samples; ++i) {
    auto start = Clock::now();
    if (::pwrite(fd, block, sizeof block, static_cast<off_t>(i) * 4096) != 4096 ||
        ::fdatasync(fd) != 0) {
      return false;
    }
    us->push_back(Seconds(start) * 1e6);
  }
  return true;
}

void Percentiles(std::vector<double> us, double* p50, double* p99) {
  std::sort(us.begin(), us.end());
  *p50 = us[us.size() / 2];
  *p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs the sequential test `rounds` times on each directory, alternating,
// so that both see the same disk weather; keeps the medians.
bool Measure(const std::string& plain, const std::string& fused, int mib, int samples,
             int rounds, Figures* a, Figures* b) {
  std::vector<double> seq_a, seq_b;
  for (int r = 0; r < rounds; ++r) {
    double x = 0, y = 0;
    if (!Sequential(plain, mib, &x) || !Sequential(fused, mib, &y)) {
      std::fprintf(stderr, "sequential write failed: %s\n", std::strerror(errno));
      return false;
    }
    std::printf("round %d: sequential %d MiB + fdatasync: plain %8.1f MiB/s  fuse %8.1f MiB/s\n",
                r + 1, mib, x, y);
    std::fflush(stdout);
    seq_a.push_back(x);
    seq_b.push_back(y);
  }
  a->seq_mib_s = Median(seq_a);
  b->seq_mib_s = Median(seq_b);
  // Small synchronous writes, in alternating slices of 100 on each side.
  ::sync();
  std::string pa = plain + "/small.bin", pb = fused + "/small.bin";
  int fa = ::open(pa.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int fb = ::open(pb.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<double> us_a, us_b;
  bool ok = fa >= 0 && fb >= 0;
  for (int done = 0; ok && done < samples; done += 100) {
    int n = std::min(100, samples - done);
    ok = SmallSync(fa, done, n, &us_a) && SmallSync(fb, done, n, &us_b);
  }
  if (fa >= 0) ::close(fa);
  if (fb >= 0) ::close(fb);
  ::unlink(pa.c_str());
  ::unlink(pb.c_str());
  if (!ok || us_a.empty()) {
    std::fprintf(stderr, "small synchronous writes failed: %s\n", std::strerror(errno));
    return false;
  }
  Percentiles(us_a, &a->p50_us, &a->p99_us);
  Percentiles(us_b, &b->p50_us, &b->p99_us);
  for (auto [label, f] : {std::pair{"plain", a}, std::pair{"fuse", b}}) {
    std::printf("%-6s sequential (median of %d): %8.1f MiB/s   4 KiB write+fdatasync x%d: "
                "p50 %7.1f us  p99 %7.1f us\n",
                label, rounds, f->seq_mib_s, samples, f->p50_us, f->p99_us);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string parent = "/var/tmp";
  int mib = 256, samples = 2000, threads = 8, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string arg = argv[i];
    if (arg == "--dir") parent = argv[i + 1];
    else if (arg == "--mib") mib = std::atoi(argv[i + 1]);
    else if (arg == "--samples") samples = std::atoi(argv[i + 1]);
    else if (arg == "--threads") threads = std::atoi(argv[i + 1]);
    else if (arg == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "usage: %s [--dir PARENT] [--mib N] [--samples N] [--threads N] [--rounds N]\n",
                   argv[0]);
      return 2;
    }
  }
  std::string base = parent + "/hakit-fuse-bench-XXXXXX";
  if (::mkdtemp(base.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  std::string plain = base + "/plain", fused = base + "/fuse";
  ::mkdir(plain.c_str(), 0755);
  ::mkdir(fused.c_str(), 0755);
  int rc = 0;
  Figures a, b;
  hakit::replication::InterceptorOptions options;
  options.dir = fused;
  options.sink = nullptr;  // FUSE alone
  options.threads = threads;
  auto mounted = hakit::replication::Interceptor::Mount(options);
  if (!mounted.ok()) {
    std::fprintf(stderr, "mount: %s\n", mounted.status().ToString().c_str());
    rc = 1;
  } else {
    if (!Measure(plain, fused, mib, samples, rounds, &a, &b)) rc = 1;
    (*mounted)->Unmount();
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  if (rc != 0) return rc;
  std::printf("BENCH fuse_interceptor mib=%d samples=%d seq_plain_mibs=%.1f seq_fuse_mibs=%.1f "
              "seq_ratio=%.2f lat_plain_p50_us=%.1f lat_plain_p99_us=%.1f lat_fuse_p50_us=%.1f "
              "lat_fuse_p99_us=%.1f lat_p50_ratio=%.2f\n",
              mib, samples, a.seq_mib_s, b.seq_mib_s, b.seq_mib_s / a.seq_mib_s, a.p50_us,
              a.p99_us, b.p50_us, b.p99_us, b.p50_us / a.p50_us);
  return 0;
}
