// hakit cluster genkey: the shared key that authenticates heartbeats.
#include <iostream>

#include "hakit/cli/options.h"
#include "hakit/cluster/heartbeat_codec.h"
#include "hakit/cluster/heartbeat_key.h"

namespace hakit::cli {
namespace {

int GenKey(Invocation& inv) {
  po::options_description desc("options");
  std::string out;
  bool force = false;
  desc.add_options()("output,o", po::value(&out), "where to write it (default ROOT/conf/cluster.key)")(
      "force", po::bool_switch(&force), "replace an existing key");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "cluster genkey", "[-o FILE] [--force]", desc, {}, &vm)) {
    return *rc;
  }
  std::filesystem::path path = out.empty() ? inv.layout.ClusterKey() : std::filesystem::path(out);
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !force) {
    inv.err << "hakit cluster genkey: " << path.string()
            << " exists; every node must hold the same key (use --force to replace it)\n";
    return kExitFailed;
  }
  std::filesystem::create_directories(path.parent_path(), ec);
  sdk::Status s = cluster::GenerateClusterKey(path, force);
  if (!s.ok()) {
    inv.err << "hakit cluster genkey: " << s.message() << "\n";
    return kExitFailed;
  }
  inv.out << "cluster key written to " << path.string()
          << " (mode 0600); copy it to the same place on the other node\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> ClusterCommands() {
  return {{"cluster genkey", "generate the cluster key that authenticates heartbeats", GenKey}};
}

}  // namespace hakit::cli
