// Helpers shared by the mirror state machine tests: printing, a model of what
// runs on a node (to check that step lists lead where the decision says), and
// generators of facts.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "hakit/cluster/mirror_fsm.h"

namespace hakit::cluster::testing {

inline std::string StepsToString(const std::vector<Step>& steps) {
  std::string out;
  for (Step s : steps) {
    if (!out.empty()) out += ' ';
    out += StepName(s);
  }
  return out.empty() ? "-" : out;
}

inline const char* EventName(EventKind k) {
  switch (k) {
    case EventKind::kStart:
      return "start";
    case EventKind::kStop:
      return "stop";
    case EventKind::kRestart:
      return "restart";
    case EventKind::kStopStart:
      return "stopstart";
    case EventKind::kSwap:
      return "swap";
    case EventKind::kForcePrim:
      return "prim";
    case EventKind::kForceSecond:
      return "second";
    case EventKind::kPeerChanged:
      return "changed";
    case EventKind::kPeerLost:
      return "lost";
    case EventKind::kWaitExpired:
      return "expired";
    case EventKind::kStepsDone:
      return "done";
    case EventKind::kStepsFailed:
      return "failed";
    case EventKind::kLocalFailure:
      return "failure";
  }
  return "?";
}

inline const char* DataTag(DataStatus d) {
  switch (d) {
    case DataStatus::kUpToDate:
      return "up";
    case DataStatus::kStale:
      return "stale";
    case DataStatus::kDiverged:
      return "diverged";
    case DataStatus::kUnknown:
      return "unk";
  }
  return "?";
}

inline std::string Describe(const Facts& f) {
  std::string s = StateName(f.state);
  if (f.busy) s += std::string(" busy>") + StateName(f.target);
  s += std::string(" data=") + DataTag(f.data);
  if (f.was_last_prim) s += " last";
  if (f.handing_over) s += " ho";
  if (!f.config.failover) s += " failover=off";
  s += " defprim=" + f.config.default_prim + " name=" + f.config.local_name + " | peer ";
  const PeerView& p = f.peer;
  if (!p.visible) {
    s += "none";
  } else {
    s += StateName(p.state);
    if (p.busy) s += " busy";
    if (p.handing_over) s += " ho";
    if (!p.config_matches) s += " mismatch";
    s += std::string(" data=") + DataTag(p.data);
    if (p.was_last_prim) s += " last";
    s += " name=" + p.name;
  }
  return s;
}

inline std::string Describe(const Decision& d) {
  if (d.defer) return "defer";
  if (!d.refused.empty()) return "refused (" + d.refused + ")";
  if (d.no_change) return "nochange (" + d.reason + ")";
  std::string s =
      std::string(StateName(d.next)) + " [" + StepsToString(d.steps) + "] #" + d.history_kind;
  if (d.handing_over) s += " +ho";
  if (d.restart_after) s += " +again";
  if (d.set_data) s += std::string(" +data=") + DataTag(*d.set_data);
  return s + " (" + d.reason + ")";
}

// What the hooks have left running on a node.
struct Model {
  bool prestarted = false;
  bool both = false;
  bool prim = false;
  bool second = false;
  bool vip = false;
  bool operator==(const Model&) const = default;
};

// The canonical model of a settled state.
inline Model ModelOf(State s) {
  Model m;
  m.prestarted = s != State::kStop;
  m.both = IsRunning(s);
  m.prim = IsPrimary(s);
  m.second = s == State::kSecond;
  m.vip = IsPrimary(s);
  return m;
}

// Applies one step strictly: a step out of order (starting what runs,
// stopping what does not, start_prim without the VIP...) is an error.
inline bool ApplyStrict(Model& m, Step s, std::string* error) {
  auto fail = [&](const char* why) {
    *error = std::string(StepName(s)) + ": " + why;
    return false;
  };
  switch (s) {
    case Step::kPrestart:
      if (m.prestarted) return fail("already prestarted");
      m.prestarted = true;
      return true;
    case Step::kStartBoth:
      if (!m.prestarted || m.both) return fail("not prestarted or already started");
      m.both = true;
      return true;
    case Step::kStartPrim:
      if (!m.both || m.prim || m.second || !m.vip) return fail("needs start_both and the VIP");
      m.prim = true;
      return true;
    case Step::kStartSecond:
      if (!m.both || m.prim || m.second || m.vip) return fail("needs start_both, no primary");
      m.second = true;
      return true;
    case Step::kStopPrim:
      if (!m.prim) return fail("primary not running");
      m.prim = false;
      return true;
    case Step::kStopSecond:
      if (!m.second) return fail("secondary not running");
      m.second = false;
      return true;
    case Step::kStopBoth:
      if (!m.both || m.prim || m.second) return fail("roles still running");
      m.both = false;
      return true;
    case Step::kPoststop:
      if (!m.prestarted || m.both) return fail("not prestarted or still started");
      m.prestarted = false;
      return true;
    case Step::kAddVip:
      if (m.vip) return fail("VIP already up");
      m.vip = true;
      return true;
    case Step::kRemoveVip:
      if (!m.vip || m.prim) return fail("no VIP, or the application still runs");
      m.vip = false;
      return true;
  }
  return fail("?");
}

// Mirrors the facts: what the peer would see of the same situation.
inline Facts Mirror(const Facts& f) {
  Facts m;
  m.state = f.peer.state;
  m.busy = f.peer.busy;
  m.target = f.peer.state;
  m.data = f.peer.data;
  m.was_last_prim = f.peer.was_last_prim;
  m.handing_over = f.peer.handing_over;
  m.config = f.config;
  m.config.local_name = f.peer.name;
  m.peer.visible = f.peer.visible;
  m.peer.config_matches = f.peer.config_matches;
  m.peer.state = f.state;
  m.peer.busy = f.busy;
  m.peer.handing_over = f.handing_over;
  m.peer.data = f.data;
  m.peer.was_last_prim = f.was_last_prim;
  m.peer.name = f.config.local_name;
  return m;
}

constexpr State kStates[] = {State::kStop, State::kWait, State::kAlone, State::kPrim,
                             State::kSecond};
constexpr DataStatus kDatas[] = {DataStatus::kUpToDate, DataStatus::kStale, DataStatus::kUnknown,
                                 DataStatus::kDiverged};

// Any facts at all, including unlikely ones: the invariants must hold anyway.
inline Facts RandomFacts(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto coin = [&](int percent) { return pick(100) < percent; };
  Facts f;
  f.state = kStates[pick(5)];
  f.busy = coin(25);
  f.target = f.busy ? kStates[pick(5)] : f.state;
  f.data = kDatas[pick(3)];
  f.was_last_prim = coin(50);
  f.handing_over = coin(15);
  f.config.failover = coin(75);
  static const char* kDefaults[] = {"alone", "lastprim", "n1", "n2"};
  f.config.default_prim = kDefaults[pick(4)];
  f.config.local_name = coin(50) ? "n1" : "n2";
  f.peer.visible = coin(80);
  f.peer.config_matches = coin(85);
  f.peer.state = kStates[pick(5)];
  f.peer.busy = coin(20);
  f.peer.handing_over = coin(15);
  f.peer.data = kDatas[pick(3)];
  f.peer.was_last_prim = coin(50);
  f.peer.name = f.config.local_name == "n1" ? "n2" : "n1";
  return f;
}

inline Event RandomEvent(std::mt19937& rng) {
  static const EventKind kKinds[] = {
      EventKind::kStart,       EventKind::kStop,        EventKind::kRestart,
      EventKind::kStopStart,   EventKind::kSwap,        EventKind::kForcePrim,
      EventKind::kForceSecond, EventKind::kPeerChanged, EventKind::kPeerLost,
      EventKind::kWaitExpired, EventKind::kStepsDone,   EventKind::kStepsFailed,
      EventKind::kLocalFailure};
  Event e{kKinds[rng() % std::size(kKinds)], ""};
  if (e.kind == EventKind::kStepsFailed) {
    static const char* kDetails[] = {
        "prestart",  "start_both", "start_prim", "start_second", "stop_prim", "stop_second",
        "stop_both", "poststop",   "add_vip",    "remove_vip",   ""};
    e.detail = kDetails[rng() % std::size(kDetails)];
  } else if (e.kind == EventKind::kLocalFailure) {
    static const char* kActions[] = {"restart", "stopstart", "failover", "stop", "bogus"};
    e.detail = kActions[rng() % std::size(kActions)];
  }
  return e;
}

}  // namespace hakit::cluster::testing
