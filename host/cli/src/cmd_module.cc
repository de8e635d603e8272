// module check / list / package / install / uninstall / deploy.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "hakit/cli/options.h"
#include "hakit/cluster/heartbeat_codec.h"
#include "hakit/cluster/heartbeat_key.h"
#include "hakit/config/cluster_config.h"
#include "hakit/config/module_config.h"
#include "hakit/control/protocol.h"
#include "hakit/daemon/module_runtime.h"
#include "hakit/package/deploy.h"
#include "hakit/package/installer.h"
#include "hakit/sdk/module.h"

namespace hakit::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sdk::Result;
using sdk::Status;

bool IsPackageFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && (p.extension() == ".safe" || p.extension() == ".zip");
}

void PrintReadiness(Invocation& inv, const std::string& what,
                    const std::vector<config::Problem>& problems) {
  if (problems.empty()) {
    inv.out << what << ": ok, ready to run\n";
    return;
  }
  inv.out << what << ": " << problems.size()
          << " value(s) to fill in before this module can run here:\n";
  for (const auto& p : problems) inv.out << "  " << p.ToString() << "\n";
}

// The module's state as this node's hakitd shows it; when no hakitd
// answers, what the last one recorded.
package::ModuleStateFn DaemonModuleState(const Layout& layout) {
  return [layout](const std::string& module) -> Result<std::string> {
    auto r = control::SendRequest(layout.ControlSocket(), {"state", "", {}}, 10s);
    if (!r.ok()) {
      if (r.status().code() == Status::Code::kNotFound) {
        return package::RecordedModuleState(layout, module);
      }
      return r.status();
    }
    if (r->exit_code != 0) return Status::Failed(r->error);
    for (const auto& m : r->data.value("modules", nlohmann::json::array())) {
      if (m.value("name", "") != module) continue;
      std::string state = m.value("state", "STOP");
      if (m.value("busy", false)) state += " (busy)";
      return state;
    }
    return std::string("STOP");
  };
}

// Asks a running hakitd to take the module folder as it is now (loaded,
// replaced or gone). Without a daemon there is nothing to tell.
int TellDaemon(Invocation& inv, const std::string& module, const std::string& without_daemon) {
  auto r = control::SendRequest(inv.layout.ControlSocket(), {"reload", module, {}}, 60s);
  if (!r.ok()) {
    if (r.status().code() == Status::Code::kNotFound) {
      inv.out << "hakitd is not running here; " << without_daemon << "\n";
      return kExitOk;
    }
    inv.err << "hakit: hakitd did not take the change: " << r.status().message() << "\n";
    return kExitFailed;
  }
  if (r->exit_code != 0) {
    inv.err << "hakit: " << r->error << "\n";
    return kExitFailed;
  }
  if (!r->output.empty()) inv.out << r->output << "\n";
  return kExitOk;
}

// SafeKit scripts run "$SAFE/safekit"; SAFE is the root. hakitd makes the
// link when it starts; a module installed before that needs it as well.
void EnsureSafekitAlias(Invocation& inv) {
  fs::path alias = inv.layout.SafeDir() / "safekit";
  std::error_code ec;
  if (fs::exists(alias, ec)) return;
  fs::remove(alias, ec);  // a dangling link left by an older install
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  fs::create_symlink(self, alias, ec);
  if (ec) inv.err << "warning: cannot create " << alias.string() << ": " << ec.message() << "\n";
}

// `hakit module check FILE|DIR|PACKAGE`: parses the configuration (and a
// package's every check), then lists what must be filled in before the
// module can run here. Exit 0 only when ready.
int Check(Invocation& inv) {
  po::options_description desc("options");
  std::string target;
  desc.add_options()("path", po::value(&target)->required(),
                     "a userconfig.xml, a module directory holding conf/userconfig.xml, or a "
                     ".safe package");
  po::positional_options_description pos;
  pos.add("path", 1);
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module check", "FILE|DIR|FILE.safe", desc, pos, &vm)) return *rc;
  fs::path file = target;
  if (IsPackageFile(file)) {
    package::InstallOptions o;
    auto r = package::CheckPackage(file, inv.layout, o);
    if (!r.ok()) {
      inv.err << r.status().message() << "\n";
      return kExitFailed;
    }
    for (const auto& w : r->warnings) inv.err << "warning: " << w << "\n";
    inv.out << file.string() << ": module " << r->Summary() << ", " << r->files << " file(s), "
            << r->bytes << " bytes\n";
    PrintReadiness(inv, file.string(), r->readiness);
    return r->readiness.empty() ? kExitOk : kExitFailed;
  }
  std::error_code ec;
  if (fs::is_directory(file, ec)) file = file / "conf" / "userconfig.xml";
  auto cfg = config::ParseUserConfig(file.string());
  if (!cfg.ok()) {
    inv.err << cfg.status().message() << "\n";
    return kExitFailed;
  }
  for (const auto& w : cfg->warnings) inv.err << "warning: " << w.ToString() << "\n";
  std::vector<config::Problem> problems = config::CheckModuleReadiness(*cfg);
  PrintReadiness(inv, file.string(), problems);
  return problems.empty() ? kExitOk : kExitFailed;
}

