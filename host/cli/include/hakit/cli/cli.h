// The hakit command-line interface, as a library so that tests can run
// commands in-process. main() only calls RunCli().
//
// Exit codes: 0 ok, 1 failed, 2 usage error (and SafeKit's state codes for
// `hakit state -m M -lq`).
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "hakit/common/layout.h"

namespace hakit::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// What every command gets: its own arguments (after the command words), the
// node's layout and the streams to write to.
struct Invocation {
  std::vector<std::string> args;
  Layout layout;
  std::ostream& out;
  std::ostream& err;
  std::string program;  // argv[0], for help texts
};

struct Command {
  std::string name;     // "state", "module check", "cluster genkey"
  std::string summary;  // one line for `hakit --help`
  std::function<int(Invocation&)> run;
};

// The commands, grouped by concern (one file each).
std::vector<Command> ControlCommands();   // start, stop, state, ...
std::vector<Command> ModuleCommands();    // module check, list, package, install, deploy, ...
std::vector<Command> HistoryCommands();   // history
std::vector<Command> LogCommands();       // log, printi, printw, printe
std::vector<Command> ClusterCommands();   // cluster genkey
std::vector<Command> DemoCommands();      // demo
std::vector<Command> ChecksCommands();    // set, errd, checker, failover, resetloop

int RunCli(int argc, char** argv);

}  // namespace hakit::cli
