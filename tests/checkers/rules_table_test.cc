// The failure rules (checkers/rules.h) as a regression table: each row is
// (module state, peer, counters, resources) -> the planned action. Rows are
// text so that a failing case prints as it reads.
//
// Row:  STATE PEER loops failovers maxloop handle_ms RESOURCES -> KIND CAUSE [hold]
//   STATE     STOP WAIT ALONE PRIM SECOND; a trailing * means busy
//   PEER      -  (not visible), or a state with flags: * busy, ? other config,
//             ^ reports a resource down, ~ failover off on this node
//   RESOURCES comma-separated name:state:action:when:age_ms[:off], or -
//   KIND      noaction restart stopstart stop wait swap handler
//   CAUSE     the resource that caused it, - for none; "hold": hold_wait set
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "hakit/checkers/loop_counter.h"
#include "hakit/checkers/rules.h"

namespace hakit::checkers {
namespace {

using cluster::State;
using config::When;

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

When ParseWhen(const std::string& w) {
  if (w == "pre") return When::kPre;
  if (w == "prim") return When::kPrim;
  if (w == "second") return When::kSecond;
  return When::kBoth;
}

PlannedKind ParseKind(const std::string& w) {
  if (w == "handler") return PlannedKind::kHandler;
  auto k = ParseActionWord(w);
  EXPECT_TRUE(k.has_value()) << w;
  return k.value_or(PlannedKind::kNoAction);
}

struct Row {
  RuleInput in;
  PlannedKind kind;
  std::string cause;
  bool hold = false;
};

Row ParseRow(const std::string& text) {
  std::istringstream s(text);
  std::string state, peer, loops, failovers, maxloop, handle, res, arrow, kind, cause, hold;
  s >> state >> peer >> loops >> failovers >> maxloop >> handle >> res >> arrow >> kind >> cause >>
      hold;
  EXPECT_EQ(arrow, "->") << text;
  Row r;
  if (!state.empty() && state.back() == '*') {
    r.in.busy = true;
    state.pop_back();
  }
  r.in.state = cluster::ParseState(state).value();
  if (peer != "-") {
    r.in.peer_visible = true;
    std::string name;
    for (char c : peer) {
      if (c == '*') r.in.peer_busy = true;
      else if (c == '?') r.in.peer_config_matches = false;
      else if (c == '^') r.in.peer_resources.push_back({"intf.lan", ResourceState::kDown});
      else if (c == '~') r.in.failover = false;
      else name += c;
    }
    r.in.peer_state = cluster::ParseState(name).value();
  }
  r.in.loops = std::stoi(loops);
  r.in.failovers = std::stoi(failovers);
  r.in.maxloop = std::stoi(maxloop);
  r.in.max_failovers = r.in.maxloop;
  r.in.handle_time = std::chrono::milliseconds(std::stoi(handle));
  if (res != "-") {
    for (const auto& spec : Split(res, ',')) {
      auto f = Split(spec, ':');
      EXPECT_GE(f.size(), 5u) << spec;
      ResourceFact rf;
      rf.name = f[0];
      rf.state = ParseResourceState(f[1]).value();
      rf.action = ParseKind(f[2]);
      if (rf.action == PlannedKind::kHandler) rf.handler = "on_failure";
      rf.when = ParseWhen(f[3]);
      rf.age = std::chrono::milliseconds(std::stoi(f[4]));
      rf.disabled = f.size() > 5 && f[5] == "off";
      rf.handled = f.size() > 5 && f[5] == "handled";
      r.in.resources.push_back(rf);
    }
  }
  r.kind = ParseKind(kind);
  r.cause = cause == "-" ? "" : cause;
  r.hold = hold == "hold";
  return r;
}

// clang-format off
const char* kRows[] = {
  // Nothing down, nothing to do.
  "PRIM   SECOND 0 0 3 0 - -> noaction -",
  "PRIM   SECOND 0 0 3 0 proc.app:up:restart:prim:9000 -> noaction -",
  "PRIM   SECOND 0 0 3 0 proc.app:init:restart:prim:9000 -> noaction -",
  "ALONE  -      0 0 3 0 tcp.db:up:restart:prim:0 -> noaction -",
  // A process down on the primary: restart, counted.
  "PRIM   SECOND 0 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "ALONE  -      0 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "PRIM   SECOND 1 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "ALONE  -      1 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  // The maxloop-th: fail over when a SECOND can take it.
  "PRIM   SECOND 2 0 3 0 proc.app:down:restart:prim:0 -> swap proc.app",
  "PRIM   SECOND* 2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "PRIM   SECOND? 2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "PRIM   SECOND^ 2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "PRIM   SECOND~ 2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "PRIM   WAIT   2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "ALONE  -      2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "ALONE  STOP   2 0 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  // Past maxloop: stop here.
  "PRIM   SECOND 3 0 3 0 proc.app:down:restart:prim:0 -> stop proc.app",
  "ALONE  -      3 0 3 0 proc.app:down:restart:prim:0 -> stop proc.app",
  "PRIM   SECOND 7 0 3 0 proc.app:down:restart:prim:0 -> stop proc.app",
  "PRIM   SECOND 3 0 3 0 tcp.db:down:stopstart:prim:0 -> stop tcp.db",
  "PRIM   SECOND 3 0 3 0 custom.c:down:handler:prim:0 -> stop custom.c",
  "PRIM   SECOND 3 0 3 0 ip.vip:down:swap:prim:0 -> stop ip.vip",
  // maxloop 0: the first failure stops; 1: the first fails over.
  "PRIM   SECOND 0 0 0 0 proc.app:down:restart:prim:0 -> stop proc.app",
  "PRIM   SECOND 0 0 1 0 proc.app:down:restart:prim:0 -> swap proc.app",
  "ALONE  -      0 0 1 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "ALONE  -      1 0 1 0 proc.app:down:restart:prim:0 -> stop proc.app",
  // Stop and wait do not count and are not limited.
  "PRIM   SECOND 9 9 3 0 proc.app:down:stop:prim:0 -> stop proc.app",
  "PRIM   SECOND 9 9 3 0 intf.lan:down:wait:pre:0 -> wait intf.lan hold",
  "ALONE  -      0 0 3 0 intf.lan:down:wait:pre:0 -> wait intf.lan hold",
  "SECOND PRIM   0 0 3 0 intf.lan:down:wait:pre:0 -> wait intf.lan hold",
  "WAIT   -      0 0 3 0 intf.lan:down:wait:pre:0 -> noaction - hold",
  "WAIT   PRIM   0 0 3 0 ping.gw:down:wait:pre:0 -> noaction - hold",
  "WAIT   -      0 0 3 0 ping.gw:up:wait:pre:0 -> noaction -",
  "WAIT   -      0 0 3 0 ping.gw:init:wait:pre:0 -> noaction -",
  // noaction resources only report.
  "PRIM   SECOND 0 0 3 0 tcp.x:down:noaction:prim:0 -> noaction -",
  "ALONE  -      0 0 3 0 tcp.x:down:noaction:both:0 -> noaction -",
  // Explicit swap (SDK action "failover").
  "PRIM   SECOND 0 0 3 0 tcp.db:down:swap:prim:0 -> swap tcp.db",
  "PRIM   SECOND* 0 0 3 0 tcp.db:down:swap:prim:0 -> restart tcp.db",
  "ALONE  -      0 0 3 0 tcp.db:down:swap:prim:0 -> restart tcp.db",
  "PRIM   SECOND~ 0 0 3 0 tcp.db:down:swap:prim:0 -> restart tcp.db",
  "PRIM   WAIT   0 0 3 0 tcp.db:down:swap:prim:0 -> restart tcp.db",
  "PRIM   STOP   0 0 3 0 tcp.db:down:swap:prim:0 -> restart tcp.db",
  "PRIM   SECOND 2 0 3 0 tcp.db:down:swap:prim:0 -> swap tcp.db",
  // stopstart.
  "PRIM   SECOND 0 0 3 0 ip.vip:down:stopstart:prim:0 -> stopstart ip.vip",
  "ALONE  -      0 0 3 0 ip.vip:down:stopstart:prim:0 -> stopstart ip.vip",
  "PRIM   SECOND 2 0 3 0 ip.vip:down:stopstart:prim:0 -> stopstart ip.vip",
  "SECOND PRIM   0 0 3 0 tcp.s:down:stopstart:second:0 -> stopstart tcp.s",
  // Counters at their limits with nothing down change nothing.
  "PRIM   SECOND 9 9 3 0 proc.app:up:restart:prim:0 -> noaction -",
  "ALONE  -      9 9 0 0 - -> noaction -",
  // The flapping guard: moving the role once too often stops instead.
  "PRIM   SECOND 2 3 3 0 proc.app:down:restart:prim:0 -> stop proc.app",
  "PRIM   SECOND 2 2 3 0 proc.app:down:restart:prim:0 -> swap proc.app",
  "PRIM   SECOND 0 3 3 0 tcp.db:down:swap:prim:0 -> stop tcp.db",
  "PRIM   SECOND 0 3 3 0 ip.vip:down:stopstart:prim:0 -> stop ip.vip",
  "ALONE  -      0 3 3 0 ip.vip:down:stopstart:prim:0 -> stopstart ip.vip",
  "PRIM   SECOND 0 3 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  "ALONE  -      1 5 3 0 proc.app:down:restart:prim:0 -> restart proc.app",
  // Debounce: down for less than handle_time is pending only.
  "PRIM   SECOND 0 0 3 1000 proc.app:down:restart:prim:999 -> noaction -",
  "PRIM   SECOND 0 0 3 1000 proc.app:down:restart:prim:1000 -> restart proc.app",
  "PRIM   SECOND 0 0 3 1000 proc.app:down:restart:prim:5000 -> restart proc.app",
  "PRIM   SECOND 0 0 3 1000 intf.l:down:wait:pre:10 -> noaction -",
  "WAIT   -      0 0 3 1000 intf.l:down:wait:pre:10 -> noaction -",
  "WAIT   -      0 0 3 1000 intf.l:down:wait:pre:1000 -> noaction - hold",
  "PRIM   SECOND 0 0 3 1000 proc.a:down:stop:prim:500,proc.b:down:restart:prim:1500 -> restart proc.b",
  // Classes: what is watched in which state.
  "PRIM   SECOND 0 0 3 0 proc.s:down:restart:second:0 -> noaction -",
  "SECOND PRIM   0 0 3 0 proc.s:down:restart:second:0 -> restart proc.s",
  "SECOND PRIM   0 0 3 0 proc.p:down:restart:prim:0 -> noaction -",
  "SECOND PRIM   0 0 3 0 proc.b:down:restart:both:0 -> restart proc.b",
  "PRIM   SECOND 0 0 3 0 proc.b:down:restart:both:0 -> restart proc.b",
  "ALONE  -      0 0 3 0 proc.b:down:restart:both:0 -> restart proc.b",
  "WAIT   -      0 0 3 0 proc.b:down:restart:both:0 -> noaction -",
  "WAIT   -      0 0 3 0 proc.p:down:restart:prim:0 -> noaction -",
  "WAIT   -      0 0 3 0 proc.pre:down:restart:pre:0 -> noaction -",
  "WAIT   -      0 0 3 0 proc.pre:down:stop:pre:0 -> stop proc.pre",
  "WAIT   -      0 0 3 0 proc.pre:down:stopstart:pre:0 -> stopstart proc.pre",
  "WAIT   -      0 0 3 0 proc.pre:down:handler:pre:0 -> handler proc.pre",
  "PRIM   SECOND 0 0 3 0 proc.pre:down:restart:pre:0 -> restart proc.pre",
  "SECOND PRIM   0 0 3 0 proc.pre:down:restart:pre:0 -> restart proc.pre",
  "STOP   -      0 0 3 0 proc.pre:down:stop:pre:0 -> noaction -",
  "STOP   -      0 0 3 0 intf.l:down:wait:pre:0 -> noaction -",
  // SECOND never swaps.
  "SECOND PRIM   0 0 3 0 tcp.s:down:swap:second:0 -> restart tcp.s",
  "SECOND PRIM   2 0 3 0 tcp.s:down:restart:second:0 -> restart tcp.s",
  "SECOND PRIM   3 0 3 0 tcp.s:down:restart:second:0 -> stop tcp.s",
  // Busy: nothing until the transition ends.
  "PRIM*  SECOND 0 0 3 0 proc.app:down:restart:prim:0 -> noaction -",
  "ALONE* -      9 9 3 0 proc.app:down:stop:prim:0 -> noaction -",
  "WAIT*  -      0 0 3 0 intf.l:down:wait:pre:0 -> noaction - hold",
  "PRIM*  SECOND 0 0 3 0 intf.l:down:wait:pre:0 -> noaction - hold",
  "SECOND* PRIM  0 0 3 0 intf.l:up:wait:pre:0 -> noaction -",
  // Disabled resources (errd off, checker off) are ignored.
  "PRIM   SECOND 0 0 3 0 proc.app:down:restart:prim:0:off -> noaction -",
  "PRIM   SECOND 0 0 3 0 proc.app:down:restart:prim:0:off,tcp.db:down:restart:prim:0 -> restart tcp.db",
  "WAIT   -      0 0 3 0 intf.l:down:wait:pre:0:off -> noaction -",
  // A down episode already acted upon asks for nothing more; a wait still holds.
  "PRIM   SECOND 0 0 3 0 proc.app:down:restart:prim:0:handled -> noaction -",
  "PRIM   SECOND 0 0 3 0 proc.app:down:restart:prim:0:handled,tcp.db:down:restart:prim:0 -> restart tcp.db",
  "WAIT   -      0 0 3 0 intf.l:down:wait:pre:0:handled -> noaction - hold",
  "ALONE  -      0 0 3 0 intf.l:down:wait:pre:0:handled -> noaction - hold",
  // Handlers run the script, counted like restarts.
  "PRIM   SECOND 0 0 3 0 proc.app:down:handler:prim:0 -> handler proc.app",
  "PRIM   SECOND 2 0 3 0 proc.app:down:handler:prim:0 -> handler proc.app",
  "SECOND PRIM   0 0 3 0 proc.app:down:handler:second:0 -> handler proc.app",
  // Severity: stop > wait > swap > stopstart > restart > handler.
  "PRIM   SECOND 0 0 3 0 proc.a:down:restart:prim:0,proc.b:down:stop:prim:0 -> stop proc.b",
  "PRIM   SECOND 0 0 3 0 proc.a:down:restart:prim:0,intf.b:down:wait:pre:0 -> wait intf.b hold",
  "PRIM   SECOND 0 0 3 0 intf.a:down:wait:pre:0,proc.b:down:stop:prim:0 -> stop proc.b hold",
  "PRIM   SECOND 0 0 3 0 proc.a:down:restart:prim:0,ip.b:down:stopstart:prim:0 -> stopstart ip.b",
  "PRIM   SECOND 0 0 3 0 proc.a:down:handler:prim:0,tcp.b:down:restart:prim:0 -> restart tcp.b",
  "PRIM   SECOND 0 0 3 0 tcp.a:down:swap:prim:0,ip.b:down:stopstart:prim:0 -> swap tcp.a",
  "PRIM   SECOND 0 0 3 0 proc.z:down:restart:prim:0,proc.a:down:restart:prim:0 -> restart proc.a",
  "PRIM   SECOND 0 0 3 0 proc.a:up:stop:prim:0,proc.b:down:restart:prim:0 -> restart proc.b",
  "PRIM   SECOND 0 0 3 0 proc.a:down:noaction:prim:0,proc.b:down:handler:prim:0 -> handler proc.b",
  // Witness resources never act by themselves.
  "PRIM   SECOND 0 0 3 0 splitbrain.w:down:stop:pre:0 -> noaction -",
  "SECOND -      0 0 3 0 splitbrain.w:down:wait:pre:0 -> noaction -",
};
// clang-format on

class RulesTable : public ::testing::TestWithParam<const char*> {};

TEST_P(RulesTable, PlansTheAction) {
  Row row = ParseRow(GetParam());
  Plan p = Evaluate(row.in);
  EXPECT_EQ(PlannedKindName(p.kind), std::string(PlannedKindName(row.kind)))
      << GetParam() << "\n  reason: " << p.reason;
  EXPECT_EQ(p.resource, row.cause) << GetParam();
  EXPECT_EQ(p.hold_wait, row.hold) << GetParam();
  if (p.kind != PlannedKind::kNoAction) {
    EXPECT_FALSE(p.reason.empty()) << GetParam();
  }
  const bool counted = p.kind == PlannedKind::kRestart || p.kind == PlannedKind::kStopStart ||
                       p.kind == PlannedKind::kSwap || p.kind == PlannedKind::kHandler;
  EXPECT_EQ(p.counts, counted) << GetParam();
  if (p.kind == PlannedKind::kHandler) {
    EXPECT_EQ(p.handler, "on_failure");
  }
  // Pure: the same input plans the same again.
  Plan again = Evaluate(row.in);
  EXPECT_EQ(again.kind, p.kind);
  EXPECT_EQ(again.reason, p.reason);
}

INSTANTIATE_TEST_SUITE_P(Rows, RulesTable, ::testing::ValuesIn(kRows));

// Every class in every state, for one resource down long enough, against a
// hand-written activity table: whether the resource is watched at all.
TEST(RulesMatrix, ClassesAgainstStates) {
  const State states[] = {State::kStop, State::kWait, State::kAlone, State::kPrim, State::kSecond};
  const When whens[] = {When::kPre, When::kPrim, When::kSecond, When::kBoth};
  //                         STOP   WAIT   ALONE  PRIM   SECOND
  const bool active[4][5] = {{false, true, true, true, true},      // pre
                             {false, false, true, true, false},    // prim
                             {false, false, false, false, true},   // second
                             {false, false, true, true, true}};    // both
  int cases = 0;
  for (int w = 0; w < 4; ++w) {
    for (int s = 0; s < 5; ++s) {
      EXPECT_EQ(ActiveIn(whens[w], states[s]), active[w][s]) << w << " " << s;
      for (PlannedKind action : {PlannedKind::kRestart, PlannedKind::kStopStart, PlannedKind::kStop,
                                 PlannedKind::kWait, PlannedKind::kSwap, PlannedKind::kHandler,
                                 PlannedKind::kNoAction}) {
        for (auto rs : {ResourceState::kInit, ResourceState::kUp, ResourceState::kDown}) {
          for (bool busy : {false, true}) {
            for (int age : {0, 499, 500, 60000}) {
              RuleInput in;
              in.state = states[s];
              in.busy = busy;
              in.handle_time = std::chrono::milliseconds(500);
              ResourceFact r;
              r.name = "tcp.x";
              r.state = rs;
              r.action = action;
              r.handler = "h";
              r.when = whens[w];
              r.age = std::chrono::milliseconds(age);
              in.resources.push_back(r);
              Plan p = Evaluate(in);
              ++cases;
              const bool down_long = active[w][s] && rs == ResourceState::kDown && age >= 500;
              // The hold of a wait resource outlasts transitions.
              EXPECT_EQ(p.hold_wait, down_long && action == PlannedKind::kWait);
              const bool pending = active[w][s] && rs == ResourceState::kDown && age < 500;
              EXPECT_EQ(p.pending.size(), pending ? 1u : 0u);
              if (!down_long || busy) {
                EXPECT_EQ(p.kind, PlannedKind::kNoAction);
                continue;
              }
              EXPECT_EQ(p.hold_wait, action == PlannedKind::kWait);
              // No peer: a swap is impossible and becomes a restart; nothing
              // restarts in WAIT; a wait already in WAIT holds.
              PlannedKind expect = action == PlannedKind::kSwap ? PlannedKind::kRestart : action;
              if (states[s] == State::kWait &&
                  (expect == PlannedKind::kRestart || expect == PlannedKind::kWait)) {
                expect = PlannedKind::kNoAction;
              }
              EXPECT_EQ(PlannedKindName(p.kind), std::string(PlannedKindName(expect)))
                  << "when " << w << " state " << s << " action " << PlannedKindName(action);
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 4 * 5 * 7 * 3 * 2 * 4);
}

// A failing process, again and again, with the counter kept as the daemon
// keeps it: restart, restart, swap, then stop.
TEST(RulesSequence, RestartRestartFailoverStop) {
  LoopCounter loops(std::chrono::hours(24));
  auto t = Clock::time_point{} + std::chrono::hours(1);
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    RuleInput in;
    in.state = State::kPrim;
    in.peer_visible = true;
    in.peer_state = State::kSecond;
    in.loops = loops.Count(t);
    in.resources.push_back({"proc.app", ResourceState::kDown, std::chrono::seconds(1),
                            PlannedKind::kRestart, "", When::kPrim, false});
    Plan p = Evaluate(in);
    got.push_back(PlannedKindName(p.kind));
    if (p.counts) loops.Record(t);
    t += std::chrono::minutes(10);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"restart", "restart", "swap", "stop"}));
}

TEST(LoopCounter, SlidingWindowAndReset) {
  LoopCounter c(std::chrono::hours(1));
  auto t0 = Clock::time_point{} + std::chrono::hours(5);
  c.Record(t0);
  c.Record(t0 + std::chrono::minutes(30));
  EXPECT_EQ(c.Count(t0 + std::chrono::minutes(59)), 2);
  EXPECT_EQ(c.Count(t0 + std::chrono::minutes(60)), 1);
  EXPECT_EQ(c.Count(t0 + std::chrono::minutes(95)), 0);
  c.Record(t0 + std::chrono::minutes(96));
  c.Reset();
  EXPECT_EQ(c.Count(t0 + std::chrono::minutes(96)), 0);
}

TEST(ResourceTable, AgesRestartOnChangeOnly) {
  ResourceTable t;
  auto t0 = Clock::time_point{} + std::chrono::hours(1);
  t.Declare("proc.app", t0);
  EXPECT_FALSE(t.Set("tcp.unknown", ResourceState::kUp, t0, "x"));
  EXPECT_TRUE(t.Set("proc.app", ResourceState::kDown, t0 + std::chrono::seconds(1), "errd"));
  EXPECT_FALSE(t.Set("proc.app", ResourceState::kDown, t0 + std::chrono::seconds(5), "errd"));
  EXPECT_EQ(ResourceTable::Age(*t.Find("proc.app"), t0 + std::chrono::seconds(6)).count(), 5000);
  t.Declare("proc.app", t0 + std::chrono::seconds(7));
  EXPECT_EQ(t.Find("proc.app")->state, ResourceState::kDown);
  t.ResetUnless([](const ResourceEntry&) { return false; }, t0 + std::chrono::seconds(8));
  EXPECT_EQ(t.Find("proc.app")->state, ResourceState::kInit);
}

TEST(ResourceTable, HeartbeatShareDownFirstWithinBudget) {
  using R = std::vector<std::pair<std::string, ResourceState>>;
  R all;
  for (int i = 0; i < 100; ++i) {
    all.push_back({"tcp.checker" + std::to_string(100 + i),
                   i % 10 == 9 ? ResourceState::kDown : ResourceState::kUp});
  }
  R sent = ForHeartbeat(all, 600);
  std::size_t bytes = 0;
  for (const auto& r : sent) bytes += r.first.size() + 2;
  EXPECT_LE(bytes, 600u);
  ASSERT_EQ(sent.size(), 600u / 16);  // 14-byte names
  for (int i = 0; i < 10; ++i) {  // every down one made it, first
    EXPECT_EQ(sent[i].second, ResourceState::kDown);
  }
  EXPECT_EQ(sent[0].first, "tcp.checker109");
  EXPECT_EQ(sent[10].first, "tcp.checker100");
  EXPECT_EQ(ForHeartbeat({{std::string(300, 'x'), ResourceState::kUp}, {"ip.a", ResourceState::kUp}},
                         600)
                .size(),
            1u);
}

TEST(ResourceNames, KnownPrefixesOnly) {
  for (const char* ok : {"proc.app", "tcp.db", "ping.gw", "intf.eth0", "ip.198.18.0.100",
                         "custom.x", "splitbrain.witness"}) {
    EXPECT_TRUE(IsResourceName(ok)) << ok;
  }
  for (const char* bad : {"", "proc.", "proc", "heartbeat.x", "tcp.a b", "custom"}) {
    EXPECT_FALSE(IsResourceName(bad)) << bad;
  }
  EXPECT_EQ(ParseResourceState("UP"), ResourceState::kUp);
  EXPECT_FALSE(ParseResourceState("maybe").has_value());
  EXPECT_EQ(DefaultAction("ping.gw"), PlannedKind::kWait);
  EXPECT_EQ(DefaultAction("ip.1.2.3.4"), PlannedKind::kStopStart);
  EXPECT_EQ(DefaultAction("custom.c"), PlannedKind::kRestart);
}

}  // namespace
}  // namespace hakit::checkers
