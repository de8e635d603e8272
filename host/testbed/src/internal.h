// Shared by the testbed's source files only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "hakit/sdk/status.h"
#include "hakit/testbed/testbed.h"

namespace hakit::testbed::internal {

inline constexpr const char* kNetnsDir = "/run/netns";
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// InvalidArgument unless `name` can be a netns name: non-empty, no '/'.
sdk::Status CheckNetnsName(const std::string& name);

// An O_CLOEXEC descriptor of the named namespace; NotFound if it is missing.
sdk::Result<int> OpenNetns(const std::string& name);

// Runs fn on a new thread that has first entered `netns` (the caller's
// threads are unaffected); an error if the namespace cannot be entered.
sdk::Status RunInNetns(const std::string& netns, const std::function<void()>& fn);

// The namespace inode behind /run/netns/<name>, 0 if it cannot be read.
ino_t NetnsInode(const std::string& name);

// Processes other than ourselves whose network namespace is one of `inodes`.
std::vector<pid_t> PidsInNetns(const std::set<ino_t>& inodes);

// SIGKILLs every process inside the named namespaces until none is left or
// about a second has passed; returns how many were still there at the end.
int KillAllInNetns(const std::vector<std::string>& names);

// What a child needs. netns empty means "stay in the caller's namespace",
// which only the library itself uses (to run `ip -n ...`).
struct ChildSpec {
  std::string netns;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  // A mount namespace of its own with "/" made private and /sys remounted
  // (so that /sys/class/net shows the namespace's interfaces), then these.
  bool private_mounts = false;
  std::vector<BindMount> bind_mounts;
  std::string working_dir;
  int stdout_fd = -1;  // -1: /dev/null
  int stderr_fd = -1;
};

// Forks and execs; returns once the child has exec'd, or the reason it could
// not, after reaping it. The child leads a new session and process group.
sdk::Result<pid_t> StartChild(const ChildSpec& spec);

// Runs to completion, stdout and stderr into one buffer. On timeout the
// whole group is killed and reaped and a Timeout error returned.
sdk::Result<CommandOutput> RunCaptured(ChildSpec spec, std::chrono::milliseconds timeout);

ExitStatus FromWaitStatus(int wait_status);

// "ip -n hub link set ..." -> one string for error messages.
std::string JoinArgv(const std::vector<std::string>& argv);

}  // namespace hakit::testbed::internal
