// The failover benchmark: how long a client of the application at the VIP
// is without service when the primary node fails, for hakit and for its
// baseline keepalived, measured the same way in the same run.
//
// hakit: ClusterRig (two hakitd in network namespaces, the demo module whose
// start_prim launches hakit-demo-app), pulse 100 ms / timeout 300 ms. A run
// cuts the power of the primary (ClusterRig::PowerCut: links down, SIGKILL of
// hakitd and of the application) and measures from just before the cut to
// the first reply that the client gets from the other node through the VIP.
// The cut node then "reboots" (its stale VIP removed, links back, hakitd
// started again) and pairs back as SECOND; the next run cuts the new primary.
//
// keepalived: the same kind of testbed (one lan), hakit-demo-app running on
// both nodes all the time, keepalived VRRPv3 (advert_int 0.1, unicast peers)
// moving the VIP; node1 has the higher priority. A run cuts node1's links and
// SIGKILLs its keepalived and application; node1 then reboots the same way
// and takes the VIP back (preemption) before the next run.
//
// The cut is one instant for every link of the node (LinksDownNow: ioctls
// on the hub ports from this process; `ip` would take a fork and an exec per
// link, letting a heartbeat through on the second lan). It is the time
// origin. A "reboot" also flushes the node's neighbour table: a namespace,
// unlike a powered-off machine, keeps the frames its dead processes queued
// for ARP resolution and sends them once the links are back (see --no-flush).
//
// The client loop runs in the client namespace all the time: a new TCP
// connection every 5 ms, each given up after 100 ms, so that a SYN lost to
// the dead node does not hide the recovery. Runs of the two systems are
// interleaved so that a burst of load on the machine hits both alike.
//
// Ends with one line:
//   BENCH failover hakit_ms=<median> keepalived_ms=<median> ratio=<hakit/keepalived>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
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
using testbed::Testbed;

struct Options {
  int runs = 21;
  int lans = 2;
  std::chrono::milliseconds pulse{100};
  std::chrono::milliseconds timeout{300};
  std::chrono::milliseconds probe_interval{5};
  std::chrono::milliseconds probe_timeout{100};
  bool run_hakit = true;
  bool run_keepalived = true;
  bool keep = false;
  bool verbose = false;
  // Drop what the cut node's kernel queued while its links were down before
  // they come back (a reboot loses it); off: reproduces the rejoin split brain.
  bool flush_neighbours = true;
  std::string keepalived = "keepalived";
};

