#include "hakit/testbed/testbed.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "internal.h"

namespace hakit::testbed {

using sdk::Result;
using sdk::Status;

namespace {

constexpr const char* kClient = "client";
constexpr const char* kWitness = "witness";
constexpr const char* kHub = "hub";
constexpr int kMaxNodes = 30;  // keeps node addresses below the client's .50
constexpr int kMaxVip = 20;

std::string SearchPath() {
  const char* path = getenv("PATH");
  return path != nullptr && *path != '\0' ? path : internal::kDefaultPath;
}

// Runs `ip args...` in the caller's namespace (args name the target with -n).
Status RunIp(const std::vector<std::string>& args) {
  internal::ChildSpec spec;
  spec.argv.push_back("ip");
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env["PATH"] = SearchPath();
  spec.env["LC_ALL"] = "C";  // error text we pass on stays in one language
  Result<CommandOutput> out = internal::RunCaptured(spec, std::chrono::seconds(10));
  if (!out.ok()) return out.status();
  if (out->status.exited() && out->status.code == 0) return Status::Ok();
  std::string text = out->output;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return Status::Failed("'" + internal::JoinArgv(spec.argv) + "' " + out->status.ToString() +
                        (text.empty() ? "" : ": " + text));
}

bool ValidName(std::string_view name, size_t max, bool allow_upper_dash) {
  if (name.empty() || name.size() > max) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (allow_upper_dash && ((c >= 'A' && c <= 'Z') || c == '_' || c == '-'));
    if (!ok) return false;
  }
  return true;
}

Status ValidatePrefix(std::string_view prefix) {
  if (!ValidName(prefix, 8, false)) {
    return Status::InvalidArgument("testbed prefix '" + std::string(prefix) +
                                   "' must be 1-8 characters [a-z0-9]");
  }
  return Status::Ok();
}

Status ValidateOptions(const TestbedOptions& o) {
  Status s = ValidatePrefix(o.prefix);
  if (!s.ok()) return s;
  if (o.lans != 1 && o.lans != 2) {
    return Status::InvalidArgument("a testbed has 1 or 2 lans, not " + std::to_string(o.lans));
  }
  if (o.nodes.empty() || o.nodes.size() > size_t(kMaxNodes)) {
    return Status::InvalidArgument("a testbed has 1 to " + std::to_string(kMaxNodes) +
                                   " nodes, not " + std::to_string(o.nodes.size()));
  }
  std::set<std::string> seen;
  for (const std::string& n : o.nodes) {
    if (!ValidName(n, 12, true)) {
      return Status::InvalidArgument("node name '" + n + "' must be 1-12 characters [A-Za-z0-9_-]");
    }
    if (n == kClient || n == kWitness || n == kHub) {
      return Status::InvalidArgument("node name '" + n + "' is reserved");
    }
    if (!seen.insert(n).second) return Status::InvalidArgument("node name '" + n + "' given twice");
  }
  return Status::Ok();
}

// The process group id of `pid` from /proc/<pid>/stat, or -1.
pid_t ProcessGroupOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  char state;
  long ppid, pgrp;
  if (sscanf(line.c_str() + close + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3) return -1;
  return pid_t(pgrp);
}

void Warn(const std::string& message) { fprintf(stderr, "hakit testbed: %s\n", message.c_str()); }

}  // namespace

Status Testbed::CheckPrerequisites() {
  if (geteuid() != 0) {
    return Status::Unsupported("a testbed needs root (network namespaces, bridges, mounts)");
  }
  if (access("/proc/self/ns/net", F_OK) != 0) {
    return Status::Unsupported("this kernel has no network namespaces (/proc/self/ns/net)");
  }
  std::string path = SearchPath();
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    if (end > start && access((path.substr(start, end - start) + "/ip").c_str(), X_OK) == 0) {
      return Status::Ok();
    }
    start = end + 1;
  }
  return Status::NotFound("iproute2's 'ip' is not in PATH (" + path + ")");
}

