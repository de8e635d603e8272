#include "hakit/config/module_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <utility>

#include "hakit/config/values.h"
#include "xml_source.h"

namespace hakit::config {

using internal::CheckNoText;
using internal::ElementList;
using internal::ElementReader;
using internal::MacroExpander;
using internal::SourceText;
using sdk::Result;
using sdk::Status;

namespace {

constexpr std::string_view kAddressExpected =
    "expected an IPv4 or IPv6 address, e.g. 198.18.0.100 or 2001:db8::10";

// SafeKit <rfs> attributes that tune its own replication engine. hakit's
// engine has other knobs; refusing these would make SafeKit files fail for
// no benefit, so they are accepted with a warning.
constexpr std::string_view kIgnoredRfsAttributes[] = {
    "namespacepolicy", "nbremconn",      "locktimeout", "sendtimeout", "roundtimeout",
    "reconnect",       "checktime",      "checkintv",   "syncdelta",   "syncat",
    "allocthreshold",  "iotimeout"};

bool IsNodeName(std::string_view s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool IsScriptName(std::string_view s) {
  if (s.empty() || s[0] == '.' || s[0] == '-') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

// What replicated dirs are compared as: separators unified, "." and ".."
// resolved, no trailing slash; Windows paths compared case-insensitively.
std::string NormalizeDir(std::string dir) {
  bool windows = IsWindowsPath(dir);
  std::replace(dir.begin(), dir.end(), '\\', '/');
  if (windows) {
    std::transform(dir.begin(), dir.end(), dir.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  }
  std::string normal = std::filesystem::path(dir).lexically_normal().generic_string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

// True when `inner` lies strictly below `outer`.
bool IsInside(const std::string& inner, const std::string& outer) {
  if (inner.size() <= outer.size() || inner.compare(0, outer.size(), outer) != 0) return false;
  return outer.back() == '/' || inner[outer.size()] == '/';
}

class Parser {
 public:
  Parser(const SourceText& source, const ParseOptions& options, ModuleConfig* config)
      : source_(source), expander_(options), config_(config) {}

  Status Run(const pugi::xml_document& doc);

 private:
  ElementReader Reader(pugi::xml_node node) {
    return ElementReader(source_, node, &expander_, &config_->attributes);
  }
  Status UnknownElement(pugi::xml_node node, pugi::xml_node parent,
                        std::initializer_list<std::string_view> allowed) const {
    return source_.Error(source_.NodeOffset(node), node.name(), "",
                         "unknown element inside <" + std::string(parent.name()) + ">",
                         "expected " + ElementList(allowed));
  }
  // Errors for a second occurrence of an element allowed once per parent.
  Status Once(pugi::xml_node node, std::map<std::string, SourceLocation>* seen) const {
    auto [it, inserted] = seen->emplace(node.name(), source_.LocationOf(source_.NodeOffset(node)));
    if (inserted) return Status::Ok();
    return source_.Error(source_.NodeOffset(node), node.name(), "",
                         "given twice (first at line " + it->second.ToString() + ")",
                         "expected at most one <" + std::string(node.name()) + "> here");
  }
  void Warn(const ElementReader& r, std::string_view attribute, std::string what,
            std::string hint) {
    config_->warnings.push_back(r.Warn(attribute, what, hint));
  }

  Status CollectMacros(pugi::xml_node parent);
  Status ParseService(pugi::xml_node node);
  Status ParseHeart(pugi::xml_node node);
  Status ParseFarm(pugi::xml_node node);
  Status ParseVip(pugi::xml_node node);
  Status ParseInterface(pugi::xml_node node);
  Status ParseVirtualAddr(pugi::xml_node node, VipInterfaceConfig* iface);
  Status ParseErrd(pugi::xml_node node);
  Status ParseProc(pugi::xml_node node);
  Status ParseRfs(pugi::xml_node node);
  Status ParseReplicated(pugi::xml_node node);
  Status ParseUser(pugi::xml_node node);
  Status ParseCheck(pugi::xml_node node);
  Status ParseChecker(pugi::xml_node node, CheckerKind kind);
  Status ParseSplitBrain(pugi::xml_node node);
  Status ParseFailover(pugi::xml_node node);

  Status GetAction(ElementReader& r, Action* action, std::string* handler);
  Status GetWhen(const ElementReader& r, std::string_view attribute, When* when) const;
  Status GetRegex(const ElementReader& r, std::string_view attribute, std::string* out) const;
  // An address a checker reaches: IP literal, host name or placeholder.
  Status GetTarget(const ElementReader& r, std::string_view attribute, bool names_allowed,
                   std::string* out) const;

  const SourceText& source_;
  MacroExpander expander_;
  ModuleConfig* config_;
  std::map<std::string, SourceLocation> vip_addrs_;
  std::vector<std::pair<std::string, SourceLocation>> replicated_dirs_;  // normalized
};

Status Parser::Run(const pugi::xml_document& doc) {
  pugi::xml_node root = doc.document_element();
  if (std::string_view(root.name()) != "safe") {
    return source_.Error(source_.NodeOffset(root), root.name(), "", "unexpected root element",
                         "expected <safe> as the root element of userconfig.xml");
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, root));
  ElementReader r = Reader(root);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({}));

  // Macros may be used before the point they are defined at (in <service>'s
  // own attributes, say), so all of them are read first, in document order.
  pugi::xml_node service;
  HAKIT_CONFIG_RETURN_IF_ERROR(CollectMacros(root));
  for (pugi::xml_node child : root.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "macro") continue;
    if (name != "service") return UnknownElement(child, root, {"service", "macro"});
    if (service) {
      return source_.Error(source_.NodeOffset(child), "service", "", "given twice",
                           "expected one <service> per userconfig.xml");
    }
    service = child;
    HAKIT_CONFIG_RETURN_IF_ERROR(CollectMacros(child));
  }
  if (!service) {
    return source_.Error(source_.NodeOffset(root), "safe", "", "no <service> element",
                         "expected <service mode=\"mirror\"> inside <safe>");
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(ParseService(service));
  config_->macros = expander_.macros();
  return Status::Ok();
}

Status Parser::CollectMacros(pugi::xml_node parent) {
  for (pugi::xml_node node : parent.children("macro")) {
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
    if (node.first_child()) {
      return UnknownElement(node.first_child(), node, {});
    }
    ElementReader r = Reader(node);
    HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"name", "value"}));
    std::string name;
    std::string value;
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("name", true, "expected a macro name", &name));
    if (!IsVariableName(name)) {
      return r.Fail("name", "\"" + name + "\" is not a valid macro name",
                    "expected letters, digits and _, not starting with a digit");
    }
    if (expander_.Defines(name)) {
      return r.Fail("name", "macro \"" + name + "\" defined twice", "expected each macro once");
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("value", false, "", &value));
    expander_.Define(name, value);
  }
  return Status::Ok();
}

