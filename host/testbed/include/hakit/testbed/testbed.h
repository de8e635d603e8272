// A two-node cluster on one machine: every host (node, client, witness) is a
// network namespace, and each LAN is a Linux bridge in a private "hub"
// namespace, so that a test can pull a cable by acting on the hub alone.
//
//   hub namespace:   br0 (lan0)            br1 (lan1)
//                    |  node1-l0 ...       |  node1-l1 ...   <- hub ports
//   node namespace:  lan0 198.18.0.(10+i)  lan1 198.18.0.(138+i)
//   client:          lan0 198.18.0.50      lan1 198.18.0.178
//   witness:         lan0 198.18.0.60      (no lan1: it sees lan0 only)
//
// lan0 is 198.18.0.0/25 and lan1 198.18.0.128/25 (RFC 2544 benchmarking
// range), so the VIPs 198.18.0.100-120 belong to lan0's subnet. Node i counts
// from 1 in the order of TestbedOptions::nodes. Inside every host namespace
// the interface on lan N is called "lanN", so both nodes of a cluster can share
// one configuration. Nothing is created in the caller's namespace: deleting
// our namespaces removes every interface too.
//
// Namespace names are "<prefix>-<pid>-<n>-<role>" (role: a node name,
// "client", "witness" or "hub"): the pid and a per-process counter keep
// testbeds of concurrent tests apart, and the pid lets CleanupStale() tell
// the leftovers of a dead run from a testbed in use.
//
// Processes run through Spawn() lead their own session and process group, are
// tracked, and are killed and reaped by the destructor; whatever else is still
// inside one of our namespaces then (a grandchild that left the group) is
// killed too, since a live process would keep a deleted namespace alive.
//
// Requirements: root (CAP_SYS_ADMIN and CAP_NET_ADMIN), iproute2's `ip`, and
// no other thread reaping children with waitpid(-1, ...). All methods are
// thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::testbed {

// The prefix of every namespace this library creates unless told otherwise.
inline constexpr const char* kDefaultPrefix = "hk";

struct TestbedOptions {
  // 1-8 characters [a-z0-9]; see the naming scheme above.
  std::string prefix = kDefaultPrefix;
  // 1-30 names of 1-12 characters [A-Za-z0-9_-], unique, none of "client",
  // "witness", "hub" (the 12 keeps "<name>-l1" a valid interface name).
  std::vector<std::string> nodes = {"node1", "node2"};
  int lans = 1;          // 1 or 2
  bool client = true;    // a client namespace on every lan
  bool witness = false;  // a witness namespace on lan0 only
  // Remove the namespaces of dead earlier runs first (CleanupStale(prefix)).
  bool cleanup_stale = true;
};

// How a cut link fails.
enum class CutMode {
  // The cable is pulled: the hub port goes down, so the host's interface loses
  // carrier too (what an interface checker sees).
  kLinkDown,
  // Frames vanish but carrier stays up on both ends, as when a switch or a
  // link further away fails: the hub port leaves the bridge.
  kSilentDrop,
};

struct BindMount {
  std::string source;  // an existing directory (or file) in the caller's view
  std::string target;  // created with its parents if missing
  bool read_only = false;
};

struct SpawnOptions {
  std::string netns;              // required: a name listed by `ip netns list`
  std::vector<std::string> argv;  // argv[0] without '/' is looked up in env's PATH
  // The child's whole environment, nothing inherited. PATH, when absent, is
  // only used for the lookup of argv[0] (a standard search path).
  std::map<std::string, std::string> env;
  // Appended to (created 0644); empty means /dev/null. Paths in the caller's
  // view. stdin is always /dev/null.
  std::string stdout_path;
  std::string stderr_path;
  // Every child gets a mount namespace of its own (descendants share it),
  // with /sys remounted so that /sys/class/net shows its network namespace,
  // as `ip netns exec` does. These bind mounts are applied there: invisible
  // to the caller and to other spawned processes. Targets' missing
  // directories are created on the real file system and left there.
  std::vector<BindMount> bind_mounts;
  std::string working_dir;  // empty: the caller's
};

// How a process ended.
struct ExitStatus {
  int code = -1;   // exit code, or -1 when killed by a signal
  int signal = 0;  // the terminating signal, or 0 when it exited
  bool exited() const { return signal == 0; }
  // "exited with code 3", "killed by signal 9 (Killed)".
  std::string ToString() const;
};

struct CommandOutput {
  ExitStatus status;
  std::string output;  // stdout and stderr interleaved as written
};

class Testbed {
 public:
  // Builds the topology; on error whatever was created is removed again.
  static sdk::Result<std::unique_ptr<Testbed>> Create(const TestbedOptions& options);

  // Ok when this process can build testbeds: root, `ip` in PATH, netns support.
  // Tests skip with this message; `hakit demo` reports it.
  static sdk::Status CheckPrerequisites();