Status Testbed::CleanupStale(std::string_view prefix) {
  Status s = ValidatePrefix(prefix);
  if (!s.ok()) return s;
  DIR* dir = opendir(internal::kNetnsDir);
  if (dir == nullptr) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IoError(std::string(internal::kNetnsDir) + ": " + strerror(errno));
  }
  std::vector<std::string> stale;
  const std::string start = std::string(prefix) + "-";
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name.compare(0, start.size(), start) != 0) continue;
    // Exactly our scheme, "<prefix>-<pid>-<n>-<role>", so that another
    // tool's names that happen to share the prefix are never taken for ours.
    auto digits_then_dash = [&name](size_t from) -> size_t {
      size_t i = from;
      while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
      return i > from && i < name.size() && name[i] == '-' ? i : std::string::npos;
    };
    size_t pid_end = digits_then_dash(start.size());
    if (pid_end == std::string::npos) continue;
    size_t counter_end = digits_then_dash(pid_end + 1);
    if (counter_end == std::string::npos || counter_end + 1 >= name.size()) continue;
    long pid = strtol(name.c_str() + start.size(), nullptr, 10);
    if (pid <= 0 || pid == getpid()) continue;
    // EPERM still means a process with that pid exists: leave it alone.
    if (kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    stale.push_back(name);
  }
  closedir(dir);

  Status result;
  for (const std::string& name : stale) {
    if (int left = internal::KillAllInNetns({name}); left > 0) {
      result = Status::Failed(std::to_string(left) + " process(es) survive SIGKILL in " + name);
      continue;
    }
    Status del = RunIp({"netns", "del", name});
    if (!del.ok() && result.ok()) result = del;
  }
  return result;
}

Testbed::Testbed(TestbedOptions options, std::string tag)
    : options_(std::move(options)), tag_(std::move(tag)) {}

Result<std::unique_ptr<Testbed>> Testbed::Create(const TestbedOptions& options) {
  Status s = ValidateOptions(options);
  if (!s.ok()) return s;
  // Without root, `ip netns add` would fail with a less helpful message.
  if (!(s = CheckPrerequisites()).ok()) return s;
  if (options.cleanup_stale) {
    // A leftover that cannot be removed does not stop this testbed: its
    // names cannot collide with ours (another pid).
    if (Status c = CleanupStale(options.prefix); !c.ok())
      Warn("cleaning up stale testbeds: " + c.ToString());
  }
  static std::atomic<int> counter{0};
  std::string tag =
      options.prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  std::unique_ptr<Testbed> testbed(new Testbed(options, tag));
  s = testbed->Build();
  // On error the destructor removes what Build() created.
  if (!s.ok()) return s.WithContext("creating testbed " + tag);
  return Result<std::unique_ptr<Testbed>>(std::move(testbed));
}

