#include "hakit/daemon/daemon.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fstream>
#include <future>
#include <map>
#include <set>

#include "hakit/checkers/resource.h"
#include "hakit/cluster/heartbeat_key.h"
#include "hakit/cluster/heartbeat_service.h"
#include "hakit/common/log.h"
#include "hakit/config/cluster_config.h"
#include "hakit/config/module_config.h"
#include "hakit/control/protocol.h"
#include "hakit/daemon/module_checks.h"
#include "hakit/daemon/module_controller.h"
#include "hakit/daemon/module_runtime.h"
#include "hakit/daemon/peer_probe.h"
#include "hakit/history/writer.h"
#include "hakit/loader/loader.h"
#include "hakit/package/deploy.h"
#include "hakit/package/installer.h"
#include "hakit/scripts/module_host_context.h"
#include "hakit/vip/vip_manager.h"

namespace hakit::daemon {

namespace asio = boost::asio;
using cluster::EventKind;
using cluster::State;
using control::Request;
using control::Response;
using sdk::Result;
using sdk::Status;

namespace {

// The local addresses of this host (its network namespace).
std::set<std::string> LocalAddresses() {
  std::set<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf,
                  sizeof buf);
    } else {
      continue;
    }
    out.insert(buf);
  }
  ::freeifaddrs(list);
  return out;
}

std::filesystem::path ExecutableDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path(".") : exe.parent_path();
}

std::filesystem::path FindGenericModule(const std::filesystem::path& configured) {
  if (!configured.empty()) return configured;
  std::filesystem::path dir = ExecutableDir();
  for (auto candidate : {dir / ".." / "modules" / "generic.so",
                         dir / ".." / "lib" / "hakit" / "modules" / "generic.so"}) {
    if (std::filesystem::exists(candidate)) return std::filesystem::weakly_canonical(candidate);
  }
  return dir / ".." / "modules" / "generic.so";
}

class Daemon : public cluster::HeartbeatListener {
 public:
  explicit Daemon(const DaemonOptions& options)
      : options_(options),
        layout_(options.root),
        log_(std::make_shared<Logger>(layout_.DaemonLog(), options.log_to_stderr)),
        signals_(io_, SIGTERM, SIGINT),
        probe_timer_(io_) {}

