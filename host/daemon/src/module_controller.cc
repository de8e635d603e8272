#include "hakit/daemon/module_controller.h"

#include <boost/asio/post.hpp>

namespace hakit::daemon {

using cluster::Decision;
using cluster::Event;
using cluster::EventKind;
using cluster::State;
using cluster::Step;
using sdk::Hook;
using sdk::Status;
using Clock = std::chrono::steady_clock;

namespace {

std::optional<Hook> HookOf(Step step) {
  switch (step) {
    case Step::kPrestart: return Hook::kPrestart;
    case Step::kStartBoth: return Hook::kStartBoth;
    case Step::kStartPrim: return Hook::kStartPrim;
    case Step::kStartSecond: return Hook::kStartSecond;
    case Step::kStopPrim: return Hook::kStopPrim;
    case Step::kStopSecond: return Hook::kStopSecond;
    case Step::kStopBoth: return Hook::kStopBoth;
    case Step::kPoststop: return Hook::kPoststop;
    case Step::kAddVip:
    case Step::kRemoveVip: return std::nullopt;
  }
  return std::nullopt;
}

bool IsOperatorCommand(EventKind k) {
  switch (k) {
    case EventKind::kStart:
    case EventKind::kStop:
    case EventKind::kRestart:
    case EventKind::kStopStart:
    case EventKind::kSwap:
    case EventKind::kForcePrim:
    case EventKind::kForceSecond: return true;
    default: return false;
  }
}

long long Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// What a node knows of its data once it reaches `state` from `from`. A
// primary holds the newest data; a secondary is in step with it; a node that
// leaves PRIM or SECOND for STOP or WAIT leaves a peer that carries on alone,
// so its copy is stale from then on.
void UpdateData(cluster::Facts* f, State from, State to) {
  if (cluster::IsPrimary(to)) {
    f->data = cluster::DataStatus::kUpToDate;
    f->was_last_prim = true;
  } else if (to == State::kSecond) {
    f->data = cluster::DataStatus::kUpToDate;
    f->was_last_prim = false;
  } else if (from == State::kPrim || from == State::kSecond) {
    f->data = cluster::DataStatus::kStale;
  }
}

}  // namespace

ModuleController::ModuleController(boost::asio::io_context& io, std::string module,
                                   cluster::Facts initial, ControllerTimeouts timeouts,
                                   std::unique_ptr<HookSeam> hooks, std::unique_ptr<VipSeam> vips,
                                   ControllerCallbacks callbacks, ReplicationSeam* replication)
    : io_(io),
      module_(std::move(module)),
      facts_(std::move(initial)),
      timeouts_(timeouts),
      hooks_(std::move(hooks)),
      vips_(std::move(vips)),
      callbacks_(std::move(callbacks)),
      replication_(replication),
      wait_timer_(io) {}

ModuleController::~ModuleController() {
  *alive_ = false;
  if (worker_.joinable()) worker_.join();
}

void ModuleController::Log(sdk::LogLevel level, const std::string& message) {
  if (callbacks_.log) callbacks_.log(level, message);
}

std::string ModuleController::Handle(const Event& event) {
  Decision d = cluster::Decide(facts_, event);
  if (d.defer) {
    deferred_.push_back(event);
    return {};
  }
  if (!d.refused.empty()) {
    last_reason_ = d.refused;
    Log(sdk::LogLevel::kWarning, d.refused);
    return d.refused;
  }
  if (d.no_change) {
    if (IsOperatorCommand(event.kind) && !d.reason.empty()) last_reason_ = d.reason;
    // The start-up wait ran out and the node still waits: say why (stale
    // data, no witness...) rather than "waiting for the peer".
    if (event.kind == EventKind::kWaitExpired && facts_.state == State::kWait && !d.reason.empty()) {
      SetWaitReason(State::kWait, d.reason);
      Log(sdk::LogLevel::kWarning, d.reason);
    }
    return {};
  }
  Apply(d, event);
  return {};
}

void ModuleController::Apply(const Decision& d, const Event& cause) {
  State from = facts_.state;
  last_reason_ = d.reason;
  if (cause.kind == EventKind::kStart && d.next == State::kWait) ArmWaitTimer();
  if (d.restart_after) restart_after_ = true;
  // Before any step runs: a crash in the middle must find the data marked.
  if (d.set_data) facts_.data = *d.set_data;

  if (d.steps.empty()) {
    // A change of state that runs nothing (PRIM <-> ALONE, a swap's end).
    UpdateData(&facts_, from, d.next);
    if (d.set_data) facts_.data = *d.set_data;
    facts_.state = d.next;
    facts_.target = d.next;
    facts_.handing_over = d.handing_over;
    SetWaitReason(d.next, d.reason);
    Log(sdk::LogLevel::kInfo, std::string(cluster::StateName(from)) + " -> " +
                                  cluster::StateName(d.next) + ": " + d.reason);
    callbacks_.record(d.history_kind, cluster::StateName(from), cluster::StateName(d.next),
                      d.reason, nlohmann::json::object());
    callbacks_.persist(facts_);
    callbacks_.published();
    Settled();
    return;
  }

  facts_.busy = true;
  pre_steps_state_ = from;
  facts_.target = d.next;
  facts_.handing_over = d.handing_over;
  // The peer must see us as primary from the moment the application may
  // start here, so that it never starts it too.
  if (cluster::IsPrimary(d.next)) facts_.state = d.next;
  Log(sdk::LogLevel::kInfo, std::string(cluster::StateName(from)) + " -> " +
                                cluster::StateName(d.next) + " (" + d.action + "): " + d.reason);
  callbacks_.persist(facts_);
  callbacks_.published();
  RunSteps(d);
}

void ModuleController::RunSteps(Decision d) {
  if (worker_.joinable()) worker_.join();
  State from = pre_steps_state_;
  std::weak_ptr<bool> alive = alive_;
  worker_ = std::thread([this, d, from, alive]() {
    auto began = Clock::now();
    Status status;
    std::optional<Step> failed;
    bool stopping = !cluster::IsPrimary(d.next);
    for (Step step : d.steps) {
      Status s = RunStep(step, d, from);
      if (!s.ok()) {
        // The state machine decides what to undo; it needs the first failure.
        status = s.WithContext(cluster::StepName(step));
        failed = step;
        break;
      }
      if (stopping && (step == Step::kStopPrim || step == Step::kRemoveVip)) {
        // The application is down here: let the peer see it at once.
        boost::asio::post(io_, [this, alive, next = d.next]() {
          if (alive.expired() || !*alive.lock()) return;
          if (facts_.busy && cluster::IsPrimary(facts_.state)) {
            facts_.state = next;
            callbacks_.published();
          }
        });
      }
    }
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - began);
    boost::asio::post(io_, [this, alive, d, status, failed, took]() {
      if (alive.expired() || !*alive.lock()) return;
      StepsFinished(d, status, failed, took);
    });
  });
}