Status Testbed::Build() {
  for (size_t i = 0; i < options_.nodes.size(); ++i) {
    hosts_.push_back(
        {options_.nodes[i], tag_ + "-" + options_.nodes[i], int(i) + 1, options_.lans});
  }
  if (options_.client) hosts_.push_back({kClient, tag_ + "-" + kClient, 0, options_.lans});
  if (options_.witness) hosts_.push_back({kWitness, tag_ + "-" + kWitness, 0, 1});

  const std::string hub = HubNamespace();
  auto add_netns = [this](const std::string& name) -> Status {
    Status s = RunIp({"netns", "add", name});
    if (!s.ok()) return s;
    created_.push_back(name);
    // No IPv6: its autoconfiguration would send router solicitations and
    // multicast reports; test traffic stays on 198.18.0.0/24 alone.
    s = RunIp({"netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1"});
    if (!s.ok()) return s;
    return RunIp({"-n", name, "link", "set", "lo", "up"});
  };
  Status s = add_netns(hub);
  if (!s.ok()) return s;
  for (int lan = 0; lan < options_.lans; ++lan) {
    // STP stays off (the default): a port forwards as soon as it is up, so a
    // restored link works at once, as a plain switch port would.
    const std::string bridge = "br" + std::to_string(lan);
    if (!(s = RunIp({"-n", hub, "link", "add", bridge, "type", "bridge"})).ok()) return s;
    if (!(s = RunIp({"-n", hub, "link", "set", bridge, "up"})).ok()) return s;
  }
  for (const Host& host : hosts_) {
    if (!(s = add_netns(host.netns)).ok()) return s;
    for (int lan = 0; lan < host.lans; ++lan) {
      const std::string port = HubPort(host.name, lan);
      const std::string ifname = LanInterface(lan);
      // Created in the hub with its peer born inside the host namespace:
      // nothing ever appears in the caller's namespace, and the host side can
      // have the same name in every namespace.
      if (!(s = RunIp({"-n", hub, "link", "add", port, "type", "veth", "peer", "name", ifname,
                       "netns", host.netns}))
               .ok()) {
        return s;
      }
      if (!(s = RunIp({"-n", hub, "link", "set", port, "master", "br" + std::to_string(lan), "up"}))
               .ok()) {
        return s;
      }
      const std::string cidr = Address(host.name, lan) + "/" + std::to_string(PrefixLength());
      if (!(s = RunIp({"-n", host.netns, "addr", "add", cidr, "brd", "+", "dev", ifname})).ok()) {
        return s;
      }
      if (!(s = RunIp({"-n", host.netns, "link", "set", ifname, "up"})).ok()) return s;
    }
  }
  return Status::Ok();
}

Testbed::~Testbed() {
  KillSpawned();
  if (int left = internal::KillAllInNetns(created_); left > 0) {
    Warn(std::to_string(left) + " process(es) still inside " + tag_ + " namespaces after SIGKILL");
  }
  // Hosts before the hub: the reverse of creation.
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    if (Status s = RunIp({"netns", "del", *it}); !s.ok()) Warn("cleanup: " + s.ToString());
  }
}

// ---- Topology --------------------------------------------------------------

