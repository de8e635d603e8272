// Two nodes driving the state machine against each other in a deterministic
// event loop: heartbeats carry each node's facts to the other, steps take
// ticks and change what runs, the controller's contract (defer and replay,
// re-evaluate on arrival, start-up wait timer, stopstart) is played as the
// header describes it. The checks are about the cluster, not one decision:
// never the application on both nodes at once, and the pair ends where an
// operator expects.
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>
#include <vector>

#include "fsm_test_util.h"
#include "hakit/cluster/mirror_fsm.h"

namespace hakit::cluster {
namespace {

using testing::Describe;

struct Node {
  Facts f;
  bool alive = true;
  std::deque<Event> inbox;
  std::vector<Event> deferred;
  std::vector<Step> steps;
  size_t step_index = 0;
  int step_delay = 0;
  bool arm_timer_on_arrival = false;
  int wait_timer = -1;  // ticks left; -1: not armed
  bool restart_after = false;
  int silence = 0;
  std::vector<std::string> fail_once;  // step names that fail the next time they run
  // What really runs here.
  bool app_prim = false;
  bool app_second = false;
  bool vip = false;
  // The operator's `hakit prim` made this node's data overrule the peer's
  // (in hakitd, its new generation lists the peer's).
  bool overrules = false;
};

bool SameView(const PeerView& a, const PeerView& b) {
  return a.visible == b.visible && a.config_matches == b.config_matches && a.state == b.state &&
         a.handing_over == b.handing_over && a.busy == b.busy && a.data == b.data &&
         a.was_last_prim == b.was_last_prim && a.name == b.name;
}

class Sim {
 public:
  explicit Sim(FsmConfig config = {}, DataStatus data = DataStatus::kUnknown) {
    for (int i = 0; i < 2; ++i) {
      n_[i].f.config = config;
      n_[i].f.config.local_name = i == 0 ? "n1" : "n2";
      n_[i].f.data = data;
    }
    SyncViews(false);
  }

  Node& node(int i) { return n_[i]; }
  State state(int i) const { return n_[i].f.state; }
  std::string Pair() const {
    return std::string(StateName(n_[0].f.state)) + "/" + StateName(n_[1].f.state);
  }
  const std::string& violation() const { return violation_; }
  const std::string& trace() const { return trace_; }

  void set_link(bool up) { link_ = up; }
  void set_check_single_primary(bool on) { check_single_primary_ = on; }
  void set_random(std::mt19937* rng, int failure_percent) {
    rng_ = rng;
    failure_percent_ = failure_percent;
  }

  void Command(int i, EventKind kind, std::string detail = "") {
    n_[i].inbox.push_back({kind, std::move(detail)});
  }

  void Crash(int i) {
    Node& n = n_[i];
    n.alive = false;
    n.app_prim = n.app_second = n.vip = false;
    n.inbox.clear();
    n.deferred.clear();
    n.steps.clear();
    n.wait_timer = -1;
    Log(i, "crashes");
  }

  // A fresh daemon on node i, module stopped.
  void Boot(int i, DataStatus data, bool was_last_prim) {
    Node& n = n_[i];
    FsmConfig config = n.f.config;
    n = Node{};
    n.f.config = config;
    n.f.data = data;
    n.f.was_last_prim = was_last_prim;
    Log(i, "boots");
    SyncViews(false);
  }

  void Tick() {
    ++now_;
    for (int i = 0; i < 2; ++i) RunStep(i);
    SyncViews(/*tick=*/true);
    for (int i = 0; i < 2; ++i) ProcessEvents(i);
    for (int i = 0; i < 2; ++i) {
      Node& n = n_[i];
      if (n.alive && n.wait_timer > 0 && --n.wait_timer == 0) {
        n.wait_timer = -1;
        n.inbox.push_back({EventKind::kWaitExpired, ""});
      }
    }
    Check();
  }

  bool Quiet() const {
    for (int i = 0; i < 2; ++i) {
      const Node& n = n_[i];
      if (!n.alive) continue;
      if (!n.inbox.empty() || !n.deferred.empty() || n.f.busy || n.wait_timer >= 0) return false;
      // A peer gone silent is about to be declared lost.
      if (n.f.peer.visible && !(link_ && n_[1 - i].alive)) return false;
    }
    return true;
  }

