// The failure rules as a pure function: (resources, module state, counters)
// -> the action to take now.
//
// This is hakit's fixed version of SafeKit's default <failover> rules, one
// rule per resource: a resource that is down, active in the module's current
// state (its `when`/class) and has been down for at least `handle_time` asks
// for its configured action:
//
//   proc.*, tcp.*, custom.*   restart (default)       ping.*, intf.*   wait
//   ip.*                      stopstart               splitbrain.*     (see below)
//
// When several ask at once the most severe wins: stop > wait > swap >
// stopstart > restart > handler > noaction; among equals, the first name.
//
// Restart policy. restart, stopstart, swap and handler actions triggered by
// detection count against `maxloop` within `loop_interval` (the caller keeps
// the count, see LoopCounter). With n = the count including this action:
//   n > maxloop                          -> stop, here, with the reason;
//   n == maxloop, restart, on PRIM with
//   a SECOND able to take over           -> swap (fail over to the peer).
// Flapping guard: a swap or stopstart is turned into stop once
// `failovers` (failovers this node took part in within loop_interval)
// reached `max_failovers`, so that the role does not bounce between two
// sick nodes forever.
//
// A swap needs PRIM with a visible, matching, idle SECOND peer that reports
// no resource down, and failover="on"; otherwise it becomes a (counted)
// restart. A wait resource down also sets `hold_wait`: the module must not
// leave WAIT for a running state while it is set.
//
// splitbrain.* resources never trigger an action: the witness is consulted
// only when every heartbeat is lost (mirror_fsm's Facts::witness).
//
// Nothing is planned while the module is STOP or busy (a transition runs;
// hold_wait is still reported then), for resources in init, or for disabled
// resources (`hakit errd off`, `hakit checker off`: the caller marks them).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/checkers/resource.h"
#include "hakit/cluster/mirror_fsm.h"
#include "hakit/config/module_config.h"

namespace hakit::checkers {

enum class PlannedKind { kNoAction, kRestart, kStopStart, kStop, kWait, kSwap, kHandler };
// "noaction", "restart", "stopstart", "stop", "wait", "swap", "handler".
const char* PlannedKindName(PlannedKind kind);
// The configured action (<proc action>, <tcp action>, ...).
PlannedKind FromConfigAction(config::Action action);
// An SDK CheckerSpec::action word: "restart", "stopstart", "stop", "wait",
// "noaction", "failover"/"swap"; nullopt for anything else.
std::optional<PlannedKind> ParseActionWord(std::string_view word);

// One watched resource as the rules see it.
struct ResourceFact {
  std::string name;  // "proc.app", "tcp.db"
  ResourceState state = ResourceState::kInit;
  std::chrono::milliseconds age{0};  // time since the state last changed
  PlannedKind action = PlannedKind::kRestart;  // what its failure asks for
  std::string handler;                        // action == kHandler: bin/<handler>
  config::When when = config::When::kPrim;  // states in which it counts
  bool disabled = false;                    // errd off / checker off
  // This down episode was acted upon already: it asks for nothing more
  // (a wait resource still holds WAIT).
  bool handled = false;
};

// A resource the peer reports in its heartbeats.
struct PeerResourceFact {
  std::string name;
  ResourceState state = ResourceState::kInit;
};

struct RuleInput {
  cluster::State state = cluster::State::kStop;
  bool busy = false;
  // The peer as heartbeats show it.
  bool peer_visible = false;
  cluster::State peer_state = cluster::State::kStop;
  bool peer_busy = false;
  bool peer_config_matches = true;
  std::vector<PeerResourceFact> peer_resources;
  bool failover = true;  // failover="on" (or `hakit failover on`)
  std::vector<ResourceFact> resources;
  // A resource must have been down this long before its action applies.
  std::chrono::milliseconds handle_time{0};
  int maxloop = 3;
  // Detection-triggered actions already taken within loop_interval.
  int loops = 0;
  // Failovers (hand-overs and take-overs) within loop_interval.
  int failovers = 0;
  int max_failovers = 3;
};

struct Plan {
  PlannedKind kind = PlannedKind::kNoAction;
  std::string resource;  // what caused it (empty for noaction)
  std::string handler;   // kind == kHandler
  // For the log and the history: "proc.app down for 1200 ms: restart (2/3 ...)".
  std::string reason;
  // Counts against maxloop (the caller records it once the action is taken).
  bool counts = false;
  // A wait resource is down: keep the module out of every running state.
  bool hold_wait = false;
  std::string wait_reason;
  // Down but not for handle_time yet: the action is pending.
  std::vector<std::string> pending;
};

// Whether a resource of class `when` is watched in module state `state`:
// pre: every state but STOP; prim: ALONE, PRIM; second: SECOND; both: ALONE,
// PRIM, SECOND.
bool ActiveIn(config::When when, cluster::State state);

// The rules. Pure: same input, same plan.
Plan Evaluate(const RuleInput& input);

// SafeKit's default action for a resource kind (the prefix of its name):
// restart for proc, tcp, custom; wait for ping, intf; stopstart for ip;
// noaction for anything else.
PlannedKind DefaultAction(std::string_view resource_name);

}  // namespace hakit::checkers
