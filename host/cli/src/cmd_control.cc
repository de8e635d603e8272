// Commands carried out by the running daemon, over the control socket.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "hakit/cli/options.h"
#include "hakit/control/protocol.h"

namespace hakit::cli {

namespace {
constexpr std::chrono::seconds kControlTimeout{30};
}  // namespace

int SendToDaemon(Invocation& inv, const control::Request& req, control::Response* reply) {
  auto r = control::SendRequest(inv.layout.ControlSocket(), req, kControlTimeout);
  if (!r.ok()) {
    inv.err << "hakit " << req.command << ": " << r.status().message() << "\n";
    return kExitFailed;
  }
  if (!r->output.empty()) inv.out << r->output << (r->output.back() == '\n' ? "" : "\n");
  if (!r->error.empty()) inv.err << r->error << (r->error.back() == '\n' ? "" : "\n");
  if (reply) *reply = *r;
  return r->exit_code;
}

namespace {

int Send(Invocation& inv, const control::Request& req) { return SendToDaemon(inv, req, nullptr); }

// start, stop, restart, stopstart, swap, second: -m MODULE, nothing else.
Command ModuleAction(const std::string& name, const std::string& summary) {
  return {name, summary, [name](Invocation& inv) {
            po::options_description desc("options");
            std::string module;
            desc.add_options()("module,m", po::value(&module)->required(), "module name");
            bool fullsync = false, force = false;
            if (name == "second") {
              desc.add_options()("fullsync", po::bool_switch(&fullsync),
                                 "resynchronise everything from the primary");
            }
            if (name == "prim") {
              desc.add_options()("force", po::bool_switch(&force),
                                 "become primary even with stale or inconsistent data");
            }
            po::variables_map vm;
            if (auto rc = ParseOptions(inv, name, "-m MODULE", desc, {}, &vm)) return *rc;
            control::Request req{name, module, {{"fullsync", fullsync}, {"force", force}}};
            return Send(inv, req);
          }};
}

std::string Age(const nlohmann::json& ms) {
  if (!ms.is_number()) return "-";
  double s = ms.get<double>() / 1000.0;
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << s << "s";
  return o.str();
}

// Every resource with its state and age, then the restart policy's counters.
void PrintChecks(std::ostream& out, const nlohmann::json& c) {
  for (const auto& r : c.value("resources", nlohmann::json::array())) {
    out << "  resource " << std::left << std::setw(24) << r.value("name", "?") << " "
        << std::setw(5) << r.value("state", "?") << " for " << Age(r.value("age_ms", nlohmann::json()));
    if (r.contains("action")) {
      out << " (" << r.value("action", "") << ", " << r.value("when", "")
          << (r.value("enabled", true) ? "" : ", OFF") << ")";
    }
    out << "\n";
  }
  for (const auto& r : c.value("peer_resources", nlohmann::json::array())) {
    out << "  peer resource " << r.value("name", "?") << " " << r.value("state", "?") << "\n";
  }
  out << "  restarts: " << c.value("loops", 0) << "/" << c.value("maxloop", 0) << " within "
      << c.value("loop_interval_s", 0) << "s, failovers " << c.value("failovers", 0)
      << "; errd " << (c.value("errd", true) ? "on" : "off") << ", checkers "
      << (c.value("checker", true) ? "on" : "off") << ", failover "
      << (c.value("failover", true) ? "on" : "off") << "\n";
}

std::string Mib(std::uint64_t bytes) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1 << 20) << " MiB";
  return o.str();
}

// The primary's synchronisation of its secondary, while it runs or when it
// failed: "synchronisation: running (checksums), 120.0 MiB of 384.0 MiB (31 %),
// 52.3 MiB/s, about 5.0 s left".
void PrintSync(std::ostream& out, const nlohmann::json& module) {
  const nlohmann::json details = module.value("details", nlohmann::json::object());
  const nlohmann::json repl = details.value("replication", nlohmann::json::object());
  if (!repl.contains("sync")) return;
  const nlohmann::json& sync = repl["sync"];
  const std::string state = sync.value("state", "none");
  if (state != "running" && state.rfind("failed", 0) != 0) return;
  out << "  synchronisation: " << state;
  if (state == "running") {
    const std::uint64_t total = sync.value("bytes_total", std::uint64_t{0});
    const std::uint64_t done = sync.value("bytes_done", std::uint64_t{0});
    out << " (" << sync.value("method", "?") << "), " << Mib(done) << " of " << Mib(total);
    if (total > 0) out << " (" << std::min<std::uint64_t>(100, done * 100 / total) << " %)";
    out << ", " << Mib(sync.value("rate_bps", std::uint64_t{0})) << "/s";
    if (sync.contains("eta_s")) {
      const double eta = sync["eta_s"].get<double>();
      std::ostringstream left;
      left << std::fixed << std::setprecision(eta < 10 ? 1 : 0) << eta;
      out << ", about " << left.str() << " s left";
    }
  }
  out << "\n";
}