  bool RunUntilQuiet(int max_ticks = 200) {
    for (int t = 0; t < max_ticks; ++t) {
      Tick();
      if (Quiet()) return true;
    }
    return false;
  }

 private:
  void Log(int i, const std::string& what) {
    trace_ += "t=" + std::to_string(now_) + " " + n_[i].f.config.local_name + " " + what + "\n";
  }

  void Check() {
    const Node& a = n_[0];
    const Node& b = n_[1];
    for (const Node& n : n_) {
      if (n.app_prim && !n.vip && violation_.empty()) {
        violation_ = "t=" + std::to_string(now_) + ": application without its VIP";
      }
    }
    if (!check_single_primary_ || !violation_.empty()) return;
    if (a.app_prim && b.app_prim) {
      violation_ = "t=" + std::to_string(now_) + ": the application runs on both nodes";
    } else if (a.vip && b.vip) {
      violation_ = "t=" + std::to_string(now_) + ": the VIP is up on both nodes";
    }
  }

  void RunStep(int i) {
    Node& n = n_[i];
    if (!n.alive || n.step_index >= n.steps.size()) return;
    if (n.step_delay > 0) {
      --n.step_delay;
      return;
    }
    const Step s = n.steps[n.step_index];
    bool fail = false;
    for (auto it = n.fail_once.begin(); it != n.fail_once.end(); ++it) {
      if (*it == StepName(s)) {
        n.fail_once.erase(it);
        fail = true;
        break;
      }
    }
    if (rng_ && static_cast<int>((*rng_)() % 100) < failure_percent_) fail = true;
    if (fail) {
      // A start that fails may have started something: assume it runs (the
      // cleanup must stop it). A stop that fails was forced by the
      // controller: what it stops is gone, only the report is an error.
      Log(i, std::string("step ") + StepName(s) + " FAILS");
      switch (s) {
        case Step::kStartPrim:
          n.app_prim = true;
          break;
        case Step::kStartSecond:
          n.app_second = true;
          break;
        case Step::kAddVip:
          n.vip = true;
          break;
        case Step::kStopPrim:
          n.app_prim = false;
          break;
        case Step::kStopSecond:
          n.app_second = false;
          break;
        case Step::kRemoveVip:
          n.vip = false;
          break;
        default:
          break;
      }
      n.steps.clear();
      n.step_index = 0;
      n.inbox.push_back({EventKind::kStepsFailed, StepName(s)});
      Check();
      return;
    }
    switch (s) {
      case Step::kStartPrim:
        n.app_prim = true;
        break;
      case Step::kStopPrim:
        n.app_prim = false;
        break;
      case Step::kStartSecond:
        n.app_second = true;
        break;
      case Step::kStopSecond:
        n.app_second = false;
        break;
      case Step::kAddVip:
        n.vip = true;
        break;
      case Step::kRemoveVip:
        n.vip = false;
        break;
      default:
        break;
    }
    Check();
    if (++n.step_index == n.steps.size()) {
      n.steps.clear();
      n.step_index = 0;
      n.inbox.push_back({EventKind::kStepsDone, ""});
    } else {
      n.step_delay = rng_ ? static_cast<int>((*rng_)() % 3) : 0;
    }
  }

  PeerView ViewOf(const Node& other) const {
    PeerView v;
    v.visible = true;
    v.config_matches = true;
    v.state = other.f.state;
    v.handing_over = other.f.handing_over;
    v.busy = other.f.busy;
    v.data = other.f.data;
    v.was_last_prim = other.f.was_last_prim;
    v.name = other.f.config.local_name;
    return v;
  }

