#include "hakit/daemon/module_checks.h"

#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "hakit/checkers/loop_counter.h"
#include "hakit/checkers/probes.h"
#include "hakit/checkers/rules.h"
#include "hakit/checkers/watch_spec.h"
#include "hakit/daemon/module_runtime.h"

namespace hakit::daemon {

namespace asio = boost::asio;
using checkers::Clock;
using checkers::PlannedKind;
using checkers::ResourceState;
using cluster::State;
using sdk::Status;

namespace {

constexpr std::chrono::milliseconds kWitnessTimeout{1000};

}  // namespace

struct ModuleChecks::Impl : std::enable_shared_from_this<Impl> {
  using Kind = checkers::ProbeKind;
  // One probe: what the configuration asks (WatchSpec) and its run state.
  struct Watch : checkers::WatchSpec {
    explicit Watch(checkers::WatchSpec spec) : checkers::WatchSpec(std::move(spec)) {}
    std::unique_ptr<asio::steady_timer> timer;
    bool in_flight = false;
    std::uint64_t round = 0;  // results of older rounds are ignored
    // custom checkers
    bool running = false;
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> exited;
    std::filesystem::path pidfile;
  };

  Impl(asio::io_context& io, ModuleRuntime& m, std::filesystem::path file, ChecksCallbacks cb)
      : io(io),
        m(m),
        operator_file(std::move(file)),
        callbacks(std::move(cb)),
        loops(m.config.service.loop_interval),
        failovers(m.config.service.loop_interval),
        eval_timer(io) {}

  asio::io_context& io;
  ModuleRuntime& m;
  std::filesystem::path operator_file;
  ChecksCallbacks callbacks;
  checkers::ResourceTable table;
  checkers::LoopCounter loops;
  checkers::LoopCounter failovers;
  std::vector<std::unique_ptr<Watch>> watches;
  asio::steady_timer eval_timer;
  bool errd_on = true;
  bool checkers_on = true;
  bool failover_on = true;
  bool stopped = false;
  bool witness_in_flight = false;
  std::string witness_resource;
  std::map<std::string, Clock::time_point> handled;
  State last_state = State::kStop;
  bool last_busy = false;
  std::vector<std::pair<std::string, ResourceState>> peer_resources;
  // Handlers and blocking probes (ip, service, witness program), each with
  // its "finished" flag; finished ones are joined at the next start.
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::mutex threads_mu;
  std::vector<Worker> threads;

  void Log(sdk::LogLevel level, const std::string& msg) { m.context->Log(level, msg); }

  const cluster::Facts& facts() const { return m.controller->facts(); }

  Watch* Find(const std::string& resource) {
    for (auto& w : watches) {
      if (w->resource == resource) return w.get();
    }
    return nullptr;
  }

  bool Enabled(const Watch& w) const { return w.errd ? errd_on : checkers_on; }

  // ---- configuration -> watches ----

  Status Build() {
    const auto now = Clock::now();
    auto specs = checkers::WatchSpecs(m.config, m.description.checkers);
    if (!specs.ok()) return specs.status();
    for (auto& spec : *specs) watches.push_back(std::make_unique<Watch>(std::move(spec)));
    for (const auto& w : watches) {
      table.Declare(w->resource, now);
      w->timer = std::make_unique<asio::steady_timer>(io);
    }
    if (m.config.check.splitbrain) {
      witness_resource = "splitbrain." + m.config.check.splitbrain->ident;
      table.Declare(witness_resource, now);
    }
    return Status::Ok();
  }

  // ---- operator switches, persisted ----

  void LoadSwitches() {
    failover_on = m.config.service.failover;
    std::ifstream in(operator_file);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object()) {
      failover_on = j.value("failover", failover_on);
      errd_on = j.value("errd", errd_on);
      checkers_on = j.value("checker", checkers_on);
    }
    m.controller->SetFailover(failover_on);
  }

