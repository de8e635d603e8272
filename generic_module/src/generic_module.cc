// The generic module: each hook runs the SafeKit script of the same name from
// the module's bin/ directory, with SafeKit's arguments
//   <current_state> <next_state> <action>
// (`force` in front on the second call of a stop script) and the SafeKit
// environment the host builds. start_prim and stop_prim are required; every
// other script is optional and skipped when absent.
//
// This library sees only the SDK: processes, timeouts and logs are the host's
// business, reached through HostContext.

#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "hakit/sdk/export.h"
#include "hakit/sdk/host_context.h"
#include "hakit/sdk/module.h"
#include "hakit/sdk/status.h"

namespace hakit::generic {
namespace {

// Scripts without which the module cannot run the application at all; a
// missing one is a packaging error worth stopping for, not a no-op.
bool IsRequired(sdk::Hook hook) {
  return hook == sdk::Hook::kStartPrim || hook == sdk::Hook::kStopPrim;
}

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

class GenericModule : public sdk::Module {
 public:
  explicit GenericModule(sdk::ModuleSettings settings) : settings_(std::move(settings)) {}

  sdk::Status RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) override {
    const std::string name = sdk::HookName(hook);
    // Messages name the script as operators see it in the package.
    const std::string shown = "bin/" + name;
    const std::string path = (std::filesystem::path(host.paths().bin_dir) / name).string();

    std::error_code ec;
    std::filesystem::file_status st = std::filesystem::status(path, ec);
    if (st.type() == std::filesystem::file_type::not_found) {
      if (IsRequired(hook)) {
        sdk::Status missing = sdk::Status::NotFound("required script " + path + " is missing");
        host.Log(sdk::LogLevel::kError, missing.message());
        return missing;
      }
      host.Log(sdk::LogLevel::kInfo, shown + " not present: skipped");
      return sdk::Status::Ok();
    }
    if (ec) return Refuse(host, sdk::Status::Failed("cannot use " + path + ": " + ec.message()));
    if (st.type() != std::filesystem::file_type::regular) {
      return Refuse(host, sdk::Status::Failed(path + " is not a regular file"));
    }
    // Checked here, before the run, so that the error says what to fix.
    if (::access(path.c_str(), X_OK) != 0) {
      int err = errno;
      char buf[256];
      std::string why = err == EACCES
                            ? std::string("is not executable (chmod +x)")
                            : std::string("is unusable: ") + ::strerror_r(err, buf, sizeof buf);
      return Refuse(host, sdk::Status::Failed(path + " " + why));
    }

    sdk::Command command;
    command.argv.push_back(path);
    // SafeKit calls a stop script a second time with `force` first.
    bool force = args.force && sdk::IsStopHook(hook);
    if (force) command.argv.push_back("force");
    command.argv.push_back(args.current_state);
    command.argv.push_back(args.next_state);
    command.argv.push_back(args.action);
    command.timeout = args.timeout;
    command.log_output = true;

    std::string shown_call = shown;
    for (std::size_t i = 1; i < command.argv.size(); ++i) shown_call += " " + command.argv[i];
    host.Log(sdk::LogLevel::kInfo,
             "running " + shown_call +
                 (args.timeout.count() > 0 ? " (timeout " + Millis(args.timeout) + ")" : ""));

    sdk::CommandResult result = host.RunCommand(command);
    sdk::Status status = Interpret(shown, args, result);
    if (status.ok()) {
      host.Log(sdk::LogLevel::kInfo, shown + " succeeded after " + Millis(result.duration));
    } else {
      host.Log(sdk::LogLevel::kError, status.message());
    }
    return status;
  }

 private:
  static sdk::Status Refuse(sdk::HostContext& host, sdk::Status status) {
    host.Log(sdk::LogLevel::kError, status.message());
    return status;
  }

  static sdk::Status Interpret(const std::string& shown, const sdk::HookArgs& args,
                               const sdk::CommandResult& result) {
    using Outcome = sdk::CommandResult::Outcome;
    switch (result.outcome) {
      case Outcome::kExited:
        if (result.exit_code == 0) return sdk::Status::Ok();
        return sdk::Status::Failed(shown + " exited with code " + std::to_string(result.exit_code) +
                                   " after " + Millis(result.duration));
      case Outcome::kSignaled:
        return sdk::Status::Failed(
            shown + " was killed by signal " + std::to_string(result.signal) + " (" +
            SignalName(result.signal) + ") after " + Millis(result.duration));
      case Outcome::kTimedOut:
        return sdk::Status::Timeout(shown + " did not finish within " + Millis(args.timeout) +
                                    " and was killed");
      case Outcome::kFailedToStart:
        return sdk::Status::Failed(shown + " could not be started: " + result.error);
    }
    return sdk::Status::Failed(shown + ": unknown outcome");
  }

  sdk::ModuleSettings settings_;
};

sdk::Result<std::unique_ptr<sdk::Module>> MakeGenericModule(const sdk::ModuleSettings& settings) {
  return std::unique_ptr<sdk::Module>(std::make_unique<GenericModule>(settings));
}

}  // namespace
}  // namespace hakit::generic

HAKIT_MODULE_EXPORT(hakit::generic::MakeGenericModule)