  // Removes namespaces named "<prefix>-<pid>-<n>-<role>" whose pid no longer exists,
  // killing what still runs inside them first. Never touches a namespace
  // whose creator is alive (or looks alive: a reused pid keeps it too).
  static sdk::Status CleanupStale(std::string_view prefix = kDefaultPrefix);

  // Kills and reaps spawned processes, then deletes every namespace created;
  // problems are reported on stderr (there is no one else to tell).
  ~Testbed();

  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  // ---- Topology ----------------------------------------------------------
  // "<prefix>-<pid>-<n>": the common start of all our namespace names.
  const std::string& tag() const { return tag_; }
  const std::vector<std::string>& nodes() const { return options_.nodes; }
  int lans() const { return options_.lans; }

  // Namespace names; empty when there is no such host. Spawn and the probes
  // reject an empty namespace, so a typo never runs in the caller's namespace.
  std::string NodeNamespace(std::string_view node) const;
  std::string ClientNamespace() const;
  std::string WitnessNamespace() const;
  std::string HubNamespace() const;
  // Every namespace of this testbed, hub last.
  std::vector<std::string> Namespaces() const;

  // The IPv4 address (no prefix length) of `host` (a node name, "client" or
  // "witness") on `lan`; empty when the host is not on that lan.
  std::string Address(std::string_view host, int lan) const;
  std::string ClientAddress(int lan = 0) const { return Address("client", lan); }
  std::string WitnessAddress() const { return Address("witness", 0); }
  // 198.18.0.(100+i), i in [0, 20]; on lan0's subnet, owned by no host.
  static std::string VipAddress(int i);
  // The prefix length of both lans' subnets (25).
  static int PrefixLength() { return 25; }
  // "198.18.0.0/25", "198.18.0.128/25".
  static std::string LanSubnet(int lan);
  // The host-side interface name on `lan` in every host namespace: "lan0".
  static std::string LanInterface(int lan);
  // The hub-side end of host's veth on `lan`: "<host>-l<lan>"; empty when the
  // host is not on that lan.
  std::string HubPort(std::string_view host, int lan) const;

  // ---- Faults ------------------------------------------------------------
  // Cuts host's link to one lan / to every lan (a node's power cut, as the
  // network sees it; the processes inside keep running). Restore undoes
  // either mode. Idempotent.
  sdk::Status CutLink(std::string_view host, int lan, CutMode mode = CutMode::kLinkDown);
  sdk::Status RestoreLink(std::string_view host, int lan);
  sdk::Status CutNode(std::string_view host, CutMode mode = CutMode::kLinkDown);
  sdk::Status RestoreNode(std::string_view host);

  // ---- Processes ---------------------------------------------------------
  // Starts a process that leads its own session and process group. Returns
  // only once it has exec'd: a missing program, a failed bind mount or an
  // unknown namespace is an error naming the step and strerror, never a child
  // that silently exits 127.
  sdk::Result<pid_t> Spawn(const SpawnOptions& options);
  // Signals one spawned, not yet reaped process.
  sdk::Status Kill(pid_t pid, int signal);
  // Signals the process group a spawned process leads, background children
  // included. After the leader was reaped, only members still inside this
  // testbed's namespaces are signalled (the group id may have been reused).
  sdk::Status KillGroup(pid_t pid, int signal = SIGKILL);
  // SIGKILLs every process inside `host`'s network namespace (what a power
  // cut ends), spawned here or not; spawned ones are left for WaitExit.
  // Fails if some survive a second of repeated kills.
  sdk::Status KillAll(std::string_view host);
  // Reaps a spawned process, waiting up to `timeout`; nullopt while it still
  // runs (or if it was not spawned here). Asking again after it was reaped
  // returns the same status.
  std::optional<ExitStatus> WaitExit(pid_t pid, std::chrono::milliseconds timeout);

  // Runs a short command in `netns` (same rules as Spawn, environment: PATH
  // only) and collects its output. A non-zero exit is not an error; the
  // deadline is (the whole group is killed).
  sdk::Result<CommandOutput> RunIn(const std::string& netns, const std::vector<std::string>& argv,
                                   std::chrono::milliseconds timeout);

 private:
  struct Host {
    std::string name;  // node name, "client" or "witness"
    std::string netns;
    int index = 0;  // node number from 1; 0 for client and witness
    int lans = 0;   // on lan0 .. lans-1
  };

  Testbed(TestbedOptions options, std::string tag);
  sdk::Status Build();
  const Host* FindHost(std::string_view name) const;
  // Checks that `host` is on `lan`; returns its hub port.
  sdk::Result<std::string> PortOf(std::string_view host, int lan) const;
  // Kills the process group of every unreaped spawned process and reaps it.
  void KillSpawned();

  TestbedOptions options_;
  std::string tag_;
  std::vector<Host> hosts_;
  std::vector<std::string> created_;  // namespaces to delete, in creation order

  std::mutex mu_;
  // Every pid spawned here; a value once reaped.
  std::map<pid_t, std::optional<ExitStatus>> procs_;
};

}  // namespace hakit::testbed