int List(Invocation& inv) {
  po::options_description desc("options");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module list", "", desc, {}, &vm)) return *rc;
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(inv.layout.ModulesDir(), ec)) {
    if (e.is_directory()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  // NAME and VERSION ("-": no manifest, a SafeKit package or a folder
  // copied by hand).
  for (const auto& n : names) {
    auto m = package::ReadManifest(inv.layout.ModuleDir(n));
    std::string version = m.ok() ? m->version : "-";
    if (!m.ok() && m.status().code() != Status::Code::kNotFound) {
      version = "? (" + m.status().message() + ")";
    }
    inv.out << n << std::string(n.size() < 20 ? 20 - n.size() : 1, ' ') << version << "\n";
  }
  return kExitOk;
}

int Package(Invocation& inv) {
  po::options_description desc("options");
  std::string dir, out, name, version;
  desc.add_options()("dir", po::value(&dir)->required(), "the module folder (conf/, bin/, lib/)")(
      "output,o", po::value(&out)->required(), "the package to write (FILE.safe)")(
      "name,m", po::value(&name), "the module's name (default: the folder's name)")(
      "version", po::value(&version),
      "the package's version (default: the folder's manifest's, else 1)");
  po::positional_options_description pos;
  pos.add("dir", 1);
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module package", "DIR -o FILE.safe [-m NAME] [--version V]",
                             desc, pos, &vm)) {
    return *rc;
  }
  fs::path folder = fs::path(dir).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();
  if (name.empty()) name = folder.filename().string();
  auto checked = package::CheckModuleDir(folder, inv.layout, name);
  if (!checked.ok()) {
    inv.err << "hakit module package: " << checked.status().message() << "\n";
    return kExitFailed;
  }
  for (const auto& w : checked->warnings) inv.err << "warning: " << w << "\n";
  if (version.empty()) {
    auto existing = package::ReadManifest(folder);
    version = existing.ok() ? existing->version : "1";
  }
  package::Manifest m{name, version, sdk::kAbiVersion, {}};
  Status s = package::WritePackage(folder, m, out);
  if (!s.ok()) {
    inv.err << "hakit module package: " << s.message() << "\n";
    return kExitFailed;
  }
  inv.out << "wrote " << out << ": module " << name << " " << version << ", " << checked->files
          << " file(s)\n";
  if (!checked->readiness.empty()) {
    PrintReadiness(inv, folder.string(), checked->readiness);
  }
  return kExitOk;
}

int Install(Invocation& inv) {
  po::options_description desc("options");
  std::string file, name;
  desc.add_options()("package", po::value(&file)->required(), "the .safe package")(
      "module,m", po::value(&name), "install under this name (default: the package's)");
  po::positional_options_description pos;
  pos.add("package", 1);
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module install", "FILE.safe [-m NAME]", desc, pos, &vm)) {
    return *rc;
  }
  package::InstallOptions o;
  o.name = name;
  o.module_state = DaemonModuleState(inv.layout);
  auto r = package::InstallPackage(file, inv.layout, o);
  if (!r.ok()) {
    inv.err << "hakit module install: " << r.status().message() << "\n";
    return kExitFailed;
  }
  for (const auto& w : r->warnings) inv.err << "warning: " << w << "\n";
  EnsureSafekitAlias(inv);
  inv.out << "installed " << r->Summary() << " in " << inv.layout.ModuleDir(r->module).string()
          << "\n";
  if (!r->readiness.empty()) PrintReadiness(inv, "module " + r->module, r->readiness);
  return TellDaemon(inv, r->module, "it loads the module when it starts");
}

int Uninstall(Invocation& inv) {
  po::options_description desc("options");
  std::string name;
  desc.add_options()("module,m", po::value(&name)->required(), "the module to remove");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module uninstall", "-m NAME", desc, {}, &vm)) return *rc;
  Status s = package::UninstallModule(inv.layout, name, DaemonModuleState(inv.layout));
  if (!s.ok()) {
    inv.err << "hakit module uninstall: " << s.message() << "\n";
    return kExitFailed;
  }
  inv.out << "uninstalled " << name << " (its logs and " << inv.layout.ModuleVar(name).string()
          << " stay)\n";
  return TellDaemon(inv, name, "nothing else to do");
}