  void SaveSwitches() {
    nlohmann::json j = {{"failover", failover_on}, {"errd", errd_on}, {"checker", checkers_on}};
    std::error_code ec;
    std::filesystem::create_directories(operator_file.parent_path(), ec);
    auto tmp = operator_file;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << j.dump() << "\n";
    }
    std::filesystem::rename(tmp, operator_file, ec);
    if (ec) Log(sdk::LogLevel::kError, "cannot write " + operator_file.string() + ": " + ec.message());
  }

  // ---- probes ----

  void Schedule(Watch& w, std::chrono::milliseconds delay) {
    if (stopped) return;
    std::weak_ptr<Impl> weak = shared_from_this();
    Watch* wp = &w;
    w.timer->expires_after(delay);
    w.timer->async_wait([weak, wp](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopped) return;
      self->Probe(*wp);
    });
  }

  // Whether the resource is watched now (its class, errd/checker on).
  bool Active(const Watch& w) const {
    return Enabled(w) && checkers::ActiveIn(w.when, facts().state);
  }

  void Result(Watch& w, std::uint64_t round, bool up, const std::string& why) {
    if (round != w.round) return;
    w.in_flight = false;
    if (Active(w) && !facts().busy) Set(w.resource, up ? ResourceState::kUp : ResourceState::kDown, "checker", why);
    Schedule(w, w.interval);
  }

  void Probe(Watch& w) {
    // While hooks run the application comes and goes: no probe, and the
    // resource keeps what it was (a wait resource keeps holding).
    if (facts().busy) {
      Schedule(w, w.interval);
      return;
    }
    if (w.kind == Kind::kCustom) {
      Active(w) ? StartCustom(w) : StopCustom(w);
      if (!Active(w)) Set(w.resource, ResourceState::kInit, "inactive", "");
      Schedule(w, w.interval);
      return;
    }
    if (!Active(w)) {
      Set(w.resource, ResourceState::kInit, "inactive", "");
      Schedule(w, w.interval);
      return;
    }
    if (w.in_flight) return;
    w.in_flight = true;
    const std::uint64_t round = ++w.round;
    std::weak_ptr<Impl> weak = shared_from_this();
    Watch* wp = &w;
    auto done = [weak, wp, round](bool up, const std::string& why) {
      if (auto self = weak.lock(); self && !self->stopped) self->Result(*wp, round, up, why);
    };
    switch (w.kind) {
      case Kind::kProc: {
        if (w.service) {
          RunBlocking([unit = w.addr, t = w.timeout]() -> std::pair<bool, std::string> {
            auto r = checkers::ServiceActive(unit, t);
            if (!r.ok()) return {false, r.status().message()};
            return {*r, *r ? "" : "service " + unit + " is not active"};
          }, done);
          return;
        }
        auto n = checkers::CountProcesses(w.match);
        if (!n.ok()) return done(false, n.status().message());
        bool ok = *n >= w.atleast && (!w.atmax || *n <= *w.atmax);
        std::string why = std::to_string(*n) + " matching process(es), expected at least " +
                          std::to_string(w.atleast) +
                          (w.atmax ? " and at most " + std::to_string(*w.atmax) : "");
        return done(ok, ok ? "" : why);
      }
      case Kind::kTcp:
        return checkers::ProbeTcp(io, w.addr, w.port, w.timeout, done);
      case Kind::kPing:
        return checkers::ProbePing(io, w.addr, w.timeout, done);
      case Kind::kIntf: {
        auto link = m.vip_manager->GetLinkState(w.ifname);
        if (!link.ok()) return done(false, link.status().message());
        return done(link->usable(), link->usable() ? "" : "interface " + w.ifname +
                                                              " is down or has no carrier");
      }
      case Kind::kIp: {
        vip::VipSpec spec;
        spec.address = w.addr;
        auto* vm = m.vip_manager;
        RunBlocking([vm, spec, t = w.timeout]() -> std::pair<bool, std::string> {
          auto present = vm->IsPresent(spec);
          if (!present.ok()) return {false, present.status().message()};
          if (!*present) return {false, spec.address + " is not configured here"};
          std::string mac;
          auto other = vm->ProbeInUse(spec, t / 2, &mac);
          if (other.ok() && *other) return {false, spec.address + " also answers from " + mac};
          return {true, ""};
        }, done);
        return;
      }
      case Kind::kCustom:
        return;
    }
  }

  // Runs `fn` on a thread, its answer on the io thread.
  void RunBlocking(std::function<std::pair<bool, std::string>()> fn,
                   std::function<void(bool, const std::string&)> done) {
    std::lock_guard<std::mutex> lock(threads_mu);
    for (auto it = threads.begin(); it != threads.end();) {
      if (*it->finished) {
        it->thread.join();
        it = threads.erase(it);
      } else {
        ++it;
      }
    }
    auto finished = std::make_shared<std::atomic<bool>>(false);
    asio::io_context* ioc = &io;
    threads.push_back({std::thread([ioc, finished, fn = std::move(fn), done = std::move(done)]() {
                         auto r = fn();
                         asio::post(*ioc, [done, r]() { done(r.first, r.second); });
                         *finished = true;
                       }),
                       finished});
  }

  // ---- custom checkers: long-running programs that set their resource ----

  void StartCustom(Watch& w) {
    if (w.running) return;
    if (w.thread.joinable()) {
      if (w.exited && !*w.exited) return;  // still stopping
      w.thread.join();
    }
    w.running = true;
    const std::string bin = m.context->paths().bin_dir;
    std::string exec = w.exec.empty() || w.exec[0] == '/' ? w.exec : bin + "/" + w.exec;
    w.pidfile = std::filesystem::path(m.context->paths().var_dir) / ("checker." + w.resource + ".pid");
    std::error_code ec;
    std::filesystem::create_directories(w.pidfile.parent_path(), ec);
    std::filesystem::remove(w.pidfile, ec);
    sdk::Command c;
    // The shell notes its pid (the group's leader: RunCommand makes one
    // group) before becoming the checker, so that Stop can end the group.
    c.argv = {"/bin/sh", "-c", "echo $$ > \"$HAKIT_CHECKER_PIDFILE\"; exec \"$0\" \"$@\"", exec,
              m.name, w.resource};
    c.argv.insert(c.argv.end(), w.args.begin(), w.args.end());
    c.extra_env["HAKIT_CHECKER_PIDFILE"] = w.pidfile.string();
    c.extra_env["SAFEMODULE"] = m.name;
    auto exited = std::make_shared<std::atomic<bool>>(false);
    w.exited = exited;
    Log(sdk::LogLevel::kInfo, "custom checker " + w.resource + " started: " + exec);
    std::weak_ptr<Impl> weak = shared_from_this();
    Watch* wp = &w;
    auto* ctx = m.context.get();
    w.thread = std::thread([this, weak, wp, c, ctx, exited]() {
      sdk::CommandResult r = ctx->RunCommand(c);
      *exited = true;
      asio::post(io, [weak, wp, r]() {
        auto self = weak.lock();
        if (!self || self->stopped || !wp->running) return;
        // It should run as long as its class is active: its end is a failure.
        wp->running = false;
        self->Set(wp->resource, ResourceState::kDown, "checker",
                  "custom checker exited: " + r.error);
      });
    });
  }

  void StopCustom(Watch& w) {
    if (!w.running) return;
    w.running = false;
    KillCustom(w);
  }

  void KillCustom(Watch& w) {
    if (!w.thread.joinable() || !w.exited) return;
    // The shell writes the pidfile as its first act; until then (a few ms)
    // there is nothing to signal yet.
    for (int i = 0; i < 40 && !*w.exited; ++i) {
      std::ifstream in(w.pidfile);
      pid_t pid = 0;
      if (in >> pid && pid > 1) ::kill(-pid, i < 20 ? SIGTERM : SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Log(sdk::LogLevel::kInfo, "custom checker " + w.resource + " stopped");
  }

  // ---- resources and rules ----

  void Set(const std::string& name, ResourceState state, const std::string& by,
           const std::string& why) {
    const auto now = Clock::now();
    if (!table.Set(name, state, now, by)) return;
    if (callbacks.changed) callbacks.changed();
    if (state != ResourceState::kInit) {
      Log(state == ResourceState::kDown ? sdk::LogLevel::kWarning : sdk::LogLevel::kInfo,
          "resource " + name + " " + checkers::ResourceStateName(state) + " (set by " + by +
              (why.empty() ? "" : ": " + why) + ")");
    }
    std::weak_ptr<Impl> weak = shared_from_this();
    asio::post(io, [weak]() {
      if (auto self = weak.lock(); self && !self->stopped) self->Evaluate();
    });
  }

  checkers::RuleInput Input() {
    const auto now = Clock::now();
    const cluster::Facts& f = facts();
    checkers::RuleInput in;
    in.state = f.state;
    in.busy = f.busy;
    in.peer_visible = f.peer.visible;
    in.peer_state = f.peer.state;
    in.peer_busy = f.peer.busy;
    in.peer_config_matches = f.peer.config_matches;
    for (const auto& [n, s] : peer_resources) in.peer_resources.push_back({n, s});
    in.failover = failover_on;
    in.maxloop = m.config.service.maxloop;
    in.handle_time = m.config.failover.handle_time;
    in.max_failovers = std::max(1, m.config.service.maxloop);
    in.loops = loops.Count(now);
    in.failovers = failovers.Count(now);
    for (const auto& e : table.All()) {
      Watch* w = Find(e.name);
      if (w == nullptr) continue;  // the witness: not a rule resource
      checkers::ResourceFact r;
      r.name = e.name;
      r.state = e.state;
      r.age = checkers::ResourceTable::Age(e, now);
      r.action = w->action;
      r.handler = w->handler;
      r.when = w->when;
      r.disabled = !Enabled(*w);
      auto h = handled.find(e.name);
      r.handled = h != handled.end() && h->second == e.since;
      in.resources.push_back(r);
    }
    return in;
  }

  void Evaluate() {
    if (stopped || !m.controller) return;
    checkers::Plan p = checkers::Evaluate(Input());
    m.controller->SetLocalWait(p.hold_wait, p.wait_reason);
    if (p.kind == PlannedKind::kNoAction) return;
    const auto now = Clock::now();
    if (const auto* e = table.Find(p.resource)) handled[p.resource] = e->since;
    const cluster::Facts& f = facts();
    const std::string state = cluster::StateName(f.state);
    nlohmann::json details = {{"resource", p.resource},
                              {"action", checkers::PlannedKindName(p.kind)},
                              {"loops", loops.Count(now)},
                              {"maxloop", m.config.service.maxloop},
                              {"failovers", failovers.Count(now)}};
    if (p.counts) loops.Record(now);
    if (p.kind == PlannedKind::kSwap) failovers.Record(now);
    Log(p.kind == PlannedKind::kStop ? sdk::LogLevel::kError : sdk::LogLevel::kWarning,
        "failure detected: " + p.reason);
    callbacks.record("checker_failure", state, state, p.reason, details);
    if (p.kind == PlannedKind::kHandler) {
      RunHandler(p);
      return;
    }
    const char* word = p.kind == PlannedKind::kSwap ? "failover" : checkers::PlannedKindName(p.kind);
    cluster::Event ev{cluster::EventKind::kLocalFailure, word, p.reason};
    m.controller->Handle(ev);
  }

  void RunHandler(const checkers::Plan& p) {
    sdk::Command c;
    c.argv = {m.context->paths().bin_dir + "/" + p.handler, p.resource, "down"};
    c.timeout = m.config.user ? m.config.user->nice_stop_timeout : std::chrono::seconds(300);
    auto* ctx = m.context.get();
    std::string resource = p.resource;
    RunBlocking([ctx, c]() -> std::pair<bool, std::string> {
      auto r = ctx->RunCommand(c);
      return {r.ok(), r.error};
    }, [ctx, resource, handler = p.handler](bool ok, const std::string& why) {
      ctx->Log(ok ? sdk::LogLevel::kInfo : sdk::LogLevel::kError,
               "handler " + handler + " for " + resource + (ok ? " done" : " failed: " + why));
    });
  }

  void Tick() {
    std::weak_ptr<Impl> weak = shared_from_this();
    eval_timer.expires_after(m.config.failover.period);
    eval_timer.async_wait([weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopped) return;
      self->Evaluate();
      self->WitnessWhileAlone();
      self->Tick();
    });
  }

  // While the peer is not heard the witness is consulted every period, so
  // that the decisions taken without the peer (start-up wait expiry) see a
  // fresh answer.
  void WitnessWhileAlone() {
    if (witness_resource.empty() || witness_in_flight) return;
    const cluster::Facts& f = facts();
    if (f.peer.visible || f.state == State::kStop) return;
    Consult([this](cluster::Witness w) { m.controller->SetWitness(w); });
  }

  void Consult(std::function<void(cluster::Witness)> done) {
    const config::SplitBrainConfig& sb = *m.config.check.splitbrain;
    witness_in_flight = true;
    std::weak_ptr<Impl> weak = shared_from_this();
    auto finish = [weak, done](bool up, const std::string& why) {
      auto self = weak.lock();
      if (!self || self->stopped) return;
      self->witness_in_flight = false;
      self->Set(self->witness_resource, up ? ResourceState::kUp : ResourceState::kDown, "witness",
                why);
      done(up ? cluster::Witness::kReachable : cluster::Witness::kUnreachable);
    };
    if (sb.exec == "ping") {
      checkers::ProbeAnyPing(io, sb.witnesses, kWitnessTimeout, finish);
      return;
    }
    sdk::Command c;
    c.argv = {sb.exec[0] == '/' ? sb.exec : m.context->paths().bin_dir + "/" + sb.exec};
    for (auto& a : checkers::SplitWords(sb.arg)) c.argv.push_back(a);
    c.timeout = kWitnessTimeout * 5;
    auto* ctx = m.context.get();
    RunBlocking([ctx, c]() -> std::pair<bool, std::string> {
      auto r = ctx->RunCommand(c);
      return {r.ok(), r.ok() ? "" : "witness program: " + r.error};
    }, finish);
  }

  void OnModuleChanged() {
    if (stopped) return;
    const cluster::Facts& f = facts();
    const bool settled = !f.busy && (last_busy || f.state != last_state);
    last_busy = f.busy;
    last_state = f.state;
    if (!settled) return;
    // A failure acted upon is judged again only from fresh probes; wait
    // resources keep holding WAIT until they are seen up.
    const auto now = Clock::now();
    table.ResetUnless(
        [this](const checkers::ResourceEntry& e) {
          Watch* w = Find(e.name);
          return w == nullptr || w->action == PlannedKind::kWait;
        },
        now);
    // The first probe comes one interval later: what a start hook just
    // launched gets that long to come up (SafeKit starts its checkers after
    // start_prim in the same way).
    for (auto& w : watches) {
      if (w->action != PlannedKind::kWait) handled.erase(w->resource);
      w->in_flight = false;
      ++w->round;
      Schedule(*w, w->kind == Kind::kCustom ? std::chrono::milliseconds(0) : w->interval);
    }
  }

  void StopAll() {
    stopped = true;
    eval_timer.cancel();
    for (auto& w : watches) {
      if (w->timer) w->timer->cancel();
      if (w->kind == Kind::kCustom) {
        w->running = false;
        KillCustom(*w);
        if (w->thread.joinable()) w->thread.join();
      }
    }
    std::vector<Worker> t;
    {
      std::lock_guard<std::mutex> lock(threads_mu);
      t.swap(threads);
    }
    for (auto& w : t) w.thread.join();
  }
};

