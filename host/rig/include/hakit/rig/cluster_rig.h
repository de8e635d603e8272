// ClusterRig: a two-node hakit cluster on this one machine, for the cluster
// tests and `hakit demo`. Each node is a real hakitd in its own network
// namespace (testbed), with its own state root; a third namespace is the
// client that reaches the sample application (hakit-demo-app) at the VIP.
//
// The rig writes cluster.xml, the cluster key and one generic module ("demo")
// whose bin/ scripts start and stop the sample application and note every
// call in SAFEUSERVAR/calls.log, or, with RigOptions::library_module, a
// module library in its place. Everything it starts ends with it.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hakit/cluster/mirror_fsm.h"
#include "hakit/common/layout.h"
#include "hakit/control/protocol.h"
#include "hakit/sdk/status.h"
#include "hakit/testbed/testbed.h"

namespace hakit::rig {

using sdk::Result;
using sdk::Status;
using namespace std::chrono_literals;

struct RigOptions {
  std::string module = "demo";
  int lans = 2;              // heartbeat networks
  bool witness = false;      // a witness namespace on lan0
  std::chrono::milliseconds pulse{100};
  std::chrono::milliseconds timeout{500};
  bool failover = true;
  std::string defaultprim = "alone";
  std::uint16_t app_port = 8080;
  std::uint16_t cluster_port = 4800;
  // Where hakitd, hakit and hakit-demo-app are. Empty: beside this program.
  std::filesystem::path bin_dir;
  // Parent of the nodes' roots. Empty: a fresh folder under /tmp.
  std::filesystem::path work_dir;
  bool keep_work_dir = false;
  // <rfs async="..."><replicated dir="ReplicatedDir()"/></rfs> in the demo
  // module: each node's hakitd sees its own WORK/nodeX/data (DataDir) at
  // ReplicatedDir(), a path the same on both nodes (a bind mount in the
  // daemon's private mount namespace). Default off.
  bool replicated = false;
  std::string replication_async = "second";  // "second" or "none"
  // <rfs ruzone_blocksize>, bytes; 0: not set (the default zone size).
  std::size_t zone_size = 0;
  // false: the nodes start without any module; the test installs `module`
  // itself (packages, deployment), e.g. from WriteModuleFolder(). Default true.
  bool write_module = true;
  // A module library to install as the module's lib/NAME.so (copied) in
  // place of the demo's bin/ scripts, e.g. build/modules/hyperv.so. Empty:
  // the generic demo module. Its settings go in the userconfig.xml the test
  // writes with WriteUserConfig (DefaultUserConfig() as a start).
  std::filesystem::path library_module;
  // A module library installed as modules/MODULE/lib/MODULE.so instead of
  // the demo's scripts; <user> then holds `vars` (not the demo's APP vars).
  // PowerCut() kills every process of the node's namespace, since the rig
  // does not know what the library started. Empty: the demo module.
  std::filesystem::path library;
  std::map<std::string, std::string> vars;
  // With `replicated`: whether <rfs> lists ReplicatedDir(). Off for a
  // library that declares the dir itself (Describe()); each node still sees
  // its DataDir() at ReplicatedDir().
  bool replicated_dir_in_userconfig = true;
};

class ClusterRig {
 public:
  static Result<std::unique_ptr<ClusterRig>> Create(const RigOptions& options);
  ~ClusterRig();
  ClusterRig(const ClusterRig&) = delete;
  ClusterRig& operator=(const ClusterRig&) = delete;

  testbed::Testbed& bed() { return *bed_; }
  const RigOptions& options() const { return options_; }
  std::vector<std::string> nodes() const { return {"node1", "node2"}; }
  std::string Peer(const std::string& node) const { return node == "node1" ? "node2" : "node1"; }
  Layout LayoutOf(const std::string& node) const { return Layout(work_dir_ / node); }
  std::string Vip() const { return testbed::Testbed::VipAddress(0); }
  const std::filesystem::path& work_dir() const { return work_dir_; }

