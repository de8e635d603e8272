// The mirror state machine: see mirror_fsm.h for the contract.
//
// Rules that the interface leaves open, as chosen here (each is also noted
// where it is applied):
//  - prestart runs once per module start (kStart: STOP -> WAIT, or STOP ->
//    running directly on `hakit prim`/`hakit second`), poststop once per
//    module stop (-> STOP, so WAIT -> STOP runs poststop). A running module
//    that falls back to WAIT (split brain, failover="off") runs its role's
//    stop hooks and stop_both, not poststop; leaving WAIT runs start_both.
//  - A node becomes primary on its own only with data it may trust: kUpToDate,
//    or kUnknown when nothing better is known (a fresh node alone, as SafeKit
//    lets it; a fresh pair by election). kStale never; `hakit prim --force`
//    overrides (plain `hakit prim` is refused on stale or diverged data: the
//    operator must say that this copy wins over whatever the peer holds).
//    An election winner without up-to-date data facing a stale loser waits
//    too: it might wipe what the loser holds.
//  - A peer that is visible and primary, or visible and busy, holds us back
//    from starting the application whatever its configuration; its
//    configuration only decides whether we may pair with it.
//  - Both primary (split brain) takes precedence over every event but kStop.
//  - failover="off" governs every automatic move of the primary role: peer
//    lost, primary stopped (peer STOP or WAIT) and checker failover. Operator
//    commands (swap, prim) are not automatic.
//  - Failed steps always end in STOP, running every stop step that may undo
//    what ran; stop hooks are idempotent (SafeKit calls them twice anyway).
#include "hakit/cluster/mirror_fsm.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hakit::cluster {

