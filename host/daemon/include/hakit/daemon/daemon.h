// hakitd: one daemon per node. It reads cluster.xml and every installed
// module, loads each module library, runs one ModuleController per module,
// exchanges heartbeats with the peer node and serves the control socket.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "hakit/common/layout.h"

namespace hakit::daemon {

struct DaemonOptions {
  std::filesystem::path root;  // the node's state directory
  // This node's name in cluster.xml; empty: the node whose address is
  // configured on a local interface.
  std::string node;
  // The generic module library, used by modules without lib/*.so. Empty:
  // looked up beside the hakitd executable.
  std::filesystem::path generic_module;
  bool log_to_stderr = true;
};

// Runs the daemon until SIGTERM/SIGINT (or a fatal start-up error, reported
// once). Returns the process exit code.
int RunDaemon(const DaemonOptions& options);

}  // namespace hakit::daemon