  // Heartbeats: instant while the link is up (each node sees the other's
  // facts as soon as they change); silence counts in ticks.
  void SyncViews(bool tick) {
    for (int i = 0; i < 2; ++i) {
      Node& n = n_[i];
      const Node& other = n_[1 - i];
      if (!n.alive) continue;
      if (link_ && other.alive) {
        n.silence = 0;
        // What hakitd's generations say once the operator chose the peer:
        // this copy is no longer diverged, only behind.
        if (n.f.data == DataStatus::kDiverged && other.overrules) {
          n.f.data = DataStatus::kStale;
          n.inbox.push_back({EventKind::kPeerChanged, ""});
        }
        // Divergence is mutual: neither generation knows the other.
        if (other.f.data == DataStatus::kDiverged && !other.overrules && !n.overrules &&
            n.f.data != DataStatus::kDiverged) {
          n.f.data = DataStatus::kDiverged;
          n.inbox.push_back({EventKind::kPeerChanged, ""});
        }
        PeerView v = ViewOf(other);
        if (!SameView(v, n.f.peer)) {
          n.f.peer = v;
          n.inbox.push_back({EventKind::kPeerChanged, ""});
        }
      } else if (tick && n.f.peer.visible && ++n.silence >= kTimeoutTicks) {
        n.f.peer.visible = false;
        n.inbox.push_back({EventKind::kPeerLost, ""});
      }
    }
  }

  void ProcessEvents(int i) {
    Node& n = n_[i];
    for (int budget = 0; budget < 50 && n.alive && !n.inbox.empty(); ++budget) {
      Event e = n.inbox.front();
      n.inbox.pop_front();
      Decision d = Decide(n.f, e);
      if (!d.no_change || !d.refused.empty()) {
        Log(i, std::string(testing::EventName(e.kind)) + (e.detail.empty() ? "" : ":") + e.detail +
                   " in " + StateName(n.f.state) + " -> " + Describe(d));
      }
      Apply(i, e, d);
      SyncViews(false);
    }
  }

  void Apply(int i, const Event& e, const Decision& d) {
    Node& n = n_[i];
    if (d.defer) {
      n.deferred.push_back(e);
      return;
    }
    if (d.no_change) return;
    if (e.kind == EventKind::kForcePrim) {
      n.overrules = true;
      n_[1 - i].overrules = false;
    }
    if (d.set_data) n.f.data = *d.set_data;
    if (d.set_data == DataStatus::kDiverged) n.overrules = false;  // a new divergence
    n.f.handing_over = d.handing_over;
    if (d.restart_after) n.restart_after = true;
    if (!d.steps.empty()) {
      n.f.busy = true;
      n.f.target = d.next;
      n.steps = d.steps;
      n.step_index = 0;
      n.step_delay = 0;
      n.arm_timer_on_arrival = e.kind == EventKind::kStart;
      return;
    }
    n.f.busy = false;
    n.f.state = d.next;
    Settle(i);
  }

  // The controller's side of arriving in a state.
  void Settle(int i) {
    Node& n = n_[i];
    if (IsPrimary(n.f.state)) n.f.was_last_prim = true;
    if (n.f.state == State::kSecond) {
      n.f.was_last_prim = false;
      // Replication stand-in: a SECOND is synchronised as soon as it settles.
      n.f.data = DataStatus::kUpToDate;
    }
    if (n.f.state == State::kWait && n.arm_timer_on_arrival) {
      n.wait_timer = kWaitTicks;
    } else if (n.f.state != State::kWait) {
      n.wait_timer = -1;
    }
    n.arm_timer_on_arrival = false;
    n.inbox.insert(n.inbox.begin(), n.deferred.begin(), n.deferred.end());
    n.deferred.clear();
    n.inbox.push_back({EventKind::kPeerChanged, ""});
    if (n.f.state == State::kStop && n.restart_after) {
      n.restart_after = false;
      n.inbox.push_back({EventKind::kStart, ""});
    }
  }

  static constexpr int kTimeoutTicks = 3;
  static constexpr int kWaitTicks = 10;

