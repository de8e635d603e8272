// Properties of the mirror state machine over generated facts: whatever the
// situation, some things never happen (two primaries, a VIP without the
// application, a primary that leaves its VIP up...), and the election between
// the two nodes always names exactly one of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

#include "fsm_test_util.h"
#include "hakit/cluster/mirror_fsm.h"

namespace hakit::cluster {
namespace {

using testing::ApplyStrict;
using testing::Describe;
using testing::Mirror;
using testing::Model;
using testing::ModelOf;

bool Has(const std::vector<Step>& steps, Step s) {
  return std::find(steps.begin(), steps.end(), s) != steps.end();
}

bool SameDecision(const Decision& a, const Decision& b) {
  return a.no_change == b.no_change && a.defer == b.defer && a.next == b.next &&
         a.steps == b.steps && a.handing_over == b.handing_over && a.reason == b.reason &&
         a.action == b.action && a.history_kind == b.history_kind && a.refused == b.refused &&
         a.restart_after == b.restart_after && a.set_data == b.set_data;
}

// Stop steps at or after remove_vip in the cleanup order: a failure there
// resumes past the VIP removal (the controller tried it already).
bool FailedAtOrAfterVipRemoval(const Event& e) {
  return e.kind == EventKind::kStepsFailed &&
         (e.detail == "remove_vip" || e.detail == "stop_second" || e.detail == "stop_both" ||
          e.detail == "poststop");
}

// Returns the first invariant the decision breaks, or "".
std::string BrokenInvariant(const Facts& f, const Event& e, const Decision& d) {
  const bool outcome = e.kind == EventKind::kStepsDone || e.kind == EventKind::kStepsFailed;
  const PeerView& p = f.peer;
  const bool peer_primary = p.visible && IsPrimary(p.state);

  if (!SameDecision(d, Decide(f, e))) return "not deterministic";
  if (!d.refused.empty() && !d.no_change) return "refused without no_change";
  if (d.defer && !d.no_change) return "defer without no_change";
  if (d.no_change && !d.steps.empty()) return "no_change with steps";
  if (d.no_change && d.next != f.state) return "no_change with another next state";
  if (f.busy && !outcome && !d.defer) return "event not deferred while busy";
  if (d.defer && !f.busy) return "deferred while idle";

  // The application never starts here while the peer runs it.
  if (Has(d.steps, Step::kStartPrim) && peer_primary) return "start_prim while the peer is primary";
  // Becoming primary waits for a peer in transition (it may be becoming primary).
  if (!d.no_change && !f.busy && !IsPrimary(f.state) && IsPrimary(d.next) && p.visible && p.busy) {
    return "becomes primary while the peer is in transition";
  }
  // The VIP only comes with the application, just before it starts.
  if (Has(d.steps, Step::kAddVip)) {
    auto vip = std::find(d.steps.begin(), d.steps.end(), Step::kAddVip);
    if (std::count(d.steps.begin(), d.steps.end(), Step::kAddVip) != 1 ||
        std::find(vip, d.steps.end(), Step::kStartPrim) == d.steps.end()) {
      return "add_vip without start_prim after it";
    }
  }
  // Leaving a primary state (or a transition towards one) removes the VIP.
  const bool was_primary = IsPrimary(f.state) || (f.busy && IsPrimary(f.target));
  if (!d.no_change && e.kind != EventKind::kStepsDone && was_primary && !IsPrimary(d.next) &&
      !FailedAtOrAfterVipRemoval(e) &&
      !(e.kind == EventKind::kStepsFailed && f.target == State::kStop && e.detail.empty())) {
    if (!Has(d.steps, Step::kRemoveVip)) return "leaves primary without remove_vip";
    auto stop = std::find(d.steps.begin(), d.steps.end(), Step::kStopPrim);
    auto vip = std::find(d.steps.begin(), d.steps.end(), Step::kRemoveVip);
    if (e.kind != EventKind::kStepsFailed && (stop == d.steps.end() || stop > vip)) {
      return "remove_vip before stop_prim";
    }
  }
  // PRIM and ALONE differ only by the replication state: no hooks.
  if (!d.no_change && !f.busy && IsPrimary(f.state) && IsPrimary(d.next) && f.state != d.next &&
      !d.steps.empty()) {
    return "hooks between PRIM and ALONE";
  }
  if (e.kind == EventKind::kStepsFailed && f.busy) {
    if (d.no_change || d.next != State::kStop || d.handing_over) return "failure not to STOP";
    if (Has(d.steps, Step::kStartPrim) || Has(d.steps, Step::kStartSecond) ||
        Has(d.steps, Step::kAddVip)) {
      return "failure cleanup starts something";
    }
  }
  if (e.kind == EventKind::kStepsDone && f.busy &&
      (d.no_change || d.next != f.target || !d.steps.empty())) {
    return "steps done does not arrive at the target";
  }
  if (!d.no_change && d.handing_over && d.next != State::kSecond) {
    return "handing over outside SECOND";
  }
  if (d.set_data == DataStatus::kDiverged && d.history_kind != "split_brain") {
    return "data marked diverged outside a split brain";
  }
  if (d.set_data == DataStatus::kStale) return "the state machine marks data stale";
  if (d.restart_after && d.next != State::kStop) return "restart_after without STOP";
  // Stale data never serves without the operator (or the primary handing over).
  if (!d.no_change && !f.busy && !IsPrimary(f.state) && IsPrimary(d.next) &&
      (f.data == DataStatus::kStale || f.data == DataStatus::kDiverged) &&
      !(e.kind == EventKind::kForcePrim && e.detail == "force") && d.action != "swap") {
    return "stale data becomes primary on its own";
  }
  // Both primary: whatever happens, the application stops (or is stopped).
  if (!f.busy && !outcome && IsPrimary(f.state) && peer_primary) {
    if (e.kind == EventKind::kStop) {
      if (d.next != State::kStop) return "stop during split brain";
    } else if (d.history_kind != "split_brain" || d.next != State::kWait ||
               d.set_data != DataStatus::kDiverged) {
      return "split brain not handled";
    }
  }
  // The steps lead from the state to the next one, each in order.
  if (!d.no_change && !outcome) {
    Model m = ModelOf(f.state);
    std::string error;
    for (Step s : d.steps) {
      if (!ApplyStrict(m, s, &error)) return "bad step order: " + error;
    }
    if (!(m == ModelOf(d.next))) return "steps do not lead to the next state";
  }
  // A failed stop_prim means the primary role (and its VIP) were being
  // stopped, whatever the state shows after an earlier failure.
  if (e.kind == EventKind::kStepsFailed && f.busy && e.detail == "stop_prim" &&
      (d.steps.empty() || d.steps.front() != Step::kRemoveVip)) {
    return "failed stop_prim not followed by remove_vip";
  }
  // Failure cleanups end with nothing running, from whatever part ran.
  if (e.kind == EventKind::kStepsFailed && f.busy && !e.detail.empty()) {
    if (Has(d.steps, Step::kStopPrim) != (IsPrimary(f.state) || IsPrimary(f.target)) &&
        e.detail != "stop_prim" && !FailedAtOrAfterVipRemoval(e)) {
      return "failure cleanup misses stop_prim";
    }
  }
  return "";
}

TEST(MirrorFsmProperties, InvariantsOverRandomFacts) {
  std::mt19937 rng(20240611);
  int checked = 0;
  for (int i = 0; i < 300000; ++i) {
    Facts f = testing::RandomFacts(rng);
    Event e = testing::RandomEvent(rng);
    Decision d = Decide(f, e);
    std::string broken = BrokenInvariant(f, e, d);
    ASSERT_EQ(broken, "") << "facts: " << Describe(f) << "\nevent: " << testing::EventName(e.kind)
                          << ":" << e.detail << "\ndecision: " << Describe(d);
    ++checked;
  }
  EXPECT_EQ(checked, 300000);
}

// Every settled state, every peer situation, every event: exhaustively.
TEST(MirrorFsmProperties, InvariantsExhaustiveWhenIdle) {
  const Event kEvents[] = {{EventKind::kStart, ""},
                           {EventKind::kStop, ""},
                           {EventKind::kRestart, ""},
                           {EventKind::kStopStart, ""},
                           {EventKind::kSwap, ""},
                           {EventKind::kForcePrim, ""},
                           {EventKind::kForcePrim, "force"},
                           {EventKind::kForceSecond, ""},
                           {EventKind::kPeerChanged, ""},
                           {EventKind::kPeerLost, ""},
                           {EventKind::kWaitExpired, ""},
                           {EventKind::kLocalFailure, "restart"},
                           {EventKind::kLocalFailure, "failover"},
                           {EventKind::kLocalFailure, "stopstart"},
                           {EventKind::kLocalFailure, "stop"}};
  long cases = 0;
  for (State s : testing::kStates)
    for (DataStatus data : testing::kDatas)
      for (int bits = 0; bits < (1 << 9); ++bits)
        for (State ps : testing::kStates)
          for (DataStatus pdata : testing::kDatas)
            for (const char* dp : {"alone", "n1", "n2"}) {
              Facts f;
              f.state = s;
              f.target = s;
              f.data = data;
              f.was_last_prim = bits & 1;
              f.handing_over = bits & 2;
              f.config.failover = bits & 4;
              f.config.default_prim = dp;
              f.config.local_name = "n1";
              f.peer.visible = bits & 8;
              f.peer.config_matches = bits & 16;
              f.peer.busy = bits & 32;
              f.peer.handing_over = bits & 64;
              f.peer.was_last_prim = bits & 128;
              f.peer.state = ps;
              f.peer.data = pdata;
              f.peer.name = (bits & 256) ? "n0" : "n2";
              for (const Event& e : kEvents) {
                Decision d = Decide(f, e);
                std::string broken = BrokenInvariant(f, e, d);
                ASSERT_EQ(broken, "")
                    << "facts: " << Describe(f) << "\nevent: " << testing::EventName(e.kind) << ":"
                    << e.detail << "\ndecision: " << Describe(d);
                ++cases;
              }
            }
  EXPECT_EQ(cases, 5L * 3 * 512 * 5 * 4 * 4 * 15);
}

// Swapping local and peer always flips the answer (names differ).
TEST(MirrorFsmProperties, ElectionIsAntisymmetric) {
  int cases = 0;
  for (DataStatus a : testing::kDatas)
    for (DataStatus b : testing::kDatas)
      for (int bits = 0; bits < 4; ++bits)
        for (const char* dp : {"alone", "lastprim", "n1", "n2", "n9"})
          for (const char* names : {"n1n2", "n2n1"}) {
            Facts f;
            f.state = State::kWait;
            f.data = a;
            f.was_last_prim = bits & 1;
            f.config.default_prim = dp;
            f.config.local_name = std::string(names, 2);
            f.peer.visible = true;
            f.peer.state = State::kWait;
            f.peer.data = b;
            f.peer.was_last_prim = bits & 2;
            f.peer.name = std::string(names + 2, 2);
            EXPECT_NE(ElectLocalAsPrimary(f), ElectLocalAsPrimary(Mirror(f))) << Describe(f);
            ++cases;
          }
  EXPECT_EQ(cases, 4 * 4 * 4 * 5 * 2);

  std::mt19937 rng(7);
  for (int i = 0; i < 100000; ++i) {
    Facts f = testing::RandomFacts(rng);
    // Arbitrary distinct names, not only n1/n2.
    f.config.local_name = "node" + std::to_string(rng() % 50);
    f.peer.name = "node" + std::to_string(rng() % 50);
    if (f.config.local_name == f.peer.name) continue;
    if (rng() % 3 == 0) f.config.default_prim = (rng() % 2) ? f.peer.name : f.config.local_name;
    ASSERT_NE(ElectLocalAsPrimary(f), ElectLocalAsPrimary(Mirror(f))) << Describe(f);
  }
}

TEST(MirrorFsmProperties, ElectionOrder) {
  Facts f;
  f.config.local_name = "b";
  f.peer.name = "a";
  f.peer.visible = true;
  f.state = f.peer.state = State::kWait;
  f.data = f.peer.data = DataStatus::kUpToDate;
  EXPECT_FALSE(ElectLocalAsPrimary(f));  // name order
  f.was_last_prim = true;
  EXPECT_TRUE(ElectLocalAsPrimary(f));  // last primary beats the name
  f.config.default_prim = "a";
  EXPECT_FALSE(ElectLocalAsPrimary(f));  // defaultprim beats last primary
  f.data = DataStatus::kUnknown;
  f.config.default_prim = "b";
  EXPECT_FALSE(ElectLocalAsPrimary(f));  // up-to-date data beats defaultprim
  // Same names: a misconfiguration; neither side wins.
  f.peer.name = "b";
  f.data = DataStatus::kUpToDate;
  f.was_last_prim = false;
  f.config.default_prim = "alone";
  EXPECT_FALSE(ElectLocalAsPrimary(f));
  EXPECT_FALSE(ElectLocalAsPrimary(Mirror(f)));
}

// Both nodes judging the same situation at once (automatic events only: an
// operator command racing a heartbeat is a split brain by nature, handled
// when the heartbeats meet) never both start the application.
TEST(MirrorFsmProperties, NeverBothStartOnTheSameView) {
  const EventKind kAuto[] = {EventKind::kPeerChanged, EventKind::kWaitExpired,
                             EventKind::kPeerLost};
  std::mt19937 rng(99);
  int both_wait_elections = 0;
  for (int i = 0; i < 200000; ++i) {
    Facts a = testing::RandomFacts(rng);
    a.busy = false;
    a.target = a.state;
    a.peer.visible = true;
    a.peer.busy = rng() % 5 == 0;
    Facts b = Mirror(a);
    for (EventKind ka : kAuto) {
      for (EventKind kb : kAuto) {
        Decision da = Decide(a, {ka, ""});
        Decision db = Decide(b, {kb, ""});
        bool a_starts = !da.no_change && Has(da.steps, Step::kStartPrim) && !IsPrimary(a.state);
        bool b_starts = !db.no_change && Has(db.steps, Step::kStartPrim) && !IsPrimary(b.state);
        ASSERT_FALSE(a_starts && b_starts) << "A: " << Describe(a) << " -> " << Describe(da)
                                           << "\nB: " << Describe(b) << " -> " << Describe(db);
        if (a.state == State::kWait && b.state == State::kWait && (a_starts || b_starts)) {
          ++both_wait_elections;
        }
      }
    }
  }
  EXPECT_GT(both_wait_elections, 100);
}

// The pairs a cluster settles in are fixed points: re-evaluating them (the
// controller does after each arrival) changes nothing.
TEST(MirrorFsmProperties, SettledPairsAreFixedPoints) {
  struct Pair {
    State local, peer;
  } pairs[] = {{State::kPrim, State::kSecond}, {State::kSecond, State::kPrim},
               {State::kAlone, State::kStop},  {State::kAlone, State::kWait},
               {State::kStop, State::kStop},   {State::kStop, State::kAlone},
               {State::kWait, State::kStop}};
  for (const Pair& pair : pairs) {
    for (const char* dp : {"alone", "lastprim"}) {
      Facts f;
      f.state = pair.local;
      f.data = DataStatus::kUpToDate;
      f.config.local_name = "n1";
      f.config.default_prim = dp;
      f.peer.visible = true;
      f.peer.state = pair.peer;
      f.peer.name = "n2";
      f.peer.data = DataStatus::kUpToDate;
      Decision d = Decide(f, {EventKind::kPeerChanged, ""});
      EXPECT_TRUE(d.no_change) << Describe(f) << " -> " << Describe(d);
    }
  }
}

}  // namespace
}  // namespace hakit::cluster