Status Parser::ParseService(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.Open({"mode", "defaultprim", "maxloop", "loop_interval", "failover", "boot"}));
  ServiceConfig& s = config_->service;
  s.location = r.location();
  if (!r.Has("mode")) {
    return r.Fail("mode", "missing required attribute", "expected mirror or farm");
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetEnum<ModuleMode>(
      "mode", {{"mirror", ModuleMode::kMirror}, {"farm", ModuleMode::kFarm}}, &s.mode));
  if (const std::string* v = r.Value("defaultprim")) {
    if (*v == "alone") {
      s.default_prim = DefaultPrim::kAlone;
    } else if (*v == "lastprim") {
      s.default_prim = DefaultPrim::kLastPrim;
    } else if (IsNodeName(*v)) {
      s.default_prim = DefaultPrim::kNode;
      s.default_prim_node = *v;
    } else {
      return r.Fail("defaultprim", "\"" + *v + "\" is neither a keyword nor a node name",
                    "expected alone, lastprim or a node name from cluster.xml");
    }
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("maxloop", false, 0, 1000, &s.maxloop));
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetDuration("loop_interval", TimeUnit::kHours, std::chrono::minutes(1), &s.loop_interval));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("failover", &s.failover));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetEnum<BootMode>(
      "boot", {{"on", BootMode::kOn}, {"off", BootMode::kOff}, {"auto", BootMode::kAuto}},
      &s.boot));

  std::map<std::string, SourceLocation> seen;
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "macro") continue;
    Status st;
    if (name == "heart") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseHeart(child);
    } else if (name == "farm") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseFarm(child);
    } else if (name == "vip") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseVip(child);
    } else if (name == "errd") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseErrd(child);
    } else if (name == "rfs") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseRfs(child);
    } else if (name == "user") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseUser(child);
    } else if (name == "check") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseCheck(child);
    } else if (name == "failover") {
      st = Once(child, &seen);
      if (st.ok()) st = ParseFailover(child);
    } else {
      return UnknownElement(
          child, node,
          {"heart", "farm", "vip", "errd", "rfs", "user", "check", "failover", "macro"});
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status Parser::ParseHeart(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"pulse", "timeout"}));
  HeartConfig& h = config_->heart;
  h.location = r.location();
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetDuration("pulse", TimeUnit::kMilliseconds, std::chrono::milliseconds(10), &h.pulse));
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetDuration("timeout", TimeUnit::kMilliseconds, std::chrono::milliseconds(1), &h.timeout));
  if (h.timeout <= h.pulse) {
    return r.Fail(r.Has("timeout") ? "timeout" : "pulse",
                  "timeout " + FormatDuration(h.timeout) + " is not greater than pulse " +
                      FormatDuration(h.pulse),
                  "expected timeout > pulse, typically dozens of pulses; defaults are "
                  "pulse=700 timeout=30000");
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "heartbeat") {
      return UnknownElement(child, node, {"heartbeat"});
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
    if (child.first_child()) return UnknownElement(child.first_child(), child, {});
    ElementReader hb = Reader(child);
    HAKIT_CONFIG_RETURN_IF_ERROR(hb.Open({"name", "ident"}));
    HeartbeatConfig beat;
    beat.location = hb.location();
    HAKIT_CONFIG_RETURN_IF_ERROR(hb.GetString("name", false, "", &beat.name));
    HAKIT_CONFIG_RETURN_IF_ERROR(hb.GetString("ident", false, "", &beat.ident));
    if (beat.name.empty()) {
      return hb.Fail("name", "empty value", "expected the name of a <lan> in cluster.xml");
    }
    for (const HeartbeatConfig& other : h.heartbeats) {
      if (other.name == beat.name) {
        return hb.Fail("name",
                       "heartbeat on lan \"" + beat.name + "\" given twice (first at line " +
                           other.location.ToString() + ")",
                       "expected one <heartbeat> per lan");
      }
    }
    h.heartbeats.push_back(std::move(beat));
  }
  return Status::Ok();
}