namespace {

using Steps = std::vector<Step>;

constexpr Step kAllSteps[] = {
    Step::kPrestart,   Step::kStartBoth, Step::kStartPrim, Step::kStartSecond, Step::kStopPrim,
    Step::kStopSecond, Step::kStopBoth,  Step::kPoststop,  Step::kAddVip,      Step::kRemoveVip};

// The order in which stop steps run when everything has to go. A failure
// part-way resumes after the failed step, so that repeated failures while
// stopping always make progress and end.
constexpr Step kCleanupOrder[] = {Step::kStopPrim, Step::kRemoveVip, Step::kStopSecond,
                                  Step::kStopBoth, Step::kPoststop};

std::optional<Step> ParseStep(std::string_view name) {
  for (Step s : kAllSteps) {
    if (name == StepName(s)) return s;
  }
  return std::nullopt;
}

const char* DataName(DataStatus d) {
  switch (d) {
    case DataStatus::kUpToDate:
      return "up to date";
    case DataStatus::kStale:
      return "stale";
    case DataStatus::kDiverged:
      return "diverged";
    case DataStatus::kUnknown:
      return "never synchronised";
  }
  return "?";
}

// Stale and diverged data become primary only by the operator's --force.
bool NeedsForce(DataStatus d) { return d == DataStatus::kStale || d == DataStatus::kDiverged; }

std::string PrimCommandFor(const Facts& f, bool force) {
  return std::string("hakit prim") + (force ? " --force" : "") +
         (f.config.module.empty() ? std::string() : " -m " + f.config.module);
}

std::string PeerName(const Facts& f) {
  return f.peer.name.empty() ? std::string("the peer") : f.peer.name;
}

std::string LocalName(const Facts& f) {
  return f.config.local_name.empty() ? std::string("this node") : f.config.local_name;
}

// The peer runs (or is about to run) the application: whatever else is true,
// this node must not start it. Configuration does not matter here.
bool PeerIsPrimary(const Facts& f) { return f.peer.visible && IsPrimary(f.peer.state); }

// The peer is in the middle of a transition whose end we cannot see (its
// target is not in the heartbeat): it may be becoming primary.
bool PeerIsBusy(const Facts& f) { return f.peer.visible && f.peer.busy; }

// ---- Decisions --------------------------------------------------------------

Decision NoChange(const Facts& f, std::string reason = {}) {
  Decision d;
  d.no_change = true;
  d.next = f.state;
  d.handing_over = f.handing_over;
  d.reason = std::move(reason);
  return d;
}

Decision Defer(const Facts& f) {
  Decision d = NoChange(f, "deferred: a transition is running");
  d.defer = true;
  return d;
}

Decision Refuse(const Facts& f, std::string why) {
  Decision d = NoChange(f, why);
  d.refused = std::move(why);
  return d;
}

Decision Go(State next, Steps steps, std::string action, std::string kind, std::string reason) {
  Decision d;
  d.no_change = false;
  d.next = next;
  d.steps = std::move(steps);
  d.action = std::move(action);
  d.history_kind = std::move(kind);
  d.reason = std::move(reason);
  return d;
}

// ---- Step lists ---------------------------------------------------------------

// From STOP or WAIT to a running state. The VIP goes up just before start_prim
// so that clients reach an address only once the application is coming.
Steps StartSteps(State from, State to) {
  Steps s;
  if (from == State::kStop) s.push_back(Step::kPrestart);
  if (IsRunning(to)) s.push_back(Step::kStartBoth);
  if (IsPrimary(to)) {
    s.push_back(Step::kAddVip);
    s.push_back(Step::kStartPrim);
  }
  if (to == State::kSecond) s.push_back(Step::kStartSecond);
  return s;
}

// From any state down to WAIT or STOP. The VIP goes once the application is
// stopped, so that clients never reach an address with nothing behind it
// while the application still serves; it always goes before stop_both.
Steps StopSteps(State from, State to) {
  Steps s;
  if (IsPrimary(from)) {
    s.push_back(Step::kStopPrim);
    s.push_back(Step::kRemoveVip);
  }
  if (from == State::kSecond) s.push_back(Step::kStopSecond);
  if (IsRunning(from)) s.push_back(Step::kStopBoth);
  if (to == State::kStop) s.push_back(Step::kPoststop);
  return s;
}

// Secondary to primary without a full stop: the secondary role goes, the
// primary role comes (failover, swap take-over, `hakit prim` on a SECOND).
Steps PromoteSteps() { return {Step::kStopSecond, Step::kAddVip, Step::kStartPrim}; }

// Primary to secondary by swap: the application stops here first so that the
// peer can start it without both running it.
Steps HandOverSteps() { return {Step::kStopPrim, Step::kRemoveVip, Step::kStartSecond}; }

Steps RestartSteps(State s) {
  if (IsPrimary(s)) return {Step::kStopPrim, Step::kStartPrim};
  return {Step::kStopSecond, Step::kStartSecond};
}

// After a failed step: everything the transition from `state` to `target` may
// have started must stop. When the failure was itself a stop step, resume
// after it (the controller already tried it nicely and by force).
//
// A failed stop step also tells what was being stopped: after a first
// failure the transition heads for STOP and its state may no longer show that
// the primary role (and the VIP) were involved, but the failed step does.
Steps CleanupSteps(State state, State target, std::optional<Step> failed) {
  auto failed_is = [&](std::initializer_list<Step> steps) {
    return failed && std::find(steps.begin(), steps.end(), *failed) != steps.end();
  };
  const bool prim =
      IsPrimary(state) || IsPrimary(target) || failed_is({Step::kStopPrim, Step::kRemoveVip});
  const bool second =
      state == State::kSecond || target == State::kSecond || failed_is({Step::kStopSecond});
  const bool running =
      IsRunning(state) || IsRunning(target) ||
      failed_is({Step::kStopPrim, Step::kRemoveVip, Step::kStopSecond, Step::kStopBoth});
  Steps all;
  for (Step s : kCleanupOrder) {
    if ((s == Step::kStopPrim || s == Step::kRemoveVip) && !prim) continue;
    if (s == Step::kStopSecond && !second) continue;
    if (s == Step::kStopBoth && !running) continue;
    all.push_back(s);
  }
  if (failed) {
    auto it = std::find(all.begin(), all.end(), *failed);
    if (it != all.end()) return Steps(it + 1, all.end());
  }
  return all;
}

// ---- Election -----------------------------------------------------------------

int DataRank(DataStatus d) { return d == DataStatus::kUpToDate ? 1 : 0; }

struct Election {
  bool local_wins;
  const char* why;
};

// Every criterion compares a property of each side, never "local" against
// "peer" as roles, so that evaluating with the sides swapped gives the
// opposite answer; equal names (a misconfiguration) elect neither.
Election Elect(const Facts& f) {
  const PeerView& p = f.peer;
  const std::string& me = f.config.local_name;
  if (DataRank(f.data) != DataRank(p.data)) {
    return {DataRank(f.data) > DataRank(p.data), "its data is up to date"};
  }
  const std::string& dp = f.config.default_prim;
  if (dp != "alone" && dp != "lastprim" && me != p.name) {
    if (dp == me) return {true, "defaultprim names it"};
    if (dp == p.name) return {false, "defaultprim names it"};
  }
  if (f.was_last_prim != p.was_last_prim) {
    return {f.was_last_prim, "it was the last primary"};
  }
  if (me != p.name) return {me < p.name, "its name sorts first"};
  return {false, "both nodes have the same name"};
}

// May the election's winner start the application without the operator?
// Its data must be up to date, or both sides never synchronised (fresh pair).
// A winner without up-to-date data facing a stale loser could wipe data the
// loser holds and the winner never had.
bool WinnerMayStart(DataStatus winner, DataStatus loser) {
  return winner == DataStatus::kUpToDate ||
         (winner == DataStatus::kUnknown && loser == DataStatus::kUnknown);
}

// ---- Rules by situation -----------------------------------------------------

Decision SplitBrain(const Facts& f) {
  Decision d = Go(State::kWait, StopSteps(f.state, State::kWait), "stop", "split_brain",
                  "split brain: " + LocalName(f) + " and " + PeerName(f) +
                      " are both primary; the application is stopped on both and their data "
                      "may have diverged: run " + PrimCommandFor(f, true) +
                      " on the node whose data to keep");
  d.set_data = DataStatus::kDiverged;
  return d;
}

// Whether this PRIM may hand the primary role to its peer (swap, failback,
// failover after a local failure); `why` says what is missing.
bool CanHandOver(const Facts& f, std::string* why) {
  const PeerView& p = f.peer;
  if (f.state != State::kPrim) {
    *why = std::string("this node is ") + StateName(f.state) + ", not PRIM";
  } else if (!p.visible) {
    *why = "peer is not visible";
  } else if (!p.config_matches) {
    *why = "peer " + PeerName(f) + " has a different configuration";
  } else if (p.state != State::kSecond) {
    *why = "peer is not SECOND";
  } else if (p.busy || p.handing_over) {
    *why = "peer " + PeerName(f) + " is in transition";
  } else if (p.data == DataStatus::kStale) {
    *why = "peer " + PeerName(f) + " is not synchronised yet";
  } else {
    return true;
  }
  return false;
}

Decision HandOver(const Facts& f, std::string kind, std::string reason) {
  Decision d = Go(State::kSecond, HandOverSteps(), "swap", std::move(kind), std::move(reason));
  d.handing_over = true;
  return d;
}

Decision GoAloneIfDataAllows(const Facts& f, const std::string& context) {
  if (f.data == DataStatus::kStale) {
    return NoChange(f, context +
                           ": data may be stale: the peer was primary after this node; start the "
                           "module there, or run " + PrimCommand(f) + " to trust this copy");
  }
  if (f.data == DataStatus::kUnknown && f.peer.visible && f.peer.data == DataStatus::kUpToDate) {
    return NoChange(f, context + ": peer " + PeerName(f) +
                           " holds up-to-date data and this node never synchronised: start the "
                           "module there, or use " + PrimCommand(f) + " here");
  }
  return Go(State::kAlone, StartSteps(f.state, State::kAlone), "start", "state_change",
            context + ": starting ALONE (data " + DataName(f.data) + ")");
}

// WAIT: pair with a primary peer, elect against a waiting peer, or (once the
// start-up wait expired) start alone.
Decision EvaluateWait(const Facts& f, bool expired) {
  const PeerView& p = f.peer;
  if (f.data == DataStatus::kDiverged) {
    // Only the operator's choice ends a divergence. `hakit prim` on the other
    // node makes its data overrule ours: the daemon then reports this copy
    // as merely stale, and it follows as SECOND by the usual rule.
    return NoChange(f, "data diverged from " + PeerName(f) + " (both ran ALONE): run " +
                           PrimCommandFor(f, true) + " on the node whose data to keep");
  }
  if (f.local_wait) return NoChange(f, "a local resource is down: waiting until it is up");
  if (!p.visible) {
    if (!expired) return NoChange(f, "waiting for the peer");
    if (f.witness == Witness::kUnreachable) {
      return NoChange(f, "no peer and no witness reachable: waiting (the peer may run the "
                         "application); use " + PrimCommand(f) + " to start here");
    }
    return GoAloneIfDataAllows(f, "wait expired, no peer");
  }
  if (!p.config_matches) {
    // Going ALONE would let both nodes run the application side by side.
    return NoChange(f, "peer " + PeerName(f) +
                           " has a different configuration: not pairing, not starting alone");
  }
  if (p.busy) return NoChange(f, "peer " + PeerName(f) + " is in transition: waiting");
  const std::string peer = PeerName(f);
  switch (p.state) {
    case State::kAlone:
    case State::kPrim:
      return Go(State::kSecond, StartSteps(f.state, State::kSecond), "start", "state_change",
                "peer " + peer + " is primary: becoming SECOND");
    case State::kWait: {
      const Election e = Elect(f);
      const DataStatus winner = e.local_wins ? f.data : p.data;
      const DataStatus loser = e.local_wins ? p.data : f.data;
      if (!WinnerMayStart(winner, loser)) {
        return NoChange(f, std::string("cannot tell which node holds the newest data (") +
                               LocalName(f) + ": " + DataName(f.data) + ", " + peer + ": " +
                               DataName(p.data) + "): use " + PrimCommandFor(f, false) +
                               " on the node you trust (with --force if its data is stale)");
      }
      if (!e.local_wins) {
        return NoChange(f, "election: " + peer + " is to be primary (" + e.why + ")");
      }
      return Go(State::kAlone, StartSteps(f.state, State::kAlone), "start", "state_change",
                "elected primary over " + peer + " (" + e.why + ")");
    }
    case State::kSecond:
      // It will take over (or fall back to WAIT with failover="off").
      return NoChange(f, "peer " + peer + " is SECOND without a primary: waiting");
    case State::kStop:
      if (!expired) return NoChange(f, "peer " + peer + " is stopped: waiting");
      return GoAloneIfDataAllows(f, "wait expired, peer " + peer + " stopped");
  }
  return NoChange(f);
}

// SECOND whose primary is gone or stopped the application: become primary,
// unless failover="off" or the data is not synchronised yet; then WAIT for
// the operator (the application must run on at most one node, and a stale
// copy must not serve).
Decision TakeOver(const Facts& f, const std::string& why, std::string kind) {
  if (!f.config.failover) {
    return Go(State::kWait, StopSteps(f.state, State::kWait), "stop", std::move(kind),
              why + ", failover=off: waiting; use " + PrimCommand(f) + " to start here");
  }
  if (f.data == DataStatus::kStale || f.data == DataStatus::kDiverged) {
    return Go(State::kWait, StopSteps(f.state, State::kWait), "stop", std::move(kind),
              why + ", data not synchronised: waiting; " + PrimCommand(f) +
                  " here only if you trust this copy");
  }
  if (f.local_wait) {
    return Go(State::kWait, StopSteps(f.state, State::kWait), "stop", std::move(kind),
              why + ", a local resource is down: waiting until it is up");
  }
  if (!f.peer.visible && f.witness == Witness::kUnreachable) {
    return Go(State::kWait, StopSteps(f.state, State::kWait), "stop", std::move(kind),
              why + ", no witness reachable: waiting (the peer may be the side that reaches "
                    "it); use " + PrimCommand(f) + " to start here");
  }
  return Go(State::kAlone, PromoteSteps(), "failover", "failover", why + ": failover");
}

Decision EvaluateSecond(const Facts& f) {
  const PeerView& p = f.peer;
  if (!p.visible) return NoChange(f);
  const std::string peer = PeerName(f);
  if (f.handing_over) {
    // We gave the primary role away by swap; the flag tells the peer to take
    // it, and is no longer needed once it has.
    if (IsPrimary(p.state)) {
      Decision d = Go(State::kSecond, {}, "", "swap", "swap complete: " + peer + " is primary");
      d.handing_over = false;
      return d;
    }
    if (p.state == State::kSecond || p.busy) {
      return NoChange(f, "swap: waiting for " + peer + " to take over");
    }
    // The peer stopped instead of taking over: the usual rules apply.
  }
  if (IsPrimary(p.state) || p.busy) return NoChange(f);
  switch (p.state) {
    case State::kSecond:
      if (p.handing_over) {
        return Go(State::kPrim, PromoteSteps(), "swap", "swap", "swap: taking over from " + peer);
      }
      // Two secondaries and no primary: one of them must go, by the same
      // election as at start-up so that exactly one moves.
      if (!Elect(f).local_wins) return NoChange(f, "no primary: " + peer + " is to take over");
      return TakeOver(f, "no primary, " + peer + " is SECOND too", "state_change");
    case State::kStop:
      return TakeOver(f, "primary " + peer + " stopped", "state_change");
    case State::kWait:
      return TakeOver(f, "primary " + peer + " stopped its application", "state_change");
    default:
      return NoChange(f);
  }
}

Decision EvaluatePrimary(const Facts& f) {
  const PeerView& p = f.peer;
  if (!p.visible) return NoChange(f);
  if (IsPrimary(p.state)) return SplitBrain(f);
  // The peer saw the split brain first and stopped: this side stops too.
  if (f.data == DataStatus::kDiverged && p.config_matches) return SplitBrain(f);
  const std::string peer = PeerName(f);
  if (f.state == State::kAlone) {
    if (p.config_matches && p.state == State::kSecond && !p.busy) {
      return Go(State::kPrim, {}, "", "state_change", "peer " + peer + " is SECOND");
    }
    return NoChange(f);
  }
  // PRIM.
  if (p.state == State::kStop || p.state == State::kWait) {
    return Go(State::kAlone, {}, "", "state_change",
              "peer " + peer + " is " + StateName(p.state) + ": no secondary");
  }
  std::string why;
  if (!f.handing_over && !p.name.empty() && f.config.default_prim == p.name &&
      p.name != f.config.local_name && CanHandOver(f, &why)) {
    return HandOver(f, "swap", "defaultprim=" + p.name + ": failback");
  }
  return NoChange(f);
}

Decision OnPeerChanged(const Facts& f) {
  switch (f.state) {
    case State::kStop:
      return NoChange(f);
    case State::kWait:
      return EvaluateWait(f, /*expired=*/false);
    case State::kSecond:
      return EvaluateSecond(f);
    case State::kAlone:
    case State::kPrim:
      return EvaluatePrimary(f);
  }
  return NoChange(f);
}

Decision OnPeerLost(const Facts& f) {
  // A replayed kPeerLost after the peer came back: judge the current view.
  if (f.peer.visible) return OnPeerChanged(f);
  const std::string peer = PeerName(f);
  switch (f.state) {
    case State::kPrim:
      if (f.witness == Witness::kUnreachable) {
        // The other side of the cut may reach the witness and take over:
        // only one side may keep the application.
        return Go(State::kWait, StopSteps(f.state, State::kWait), "stop", "peer_lost",
                  "peer " + peer + " lost and no witness reachable: application stopped, "
                  "waiting");
      }
      return Go(State::kAlone, {}, "", "peer_lost", "peer " + peer + " lost: ALONE");
    case State::kSecond:
      return TakeOver(f, "peer " + peer + " lost", "peer_lost");
    default:
      // WAIT: the start-up wait timer decides. ALONE: nothing to change.
      return NoChange(f);
  }
}

Decision OnStop(const Facts& f, std::string action, std::string kind, std::string reason) {
  if (f.state == State::kStop) return NoChange(f, "already stopped");
  return Go(State::kStop, StopSteps(f.state, State::kStop), std::move(action), std::move(kind),
            std::move(reason));
}

Decision OnStopStart(const Facts& f, std::string reason) {
  Decision d = OnStop(f, "stopstart", "stopstart", std::move(reason));
  if (!d.no_change) d.restart_after = true;
  return d;
}

Decision OnRestart(const Facts& f, std::string reason) {
  Decision d = Go(f.state, RestartSteps(f.state), "restart", "restart", std::move(reason));
  // A SECOND that handed over keeps telling its peer to take over.
  d.handing_over = f.state == State::kSecond && f.handing_over;
  return d;
}

Decision OnForcePrim(const Facts& f, bool force) {
  if (IsPrimary(f.state)) return NoChange(f, "already primary");
  const std::string peer = PeerName(f);
  if (PeerIsPrimary(f)) {
    return Refuse(f, "prim refused: peer " + peer + " is primary: stop it first or use swap");
  }
  if (PeerIsBusy(f)) {
    return Refuse(f, "prim refused: peer " + peer + " is in transition: retry when it settles");
  }
  // This copy would become the reference: what the peer holds beyond it
  // (newer writes, or its side of a split brain) would be overwritten.
  if (!force && f.data == DataStatus::kStale) {
    return Refuse(f, "prim refused: this node's data is stale (" + peer +
                         " was primary after it, or its synchronisation has not ended); " +
                         PrimCommandFor(f, true) +
                         " makes this copy the reference and the peer's newer changes are lost");
  }
  if (!force && f.data == DataStatus::kDiverged) {
    return Refuse(f, "prim refused: this node's data diverged from " + peer +
                         "'s (both ran ALONE); " + PrimCommandFor(f, true) +
                         " on the node whose data to keep makes it the winner");
  }
  std::string reason = force ? "prim --force: forced by the operator" : "prim: by the operator";
  if (f.data != DataStatus::kUpToDate) {
    reason += std::string(" (data was ") + DataName(f.data) + ")";
  }
  Steps steps = f.state == State::kSecond ? PromoteSteps() : StartSteps(f.state, State::kAlone);
  Decision d = Go(State::kAlone, std::move(steps), "prim", "state_change", std::move(reason));
  d.set_data = DataStatus::kUpToDate;
  return d;
}

Decision OnForceSecond(const Facts& f) {
  if (IsPrimary(f.state)) {
    return Refuse(f, "second refused: this node is primary; use swap or stop");
  }
  if (f.state == State::kSecond) return NoChange(f, "already SECOND");
  const PeerView& p = f.peer;
  if (PeerIsPrimary(f) && p.config_matches && !p.busy) {
    return Go(State::kSecond, StartSteps(f.state, State::kSecond), "second", "state_change",
              "second: peer " + PeerName(f) + " is primary");
  }
  // No primary to follow yet: start and wait for one, like `hakit start`.
  if (f.state == State::kStop) {
    return Go(State::kWait, StartSteps(f.state, State::kWait), "second", "state_change",
              "second: no primary peer yet: waiting");
  }
  return NoChange(f, "second: waiting for a primary peer");
}

Decision OnSwap(const Facts& f) {
  if (f.state == State::kSecond) {
    return Refuse(f, "swap refused: run it on the primary node (" + PeerName(f) + ")");
  }
  std::string why;
  if (!CanHandOver(f, &why)) return Refuse(f, "swap refused: " + why);
  return HandOver(f, "swap", "swap: handing over to " + PeerName(f));
}

Decision OnLocalFailure(const Facts& f, const std::string& action, const std::string& cause) {
  const std::string lf = cause.empty() ? std::string("local failure") : "local failure (" + cause + ")";
  if (!IsRunning(f.state)) return NoChange(f, "local failure ignored: the module is not running");
  if (action == "restart") return OnRestart(f, lf + ": restart");
  if (action == "stopstart") return OnStopStart(f, lf + ": stopstart");
  if (action == "stop") return OnStop(f, "stop", "local_failure", lf + ": stop");
  if (action == "wait") {
    return Go(State::kWait, StopSteps(f.state, State::kWait), "stop", "local_failure",
              lf + ": waiting until the resource is up");
  }
  if (action == "failover") {
    // failover="off" forbids automatic moves of the primary role, this one too.
    std::string why;
    if (!f.config.failover) {
      why = "failover=off";
    } else if (CanHandOver(f, &why)) {
      return HandOver(f, "failover", lf + ": handing over to " + PeerName(f));
    }
    return OnRestart(f, lf + ": failover impossible (" + why + "): restart");
  }
  return NoChange(f, lf + ": unknown action '" + action + "'");
}

Decision OnStepsDone(const Facts& f) {
  if (!f.busy) return NoChange(f);
  Decision d = Go(f.target, {}, "", "state_change", std::string(StateName(f.target)) + " reached");
  d.handing_over = f.target == State::kSecond && f.handing_over;
  return d;
}

Decision OnStepsFailed(const Facts& f, const std::string& detail) {
  if (!f.busy) return NoChange(f);
  const std::optional<Step> failed = ParseStep(detail);
  const std::string what = detail.empty() ? std::string("a step") : detail;
  Steps steps;
  if (failed || f.target != State::kStop) {
    steps = CleanupSteps(f.state, f.target, failed);
  }
  // else: an unnamed failure while already stopping: running the same stop
  // steps again could fail forever; stop here.
  return Go(State::kStop, std::move(steps), "stop", "script_failure",
            what + " failed: module stopped, the peer may take over");
}

}  // namespace