void Usage() {
  std::cout <<
      R"(usage: hakit-bench-failover [options]
  --runs N             measured runs per system (default 21; at least 10 for a report)
  --lans 1|2           heartbeat lans of the hakit cluster (default 2, the rig's default)
  --pulse MS           hakit heartbeat pulse (default 100)
  --timeout MS         hakit heartbeat timeout (default 300)
  --probe-interval MS  client connection attempt period (default 5)
  --only hakit|keepalived
  --keepalived PATH    keepalived binary (default: keepalived in PATH)
  --keep               keep work directories (logs) under /tmp
  --no-flush           on restore, leave the cut node's neighbour table (and the
                       frames its dead processes queued there) as it is
  --verbose            print more while running
Needs root (network namespaces). Ends with:
  BENCH failover hakit_ms=<median> keepalived_ms=<median> ratio=<hakit/keepalived>
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

void SleepMs(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

// A random phase between runs, so that the cut does not fall at a fixed
// point of the heartbeat (or VRRP advert) period.
std::chrono::milliseconds RandomPhase(std::chrono::milliseconds max) {
  static std::mt19937 gen(std::random_device{}());
  std::uniform_int_distribution<long long> d(0, max.count());
  return std::chrono::milliseconds(d(gen));
}

// The VIP as configured on the node's lan0, with its prefix ("198.18.0.100/25").
std::optional<std::string> VipWithPrefix(Testbed& bed, const std::string& netns,
                                         const std::string& vip) {
  auto out = bed.RunIn(netns, {"ip", "-4", "-o", "addr", "show"}, 5s);
  if (!out.ok()) return std::nullopt;
  std::string key = " " + vip + "/";
  auto p = out->output.find(key);
  if (p == std::string::npos) return std::nullopt;
  auto q = out->output.find(' ', p + 1);
  return out->output.substr(p + 1, q - p - 1);
}

bool HasAddress(Testbed& bed, const std::string& netns, const std::string& vip) {
  return VipWithPrefix(bed, netns, vip).has_value();
}

// A node that lost power also lost its kernel's state: among it, the frames
// its dead processes had queued while its links were down (IPv4 packets
// waiting in the neighbour table for an ARP answer, up to unres_qlen of
// them). A namespace keeps them, and sends them, seconds old, once its links
// are back: the peer then hears the dead hakitd claim PRIM. Flushing the
// neighbour table drops them, as a reboot would.
void FlushNeighbours(Testbed& bed, const std::string& netns) {
  bed.RunIn(netns, {"ip", "neigh", "flush", "all"}, 5s);
}

// The hub ports of every link of `host`.
std::vector<std::string> HubPorts(Testbed& bed, const std::string& host) {
  std::vector<std::string> out;
  for (int lan = 0; lan < bed.lans(); ++lan) {
    std::string p = bed.HubPort(host, lan);
    if (!p.empty()) out.push_back(p);
  }
  return out;
}

// A node that lost power comes back without the VIP it held: remove it
// before its links come back, so that no second owner answers ARP.
void DropStaleVip(Testbed& bed, const std::string& netns, const std::string& vip) {
  for (int i = 0; i < 3; ++i) {
    auto a = VipWithPrefix(bed, netns, vip);
    if (!a) return;
    bed.RunIn(netns, {"ip", "addr", "del", *a, "dev", Testbed::LanInterface(0)}, 5s);
  }
}

// One measured failover.
struct RunResult {
  double total_ms = 0;  // cut -> first reply from the new primary
  double cut_ms = 0;    // how long the cut itself took (links down + kills)
  std::string from, to;
  // Milestones in ms after the start of the cut (absent when not seen).
  std::map<std::string, double> marks;
};

// ---- hakit -------------------------------------------------------------------

class HakitBench {
 public:
  explicit HakitBench(const Options& o) : o_(o) {}
  ~HakitBench() { Teardown(); }

  Status Setup() {
    Teardown();
    RigOptions r;
    r.lans = o_.lans;
    r.pulse = o_.pulse;
    r.timeout = o_.timeout;
    r.bin_dir = ExecutableDir();
    r.keep_work_dir = o_.keep;
    // A folder of our own: /tmp/hakit-hk-* is shared with the cluster tests.
    r.work_dir = fs::path("/tmp") / ("hakit-bench-failover-" + std::to_string(::getpid()) + "-" +
                                     std::to_string(setups_++));
    auto rig = ClusterRig::Create(r);
    if (!rig.ok()) return rig.status().WithContext("hakit rig");
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
    Prober::Options p;
    p.netns = rig_->bed().ClientNamespace();
    p.address = rig_->Vip();
    p.port = rig_->options().app_port;
    p.interval = o_.probe_interval;
    p.attempt_timeout = o_.probe_timeout;
    prober_ = std::make_unique<Prober>(p);
    if (Status s = prober_->Start(); !s.ok()) return s;
    if (!prober_->WaitReply(prim_, Clock::now() - 1s, 10s)) {
      return Status::Timeout("the client gets no reply from " + prim_ + " at the VIP");
    }
    if (o_.verbose) {
      std::cout << "hakit: rig " << rig_->work_dir().string() << ", " << prim_ << " primary\n";
    }
    return Status::Ok();
  }

  void Teardown() {
    if (prober_) prober_->Stop();
    prober_.reset();
    rig_.reset();
  }

  Result<RunResult> RunOnce() {
    RunResult r;
    r.from = prim_;
    r.to = rig_->Peer(prim_);
    prober_->Clear();
    if (!prober_->WaitReply(r.from, Clock::now(), 5s)) {
      return Status::Failed("before the cut: no reply from " + r.from);
    }
    AddressWatch watch(rig_->bed().NodeNamespace(r.to), rig_->Vip());
    if (Status s = watch.Start(); !s.ok()) return s;
    SleepMs(RandomPhase(o_.pulse));

    // Every link at once (see LinksDownNow), then ClusterRig::PowerCut: its
    // CutNode finds the links down already, then it SIGKILLs hakitd and the
    // application.
    // The logs have wall-clock times: one reading of both clocks maps them.
    auto wall_ref = WallClock::now();
    auto steady_ref = Clock::now();
    Clock::time_point t_links;
    auto cut0 = LinksDownNow(rig_->bed().HubNamespace(), HubPorts(rig_->bed(), r.from), &t_links);
    if (!cut0.ok()) return cut0.status().WithContext("cut of " + r.from);
    const Clock::time_point t0 = *cut0;
    auto wall0 = wall_ref + std::chrono::duration_cast<WallClock::duration>(t0 - steady_ref);
    Status cut = rig_->PowerCut(r.from);
    auto t_cut = Clock::now();
    if (!cut.ok()) return cut.WithContext("power cut of " + r.from);
    r.marks["links_cut"] = Ms(t_links - t0);
    auto ok = prober_->WaitReply(r.to, t0, 20s);
    if (!ok) {
      return Status::Timeout("no reply from " + r.to + " within 20 s of the cut (" + r.to +
                             " is " + cluster::StateName(rig_->StateOf(r.to)) + ")");
    }
    r.total_ms = Ms(*ok - t0);
    r.cut_ms = Ms(t_cut - t0);
    r.marks["client_ok"] = r.total_ms;
    // Let the transition finish so that its last log lines are written.
    rig_->WaitState(r.to, cluster::State::kAlone, 10s);
    if (auto v = watch.AddedAfter(t0)) r.marks["vip_netlink"] = Ms(*v - t0);
    watch.Stop();
    ReadMarks(r, wall0);
    prim_ = r.to;
    return r;
  }

  // The cut node reboots and pairs back as SECOND.
  // The survivor should stay primary throughout; anything else (the
  // survivor stopping its application on a split brain when the cut node
  // rejoins) is an outage of its own, reported in `note`.
  Status Restore(const std::string& cut_node, std::string* note) {
    const std::string survivor = rig_->Peer(cut_node);
    auto wall0 = WallClock::now();
    auto t0 = Clock::now();
    DropStaleVip(rig_->bed(), rig_->bed().NodeNamespace(cut_node), rig_->Vip());
    if (o_.flush_neighbours) FlushNeighbours(rig_->bed(), rig_->bed().NodeNamespace(cut_node));
    if (Status s = rig_->RestoreNetwork(cut_node); !s.ok()) return s;
    if (Status s = rig_->StartDaemon(cut_node); !s.ok()) return s;
    auto prim = rig_->WaitPaired(30s);
    if (!prim.ok()) return prim.status();
    prim_ = *prim;
    auto took = Clock::now() - t0;
    std::string odd;
    for (const auto& line : ReadLog(rig_->LayoutOf(survivor).ModuleLog(rig_->options().module))) {
      if (line.at < wall0) continue;
      if (line.message.find("split brain") != std::string::npos ||
          line.message.find("-> WAIT") != std::string::npos ||
          line.message.find("-> STOP") != std::string::npos) {
        if (!odd.empty()) odd += "; ";
        odd += survivor + ": " + line.message.substr(0, 160);
      }
    }
    if (prim_ != survivor || !odd.empty()) {
      // The logs outlive the rig: copied aside.
      fs::path keep = fs::path("/tmp") / ("hakit-bench-failover-anomaly-" +
                                          std::to_string(::getpid()) + "-" +
                                          std::to_string(anomalies_++));
      std::error_code ec;
      for (const auto& n : rig_->nodes()) {
        fs::create_directories(keep / n, ec);
        fs::copy(rig_->LayoutOf(n).LogDir(), keep / n / "log", fs::copy_options::recursive, ec);
      }
      *note = "while " + cut_node + " rejoined (" + Fmt(Ms(took)) + " ms), " + prim_ +
              " ended primary" + (odd.empty() ? "" : " [" + odd + "]") + "; logs in " +
              keep.string();
    }
    return Status::Ok();
  }

  const std::string& primary() const { return prim_; }

 private:
  // Milestones from the new primary's logs (wall-clock timestamps, in µs).
  void ReadMarks(RunResult& r, WallClock::time_point wall0) {
    auto l = rig_->LayoutOf(r.to);
    const std::string& m = rig_->options().module;
    auto since = [&](const LogLine& line) {
      return std::chrono::duration<double, std::milli>(line.at - wall0).count();
    };
    auto first = [&](const std::vector<LogLine>& lines, const std::string& key,
                     const std::string& needle) {
      if (r.marks.count(key)) return;
      for (const auto& line : lines) {
        if (line.at + 2ms < wall0) continue;
        if (line.message.find(needle) != std::string::npos) {
          r.marks[key] = since(line);
          return;
        }
      }
    };
    auto daemon = ReadLog(l.DaemonLog());
    first(daemon, "net_silent", "silent");
    first(daemon, "peer_lost", "peer " + r.from + " lost");
    auto module = ReadLog(l.ModuleLog(m));
    first(module, "decided", "SECOND -> ALONE");
    first(module, "stop_second_begin", "running bin/stop_second");
    first(module, "stop_second_end", "bin/stop_second succeeded");
    first(module, "vip_added", "virtual IP");
    first(module, "start_prim_begin", "running bin/start_prim");
    // The demo's start_prim logs through `$SAFE/safekit printi` (the CLI)
    // before it launches the application.
    first(module, "start_prim_printi", "start_prim: starting");
    first(module, "start_prim_end", "bin/start_prim succeeded");
    first(module, "now_alone", "now ALONE");
  }

  Options o_;
  int setups_ = 0;
  int anomalies_ = 0;
  std::unique_ptr<ClusterRig> rig_;
  std::unique_ptr<Prober> prober_;
  std::string prim_;
};

// ---- keepalived ------------------------------------------------------------------

class KeepalivedBench {
 public:
  explicit KeepalivedBench(const Options& o) : o_(o) {}
  ~KeepalivedBench() { Teardown(); }

  Status Setup() {
    Teardown();
    testbed::TestbedOptions t;
    t.prefix = "hkbench";
    t.nodes = {"node1", "node2"};
    t.lans = 1;
    t.client = true;
    auto bed = Testbed::Create(t);
    if (!bed.ok()) return bed.status().WithContext("keepalived testbed");
    bed_ = std::move(*bed);
    vip_ = Testbed::VipAddress(0);
    dir_ = fs::path("/tmp") / ("hakit-bench-keepalived-" + bed_->tag());
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_, ec);
    if (ec) return Status::IoError("cannot create " + dir_.string() + ": " + ec.message());
    for (const std::string n : {"node1", "node2"}) {
      if (Status s = WriteConfig(n); !s.ok()) return s;
      if (Status s = StartNode(n); !s.ok()) return s;
    }
    Prober::Options p;
    p.netns = bed_->ClientNamespace();
    p.address = vip_;
    p.port = kPort;
    p.interval = o_.probe_interval;
    p.attempt_timeout = o_.probe_timeout;
    prober_ = std::make_unique<Prober>(p);
    if (Status s = prober_->Start(); !s.ok()) return s;
    return WaitMaster("node1", 20s);
  }

  void Teardown() {
    if (prober_) prober_->Stop();
    prober_.reset();
    bed_.reset();  // kills keepalived and the applications, deletes the namespaces
    if (!dir_.empty() && !o_.keep) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
    dir_.clear();
    procs_.clear();
  }

  Result<RunResult> RunOnce() {
    RunResult r;
    r.from = "node1";
    r.to = "node2";
    prober_->Clear();
    if (!prober_->WaitReply(r.from, Clock::now(), 5s)) {
      return Status::Failed("before the cut: no reply from node1");
    }
    AddressWatch watch(bed_->NodeNamespace(r.to), vip_);
    if (Status s = watch.Start(); !s.ok()) return s;
    SleepMs(RandomPhase(100ms));

    Clock::time_point t_links;
    auto cut0 = LinksDownNow(bed_->HubNamespace(), HubPorts(*bed_, r.from), &t_links);
    if (!cut0.ok()) return cut0.status().WithContext("cut of node1");
    const Clock::time_point t0 = *cut0;
    KillNode(r.from);
    auto t_cut = Clock::now();
    r.marks["links_cut"] = Ms(t_links - t0);
    auto ok = prober_->WaitReply(r.to, t0, 20s);
    if (!ok) return Status::Timeout("no reply from node2 within 20 s of the cut");
    r.total_ms = Ms(*ok - t0);
    r.cut_ms = Ms(t_cut - t0);
    r.marks["client_ok"] = r.total_ms;
    SleepMs(50ms);
    if (auto v = watch.AddedAfter(t0)) r.marks["vip_netlink"] = Ms(*v - t0);
    return r;
  }

  // node1 reboots: no VIP, links back, application and keepalived started;
  // it takes the VIP back by preemption.
  Status Restore() {
    DropStaleVip(*bed_, bed_->NodeNamespace("node1"), vip_);
    if (o_.flush_neighbours) FlushNeighbours(*bed_, bed_->NodeNamespace("node1"));
    // A reboot empties /run: keepalived must not find its old pid files.
    for (const char* f : {"node1.pid", "node1-vrrp.pid", "node1-checkers.pid"}) {
      std::error_code ec;
      fs::remove(dir_ / f, ec);
    }
    if (Status s = bed_->RestoreNode("node1"); !s.ok()) return s;
    if (Status s = StartNode("node1"); !s.ok()) return s;
    return WaitMaster("node1", 20s);
  }

 private:
  static constexpr uint16_t kPort = 8080;

  fs::path Conf(const std::string& n) const { return dir_ / (n + ".conf"); }

  Status WriteConfig(const std::string& n) {
    const std::string peer = n == "node1" ? "node2" : "node1";
    std::ostringstream c;
    c << "global_defs {\n"
      << "  router_id " << n << "\n"
      << "  vrrp_version 3\n"
      << "}\n"
      << "vrrp_instance VI_BENCH {\n"
      << "  state BACKUP\n"
      << "  interface " << Testbed::LanInterface(0) << "\n"
      << "  virtual_router_id 51\n"
      << "  priority " << (n == "node1" ? 150 : 100) << "\n"
      << "  advert_int 0.1\n"
      << "  unicast_src_ip " << bed_->Address(n, 0) << "\n"
      << "  unicast_peer {\n    " << bed_->Address(peer, 0) << "\n  }\n"
      << "  virtual_ipaddress {\n    " << vip_ << "/" << Testbed::PrefixLength() << " dev "
      << Testbed::LanInterface(0) << "\n  }\n"
      << "}\n";
    std::ofstream out(Conf(n), std::ios::trunc);
    out << c.str();
    if (!out) return Status::IoError("cannot write " + Conf(n).string());
    return Status::Ok();
  }

  // The application (always running, bound to 0.0.0.0) and keepalived in
  // the foreground, each with pid files of its own.
  Status StartNode(const std::string& n) {
    const std::string ns = bed_->NodeNamespace(n);
    testbed::SpawnOptions app;
    app.netns = ns;
    app.argv = {(ExecutableDir() / "hakit-demo-app").string(), "--port", std::to_string(kPort),
                "--name", n, "--bind", "0.0.0.0"};
    app.stdout_path = (dir_ / (n + "-app.out")).string();
    app.stderr_path = app.stdout_path;
    auto a = bed_->Spawn(app);
    if (!a.ok()) return a.status().WithContext("hakit-demo-app on " + n);
    procs_[n].app = *a;

    testbed::SpawnOptions k;
    k.netns = ns;
    const std::string p = (dir_ / n).string();
    k.argv = {o_.keepalived, "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
              "--vrrp", "--use-file", Conf(n).string(), "--pid", p + ".pid",
              "--vrrp_pid", p + "-vrrp.pid", "--checkers_pid", p + "-checkers.pid"};
    k.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}};
    k.stdout_path = (dir_ / (n + "-keepalived.log")).string();
    k.stderr_path = k.stdout_path;
    auto kp = bed_->Spawn(k);
    if (!kp.ok()) return kp.status().WithContext("keepalived on " + n);
    procs_[n].keepalived = *kp;
    return Status::Ok();
  }

  // Power off, as the processes see it: keepalived (parent and VRRP child)
  // and the application SIGKILLed.
  void KillNode(const std::string& n) {
    auto& p = procs_[n];
    pid_t vrrp = 0;
    std::ifstream((dir_ / (n + "-vrrp.pid")).string()) >> vrrp;
    if (p.keepalived > 0) bed_->KillGroup(p.keepalived, SIGKILL);
    if (vrrp > 0) ::kill(vrrp, SIGKILL);
    if (p.app > 0) bed_->KillGroup(p.app, SIGKILL);
    if (p.keepalived > 0) bed_->WaitExit(p.keepalived, 2s);
    if (p.app > 0) bed_->WaitExit(p.app, 2s);
    // The VRRP child was reparented when its parent died: wait until it is
    // gone (or a zombie), so that the next keepalived does not find it.
    auto deadline = Clock::now() + 2s;
    while (vrrp > 0 && !ProcessGone(vrrp) && Clock::now() < deadline) SleepMs(5ms);
    p = {};
  }

  static bool ProcessGone(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return true;
    auto p = stat.rfind(')');
    return p == std::string::npos || p + 2 >= stat.size() || stat[p + 2] == 'Z';
  }

  // `n` holds the VIP, the other node does not, the client reaches n.
  Status WaitMaster(const std::string& n, std::chrono::milliseconds wait) {
    const std::string other = n == "node1" ? "node2" : "node1";
    auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline && !g_interrupted) {
      if (HasAddress(*bed_, bed_->NodeNamespace(n), vip_) &&
          !HasAddress(*bed_, bed_->NodeNamespace(other), vip_) &&
          prober_->WaitReply(n, Clock::now(), 1s)) {
        return Status::Ok();
      }
      for (const std::string& x : {n, other}) {
        if (procs_[x].keepalived > 0) {
          if (auto st = bed_->WaitExit(procs_[x].keepalived, 0ms)) {
            return Status::Failed("keepalived on " + x + " " + st->ToString() + "; see " +
                                  (dir_ / (x + "-keepalived.log")).string());
          }
        }
      }
      SleepMs(50ms);
    }
    return Status::Timeout(n + " did not become keepalived MASTER with the VIP within " +
                           std::to_string(wait.count()) + " ms; see " + dir_.string());
  }

  struct Procs {
    pid_t app = 0;
    pid_t keepalived = 0;
  };
  Options o_;
  std::unique_ptr<Testbed> bed_;
  std::unique_ptr<Prober> prober_;
  std::string vip_;
  fs::path dir_;
  std::map<std::string, Procs> procs_;
};

