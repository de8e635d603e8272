// cluster.xml -> ClusterConfig: the nodes and their address on each network.
//
//   <cluster port="4800">
//     <lans>
//       <lan name="default">
//         <node name="node1" addr="198.18.0.1"/>
//         <node name="node2" addr="198.18.0.2"/>
//       </lan>
//       <lan name="flow"> ... </lan>
//     </lans>
//   </cluster>
//
// <lans> may be left out (<lan>s directly under <cluster>). Every lan lists
// the same nodes; addresses are IP literals (no name resolution, so a node
// never depends on DNS to find its peer), unique across the cluster. How many
// nodes a module type needs is the daemon's business, not this file's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hakit/config/problem.h"
#include "hakit/sdk/status.h"

namespace hakit::config {

// <node name addr>.
struct ClusterNode {
  std::string name;  // required: [A-Za-z0-9][A-Za-z0-9._-]*
  std::string addr;  // required: IPv4 or IPv6 literal
  SourceLocation location;
};

// <lan name console command framework>.
struct ClusterLan {
  std::string name;  // required, unique
  // SafeKit's per-lan roles, accepted for compatibility: the web console,
  // the command channel and the framework traffic use this lan. Default off.
  bool console = false;
  bool command = false;
  bool framework = false;
  std::vector<ClusterNode> nodes;  // at least one
  SourceLocation location;
};

// A parsed cluster.xml.
struct ClusterConfig {
  std::string source_path;  // path or display name parsed from
  std::string raw_text;     // the exact bytes, for hashing
  // <cluster port>: the base UDP/TCP port hakitd derives its ports from.
  // Default 4800.
  int port = 4800;
  std::vector<ClusterLan> lans;  // at least one, in file order

  // The node names, in the order of the first lan.
  std::vector<std::string> NodeNames() const;
  // nullptr when there is no such lan.
  const ClusterLan* FindLan(std::string_view lan) const;
  // The node's address on `lan`; kNotFound naming what is missing.
  sdk::Result<std::string> AddressOf(std::string_view node, std::string_view lan = "default") const;
};

// Reads and parses cluster.xml; errors are formatted as for userconfig.xml.
sdk::Result<ClusterConfig> ParseClusterConfig(const std::string& path);
sdk::Result<ClusterConfig> ParseClusterConfigString(std::string_view text,
                                                    std::string display_name);

}  // namespace hakit::config