const char* StateName(State state) {
  switch (state) {
    case State::kStop:
      return "STOP";
    case State::kWait:
      return "WAIT";
    case State::kAlone:
      return "ALONE";
    case State::kPrim:
      return "PRIM";
    case State::kSecond:
      return "SECOND";
  }
  return "?";
}

std::optional<State> ParseState(std::string_view name) {
  for (State s : {State::kStop, State::kWait, State::kAlone, State::kPrim, State::kSecond}) {
    std::string_view candidate = StateName(s);
    if (candidate.size() == name.size() &&
        std::equal(name.begin(), name.end(), candidate.begin(), [](char a, char b) {
          return std::toupper(static_cast<unsigned char>(a)) == b;
        })) {
      return s;
    }
  }
  return std::nullopt;
}

int StateExitCode(State state) {
  switch (state) {
    case State::kStop:
      return 0;
    case State::kWait:
      return 1;
    case State::kAlone:
      return 2;
    case State::kPrim:
      return 3;
    case State::kSecond:
      return 4;
  }
  return 0;
}

const char* StepName(Step step) {
  switch (step) {
    case Step::kPrestart:
      return "prestart";
    case Step::kStartBoth:
      return "start_both";
    case Step::kStartPrim:
      return "start_prim";
    case Step::kStartSecond:
      return "start_second";
    case Step::kStopPrim:
      return "stop_prim";
    case Step::kStopSecond:
      return "stop_second";
    case Step::kStopBoth:
      return "stop_both";
    case Step::kPoststop:
      return "poststop";
    case Step::kAddVip:
      return "add_vip";
    case Step::kRemoveVip:
      return "remove_vip";
  }
  return "?";
}