Status Parser::ParseFarm(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({}));
  if (config_->service.mode != ModuleMode::kFarm) {
    return r.Fail("", "only farm modules have a <farm> topology",
                  "expected <service mode=\"farm\">, or remove <farm>");
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "lan") return UnknownElement(child, node, {"lan"});
    ElementReader lan = Reader(child);
    HAKIT_CONFIG_RETURN_IF_ERROR(lan.Open({"name"}));
    std::string name;
    HAKIT_CONFIG_RETURN_IF_ERROR(
        lan.GetString("name", true, "expected the name of a <lan> in cluster.xml", &name));
    config_->farm_lans.push_back(name);
  }
  return Status::Ok();
}

Status Parser::ParseVip(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({}));
  config_->vip.location = r.location();
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "interface_list") {
      HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
      ElementReader list = Reader(child);
      HAKIT_CONFIG_RETURN_IF_ERROR(list.Open({}));
      for (pugi::xml_node iface : child.children()) {
        if (iface.type() != pugi::node_element) continue;
        if (std::string_view(iface.name()) != "interface") {
          return UnknownElement(iface, child, {"interface"});
        }
        HAKIT_CONFIG_RETURN_IF_ERROR(ParseInterface(iface));
      }
    } else if (name == "interface") {
      HAKIT_CONFIG_RETURN_IF_ERROR(ParseInterface(child));
    } else if (name == "loadbalancing_list") {
      return source_.Error(source_.NodeOffset(child), name, "",
                           "load balancing is not supported by hakit",
                           "expected only <interface_list> in <vip>");
    } else {
      return UnknownElement(child, node, {"interface_list", "interface"});
    }
  }
  return Status::Ok();
}

Status Parser::ParseInterface(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"check", "arpreroute", "name"}));
  VipInterfaceConfig iface;
  iface.location = r.location();
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("check", &iface.check));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("arpreroute", &iface.arpreroute));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("name", false, "", &iface.name));
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "real_interface") {
      HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
      ElementReader real = Reader(child);
      HAKIT_CONFIG_RETURN_IF_ERROR(real.Open({}));
      for (pugi::xml_node addr : child.children()) {
        if (addr.type() != pugi::node_element) continue;
        if (std::string_view(addr.name()) != "virtual_addr") {
          return UnknownElement(addr, child, {"virtual_addr"});
        }
        HAKIT_CONFIG_RETURN_IF_ERROR(ParseVirtualAddr(addr, &iface));
      }
    } else if (name == "virtual_addr") {
      HAKIT_CONFIG_RETURN_IF_ERROR(ParseVirtualAddr(child, &iface));
    } else if (name == "virtual_interface") {
      return source_.Error(source_.NodeOffset(child), name, "",
                           "virtual MAC interfaces are not supported by hakit",
                           "expected <real_interface>");
    } else {
      return UnknownElement(child, node, {"real_interface", "virtual_addr"});
    }
  }
  config_->vip.interfaces.push_back(std::move(iface));
  return Status::Ok();
}

