#include "hakit/checkers/rules.h"

#include <algorithm>

namespace hakit::checkers {

using cluster::State;

namespace {

int Severity(PlannedKind k) {
  switch (k) {
    case PlannedKind::kStop: return 6;
    case PlannedKind::kWait: return 5;
    case PlannedKind::kSwap: return 4;
    case PlannedKind::kStopStart: return 3;
    case PlannedKind::kRestart: return 2;
    case PlannedKind::kHandler: return 1;
    case PlannedKind::kNoAction: return 0;
  }
  return 0;
}

bool Counts(PlannedKind k) {
  return k == PlannedKind::kRestart || k == PlannedKind::kStopStart || k == PlannedKind::kSwap ||
         k == PlannedKind::kHandler;
}

bool StartsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(0, p.size()) == p;
}

// Whether the peer can take the primary role from this node now; `why`
// says what is missing.
bool CanSwap(const RuleInput& in, std::string* why) {
  if (!in.failover) {
    *why = "failover is off";
  } else if (in.state != State::kPrim) {
    *why = std::string("this node is ") + cluster::StateName(in.state) + ", not PRIM";
  } else if (!in.peer_visible) {
    *why = "the peer is not visible";
  } else if (in.peer_state != State::kSecond) {
    *why = std::string("the peer is ") + cluster::StateName(in.peer_state) + ", not SECOND";
  } else if (in.peer_busy) {
    *why = "the peer is in transition";
  } else if (!in.peer_config_matches) {
    *why = "the peer has a different configuration";
  } else {
    for (const auto& r : in.peer_resources) {
      if (r.state == ResourceState::kDown) {
        *why = "the peer reports " + r.name + " down";
        return false;
      }
    }
    return true;
  }
  return false;
}

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

const char* PlannedKindName(PlannedKind kind) {
  switch (kind) {
    case PlannedKind::kNoAction: return "noaction";
    case PlannedKind::kRestart: return "restart";
    case PlannedKind::kStopStart: return "stopstart";
    case PlannedKind::kStop: return "stop";
    case PlannedKind::kWait: return "wait";
    case PlannedKind::kSwap: return "swap";
    case PlannedKind::kHandler: return "handler";
  }
  return "?";
}

PlannedKind FromConfigAction(config::Action action) {
  switch (action) {
    case config::Action::kRestart: return PlannedKind::kRestart;
    case config::Action::kStopStart: return PlannedKind::kStopStart;
    case config::Action::kStop: return PlannedKind::kStop;
    case config::Action::kWait: return PlannedKind::kWait;
    case config::Action::kNoAction: return PlannedKind::kNoAction;
    case config::Action::kHandler: return PlannedKind::kHandler;
  }
  return PlannedKind::kNoAction;
}

std::optional<PlannedKind> ParseActionWord(std::string_view word) {
  if (word == "failover" || word == "swap") return PlannedKind::kSwap;
  for (auto k : {PlannedKind::kNoAction, PlannedKind::kRestart, PlannedKind::kStopStart,
                 PlannedKind::kStop, PlannedKind::kWait}) {
    if (word == PlannedKindName(k)) return k;
  }
  return std::nullopt;
}

PlannedKind DefaultAction(std::string_view name) {
  if (StartsWith(name, "proc.") || StartsWith(name, "tcp.") || StartsWith(name, "custom.")) {
    return PlannedKind::kRestart;
  }
  if (StartsWith(name, "ping.") || StartsWith(name, "intf.")) return PlannedKind::kWait;
  if (StartsWith(name, "ip.")) return PlannedKind::kStopStart;
  return PlannedKind::kNoAction;
}

bool ActiveIn(config::When when, State state) {
  switch (when) {
    case config::When::kPre: return state != State::kStop;
    case config::When::kPrim: return cluster::IsPrimary(state);
    case config::When::kSecond: return state == State::kSecond;
    case config::When::kBoth: return cluster::IsRunning(state);
  }
  return false;
}

Plan Evaluate(const RuleInput& in) {
  Plan plan;
  if (in.state == State::kStop) return plan;

  // The resources that ask for something now, in name order.
  std::vector<const ResourceFact*> failed;
  for (const auto& r : in.resources) {
    if (r.disabled || r.state != ResourceState::kDown || !ActiveIn(r.when, in.state)) continue;
    if (StartsWith(r.name, "splitbrain.")) continue;
    if (r.age < in.handle_time) {
      plan.pending.push_back(r.name);
      continue;
    }
    failed.push_back(&r);
  }
  std::sort(failed.begin(), failed.end(),
            [](const ResourceFact* a, const ResourceFact* b) { return a->name < b->name; });
  std::sort(plan.pending.begin(), plan.pending.end());

  const ResourceFact* chosen = nullptr;
  for (const ResourceFact* r : failed) {
    if (r->action == PlannedKind::kWait && !plan.hold_wait) {
      plan.hold_wait = true;
      plan.wait_reason = r->name + " is down";
    }
    if (r->handled) continue;
    if (chosen == nullptr || Severity(r->action) > Severity(chosen->action)) chosen = r;
  }
  // A running transition is not interrupted; the hold stays meanwhile, so
  // that the end of the transition does not let the module start.
  if (in.busy || chosen == nullptr || chosen->action == PlannedKind::kNoAction) {
    plan.resource.clear();
    return Plan{PlannedKind::kNoAction, "", "", "", false, plan.hold_wait, plan.wait_reason,
                plan.pending};
  }

  PlannedKind kind = chosen->action;
  std::string why = chosen->name + " down for " + Ms(chosen->age);
  plan.resource = chosen->name;
  plan.handler = kind == PlannedKind::kHandler ? chosen->handler : std::string();

  if (kind == PlannedKind::kWait) {
    // Already waiting: the hold keeps it there until the resource is back.
    if (!cluster::IsRunning(in.state)) {
      Plan held;
      held.hold_wait = true;
      held.wait_reason = plan.wait_reason;
      held.pending = plan.pending;
      return held;
    }
    plan.kind = kind;
    plan.reason = why + ": wait";
    return plan;
  }
  if (kind == PlannedKind::kStop) {
    plan.kind = kind;
    plan.reason = why + ": stop";
    return plan;
  }

  std::string swap_why;
  const bool can_swap = CanSwap(in, &swap_why);
  std::string note;
  if (kind == PlannedKind::kSwap && !can_swap) {
    kind = PlannedKind::kRestart;
    note = " (failover impossible: " + swap_why + ")";
  }
  if (in.state == State::kWait && (kind == PlannedKind::kRestart)) {
    // Nothing runs in WAIT that a restart could restart.
    plan.resource.clear();
    plan.reason = why + ": nothing to restart in WAIT";
    return plan;
  }

  const int n = in.loops + 1;
  const std::string count =
      " (" + std::to_string(n) + "/" + std::to_string(in.maxloop) + " within loop_interval)";
  if (n > in.maxloop) {
    plan.kind = PlannedKind::kStop;
    plan.handler.clear();
    plan.reason = why + ": maxloop reached (" + std::to_string(in.loops) +
                  " detection-triggered actions within loop_interval, maxloop " +
                  std::to_string(in.maxloop) + "): module stopped on this node";
    return plan;
  }
  if (n == in.maxloop && kind == PlannedKind::kRestart && can_swap) {
    kind = PlannedKind::kSwap;
    note = " (restart limit reached: failing over to the peer)";
  }
  const bool moves_role =
      kind == PlannedKind::kSwap ||
      (kind == PlannedKind::kStopStart && in.peer_visible && in.peer_state == State::kSecond);
  if (moves_role && in.failovers >= in.max_failovers) {
    plan.kind = PlannedKind::kStop;
    plan.handler.clear();
    plan.reason = why + ": " + PlannedKindName(kind) + " refused by the flapping guard (" +
                  std::to_string(in.failovers) + " failovers within loop_interval, at most " +
                  std::to_string(in.max_failovers) + "): module stopped on this node";
    return plan;
  }
  plan.kind = kind;
  if (kind != PlannedKind::kHandler) plan.handler.clear();
  plan.counts = Counts(kind);
  plan.reason = why + ": " + PlannedKindName(kind) + note + count;
  return plan;
}

}  // namespace hakit::checkers