bool ElectLocalAsPrimary(const Facts& facts) { return Elect(facts).local_wins; }

Decision Decide(const Facts& facts, const Event& event) {
  const Facts& f = facts;
  switch (event.kind) {
    case EventKind::kStepsDone:
      return OnStepsDone(f);
    case EventKind::kStepsFailed:
      return OnStepsFailed(f, event.detail);
    default:
      break;
  }
  // Everything else waits for the running transition to end: the controller
  // replays it then, against the facts of that moment.
  if (f.busy) return Defer(f);
  // Both nodes run the application: whatever was asked, that comes first
  // (only a plain stop is honoured as asked: it also ends it on this side).
  if (IsPrimary(f.state) && PeerIsPrimary(f) && event.kind != EventKind::kStop) {
    return SplitBrain(f);
  }
  switch (event.kind) {
    case EventKind::kStart:
      // prestart now; pairing or election once in WAIT (the controller's
      // kPeerChanged after arrival), or alone when the start-up wait expires.
      if (f.state != State::kStop) {
        return NoChange(f, std::string("already started (") + StateName(f.state) + ")");
      }
      return Go(State::kWait, StartSteps(State::kStop, State::kWait), "start", "state_change",
                "start: waiting for the peer");
    case EventKind::kStop:
      return OnStop(f, "stop", "state_change", "stop");
    case EventKind::kRestart:
      if (!IsRunning(f.state)) {
        return Refuse(f, std::string("restart refused: the module is ") + StateName(f.state) +
                             ", not running");
      }
      return OnRestart(f, "restart");
    case EventKind::kStopStart:
      if (f.state == State::kStop) {
        return Refuse(f, "stopstart refused: the module is stopped; use hakit start");
      }
      return OnStopStart(f, "stopstart");
    case EventKind::kSwap:
      return OnSwap(f);
    case EventKind::kForcePrim:
      return OnForcePrim(f, event.detail == "force");
    case EventKind::kForceSecond:
      return OnForceSecond(f);
    case EventKind::kPeerChanged:
      return OnPeerChanged(f);
    case EventKind::kPeerLost:
      return OnPeerLost(f);
    case EventKind::kWaitExpired:
      if (f.state != State::kWait) return NoChange(f);
      return EvaluateWait(f, /*expired=*/true);
    case EventKind::kLocalFailure:
      return OnLocalFailure(f, event.detail, event.cause);
    case EventKind::kStepsDone:
    case EventKind::kStepsFailed:
      break;  // handled above
  }
  return NoChange(f);
}

std::string PrimCommand(const Facts& facts) {
  return PrimCommandFor(facts, NeedsForce(facts.data));
}

}  // namespace hakit::cluster