ModuleChecks::ModuleChecks(asio::io_context& io, ModuleRuntime& m,
                           std::filesystem::path operator_file, ChecksCallbacks callbacks)
    : impl_(std::make_shared<Impl>(io, m, std::move(operator_file), std::move(callbacks))) {}

ModuleChecks::~ModuleChecks() { Stop(); }

Status ModuleChecks::Start() {
  if (Status s = impl_->Build(); !s.ok()) return s;
  impl_->LoadSwitches();
  for (auto& w : impl_->watches) impl_->Schedule(*w, std::chrono::milliseconds(0));
  impl_->Tick();
  return Status::Ok();
}

void ModuleChecks::Stop() {
  if (!impl_->stopped) impl_->StopAll();
}

void ModuleChecks::OnModuleChanged() { impl_->OnModuleChanged(); }

Status ModuleChecks::SetResource(const std::string& name, ResourceState state,
                                 const std::string& set_by) {
  if (!impl_->table.Has(name)) {
    std::string known;
    for (const auto& e : impl_->table.All()) known += (known.empty() ? "" : ", ") + e.name;
    return Status::NotFound("module " + impl_->m.name + " has no resource " + name +
                            (known.empty() ? " (it has none)" : " (it has: " + known + ")"));
  }
  impl_->Set(name, state, set_by, "");
  return Status::Ok();
}