  Node n_[2];
  bool link_ = true;
  bool check_single_primary_ = true;
  int now_ = 0;
  std::mt19937* rng_ = nullptr;
  int failure_percent_ = 0;
  std::string violation_;
  std::string trace_;
};

#define EXPECT_SIM_OK(sim) EXPECT_EQ((sim).violation(), "") << (sim).trace()

// Both nodes started at once form a pair; returns the sim in PRIM/SECOND.
Sim StartedPair(FsmConfig config = {}) {
  Sim sim(config);
  sim.Command(0, EventKind::kStart);
  sim.Command(1, EventKind::kStart);
  sim.RunUntilQuiet();
  return sim;
}

TEST(MirrorFsmSim, SimultaneousStartElectsOnePrimary) {
  Sim sim = StartedPair();
  EXPECT_EQ(sim.Pair(), "PRIM/SECOND") << sim.trace();
  EXPECT_SIM_OK(sim);
  EXPECT_TRUE(sim.node(0).app_prim && sim.node(0).vip);
  EXPECT_TRUE(sim.node(1).app_second && !sim.node(1).vip);
}

TEST(MirrorFsmSim, SimultaneousStartHonoursDefaultPrim) {
  FsmConfig config;
  config.default_prim = "n2";
  Sim sim = StartedPair(config);
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, StartOneThenTheOther) {
  Sim sim(FsmConfig{}, DataStatus::kUpToDate);
  sim.Command(0, EventKind::kStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "ALONE/STOP") << sim.trace();
  sim.Command(1, EventKind::kStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "PRIM/SECOND") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, StopOfThePrimaryMovesTheApplication) {
  Sim sim = StartedPair();
  sim.Command(0, EventKind::kStop);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "STOP/ALONE") << sim.trace();
  sim.Command(0, EventKind::kStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, PeerLostOnSecondFailsOver) {
  Sim sim = StartedPair();
  sim.Crash(0);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.state(1), State::kAlone) << sim.trace();
  EXPECT_TRUE(sim.node(1).app_prim && sim.node(1).vip);
  sim.Boot(0, DataStatus::kStale, /*was_last_prim=*/true);
  sim.Command(0, EventKind::kStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, PeerLostWithFailoverOffWaitsForTheOperator) {
  FsmConfig config;
  config.failover = false;
  Sim sim = StartedPair(config);
  ASSERT_EQ(sim.Pair(), "PRIM/SECOND");
  sim.Crash(0);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.state(1), State::kWait) << sim.trace();
  EXPECT_FALSE(sim.node(1).app_prim || sim.node(1).app_second);
  sim.Command(1, EventKind::kForcePrim);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.state(1), State::kAlone) << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, SwapExchangesRoles) {
  Sim sim = StartedPair();
  sim.Command(0, EventKind::kSwap);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_FALSE(sim.node(0).f.handing_over || sim.node(1).f.handing_over) << sim.trace();
  EXPECT_TRUE(sim.node(1).app_prim && sim.node(1).vip && sim.node(0).app_second);
  // And back.
  sim.Command(1, EventKind::kSwap);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "PRIM/SECOND") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, SplitBrainStopsBothUntilTheOperatorChooses) {
  Sim sim = StartedPair();
  sim.set_check_single_primary(false);  // a partition makes two primaries
  sim.set_link(false);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "ALONE/ALONE") << sim.trace();
  sim.set_link(true);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "WAIT/WAIT") << sim.trace();
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(sim.node(i).app_prim || sim.node(i).vip) << sim.trace();
    EXPECT_EQ(sim.node(i).f.data, DataStatus::kDiverged);
  }
  // From here on, never two primaries again.
  sim.set_check_single_primary(true);
  sim.Command(0, EventKind::kStart);  // changes nothing
  sim.Command(1, EventKind::kWaitExpired);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "WAIT/WAIT") << sim.trace();
  sim.Command(1, EventKind::kForcePrim, "force");
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, FailbackToDefaultPrim) {
  FsmConfig config;
  config.default_prim = "n1";
  Sim sim = StartedPair(config);
  ASSERT_EQ(sim.Pair(), "PRIM/SECOND");
  sim.Crash(0);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.state(1), State::kAlone);
  sim.Boot(0, DataStatus::kStale, true);
  sim.Command(0, EventKind::kStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  // n1 came back as SECOND, got synchronised, and the primary role went back.
  EXPECT_EQ(sim.Pair(), "PRIM/SECOND") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, StartPrimFailureLetsThePeerStart) {
  Sim sim;
  sim.node(0).fail_once.push_back("start_prim");
  sim.Command(0, EventKind::kStart);
  sim.Command(1, EventKind::kStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "STOP/ALONE") << sim.trace();
  EXPECT_FALSE(sim.node(0).app_prim || sim.node(0).vip) << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, StopStartHandsOverAndComesBackAsSecond) {
  Sim sim = StartedPair();
  sim.Command(0, EventKind::kStopStart);
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_SIM_OK(sim);
}

