#include "hakit/rig/cluster_rig.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "hakit/cluster/heartbeat_key.h"
#include "hakit/testbed/net_probe.h"

namespace hakit::rig {

namespace fs = std::filesystem;
using cluster::State;

namespace {

fs::path ExecutableDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : exe.parent_path();
}

Status WriteFile(const fs::path& path, const std::string& text, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
    if (!out) return Status::IoError("cannot write " + path.string());
  }
  fs::permissions(path, perms, ec);
  return Status::Ok();
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The demo module's scripts. Each notes its call (arguments included) so
// that tests can check what ran, and logs through "$SAFE/safekit" as SafeKit
// modules do.
constexpr const char* kNoteCall =
    "echo \"$(basename \"$0\") $*\" >> \"$SAFEUSERVAR/calls.log\"\n";

std::string StartPrim() {
  return std::string("#!/bin/sh\n# Starts the sample application on the primary.\n") + kNoteCall +
         "mkdir -p \"$SAFEUSERVAR\"\n"
         "\"$APP\" --port \"$APP_PORT\" --name \"$SAFENODE\" >\"$SAFEUSERVAR/app.out\" 2>&1 &\n"
         "echo $! > \"$SAFEUSERVAR/app.pid\"\n"
         "\"$SAFE/safekit\" printi \"start_prim: hakit-demo-app started on $SAFENODE\"\n";
}

std::string StopPrim() {
  return std::string(
             "#!/bin/sh\n# Stops the sample application; with force, kills it.\n") +
         kNoteCall +
         "pidfile=\"$SAFEUSERVAR/app.pid\"\n"
         "[ -f \"$pidfile\" ] || exit 0\n"
         "pid=$(cat \"$pidfile\")\n"
         "# A zombie waiting for its reaper has stopped serving: not alive.\n"
         "alive() { [ -e /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; }\n"
         "if [ \"$1\" = force ]; then kill -9 \"$pid\" 2>/dev/null; rm -f \"$pidfile\"; exit 0; fi\n"
         "kill \"$pid\" 2>/dev/null\n"
         "i=0\n"
         "while alive \"$pid\" && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done\n"
         "if alive \"$pid\"; then \"$SAFE/safekit\" printe \"stop_prim: still running\"; exit 1; fi\n"
         "rm -f \"$pidfile\"\n";
}

std::string NoteOnly(const std::string& what) {
  return "#!/bin/sh\n# " + what + "\n" + kNoteCall;
}

}  // namespace