Status Parser::ParseVirtualAddr(pugi::xml_node node, VipInterfaceConfig* iface) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  if (node.first_child()) return UnknownElement(node.first_child(), node, {});
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"addr", "where", "check"}));
  VirtualAddrConfig va;
  va.location = r.location();
  va.one_side = config_->service.mode == ModuleMode::kMirror;
  std::string addr;
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("addr", true, kAddressExpected, &addr));
  if (IsPlaceholder(addr)) {
    va.is_placeholder = true;
    va.addr = addr;
  } else {
    std::string prefix;
    size_t slash = addr.find('/');
    if (slash != std::string::npos) {
      prefix = addr.substr(slash + 1);
      addr.resize(slash);
    }
    if (!IsIpAddress(addr)) {
      if (IsHostName(addr)) {
        return r.Fail("addr",
                      "\"" + addr +
                          "\" is a host name; a virtual IP must be given as an "
                          "address (hakit does not resolve names)",
                      kAddressExpected);
      }
      return r.Fail("addr", "\"" + addr + "\" is not an IP address", kAddressExpected);
    }
    if (slash != std::string::npos) {
      int max = IsIpv4Address(addr) ? 32 : 128;
      bool digits = !prefix.empty() && prefix.size() <= 3 &&
                    std::all_of(prefix.begin(), prefix.end(),
                                [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      if (!digits || std::stoi(prefix) > max) {
        return r.Fail("addr", "\"/" + prefix + "\" is not a valid prefix length",
                      "expected /0 to /" + std::to_string(max) + " after the address, or none");
      }
      va.prefix_length = std::stoi(prefix);
    }
    va.addr = addr;
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetEnum<bool>("where", {{"one_side_alias", true}, {"alias", false}}, &va.one_side));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("check", &va.check));
  auto [it, inserted] = vip_addrs_.emplace(va.addr, va.location);
  if (!inserted) {
    return r.Fail("addr",
                  "\"" + va.addr + "\" is already declared at line " + it->second.ToString(),
                  "expected each virtual address once");
  }
  iface->addrs.push_back(std::move(va));
  return Status::Ok();
}

Status Parser::ParseErrd(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"polltimer"}));
  config_->errd.location = r.location();
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetDuration(
      "polltimer", TimeUnit::kSeconds, std::chrono::milliseconds(100), &config_->errd.polltimer));
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "proc") return UnknownElement(child, node, {"proc"});
    HAKIT_CONFIG_RETURN_IF_ERROR(ParseProc(child));
  }
  return Status::Ok();
}

Status Parser::GetAction(ElementReader& r, Action* action, std::string* handler) {
  const std::string* v = r.Value("action");
  if (v == nullptr) return Status::Ok();
  static const std::pair<std::string_view, Action> kActions[] = {{"restart", Action::kRestart},
                                                                 {"stopstart", Action::kStopStart},
                                                                 {"stop", Action::kStop},
                                                                 {"wait", Action::kWait},
                                                                 {"noaction", Action::kNoAction}};
  for (const auto& [word, value] : kActions) {
    if (*v == word) {
      *action = value;
      return Status::Ok();
    }
  }
  if (!IsScriptName(*v)) {
    return r.Fail("action", "unknown action \"" + *v + "\"",
                  "expected restart, stopstart, stop, wait, noaction or the name of a handler "
                  "script in bin/");
  }
  *action = Action::kHandler;
  *handler = *v;
  Warn(r, "action",
       "\"" + *v + "\" is not a built-in action; the handler script bin/" + *v +
           " will be run instead",
       "built-in actions are restart, stopstart, stop, wait and noaction");
  return Status::Ok();
}

Status Parser::GetWhen(const ElementReader& r, std::string_view attribute, When* when) const {
  return r.GetEnum<When>(attribute,
                         {{"pre", When::kPre},
                          {"prim", When::kPrim},
                          {"second", When::kSecond},
                          {"both", When::kBoth}},
                         when);
}

Status Parser::GetRegex(const ElementReader& r, std::string_view attribute,
                        std::string* out) const {
  const std::string* v = r.Value(attribute);
  if (v == nullptr) return Status::Ok();
  try {
    std::regex re(*v, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return r.Fail(attribute, "\"" + *v + "\" is not a valid regular expression: " + e.what(),
                  "expected an ECMAScript regular expression");
  }
  *out = *v;
  return Status::Ok();
}

Status Parser::ParseProc(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  if (node.first_child()) return UnknownElement(node.first_child(), node, {});
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.Open({"name", "atleast", "atmax", "action", "class", "nameregex", "argregex", "service"}));
  ProcConfig p;
  p.location = r.location();
  p.when = config_->service.mode == ModuleMode::kFarm ? When::kBoth : When::kPrim;
  HAKIT_CONFIG_RETURN_IF_ERROR(GetRegex(r, "nameregex", &p.nameregex));
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetString("name", p.nameregex.empty(),
                  "expected the name of the process to watch, or nameregex", &p.name));
  HAKIT_CONFIG_RETURN_IF_ERROR(GetRegex(r, "argregex", &p.argregex));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("atleast", false, 0, 100000, &p.atleast));
  if (const std::string* v = r.Value("atmax"); v != nullptr && *v != "none" && *v != "-1") {
    int atmax = 0;
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("atmax", false, 0, 100000, &atmax));
    if (atmax < p.atleast) {
      return r.Fail(
          "atmax",
          "atmax " + std::to_string(atmax) + " is less than atleast " + std::to_string(p.atleast),
          "expected atmax >= atleast, or atmax=\"none\"");
    }
    p.atmax = atmax;
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(GetAction(r, &p.action, &p.handler));
  HAKIT_CONFIG_RETURN_IF_ERROR(GetWhen(r, "class", &p.when));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetYesNo("service", &p.service));
  config_->errd.procs.push_back(std::move(p));
  return Status::Ok();
}