TEST(MirrorFsmSim, LocalFailureWithFailoverHandsOver) {
  Sim sim = StartedPair();
  sim.Command(0, EventKind::kLocalFailure, "failover");
  ASSERT_TRUE(sim.RunUntilQuiet());
  EXPECT_EQ(sim.Pair(), "SECOND/PRIM") << sim.trace();
  EXPECT_SIM_OK(sim);
}

// After the noise: what each node runs matches the state it shows.
void ExpectConsistent(Sim& sim, unsigned seed) {
  for (int i = 0; i < 2; ++i) {
    const Node& n = sim.node(i);
    State s = n.f.state;
    EXPECT_EQ(n.app_prim, IsPrimary(s)) << "seed " << seed << " node " << i << "\n" << sim.trace();
    EXPECT_EQ(n.vip, IsPrimary(s)) << "seed " << seed << " node " << i << "\n" << sim.trace();
    EXPECT_EQ(n.app_second, s == State::kSecond) << "seed " << seed << " node " << i << "\n"
                                                 << sim.trace();
  }
}

void StartStopped(Sim& sim) {
  for (int i = 0; i < 2; ++i) {
    if (sim.state(i) == State::kStop) sim.Command(i, EventKind::kStart);
  }
}

void ExpectPair(Sim& sim, unsigned seed) {
  std::string pair = sim.Pair();
  EXPECT_TRUE(pair == "PRIM/SECOND" || pair == "SECOND/PRIM")
      << "seed " << seed << ": " << pair << "\n"
      << sim.trace();
}

