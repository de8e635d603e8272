// The replication benchmark: what synchronous replication costs a writer of
// the replicated dir, against the same writer on the same disk without it.
//
// One ClusterRig (RigOptions::replicated, async="second", the rig's default)
// on this machine: both nodes' copies, and every baseline, are on the
// filesystem of the rig's work directory. Every case runs the same program,
// hakit-bench-writer, inside the primary hakitd's namespaces (RunInDaemon),
// where the replicated dir's FUSE mount is:
//   replicated  the replicated dir, paired (PRIM/SECOND), replication
//               "replicating": each write goes through FUSE to the local copy
//               and to the secondary, which writes its own copy;
//   local       a plain directory beside the nodes' roots (the baseline);
//   local_x2    the same data written to two files of that directory by two
//               threads at once (as the two copies are written by two
//               processes): the bound for two copies on one disk;
//   fuse        the replicated dir once the secondary's hakitd is stopped:
//               the primary goes ALONE, the mount stays, nothing is sent.
//               Each fuse run follows a local run of that phase (printed, not
//               in the BENCH line), to show drift of the disk between phases.
// Sequential: MIB MiB in 1 MiB write(2) calls ending with fdatasync, MiB/s.
// Latency: N x (4 KiB pwrite + fdatasync), p50/p99 in µs, replicated and local.
// Between cases the files are removed and the disk synced (sync(2)). One
// unrecorded warm-up round first (--no-warmup); sequential cases are
// interleaved by round (--rounds, median). Each sequential run prints the CPU
// time both hakitd used during it (diagnostic, not in the BENCH line), and the
// fuse phase also prints its 4 KiB write+fdatasync latency.
//
// Ends with one line:
//   BENCH replication seq_mib_s=.. local_mib_s=.. local_x2_mib_s=.. fuse_mib_s=..
//     ratio_local=.. ratio_x2=.. ratio_fuse=.. fsync_p50_us=.. fsync_p99_us=..
//     local_fsync_p50_us=.. fsync_ratio=..
// ratio_* = seq_mib_s / the baseline; fsync_ratio = fsync_p50_us / local_fsync_p50_us.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "hakit/rig/cluster_rig.h"
#include "hakit/testbed/testbed.h"

namespace hakit::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using rig::ClusterRig;
using rig::RigOptions;
using sdk::Result;
using sdk::Status;

struct Options {
  int mib = 1024;
  int samples = 2000;
  int rounds = 3;
  std::string async = "second";
  fs::path work_parent = "/var/tmp";
  bool warmup = true;
  bool keep = false;
  bool verbose = false;
};

void Usage() {
  std::cout <<
      R"(usage: hakit-bench-replication [options]
  --mib N          MiB per sequential run (default 1024)
  --samples N      4 KiB write+fdatasync samples per latency run (default 2000)
  --rounds N       sequential runs per case, interleaved, median reported (default 3)
  --no-warmup      no unrecorded first round
  --async MODE     the <rfs> async attribute: second (default) or none
  --dir PARENT     parent of the rig's work directory (default /var/tmp; every
                   case writes on this filesystem)
  --keep           keep the work directory (logs)
  --verbose        print more while running
Needs root (network namespaces) and /dev/fuse. Ends with:
  BENCH replication seq_mib_s=.. local_mib_s=.. local_x2_mib_s=.. fuse_mib_s=.. ratio_local=..
    ratio_x2=.. ratio_fuse=.. fsync_p50_us=.. fsync_p99_us=.. local_fsync_p50_us=.. fsync_ratio=..
)";
}

fs::path ExecutableDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : exe.parent_path();
}

