// Where a node keeps its files under its state root (--root DIR or
// HAKIT_ROOT; default /var/lib/hakit). Several nodes can share one machine by
// giving each its own root. Every component asks this struct for paths
// rather than building them itself.
#pragma once

#include <filesystem>
#include <string>

namespace hakit {

class Layout {
 public:
  // The root from --root, else $HAKIT_ROOT, else /var/lib/hakit.
  static std::filesystem::path DefaultRoot();

  explicit Layout(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }

  // ROOT/conf/cluster.xml: nodes and their addresses per network.
  std::filesystem::path ClusterXml() const { return root_ / "conf" / "cluster.xml"; }
  // ROOT/conf/cluster.key: the shared key heartbeats are authenticated with.
  std::filesystem::path ClusterKey() const { return root_ / "conf" / "cluster.key"; }
  // ROOT/modules: one folder per installed module.
  std::filesystem::path ModulesDir() const { return root_ / "modules"; }
  std::filesystem::path ModuleDir(const std::string& m) const { return ModulesDir() / m; }
  std::filesystem::path UserConfig(const std::string& m) const {
    return ModuleDir(m) / "conf" / "userconfig.xml";
  }
  std::filesystem::path ModuleBin(const std::string& m) const { return ModuleDir(m) / "bin"; }
  std::filesystem::path ModuleConf(const std::string& m) const { return ModuleDir(m) / "conf"; }
  std::filesystem::path ModuleLib(const std::string& m) const { return ModuleDir(m) / "lib"; }
  // ROOT/var (SAFEVAR): runtime state.
  std::filesystem::path VarDir() const { return root_ / "var"; }
  // ROOT/var/modules/NAME (SAFEUSERVAR): a module's runtime state.
  std::filesystem::path ModuleVar(const std::string& m) const { return VarDir() / "modules" / m; }
  // ROOT/var/history.db: this node's event history (SQLite).
  std::filesystem::path HistoryDb() const { return VarDir() / "history.db"; }
  // ROOT/var/control.sock: the daemon's local control socket (root only).
  std::filesystem::path ControlSocket() const { return VarDir() / "control.sock"; }
  // ROOT/var/hakitd.pid
  std::filesystem::path PidFile() const { return VarDir() / "hakitd.pid"; }
  // ROOT/log: hakitd.log and one folder per module.
  std::filesystem::path LogDir() const { return root_ / "log"; }
  std::filesystem::path DaemonLog() const { return LogDir() / "hakitd.log"; }
  std::filesystem::path ModuleLogDir(const std::string& m) const { return LogDir() / m; }
  // The module log (hakit's own messages and printi/printw/printe).
  std::filesystem::path ModuleLog(const std::string& m) const {
    return ModuleLogDir(m) / "module.log";
  }
  // The user log: scripts' stdout and stderr.
  std::filesystem::path UserLog(const std::string& m) const {
    return ModuleLogDir(m) / "userlog.log";
  }
  // SAFE: holds `safekit`, an alias of the hakit CLI, for SafeKit scripts.
  std::filesystem::path SafeDir() const { return root_; }
  // SAFEBIN: helper programs offered to scripts.
  std::filesystem::path SafeBinDir() const { return root_ / "bin"; }

 private:
  std::filesystem::path root_;
};

}  // namespace hakit
