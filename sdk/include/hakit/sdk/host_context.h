// HostContext: the narrow window a module has on the host that loaded it.
//
// A module never includes host headers; everything it may ask of hakitd is
// here. The host owns the context and keeps it alive for as long as the
// module object it was given to.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hakit::sdk {

enum class LogLevel { kInfo, kWarning, kError };

// Where a module's files live on this node. Every path is absolute.
struct ModulePaths {
  std::string module_dir;  // ROOT/modules/NAME
  std::string bin_dir;     // ROOT/modules/NAME/bin       (SAFEUSERBIN)
  std::string conf_dir;    // ROOT/modules/NAME/conf      (SAFEUSERCONF)
  std::string var_dir;     // ROOT/var/modules/NAME       (SAFEUSERVAR)
  std::string log_dir;     // ROOT/log/NAME: module log and user log
  std::string safe_dir;    // directory holding the `safekit` alias of hakit (SAFE)
  std::string safe_bin_dir;  // hakit's helper programs (SAFEBIN)
  std::string safe_var_dir;  // ROOT/var (SAFEVAR)
};

// A program to run on the module's behalf.
struct Command {
  // argv[0] is a path; it is not looked up in PATH unless it has no slash.
  std::vector<std::string> argv;
  // Added to (and overriding) HostContext::environment() for this run.
  std::map<std::string, std::string> extra_env;
  // After this long the whole process group is killed (SIGTERM, then SIGKILL
  // a second later). Zero means no limit.
  std::chrono::milliseconds timeout{0};
  // Empty: the module directory.
  std::string working_dir;
  // When true, stdout and stderr go line by line into the module's user log.
  bool log_output = true;
};

struct CommandResult {
  enum class Outcome { kExited, kSignaled, kTimedOut, kFailedToStart };
  Outcome outcome = Outcome::kFailedToStart;
  int exit_code = -1;  // valid when kExited
  int signal = 0;      // valid when kSignaled
  std::chrono::milliseconds duration{0};
  std::string error;   // why it failed to start, or a summary of the failure

  bool ok() const { return outcome == Outcome::kExited && exit_code == 0; }
};

class HostContext {
 public:
  HostContext() = default;
  HostContext(const HostContext&) = delete;
  HostContext& operator=(const HostContext&) = delete;
  virtual ~HostContext() = default;

  // The module's name as installed (ROOT/modules/NAME).
  virtual std::string_view module_name() const = 0;

  // This node's name as cluster.xml gives it.
  virtual std::string_view node_name() const = 0;

  // Appends one line to the module log, with time and level. Thread-safe.
  virtual void Log(LogLevel level, std::string_view message) = 0;

  // Runs a command to completion or timeout and reports how it ended. Never
  // throws; a program that cannot be started is a result, not an error.
  // Blocks the calling thread (hooks run on a worker thread, not the event
  // loop). The child runs in its own process group.
  virtual CommandResult RunCommand(const Command& command) = 0;

  // The module's paths on this node.
  virtual const ModulePaths& paths() const = 0;

  // The environment given to every command: SAFE, SAFEBIN, SAFEVAR,
  // SAFEMODULE, SAFEUSERBIN, SAFEUSERCONF, SAFEUSERVAR, every
  // <user><var name value> and every <macro>.
  virtual const std::map<std::string, std::string>& environment() const = 0;
};

}  // namespace hakit::sdk
