// Running one program on a module's behalf: the single place where hakitd
// creates processes for scripts and module commands.
//
// The child leads its own process group, starts with an empty signal mask and
// default signal dispositions (whatever the daemon blocks or ignores), reads
// /dev/null on stdin, and sees only the environment it is given. Its stdout
// and stderr are read line by line into a sink while the caller waits, with a
// timeout that kills the whole group (SIGTERM, then SIGKILL a second later).
// When the program itself exits, whatever it left running in its group is
// killed too, so that a script's background children neither outlive it nor
// keep the call blocked by holding the output pipes.
//
// Requirements on the daemon: no other thread reaps children with
// waitpid(-1, ...), and SIGCHLD is not set to SIG_IGN (either would reap our
// child before we read its status).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "hakit/sdk/host_context.h"

namespace hakit::scripts {

enum class OutputStream { kStdout, kStderr };

// Receives each line of output without its newline. A last line without a
// newline is delivered too; a line longer than kMaxLineBytes arrives in
// pieces. Called on the thread that called RunProcess, never concurrently for
// one run. May be empty: output is then read and discarded.
using OutputSink = std::function<void(OutputStream stream, std::string_view line)>;

inline constexpr std::size_t kMaxLineBytes = 64 * 1024;

// The search path given to a child when neither base_env nor extra_env set
// PATH and the daemon itself has none.
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Runs `command` to completion or timeout. The child's environment is exactly
// base_env overridden by command.extra_env, plus the daemon's PATH if neither
// sets PATH. argv[0] without a slash is looked up in that PATH (empty PATH
// entries are skipped: never the current directory). An empty working_dir
// means the caller's working directory. Never throws (a failing sink aside);
// thread-safe.
sdk::CommandResult RunProcess(const sdk::Command& command,
                              const std::map<std::string, std::string>& base_env,
                              const OutputSink& sink);

// "exited with code 3", "killed by signal 9 (SIGKILL)", "timed out after 500
// ms", or the start error: a one-line account of how a run ended.
std::string DescribeResult(const sdk::CommandResult& result);

}  // namespace hakit::scripts