Status Parser::ParseRfs(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.Open({"async", "acl", "nbrei", "namespacepolicy", "nbremconn", "ruzone_blocksize",
              "locktimeout", "sendtimeout", "roundtimeout", "reconnect", "checktime", "checkintv",
              "syncdelta", "syncat", "allocthreshold", "iotimeout"}));
  RfsConfig& rfs = config_->rfs;
  rfs.location = r.location();
  if (config_->service.mode == ModuleMode::kFarm) {
    return r.Fail("", "farm modules do not replicate files",
                  "expected <rfs> only with <service mode=\"mirror\">");
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetEnum<bool>("async", {{"second", true}, {"none", false}}, &rfs.async));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("acl", &rfs.acl));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("nbrei", false, 1, 64, &rfs.nbrei));
  int zone = static_cast<int>(rfs.zone_size);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("ruzone_blocksize", false, 64 << 10, 8 << 20, &zone));
  if ((zone & (zone - 1)) != 0) {
    return r.Fail("ruzone_blocksize", "\"" + std::to_string(zone) + "\" is not a power of two",
                  "a power of two from 65536 (64 KiB) to 8388608 (8 MiB) bytes");
  }
  rfs.zone_size = static_cast<std::size_t>(zone);
  for (std::string_view ignored : kIgnoredRfsAttributes) {
    if (r.Has(ignored)) {
      Warn(r, ignored, "SafeKit tuning attribute accepted but ignored by hakit",
           "hakit's replication engine does not use it; see docs/config.md");
    }
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "replicated") {
      return UnknownElement(child, node, {"replicated"});
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(ParseReplicated(child));
  }
  return Status::Ok();
}

Status Parser::ParseReplicated(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"dir", "mode"}));
  ReplicatedDirConfig rep;
  rep.location = r.location();
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString(
      "dir", true, "expected the absolute path of the directory to replicate", &rep.dir));
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetEnum<bool>("mode", {{"read_only", true}, {"read_write", false}}, &rep.read_only));
  std::string normal = NormalizeDir(rep.dir);
  for (const auto& [other, where] : replicated_dirs_) {
    if (other == normal) {
      return r.Fail("dir",
                    "\"" + rep.dir + "\" is already replicated (line " + where.ToString() + ")",
                    "expected each directory in one <replicated> only");
    }
    if (IsInside(normal, other) || IsInside(other, normal)) {
      bool inner = IsInside(normal, other);
      return r.Fail("dir",
                    "\"" + rep.dir + "\" " + (inner ? "is inside" : "contains") +
                        " the replicated dir \"" + other + "\" (line " + where.ToString() + ")",
                    "expected replicated dirs that do not nest; use <notreplicated> to leave "
                    "parts of a dir out");
    }
  }
  replicated_dirs_.emplace_back(normal, r.LocationOf("dir"));

  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "notreplicated") {
      return UnknownElement(child, node, {"notreplicated"});
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
    if (child.first_child()) return UnknownElement(child.first_child(), child, {});
    ElementReader nr = Reader(child);
    HAKIT_CONFIG_RETURN_IF_ERROR(nr.Open({"path", "regexpath"}));
    NotReplicatedConfig n;
    n.location = nr.location();
    if (nr.Has("path") && nr.Has("regexpath")) {
      return nr.Fail("regexpath", "path and regexpath given together",
                     "expected exactly one of them per <notreplicated>");
    }
    if (!nr.Has("path") && !nr.Has("regexpath")) {
      return nr.Fail("path", "missing required attribute",
                     "expected path=\"relative/path\" or regexpath=\"regex\"");
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(nr.GetString(
        "path", nr.Has("path"), "expected a path relative to the replicated dir", &n.path));
    HAKIT_CONFIG_RETURN_IF_ERROR(GetRegex(nr, "regexpath", &n.regexpath));
    if (!n.path.empty()) {
      std::string p = n.path;
      std::replace(p.begin(), p.end(), '\\', '/');
      if (p.front() == '/' || (p.size() >= 2 && p[1] == ':')) {
        return nr.Fail("path", "\"" + n.path + "\" is an absolute path",
                       "expected a path relative to the replicated dir \"" + rep.dir + "\"");
      }
      for (const auto& part : std::filesystem::path(p)) {
        if (part == "..") {
          return nr.Fail("path", "\"" + n.path + "\" leaves the replicated dir",
                         "expected a path below \"" + rep.dir + "\", without \"..\"");
        }
      }
    }
    rep.not_replicated.push_back(std::move(n));
  }
  config_->rfs.replicated.push_back(std::move(rep));
  return Status::Ok();
}

