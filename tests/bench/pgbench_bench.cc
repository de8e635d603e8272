// The pgbench benchmark: PostgreSQL made highly available by the module
// library (modules/postgresql.so) against the same server without hakit.
//
//   tps        pgbench (TPC-B-like, --clients, --seconds) from the client
//              namespace through the VIP; PGDATA is the replicated dir of a
//              paired ClusterRig (PRIM/SECOND, async="second"): every WAL
//              write and fsync goes through FUSE to both copies;
//   local_tps  the same pgbench, same server binaries, settings and initial
//              data (one initdb, copied), on a plain data directory of the
//              same disk, in node1's namespace, reached at node1's address;
//              run first, before the cluster starts;
//   failover_ms  power cut of the primary (links down, every process of its
//              namespace killed with SIGKILL) to the first transaction
//              acknowledged through the VIP (hakit-pg-client, one INSERT at a
//              time, 200 ms connect/statement timeout); median of
//              --failovers runs, each on a fresh rig. "na" while the
//              secondary cannot take over: without full synchronisation its
//              copy misses what the server wrote at start-up as ALONE.
// Ends with: BENCH pgbench tps=.. local_tps=.. ratio=.. failover_ms=..
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "bench_util.h"
#include "hakit/rig/cluster_rig.h"
#include "hakit/testbed/testbed.h"
#include "pg_test_util.h"

namespace hakit::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using pgtest::kPgBin;
using rig::ClusterRig;
using rig::RigOptions;
using sdk::Result;
using sdk::Status;

struct Options {
  int seconds = 60;
  int clients = 4;
  int scale = 4;
  int failovers = 3;
  fs::path work_parent = "/var/tmp";
  bool keep = false;
};

void Usage() {
  std::cout << R"(usage: hakit-bench-pgbench [options]
  --seconds N     pgbench duration of each run (default 60)
  --clients N     pgbench clients (default 4)
  --scale N       pgbench -i scale factor (default 4)
  --failovers N   failover measurements, each on a fresh rig (default 3)
  --dir PARENT    parent of the work directories (default /var/tmp; both
                  data directories and the baseline live on this filesystem)
  --keep          keep the work directories (logs)
Needs root (network namespaces), /dev/fuse and postgresql-15. Ends with:
  BENCH pgbench tps=.. local_tps=.. ratio=.. failover_ms=..
)";
}

fs::path ExecutableDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : exe.parent_path();
}