ClusterRig::ClusterRig(RigOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<ClusterRig>> ClusterRig::Create(const RigOptions& options) {
  std::unique_ptr<ClusterRig> rig(new ClusterRig(options));
  if (Status s = rig->Build(); !s.ok()) return s;
  return rig;
}

Status ClusterRig::Build() {
  if (options_.bin_dir.empty()) options_.bin_dir = ExecutableDir();
  // For a post-mortem of a failed test: the roots (logs, history) stay.
  if (std::getenv("HAKIT_RIG_KEEP") != nullptr) options_.keep_work_dir = true;
  for (const char* exe : {"hakitd", "hakit", "hakit-demo-app"}) {
    if (!fs::exists(options_.bin_dir / exe)) {
      return Status::NotFound(std::string(exe) + " not found in " + options_.bin_dir.string() +
                              " (build the project first)");
    }
  }
  testbed::TestbedOptions t;
  t.nodes = nodes();
  t.lans = options_.lans;
  t.client = true;
  t.witness = options_.witness;
  auto bed = testbed::Testbed::Create(t);
  if (!bed.ok()) return bed.status();
  bed_ = std::move(*bed);
  work_dir_ = options_.work_dir.empty() ? fs::path("/tmp") / ("hakit-" + bed_->tag())
                                        : options_.work_dir;
  std::error_code ec;
  fs::remove_all(work_dir_, ec);
  fs::create_directories(work_dir_, ec);
  if (ec) return Status::IoError("cannot create " + work_dir_.string() + ": " + ec.message());
  // Both nodes hold the same key: generated once, copied.
  fs::path key = work_dir_ / "cluster.key";
  if (Status s = cluster::GenerateClusterKey(key); !s.ok()) return s;
  for (const auto& node : nodes()) {
    if (Status s = WriteNode(node); !s.ok()) return s;
    fs::copy_file(key, LayoutOf(node).ClusterKey(), fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::IoError("cannot copy the cluster key: " + ec.message());
  }
  return Status::Ok();
}

std::string ClusterRig::DefaultUserConfig() const {
  std::ostringstream x;
  x << "<!DOCTYPE safe>\n<safe>\n"
    << "  <service mode=\"mirror\" defaultprim=\"" << options_.defaultprim
    << "\" maxloop=\"3\" loop_interval=\"24\" failover=\"" << (options_.failover ? "on" : "off")
    << "\">\n"
    << "    <heart pulse=\"" << options_.pulse.count() << "ms\" timeout=\""
    << options_.timeout.count() << "ms\">\n";
  for (int lan = 0; lan < options_.lans; ++lan) {
    x << "      <heartbeat name=\"" << (lan == 0 ? "default" : "lan" + std::to_string(lan))
      << "\"/>\n";
  }
  x << "    </heart>\n"
    << "    <vip>\n      <interface_list>\n        <interface check=\"on\" arpreroute=\"on\">\n"
    << "          <real_interface>\n"
    << "            <virtual_addr addr=\"" << Vip() << "\" where=\"one_side_alias\"/>\n"
    << "          </real_interface>\n        </interface>\n      </interface_list>\n    </vip>\n"
    << "    <user nicestoptimeout=\"10\" forcestoptimeout=\"10\" logging=\"userlog\">\n";
  std::map<std::string, std::string> vars = options_.vars;
  if (options_.library.empty()) {
    vars = {{"APP", (options_.bin_dir / "hakit-demo-app").string()},
            {"APP_PORT", std::to_string(options_.app_port)}};
  }
  for (const auto& [name, value] : vars) {
    std::string escaped;
    for (char ch : value) {
      escaped += ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '"' ? "&quot;" : std::string(1, ch);
    }
    x << "      <var name=\"" << name << "\" value=\"" << escaped << "\"/>\n";
  }
  x << "    </user>\n";
  if (options_.replicated) {
    x << "    <rfs async=\"" << options_.replication_async << "\"";
    if (options_.zone_size != 0) x << " ruzone_blocksize=\"" << options_.zone_size << "\"";
    x << ">\n";
    if (options_.replicated_dir_in_userconfig) {
      x << "      <replicated dir=\"" << ReplicatedDir() << "\"/>\n";
    }
    x << "    </rfs>\n";
  }
  x << "  </service>\n</safe>\n";
  return x.str();
}

std::string ClusterRig::ReplicatedDir() const {
  // Per testbed (its tag holds our pid and a counter): concurrent rigs never
  // share it. Only an empty mount point in the root namespace.
  return "/run/hakit-rig/" + bed_->tag() + "/data";
}

std::optional<pid_t> ClusterRig::DaemonPid(const std::string& node) const {
  auto it = daemons_.find(node);
  if (it == daemons_.end()) return std::nullopt;
  return it->second;
}

Result<testbed::CommandOutput> ClusterRig::RunInDaemon(const std::string& node,
                                                       const std::vector<std::string>& argv,
                                                       std::chrono::milliseconds timeout) {
  auto pid = DaemonPid(node);
  if (!pid) return Status::NotFound("no hakitd runs on " + node);
  std::vector<std::string> cmd = {"nsenter", "--target", std::to_string(*pid), "--mount",
                                  "--net", "--"};
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  return bed_->RunIn(bed_->NodeNamespace(node), cmd, timeout);
}

Status ClusterRig::WriteNode(const std::string& node) {
  Layout l = LayoutOf(node);
  if (options_.replicated) {
    std::error_code ec;
    fs::create_directories(DataDir(node), ec);
    if (ec) return Status::IoError("cannot create " + DataDir(node).string() + ": " + ec.message());
  }
  std::ostringstream c;
  c << "<cluster port=\"" << options_.cluster_port << "\">\n  <lans>\n";
  for (int lan = 0; lan < options_.lans; ++lan) {
    c << "    <lan name=\"" << (lan == 0 ? "default" : "lan" + std::to_string(lan)) << "\">\n";
    for (const auto& n : nodes()) {
      c << "      <node name=\"" << n << "\" addr=\"" << bed_->Address(n, lan) << "\"/>\n";
    }
    c << "    </lan>\n";
  }
  c << "  </lans>\n</cluster>\n";
  const auto rw = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                  fs::perms::others_read;
  if (Status s = WriteFile(l.ClusterXml(), c.str(), rw); !s.ok()) return s;
  if (!options_.write_module) return Status::Ok();
  return WriteModuleFolder(l.ModuleDir(options_.module));
}

Status ClusterRig::WriteModuleFolder(const fs::path& dir) const {
  const auto rw = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                  fs::perms::others_read;
  const auto rwx = rw | fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec;
  if (Status s = WriteFile(dir / "conf" / "userconfig.xml", DefaultUserConfig(), rw); !s.ok()) {
    return s;
  }
  const fs::path library =
      !options_.library.empty() ? options_.library : options_.library_module;
  if (!library.empty()) {
    const std::string& m = options_.module;
    std::error_code ec;
    fs::create_directories(dir / "lib", ec);
    fs::copy_file(library, dir / "lib" / (m + ".so"), fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return Status::IoError("cannot install " + library.string() + " in " + dir.string() + ": " +
                             ec.message());
    }
    return Status::Ok();
  }
  std::map<std::string, std::string> scripts = {
      {"start_prim", StartPrim()},
      {"stop_prim", StopPrim()},
      {"start_second", NoteOnly("Nothing runs on the secondary of the demo.")},
      {"stop_second", NoteOnly("Nothing runs on the secondary of the demo.")},
  };
  for (const auto& [name, text] : scripts) {
    if (Status s = WriteFile(dir / "bin" / name, text, rwx); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ClusterRig::WriteUserConfig(const std::string& node, const std::string& text) {
  return WriteFile(LayoutOf(node).UserConfig(options_.module), text,
                   fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                       fs::perms::others_read);
}

Status ClusterRig::SetUserVar(const std::string& name, const std::string& value) {
  options_.vars[name] = value;
  for (const auto& node : nodes()) {
    if (Status s = WriteUserConfig(node, DefaultUserConfig()); !s.ok()) return s;
  }
  return Status::Ok();
}

Status ClusterRig::WriteScript(const std::string& node, const std::string& name,
                               const std::string& text) {
  return WriteFile(LayoutOf(node).ModuleBin(options_.module) / name, text,
                   fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                       fs::perms::others_read | fs::perms::others_exec);
}

Status ClusterRig::RegenerateKey(const std::string& node) {
  return cluster::GenerateClusterKey(LayoutOf(node).ClusterKey(), /*overwrite=*/true);
}

ClusterRig::~ClusterRig() {
  for (const auto& [node, pid] : daemons_) {
    if (bed_) bed_->KillGroup(pid, SIGKILL);
  }
  for (const auto& node : nodes()) {
    if (auto pid = AppPid(node)) ::kill(*pid, SIGKILL);
  }
  std::string mount_point = options_.replicated && bed_ ? ReplicatedDir() : std::string();
  bed_.reset();  // kills what is left in the namespaces, deletes them
  if (!mount_point.empty()) {
    // The mounts lived in the daemons' namespaces; only the empty mount
    // point (and its per-rig parent) remain here.
    std::error_code ec;
    fs::remove(mount_point, ec);
    fs::remove(fs::path(mount_point).parent_path(), ec);
  }
  if (!options_.keep_work_dir && !work_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(work_dir_, ec);
  }
}

Status ClusterRig::StartDaemon(const std::string& node, std::chrono::milliseconds wait) {
  if (DaemonRunning(node)) return Status::Failed("hakitd already runs on " + node);
  Layout l = LayoutOf(node);
  std::error_code ec;
  fs::create_directories(l.LogDir(), ec);
  testbed::SpawnOptions o;
  o.netns = bed_->NodeNamespace(node);
  o.argv = {(options_.bin_dir / "hakitd").string(), "--root", l.root().string(), "--node", node};
  o.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}};
  o.stdout_path = (l.LogDir() / "hakitd.out").string();
  o.stderr_path = (l.LogDir() / "hakitd.out").string();
  if (options_.replicated) o.bind_mounts.push_back({DataDir(node).string(), ReplicatedDir()});
  auto pid = bed_->Spawn(o);
  if (!pid.ok()) return pid.status();
  daemons_[node] = *pid;
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto st = bed_->WaitExit(*pid, 0ms)) {
      daemons_.erase(node);
      return Status::Failed("hakitd on " + node + " exited (" + st->ToString() +
                            "): " + ReadFile(l.LogDir() / "hakitd.out"));
    }
    auto r = control::SendRequest(l.ControlSocket(), {"state", "", {}}, 1s);
    if (r.ok()) return Status::Ok();
    std::this_thread::sleep_for(20ms);
  }
  return Status::Timeout("hakitd on " + node + " did not answer within " +
                         std::to_string(wait.count()) + " ms");
}

bool ClusterRig::DaemonRunning(const std::string& node) {
  auto it = daemons_.find(node);
  if (it == daemons_.end()) return false;
  if (bed_->WaitExit(it->second, 0ms)) {
    daemons_.erase(it);
    return false;
  }
  return true;
}

Status ClusterRig::StopDaemon(const std::string& node, std::chrono::milliseconds wait) {
  auto it = daemons_.find(node);
  if (it == daemons_.end()) return Status::Ok();
  pid_t pid = it->second;
  bed_->Kill(pid, SIGTERM);
  auto st = bed_->WaitExit(pid, wait);
  daemons_.erase(node);
  if (!st) {
    bed_->KillGroup(pid, SIGKILL);
    bed_->WaitExit(pid, 5s);
    return Status::Timeout("hakitd on " + node + " did not stop within " +
                           std::to_string(wait.count()) + " ms after SIGTERM");
  }
  if (!st->exited() || st->code != 0) {
    return Status::Failed("hakitd on " + node + " ended " + st->ToString());
  }
  return Status::Ok();
}

Status ClusterRig::KillDaemon(const std::string& node) {
  auto it = daemons_.find(node);
  if (it == daemons_.end()) return Status::NotFound("no hakitd runs on " + node);
  pid_t pid = it->second;
  // The daemon alone: its group holds hakitd (scripts run in groups of
  // their own, the application was started by one of them).
  Status s = bed_->Kill(pid, SIGKILL);
  bed_->WaitExit(pid, 5s);
  daemons_.erase(it);
  return s;
}

Status ClusterRig::PowerCut(const std::string& node) {
  if (Status s = bed_->CutNode(node); !s.ok()) return s;
  Status first;
  if (daemons_.count(node)) first = KillDaemon(node);
  if (auto pid = AppPid(node)) ::kill(*pid, SIGKILL);
  if (!options_.library.empty()) {
    if (Status s = bed_->KillAll(node); !s.ok() && first.ok()) first = s;
  }
  return first;
}

Status ClusterRig::RestoreNetwork(const std::string& node) {
  // A powered-off node comes back with empty queues. Here the namespace's
  // kernel kept the frames its dead hakitd sent while the links were down
  // (waiting for ARP); flushing the neighbour table drops them, as a reboot
  // would, so that stale heartbeats do not reach the peer.
  bed_->RunIn(bed_->NodeNamespace(node), {"ip", "neigh", "flush", "all"}, 5s);
  return bed_->RestoreNode(node);
}

Result<control::Response> ClusterRig::Command(const std::string& node, const std::string& command,
                                              nlohmann::json args) {
  return control::SendRequest(LayoutOf(node).ControlSocket(),
                              {command, options_.module, std::move(args)}, 30s);
}

Result<nlohmann::json> ClusterRig::ModuleState(const std::string& node) {
  auto r = Command(node, "state");
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Status::Failed(r->error);
  for (const auto& m : r->data.value("modules", nlohmann::json::array())) {
    if (m.value("name", "") == options_.module) return m;
  }
  return Status::NotFound("module " + options_.module + " not loaded on " + node);
}

State ClusterRig::StateOf(const std::string& node) {
  auto m = ModuleState(node);
  if (!m.ok()) return State::kStop;
  return cluster::ParseState(m->value("state", "STOP")).value_or(State::kStop);
}

Status ClusterRig::WaitState(const std::string& node, State state,
                             std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::string last = "no answer";
  do {
    auto m = ModuleState(node);
    if (m.ok()) {
      last = m->value("state", "?") + (m->value("busy", false) ? " (busy)" : "");
      if (m->value("state", "") == cluster::StateName(state) && !m->value("busy", true)) {
        return Status::Ok();
      }
    } else {
      last = m.status().message();
    }
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return Status::Timeout(node + " not " + cluster::StateName(state) + " after " +
                         std::to_string(wait.count()) + " ms (last: " + last + ")");
}

Result<std::string> ClusterRig::WaitPaired(std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  do {
    State a = StateOf("node1"), b = StateOf("node2");
    auto m1 = ModuleState("node1"), m2 = ModuleState("node2");
    bool idle = m1.ok() && m2.ok() && !m1->value("busy", true) && !m2->value("busy", true);
    // Paired means the secondary's copy is complete (it took the primary's
    // data generation), not only that both show their roles.
    auto in_sync = [](const Result<nlohmann::json>& m) {
      return m.ok() && m->contains("details") &&
             m->at("details").value("data", "") == "up_to_date";
    };
    idle = idle && in_sync(m1) && in_sync(m2);
    if (idle && a == State::kPrim && b == State::kSecond) return std::string("node1");
    if (idle && b == State::kPrim && a == State::kSecond) return std::string("node2");
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return Status::Timeout("the nodes did not pair (node1 " +
                         std::string(cluster::StateName(StateOf("node1"))) + ", node2 " +
                         cluster::StateName(StateOf("node2")) + ")");
}

Result<std::string> ClusterRig::ClientRequest(std::chrono::milliseconds timeout) {
  return testbed::TcpRequest(bed_->ClientNamespace(), Vip(), options_.app_port, "", timeout);
}

bool ClusterRig::HasVip(const std::string& node) {
  auto out = bed_->RunIn(bed_->NodeNamespace(node), {"ip", "-4", "-o", "addr", "show"}, 5s);
  return out.ok() && out->output.find(" " + Vip() + "/") != std::string::npos;
}

std::optional<pid_t> ClusterRig::AppPid(const std::string& node) {
  std::ifstream in(LayoutOf(node).ModuleVar(options_.module) / "app.pid");
  pid_t pid = 0;
  if (in >> pid && pid > 0) return pid;
  return std::nullopt;
}

bool ClusterRig::AppRunning(const std::string& node) {
  auto pid = AppPid(node);
  if (!pid) return false;
  std::ifstream status("/proc/" + std::to_string(*pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("State:", 0) == 0 && line.find('Z') != std::string::npos) return false;
  }
  // A zombie or a recycled pid is not our application.
  std::ifstream cmd("/proc/" + std::to_string(*pid) + "/cmdline");
  std::string text;
  std::getline(cmd, text, '\0');
  return text.find("hakit-demo-app") != std::string::npos;
}

Status ClusterRig::KillApp(const std::string& node) {
  if (!AppRunning(node)) return Status::NotFound("the application does not run on " + node);
  if (::kill(*AppPid(node), SIGKILL) != 0) {
    return Status::IoError("kill of the application on " + node + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

std::vector<std::string> ClusterRig::ScriptCalls(const std::string& node) {
  std::ifstream in(LayoutOf(node).ModuleVar(options_.module) / "calls.log");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace hakit::rig