Status Parser::ParseUser(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.Open({"nicestoptimeout", "forcestoptimeout", "logging", "userlogsize"}));
  UserConfig user;
  user.location = r.location();
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetDuration("nicestoptimeout", TimeUnit::kSeconds,
                                             std::chrono::seconds(1), &user.nice_stop_timeout));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetDuration("forcestoptimeout", TimeUnit::kSeconds,
                                             std::chrono::seconds(1), &user.force_stop_timeout));
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetEnum<bool>("logging", {{"userlog", true}, {"none", false}}, &user.log_output));
  if (r.Has("userlogsize")) {
    int ignored = 0;
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("userlogsize", false, 0, 1 << 30, &ignored));
    Warn(r, "userlogsize", "accepted but ignored by hakit",
         "the user log is rotated with the module log");
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "var") return UnknownElement(child, node, {"var"});
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
    if (child.first_child()) return UnknownElement(child.first_child(), child, {});
    ElementReader vr = Reader(child);
    HAKIT_CONFIG_RETURN_IF_ERROR(vr.Open({"name", "value"}));
    UserVar var;
    var.location = vr.location();
    HAKIT_CONFIG_RETURN_IF_ERROR(
        vr.GetString("name", true, "expected an environment variable name", &var.name));
    if (!IsVariableName(var.name)) {
      return vr.Fail("name", "\"" + var.name + "\" is not a valid variable name",
                     "expected letters, digits and _, not starting with a digit");
    }
    for (const UserVar& other : user.vars) {
      if (other.name == var.name) {
        return vr.Fail("name",
                       "variable \"" + var.name + "\" given twice (first at line " +
                           other.location.ToString() + ")",
                       "expected each <var> name once");
      }
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(vr.GetString("value", false, "", &var.value));
    user.vars.push_back(std::move(var));
  }
  config_->user = std::move(user);
  return Status::Ok();
}

Status Parser::ParseCheck(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({}));
  config_->check.location = r.location();
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    Status st;
    if (name == "tcp") {
      st = ParseChecker(child, CheckerKind::kTcp);
    } else if (name == "ping") {
      st = ParseChecker(child, CheckerKind::kPing);
    } else if (name == "intf") {
      st = ParseChecker(child, CheckerKind::kInterface);
    } else if (name == "ip") {
      st = ParseChecker(child, CheckerKind::kIp);
    } else if (name == "custom") {
      st = ParseChecker(child, CheckerKind::kCustom);
    } else if (name == "splitbrain") {
      st = ParseSplitBrain(child);
    } else {
      return UnknownElement(child, node, {"tcp", "ping", "intf", "ip", "custom", "splitbrain"});
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status Parser::GetTarget(const ElementReader& r, std::string_view attribute, bool names_allowed,
                         std::string* out) const {
  std::string v;
  std::string expected = names_allowed ? "expected an IPv4 or IPv6 address or a host name"
                                       : std::string(kAddressExpected);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString(attribute, true, expected, &v));
  if (!IsPlaceholder(v) && !IsIpAddress(v) && !(names_allowed && IsHostName(v))) {
    if (!names_allowed && IsHostName(v)) {
      return r.Fail(attribute, "\"" + v + "\" is a host name, not an address", expected);
    }
    return r.Fail(attribute, "\"" + v + "\" is not an IP address", expected);
  }
  *out = v;
  return Status::Ok();
}

