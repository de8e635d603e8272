// hakit-fuse-bench: what the FUSE interception costs, with no replication,
// and what the record of changes and the hot-zone log add to it.
//
// Measures, on a plain directory, through the interceptor mounted with a
// null sink ("FUSE alone"), and through the interceptor as a primary running
// ALONE has it ("recorded": the SyncGate noting every change in a DirtyMap
// persisted to disk, the hot-zone log written before each write, and the
// cooler every second, as hakitd runs them):
//  - sequential writes: N MiB in 1 MiB write(2) calls, then fdatasync;
//  - small synchronous writes: 4 KiB pwrite + fdatasync, p50/p99 latency;
//  - scattered 4 KiB writes (no fsync) over a 256 MiB file, twice: the first
//    pass dirties new zones (the record and hot log write), the second
//    rewrites zones already noted (no I/O for either): mean latency of each;
//  - 2000 new 4 KiB files (create, write, close): mean per file (a new file
//    costs the record a whole-file entry and the hot log an extent, on disk).
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
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "hakit/replication/dirty_map.h"
#include "hakit/replication/hot_zones.h"
#include "hakit/replication/interceptor.h"
#include "hakit/replication/manifest.h"
#include "hakit/replication/sender.h"
#include "hakit/replication/sync.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double seq_mib_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double new_zone_us = 0;    // scattered 4 KiB writes, first pass (mean)
  double dirty_zone_us = 0;  // the same offsets again (mean)
  double small_file_us = 0;  // create + 4 KiB write + close of a new file (mean)
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

// 4 KiB pwrite at `count` random 4 KiB-aligned offsets of a 256 MiB file,
// then at the same offsets again; mean microseconds of each pass.
// `existing` runs once the file exists (the record then starts afresh, as if
// the file predated the primary running alone).
bool Scattered(const std::string& dir, int count, const std::function<void()>& existing,
               double* first_us, double* again_us) {
  const std::string path = dir + "/scattered.bin";
  ::sync();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::ftruncate(fd, 256 << 20) != 0) return false;
  if (existing) existing();
  std::mt19937_64 rng(42);
  std::vector<off_t> offsets;
  for (int i = 0; i < count; ++i) offsets.push_back(static_cast<off_t>(rng() % 65536) * 4096);
  char block[4096];
  std::memset(block, 'r', sizeof block);
  bool ok = true;
  for (double* out : {first_us, again_us}) {
    auto start = Clock::now();
    for (off_t off : offsets) ok = ok && ::pwrite(fd, block, sizeof block, off) == 4096;
    *out = Seconds(start) * 1e6 / count;
  }
  ::close(fd);
  ::unlink(path.c_str());
  return ok;
}