Status ModuleController::RunStep(Step step, const Decision& d, State from) {
  if (step == Step::kAddVip) return vips_->AddAll();
  if (step == Step::kRemoveVip) return vips_->RemoveAll();
  if (replication_ && step == Step::kStartPrim) {
    if (Status s = replication_->BecomePrimary(d.next == State::kPrim); !s.ok()) return s;
  }
  if (replication_ && step == Step::kStartSecond) {
    if (Status s = replication_->BecomeSecond(); !s.ok()) return s;
  }
  Status s = RunHookStep(step, d, from);
  if (replication_ && (step == Step::kStopPrim || step == Step::kStopSecond)) replication_->Leave();
  return s;
}

Status ModuleController::RunHookStep(Step step, const Decision& d, State from) {
  Hook hook = *HookOf(step);
  sdk::HookArgs args;
  args.current_state = cluster::StateName(from);
  args.next_state = cluster::StateName(d.next);
  args.action = d.action;
  if (sdk::IsStopHook(hook)) return RunStopHook(hook, args);
  args.timeout = timeouts_.start;
  return hooks_->RunHook(hook, args);
}

Status ModuleController::RunStopHook(Hook hook, sdk::HookArgs args) {
  args.force = false;
  args.timeout = timeouts_.nice_stop;
  Status nice = hooks_->RunHook(hook, args);
  if (nice.ok()) return nice;
  // SafeKit's contract: a stop that failed is called again with force.
  Log(sdk::LogLevel::kWarning, std::string(sdk::HookName(hook)) + " failed (" + nice.message() +
                                   "): calling it again with force");
  args.force = true;
  args.timeout = timeouts_.force_stop;
  Status forced = hooks_->RunHook(hook, args);
  if (forced.ok()) return Status::Ok();
  return forced.WithContext(std::string(sdk::HookName(hook)) + " (after: " + nice.message() + ")");
}