Status Parser::ParseChecker(pugi::xml_node node, CheckerKind kind) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  if (kind == CheckerKind::kCustom) {
    HAKIT_CONFIG_RETURN_IF_ERROR(
        r.Open({"ident", "when", "action", "exec", "arg", "interval", "timeout"}));
  } else {
    HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"ident", "when", "action"}));
  }
  CheckerConfig c;
  c.kind = kind;
  c.location = r.location();
  switch (kind) {
    case CheckerKind::kTcp:
    case CheckerKind::kCustom:
      c.when = When::kPrim;
      c.action = Action::kRestart;
      break;
    case CheckerKind::kPing:
    case CheckerKind::kInterface:
      c.when = When::kPre;
      c.action = Action::kWait;
      break;
    case CheckerKind::kIp:
      c.when = When::kPrim;
      c.action = Action::kStopStart;
      break;
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(
      r.GetString("ident", true, "expected a name for this checker", &c.ident));
  for (const CheckerConfig& other : config_->check.checkers) {
    if (other.kind == kind && other.ident == c.ident) {
      return r.Fail("ident",
                    "<" + std::string(node.name()) + "> checker \"" + c.ident +
                        "\" given twice (first at line " + other.location.ToString() + ")",
                    "expected a unique ident per checker kind");
    }
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(GetWhen(r, "when", &c.when));
  HAKIT_CONFIG_RETURN_IF_ERROR(GetAction(r, &c.action, &c.handler));

  // interval and timeout are on the checker itself for custom, on its <to>
  // for the others (SafeKit's layout).
  if (kind == CheckerKind::kCustom) {
    if (node.first_child()) return UnknownElement(node.first_child(), node, {});
    HAKIT_CONFIG_RETURN_IF_ERROR(
        r.GetString("exec", true, "expected the program to run, relative to bin/", &c.exec));
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("arg", false, "", &c.arg));
    HAKIT_CONFIG_RETURN_IF_ERROR(
        r.GetDuration("interval", TimeUnit::kSeconds, std::chrono::milliseconds(100), &c.interval));
    HAKIT_CONFIG_RETURN_IF_ERROR(
        r.GetDuration("timeout", TimeUnit::kSeconds, std::chrono::milliseconds(100), &c.timeout));
    if (c.timeout > c.interval) {
      return r.Fail("timeout",
                    "timeout " + FormatDuration(c.timeout) + " is longer than interval " +
                        FormatDuration(c.interval),
                    "expected timeout <= interval");
    }
    config_->check.checkers.push_back(std::move(c));
    return Status::Ok();
  }

  pugi::xml_node to;
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "to") return UnknownElement(child, node, {"to"});
    if (to) {
      return source_.Error(source_.NodeOffset(child), "to", "", "given twice",
                           "expected one <to> per checker; declare another checker instead");
    }
    to = child;
  }
  if (!to) {
    return r.Fail("", "missing <to> element",
                  kind == CheckerKind::kTcp         ? "expected <to addr=\"...\" port=\"...\"/>"
                  : kind == CheckerKind::kInterface ? "expected <to name=\"eth0\"/>"
                                                    : "expected <to addr=\"...\"/>");
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, to));
  if (to.first_child()) return UnknownElement(to.first_child(), to, {});
  ElementReader t = Reader(to);
  switch (kind) {
    case CheckerKind::kTcp:
      HAKIT_CONFIG_RETURN_IF_ERROR(t.Open({"addr", "port", "interval", "timeout"}));
      HAKIT_CONFIG_RETURN_IF_ERROR(GetTarget(t, "addr", true, &c.addr));
      HAKIT_CONFIG_RETURN_IF_ERROR(t.GetInt("port", true, 1, 65535, &c.port));
      break;
    case CheckerKind::kPing:
      HAKIT_CONFIG_RETURN_IF_ERROR(t.Open({"addr", "interval", "timeout"}));
      HAKIT_CONFIG_RETURN_IF_ERROR(GetTarget(t, "addr", true, &c.addr));
      break;
    case CheckerKind::kIp:
      HAKIT_CONFIG_RETURN_IF_ERROR(t.Open({"addr", "interval", "timeout"}));
      HAKIT_CONFIG_RETURN_IF_ERROR(GetTarget(t, "addr", false, &c.addr));
      break;
    case CheckerKind::kInterface:
      HAKIT_CONFIG_RETURN_IF_ERROR(t.Open({"name", "interval", "timeout"}));
      HAKIT_CONFIG_RETURN_IF_ERROR(
          t.GetString("name", true, "expected a network interface name", &c.interface_name));
      break;
    case CheckerKind::kCustom:
      break;
  }
  HAKIT_CONFIG_RETURN_IF_ERROR(
      t.GetDuration("interval", TimeUnit::kSeconds, std::chrono::milliseconds(100), &c.interval));
  HAKIT_CONFIG_RETURN_IF_ERROR(
      t.GetDuration("timeout", TimeUnit::kSeconds, std::chrono::milliseconds(100), &c.timeout));
  if (c.timeout > c.interval) {
    return t.Fail("timeout",
                  "timeout " + FormatDuration(c.timeout) + " is longer than interval " +
                      FormatDuration(c.interval),
                  "expected timeout <= interval");
  }
  config_->check.checkers.push_back(std::move(c));
  return Status::Ok();
}

