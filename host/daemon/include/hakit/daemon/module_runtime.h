// One installed module as the daemon runs it: its parsed configuration, its
// loaded library, its host context and its controller.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hakit/cluster/heartbeat_codec.h"
#include "hakit/common/layout.h"
#include "hakit/common/log.h"
#include "hakit/config/module_config.h"
#include "hakit/daemon/module_checks.h"
#include "hakit/daemon/module_controller.h"
#include "hakit/daemon/module_replication.h"
#include "hakit/scripts/module_host_context.h"
#include "hakit/vip/vip_manager.h"

namespace hakit::daemon {

// The lineage of a node's copy of the data. A new generation starts each
// time the node runs as primary without a synchronised peer (it enters
// ALONE); a secondary adopts its primary's. Comparing two nodes' generations
// tells whose copy is newer, or that both changed alone (diverged).
struct Generations {
  std::uint64_t current = 0;           // 0: never ran (fresh install)
  std::vector<std::uint64_t> history;  // earlier generations, oldest first

  bool Knows(std::uint64_t g) const;
  // Starts a new random generation; `also` joins the history (the peer's
  // diverged generation the operator decided to overrule), if non-zero.
  void Advance(std::uint64_t also = 0);
  // Takes the primary's generation (after synchronising from it).
  void Adopt(std::uint64_t primary);
};

struct ModuleRuntime {
  std::string name;
  config::ModuleConfig config;
  sdk::ModuleDescription description;
  std::shared_ptr<sdk::Module> module;  // keeps its library loaded
  std::filesystem::path library_path;
  std::unique_ptr<scripts::ModuleHostContext> context;
  // One per <virtual_addr>, with its checks.
  struct Vip {
    vip::VipSpec spec;
    bool check_interface = false;  // <interface check="on">: link up before adding
    bool check_address = false;    // <virtual_addr check="on">: nobody else answers for it
  };
  std::vector<Vip> vips;
  vip::VipManager* vip_manager = nullptr;
  // SHA-256 of what both nodes must hold identically: userconfig.xml and
  // every file of bin/.
  cluster::ConfigHash config_hash{};
  std::string config_hash_hex;
  // <rfs><replicated dir>: null for a module without replicated dirs. Made
  // by the daemon (it knows the replication addresses); declared before
  // the controller, whose steps use it, so that it is destroyed after it.
  std::unique_ptr<ModuleReplication> replication;
  std::unique_ptr<ModuleController> controller;
  // Failure detection (errd, checkers, witness, restart policy); declared
  // after the controller it drives, so that it is destroyed first.
  std::unique_ptr<ModuleChecks> checks;
  bool autostart = false;
  Generations generations;
  // The state last persisted: transitions into ALONE and SECOND move the
  // generation.
  cluster::State persisted_state = cluster::State::kStop;
  // Set by `hakit prim`: the next generation overrules the peer's.
  bool overrule_peer = false;
  int config_match_reported = 0;
  // The divergence last reported (this node's generation, the peer's):
  // each one reaches the log and the history once.
  std::pair<std::uint64_t, std::uint64_t> divergence_reported{0, 0};
  struct Summary {
    int failovers = 0;
    int swaps = 0;
    int script_failures = 0;
    std::string last_primary;
  } summary;

  std::unique_ptr<HookSeam> MakeHookSeam();
  std::unique_ptr<VipSeam> MakeVipSeam();
};

struct ModuleLoadRequest {
  const Layout& layout;
  std::string name;
  std::string node;
  std::string peer;
  std::filesystem::path generic_module;
  vip::VipManager& vip_manager;
  std::shared_ptr<Logger> daemon_log;
};

// Parses, checks and loads one module. An error names the module, the file
// and what is wrong; nothing of the module runs before every check passed.
sdk::Result<std::unique_ptr<ModuleRuntime>> LoadModuleRuntime(const ModuleLoadRequest& request);

// SHA-256 over userconfig.xml and bin/* (names and bytes, sorted by name).
sdk::Result<cluster::ConfigHash> HashModuleConfig(const Layout& layout, const std::string& module);

}  // namespace hakit::daemon
