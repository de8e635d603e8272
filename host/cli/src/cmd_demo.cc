// hakit demo: a two-node cluster on this one machine, a failover, and what
// the history says of it. Needs root (network namespaces); cleans up after
// itself, also when a step fails.
#include <chrono>
#include <iomanip>
#include <iostream>
#include <thread>

#include "hakit/cli/options.h"
#include "hakit/history/format.h"
#include "hakit/history/store.h"
#include "hakit/rig/cluster_rig.h"

namespace hakit::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Demo {
 public:
  Demo(Invocation& inv, bool keep) : inv_(inv), keep_(keep) {}

  int Main() {
    if (auto s = testbed::Testbed::CheckPrerequisites(); !s.ok()) {
      inv_.err << "hakit demo: " << s.message() << "\n";
      return kExitFailed;
    }
    auto made = rig::ClusterRig::Create(Options());
    if (!made.ok()) return Fail("cannot build the demo cluster", made.status());
    rig_ = std::move(*made);
    Say("hakit demo: two nodes in network namespaces, a client in a third, the sample "
        "application hakit-demo-app behind the virtual IP " + rig_->Vip());
    Say("1. Two nodes, node1 and node2, each running hakitd in its own network namespace (" +
        rig_->bed().NodeNamespace("node1") + ", " + rig_->bed().NodeNamespace("node2") +
        "), two heartbeat networks, state roots under " + rig_->work_dir().string());
    for (const auto& n : rig_->nodes()) {
      if (auto s = rig_->StartDaemon(n); !s.ok()) return Fail("hakitd on " + n, s);
    }
    Say("2. hakit start -m demo on both nodes");
    for (const auto& n : rig_->nodes()) {
      auto r = rig_->Command(n, "start");
      if (!r.ok()) return Fail("start on " + n, r.status());
    }
    auto prim = rig_->WaitPaired(15s);
    if (!prim.ok()) return Fail("pairing", prim.status());
    std::string second = rig_->Peer(*prim);
    ShowStates();
    auto hello = rig_->ClientRequest(2s);
    if (!hello.ok()) return Fail("client request through the VIP", hello.status());
    Say("   client -> " + rig_->Vip() + ":" + std::to_string(rig_->options().app_port) + ": " +
        Trim(*hello));

    Say("3. Power cut of the primary, " + *prim +
        ": its links go down, hakitd and the application are killed (SIGKILL)");
    auto cut_at = Clock::now();
    if (auto s = rig_->PowerCut(*prim); !s.ok()) return Fail("power cut", s);
    std::string answer;
    while (Clock::now() - cut_at < 15s) {
      auto r = rig_->ClientRequest(200ms);
      if (r.ok()) {
        answer = *r;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (answer.empty()) return Fail("failover", sdk::Status::Timeout("no answer at the VIP"));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - cut_at);
    Say("   client -> VIP again after " + std::to_string(took.count()) + " ms: " + Trim(answer));
    ShowStates();

    Say("4. " + *prim + " comes back (network restored, hakitd restarted, hakit start): it "
        "joins as SECOND, its data being older than " + second + "'s");
    if (auto s = rig_->RestoreNetwork(*prim); !s.ok()) return Fail("restore", s);
    if (auto s = rig_->StartDaemon(*prim); !s.ok()) return Fail("hakitd on " + *prim, s);
    if (auto r = rig_->Command(*prim, "start"); !r.ok()) return Fail("start", r.status());
    if (auto s = rig_->WaitState(*prim, cluster::State::kSecond, 15s); !s.ok()) {
      return Fail("rejoin", s);
    }
    ShowStates();

    Say("5. The history both nodes recorded (hakit history --merge):");
    for (const auto& n : rig_->nodes()) rig_->StopDaemon(n);
    ShowHistory();
    Say("Done: failover in " + std::to_string(took.count()) + " ms, " + second +
        " served the application, " + *prim + " came back as SECOND." +
        (keep_ ? " Roots kept in " + rig_->work_dir().string() : " Cleaning up."));
    return kExitOk;
  }

 private:
  rig::RigOptions Options() const {
    rig::RigOptions o;
    o.keep_work_dir = keep_;
    return o;
  }

  void Say(const std::string& line) { inv_.out << line << std::endl; }

  int Fail(const std::string& what, const sdk::Status& s) {
    inv_.err << "hakit demo: " << what << ": " << s.message() << "\n";
    if (rig_) inv_.err << "(logs: " << rig_->work_dir().string() << "/node*/log)\n";
    return kExitFailed;
  }

  static std::string Trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }

  void ShowStates() {
    for (const auto& n : rig_->nodes()) {
      if (!rig_->DaemonRunning(n)) {
        inv_.out << "   " << n << ": down\n";
        continue;
      }
      auto m = rig_->ModuleState(n);
      std::string state = m.ok() ? m->value("state", "?") : std::string("?");
      inv_.out << "   " << n << ": " << std::left << std::setw(7) << state
               << (rig_->HasVip(n) ? " holds the VIP" : "") << "\n";
    }
  }

  void ShowHistory() {
    std::vector<std::vector<history::Event>> lists;
    for (const auto& n : rig_->nodes()) {
      history::HistoryStore::Options o;
      o.read_only = true;
      auto store = history::HistoryStore::Open(rig_->LayoutOf(n).HistoryDb(), o);
      if (!store.ok()) continue;
      auto ev = (*store)->Query({});
      if (ev.ok()) lists.push_back(std::move(*ev));
    }
    inv_.out << history::FormatTable(history::MergeByTime(std::move(lists)));
  }

  Invocation& inv_;
  bool keep_;
  std::unique_ptr<rig::ClusterRig> rig_;
};

int RunDemo(Invocation& inv) {
  po::options_description desc("options");
  bool keep = false;
  desc.add_options()("keep", po::bool_switch(&keep), "keep the nodes' state roots (logs, history)");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "demo", "[--keep]", desc, {}, &vm)) return *rc;
  Demo demo(inv, keep);
  return demo.Main();
}

}  // namespace

std::vector<Command> DemoCommands() {
  return {{"demo", "a two-node demo cluster on this machine, with a failover (root)", RunDemo}};
}

}  // namespace hakit::cli