const Testbed::Host* Testbed::FindHost(std::string_view name) const {
  for (const Host& h : hosts_) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

std::string Testbed::NodeNamespace(std::string_view node) const {
  const Host* h = FindHost(node);
  return h != nullptr && h->index > 0 ? h->netns : std::string();
}

std::string Testbed::ClientNamespace() const {
  const Host* h = FindHost(kClient);
  return h != nullptr ? h->netns : std::string();
}

std::string Testbed::WitnessNamespace() const {
  const Host* h = FindHost(kWitness);
  return h != nullptr ? h->netns : std::string();
}

std::string Testbed::HubNamespace() const { return tag_ + "-" + kHub; }

std::vector<std::string> Testbed::Namespaces() const {
  std::vector<std::string> names;
  for (const Host& h : hosts_) names.push_back(h.netns);
  names.push_back(HubNamespace());
  return names;
}

std::string Testbed::Address(std::string_view host, int lan) const {
  const Host* h = FindHost(host);
  if (h == nullptr || lan < 0 || lan >= h->lans) return "";
  int base = lan == 0 ? 0 : 128;
  int last;
  if (h->index > 0) {
    last = base + 10 + h->index;
  } else if (h->name == kClient) {
    last = base + 50;
  } else {
    last = base + 60;
  }
  return "198.18.0." + std::to_string(last);
}

std::string Testbed::VipAddress(int i) {
  if (i < 0 || i > kMaxVip) return "";
  return "198.18.0." + std::to_string(100 + i);
}

std::string Testbed::LanSubnet(int lan) {
  if (lan == 0) return "198.18.0.0/25";
  if (lan == 1) return "198.18.0.128/25";
  return "";
}

std::string Testbed::LanInterface(int lan) { return "lan" + std::to_string(lan); }

std::string Testbed::HubPort(std::string_view host, int lan) const {
  const Host* h = FindHost(host);
  if (h == nullptr || lan < 0 || lan >= h->lans) return "";
  return h->name + "-l" + std::to_string(lan);
}

// ---- Faults ----------------------------------------------------------------

Result<std::string> Testbed::PortOf(std::string_view host, int lan) const {
  const Host* h = FindHost(host);
  if (h == nullptr)
    return Status::InvalidArgument("no host '" + std::string(host) + "' in " + tag_);
  if (lan < 0 || lan >= h->lans) {
    return Status::InvalidArgument("host '" + h->name + "' is not on lan" + std::to_string(lan));
  }
  return HubPort(host, lan);
}

Status Testbed::CutLink(std::string_view host, int lan, CutMode mode) {
  Result<std::string> port = PortOf(host, lan);
  if (!port.ok()) return port.status();
  if (mode == CutMode::kLinkDown)
    return RunIp({"-n", HubNamespace(), "link", "set", *port, "down"});
  // Out of the bridge but still up: nothing forwards to or from it, and the
  // host keeps its carrier.
  return RunIp({"-n", HubNamespace(), "link", "set", *port, "nomaster"});
}

Status Testbed::RestoreLink(std::string_view host, int lan) {
  Result<std::string> port = PortOf(host, lan);
  if (!port.ok()) return port.status();
  // Undoes both modes at once, so the caller need not remember which it used.
  return RunIp(
      {"-n", HubNamespace(), "link", "set", *port, "master", "br" + std::to_string(lan), "up"});
}

Status Testbed::CutNode(std::string_view host, CutMode mode) {
  const Host* h = FindHost(host);
  if (h == nullptr)
    return Status::InvalidArgument("no host '" + std::string(host) + "' in " + tag_);
  for (int lan = 0; lan < h->lans; ++lan) {
    if (Status s = CutLink(host, lan, mode); !s.ok()) return s;
  }
  return Status::Ok();
}

Status Testbed::RestoreNode(std::string_view host) {
  const Host* h = FindHost(host);
  if (h == nullptr)
    return Status::InvalidArgument("no host '" + std::string(host) + "' in " + tag_);
  for (int lan = 0; lan < h->lans; ++lan) {
    if (Status s = RestoreLink(host, lan); !s.ok()) return s;
  }
  return Status::Ok();
}

// ---- Processes -------------------------------------------------------------

Result<pid_t> Testbed::Spawn(const SpawnOptions& options) {
  if (Status s = internal::CheckNetnsName(options.netns); !s.ok()) {
    return s.WithContext("starting '" + internal::JoinArgv(options.argv) + "'");
  }
  internal::ChildSpec spec;
  spec.netns = options.netns;
  spec.argv = options.argv;
  spec.env = options.env;
  spec.private_mounts = true;
  spec.bind_mounts = options.bind_mounts;
  spec.working_dir = options.working_dir;

  int fds[2] = {-1, -1};
  auto close_fds = [&fds] {
    for (int& fd : fds) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  };
  const std::string* paths[2] = {&options.stdout_path, &options.stderr_path};
  for (int i = 0; i < 2; ++i) {
    if (paths[i]->empty()) continue;
    if (i == 1 && *paths[1] == *paths[0]) break;  // one description, one offset
    fds[i] = open(paths[i]->c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fds[i] < 0) {
      Status s = Status::IoError("starting '" + internal::JoinArgv(options.argv) +
                                 "': " + *paths[i] + ": " + strerror(errno));
      close_fds();
      return s;
    }
  }
  spec.stdout_fd = fds[0];
  spec.stderr_fd =
      !options.stderr_path.empty() && options.stderr_path == options.stdout_path ? fds[0] : fds[1];

  std::lock_guard<std::mutex> lock(mu_);
  Result<pid_t> pid = internal::StartChild(spec);
  close_fds();
  if (pid.ok()) procs_[*pid] = std::nullopt;
  return pid;
}

Status Testbed::Kill(pid_t pid, int signal) {
  // Under the lock so that WaitExit cannot reap the pid (and free it for
  // reuse) between the check and kill().
  std::lock_guard<std::mutex> lock(mu_);
  auto it = procs_.find(pid);
  if (it == procs_.end()) {
    return Status::InvalidArgument("pid " + std::to_string(pid) + " was not spawned by " + tag_);
  }
  if (it->second) {
    return Status::NotFound("process " + std::to_string(pid) + " already " +
                            it->second->ToString());
  }
  if (kill(pid, signal) < 0) {
    return Status::IoError("kill " + std::to_string(pid) + ": " + strerror(errno));
  }
  return Status::Ok();
}

Status Testbed::KillGroup(pid_t pid, int signal) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = procs_.find(pid);
  if (it == procs_.end()) {
    return Status::InvalidArgument("pid " + std::to_string(pid) + " was not spawned by " + tag_);
  }
  if (!it->second) {
    // The unreaped leader holds the group id: it names our group alone.
    if (kill(-pid, signal) < 0 && errno != ESRCH) {
      return Status::IoError("kill group " + std::to_string(pid) + ": " + strerror(errno));
    }
    return Status::Ok();
  }
  // Leader reaped: the id may be reused by now, so signal only members that
  // are provably ours, i.e. inside our namespaces.
  std::set<ino_t> inodes;
  for (const std::string& name : created_) {
    if (ino_t ino = internal::NetnsInode(name); ino != 0) inodes.insert(ino);
  }
  for (pid_t member : internal::PidsInNetns(inodes)) {
    if (ProcessGroupOf(member) == pid) kill(member, signal);
  }
  return Status::Ok();
}