void ModuleController::StepsFinished(Decision d, Status status, std::optional<Step> failed,
                                     std::chrono::milliseconds took) {
  if (worker_.joinable()) worker_.join();
  nlohmann::json details = {{"action", d.action}, {"steps_ms", took.count()}};
  if (d.history_kind == "failover" && peer_lost_at_ != Clock::time_point{}) {
    details["detection_ms"] = peer_silence_.count();
    details["takeover_ms"] = Ms(Clock::now() - peer_lost_at_);
    peer_lost_at_ = {};
  }
  if (!status.ok()) {
    Log(sdk::LogLevel::kError, (d.action.empty() ? std::string("transition") : d.action) +
                                   " failed: " + status.message());
    details["error"] = status.message();
    Decision cleanup = cluster::Decide(facts_, {EventKind::kStepsFailed,
                                                failed ? cluster::StepName(*failed) : ""});
    callbacks_.record("script_failure", cluster::StateName(pre_steps_state_),
                      cluster::StateName(cleanup.no_change ? State::kStop : cleanup.next),
                      status.message(), details);
    facts_.busy = false;
    restart_after_ = false;
    if (!cleanup.no_change) {
      Apply(cleanup, {EventKind::kStepsFailed, {}});
      return;
    }
    facts_.state = State::kStop;
    facts_.target = State::kStop;
    callbacks_.persist(facts_);
    callbacks_.published();
    Settled();
    return;
  }
  Decision done = cluster::Decide(facts_, {EventKind::kStepsDone, {}});
  State reached = done.no_change ? facts_.target : done.next;
  facts_.busy = false;
  UpdateData(&facts_, pre_steps_state_, reached);
  if (d.set_data) facts_.data = *d.set_data;
  facts_.state = reached;
  facts_.target = reached;
  facts_.handing_over = !done.no_change && done.handing_over;
  SetWaitReason(reached, d.reason);
  Log(sdk::LogLevel::kInfo, "now " + std::string(cluster::StateName(reached)) +
                                (d.action.empty() ? "" : " (" + d.action + " took " +
                                                              std::to_string(took.count()) + " ms)"));
  callbacks_.record(d.history_kind, cluster::StateName(pre_steps_state_),
                    cluster::StateName(reached), d.reason, details);
  callbacks_.persist(facts_);
  callbacks_.published();
  Settled();
}

void ModuleController::SetWaitReason(State state, const std::string& reason) {
  if (state != State::kWait) {
    wait_reason_.clear();
    wait_override_.clear();
    return;
  }
  wait_reason_ = wait_override_.empty() ? reason : wait_override_;
}

// The state is stable again: finish a shutdown or a stopstart, replay what
// waited, and look at the peer again from the new state.
void ModuleController::Settled() {
  if (facts_.busy) return;
  if (facts_.state == State::kStop && shutdown_done_) {
    auto done = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    done();
    return;
  }
  if (restart_after_ && facts_.state == State::kStop) {
    restart_after_ = false;
    Handle({EventKind::kStart, "stopstart"});
    return;
  }
  ReplayDeferred();
}

void ModuleController::ReplayDeferred() {
  while (!deferred_.empty() && !facts_.busy) {
    Event e = deferred_.front();
    deferred_.pop_front();
    if (e.kind == EventKind::kPeerLost && facts_.peer.visible) e.kind = EventKind::kPeerChanged;
    Handle(e);
  }
  // Whatever the peer did while we were busy is looked at again now. A
  // decision without steps settles again at once; the depth bounds a chain
  // of them (the state machine ends such chains within a few steps).
  if (facts_.busy || settle_depth_ > 8) return;
  ++settle_depth_;
  Handle({EventKind::kPeerChanged, {}});
  --settle_depth_;
}