Status Parser::ParseSplitBrain(pugi::xml_node node) {
  HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"ident", "exec", "arg"}));
  if (config_->check.splitbrain) {
    return r.Fail(
        "", "given twice (first at line " + config_->check.splitbrain->location.ToString() + ")",
        "expected one <splitbrain> per module; list several witnesses in it");
  }
  SplitBrainConfig sb;
  sb.location = r.location();
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("ident", false, "", &sb.ident));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("exec", false, "", &sb.exec));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetString("arg", false, "", &sb.arg));
  if (sb.exec.empty()) {
    return r.Fail("exec", "empty value", "expected ping or a program in bin/");
  }
  bool ping = sb.exec == "ping";
  if (ping) {
    std::string word;
    std::string arg = sb.arg + " ";
    for (char ch : arg) {
      if (ch == ' ' || ch == ',' || ch == '\t') {
        if (word.empty()) continue;
        if (!IsPlaceholder(word) && !IsIpAddress(word) && !IsHostName(word)) {
          return r.Fail("arg", "\"" + word + "\" is not an IP address or host name",
                        "expected the witness addresses, separated by blanks");
        }
        sb.witnesses.push_back(word);
        word.clear();
      } else {
        word.push_back(ch);
      }
    }
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    if (std::string_view(child.name()) != "to") return UnknownElement(child, node, {"to"});
    if (!ping) {
      return source_.Error(source_.NodeOffset(child), "to", "",
                           "witness addresses are only used with exec=\"ping\"",
                           "expected the program's arguments in arg=");
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
    ElementReader t = Reader(child);
    HAKIT_CONFIG_RETURN_IF_ERROR(t.Open({"addr"}));
    std::string addr;
    HAKIT_CONFIG_RETURN_IF_ERROR(GetTarget(t, "addr", true, &addr));
    sb.witnesses.push_back(addr);
  }
  if (ping && sb.witnesses.empty()) {
    return r.Fail("arg", "no witness address",
                  "expected arg=\"198.18.0.254\" or <to addr=\"...\"/> children");
  }
  config_->check.splitbrain = std::move(sb);
  return Status::Ok();
}

Status Parser::ParseFailover(pugi::xml_node node) {
  ElementReader r = Reader(node);
  HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"handle_time", "period"}));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetDuration("handle_time", TimeUnit::kMilliseconds,
                                             std::chrono::milliseconds(0),
                                             &config_->failover.handle_time));
  HAKIT_CONFIG_RETURN_IF_ERROR(r.GetDuration("period", TimeUnit::kMilliseconds,
                                             std::chrono::milliseconds(100),
                                             &config_->failover.period));
  std::string text;
  for (pugi::xml_node child : node.children()) {
    if (child.type() == pugi::node_element) {
      return UnknownElement(child, node, {});
    }
    if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
      text += child.value();
    }
  }
  config_->failover_rules = text;
  if (text.find_first_not_of(" \t\r\n") != std::string::npos) {
    Warn(r, "", "failover rules are not supported by hakit; they are kept as text and ignored",
         "hakit applies its built-in rules, see docs/checkers.md");
  }
  return Status::Ok();
}

}  // namespace

Result<ModuleConfig> ParseUserConfigString(std::string_view text, std::string display_name,
                                           const ParseOptions& options) {
  ModuleConfig config;
  config.source_path = display_name;
  config.raw_text = std::string(text);
  // The SourceText views config.raw_text, which does not move from here on.
  SourceText source(std::move(display_name), config.raw_text);
  pugi::xml_document doc;
  HAKIT_CONFIG_RETURN_IF_ERROR(source.Load(&doc));
  Parser parser(source, options, &config);
  HAKIT_CONFIG_RETURN_IF_ERROR(parser.Run(doc));
  return config;
}

Result<ModuleConfig> ParseUserConfig(const std::string& path, const ParseOptions& options) {
  Result<std::string> text = internal::ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseUserConfigString(*text, path, options);
}

std::map<std::string, std::string> ScriptVariables(const ModuleConfig& config) {
  std::map<std::string, std::string> vars = config.macros;
  if (config.user) {
    for (const UserVar& v : config.user->vars) vars[v.name] = v.value;
  }
  return vars;
}

const char* ToString(ModuleMode mode) { return mode == ModuleMode::kMirror ? "mirror" : "farm"; }

const char* ToString(DefaultPrim prim) {
  switch (prim) {
    case DefaultPrim::kNone:
      return "none";
    case DefaultPrim::kAlone:
      return "alone";
    case DefaultPrim::kLastPrim:
      return "lastprim";
    case DefaultPrim::kNode:
      return "node";
  }
  return "?";
}

const char* ToString(BootMode boot) {
  switch (boot) {
    case BootMode::kOff:
      return "off";
    case BootMode::kOn:
      return "on";
    case BootMode::kAuto:
      return "auto";
  }
  return "?";
}

const char* ToString(Action action) {
  switch (action) {
    case Action::kRestart:
      return "restart";
    case Action::kStopStart:
      return "stopstart";
    case Action::kStop:
      return "stop";
    case Action::kWait:
      return "wait";
    case Action::kNoAction:
      return "noaction";
    case Action::kHandler:
      return "handler";
  }
  return "?";
}

const char* ToString(When when) {
  switch (when) {
    case When::kPre:
      return "pre";
    case When::kPrim:
      return "prim";
    case When::kSecond:
      return "second";
    case When::kBoth:
      return "both";
  }
  return "?";
}

const char* ToString(CheckerKind kind) {
  switch (kind) {
    case CheckerKind::kTcp:
      return "tcp";
    case CheckerKind::kPing:
      return "ping";
    case CheckerKind::kInterface:
      return "intf";
    case CheckerKind::kIp:
      return "ip";
    case CheckerKind::kCustom:
      return "custom";
  }
  return "?";
}

}  // namespace hakit::config
