#include "hakit/config/cluster_config.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>

#include "hakit/config/values.h"
#include "xml_source.h"

namespace hakit::config {

using internal::CheckNoText;
using internal::ElementList;
using internal::ElementReader;
using internal::SourceText;
using sdk::Result;
using sdk::Status;

namespace {

bool IsNodeName(std::string_view s) {
  if (s.empty() || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

class ClusterParser {
 public:
  ClusterParser(const SourceText& source, ClusterConfig* config)
      : source_(source), config_(config) {}

  Status Run(const pugi::xml_document& doc) {
    pugi::xml_node root = doc.document_element();
    if (std::string_view(root.name()) != "cluster") {
      return source_.Error(source_.NodeOffset(root), root.name(), "", "unexpected root element",
                           "expected <cluster> as the root element of cluster.xml");
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, root));
    ElementReader r(source_, root, nullptr, nullptr);
    HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"port"}));
    // The daemon uses a few ports from the base up; keep them all valid.
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetInt("port", false, 1, 65000, &config_->port));
    bool wrapped = false;
    for (pugi::xml_node child : root.children()) {
      if (child.type() != pugi::node_element) continue;
      std::string_view name = child.name();
      if (name == "lans") {
        if (wrapped) {
          return source_.Error(source_.NodeOffset(child), "lans", "", "given twice",
                               "expected one <lans> holding every <lan>");
        }
        wrapped = true;
        HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
        ElementReader lans(source_, child, nullptr, nullptr);
        HAKIT_CONFIG_RETURN_IF_ERROR(lans.Open({}));
        for (pugi::xml_node lan : child.children()) {
          if (lan.type() != pugi::node_element) continue;
          if (std::string_view(lan.name()) != "lan") return Unknown(lan, child, {"lan"});
          HAKIT_CONFIG_RETURN_IF_ERROR(ParseLan(lan));
        }
      } else if (name == "lan") {
        HAKIT_CONFIG_RETURN_IF_ERROR(ParseLan(child));
      } else {
        return Unknown(child, root, {"lans", "lan"});
      }
    }
    if (config_->lans.empty()) {
      return source_.Error(source_.NodeOffset(root), "cluster", "", "no <lan>",
                           "expected <lans><lan name=\"default\"><node name=... addr=.../>"
                           "</lan></lans>");
    }
    return CheckSameNodes();
  }

 private:
  Status Unknown(pugi::xml_node node, pugi::xml_node parent,
                 std::initializer_list<std::string_view> allowed) const {
    return source_.Error(source_.NodeOffset(node), node.name(), "",
                         "unknown element inside <" + std::string(parent.name()) + ">",
                         "expected " + ElementList(allowed));
  }

  Status ParseLan(pugi::xml_node node) {
    HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, node));
    ElementReader r(source_, node, nullptr, nullptr);
    HAKIT_CONFIG_RETURN_IF_ERROR(r.Open({"name", "console", "command", "framework"}));
    ClusterLan lan;
    lan.location = r.location();
    HAKIT_CONFIG_RETURN_IF_ERROR(
        r.GetString("name", true, "expected a network name, e.g. default", &lan.name));
    for (const ClusterLan& other : config_->lans) {
      if (other.name == lan.name) {
        return r.Fail("name",
                      "lan \"" + lan.name + "\" given twice (first at line " +
                          other.location.ToString() + ")",
                      "expected unique lan names");
      }
    }
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("console", &lan.console));
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("command", &lan.command));
    HAKIT_CONFIG_RETURN_IF_ERROR(r.GetOnOff("framework", &lan.framework));
    for (pugi::xml_node child : node.children()) {
      if (child.type() != pugi::node_element) continue;
      if (std::string_view(child.name()) != "node") return Unknown(child, node, {"node"});
      HAKIT_CONFIG_RETURN_IF_ERROR(CheckNoText(source_, child));
      if (child.first_child()) return Unknown(child.first_child(), child, {});
      ElementReader nr(source_, child, nullptr, nullptr);
      HAKIT_CONFIG_RETURN_IF_ERROR(nr.Open({"name", "addr"}));
      ClusterNode n;
      n.location = nr.location();
      HAKIT_CONFIG_RETURN_IF_ERROR(nr.GetString("name", true, "expected the node's name", &n.name));
      if (!IsNodeName(n.name)) {
        return nr.Fail("name", "\"" + n.name + "\" is not a valid node name",
                       "expected letters, digits, '.', '_' and '-'");
      }
      HAKIT_CONFIG_RETURN_IF_ERROR(nr.GetString(
          "addr", true, "expected the node's IPv4 or IPv6 address on this lan", &n.addr));
      if (!IsIpAddress(n.addr)) {
        return nr.Fail("addr",
                       "\"" + n.addr + "\" is not an IP address" +
                           (IsHostName(n.addr) ? " (host names are not resolved)" : ""),
                       "expected an IPv4 or IPv6 address, e.g. 198.18.0.1");
      }
      for (const ClusterNode& other : lan.nodes) {
        if (other.name == n.name) {
          return nr.Fail("name",
                         "node \"" + n.name + "\" given twice in lan \"" + lan.name +
                             "\" (first at line " + other.location.ToString() + ")",
                         "expected each node once per lan");
        }
      }
      auto [it, inserted] = addrs_.emplace(n.addr, nr.LocationOf("addr"));
      if (!inserted) {
        return nr.Fail("addr",
                       "address " + n.addr + " is already used at line " + it->second.ToString(),
                       "expected a distinct address for every node on every lan");
      }
      lan.nodes.push_back(std::move(n));
    }
    if (lan.nodes.empty()) {
      return r.Fail("", "lan \"" + lan.name + "\" has no <node>",
                    "expected <node name=\"...\" addr=\"...\"/> for each node");
    }
    config_->lans.push_back(std::move(lan));
    return Status::Ok();
  }

  // Every lan must carry every node: a heartbeat network that misses a node
  // would make that node look dead on it.
  Status CheckSameNodes() const {
    const ClusterLan& first = config_->lans.front();
    for (size_t i = 1; i < config_->lans.size(); ++i) {
      const ClusterLan& lan = config_->lans[i];
      for (const ClusterNode& n : lan.nodes) {
        bool known = std::any_of(first.nodes.begin(), first.nodes.end(),
                                 [&](const ClusterNode& f) { return f.name == n.name; });
        if (!known) {
          return Error(n.location, "node", "name",
                       "node \"" + n.name + "\" is not in lan \"" + first.name + "\"",
                       "expected the same node names in every lan");
        }
      }
      for (const ClusterNode& f : first.nodes) {
        bool present = std::any_of(lan.nodes.begin(), lan.nodes.end(),
                                   [&](const ClusterNode& n) { return f.name == n.name; });
        if (!present) {
          return Error(lan.location, "lan", "",
                       "lan \"" + lan.name + "\" has no node \"" + f.name + "\" (lan \"" +
                           first.name + "\" has it)",
                       "expected the same node names in every lan");
        }
      }
    }
    return Status::Ok();
  }

  Status Error(SourceLocation where, std::string_view element, std::string_view attribute,
               std::string what, std::string expected) const {
    Problem p;
    p.file = source_.display_name();
    p.location = where;
    p.element = std::string(element);
    p.attribute = std::string(attribute);
    p.message = std::move(what);
    p.hint = std::move(expected);
    return Status::InvalidArgument(p.ToString());
  }

  const SourceText& source_;
  ClusterConfig* config_;
  std::map<std::string, SourceLocation> addrs_;
};

}  // namespace