long long RealtimeNs() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class PgBench {
 public:
  explicit PgBench(Options o) : o_(std::move(o)) {
    base_ = o_.work_parent / ("hakit-bench-pgbench-" + std::to_string(::getpid()));
  }
  ~PgBench() {
    ResetRig();
    std::error_code ec;
    if (!o_.keep) fs::remove_all(base_, ec);
  }

  Status Run() {
    if (Status s = pgtest::InitDbTemplate(base_ / "template"); !s.ok()) return s;
    if (Status s = MakeRig(0); !s.ok()) return s;

    // The baseline first, in node1's namespace, before any hakitd runs.
    fs::path local = base_ / "local" / "pgdata";
    std::error_code ec;
    fs::create_directories(local, ec);
    if (Status s = pgtest::CopyTemplate(base_ / "template", local); !s.ok()) return s;
    // The server writes its log and socket there.
    if (std::system(("chown postgres: " + (base_ / "local").string()).c_str()) != 0) {
      return Status::Failed("cannot give " + (base_ / "local").string() + " to postgres");
    }
    const std::string node1 = rig_->bed().NodeNamespace("node1");
    const std::string sock = (base_ / "local").string();
    auto started = AsPostgres(node1, {std::string(kPgBin) + "/pg_ctl", "start", "-D",
                                      local.string(), "-w", "-l", (base_ / "local" / "server.log").string(),
                                      "-o", "-p 5432 -k '" + sock + "' -c listen_addresses='*'"});
    if (!started.ok()) return started;
    auto local_tps = PgbenchRun(rig_->bed().Address("node1", 0), "local");
    AsPostgres(node1, {std::string(kPgBin) + "/pg_ctl", "stop", "-D", local.string(), "-m",
                       "fast", "-w"});
    if (!local_tps.ok()) return local_tps.status();

    if (Status s = StartPair(); !s.ok()) return s;
    auto tps = PgbenchRun(rig_->Vip(), "replicated");
    if (!tps.ok()) return tps.status();

    std::vector<double> failovers;
    for (int i = 0; i < o_.failovers && !g_interrupted; ++i) {
      if (i > 0) {
        ResetRig();
        if (Status s = MakeRig(i); !s.ok()) return s;
        if (Status s = StartPair(); !s.ok()) return s;
      }
      auto ms = Failover();
      if (!ms.ok() && ms.status().code() == Status::Code::kUnsupported) {
        std::printf("failover: not measured: %s\n", ms.status().message().c_str());
        break;
      }
      if (!ms.ok()) return ms.status();
      std::printf("failover %d: %s power cut -> first commit through the VIP %.0f ms\n", i + 1,
                  prim_.c_str(), *ms);
      std::fflush(stdout);
      failovers.push_back(*ms);
    }
    std::string failover_ms = "na";
    if (!failovers.empty()) {
      Summary f = Summarize(failovers);
      std::printf("failover: %s\n", FormatSummary(f).c_str());
      char b[32];
      std::snprintf(b, sizeof b, "%.0f", f.median);
      failover_ms = b;
    }
    std::printf("BENCH pgbench tps=%.1f local_tps=%.1f ratio=%.2f failover_ms=%s\n", *tps,
                *local_tps, *local_tps > 0 ? *tps / *local_tps : 0.0, failover_ms.c_str());
    return Status::Ok();
  }

 private:
  // Ends the rig, and the shared memory its killed postmasters left.
  void ResetRig() {
    if (!rig_) return;
    auto segments = pgtest::PostmasterSegments({rig_->DataDir("node1"), rig_->DataDir("node2")});
    rig_.reset();
    pgtest::RemoveUnattached(segments);
  }

  Status MakeRig(int n) {
    RigOptions r;
    r.module = "postgresql";
    r.replicated = true;
    r.replicated_dir_in_userconfig = false;
    r.library = ExecutableDir().parent_path() / "modules" / "postgresql.so";
    r.bin_dir = ExecutableDir();
    r.keep_work_dir = o_.keep;
    r.work_dir = base_ / ("rig" + std::to_string(n));
    auto rig = ClusterRig::Create(r);
    if (!rig.ok()) return rig.status().WithContext("rig");
    rig_ = std::move(*rig);
    if (Status s = rig_->SetUserVar("PGDATA", rig_->ReplicatedDir()); !s.ok()) return s;
    if (Status s = rig_->SetUserVar("PGSOCKETDIR", "%SAFEUSERVAR%/pgsock");
        !s.ok()) {
      return s;
    }
    for (const auto& node : rig_->nodes()) {
      if (Status s = pgtest::CopyTemplate(base_ / "template", rig_->DataDir(node)); !s.ok()) {
        return s;
      }
    }
    return Status::Ok();
  }

  Status StartPair() {
    for (const auto& n : rig_->nodes()) {
      if (Status s = rig_->StartDaemon(n); !s.ok()) return s;
    }
    for (const auto& n : rig_->nodes()) {
      auto c = rig_->Command(n, "start");
      if (!c.ok()) return c.status();
      if (c->exit_code != 0) return Status::Failed("hakit start on " + n + ": " + c->error);
    }
    // PRIM and SECOND with replication running (the secondary's copy is not
    // complete until full synchronisation exists: see Failover()).
    using cluster::State;
    for (auto until = Clock::now() + 60s; Clock::now() < until;) {
      State a = rig_->StateOf("node1"), b = rig_->StateOf("node2");
      prim_ = a == State::kPrim && b == State::kSecond   ? "node1"
              : b == State::kPrim && a == State::kSecond ? "node2"
                                                         : "";
      if (!prim_.empty()) {
        auto m = rig_->ModuleState(prim_);
        if (m.ok() && m->value("details", nlohmann::json::object())
                              .value("replication", nlohmann::json::object())
                              .value("state", "") == "replicating") {
          return Status::Ok();
        }
      }
      std::this_thread::sleep_for(50ms);
    }
    return Status::Timeout("the nodes did not pair: " +
                           ReadFile(rig_->LayoutOf("node1").ModuleLog("postgresql")) +
                           ReadFile(rig_->LayoutOf("node2").ModuleLog("postgresql")));
  }

  Status AsPostgres(const std::string& netns, std::vector<std::string> argv) {
    std::vector<std::string> cmd = {"setpriv", "--reuid=postgres", "--regid=postgres",
                                    "--init-groups", "--"};
    cmd.insert(cmd.end(), argv.begin(), argv.end());
    auto r = rig_->bed().RunIn(netns, cmd, 120s);
    if (!r.ok()) return r.status();
    if (r->status.code != 0) return Status::Failed(argv[0] + " " + argv[1] + ": " + r->output);
    return Status::Ok();
  }

  Result<std::string> Client(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
    auto r = rig_->bed().RunIn(rig_->bed().ClientNamespace(), argv, timeout);
    if (!r.ok()) return r.status();
    if (r->status.code != 0) return Status::Failed(argv[0] + ": " + r->output);
    return r->output;
  }

  // pgbench -i, then the timed run; returns its tps.
  Result<double> PgbenchRun(const std::string& host, const std::string& label) {
    const std::string pgbench = std::string(kPgBin) + "/pgbench";
    auto init = Client({pgbench, "-h", host, "-U", "postgres", "-i", "-q", "-s",
                        std::to_string(o_.scale), "postgres"},
                       600s);
    if (!init.ok()) return init.status().WithContext(label + " pgbench -i");
    auto out = Client({pgbench, "-h", host, "-U", "postgres", "-c", std::to_string(o_.clients),
                       "-j", std::to_string(std::min(o_.clients, 2)), "-T",
                       std::to_string(o_.seconds), "postgres"},
                      std::chrono::seconds(o_.seconds * 3 + 60));
    if (!out.ok()) return out.status().WithContext(label + " pgbench");
    auto pos = out->find("tps = ");
    if (pos == std::string::npos) return Status::Failed(label + ": no tps in " + *out);
    double tps = std::atof(out->c_str() + pos + 6);
    std::printf("%s (%s): %.1f tps\n", label.c_str(), host.c_str(), tps);
    std::fflush(stdout);
    return tps;
  }

  // Power cut of the primary while hakit-pg-client commits through the VIP.
  Result<double> Failover() {
    auto made = Client({std::string(kPgBin) + "/psql", "-X", "-q", "-h", rig_->Vip(), "-U",
                        "postgres", "-d", "postgres", "-c",
                        "DROP TABLE IF EXISTS t; CREATE TABLE t(i bigint PRIMARY KEY)"},
                       30s);
    if (!made.ok()) return made.status();
    fs::path ledger = rig_->work_dir() / "ledger.txt";
    testbed::SpawnOptions o;
    o.netns = rig_->bed().ClientNamespace();
    o.argv = {(ExecutableDir() / "hakit-pg-client").string(),
              "host=" + rig_->Vip() + " port=5432 user=postgres dbname=postgres", "0",
              "--timeout-ms", "200", "--time"};
    o.stdout_path = ledger.string();
    o.stderr_path = (rig_->work_dir() / "client.err").string();
    auto client = rig_->bed().Spawn(o);
    if (!client.ok()) return client.status();
    auto acked_after = [&](long long t) -> long long {
      std::istringstream in(ReadFile(ledger));
      long long i, ns;
      while (in >> i >> ns) {
        if (ns > t) return ns;
      }
      return 0;
    };
    auto wait_ack = [&](long long t, std::chrono::seconds wait) -> long long {
      auto deadline = Clock::now() + wait;
      while (Clock::now() < deadline && !g_interrupted) {
        if (long long ns = acked_after(t)) return ns;
        std::this_thread::sleep_for(5ms);
      }
      return 0;
    };
    Result<double> result = Status::Failed("no commit");
    if (wait_ack(0, 30s) == 0) {
      result = Status::Timeout("no commit through the VIP before the cut");
    } else {
      std::this_thread::sleep_for(500ms);
      long long cut = RealtimeNs();
      Status s = rig_->PowerCut(prim_);
      const long long cut_done = RealtimeNs();
      // Until full synchronisation exists the secondary's copy misses what
      // the server wrote while its primary was ALONE at start-up: it waits
      // for the operator instead of taking over. Nothing to time then.
      const std::string survivor = rig_->Peer(prim_);
      bool waits = false;
      for (auto until = Clock::now() + 10s; s.ok() && Clock::now() < until;) {
        auto m = rig_->ModuleState(survivor);
        if (m.ok() && m->value("state", "") == "ALONE") break;
        if (m.ok() && m->value("state", "") == "WAIT" && !m->value("busy", true) &&
            m->value("details", nlohmann::json::object()).value("data", "") != "up_to_date") {
          waits = true;
          break;
        }
        std::this_thread::sleep_for(5ms);
      }
      // Acknowledgements that arrive while the cut is under way may still
      // come from the old primary: only those after it count, timed from
      // its start.
      long long first = s.ok() && !waits ? wait_ack(cut_done, 60s) : 0;
      if (!s.ok()) {
        result = s;
      } else if (waits) {
        auto m = rig_->ModuleState(survivor);
        result = Status::Unsupported(survivor + " does not take over: " +
                                     (m.ok() ? m->value("reason", std::string()) : std::string()));
      } else if (first == 0) {
        result = Status::Timeout("no commit through the VIP within 60 s of the cut");
      } else {
        result = static_cast<double>(first - cut) / 1e6;
      }
    }
    rig_->bed().KillGroup(*client, SIGKILL);
    rig_->bed().WaitExit(*client, 10s);
    return result;
  }

  Options o_;
  fs::path base_;
  std::unique_ptr<ClusterRig> rig_;
  std::string prim_;
};

}  // namespace
}  // namespace hakit::bench

int main(int argc, char** argv) {
  using hakit::bench::Options;
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") {
      o.seconds = std::atoi(value());
    } else if (a == "--clients") {
      o.clients = std::atoi(value());
    } else if (a == "--scale") {
      o.scale = std::atoi(value());
    } else if (a == "--failovers") {
      o.failovers = std::atoi(value());
    } else if (a == "--dir") {
      o.work_parent = value();
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "-h" || a == "--help") {
      hakit::bench::Usage();
      return 0;
    } else {
      std::cerr << "unknown option " << a << "\n";
      hakit::bench::Usage();
      return 2;
    }
  }
  if (o.seconds < 1 || o.clients < 1 || o.scale < 1 || o.failovers < 1) {
    std::cerr << "--seconds, --clients, --scale and --failovers must be at least 1\n";
    return 2;
  }
  if (::geteuid() != 0) {
    std::cerr << "the pgbench benchmark needs root (network namespaces, FUSE)\n";
    return 1;
  }
  hakit::bench::InstallInterruptHandler();
  hakit::bench::PgBench bench(o);
  hakit::sdk::Status s = bench.Run();
  if (!s.ok()) {
    std::cerr << "pgbench benchmark failed: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