void ModuleChecks::SetErrd(bool on) {
  impl_->errd_on = on;
  impl_->SaveSwitches();
}

void ModuleChecks::SetCheckers(bool on) {
  impl_->checkers_on = on;
  impl_->SaveSwitches();
}

void ModuleChecks::SetFailover(bool on) {
  impl_->failover_on = on;
  impl_->m.controller->SetFailover(on);
  impl_->SaveSwitches();
}

void ModuleChecks::ResetLoops() {
  impl_->loops.Reset();
  impl_->failovers.Reset();
}

void ModuleChecks::NoteFailover() { impl_->failovers.Record(Clock::now()); }

bool ModuleChecks::HasWitness() const { return !impl_->witness_resource.empty(); }

void ModuleChecks::ConsultWitness(std::function<void(cluster::Witness)> done) {
  if (!HasWitness()) {
    asio::post(impl_->io, [done]() { done(cluster::Witness::kNone); });
    return;
  }
  impl_->Consult(std::move(done));
}

void ModuleChecks::SetPeerResources(std::vector<std::pair<std::string, ResourceState>> r) {
  impl_->peer_resources = std::move(r);
}

std::vector<std::pair<std::string, ResourceState>> ModuleChecks::LocalResources() const {
  std::vector<std::pair<std::string, ResourceState>> out;
  for (const auto& e : impl_->table.All()) out.emplace_back(e.name, e.state);
  return out;
}

