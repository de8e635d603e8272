// A module library that declares its own checkers (ModuleDescription::
// checkers): the application's process and its TCP port. Its hooks run the
// module's bin/ scripts, as the generic module does, so that the cluster
// test's demo scripts start and stop the application.
#include <filesystem>
#include <string>

#include "hakit/sdk/export.h"

namespace {

namespace sdk = hakit::sdk;

class WatchedModule : public sdk::Module {
 public:
  explicit WatchedModule(sdk::ModuleSettings settings) : settings_(std::move(settings)) {}

  sdk::Status Describe(sdk::ModuleDescription* out) override {
    sdk::CheckerSpec proc;
    proc.kind = "process";
    proc.ident = "app";
    // Only this module's instance: other rigs' run on other ports.
    auto port_var = settings_.vars.find("APP_PORT");
    const std::string app_port = port_var == settings_.vars.end() ? "8080" : port_var->second;
    proc.params = {{"name", "hakit-demo-app"},
                   {"argregex", "--port " + app_port + "( |$)"},
                   {"atleast", "1"}};
    proc.action = "restart";
    proc.interval = std::chrono::milliseconds(300);
    proc.timeout = std::chrono::milliseconds(200);
    out->checkers.push_back(proc);
    sdk::CheckerSpec port;
    port.kind = "tcp";
    port.ident = "port";
    port.params = {{"addr", "127.0.0.1"}, {"port", app_port}};
    port.action = "noaction";  // watched and shown, never acted upon
    port.interval = std::chrono::milliseconds(300);
    port.timeout = std::chrono::milliseconds(200);
    out->checkers.push_back(port);
    return sdk::Status::Ok();
  }

  sdk::Status RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) override {
    std::string path = host.paths().bin_dir + "/" + sdk::HookName(hook);
    if (!std::filesystem::exists(path)) return sdk::Status::Ok();
    sdk::Command c;
    c.argv = {path};
    if (args.force && sdk::IsStopHook(hook)) c.argv.push_back("force");
    c.argv.insert(c.argv.end(), {args.current_state, args.next_state, args.action});
    c.timeout = args.timeout;
    sdk::CommandResult r = host.RunCommand(c);
    return r.ok() ? sdk::Status::Ok() : sdk::Status::Failed(path + ": " + r.error);
  }

 private:
  sdk::ModuleSettings settings_;
};

sdk::Result<std::unique_ptr<sdk::Module>> Make(const sdk::ModuleSettings& settings) {
  return std::unique_ptr<sdk::Module>(new WatchedModule(settings));
}

}  // namespace

HAKIT_MODULE_EXPORT(Make)