// ---- report --------------------------------------------------------------------

void PrintRun(const char* who, int i, const RunResult& r) {
  std::cout << who << " run " << i << ": " << Fmt(r.total_ms) << " ms  (" << r.from << " -> "
            << r.to << ", cut took " << Fmt(r.cut_ms) << " ms";
  static const char* order[] = {"links_cut", "net_silent",       "peer_lost",      "decided",
                                "stop_second_begin", "stop_second_end", "vip_added",
                                "vip_netlink",       "start_prim_begin", "start_prim_printi",
                                "start_prim_end",    "now_alone"};
  for (const char* k : order) {
    auto it = r.marks.find(k);
    if (it != r.marks.end()) std::cout << ", " << k << " +" << Fmt(it->second);
  }
  std::cout << ")" << std::endl;
}

// The summary of (mark `to` - mark `from`) over the runs that have both;
// "" for `from` means the cut.
Summary Between(const std::vector<RunResult>& runs, const std::string& from,
                const std::string& to) {
  std::vector<double> v;
  for (const auto& r : runs) {
    auto b = r.marks.find(to);
    if (b == r.marks.end()) continue;
    if (from.empty()) {
      v.push_back(b->second);
    } else if (auto a = r.marks.find(from); a != r.marks.end()) {
      v.push_back(b->second - a->second);
    }
  }
  return Summarize(v);
}