// Operators and failing scripts at random. With `chaos`, the link also flaps
// and nodes crash and reboot: two primaries may then appear during a
// partition, and must be gone once the link is back and things settle.
// Without chaos, the application never runs on both nodes at any time.
// `trace` receives the run's trace (also on failure), so that callers can
// check what the runs covered.
void RandomRun(unsigned seed, const FsmConfig& config, bool expect_pair, bool chaos,
               std::string* trace) {
  std::mt19937 rng(seed);
  Sim sim(config, (seed % 2) ? DataStatus::kUnknown : DataStatus::kUpToDate);
  struct KeepTrace {
    Sim& sim;
    std::string* out;
    ~KeepTrace() { *out = sim.trace(); }
  } keep{sim, trace};
  sim.set_random(&rng, 3);
  sim.set_check_single_primary(!chaos);
  const EventKind kCommands[] = {
      EventKind::kStart,     EventKind::kStart,       EventKind::kStop,
      EventKind::kRestart,   EventKind::kStopStart,   EventKind::kSwap,
      EventKind::kForcePrim, EventKind::kForceSecond, EventKind::kLocalFailure};
  const char* kActions[] = {"restart", "stopstart", "failover", "stop"};
  bool link = true;
  for (int t = 0; t < 400; ++t) {
    if (rng() % 8 == 0) {
      EventKind k = kCommands[rng() % std::size(kCommands)];
      std::string detail = k == EventKind::kLocalFailure ? kActions[rng() % 4]
                           : k == EventKind::kForcePrim  ? "force"
                                                         : "";
      sim.Command(static_cast<int>(rng() % 2), k, detail);
    }
    if (chaos) {
      if (rng() % 40 == 0) sim.set_link(link = !link);
      int i = static_cast<int>(rng() % 2);
      if (sim.node(i).alive && rng() % 150 == 0) sim.Crash(i);
      if (!sim.node(i).alive && rng() % 20 == 0) {
        sim.Boot(i, sim.node(i).f.data, sim.node(i).f.was_last_prim);
      }
    }
    sim.Tick();
    ASSERT_EQ(sim.violation(), "") << "seed " << seed << "\n" << sim.trace();
  }
  // The noise stops: every node up, the link too, no more failing scripts.
  sim.set_random(nullptr, 0);
  sim.set_link(true);
  for (int i = 0; i < 2; ++i) {
    if (!sim.node(i).alive) sim.Boot(i, sim.node(i).f.data, sim.node(i).f.was_last_prim);
  }
  ASSERT_TRUE(sim.RunUntilQuiet(500)) << "seed " << seed << "\n" << sim.trace();
  ASSERT_EQ(sim.violation(), "") << "seed " << seed << "\n" << sim.trace();
  ExpectConsistent(sim, seed);
  // From here on, whatever happened before, never two primaries.
  sim.set_check_single_primary(true);
  StartStopped(sim);
  ASSERT_TRUE(sim.RunUntilQuiet(500)) << "seed " << seed << "\n" << sim.trace();
  ASSERT_EQ(sim.violation(), "") << "seed " << seed << "\n" << sim.trace();
  ExpectConsistent(sim, seed);
  if (!expect_pair) return;
  if (!IsPrimary(sim.state(0)) && !IsPrimary(sim.state(1))) {
    // After a split brain both wait for the operator, who picks n1.
    sim.Command(0, EventKind::kForcePrim, "force");
    ASSERT_TRUE(sim.RunUntilQuiet(500)) << "seed " << seed << "\n" << sim.trace();
    StartStopped(sim);
    ASSERT_TRUE(sim.RunUntilQuiet(500)) << "seed " << seed << "\n" << sim.trace();
  }
  ASSERT_EQ(sim.violation(), "") << "seed " << seed << "\n" << sim.trace();
  ExpectPair(sim, seed);
  ExpectConsistent(sim, seed);
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(MirrorFsmSim, RandomOperatorsAndFailuresNeverRunTwoPrimaries) {
  static const char* kDefaults[] = {"alone", "lastprim", "n1", "n2"};
  std::string all;
  for (unsigned seed = 1; seed <= 400; ++seed) {
    FsmConfig config;
    config.default_prim = kDefaults[seed % 4];
    std::string trace;
    RandomRun(seed, config, /*expect_pair=*/true, /*chaos=*/false, &trace);
    if (::testing::Test::HasFailure()) return;
    all += trace;
  }
  // The runs went through what matters.
  EXPECT_GT(Count(all, "#swap"), 100);
  EXPECT_GT(Count(all, "#failover"), 100);
  EXPECT_GT(Count(all, "#script_failure"), 100);
  EXPECT_GT(Count(all, "elected primary"), 100);
  EXPECT_GT(Count(all, "refused"), 100);
  EXPECT_GT(Count(all, "failback"), 10);
}

TEST(MirrorFsmSim, RandomWithFailoverOffNeverRunsTwoPrimaries) {
  FsmConfig config;
  config.failover = false;
  std::string all;
  for (unsigned seed = 1000; seed < 1200; ++seed) {
    std::string trace;
    RandomRun(seed, config, /*expect_pair=*/false, /*chaos=*/false, &trace);
    if (::testing::Test::HasFailure()) return;
    all += trace;
  }
  EXPECT_GT(Count(all, "failover=off: waiting"), 10);
}

TEST(MirrorFsmSim, RandomPartitionsAndCrashesHealToOnePrimary) {
  static const char* kDefaults[] = {"alone", "lastprim", "n1", "n2"};
  std::string all;
  for (unsigned seed = 2000; seed < 2400; ++seed) {
    FsmConfig config;
    config.default_prim = kDefaults[seed % 4];
    config.failover = seed % 5 != 0;
    std::string trace;
    RandomRun(seed, config, /*expect_pair=*/config.failover, /*chaos=*/true, &trace);
    if (::testing::Test::HasFailure()) return;
    all += trace;
  }
  EXPECT_GT(Count(all, "#split_brain"), 50);
  EXPECT_GT(Count(all, "#peer_lost"), 50);
  EXPECT_GT(Count(all, "crashes"), 50);
}

}  // namespace
}  // namespace hakit::cluster