  int Run() {
    Status s = Init();
    if (!s.ok()) {
      log_->Error("hakitd cannot start: " + s.message());
      return 1;
    }
    signals_.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      log_->Info("signal " + std::to_string(sig) + ": stopping every module");
      Shutdown();
    });
    log_->Info("hakitd running as node " + node_ + " (peer " + peer_ + "), " +
               std::to_string(modules_.size()) + " module(s), root " + layout_.root().string());
    for (auto& [name, m] : modules_) {
      if (m->config.service.boot == config::BootMode::kOn || m->autostart) {
        m->controller->Handle({EventKind::kStart, "boot"});
      }
    }
    io_.run();
    // Objects with threads stop before the io_context they post to goes away.
    deploy_.reset();
    for (auto& [name, m] : modules_) m->checks.reset();
    for (auto& [name, m] : modules_) m->controller.reset();
    for (auto& [name, m] : modules_) m->replication.reset();
    heartbeats_.reset();
    if (history_) history_->Flush(std::chrono::seconds(2));
    std::error_code ec;
    std::filesystem::remove(layout_.PidFile(), ec);
    log_->Info("hakitd stopped");
    return 0;
  }

 private:
  Status Init() {
    std::error_code ec;
    std::filesystem::create_directories(layout_.VarDir(), ec);
    std::filesystem::create_directories(layout_.LogDir(), ec);
    auto cluster = config::ParseClusterConfig(layout_.ClusterXml().string());
    if (!cluster.ok()) return cluster.status();
    cluster_ = std::move(*cluster);
    if (Status s = PickNodes(); !s.ok()) return s;
    auto key = cluster::LoadClusterKey(layout_.ClusterKey());
    if (!key.ok()) return key.status();
    key_ = std::move(*key);

    history::HistoryWriter::Options hopts;
    hopts.path = layout_.HistoryDb();
    hopts.node = node_;
    hopts.on_error = [log = log_](const std::string& m) { log->Error("history: " + m); };
    hopts.on_recovered = [log = log_](const std::string& m) { log->Info("history: " + m); };
    history_ = std::make_unique<history::HistoryWriter>(hopts);

    vip_ = vip::NewLinuxVipManager();
    generic_module_ = FindGenericModule(options_.generic_module);
    InstallSafekitAlias();
    if (Status s = LoadModules(); !s.ok()) return s;
    if (Status s = StartHeartbeats(); !s.ok()) return s;

    control_ = std::make_unique<control::ControlServer>(
        io_, layout_.ControlSocket(),
        [this](const Request& r, control::ControlServer::Reply reply) { HandleControl(r, reply); });
    if (Status s = control_->Start(); !s.ok()) return s;
    StartDeployListener();
    std::ofstream(layout_.PidFile()) << ::getpid() << "\n";
    return Status::Ok();
  }

  // This node is the one named by --node, else the one whose address is
  // configured here; the peer is the other one (a mirror has two nodes).
  Status PickNodes() {
    std::vector<std::string> names = cluster_.NodeNames();
    if (names.size() != 2) {
      return Status::InvalidArgument(cluster_.source_path + ": a mirror cluster has 2 nodes, " +
                                     std::to_string(names.size()) + " are configured");
    }
    if (!options_.node.empty()) {
      node_ = options_.node;
    } else {
      std::set<std::string> local = LocalAddresses();
      for (const auto& lan : cluster_.lans) {
        for (const auto& n : lan.nodes) {
          if (local.count(n.addr)) node_ = n.name;
        }
      }
    }
    if (node_.empty()) {
      return Status::NotFound(cluster_.source_path +
                              ": no node's address is configured on this host; give --node NAME");
    }
    if (node_ != names[0] && node_ != names[1]) {
      return Status::NotFound(cluster_.source_path + ": no node named " + node_);
    }
    peer_ = node_ == names[0] ? names[1] : names[0];
    return Status::Ok();
  }

  // SafeKit scripts call "$SAFE/safekit"; SAFE is the root, so the root
  // holds `safekit` as a link to this hakit CLI.
  void InstallSafekitAlias() {
    std::filesystem::path cli = ExecutableDir() / "hakit";
    std::filesystem::path alias = layout_.SafeDir() / "safekit";
    std::error_code ec;
    if (std::filesystem::exists(cli) && !std::filesystem::exists(alias)) {
      std::filesystem::create_symlink(cli, alias, ec);
      if (ec) log_->Warn("cannot create " + alias.string() + ": " + ec.message());
    }
  }

  // Every installed module, or only `only`.
  Status LoadModules(const std::string& only = "") {
    std::error_code ec;
    if (!std::filesystem::is_directory(layout_.ModulesDir(), ec)) return Status::Ok();
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(layout_.ModulesDir(), ec)) {
      if (e.is_directory()) names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      if (!only.empty() && name != only) continue;
      auto runtime = LoadModuleRuntime(
          {layout_, name, node_, peer_, generic_module_, *vip_, log_});
      if (!runtime.ok()) {
        // One broken module does not keep the others down: it is reported
        // once, here, and skipped.
        std::string msg = "module " + name + " not loaded: " + runtime.status().message();
        log_->Error(msg);
        Record(name, "error", "", "", msg, nlohmann::json::object());
        load_errors_[name] = msg;
        continue;
      }
      auto m = std::move(*runtime);
      if (modules_.empty() && !heartbeats_) {  // heartbeats run with what they started with
        pulse_ = m->config.heart.pulse;
        timeout_ = m->config.heart.timeout;
      } else if (m->config.heart.pulse != pulse_ || m->config.heart.timeout != timeout_) {
        log_->Warn("module " + name + ": heartbeat pulse/timeout differ from the first module's; "
                   "this hakitd uses the first module's for every module");
      }
      if (Status s = MakeReplication(*m); !s.ok()) {
        std::string msg = "module " + name + " not loaded: " + s.message();
        log_->Error(msg);
        Record(name, "error", "", "", msg, nlohmann::json::object());
        load_errors_[name] = msg;
        continue;
      }
      MakeController(*m);
      if (Status s = MakeChecks(*m); !s.ok()) {
        std::string msg = "module " + name + " not loaded: " + s.message();
        log_->Error(msg);
        Record(name, "error", "", "", msg, nlohmann::json::object());
        continue;
      }
      RecoverFromCrash(*m);
      modules_[name] = std::move(m);
    }
    return Status::Ok();
  }

  // A daemon that died while the module ran left its application and VIP
  // behind. Every module starts from STOP, so they go first: the force stop
  // hooks (which must tolerate nothing to stop) and the VIPs.
  void RecoverFromCrash(ModuleRuntime& m) {
    std::ifstream in(StateFile(m.name));
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    std::string last = j.is_object() ? j.value("state", "STOP") : "STOP";
    auto state = cluster::ParseState(last).value_or(State::kStop);
    if (state == State::kStop || state == State::kWait) return;
    std::string msg = "module " + m.name + " was " + last +
                      " when hakitd last stopped without stopping it: cleaning up what it left";
    log_->Warn(msg);
    m.context->Log(sdk::LogLevel::kWarning, msg);
    auto hooks = m.MakeHookSeam();
    sdk::HookArgs args;
    args.current_state = last;
    args.next_state = "STOP";
    args.action = "stop";
    args.force = true;
    args.timeout = m.config.user ? m.config.user->force_stop_timeout : std::chrono::seconds(300);
    std::vector<sdk::Hook> stops = {sdk::Hook::kStopBoth};
    stops.insert(stops.begin(), cluster::IsPrimary(state) ? sdk::Hook::kStopPrim : sdk::Hook::kStopSecond);
    for (sdk::Hook h : stops) {
      if (Status s = hooks->RunHook(h, args); !s.ok()) {
        log_->Error("module " + m.name + ": " + sdk::HookName(h) + " force: " + s.message());
      }
    }
    if (Status s = m.MakeVipSeam()->RemoveAll(); !s.ok()) {
      log_->Error("module " + m.name + ": removing leftover VIPs: " + s.message());
    }
    Record(m.name, "error", last, "STOP", msg, nlohmann::json::object());
  }

  // <rfs>: the replicated dirs, replicated over the lan of the heartbeat
  // named "flow" (else the first heartbeat lan), on TCP cluster port + 1.
  Status MakeReplication(ModuleRuntime& m) {
    const config::RfsConfig& rfs = m.config.rfs;
    if (rfs.replicated.empty()) return Status::Ok();
    std::string lan;
    for (const auto& hb : m.config.heart.heartbeats) {
      if (hb.ident == "flow") lan = hb.name;
    }
    if (lan.empty() && !m.config.heart.heartbeats.empty()) lan = m.config.heart.heartbeats[0].name;
    if (lan.empty() && !cluster_.lans.empty()) lan = cluster_.lans[0].name;
    auto local = cluster_.AddressOf(node_, lan);
    auto remote = cluster_.AddressOf(peer_, lan);
    if (!local.ok() || !remote.ok()) {
      return Status::InvalidArgument("<rfs>: no address of both nodes on lan \"" + lan + "\" in " +
                                     cluster_.source_path);
    }
    ReplicationSettings r;
    r.module = m.name;
    r.node = node_;
    r.config_hash = m.config_hash;
    r.key = key_;
    r.clean_marker = (layout_.ModuleVar(m.name) / "replica_clean").string();
    for (const auto& d : rfs.replicated) {
      r.dirs.push_back(d.dir);
      replication::PathFilter filter;
      for (const auto& n : d.not_replicated) {
        Status s = n.regexpath.empty() ? filter.AddPath(n.path) : filter.AddRegex(n.regexpath);
        if (!s.ok()) {
          return s.WithContext(layout_.UserConfig(m.name).string() + ":" + n.location.ToString());
        }
      }
      r.filters.push_back(std::move(filter));
    }
    r.xattrs = rfs.acl;
    r.streams = rfs.nbrei;
    r.sync = !rfs.async;
    r.zone_size = rfs.zone_size;
    r.local_address = *local;
    r.peer_address = *remote;
    r.port = static_cast<std::uint16_t>(cluster_.port + 1);
    r.timeout = m.config.heart.timeout;
    std::string name = m.name;
    r.on_peer_lost = [this, name](const std::string& reason, std::uint64_t unapplied) {
      // From the sender's threads: history and logs belong to the io thread.
      // The secondary's copy is behind from now on: this node's data starts
      // a new generation, on disk before the waiting writes are released
      // (they are released when this callback returns), so that the
      // secondary is never mistaken for an up-to-date copy.
      auto persisted = std::make_shared<std::promise<void>>();
      auto done = persisted->get_future();
      asio::post(io_, [this, name, persisted]() {
        auto it = modules_.find(name);
        if (it != modules_.end() && it->second->controller &&
            cluster::IsPrimary(it->second->controller->facts().state)) {
          ModuleRuntime& m = *it->second;
          std::uint64_t before = m.generations.current;
          m.generations.Advance();
          PersistFacts(name, m.controller->facts());
          Publish(name);
          Record(name, "state_change", "", "", "new data generation: replication lost",
                 {{"generation", m.generations.current}, {"previous", before}});
        }
        persisted->set_value();
      });
      done.wait_for(std::chrono::seconds(2));
      asio::post(io_, [this, name, reason, unapplied]() {
        std::string msg = "module " + name + ": replication to " + peer_ + " lost: " + reason;
        log_->Warn(msg);
        auto it = modules_.find(name);
        std::string state;
        if (it != modules_.end() && it->second->controller) {
          state = cluster::StateName(it->second->controller->facts().state);
        }
        Record(name, "peer_lost", state, state, "replication: " + reason,
               {{"replication", true}, {"unapplied_ops", unapplied}});
      });
    };
    r.on_sync = [this, name](const std::string& what, const nlohmann::json& details) {
      asio::post(io_, [this, name, what, details]() {
        auto it = modules_.find(name);
        std::string state;
        if (it != modules_.end() && it->second->controller) {
          state = cluster::StateName(it->second->controller->facts().state);
        }
        std::string msg =
            what == "sync_start"      ? "synchronisation of " + peer_ + " started"
            : what == "sync_end"      ? "synchronisation of " + peer_ + " done"
            : what == "sync_received" ? "synchronised from " + peer_ + ": " +
                                            std::to_string(details.value("entries", 0)) +
                                            " entries of this copy replaced, created or removed, "
                                            "listed in " + details.value("list", "")
                                      : "synchronisation of " + peer_ + " failed";
        if (what == "sync_failed") log_->Warn("module " + name + ": " + msg);
        nlohmann::json d = details;
        const char* kind = what == "sync_start"                              ? "reintegration_start"
                           : what == "sync_end" || what == "sync_received" ? "reintegration_end"
                                                                          : "error";
        Record(name, kind, state, state, msg, d);
        Publish(name);
      });
    };
    r.log = [ctx = m.context.get()](sdk::LogLevel l, const std::string& msg) { ctx->Log(l, msg); };
    m.replication = std::make_unique<ModuleReplication>(std::move(r));
    m.replication->SetGeneration(m.generations.current);
    m.replication->CleanupStaleMounts();
    return Status::Ok();
  }

  void MakeController(ModuleRuntime& m) {
    ControllerCallbacks cb;
    std::string name = m.name;
    cb.published = [this, name]() { Publish(name); };
    cb.record = [this, name](const std::string& kind, const std::string& from,
                             const std::string& to, const std::string& reason,
                             const nlohmann::json& details) {
      Record(name, kind, from, to, reason, details);
    };
    cb.log = [ctx = m.context.get()](sdk::LogLevel l, const std::string& msg) { ctx->Log(l, msg); };
    cb.persist = [this, name](const cluster::Facts& f) { PersistFacts(name, f); };
    ControllerTimeouts t;
    t.nice_stop = m.config.user ? m.config.user->nice_stop_timeout : t.nice_stop;
    t.force_stop = m.config.user ? m.config.user->force_stop_timeout : t.force_stop;
    t.start = t.nice_stop;
    if (m.description.nice_stop_timeout) t.nice_stop = *m.description.nice_stop_timeout;
    if (m.description.force_stop_timeout) t.force_stop = *m.description.force_stop_timeout;
    t.peer_wait = m.config.heart.timeout;
    cluster::Facts facts = LoadFacts(m);
    facts.config.failover = m.config.service.failover;
    facts.config.local_name = node_;
    facts.config.module = name;
    switch (m.config.service.default_prim) {
      case config::DefaultPrim::kNode: facts.config.default_prim = m.config.service.default_prim_node; break;
      case config::DefaultPrim::kLastPrim: facts.config.default_prim = "lastprim"; break;
      default: facts.config.default_prim = "alone"; break;
    }
    facts.peer.name = peer_;
    m.controller = std::make_unique<ModuleController>(io_, name, facts, t, m.MakeHookSeam(),
                                                      m.MakeVipSeam(), cb, m.replication.get());
  }

  // Failure detection: errd, checkers, witness, restart policy
  // (module_checks.cc holds the logic).
  Status MakeChecks(ModuleRuntime& m) {
    ChecksCallbacks cb;
    std::string name = m.name;
    cb.record = [this, name](const std::string& kind, const std::string& from, const std::string& to,
                             const std::string& reason, const nlohmann::json& details) {
      Record(name, kind, from, to, reason, details);
    };
    cb.changed = [this, name]() { Publish(name); };
    m.checks = std::make_unique<ModuleChecks>(io_, m, layout_.ModuleVar(m.name) / "operator.json", cb);
    return m.checks->Start();
  }

  // --- persistence of what must survive a restart ---

  std::filesystem::path StateFile(const std::string& module) const {
    return layout_.ModuleVar(module) / "state.json";
  }

  // A node that stopped (or crashed) as PRIM or SECOND may have been
  // overtaken by its peer, which carried on alone: its data is stale until
  // proven otherwise. One that was ALONE holds the newest data.
  cluster::Facts LoadFacts(ModuleRuntime& m) {
    cluster::Facts f;
    std::ifstream in(StateFile(m.name));
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return f;
    auto state = cluster::ParseState(j.value("state", "STOP")).value_or(State::kStop);
    f.data = DataFromName(j.value("data", "unknown"));
    m.generations.current = j.value("generation", std::uint64_t{0});
    m.generations.history = j.value("history", std::vector<std::uint64_t>{});
    m.persisted_state = State::kStop;
    f.was_last_prim = j.value("was_last_prim", false);
    if (state == State::kAlone) {
      f.data = cluster::DataStatus::kUpToDate;
      f.was_last_prim = true;
    } else if (state == State::kPrim || state == State::kSecond) {
      f.data = cluster::DataStatus::kStale;
    } else if (!f.was_last_prim && f.data == cluster::DataStatus::kUpToDate) {
      // Stopped while its peer was primary: "up to date" held when it was
      // written (same generation as the peer's then), and the peer may have
      // carried on alone since. Only the peer's generation can tell again.
      f.data = cluster::DataStatus::kStale;
    }
    // A module that was running when the daemon went away starts again.
    m.autostart = cluster::IsRunning(state) || state == State::kWait;
    return f;
  }

  static const char* DataName(cluster::DataStatus d) {
    switch (d) {
      case cluster::DataStatus::kUpToDate: return "up_to_date";
      case cluster::DataStatus::kStale: return "stale";
      case cluster::DataStatus::kDiverged: return "diverged";
      case cluster::DataStatus::kUnknown: return "unknown";
    }
    return "unknown";
  }

  static cluster::DataStatus DataFromName(const std::string& n) {
    for (auto d : {cluster::DataStatus::kUpToDate, cluster::DataStatus::kStale,
                   cluster::DataStatus::kDiverged}) {
      if (n == DataName(d)) return d;
    }
    return cluster::DataStatus::kUnknown;
  }

  // Moves the generation on the transitions that change the data's lineage,
  // once they are complete: a node whose start_prim failed never served, so
  // its copy is still the one the peer knows.
  void TrackGeneration(ModuleRuntime& m, const cluster::Facts& f) {
    if (f.busy || f.state == m.persisted_state) return;
    if (f.state == State::kAlone) {
      std::uint64_t overruled = 0;
      if (m.overrule_peer && heartbeats_) {
        if (const cluster::PeerInfo* p = heartbeats_->Peer(m.name)) overruled = p->generation;
      }
      std::uint64_t before = m.generations.current;
      m.generations.Advance(overruled);
      m.overrule_peer = false;
      nlohmann::json details = {{"generation", m.generations.current}, {"previous", before}};
      if (overruled != 0) details["overruled_peer_generation"] = overruled;
      Record(m.name, "state_change", "", "ALONE", "new data generation", details);
    } else if (f.state == State::kSecond && heartbeats_) {
      // Only a copy known to hold everything the primary holds takes its
      // generation; otherwise it stays behind (stale: it never takes over on
      // its own) until a full synchronisation, which is not built yet.
      const cluster::PeerInfo* p = heartbeats_->Peer(m.name);
      if (p && p->peer_in_sync) m.generations.Adopt(p->generation);
    }
    m.persisted_state = f.state;
  }

  // What the two generations say of both copies: the same (both current),
  // ours newer (the peer's is in our history), the peer's newer (ours is in
  // its history, by its own answer), or diverged (neither knows the other).
  // Both nodes derive both statuses from the same two generations, so their
  // elections agree even while an announced data status is still in flight.
  // Nullopt while the peer has not answered about our current generation.
  struct DataRelation {
    cluster::DataStatus local;
    cluster::DataStatus peer;
  };
  std::optional<DataRelation> RelateGenerations(const ModuleRuntime& m,
                                                const cluster::PeerInfo& p) const {
    using D = cluster::DataStatus;
    const Generations& g = m.generations;
    if (g.current == 0 && p.generation == 0) return DataRelation{D::kUnknown, D::kUnknown};
    if (g.current == p.generation) return DataRelation{D::kUpToDate, D::kUpToDate};
    if (g.Knows(p.generation)) return DataRelation{D::kUpToDate, D::kStale};
    if (p.peer_generation_seen != g.current) return std::nullopt;
    if (p.peer_generation_known) return DataRelation{D::kStale, D::kUpToDate};
    return DataRelation{D::kDiverged, D::kDiverged};
  }

  void PersistFacts(const std::string& module, const cluster::Facts& f) {
    std::filesystem::path path = StateFile(module);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    auto it = modules_.find(module);
    if (it == modules_.end()) return;
    TrackGeneration(*it->second, f);
    const Generations& gens = it->second->generations;
    if (auto* r = it->second->replication.get()) {
      r->SetGeneration(gens.current);
      // ALONE -> PRIM runs no step: the peer became SECOND, replicate to it.
      if (f.state == State::kPrim && !f.busy) r->PeerIsSecond();
    }
    const char* data = DataName(f.data);
    nlohmann::json j = {{"state", cluster::StateName(f.state)}, {"data", data},
                        {"was_last_prim", f.was_last_prim}, {"generation", gens.current},
                        {"history", gens.history}};
    // Written to a temporary file and renamed: a crash leaves the old or the
    // new file, never half of one.
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << j.dump() << "\n";
      out.flush();
      if (!out) {
        log_->Error("cannot write " + tmp.string());
        return;
      }
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) log_->Error("cannot write " + path.string() + ": " + ec.message());
  }

  // --- heartbeats ---

  Status StartHeartbeats() {
    cluster::HeartbeatConfig o;
    o.local_name = node_;
    o.peer_name = peer_;
    o.pulse = pulse_;
    o.timeout = timeout_;
    o.key = key_;
    // Every lan of cluster.xml carries heartbeats, unless the first module
    // names some with <heartbeat name=...>.
    std::set<std::string> lans;
    if (!modules_.empty()) {
      for (const auto& hb : modules_.begin()->second->config.heart.heartbeats) lans.insert(hb.name);
    }
    for (const auto& lan : cluster_.lans) {
      if (!lans.empty() && !lans.count(lan.name)) continue;
      auto local = cluster_.AddressOf(node_, lan.name);
      auto remote = cluster_.AddressOf(peer_, lan.name);
      if (!local.ok() || !remote.ok()) continue;
      o.networks.push_back({lan.name, *local, *remote, static_cast<std::uint16_t>(cluster_.port)});
    }
    for (const auto& lan : lans) {
      if (!cluster_.FindLan(lan)) {
        return Status::InvalidArgument("<heartbeat name=\"" + lan + "\">: no lan of that name in " +
                                       cluster_.source_path);
      }
    }
    if (o.networks.empty()) return Status::InvalidArgument("no heartbeat network configured");
    heartbeats_ = std::make_unique<cluster::HeartbeatService>(io_, o, this, log_.get());
    for (auto& [name, m] : modules_) Publish(name);
    if (Status s = heartbeats_->Start(); !s.ok()) return s;
    std::vector<std::string> local_addrs, peer_addrs;
    for (const auto& n : o.networks) {
      local_addrs.push_back(n.local_address);
      peer_addrs.push_back(n.peer_address);
    }
    peer_probe_ = std::make_unique<PeerProbe>(io_, local_addrs, peer_addrs, cluster_.port,
                                              pulse_, log_);
    if (Status s = peer_probe_->Start(); !s.ok()) return s;
    ArmProbeTimer();
    return Status::Ok();
  }

  // While the peer is late (silent for two pulses, not yet lost), find out
  // whether its node still answers: a refused connection means the node is
  // up and its hakitd is not.
  void ArmProbeTimer() {
    probe_timer_.expires_after(pulse_);
    probe_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || shutting_down_) return;
      bool late = false;
      for (const auto& m : heartbeats_->Snapshot().modules) {
        if (m.peer_visible && m.last_heard_age_ms > 2 * pulse_.count()) late = true;
      }
      if (late) peer_probe_->Probe();
      // What heartbeats say of replication (the secondary may take our
      // generation) changes without a state change: refresh it.
      for (auto& [name, m] : modules_) {
        if (!m->replication) continue;
        Publish(name);
        // A replication link that was cut and came back while the pair
        // stayed PRIM/SECOND (heartbeats on another network): connect again
        // (nothing happens while the sender replicates or is connecting).
        const cluster::PeerInfo* p = heartbeats_ ? heartbeats_->Peer(name) : nullptr;
        if (m->controller && m->controller->facts().state == State::kPrim &&
            !m->controller->facts().busy && p && p->view.visible &&
            p->view.state == State::kSecond && !p->view.busy) {
          m->replication->PeerIsSecond();
        }
      }
      ArmProbeTimer();
    });
  }

  void OnPeerChanged(const std::string& module, const cluster::PeerInfo& info) override {
    auto it = modules_.find(module);
    if (it == modules_.end() || !it->second->controller) return;
    auto& m = *it->second;
    cluster::PeerView v = info.view;
    v.name = peer_;
    // A secondary that the primary declares complete takes its generation
    // (the first time it could, on entering SECOND, it may not have been).
    const cluster::Facts& facts = m.controller->facts();
    if (v.config_matches && facts.state == State::kSecond && !facts.busy && info.peer_in_sync &&
        m.generations.current != info.generation) {
      m.generations.Adopt(info.generation);
      PersistFacts(module, facts);
    }
    if (v.config_matches) {
      if (auto rel = RelateGenerations(m, info)) {
        v.data = rel->peer;
        const std::pair<std::uint64_t, std::uint64_t> gens{m.generations.current, info.generation};
        if (rel->local == cluster::DataStatus::kDiverged && m.divergence_reported != gens) {
          m.divergence_reported = gens;
          const std::string command = "hakit prim --force -m " + module;
          std::string msg = "data diverged: generation " + std::to_string(m.generations.current) +
                            " on " + node_ + " and " + std::to_string(info.generation) + " on " +
                            peer_ + " both changed alone; choose the winner: run `" + command +
                            "` on the node whose data to keep (the other is then synchronised "
                            "from it and lists what it loses)";
          log_->Error("module " + module + ": " + msg);
          Record(module, "split_brain", "", "", msg,
                 {{"local_generation", m.generations.current},
                  {"peer_generation", info.generation},
                  {"command", command}});
        }
        m.controller->SetData(rel->local);
      }
    }
    if (m.checks) {
      std::vector<std::pair<std::string, checkers::ResourceState>> peer_resources;
      for (const auto& r : info.resources) {
        if (r.state <= static_cast<std::uint8_t>(checkers::ResourceState::kDown)) {
          peer_resources.emplace_back(r.name, static_cast<checkers::ResourceState>(r.state));
        }
      }
      m.checks->SetPeerResources(std::move(peer_resources));
    }
    // Our generation's answer to the peer may have changed: tell it.
    Publish(module);
    if (!v.config_matches && m.config_match_reported != 1) {
      m.config_match_reported = 1;
      std::string msg = "peer " + peer_ + " runs module " + module +
                        " with a different configuration: not paired (deploy the same "
                        "userconfig.xml and scripts on both nodes)";
      log_->Error(msg);
      m.context->Log(sdk::LogLevel::kError, msg);
      Record(module, "config_mismatch", "", "", msg, nlohmann::json::object());
    } else if (v.config_matches) {
      m.config_match_reported = 0;
    }
    m.controller->UpdatePeer(v);
  }

  void OnPeerLost(const std::string& module) override {
    auto it = modules_.find(module);
    if (it == modules_.end() || !it->second->controller) return;
    bool host_alive = peer_probe_ && peer_probe_->RefusedWithin(timeout_ + pulse_);
    if (host_alive) {
      std::string msg = "module " + module + ": peer " + peer_ +
                        " stopped sending heartbeats but its node refuses connections on port " +
                        std::to_string(cluster_.port) +
                        ": the node is up and its hakitd is not; the application may still run "
                        "there, so this node does not take over (check " + peer_ +
                        ", or use " + cluster::PrimCommand(it->second->controller->facts()) +
                        " here)";
      log_->Error(msg);
      it->second->context->Log(sdk::LogLevel::kError, msg);
      Record(module, "peer_lost", "", "", msg, {{"peer_host_alive", true}});
    } else {
      log_->Warn("module " + module + ": peer " + peer_ + " lost (every heartbeat network silent)");
    }
    // The silence that made the peer lost: the detection time of a failover.
    std::chrono::milliseconds silent_for = timeout_;
    for (const auto& sm : heartbeats_->Snapshot().modules) {
      if (sm.module == module && sm.last_heard_age_ms >= 0) {
        silent_for = std::chrono::milliseconds(sm.last_heard_age_ms);
      }
    }
    ModuleChecks* checks = it->second->checks.get();
    if (checks) checks->SetPeerResources({});  // what a silent peer said no longer holds
    if (checks == nullptr || !checks->HasWitness()) {
      it->second->controller->PeerLost(host_alive, silent_for);
      return;
    }
    // Split brain: only the side that reaches a witness may run the
    // application alone; ask it before deciding.
    checks->ConsultWitness([this, module, host_alive, silent_for](cluster::Witness w) {
      auto it = modules_.find(module);
      if (it == modules_.end() || !it->second->controller || shutting_down_) return;
      for (const auto& sm : heartbeats_->Snapshot().modules) {
        if (sm.module == module && sm.peer_visible) return;  // back meanwhile
      }
      std::string msg = "module " + module + ": peer lost, witness " +
                        (w == cluster::Witness::kReachable ? "reachable" : "unreachable");
      log_->Warn(msg);
      Record(module, "witness", "", "", msg,
             {{"witness_reachable", w == cluster::Witness::kReachable}});
      it->second->controller->SetWitness(w);
      it->second->controller->PeerLost(host_alive, silent_for);
    });
  }

  void OnNetworkStatus(const std::string& lan, bool up) override {
    log_->Log(up ? sdk::LogLevel::kInfo : sdk::LogLevel::kWarning,
              "heartbeat network " + lan + (up ? " up" : " silent"));
  }

  void OnRejected(const std::string& reason, const std::string& from) override {
    std::string msg = "heartbeat from " + from + " refused: " + reason;
    // Frames we cannot authenticate, from where the peer should be: some
    // node is there. Taking the primary role beside it could make two
    // primaries, so until a valid heartbeat arrives the peer counts as
    // present and unpairable (WAIT, never ALONE on our own).
    bool key_problem = reason.find("cluster key") != std::string::npos ||
                       reason.find("authentication") != std::string::npos;
    if (key_problem && FromPeer(from)) {
      for (auto& [name, m] : modules_) {
        if (!m->controller || m->controller->facts().peer.visible) continue;
        cluster::PeerView v;
        v.visible = true;
        v.config_matches = false;
        v.name = peer_;
        m->controller->UpdatePeer(v);
      }
    }
    log_->Error(msg);
    Record("", "auth_failure", "", "", msg, nlohmann::json::object());
    rejections_.push_back(msg);
    if (rejections_.size() > 10) rejections_.erase(rejections_.begin());
  }

  bool FromPeer(const std::string& from) const {
    for (const auto& lan : cluster_.lans) {
      auto addr = cluster_.AddressOf(peer_, lan.name);
      if (addr.ok() && from.rfind(*addr, 0) == 0) return true;
    }
    return false;
  }

  // The share of a heartbeat datagram (kMaxFrameSize) its resources may take.
  static constexpr std::size_t kResourceBytes = 600;

  void Publish(const std::string& module) {
    auto it = modules_.find(module);
    if (it == modules_.end() || !heartbeats_ || !it->second->controller) return;
    if (it->second->checks) it->second->checks->OnModuleChanged();
    const cluster::Facts& f = it->second->controller->facts();
    cluster::LocalInfo info;
    info.state = f.state;
    info.busy = f.busy;
    info.handing_over = f.handing_over;
    info.was_last_prim = f.was_last_prim;
    info.data = f.data;
    info.config_hash = it->second->config_hash;
    if (it->second->checks) {
      for (const auto& [n, st] :
           checkers::ForHeartbeat(it->second->checks->LocalResources(), kResourceBytes)) {
        info.resources.push_back({n, static_cast<std::uint8_t>(st)});
      }
    }
    const Generations& gens = it->second->generations;
    info.generation = gens.current;
    if (const cluster::PeerInfo* p = heartbeats_->Peer(module)) {
      info.peer_generation_seen = p->generation;
      info.peer_generation_known = gens.Knows(p->generation);
      // A module without replicated dirs has no data to be behind on. With
      // them, the peer is complete if it has our generation, or if it was
      // synchronised (or found identical) and every change since reached it.
      const ModuleReplication* r = it->second->replication.get();
      bool complete =
          r == nullptr || p->generation == gens.current || r->SecondHoldsEverything();
      info.peer_in_sync = cluster::IsPrimary(f.state) && complete;
    }
    heartbeats_->SetLocal(module, info);
  }

  // --- history ---

  void Record(const std::string& module, const std::string& kind, const std::string& from,
              const std::string& to, const std::string& reason, const nlohmann::json& details) {
    history::Event e;
    e.node = node_;
    e.module = module;
    e.kind = kind;
    e.from_state = from;
    e.to_state = to;
    e.reason = reason;
    e.details = details.is_object() ? details.dump() : "{}";
    if (history_) history_->Append(std::move(e));
    auto it = modules_.find(module);
    if (it == modules_.end()) return;
    auto& s = it->second->summary;
    if (kind == "failover") ++s.failovers;
    if (kind == "failover" && it->second->checks) it->second->checks->NoteFailover();
    if (kind == "swap") ++s.swaps;
    if (kind == "script_failure") ++s.script_failures;
    if (to == "ALONE" || to == "PRIM") s.last_primary = node_;
  }

  // --- control socket ---

  void HandleControl(const Request& r, control::ControlServer::Reply reply) {
    static const std::map<std::string, EventKind> kActions = {
        {"start", EventKind::kStart},         {"stop", EventKind::kStop},
        {"restart", EventKind::kRestart},     {"stopstart", EventKind::kStopStart},
        {"swap", EventKind::kSwap},           {"prim", EventKind::kForcePrim},
        {"second", EventKind::kForceSecond},
    };
    if (r.command == "state") {
      if (!r.module.empty() && !modules_.count(r.module)) {
        reply(Response::Fail("no module " + r.module + " on node " + node_ + UnloadedHint(r.module)));
        return;
      }
      Response resp = Response::Ok();
      resp.data = StateJson(r.module);
      reply(resp);
      return;
    }
    if (r.command == "reload") {
      Status s = ReloadModule(r.module);
      std::string done = modules_.count(r.module) ? " loaded module " : " has no module ";
      Record(r.module, "operator_command", "", "", "module folder changed (install, uninstall, "
             "reload)" + (s.ok() ? "" : ": " + s.message()), {{"command", "reload"}});
      reply(s.ok() ? Response::Ok("hakitd on " + node_ + done + r.module)
                   : Response::Fail(s.message()));
      return;
    }
    if (auto a = kActions.find(r.command); a != kActions.end()) {
      auto it = modules_.find(r.module);
      if (it == modules_.end()) {
        reply(Response::Fail("no module " + r.module + " on node " + node_ + UnloadedHint(r.module)));
        return;
      }
      auto& c = *it->second->controller;
      const bool force = a->second == EventKind::kForcePrim && r.args.value("force", false);
      const bool fullsync = a->second == EventKind::kForceSecond && r.args.value("fullsync", false);
      std::string command = r.command + (force ? " --force" : "") + (fullsync ? " --fullsync" : "");
      // hakit prim makes this node's data the reference: its next
      // generation overrules whatever the peer did alone (set before the
      // steps can run, withdrawn if refused).
      if (a->second == EventKind::kForcePrim) it->second->overrule_peer = true;
      std::string before = cluster::StateName(c.facts().state);
      std::string refused;
      if (fullsync) {
        refused = FullSync(*it->second);
      } else {
        refused = c.Handle({a->second, force ? "force" : r.command});
      }
      if (a->second == EventKind::kForcePrim && !refused.empty()) {
        it->second->overrule_peer = false;
        // The refusal says why; the generations say how far apart the copies are.
        const cluster::PeerInfo* p = heartbeats_ ? heartbeats_->Peer(r.module) : nullptr;
        if (p != nullptr && p->generation != 0) {
          refused += " (generation " + std::to_string(it->second->generations.current) +
                     " here, " + std::to_string(p->generation) + " on " + peer_ + ")";
        }
      }
      // The operator took the module in hand: the restart policy starts over.
      if (refused.empty() && it->second->checks) it->second->checks->ResetLoops();
      Record(r.module, "operator_command", before, cluster::StateName(c.facts().target),
             "hakit " + command + (refused.empty() ? "" : ": " + refused),
             {{"command", r.command}, {"force", force}, {"fullsync", fullsync},
              {"refused", !refused.empty()}});
      if (!refused.empty()) {
        reply(Response::Fail(r.command + " " + r.module + ": " + refused));
        return;
      }
      std::string state = cluster::StateName(c.facts().state);
      if (c.facts().busy) state += " -> " + std::string(cluster::StateName(c.facts().target));
      reply(Response::Ok(r.command + " " + r.module + ": " + state));
      return;
    }
    if (HandleChecksCommand(r, reply)) return;
    reply(Response::Fail("hakitd does not know the command '" + r.command + "'", 2));
  }

  // hakit second --fullsync: this node's copy is compared with the
  // primary's by checksums of both trees, whatever record of changes exists.
  // The replication forgets that the copy is complete, then the node becomes
  // SECOND (from STOP or WAIT), or leaves and re-enters SECOND (already
  // SECOND: its receiver starts afresh, so the primary pairs again).
  std::string FullSync(ModuleRuntime& m) {
    auto& c = *m.controller;
    if (!m.replication) return "second --fullsync refused: module " + m.name + " replicates no dir";
    if (cluster::IsPrimary(c.facts().state)) {
      return "second --fullsync refused: this node is primary; use swap or stop";
    }
    if (c.facts().busy) return "second --fullsync refused: a transition is running: retry when it settles";
    m.replication->RequestFullSync();
    if (c.facts().state == State::kSecond) return c.Handle({EventKind::kRestart, "second --fullsync"});
    return c.Handle({EventKind::kForceSecond, "second"});
  }

  // hakit set, errd, checker, failover, resetloop.
  bool HandleChecksCommand(const Request& r, const control::ControlServer::Reply& reply) {
    static const std::set<std::string> kCommands = {"set", "errd", "checker", "failover",
                                                    "resetloop"};
    if (!kCommands.count(r.command)) return false;
    auto it = modules_.find(r.module);
    if (it == modules_.end() || !it->second->checks) {
      reply(Response::Fail("no module " + r.module + " on node " + node_ + UnloadedHint(r.module)));
      return true;
    }
    ModuleChecks& checks = *it->second->checks;
    const std::string state = cluster::StateName(it->second->controller->facts().state);
    std::string what = "hakit " + r.command;
    bool from_operator = true;
    if (r.command == "set") {
      std::string res = r.args.value("resource", "");
      std::string value = r.args.value("value", "");
      auto st = checkers::ParseResourceState(value);
      if (!st || *st == checkers::ResourceState::kInit) {
        reply(Response::Fail("hakit set: value must be up or down, not "" + value + """, 2));
        return true;
      }
      from_operator = r.args.value("by", "operator") == "operator";
      if (Status s = checks.SetResource(res, *st, from_operator ? "operator" : "custom"); !s.ok()) {
        reply(Response::Fail("hakit set: " + s.message()));
        return true;
      }
      what += " -r " + res + " -v " + value;
    } else if (r.command == "resetloop") {
      checks.ResetLoops();
    } else {
      bool on = r.args.value("on", true);
      if (r.command == "errd") checks.SetErrd(on);
      if (r.command == "checker") checks.SetCheckers(on);
      if (r.command == "failover") checks.SetFailover(on);
      what += on ? " on" : " off";
    }
    // A custom checker's reports are its own business (the module log has
    // each change); what the operator does goes to the history.
    if (from_operator) {
      Record(r.module, "operator_command", state, state, what, {{"command", r.command}});
    }
    reply(Response::Ok(what.substr(6) + " " + r.module + ": done"));
    return true;
  }

  std::string UnloadedHint(const std::string& module) const {
    std::error_code ec;
    if (std::filesystem::exists(layout_.ModuleDir(module), ec)) {
      return " (installed but not loaded: see " + layout_.DaemonLog().string() + ")";
    }
    return "";
  }

  nlohmann::json StateJson(const std::string& only) {
    nlohmann::json mods = nlohmann::json::array();
    for (auto& [name, m] : modules_) {
      if (!only.empty() && name != only) continue;
      const cluster::Facts& f = m->controller->facts();
      nlohmann::json j = {
          {"name", name},
          {"state", cluster::StateName(f.state)},
          {"exit_code", cluster::StateExitCode(f.state)},
          {"busy", f.busy},
          {"target", cluster::StateName(f.target)},
          {"reason", m->controller->last_reason()},
          {"wait_reason", m->controller->wait_reason()},
          {"ready", !f.busy && cluster::IsRunning(f.state)},
          {"peer",
           {{"name", peer_},
            {"visible", f.peer.visible},
            {"state", cluster::StateName(f.peer.state)},
            {"config_matches", f.peer.config_matches}}},
          {"summary",
           {{"failovers", m->summary.failovers},
            {"swaps", m->summary.swaps},
            {"script_failures", m->summary.script_failures},
            {"last_primary", m->summary.last_primary}}},
          {"details",
           {{"data", DataName(f.data)},
            {"generation", m->generations.current},
            {"was_last_prim", f.was_last_prim},
            {"handing_over", f.handing_over},
            {"library", m->library_path.string()},
            {"config_hash", m->config_hash_hex}}},
      };
      if (m->replication) j["details"]["replication"] = m->replication->StatusJson();
      if (m->checks) j["checks"] = m->checks->StatusJson();
      mods.push_back(j);
    }
    nlohmann::json networks = nlohmann::json::array();
    if (heartbeats_) {
      for (const auto& n : heartbeats_->Snapshot().networks) {
        networks.push_back({{"lan", n.lan}, {"up", n.up}, {"age_ms", n.last_heard_age_ms}});
      }
    }
    return {{"node", node_}, {"peer", peer_}, {"modules", mods}, {"networks", networks},
            {"warnings", rejections_}};
  }

  // --- packages: hakit module install / uninstall / deploy ---

  std::string ModuleStateName(const std::string& module) {
    auto it = modules_.find(module);
    if (it == modules_.end() || !it->second->controller) return "STOP";
    const cluster::Facts& f = it->second->controller->facts();
    return std::string(cluster::StateName(f.state)) + (f.busy ? " (busy)" : "");
  }

  // A module folder changed: the old runtime (STOP only) goes, what is
  // installed now is loaded.
  Status ReloadModule(const std::string& module) {
    if (std::string why = package::InvalidModuleName(module); !why.empty()) {
      return Status::InvalidArgument(why);
    }
    if (std::string state = ModuleStateName(module); state != "STOP") {
      return Status::Failed("module " + module + " is " + state + " on " + node_ +
                            ": stop it before changing it");
    }
    if (auto it = modules_.find(module); it != modules_.end()) {
      it->second->controller.reset();
      it->second->replication.reset();
      if (heartbeats_) heartbeats_->RemoveModule(module);
      modules_.erase(it);
    }
    std::error_code ec;
    if (!std::filesystem::exists(layout_.ModuleDir(module), ec)) return Status::Ok();
    load_errors_.erase(module);
    LoadModules(module);
    if (!modules_.count(module)) return Status::Failed(load_errors_[module]);
    Publish(module);
    log_->Info("module " + module + " loaded as installed now (configuration " +
               modules_[module]->config_hash_hex + ")");
    return Status::Ok();
  }

  // Runs `f` on the io thread for another thread and waits for its result.
  template <typename R, typename F>
  R OnIoThread(F f) {
    auto done = std::make_shared<std::promise<R>>();
    auto result = done->get_future();
    asio::post(io_, [done, f]() { done->set_value(f()); });
    while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
      if (io_.stopped()) return R(Status::Failed("hakitd is stopping"));
    }
    return result.get();
  }

  // `hakit module deploy` on the peer lands here (cluster port + 3): the
  // package is received, checked and installed on the listener's thread.
  void StartDeployListener() {
    package::DeployServerOptions o;
    o.addresses = package::NodeAddresses(cluster_, node_);
    o.port = static_cast<std::uint16_t>(cluster_.port + package::kDeployPortOffset);
    o.key = key_;
    o.spool_dir = layout_.root() / ".install";
    o.log = [log = log_](sdk::LogLevel l, const std::string& m) { log->Log(l, "deploy: " + m); };
    o.install = [this](const std::filesystem::path& file,
                       const std::string& module) -> Result<package::DeployOutcome> {
      package::InstallOptions io;
      io.name = module;
      io.module_state = [this](const std::string& m) {
        return OnIoThread<Result<std::string>>(
            [this, m] { return Result<std::string>(ModuleStateName(m)); });
      };
      auto r = package::InstallPackage(file, layout_, io);
      if (!r.ok()) return r.status();
      std::string what = "installed " + r->Summary() + ", deployed by " + peer_;
      Status loaded = OnIoThread<Status>([this, module, what] {
        Status s = ReloadModule(module);
        Record(module, "operator_command", "", "", what + (s.ok() ? "" : "; " + s.message()),
               {{"command", "deploy"}});
        return s;
      });
      auto hash = HashModuleConfig(layout_, module);
      return package::DeployOutcome{
          "installed " + r->Summary() + " on " + node_ +
              (loaded.ok() ? "" : "; " + loaded.message()),
          hash.ok() ? cluster::HexEncode(*hash).substr(0, 16) : ""};
    };
    deploy_ = std::make_unique<package::DeployServer>(std::move(o));
    if (Status s = deploy_->Start(); !s.ok()) log_->Error(s.message());
  }

  void Shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    auto remaining = std::make_shared<std::size_t>(modules_.size());
    auto finish = [this]() {
      if (control_) control_->Stop();
      if (heartbeats_) heartbeats_->Stop();
      probe_timer_.cancel();
      if (peer_probe_) peer_probe_->Stop();
      io_.stop();
    };
    if (*remaining == 0) {
      finish();
      return;
    }
    for (auto& [name, m] : modules_) {
      m->controller->Shutdown([remaining, finish]() {
        if (--*remaining == 0) finish();
      });
    }
  }

  DaemonOptions options_;
  Layout layout_;
  std::shared_ptr<Logger> log_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer probe_timer_;
  config::ClusterConfig cluster_;
  std::string node_;
  std::string peer_;
  std::vector<std::uint8_t> key_;
  std::unique_ptr<history::HistoryWriter> history_;
  std::unique_ptr<vip::VipManager> vip_;
  std::filesystem::path generic_module_;
  std::map<std::string, std::unique_ptr<ModuleRuntime>> modules_;
  std::chrono::milliseconds pulse_{700};
  std::chrono::milliseconds timeout_{30000};
  std::unique_ptr<cluster::HeartbeatService> heartbeats_;
  std::unique_ptr<PeerProbe> peer_probe_;
  std::unique_ptr<control::ControlServer> control_;
  std::unique_ptr<package::DeployServer> deploy_;
  std::map<std::string, std::string> load_errors_;  // why a module is not loaded
  std::vector<std::string> rejections_;
  bool shutting_down_ = false;
};

}  // namespace

int RunDaemon(const DaemonOptions& options) {
  Daemon d(options);
  return d.Run();
}

}  // namespace hakit::daemon
