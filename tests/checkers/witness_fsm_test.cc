// What the mirror state machine does with the checkers' facts: the
// split-brain witness (Facts::witness) and a resource whose action is wait
// (Facts::local_wait). Table: state, peer, witness, local_wait, event ->
// next state and steps.
#include <gtest/gtest.h>

#include <string>

#include "hakit/cluster/mirror_fsm.h"

namespace hakit::cluster {
namespace {

struct Case {
  State state;
  bool peer_visible;
  State peer_state;
  Witness witness;
  bool local_wait;
  EventKind event;
  const char* detail;
  bool changes;
  State next;
  const char* steps;  // space-separated step names, "-" for none
};

std::string Steps(const Decision& d) {
  std::string out;
  for (Step s : d.steps) out += (out.empty() ? "" : " ") + std::string(StepName(s));
  return out.empty() ? "-" : out;
}

constexpr Witness kNone = Witness::kNone;
constexpr Witness kYes = Witness::kReachable;
constexpr Witness kNo = Witness::kUnreachable;

// clang-format off
const Case kCases[] = {
  // Every heartbeat lost: the witness decides who may run the application.
  {State::kSecond, false, State::kStop, kNone, false, EventKind::kPeerLost, "", true, State::kAlone, "stop_second add_vip start_prim"},
  {State::kSecond, false, State::kStop, kYes,  false, EventKind::kPeerLost, "", true, State::kAlone, "stop_second add_vip start_prim"},
  {State::kSecond, false, State::kStop, kNo,   false, EventKind::kPeerLost, "", true, State::kWait,  "stop_second stop_both"},
  {State::kPrim,   false, State::kStop, kNone, false, EventKind::kPeerLost, "", true, State::kAlone, "-"},
  {State::kPrim,   false, State::kStop, kYes,  false, EventKind::kPeerLost, "", true, State::kAlone, "-"},
  {State::kPrim,   false, State::kStop, kNo,   false, EventKind::kPeerLost, "", true, State::kWait,  "stop_prim remove_vip stop_both"},
  {State::kAlone,  false, State::kStop, kNo,   false, EventKind::kPeerLost, "", false, State::kAlone, "-"},
  // Start-up wait expired without a peer.
  {State::kWait,   false, State::kStop, kNone, false, EventKind::kWaitExpired, "", true, State::kAlone, "start_both add_vip start_prim"},
  {State::kWait,   false, State::kStop, kYes,  false, EventKind::kWaitExpired, "", true, State::kAlone, "start_both add_vip start_prim"},
  {State::kWait,   false, State::kStop, kNo,   false, EventKind::kWaitExpired, "", false, State::kWait, "-"},
  // The witness is not looked at while the peer is heard.
  {State::kWait,   true,  State::kPrim, kNo,   false, EventKind::kPeerChanged, "", true, State::kSecond, "start_both start_second"},
  {State::kSecond, true,  State::kStop, kNo,   false, EventKind::kPeerChanged, "", true, State::kAlone, "stop_second add_vip start_prim"},
  // A wait resource down holds WAIT and stops a running module.
  {State::kWait,   false, State::kStop, kNone, true,  EventKind::kWaitExpired, "", false, State::kWait, "-"},
  {State::kWait,   true,  State::kPrim, kNone, true,  EventKind::kPeerChanged, "", false, State::kWait, "-"},
  {State::kSecond, false, State::kStop, kNone, true,  EventKind::kPeerLost, "", true, State::kWait, "stop_second stop_both"},
  {State::kPrim,   true,  State::kSecond, kNone, false, EventKind::kLocalFailure, "wait", true, State::kWait, "stop_prim remove_vip stop_both"},
  {State::kAlone,  false, State::kStop, kNone, false, EventKind::kLocalFailure, "wait", true, State::kWait, "stop_prim remove_vip stop_both"},
  {State::kSecond, true,  State::kPrim, kNone, false, EventKind::kLocalFailure, "wait", true, State::kWait, "stop_second stop_both"},
  {State::kWait,   false, State::kStop, kNone, false, EventKind::kLocalFailure, "wait", false, State::kWait, "-"},
  // Local failures as the checkers ask for them.
  {State::kPrim,   true,  State::kSecond, kNone, false, EventKind::kLocalFailure, "restart", true, State::kPrim, "stop_prim start_prim"},
  {State::kPrim,   true,  State::kSecond, kNone, false, EventKind::kLocalFailure, "failover", true, State::kSecond, "stop_prim remove_vip start_second"},
  {State::kPrim,   true,  State::kSecond, kNone, false, EventKind::kLocalFailure, "stop", true, State::kStop, "stop_prim remove_vip stop_both poststop"},
  {State::kAlone,  false, State::kStop, kNone, false, EventKind::kLocalFailure, "failover", true, State::kAlone, "stop_prim start_prim"},
};
// clang-format on

TEST(WitnessAndWaitFacts, Table) {
  int i = 0;
  for (const Case& c : kCases) {
    Facts f;
    f.state = c.state;
    f.target = c.state;
    f.data = DataStatus::kUpToDate;
    f.peer.visible = c.peer_visible;
    f.peer.state = c.peer_state;
    f.peer.data = DataStatus::kUpToDate;
    f.peer.name = "node2";
    f.config.local_name = "node1";
    f.witness = c.witness;
    f.local_wait = c.local_wait;
    Decision d = Decide(f, {c.event, c.detail});
    EXPECT_EQ(!d.no_change, c.changes) << "case " << i << ": " << d.reason;
    if (c.changes) {
      EXPECT_EQ(StateName(d.next), std::string(StateName(c.next))) << "case " << i << ": " << d.reason;
      EXPECT_EQ(Steps(d), c.steps) << "case " << i;
    }
    ++i;
  }
}

}  // namespace
}  // namespace hakit::cluster
