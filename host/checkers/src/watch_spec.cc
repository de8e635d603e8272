#include "hakit/checkers/watch_spec.h"

#include <regex>
#include <sstream>

namespace hakit::checkers {

using sdk::Status;

namespace {

std::string Param(const std::map<std::string, std::string>& p, const std::string& k) {
  auto it = p.find(k);
  return it == p.end() ? std::string() : it->second;
}

Status CheckRegex(const std::string& re, const std::string& what) {
  if (re.empty()) return Status::Ok();
  try {
    std::regex r(re, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Status::InvalidArgument(what + ": bad regular expression \"" + re + "\": " + e.what());
  }
  return Status::Ok();
}

// A whole number parameter of a library checker, or `fallback` when absent.
sdk::Result<int> IntParam(const sdk::CheckerSpec& s, const std::string& key, int fallback) {
  std::string v = Param(s.params, key);
  if (v.empty()) return fallback;
  try {
    std::size_t used = 0;
    int n = std::stoi(v, &used);
    if (used == v.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  return Status::InvalidArgument("module library checker \"" + s.ident + "\": " + key + "=\"" + v +
                                 "\" is not a whole number");
}

sdk::Result<WatchSpec> FromLibrary(const sdk::CheckerSpec& s) {
  const std::string who = "module library checker \"" + s.ident + "\"";
  WatchSpec w;
  std::string prefix;
  std::vector<std::string> required;
  if (s.kind == "process") {
    w.kind = ProbeKind::kProc;
    prefix = "proc.";
    w.match = {Param(s.params, "name"), Param(s.params, "nameregex"), Param(s.params, "argregex")};
    auto least = IntParam(s, "atleast", 1);
    if (!least.ok()) return least.status();
    w.atleast = *least;
    std::string most = Param(s.params, "atmax");
    if (!most.empty() && most != "none") {
      auto m = IntParam(s, "atmax", 0);
      if (!m.ok()) return m.status();
      w.atmax = *m;
    }
    if (w.match.name.empty() && w.match.nameregex.empty()) required = {"name"};
    if (Status st = CheckRegex(w.match.nameregex, who + " nameregex"); !st.ok()) return st;
    if (Status st = CheckRegex(w.match.argregex, who + " argregex"); !st.ok()) return st;
  } else if (s.kind == "tcp") {
    w.kind = ProbeKind::kTcp;
    prefix = "tcp.";
    w.addr = Param(s.params, "addr");
    auto port = IntParam(s, "port", 0);
    if (!port.ok()) return port.status();
    w.port = *port;
    required = {"addr", "port"};
  } else if (s.kind == "ping") {
    w.kind = ProbeKind::kPing;
    prefix = "ping.";
    w.addr = Param(s.params, "addr");
    required = {"addr"};
  } else if (s.kind == "interface") {
    w.kind = ProbeKind::kIntf;
    prefix = "intf.";
    w.ifname = Param(s.params, "name");
    required = {"name"};
  } else if (s.kind == "custom") {
    w.kind = ProbeKind::kCustom;
    prefix = "custom.";
    w.exec = Param(s.params, "exec");
    w.args = SplitWords(Param(s.params, "arg"));
    required = {"exec"};
  } else {
    return Status::InvalidArgument(who + " is of unknown kind \"" + s.kind +
                                   "\" (expected process, tcp, ping, interface, custom)");
  }
  for (const auto& k : required) {
    if (Param(s.params, k).empty() || (k == "port" && (w.port < 1 || w.port > 65535))) {
      return Status::InvalidArgument(who + " (" + s.kind + ") needs params[\"" + k + "\"]");
    }
  }
  auto action = ParseActionWord(s.action);
  if (!action) {
    return Status::InvalidArgument(who + " has unknown action \"" + s.action +
                                   "\" (expected restart, stopstart, failover, stop, wait, "
                                   "noaction)");
  }
  w.action = *action;
  w.resource = prefix + s.ident;
  const std::string when = Param(s.params, "when");
  if (when == "pre") {
    w.when = config::When::kPre;
  } else if (when == "prim") {
    w.when = config::When::kPrim;
  } else if (when == "second") {
    w.when = config::When::kSecond;
  } else if (when == "both") {
    w.when = config::When::kBoth;
  } else if (when.empty()) {
    w.when = w.kind == ProbeKind::kPing || w.kind == ProbeKind::kIntf ? config::When::kPre
                                                                       : config::When::kPrim;
  } else {
    return Status::InvalidArgument(who + ": when=\"" + when +
                                   "\" (expected pre, prim, second or both)");
  }
  if (s.interval.count() <= 0) return Status::InvalidArgument(who + ": interval must be positive");
  w.interval = s.interval;
  w.timeout = std::min(s.timeout, s.interval);
  return w;
}

}  // namespace

std::vector<std::string> SplitWords(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

sdk::Result<std::vector<WatchSpec>> WatchSpecs(const config::ModuleConfig& config,
                                               const std::vector<sdk::CheckerSpec>& library) {
  std::vector<WatchSpec> out;
  for (const auto& p : config.errd.procs) {
    WatchSpec w;
    w.kind = ProbeKind::kProc;
    w.errd = true;
    w.resource = "proc." + (p.name.empty() ? p.nameregex : p.name);
    w.when = p.when;
    w.action = FromConfigAction(p.action);
    w.handler = p.handler;
    w.match = {p.service ? std::string() : p.name, p.nameregex, p.argregex};
    w.atleast = p.atleast;
    w.atmax = p.atmax;
    w.service = p.service;
    w.addr = p.name;  // the unit, for service="yes"
    w.interval = config.errd.polltimer;
    w.timeout = std::min(config.errd.polltimer, std::chrono::milliseconds(5000));
    if (Status s = CheckRegex(p.nameregex, "<errd><proc nameregex>"); !s.ok()) return s;
    if (Status s = CheckRegex(p.argregex, "<errd><proc argregex>"); !s.ok()) return s;
    out.push_back(std::move(w));
  }
  for (const auto& c : config.check.checkers) {
    WatchSpec w;
    switch (c.kind) {
      case config::CheckerKind::kTcp: w.kind = ProbeKind::kTcp; w.resource = "tcp."; break;
      case config::CheckerKind::kPing: w.kind = ProbeKind::kPing; w.resource = "ping."; break;
      case config::CheckerKind::kInterface: w.kind = ProbeKind::kIntf; w.resource = "intf."; break;
      case config::CheckerKind::kIp: w.kind = ProbeKind::kIp; w.resource = "ip."; break;
      case config::CheckerKind::kCustom: w.kind = ProbeKind::kCustom; w.resource = "custom."; break;
    }
    w.resource += c.ident;
    w.when = c.when;
    w.action = FromConfigAction(c.action);
    w.handler = c.handler;
    w.addr = c.addr;
    w.port = c.port;
    w.ifname = c.interface_name;
    w.exec = c.exec;
    w.args = SplitWords(c.arg);
    w.interval = c.interval;
    w.timeout = c.timeout;
    out.push_back(std::move(w));
  }
  for (const auto& s : library) {
    auto w = FromLibrary(s);
    if (!w.ok()) return w.status();
    out.push_back(std::move(*w));
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (!IsResourceName(out[i].resource)) {
      const std::string& r = out[i].resource;
      return Status::InvalidArgument("checker \"" + r.substr(r.find('.') + 1) + "\": \"" + r +
                                     "\" is not a valid resource name (no blanks or control "
                                     "characters)");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (out[j].resource == out[i].resource) {
        return Status::InvalidArgument("resource " + out[i].resource +
                                       " is declared twice (userconfig.xml and the module "
                                       "library, or two <proc> of the same name)");
      }
    }
  }
  return out;
}

}  // namespace hakit::checkers
