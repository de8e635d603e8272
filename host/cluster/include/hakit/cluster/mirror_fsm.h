// The mirror state machine as a pure function.
//
// Decide() maps (what this node knows, one event) to a Decision: the state to
// go to and the steps that get there. It does no I/O and reads no clock, so
// that hundreds of table cases run in milliseconds; ModuleController (the
// daemon side) performs the steps and feeds their outcome back as events.
//
// Both nodes run the same function on the same facts (their own and the
// peer's, exchanged in heartbeats), so where a choice must be made between
// the two (who becomes primary) both reach the same answer without talking.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hakit::cluster {

enum class State { kStop, kWait, kAlone, kPrim, kSecond };

// "STOP", "WAIT", "ALONE", "PRIM", "SECOND".
const char* StateName(State state);
std::optional<State> ParseState(std::string_view name);
// SafeKit's `hakit state -lq` exit code: STOP=0 WAIT=1 ALONE=2 PRIM=3 SECOND=4.
int StateExitCode(State state);
// ALONE and PRIM: the application runs here and holds the VIP.
inline bool IsPrimary(State s) { return s == State::kAlone || s == State::kPrim; }
// ALONE, PRIM and SECOND: the module is started (start_both has run).
inline bool IsRunning(State s) { return IsPrimary(s) || s == State::kSecond; }

// One thing the controller does on the way to the next state, in order.
enum class Step {
  kPrestart,     // hook prestart
  kStartBoth,    // hook start_both
  kStartPrim,    // hook start_prim
  kStartSecond,  // hook start_second
  kStopPrim,     // hook stop_prim (nice, then force)
  kStopSecond,   // hook stop_second (nice, then force)
  kStopBoth,     // hook stop_both (nice, then force)
  kPoststop,     // hook poststop
  kAddVip,       // add the virtual IPs and send gratuitous ARP
  kRemoveVip,    // remove the virtual IPs
};
const char* StepName(Step step);

// How a node's data compares, as far as it knows. Until replication lands,
// the daemon derives it from the last persisted role.
enum class DataStatus {
  kUpToDate,  // may serve as primary on its own
  kStale,     // the peer may hold newer data: never primary on its own
  kUnknown,   // never synchronised (fresh install): primary only by election
  // Both nodes changed the data without each other (both ran ALONE): never
  // merged silently, never primary on its own; the operator picks the
  // winner (hakit prim --force there); the other one then resynchronises
  // from it.
  kDiverged,
};

// The split-brain witness (<splitbrain>), as last consulted. It is consulted
// only when every heartbeat network is silent; a node that reaches no
// witness then never runs the application on its own (both nodes cut off
// from the witness both wait), so that at most one side of a cut runs it.
enum class Witness {
  kNone,         // no witness configured (or not consulted): no restriction
  kReachable,    // at least one witness answered
  kUnreachable,  // no witness answered: do not go ALONE
};

// What this node knows of its peer, from heartbeats.
struct PeerView {
  bool visible = false;        // at least one heartbeat network alive
  bool config_matches = true;  // same configuration hash; false: never pair
  State state = State::kStop;
  // The peer is leaving PRIM for SECOND by `swap` and has stopped its
  // application: this node is to take over.
  bool handing_over = false;
  // The peer is in the middle of a transition (hooks running).
  bool busy = false;
  DataStatus data = DataStatus::kUnknown;
  bool was_last_prim = false;  // the peer was primary when it last stopped
  std::string name;            // peer node name
};

// Module configuration that the decisions depend on.
struct FsmConfig {
  bool failover = true;  // failover="on"
  // defaultprim: "alone" (no preference), "lastprim", or a node name.
  std::string default_prim = "alone";
  std::string local_name;  // this node's name
  std::string module;      // the module's name, for the commands reasons name
};