nlohmann::json ModuleChecks::StatusJson() const {
  const auto now = Clock::now();
  nlohmann::json res = nlohmann::json::array();
  for (const auto& e : impl_->table.All()) {
    nlohmann::json j = {{"name", e.name},
                        {"state", checkers::ResourceStateName(e.state)},
                        {"age_ms", checkers::ResourceTable::Age(e, now).count()},
                        {"set_by", e.set_by}};
    if (auto* w = impl_->Find(e.name)) {
      j["action"] = checkers::PlannedKindName(w->action);
      j["when"] = config::ToString(w->when);
      j["enabled"] = impl_->Enabled(*w);
    }
    res.push_back(j);
  }
  nlohmann::json peer = nlohmann::json::array();
  for (const auto& [n, s] : impl_->peer_resources) {
    peer.push_back({{"name", n}, {"state", checkers::ResourceStateName(s)}});
  }
  return {{"resources", res},
          {"peer_resources", peer},
          {"loops", impl_->loops.Count(now)},
          {"maxloop", impl_->m.config.service.maxloop},
          {"loop_interval_s",
           std::chrono::duration_cast<std::chrono::seconds>(impl_->loops.window()).count()},
          {"failovers", impl_->failovers.Count(now)},
          {"errd", impl_->errd_on},
          {"checker", impl_->checkers_on},
          {"failover", impl_->failover_on}};
}

}  // namespace hakit::daemon