// Median milestone times and the median length of each segment between
// consecutive milestones (each run contributes its own difference).
void PrintBreakdown(const char* who, const std::vector<RunResult>& runs,
                    const std::vector<std::string>& order) {
  std::cout << who << " timeline (median ms after the cut; segment = median of per-run "
            << "differences):\n";
  std::string prev;
  for (const auto& k : order) {
    std::vector<double> at, seg;
    for (const auto& r : runs) {
      auto it = r.marks.find(k);
      if (it == r.marks.end()) continue;
      at.push_back(it->second);
      if (prev.empty()) {
        seg.push_back(it->second);
      } else if (auto p = r.marks.find(prev); p != r.marks.end()) {
        seg.push_back(it->second - p->second);
      }
    }
    if (at.empty()) continue;
    Summary a = Summarize(at), s = Summarize(seg);
    char line[200];
    std::snprintf(line, sizeof line, "  %-18s at %7.1f   (+%6.1f since %s; min/max %.1f/%.1f)\n",
                  k.c_str(), a.median, s.median, prev.empty() ? "cut" : prev.c_str(), s.min,
                  s.max);
    std::cout << line;
    prev = k;
  }
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--runs") {
      o.runs = std::atoi(value().c_str());
    } else if (a == "--lans") {
      o.lans = std::atoi(value().c_str());
    } else if (a == "--pulse") {
      o.pulse = std::chrono::milliseconds(std::atoi(value().c_str()));
    } else if (a == "--timeout") {
      o.timeout = std::chrono::milliseconds(std::atoi(value().c_str()));
    } else if (a == "--probe-interval") {
      o.probe_interval = std::chrono::milliseconds(std::atoi(value().c_str()));
    } else if (a == "--only") {
      std::string w = value();
      o.run_hakit = w == "hakit";
      o.run_keepalived = w == "keepalived";
      if (!o.run_hakit && !o.run_keepalived) {
        std::cerr << "--only hakit|keepalived\n";
        return 2;
      }
    } else if (a == "--keepalived") {
      o.keepalived = value();
    } else if (a == "--no-flush") {
      o.flush_neighbours = false;
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--verbose" || a == "-v") {
      o.verbose = true;
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      std::cerr << "unknown option " << a << "\n";
      Usage();
      return 2;
    }
  }
  if (o.runs < 1 || (o.lans != 1 && o.lans != 2) || o.probe_interval.count() < 1) {
    Usage();
    return 2;
  }
  if (Status s = Testbed::CheckPrerequisites(); !s.ok()) {
    std::cerr << "failover benchmark: " << s.message() << "\n";
    return 1;
  }
  InstallInterruptHandler();
  std::cout << "failover benchmark: " << o.runs << " runs each; hakit pulse "
            << o.pulse.count() << " ms, timeout " << o.timeout.count() << " ms, lans="
            << o.lans << "; keepalived VRRPv3 advert_int 0.1 s, unicast, 1 lan; client "
            << "connects every " << o.probe_interval.count() << " ms" << std::endl;

  HakitBench hakit(o);
  KeepalivedBench keepalived(o);
  if (o.run_hakit) {
    if (Status s = hakit.Setup(); !s.ok()) {
      std::cerr << "hakit setup failed: " << s.message() << "\n";
      return 1;
    }
  }
  if (o.run_keepalived) {
    if (Status s = keepalived.Setup(); !s.ok()) {
      std::cerr << "keepalived setup failed: " << s.message() << "\n";
      return 1;
    }
  }

  std::vector<RunResult> hr, kr;
  std::vector<std::string> restore_anomalies;
  int hakit_failures = 0, keepalived_failures = 0;
  const int max_failures = std::max(3, o.runs / 2);
  // Interleaved: one run of each per round.
  for (int round = 0; !g_interrupted; ++round) {
    bool need_h = o.run_hakit && static_cast<int>(hr.size()) < o.runs &&
                  hakit_failures <= max_failures;
    bool need_k = o.run_keepalived && static_cast<int>(kr.size()) < o.runs &&
                  keepalived_failures <= max_failures;
    if (!need_h && !need_k) break;
    if (need_h) {
      auto r = hakit.RunOnce();
      Status restored;
      if (r.ok()) {
        hr.push_back(*r);
        PrintRun("hakit", static_cast<int>(hr.size()), *r);
        std::string note;
        restored = hakit.Restore(r->from, &note);
        if (!note.empty()) {
          restore_anomalies.push_back(note);
          std::cout << "hakit restore ANOMALY: " << note << std::endl;
        }
      } else {
        ++hakit_failures;
        std::cout << "hakit run failed: " << r.status().message() << std::endl;
      }
      if (!r.ok() || !restored.ok()) {
        if (!restored.ok()) std::cout << "hakit restore failed: " << restored.message() << "\n";
        std::cout << "hakit: rebuilding the rig" << std::endl;
        if (Status s = hakit.Setup(); !s.ok()) {
          std::cerr << "hakit setup failed: " << s.message() << "\n";
          ++hakit_failures;
        }
      }
    }
    if (need_k && !g_interrupted) {
      auto r = keepalived.RunOnce();
      Status restored;
      if (r.ok()) {
        kr.push_back(*r);
        PrintRun("keepalived", static_cast<int>(kr.size()), *r);
        restored = keepalived.Restore();
      } else {
        ++keepalived_failures;
        std::cout << "keepalived run failed: " << r.status().message() << std::endl;
      }
      if (!r.ok() || !restored.ok()) {
        if (!restored.ok()) {
          std::cout << "keepalived restore failed: " << restored.message() << "\n";
        }
        std::cout << "keepalived: rebuilding the testbed" << std::endl;
        if (Status s = keepalived.Setup(); !s.ok()) {
          std::cerr << "keepalived setup failed: " << s.message() << "\n";
          ++keepalived_failures;
        }
      }
    }
  }
  hakit.Teardown();
  keepalived.Teardown();
  if (g_interrupted) {
    std::cerr << "interrupted\n";
    return 130;
  }

  auto totals = [](const std::vector<RunResult>& v) {
    std::vector<double> t;
    for (const auto& r : v) t.push_back(r.total_ms);
    return t;
  };
  Summary hs = Summarize(totals(hr)), ks = Summarize(totals(kr));
  std::cout << "\n";
  if (o.run_hakit) {
    std::cout << "hakit (pulse " << o.pulse.count() << " ms, timeout " << o.timeout.count()
              << " ms, lans=" << o.lans << "): " << FormatSummary(hs) << "\n";
    std::cout << "  detection (cut -> peer lost):            "
              << FormatSummary(Between(hr, "", "peer_lost")) << "\n"
              << "  takeover (peer lost -> client reply):    "
              << FormatSummary(Between(hr, "peer_lost", "client_ok")) << "\n"
              << "    of which VIP step (netlink add -> step done, gratuitous ARP socket): "
              << FormatSummary(Between(hr, "vip_netlink", "vip_added")) << "\n";
    PrintBreakdown("hakit", hr,
                   {"links_cut", "net_silent", "peer_lost", "decided", "stop_second_begin", "stop_second_end",
                    "vip_netlink", "vip_added", "start_prim_begin", "start_prim_printi",
                    "start_prim_end", "client_ok"});
  }
  if (o.run_keepalived) {
    std::cout << "keepalived (advert_int 0.1 s, node2 priority 100: master down after "
              << "3 x 100 + skew 61 = 361 ms): " << FormatSummary(ks) << "\n";
    std::cout << "  detection + transition (cut -> VIP added): "
              << FormatSummary(Between(kr, "", "vip_netlink")) << "\n"
              << "  VIP added -> client reply:                 "
              << FormatSummary(Between(kr, "vip_netlink", "client_ok")) << "\n";
    PrintBreakdown("keepalived", kr, {"links_cut", "vip_netlink", "client_ok"});
  }
  if (!restore_anomalies.empty()) {
    std::cout << "hakit: " << restore_anomalies.size()
              << " restore(s) where the surviving primary did not simply stay primary when the "
                 "cut node rejoined (not part of the failover figure):\n";
    for (const auto& n : restore_anomalies) std::cout << "  " << n << "\n";
  }
  bool complete = (!o.run_hakit || static_cast<int>(hr.size()) >= o.runs) &&
                  (!o.run_keepalived || static_cast<int>(kr.size()) >= o.runs);
  if (!complete) std::cout << "WARNING: fewer successful runs than asked\n";
  if (o.runs < 10) std::cout << "WARNING: fewer than 10 runs: not a report figure\n";
  std::string ratio = "NA";
  if (hs.n && ks.n && ks.median > 0) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", hs.median / ks.median);
    ratio = b;
  }
  std::string line = "BENCH failover hakit_ms=" + (hs.n ? Fmt(hs.median) : "NA") +
                     " keepalived_ms=" + (ks.n ? Fmt(ks.median) : "NA") + " ratio=" + ratio;
  std::cout << line << std::endl;
  return complete ? 0 : 1;
}

}  // namespace
}  // namespace hakit::bench

int main(int argc, char** argv) { return hakit::bench::Main(argc, argv); }