// `count` new files of 4 KiB each (create, write, close), mean microseconds.
bool SmallFiles(const std::string& dir, int count, double* us) {
  const std::string sub = dir + "/small";
  ::sync();
  if (::mkdir(sub.c_str(), 0755) != 0) return false;
  char block[4096];
  std::memset(block, 'f', sizeof block);
  bool ok = true;
  auto start = Clock::now();
  for (int i = 0; ok && i < count; ++i) {
    int fd = ::open((sub + "/" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    0644);
    ok = fd >= 0 && ::write(fd, block, sizeof block) == 4096;
    if (fd >= 0) ::close(fd);
  }
  *us = Seconds(start) * 1e6 / count;
  std::error_code ec;
  std::filesystem::remove_all(sub, ec);
  return ok;
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

// Runs the sequential test `rounds` times on each directory, in turn, so
// that all see the same disk weather; keeps the medians. Then the small
// synchronous writes (alternating slices of 100) and the scattered writes.
bool Measure(const std::vector<std::pair<std::string, std::string>>& dirs, int mib, int samples,
             int rounds, const std::function<void(const std::string&)>& existing,
             std::vector<Figures>* out) {
  const std::size_t n = dirs.size();
  out->assign(n, Figures{});
  std::vector<std::vector<double>> seq(n);
  for (int r = 0; r < rounds; ++r) {
    std::printf("round %d: sequential %d MiB + fdatasync:", r + 1, mib);
    for (std::size_t i = 0; i < n; ++i) {
      double x = 0;
      if (!Sequential(dirs[i].second, mib, &x)) {
        std::fprintf(stderr, "sequential write failed: %s\n", std::strerror(errno));
        return false;
      }
      seq[i].push_back(x);
      std::printf("  %s %8.1f MiB/s", dirs[i].first.c_str(), x);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  ::sync();
  std::vector<int> fds;
  std::vector<std::vector<double>> us(n);
  bool ok = true;
  for (const auto& [label, dir] : dirs) {
    fds.push_back(::open((dir + "/small.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                         0644));
    ok = ok && fds.back() >= 0;
  }
  for (int done = 0; ok && done < samples; done += 100) {
    for (std::size_t i = 0; ok && i < n; ++i) {
      ok = SmallSync(fds[i], done, std::min(100, samples - done), &us[i]);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (fds[i] >= 0) ::close(fds[i]);
    ::unlink((dirs[i].second + "/small.bin").c_str());
  }
  if (!ok || us[0].empty()) {
    std::fprintf(stderr, "small synchronous writes failed: %s\n", std::strerror(errno));
    return false;
  }
  for (std::size_t i = 0; i < n; ++i) {
    Figures& f = (*out)[i];
    f.seq_mib_s = Median(seq[i]);
    Percentiles(us[i], &f.p50_us, &f.p99_us);
    if (!Scattered(
            dirs[i].second, 20000, [&] { existing(dirs[i].first); }, &f.new_zone_us,
            &f.dirty_zone_us)) {
      std::fprintf(stderr, "scattered writes failed: %s\n", std::strerror(errno));
      return false;
    }
    if (!SmallFiles(dirs[i].second, 2000, &f.small_file_us)) {
      std::fprintf(stderr, "small files failed: %s\n", std::strerror(errno));
      return false;
    }
    std::printf("%-9s sequential (median of %d): %8.1f MiB/s   4 KiB write+fdatasync x%d: "
                "p50 %7.1f us  p99 %7.1f us   scattered 4 KiB: new zone %6.1f us, "
                "noted zone %6.1f us   new 4 KiB file %6.1f us\n",
                dirs[i].first.c_str(), rounds, f.seq_mib_s, samples, f.p50_us, f.p99_us,
                f.new_zone_us, f.dirty_zone_us, f.small_file_us);
  }
  return true;
}

// The write path of a primary running ALONE: a gate that drops every change
// (nothing replicates) and notes it in a persisted record, the hot-zone log,
// and the cooler, as ModuleReplication sets them up.
class Recorded {
 public:
  explicit Recorded(const std::string& state)
      : sender_(SenderOptions()), gate_(sender_, 0), record_(hakit::replication::kDefaultZoneSize) {
    ok_ = record_.Persist(state + "/record.log").ok();
    record_.Reset(1);
    auto hot = hakit::replication::HotZones::Open(state + "/hot.log");
    ok_ = ok_ && hot.ok();
    if (hot.ok()) hot_ = std::move(*hot);
    gate_.BeginSync();
    gate_.set_dirty(&record_);
    gate_.set_hot(hot_.get());
  }
  ~Recorded() { Stop(); }
  bool ok() const { return ok_; }
  hakit::replication::OperationSink* sink() { return &gate_; }
  // Changes from now on are what the secondary misses.
  void Restart() { record_.Reset(1); }
  void Start(hakit::replication::Interceptor* mount) {
    cooler_ = std::thread([this, mount] {
      std::unique_lock lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
        lock.unlock();
        hakit::replication::CoolHotZones(*mount, *hot_, record_);
        lock.lock();
      }
    });
  }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (cooler_.joinable()) cooler_.join();
  }

 private:
  static hakit::replication::SenderOptions SenderOptions() {
    hakit::replication::SenderOptions o;
    o.module = "bench";
    o.peer_address = "198.18.0.1";  // never connected
    o.peer_port = 9;
    return o;
  }
  hakit::replication::ReplicationSender sender_;
  hakit::replication::SyncGate gate_;
  hakit::replication::DirtyMap record_;
  std::unique_ptr<hakit::replication::HotZones> hot_;
  bool ok_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread cooler_;
};

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
  const std::string plain = base + "/plain", fused = base + "/fuse",
                    recorded = base + "/recorded", state = base + "/state";
  for (const auto& d : {plain, fused, recorded, state}) ::mkdir(d.c_str(), 0755);
  int rc = 0;
  std::vector<Figures> f;
  Recorded rec(state);
  hakit::replication::InterceptorOptions options;
  options.dir = fused;
  options.sink = nullptr;  // FUSE alone
  options.threads = threads;
  auto mounted = hakit::replication::Interceptor::Mount(options);
  options.dir = recorded;
  options.sink = rec.sink();
  auto mounted_rec = hakit::replication::Interceptor::Mount(options);
  if (!mounted.ok() || !mounted_rec.ok() || !rec.ok()) {
    std::fprintf(stderr, "mount: %s %s%s\n", mounted.status().ToString().c_str(),
                 mounted_rec.status().ToString().c_str(), rec.ok() ? "" : " (record logs)");
    rc = 1;
  } else {
    rec.Start(mounted_rec->get());
    auto existing = [&](const std::string& label) {
      if (label == "recorded") rec.Restart();
    };
    if (!Measure({{"plain", plain}, {"fuse", fused}, {"recorded", recorded}}, mib, samples, rounds,
                 existing, &f)) {
      rc = 1;
    }
    rec.Stop();
  }
  if (mounted.ok()) (*mounted)->Unmount();
  if (mounted_rec.ok()) (*mounted_rec)->Unmount();
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  if (rc != 0) return rc;
  const Figures &a = f[0], &b = f[1], &c = f[2];
  std::printf("BENCH fuse_interceptor mib=%d samples=%d seq_plain_mibs=%.1f seq_fuse_mibs=%.1f "
              "seq_ratio=%.2f lat_plain_p50_us=%.1f lat_plain_p99_us=%.1f lat_fuse_p50_us=%.1f "
              "lat_fuse_p99_us=%.1f lat_p50_ratio=%.2f seq_recorded_mibs=%.1f "
              "record_seq_ratio=%.2f lat_recorded_p50_us=%.1f record_lat_p50_ratio=%.2f "
              "fuse_new_zone_us=%.1f recorded_new_zone_us=%.1f fuse_noted_zone_us=%.1f "
              "recorded_noted_zone_us=%.1f fuse_small_file_us=%.1f recorded_small_file_us=%.1f\n",
              mib, samples, a.seq_mib_s, b.seq_mib_s, b.seq_mib_s / a.seq_mib_s, a.p50_us,
              a.p99_us, b.p50_us, b.p99_us, b.p50_us / a.p50_us, c.seq_mib_s,
              c.seq_mib_s / b.seq_mib_s, c.p50_us, c.p50_us / b.p50_us, b.new_zone_us,
              c.new_zone_us, b.dirty_zone_us, c.dirty_zone_us, b.small_file_us, c.small_file_us);
  return 0;
}