void ModuleController::SetData(cluster::DataStatus data) {
  if (facts_.data == data) return;
  // A running primary's data is the reference by definition, whatever a
  // peer's stale view says; divergence is the exception that must stop it.
  if (cluster::IsPrimary(facts_.state) && data != cluster::DataStatus::kDiverged) return;
  facts_.data = data;
  data_changed_ = true;  // the next UpdatePeer decides again
  callbacks_.persist(facts_);
  callbacks_.published();
}

void ModuleController::UpdatePeer(const cluster::PeerView& view) {
  const cluster::PeerView& old = facts_.peer;
  bool changed = old.visible != view.visible || old.state != view.state ||
                 old.config_matches != view.config_matches ||
                 old.handing_over != view.handing_over || old.busy != view.busy ||
                 old.data != view.data || old.was_last_prim != view.was_last_prim ||
                 old.name != view.name || data_changed_;
  data_changed_ = false;
  facts_.peer = view;
  if (!changed) return;
  callbacks_.published();
  if (facts_.busy) return;  // looked at again when the steps end
  Handle({EventKind::kPeerChanged, {}});
}

void ModuleController::PeerLost(bool peer_host_alive, std::chrono::milliseconds silent_for) {
  if (!facts_.peer.visible) return;
  peer_lost_at_ = Clock::now();
  peer_silence_ = silent_for;
  facts_.peer.visible = false;
  facts_.peer.busy = false;
  facts_.peer.handing_over = false;
  callbacks_.record("peer_lost", cluster::StateName(facts_.state), cluster::StateName(facts_.state),
                    "every heartbeat network silent", nlohmann::json::object());
  callbacks_.published();
  if (peer_host_alive) {
    // The peer's node is up, only its daemon is gone: its application may
    // still run. Decide as failover="off" would: wait for the operator.
    bool failover = facts_.config.failover;
    facts_.config.failover = false;
    Handle({EventKind::kPeerLost, {}});
    facts_.config.failover = failover;
    wait_override_ = "the peer's node is up but its hakitd is not: the application may still run "
                     "there; check it, then " + cluster::PrimCommand(facts_) +
                     " here if this node is to run it";
    if (facts_.state == State::kWait) wait_reason_ = wait_override_;
    return;
  }
  Handle({EventKind::kPeerLost, {}});
}

void ModuleController::SetLocalWait(bool wait, const std::string& reason) {
  if (facts_.local_wait == wait) return;
  facts_.local_wait = wait;
  if (wait) {
    wait_override_ = reason + ": waiting until it is up";
    if (facts_.state == State::kWait) wait_reason_ = wait_override_;
    return;
  }
  wait_override_.clear();
  if (facts_.state != State::kWait || facts_.busy) return;
  wait_reason_ = "the resource is up again: waiting for the peer";
  // As after a start: pair with the peer if it is there, else alone once
  // the start-up wait expires.
  ArmWaitTimer();
  Handle({EventKind::kPeerChanged, {}});
}

void ModuleController::ArmWaitTimer() {
  wait_timer_.expires_after(timeouts_.peer_wait);
  std::weak_ptr<bool> alive = alive_;
  wait_timer_.async_wait([this, alive](boost::system::error_code ec) {
    if (ec || alive.expired() || !*alive.lock()) return;
    if (facts_.state == State::kWait) Handle({EventKind::kWaitExpired, {}});
  });
}

void ModuleController::Shutdown(std::function<void()> done) {
  wait_timer_.cancel();
  if (facts_.state == State::kStop && !facts_.busy) {
    done();
    return;
  }
  shutdown_done_ = std::move(done);
  deferred_.clear();
  // While busy the stop is deferred and replayed when the steps end.
  Handle({EventKind::kStop, "shutdown"});
  if (!facts_.busy && facts_.state == State::kStop && shutdown_done_) {
    auto d = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    d();
  }
}

}  // namespace hakit::daemon
