// The module interface: what an application module library implements.
//
// A module makes one application highly available. hakitd loads its library
// with Boost.DLL, checks kAbiVersion, creates one Module object per installed
// module through the exported factory (see export.h) and then calls:
//
//   Describe()  once after creation, to learn what the module needs beyond
//               its userconfig.xml (replicated dirs, checkers, VIPs, timeouts);
//   the hooks   at each state transition, in SafeKit's order.
//
// Threading: hooks of one module never run concurrently; they run on a worker
// thread of the host, never on its event loop, so they may block (bounded by
// the module's stop/start timeouts). Stop hooks are called even if the
// matching start hook failed. A stop hook is called a second time with
// HookArgs::force set when the first call failed or timed out.
//
// Errors: hooks return a Status; they must not throw (an exception that
// escapes is treated as a failed hook, but do not rely on it across the
// library boundary).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hakit/sdk/host_context.h"
#include "hakit/sdk/status.h"

namespace hakit::sdk {

// Bumped whenever a shipped type of this SDK changes layout or meaning. The
// ABI grows by adding, never by editing what shipped. A library built for
// another version is refused before anything of it runs.
inline constexpr std::uint32_t kAbiVersion = 1;

// The hook points, in the order a primary start and stop runs them.
enum class Hook {
  kPrestart,     // before any start; module-wide preparation
  kStartPrim,    // becoming PRIM or ALONE: start the application
  kStopPrim,     // leaving PRIM or ALONE: stop the application
  kStartSecond,  // becoming SECOND
  kStopSecond,   // leaving SECOND
  kStartBoth,    // entering any running state (PRIM, ALONE, SECOND)
  kStopBoth,     // leaving every running state
  kPoststop,     // after the last stop
};

// The SafeKit script name of a hook ("start_prim", ...).
inline const char* HookName(Hook hook) {
  switch (hook) {
    case Hook::kPrestart: return "prestart";
    case Hook::kStartPrim: return "start_prim";
    case Hook::kStopPrim: return "stop_prim";
    case Hook::kStartSecond: return "start_second";
    case Hook::kStopSecond: return "stop_second";
    case Hook::kStartBoth: return "start_both";
    case Hook::kStopBoth: return "stop_both";
    case Hook::kPoststop: return "poststop";
  }
  return "unknown";
}

// True for the hooks that stop something and so take a force flag.
inline bool IsStopHook(Hook hook) {
  return hook == Hook::kStopPrim || hook == Hook::kStopSecond || hook == Hook::kStopBoth ||
         hook == Hook::kPoststop;
}

// What a hook is told about the transition it is part of. These are the
// arguments SafeKit scripts receive: <current_state> <next_state> <action>.
struct HookArgs {
  std::string current_state;  // "STOP", "WAIT", "ALONE", "PRIM", "SECOND"
  std::string next_state;
  std::string action;         // "start", "stop", "failover", "swap", "restart", ...
  // Set on the second call of a stop hook: kill, do not ask.
  bool force = false;
  // The time this call may take (nicestoptimeout, forcestoptimeout, or the
  // start timeout); a hook that runs commands passes it on as their
  // Command::timeout. Zero means no limit.
  std::chrono::milliseconds timeout{0};
};

// A directory replicated from the primary to the secondary.
struct ReplicatedDirSpec {
  std::string path;                       // absolute
  bool read_only_on_secondary = true;     // mode="read_only"
  std::vector<std::string> not_replicated;  // paths relative to `path`
};

// A periodic test whose failure triggers an action. `kind` is one of
// "process", "tcp", "ping", "interface", "custom"; `params` are the kind's
// settings: process: name, nameregex, argregex, atleast [1], atmax [none];
// tcp: addr, port; ping: addr; interface: name; custom: exec (relative to
// bin/ unless absolute), arg; every kind: when ("pre", "prim", "second",
// "both"; default prim, pre for ping and interface). `action` is "restart",
// "stopstart", "failover" (swap to the peer), "stop", "wait" or "noaction".
// The host names the resource "<prefix>.<ident>" (proc., tcp., ping.,
// intf., custom.) and applies the rules of docs/checkers.md; an unknown
// kind or action refuses the module.
struct CheckerSpec {
  std::string kind;
  std::string ident;
  std::map<std::string, std::string> params;
  std::string action = "restart";
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{5000};
};

// What a module declares in addition to its userconfig.xml. The host merges
// both and reports a conflict (the same dir declared twice) as a config error.
struct ModuleDescription {
  std::vector<ReplicatedDirSpec> replicated_dirs;
  std::vector<CheckerSpec> checkers;
  std::vector<std::string> virtual_ips;  // addresses, IPv4 or IPv6
  std::optional<std::chrono::milliseconds> nice_stop_timeout;
  std::optional<std::chrono::milliseconds> force_stop_timeout;
};

// What the factory is given to build a module object.
struct ModuleSettings {
  std::string name;             // installed module name
  std::string userconfig_path;  // ROOT/modules/NAME/conf/userconfig.xml
  // <user><var> values and macros after expansion, for module-specific
  // settings (e.g. PGDATA). Module-specific XML elements, if any, can be
  // read from userconfig_path.
  std::map<std::string, std::string> vars;
  ModulePaths paths;
};

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // Fills `out` with what this module needs beyond userconfig.xml. Called
  // once, before any hook. An error refuses the module with that message.
  virtual Status Describe(ModuleDescription* out) { return Status::Ok(); }

  // Runs one hook. The default implementation of every hook does nothing and
  // succeeds. `host` is valid for the duration of the call.
  virtual Status RunHook(Hook hook, const HookArgs& args, HostContext& host) {
    return Status::Ok();
  }
};

}  // namespace hakit::sdk
