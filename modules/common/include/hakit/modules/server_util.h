// What module libraries that run a database server share: the system user
// it runs as, its data directory's checks, finding the running server from
// its pid file, and readable failure messages. Sees only the SDK.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hakit/sdk/host_context.h"
#include "hakit/sdk/module.h"
#include "hakit/sdk/status.h"

namespace hakit::modules {

// A <user><var> of userconfig.xml, or `fallback` when absent or empty.
std::string VarOr(const std::map<std::string, std::string>& vars, const std::string& name,
                  const std::string& fallback);

// "USERCONFIG: <var name="VAR">: WHAT", an InvalidArgument.
sdk::Status BadVar(const std::string& userconfig, const std::string& var, const std::string& what);

// Reads VAR (default `fallback`) as a TCP port into *port.
sdk::Status ParsePort(const std::map<std::string, std::string>& vars, const std::string& var,
                      const std::string& fallback, const std::string& userconfig, int* port);

// The server's checkers: a process checker counting exactly one process
// named `name` whose arguments match `argregex` (the server's main process,
// not its workers), and a tcp checker on addr:port. Both restart on failure.
sdk::CheckerSpec ServerProcessChecker(const std::string& ident, const std::string& name,
                                      const std::string& argregex);
sdk::CheckerSpec ServerPortChecker(const std::string& ident, const std::string& addr, int port);

// A server that runs on the primary only: start_prim runs `start`,
// stop_prim runs `stop`, every other hook does nothing. A failure is logged
// in the module log and returned.
sdk::Status RunOnPrimaryOnly(sdk::Hook hook, sdk::HostContext& host,
                             const std::function<sdk::Status()>& start,
                             const std::function<sdk::Status()>& stop);

// The hook's time budget, or `fallback` when the host gives none.
std::chrono::milliseconds HookBudget(const sdk::HookArgs& args,
                                     std::chrono::milliseconds fallback);

// Where a local checker reaches a server listening on `listen` (the first of
// a comma-separated list): the loopback for a wildcard, else that address.
std::string LocalAddress(const std::string& listen);

struct SystemUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// The user from the password database; NotFound names it when unknown.
sdk::Result<SystemUser> LookupUser(const std::string& name);

// `argv` run as `user`: through setpriv (uid, gid, supplementary groups)
// unless this process already runs as that user. setpriv is util-linux's.
std::vector<std::string> AsUser(const SystemUser& user, std::vector<std::string> argv);

// Ok when `path` is an executable regular file; otherwise NotFound (missing)
// or InvalidArgument, the message ending with `hint` (what to install or set).
sdk::Status CheckExecutable(const std::string& path, const std::string& hint);

// Ok when `dir` is a directory owned by `user` and, with `private_mode`,
// closed to others (mode 0700 or 0750, as PostgreSQL requires). Messages
// name `var` (the userconfig.xml variable) and the command that fixes it.
sdk::Status CheckDataDirOwner(const std::string& dir, const std::string& var,
                              const SystemUser& user, bool private_mode = true);

// The pid in the first line of `pid_file` if that process is alive, named
// `comm` (/proc/PID/comm), works in `data_dir` (its cwd, symlinks resolved)
// and shares our network and mount namespaces; else 0. A stale pid file
// after a crash may name a reused pid, and on a shared kernel (tests) the
// peer's server, seen through the replicated pid file, is not ours.
pid_t ServerPid(const std::string& pid_file, const std::string& comm, const std::string& data_dir);

// Waits up to `wait` for `pid` to go; true when it did.
bool WaitGone(pid_t pid, const std::string& pid_file, const std::string& comm,
              const std::string& data_dir, int wait_ms);

// The last `n` lines of a file joined by " | " (why a server did not start).
std::string TailFile(const std::string& path, std::size_t n);

// "pg_ctl start exited with code 1 after 136 ms", "... was killed by signal 9", ...
std::string DescribeOutcome(const std::string& what, const sdk::CommandResult& r);

// `text` as an ECMAScript regex matching it literally.
std::string RegexQuote(const std::string& text);

}  // namespace hakit::modules