std::string Fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}
std::string Fmt2(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

class ReplicationBench {
 public:
  explicit ReplicationBench(const Options& o) : o_(o) {}

  Status Setup() {
    RigOptions r;
    r.replicated = true;
    r.replication_async = o_.async;
    r.bin_dir = ExecutableDir();
    r.keep_work_dir = o_.keep;
    // A folder of our own: /tmp/hakit-hk-* is shared with the cluster tests.
    r.work_dir = o_.work_parent / ("hakit-bench-replication-" + std::to_string(::getpid()));
    auto rig = ClusterRig::Create(r);
    if (!rig.ok()) return rig.status().WithContext("replicated rig");
    rig_ = std::move(*rig);
    for (const auto& n : rig_->nodes()) {
      if (Status s = rig_->StartDaemon(n); !s.ok()) return s;
    }
    for (const auto& n : rig_->nodes()) {
      auto c = rig_->Command(n, "start");
      if (!c.ok()) return c.status();
      if (c->exit_code != 0) return Status::Failed("hakit start on " + n + ": " + c->error);
    }
    auto prim = rig_->WaitPaired(30s);
    if (!prim.ok()) return prim.status();
    prim_ = *prim;
    if (!WaitReplication(prim_, "replicating", 20s)) {
      return Status::Timeout("replication of " + prim_ + " not replicating: " +
                             Replication(prim_).dump());
    }
    local_ = rig_->work_dir() / "local";
    std::error_code ec;
    fs::create_directories(local_, ec);
    if (ec) return Status::IoError("cannot create " + local_.string() + ": " + ec.message());
    writer_ = (ExecutableDir() / "hakit-bench-writer").string();
    std::cout << "rig " << rig_->work_dir().string() << ": " << prim_ << " PRIM, "
              << rig_->Peer(prim_) << " SECOND, replication " << Replication(prim_).dump()
              << "\n";
    return Status::Ok();
  }

  nlohmann::json Replication(const std::string& node) {
    auto m = rig_->ModuleState(node);
    if (!m.ok()) return nlohmann::json::object();
    return m->value("details", nlohmann::json::object())
        .value("replication", nlohmann::json::object());
  }

  bool WaitReplication(const std::string& node, const std::string& state,
                       std::chrono::milliseconds wait) {
    auto deadline = Clock::now() + wait;
    do {
      if (Replication(node).value("state", "") == state) return true;
      std::this_thread::sleep_for(50ms);
    } while (Clock::now() < deadline);
    return false;
  }

  // Runs the writer in the primary's namespaces; returns its figures.
  Result<std::map<std::string, double>> Writer(const std::vector<std::string>& args,
                                               const std::string& label) {
    std::vector<std::string> argv = {writer_};
    argv.insert(argv.end(), args.begin(), args.end());
    auto out = rig_->RunInDaemon(prim_, argv, 1800s);
    if (!out.ok()) return out.status().WithContext(label);
    if (out->status.code != 0) {
      return Status::Failed(label + ": writer " + out->status.ToString() + ": " + out->output);
    }
    if (o_.verbose) std::cout << "  (" << label << ": " << out->output << ")\n";
    return ParseFigures(out->output);
  }

  // Removes the files of the last case and flushes the disk.
  void Clean(const std::vector<std::string>& paths) {
    std::vector<std::string> argv = {"rm", "-f"};
    argv.insert(argv.end(), paths.begin(), paths.end());
    rig_->RunInDaemon(prim_, argv, 60s);
    ::sync();
  }

  std::string Rep(const std::string& f) const { return rig_->ReplicatedDir() + "/" + f; }
  std::string Loc(const std::string& f) const { return (local_ / f).string(); }

  Result<double> Seq(const std::vector<std::string>& paths, const std::string& label) {
    ::sync();
    std::vector<std::string> args = {paths.size() == 1 ? "seq" : "seq2"};
    args.insert(args.end(), paths.begin(), paths.end());
    args.push_back(std::to_string(o_.mib));
    std::map<std::string, double> cpu0;
    for (const auto& n : rig_->nodes()) {
      if (auto pid = rig_->DaemonPid(n)) cpu0[n] = CpuSeconds(*pid);
    }
    auto f = Writer(args, label);
    std::string cpu;
    for (const auto& [n, c] : cpu0) {
      if (auto pid = rig_->DaemonPid(n)) cpu += ", hakitd " + n + " " + Fmt2(CpuSeconds(*pid) - c) + " s CPU";
    }
    Clean(paths);
    if (!f.ok()) return f.status();
    std::cout << "  " << label << ": " << Fmt((*f)["mib_s"]) << " MiB/s (" << o_.mib << " MiB in "
              << Fmt2((*f)["seconds"]) << " s" << cpu << ")\n";
    std::cout.flush();
    return (*f)["mib_s"];
  }

  Result<std::map<std::string, double>> Lat(const std::string& path, const std::string& label) {
    ::sync();
    auto f = Writer({"lat", path, std::to_string(o_.samples)}, label);
    Clean({path});
    if (!f.ok()) return f.status();
    std::cout << "  " << label << ": p50 " << Fmt((*f)["p50_us"]) << " µs, p99 "
              << Fmt((*f)["p99_us"]) << " µs, mean " << Fmt((*f)["mean_us"]) << " µs (n="
              << o_.samples << ")\n";
    std::cout.flush();
    return *f;
  }

  // Sequential runs of the three cases that need the pair, interleaved by
  // round; then the latency runs.
  Status RunPaired() {
    // The first runs after the rig's start are slower (the disk still
    // flushing the rig's setup, cold caches): one unrecorded round.
    if (o_.warmup) {
      std::cout << "warm-up (not recorded)\n";
      for (auto& r : {Seq({Loc("seq.bin")}, "local"), Seq({Rep("seq.bin")}, "replicated")}) {
        if (!r.ok()) return r.status();
      }
    }
    for (int r = 0; r < o_.rounds && !g_interrupted; ++r) {
      std::cout << "round " << r + 1 << "/" << o_.rounds << "\n";
      auto l = Seq({Loc("seq.bin")}, "local");
      if (!l.ok()) return l.status();
      local_mib_.push_back(*l);
      auto x2 = Seq({Loc("seq_a.bin"), Loc("seq_b.bin")}, "local_x2");
      if (!x2.ok()) return x2.status();
      x2_mib_.push_back(*x2);
      auto rep = Seq({Rep("seq.bin")}, "replicated");
      if (!rep.ok()) return rep.status();
      rep_mib_.push_back(*rep);
      if (Replication(prim_).value("state", "") != "replicating") {
        return Status::Failed("replication left 'replicating' during the run: " +
                              Replication(prim_).dump());
      }
    }
    std::cout << "latency\n";
    auto ll = Lat(Loc("lat.bin"), "local");
    if (!ll.ok()) return ll.status();
    local_lat_ = *ll;
    auto rl = Lat(Rep("lat.bin"), "replicated");
    if (!rl.ok()) return rl.status();
    rep_lat_ = *rl;
    return Status::Ok();
  }

  // The secondary's hakitd stops: the primary goes ALONE, its mount stays and
  // sends nothing.
  Status RunAlone() {
    const std::string second = rig_->Peer(prim_);
    if (Status s = rig_->StopDaemon(second); !s.ok()) return s.WithContext("stop " + second);
    if (Status s = rig_->WaitState(prim_, cluster::State::kAlone, 30s); !s.ok()) return s;
    std::this_thread::sleep_for(1s);
    std::cout << "fuse (" << prim_ << " ALONE, replication " << Replication(prim_).dump()
              << ")\n";
    for (int r = 0; r < o_.rounds && !g_interrupted; ++r) {
      auto l = Seq({Loc("seq.bin")}, "local (alone phase)");
      if (!l.ok()) return l.status();
      local_alone_mib_.push_back(*l);
      auto f = Seq({Rep("seq.bin")}, "fuse");
      if (!f.ok()) return f.status();
      fuse_mib_.push_back(*f);
    }
    // Not in the BENCH line: how much of the replicated latency FUSE alone takes.
    auto fl = Lat(Rep("lat.bin"), "fuse latency");
    if (!fl.ok()) return fl.status();
    return Status::Ok();
  }

  void Report() {
    double seq = Summarize(rep_mib_).median;
    double local = Summarize(local_mib_).median;
    double x2 = Summarize(x2_mib_).median;
    double fuse = Summarize(fuse_mib_).median;
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    std::cout << "sequential MiB/s: replicated " << FormatSummary(Summarize(rep_mib_), "MiB/s")
              << "\n  local " << FormatSummary(Summarize(local_mib_), "MiB/s") << "\n  local_x2 "
              << FormatSummary(Summarize(x2_mib_), "MiB/s") << "\n  fuse "
              << FormatSummary(Summarize(fuse_mib_), "MiB/s") << "\n  local (alone phase) "
              << FormatSummary(Summarize(local_alone_mib_), "MiB/s") << "\n";
    double p50 = rep_lat_["p50_us"], p99 = rep_lat_["p99_us"], lp50 = local_lat_["p50_us"];
    std::cout << "BENCH replication seq_mib_s=" << Fmt(seq) << " local_mib_s=" << Fmt(local)
              << " local_x2_mib_s=" << Fmt(x2) << " fuse_mib_s=" << Fmt(fuse)
              << " ratio_local=" << Fmt2(ratio(seq, local)) << " ratio_x2=" << Fmt2(ratio(seq, x2))
              << " ratio_fuse=" << Fmt2(ratio(seq, fuse)) << " fsync_p50_us=" << Fmt(p50)
              << " fsync_p99_us=" << Fmt(p99) << " local_fsync_p50_us=" << Fmt(lp50)
              << " fsync_ratio=" << Fmt2(ratio(p50, lp50)) << "\n";
  }

 private:
  Options o_;
  std::unique_ptr<ClusterRig> rig_;
  std::string prim_;
  fs::path local_;
  std::string writer_;
  std::vector<double> rep_mib_, local_mib_, x2_mib_, fuse_mib_, local_alone_mib_;
  std::map<std::string, double> rep_lat_, local_lat_;
};

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--mib") {
      o.mib = std::atoi(next().c_str());
    } else if (a == "--samples") {
      o.samples = std::atoi(next().c_str());
    } else if (a == "--rounds") {
      o.rounds = std::atoi(next().c_str());
    } else if (a == "--async") {
      o.async = next();
    } else if (a == "--dir") {
      o.work_parent = next();
    } else if (a == "--no-warmup") {
      o.warmup = false;
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else {
      std::cerr << "unknown option " << a << "\n";
      Usage();
      return 2;
    }
  }
  if (o.mib <= 0 || o.samples <= 0 || o.rounds <= 0 || (o.async != "second" && o.async != "none")) {
    std::cerr << "bad option value\n";
    return 2;
  }
  if (Status s = testbed::Testbed::CheckPrerequisites(); !s.ok()) {
    std::cerr << "cannot build the testbed: " << s.message() << "\n";
    return 1;
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    std::cerr << "no /dev/fuse\n";
    return 1;
  }
  InstallInterruptHandler();
  std::cout << "replication benchmark: " << o.mib << " MiB sequential, " << o.samples
            << " x 4 KiB write+fdatasync, " << o.rounds << " round(s), async=" << o.async
            << ", under " << o.work_parent.string() << "\n";
  ReplicationBench b(o);
  Status s = b.Setup();
  if (s.ok()) s = b.RunPaired();
  if (s.ok()) s = b.RunAlone();
  if (!s.ok()) {
    std::cerr << "replication benchmark failed: " << s.message() << "\n";
    return 1;
  }
  b.Report();
  return 0;
}

}  // namespace
}  // namespace hakit::bench

int main(int argc, char** argv) { return hakit::bench::Main(argc, argv); }