enum class EventKind {
  // Operator commands.
  kStart,        // hakit start
  kStop,         // hakit stop
  kRestart,      // hakit restart: stop and start the application locally
  kStopStart,    // hakit stopstart: full module stop then start, peer may take over
  kSwap,         // hakit swap: move the primary role to the peer
  // hakit prim: become primary although the peer does not run it. Refused
  // on stale or diverged data unless the detail is "force" (--force).
  kForcePrim,
  kForceSecond,  // hakit second: become secondary
  // Cluster facts.
  // A heartbeat changed the peer view (state, flags, visibility gained).
  // The controller also feeds one whenever this node's state settles (after
  // kStepsDone, or a decision applied without steps), once the deferred
  // events are replayed: the node then reconsiders, from its new state, a
  // peer that has not changed (e.g. both WAIT and the election is ours).
  kPeerChanged,
  // Every heartbeat network silent for `timeout`; the view says visible=false
  // (if it is visible again when a deferred kPeerLost is replayed, the event
  // is handled as kPeerChanged).
  kPeerLost,
  // The start-up wait for the peer ran out. Armed only when kStart's steps
  // bring the module to WAIT, never when a running module falls back to WAIT
  // (split brain, failover="off"): those wait for the peer or the operator.
  kWaitExpired,
  // Outcome of the steps of the previous decision.
  kStepsDone,
  kStepsFailed,
  // Failure detection (checkers), later issues.
  kLocalFailure,  // the application failed here: restart/stopstart/failover per rule
};

struct Event {
  EventKind kind;
  // For kStepsFailed: which step failed, as StepName() spells it. For
  // kLocalFailure: the action asked ("restart", "stopstart", "failover", "stop",
  // "wait"). For kForcePrim: "force" when the operator gave --force.
  std::string detail;
  // For kLocalFailure: what was detected ("proc.app down for 1200 ms"), for
  // the reason the transition records.
  std::string cause{};
};

// Everything Decide() looks at.
struct Facts {
  State state = State::kStop;
  // A previous decision's steps are still running. Most events are deferred
  // (Decision::defer) while busy; kStepsDone/kStepsFailed end it.
  bool busy = false;
  // Where the running transition is heading (meaningful while busy).
  State target = State::kStop;
  DataStatus data = DataStatus::kUnknown;
  bool was_last_prim = false;  // this node was primary when it last stopped
  // This node is leaving PRIM because of swap (stop_prim ran): tells the peer
  // to take over; cleared when the peer is primary.
  bool handing_over = false;
  PeerView peer;
  FsmConfig config;
  // A checker whose action is "wait" reports its resource down (interface,
  // ping): the module stays in WAIT (or falls back to it) until it is up.
  bool local_wait = false;
  Witness witness = Witness::kNone;
};

struct Decision {
  // Nothing to do (the event changes nothing).
  bool no_change = true;
  // The event cannot be handled now (a transition is running); the
  // controller replays it when the transition ends.
  bool defer = false;
  // State shown while the steps run (usually the current one), then `next`.
  State next = State::kStop;
  std::vector<Step> steps;
  // Set handing_over while running these steps / in the next state.
  bool handing_over = false;
  // Human reason, for the log and the history ("peer lost: failover").
  std::string reason;
  // SafeKit action argument given to scripts: "start", "stop", "failover",
  // "swap", "restart", "stopstart", "prim", "second".
  std::string action;
  // The history kind for this transition ("state_change", "failover", "swap",
  // "restart", "split_brain", ...).
  std::string history_kind = "state_change";
  // Refusal of an operator command, with why (e.g. "swap refused: peer is not
  // SECOND"). Set together with no_change.
  std::string refused;
  // stopstart: once the steps have brought the module to STOP, the controller
  // feeds kStart (the peer may take over in between, which is the point).
  bool restart_after = false;
  // The controller persists this as the node's DataStatus before running the
  // steps. kStale after a split brain (both sides ran ALONE: neither may start
  // on its own again until the operator picks the winner); kUpToDate on
  // `hakit prim` (the operator declared this node's data the reference).
  std::optional<DataStatus> set_data;
};

// The operator's command that makes this node primary, as the reasons and
// refusals spell it: "hakit prim -m MODULE", with --force when the node's
// data is stale or diverged (kForcePrim refuses those without it).
std::string PrimCommand(const Facts& facts);

// The whole state machine. Pure: same facts and event, same decision.
Decision Decide(const Facts& facts, const Event& event);

// Among two nodes that both wait to start (both WAIT, both visible, configs
// matching), which one becomes primary: true when it is the local one. Both
// nodes evaluate it with the roles swapped and get opposite answers.
bool ElectLocalAsPrimary(const Facts& facts);

}  // namespace hakit::cluster