  // With RigOptions::replicated: the node's copy of the replicated dir, as
  // the test sees it (the real directory, under the FUSE mount), and the path
  // at which both daemons (and processes in their namespaces) see it.
  std::filesystem::path DataDir(const std::string& node) const { return work_dir_ / node / "data"; }
  std::string ReplicatedDir() const;
  // The pid of the node's hakitd, if it runs.
  std::optional<pid_t> DaemonPid(const std::string& node) const;
  // Runs a short command inside the node's hakitd's namespaces (network and
  // mount: it sees the replicated dir's FUSE mount). Needs the daemon.
  Result<testbed::CommandOutput> RunInDaemon(const std::string& node,
                                            const std::vector<std::string>& argv,
                                            std::chrono::milliseconds timeout = 10s);

  // The module's userconfig.xml as the rig writes it; tests may rewrite a
  // node's copy (WriteUserConfig) before starting its daemon.
  std::string DefaultUserConfig() const;
  Status WriteUserConfig(const std::string& node, const std::string& text);
  // Writes the demo module (conf/userconfig.xml, bin/ scripts) into `dir`,
  // as the rig installs it on each node.
  Status WriteModuleFolder(const std::filesystem::path& dir) const;
  // Sets one <user><var> of RigOptions::vars and rewrites both nodes'
  // userconfig.xml (for values known once the rig exists: ReplicatedDir()).
  Status SetUserVar(const std::string& name, const std::string& value);
  // Replaces one of the node's demo scripts (bin/NAME), executable.
  Status WriteScript(const std::string& node, const std::string& name, const std::string& text);
  // Replaces a node's cluster key by a fresh one (the "wrong key" case).
  Status RegenerateKey(const std::string& node);

  // Starts hakitd in the node's namespace and waits until it answers.
  Status StartDaemon(const std::string& node, std::chrono::milliseconds wait = 10s);
  // SIGTERM, then waits for a clean exit (modules stopped, VIP removed).
  Status StopDaemon(const std::string& node, std::chrono::milliseconds wait = 30s);
  // SIGKILL of hakitd alone (the node stays up, the application too).
  Status KillDaemon(const std::string& node);
  bool DaemonRunning(const std::string& node);
  // The node fails as a power cut would: links cut, hakitd and the
  // application (with a library: every process of the node's namespace)
  // killed with SIGKILL.
  Status PowerCut(const std::string& node);
  // Links back (the daemon stays down until StartDaemon).
  Status RestoreNetwork(const std::string& node);

  // One control request, as `hakit --root ROOT CMD -m MODULE` would send it.
  Result<control::Response> Command(const std::string& node, const std::string& command,
                                    nlohmann::json args = nlohmann::json::object());
  // The module's entry of `hakit state --json`.
  Result<nlohmann::json> ModuleState(const std::string& node);
  // STOP when the daemon does not answer.
  cluster::State StateOf(const std::string& node);
  // Waits until the node's module is in `state` and not busy.
  Status WaitState(const std::string& node, cluster::State state, std::chrono::milliseconds wait);
  // Waits until one node is PRIM and the other SECOND; returns the primary.
  Result<std::string> WaitPaired(std::chrono::milliseconds wait);

  // The client asks the application at the VIP; returns its one-line answer.
  Result<std::string> ClientRequest(std::chrono::milliseconds timeout = 1s);
  // Whether the VIP is configured in the node's namespace.
  bool HasVip(const std::string& node);
  // Whether the node's application process is alive.
  bool AppRunning(const std::string& node);
  // The application crashes: SIGKILL of the node's application process
  // (hakitd stays up). NotFound when it does not run.
  Status KillApp(const std::string& node);
  // The script calls the node's demo module recorded ("start_prim ALONE ...").
  std::vector<std::string> ScriptCalls(const std::string& node);

 private:
  explicit ClusterRig(RigOptions options);
  Status Build();
  Status WriteNode(const std::string& node);
  std::optional<pid_t> AppPid(const std::string& node);

  RigOptions options_;
  std::unique_ptr<testbed::Testbed> bed_;
  std::filesystem::path work_dir_;
  std::map<std::string, pid_t> daemons_;
};

}  // namespace hakit::rig