std::optional<ExitStatus> Testbed::WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(2);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = procs_.find(pid);
      if (it == procs_.end()) return std::nullopt;
      if (it->second) return it->second;
      int ws;
      pid_t r = waitpid(pid, &ws, WNOHANG);
      if (r == pid) {
        it->second = internal::FromWaitStatus(ws);
        return it->second;
      }
      if (r < 0 && errno != EINTR) return std::nullopt;  // reaped behind our back
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

Status Testbed::KillAll(std::string_view host) {
  const Host* h = FindHost(host);
  if (h == nullptr) return Status::NotFound("no host " + std::string(host) + " in this testbed");
  if (int left = internal::KillAllInNetns({h->netns}); left > 0) {
    return Status::Failed(std::to_string(left) + " process(es) of " + h->netns +
                          " survived SIGKILL");
  }
  return Status::Ok();
}

void Testbed::KillSpawned() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<pid_t> running;
  for (auto& [pid, status] : procs_) {
    if (status) continue;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);  // in case it left its group (setpgid)
    running.push_back(pid);
  }
  // SIGKILL cannot be ignored, but a process stuck in the kernel (a dead
  // FUSE server's client, say) can take a while: wait a bounded time.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!running.empty()) {
    for (auto it = running.begin(); it != running.end();) {
      int ws;
      pid_t r = waitpid(*it, &ws, WNOHANG);
      if (r == *it || (r < 0 && errno == ECHILD)) {
        if (r == *it) procs_[*it] = internal::FromWaitStatus(ws);
        it = running.erase(it);
      } else {
        ++it;
      }
    }
    if (running.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      Warn(std::to_string(running.size()) + " spawned process(es) of " + tag_ +
           " did not die within 5 s of SIGKILL");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<CommandOutput> Testbed::RunIn(const std::string& netns, const std::vector<std::string>& argv,
                                     std::chrono::milliseconds timeout) {
  if (Status s = internal::CheckNetnsName(netns); !s.ok()) {
    return s.WithContext("running '" + internal::JoinArgv(argv) + "'");
  }
  internal::ChildSpec spec;
  spec.netns = netns;
  spec.argv = argv;
  spec.env["PATH"] = SearchPath();
  spec.private_mounts = true;  // for a /sys that shows the namespace's interfaces
  return internal::RunCaptured(spec, timeout);
}

}  // namespace hakit::testbed