std::vector<std::string> ClusterConfig::NodeNames() const {
  std::vector<std::string> names;
  if (lans.empty()) return names;
  for (const ClusterNode& n : lans.front().nodes) names.push_back(n.name);
  return names;
}

const ClusterLan* ClusterConfig::FindLan(std::string_view lan) const {
  for (const ClusterLan& l : lans) {
    if (l.name == lan) return &l;
  }
  return nullptr;
}

Result<std::string> ClusterConfig::AddressOf(std::string_view node, std::string_view lan) const {
  const ClusterLan* l = FindLan(lan);
  if (l == nullptr) {
    return Status::NotFound(source_path + ": no lan \"" + std::string(lan) + "\"");
  }
  for (const ClusterNode& n : l->nodes) {
    if (n.name == node) return n.addr;
  }
  return Status::NotFound(source_path + ": no node \"" + std::string(node) + "\" in lan \"" +
                          std::string(lan) + "\"");
}

Result<ClusterConfig> ParseClusterConfigString(std::string_view text, std::string display_name) {
  ClusterConfig config;
  config.source_path = display_name;
  config.raw_text = std::string(text);
  SourceText source(std::move(display_name), config.raw_text);
  pugi::xml_document doc;
  HAKIT_CONFIG_RETURN_IF_ERROR(source.Load(&doc));
  ClusterParser parser(source, &config);
  HAKIT_CONFIG_RETURN_IF_ERROR(parser.Run(doc));
  return config;
}

Result<ClusterConfig> ParseClusterConfig(const std::string& path) {
  Result<std::string> text = internal::ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseClusterConfigString(*text, path);
}

}  // namespace hakit::config