// After editing an installed module by hand: hakitd takes it as it is now.
int Reload(Invocation& inv) {
  po::options_description desc("options");
  std::string name;
  desc.add_options()("module,m", po::value(&name)->required(), "the module to load again");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module reload", "-m NAME", desc, {}, &vm)) return *rc;
  return TellDaemon(inv, name, "it loads the module when it starts");
}

// Short form of the configuration hash, as `hakit state` shows it.
Result<std::string> LocalConfigHash(const Layout& layout, const std::string& module) {
  auto h = daemon::HashModuleConfig(layout, module);
  if (!h.ok()) return h.status();
  return cluster::HexEncode(*h).substr(0, 16);
}

int Deploy(Invocation& inv) {
  po::options_description desc("options");
  std::string name, peer;
  int timeout_s = 120;
  desc.add_options()("module,m", po::value(&name)->required(), "the installed module to send")(
      "peer", po::value(&peer), "the node to send it to (default: hakitd's peer)")(
      "timeout", po::value(&timeout_s), "seconds to wait for the peer to install it (default 120)");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module deploy", "-m NAME [--peer NODE]", desc, {}, &vm))
    return *rc;
  auto fail = [&](const std::string& m) {
    inv.err << "hakit module deploy: " << m << "\n";
    return kExitFailed;
  };
  std::error_code ec;
  if (!fs::is_directory(inv.layout.ModuleDir(name), ec)) {
    return fail("no module " + name + " installed in " + inv.layout.ModulesDir().string());
  }
  auto cluster = config::ParseClusterConfig(inv.layout.ClusterXml().string());
  if (!cluster.ok()) return fail(cluster.status().message());
  if (peer.empty()) {
    auto r = control::SendRequest(inv.layout.ControlSocket(), {"state", "", {}}, 10s);
    if (!r.ok() || r->exit_code != 0) {
      return fail("cannot ask hakitd which node is the peer (" +
                  (r.ok() ? r->error : r.status().message()) + "); give --peer NODE");
    }
    peer = r->data.value("peer", "");
  }
  auto key = cluster::LoadClusterKey(inv.layout.ClusterKey());
  if (!key.ok()) return fail(key.status().message());

  // The package is made from what is installed here, so both nodes end up
  // with the same files.
  fs::path spool = inv.layout.root() / ".install" / ("deploy-out-" + std::to_string(::getpid()));
  fs::create_directories(spool, ec);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(p, ignored);
    }
  } cleanup{spool};
  auto existing = package::ReadManifest(inv.layout.ModuleDir(name));
  package::Manifest m{name, existing.ok() ? existing->version : "1", sdk::kAbiVersion, {}};
  fs::path file = spool / (name + ".safe");
  package::Manifest sent;
  if (Status s = package::WritePackage(inv.layout.ModuleDir(name), m, file, &sent); !s.ok()) {
    return fail(s.message());
  }
  package::DeployRequest req;
  req.peer_addresses = package::NodeAddresses(*cluster, peer);
  if (req.peer_addresses.empty()) {
    return fail("no address of node '" + peer + "' in " + inv.layout.ClusterXml().string());
  }
  req.port = static_cast<std::uint16_t>(cluster->port + package::kDeployPortOffset);
  req.key = *key;
  req.package = file;
  req.module = name;
  req.install_timeout = std::chrono::seconds(timeout_s);
  auto r = package::SendPackage(req);
  if (!r.ok()) return fail("to " + peer + ": " + r.status().message());
  inv.out << peer << ": " << r->message << "\n";
  auto local = LocalConfigHash(inv.layout, name);
  if (!local.ok()) return fail(local.status().message());
  if (*local != r->config_hash) {
    return fail("module " + name + " differs after deployment: configuration hash " + *local +
                " here, " + r->config_hash + " on " + peer);
  }
  inv.out << "module " << name << ": same configuration on both nodes (hash " << *local << ")\n";
  if (!existing.ok()) {
    // A module installed without a manifest (SafeKit package, copied by
    // hand) gets the one the peer now holds, so both list the same version.
    fs::path tmp = spool / package::kManifestName;
    std::ofstream(tmp) << package::FormatManifest(sent);
    fs::rename(tmp, inv.layout.ModuleDir(name) / package::kManifestName, ec);
    if (ec) inv.err << "warning: cannot write the manifest here: " << ec.message() << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> ModuleCommands() {
  return {
      {"module check", "check a module folder, userconfig.xml or .safe package", Check},
      {"module list", "list the modules installed on this node, with their versions", List},
      {"module package", "pack a module folder into a .safe package", Package},
      {"module install", "check and install a .safe package (atomically)", Install},
      {"module uninstall", "remove a stopped module", Uninstall},
      {"module reload", "make hakitd load a stopped module again (after editing it)", Reload},
      {"module deploy", "send an installed module to the peer node and install it there", Deploy},
  };
}

}  // namespace hakit::cli