void PrintState(std::ostream& out, const nlohmann::json& data, bool verbose) {
  out << "node " << data.value("node", "?") << "\n";
  for (const auto& m : data.value("modules", nlohmann::json::array())) {
    std::string state = m.value("state", "?");
    if (m.value("busy", false)) state += " (-> " + m.value("target", "?") + ")";
    out << std::left << std::setw(16) << m.value("name", "?") << " " << std::setw(18) << state;
    const auto& peer = m.value("peer", nlohmann::json::object());
    out << " peer " << peer.value("name", "?") << ": "
        << (peer.value("visible", false) ? peer.value("state", "?") : std::string("unreachable"));
    if (peer.value("visible", false) && !peer.value("config_matches", true)) {
      out << " (CONFIGURATION DIFFERS: not paired)";
    }
    out << "\n";
    if (!m.value("wait_reason", "").empty()) out << "  waiting: " << m["wait_reason"].get<std::string>() << "\n";
    if (!m.value("reason", "").empty()) out << "  last: " << m["reason"].get<std::string>() << "\n";
    PrintSync(out, m);
    if (m.contains("summary")) {
      const auto& s = m["summary"];
      out << "  history: " << s.value("failovers", 0) << " failovers, " << s.value("swaps", 0)
          << " swaps, " << s.value("script_failures", 0) << " script failures";
      if (!s.value("last_primary", "").empty()) out << ", last primary " << s["last_primary"].get<std::string>();
      out << "\n";
    }
    if (verbose && m.contains("checks")) PrintChecks(out, m["checks"]);
    if (verbose) {
      // A named copy: items() on the temporary value() returns would dangle.
      const nlohmann::json details = m.value("details", nlohmann::json::object());
      for (const auto& [k, v] : details.items()) {
        out << "  " << k << ": " << v.dump() << "\n";
      }
    }
  }
  if (data.contains("networks")) {
    for (const auto& n : data["networks"]) {
      out << "network " << n.value("lan", "?") << ": " << (n.value("up", false) ? "up" : "DOWN")
          << ", last heard " << Age(n.value("age_ms", nlohmann::json())) << " ago\n";
    }
  }
  for (const auto& w : data.value("warnings", nlohmann::json::array())) {
    out << "warning: " << w.get<std::string>() << "\n";
  }
}

int State(Invocation& inv) {
  po::options_description desc("options");
  std::string module;
  bool json = false, local = false, quiet = false, verbose = false;
  desc.add_options()("module,m", po::value(&module), "only this module")(
      "json", po::bool_switch(&json), "machine-readable output")(
      "local,l", po::bool_switch(&local), "this node only (SafeKit compatibility)")(
      "quiet,q", po::bool_switch(&quiet), "print nothing; with -m, exit with the state's code "
                                          "(STOP=0 WAIT=1 ALONE=2 PRIM=3 SECOND=4)")(
      "verbose,v", po::bool_switch(&verbose), "every detail the daemon has");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "state", "[-m MODULE] [--json] [-lq] [-v]", desc, {}, &vm)) {
    return *rc;
  }
  (void)local;
  auto r = control::SendRequest(inv.layout.ControlSocket(), {"state", module, {}}, kControlTimeout);
  if (!r.ok()) {
    // No daemon: every module is stopped, which is what -lq must say.
    if (quiet && !module.empty()) return 0;
    inv.err << "hakit state: " << r.status().message() << "\n";
    return kExitFailed;
  }
  if (r->exit_code != 0) {
    if (!quiet) inv.err << r->error << "\n";
    return r->exit_code;
  }
  if (quiet) {
    if (module.empty()) return kExitOk;
    for (const auto& m : r->data.value("modules", nlohmann::json::array())) {
      if (m.value("name", "") == module) return m.value("exit_code", 0);
    }
    return 0;
  }
  if (json) {
    inv.out << r->data.dump(2) << "\n";
  } else {
    PrintState(inv.out, r->data, verbose);
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> ControlCommands() {
  return {
      ModuleAction("start", "start a module on this node"),
      ModuleAction("stop", "stop a module on this node (the peer takes over)"),
      ModuleAction("restart", "restart the application locally (stop and start scripts)"),
      ModuleAction("stopstart", "stop then start the module on this node"),
      ModuleAction("swap", "move the primary role to the other node"),
      ModuleAction("prim", "force this node to become primary (--force: even if stale)"),
      ModuleAction("second", "force this node to become secondary"),
      {"state", "module states on this node (and its peer)", State},
  };
}

}  // namespace hakit::cli
