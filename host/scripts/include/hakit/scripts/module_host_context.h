// ModuleHostContext: the HostContext hakitd gives a module object. It knows
// the module's paths on this node, builds the SafeKit environment its scripts
// expect, writes the module log and runs commands through RunProcess with
// their output in the user log.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "hakit/common/layout.h"
#include "hakit/common/log.h"
#include "hakit/scripts/run_process.h"
#include "hakit/sdk/host_context.h"

namespace hakit::scripts {

class ModuleHostContext : public sdk::HostContext {
 public:
  // `user_vars`: the module's <user><var> values and macros after expansion.
  // `module_log`: the logger writing Layout::ModuleLog(module_name), shared
  // with the rest of the daemon; null makes one (no stderr copy).
  ModuleHostContext(const Layout& layout, std::string module_name, std::string node_name,
                    std::map<std::string, std::string> user_vars,
                    std::shared_ptr<Logger> module_log = nullptr);

  std::string_view module_name() const override { return module_name_; }
  std::string_view node_name() const override { return node_name_; }

  void Log(sdk::LogLevel level, std::string_view message) override;

  // Runs in the module directory unless command.working_dir says otherwise.
  // With log_output, each line goes to the user log as "<program>: <line>"
  // (stdout at level I, stderr at level W).
  sdk::CommandResult RunCommand(const sdk::Command& command) override;

  const sdk::ModulePaths& paths() const override { return paths_; }

  // SAFE, SAFEBIN, SAFEVAR, SAFEMODULE, SAFEUSERBIN, SAFEUSERCONF, SAFEUSERVAR,
  // SAFENODE, HAKIT_ROOT, PATH, and every user var. A user var may override
  // PATH but not the SAFE* names or HAKIT_ROOT, which scripts rely on to find
  // the module and `$SAFE/safekit`.
  const std::map<std::string, std::string>& environment() const override { return environment_; }

  const std::filesystem::path& user_log_path() const { return user_log_; }

 private:
  std::string module_name_;
  std::string node_name_;
  sdk::ModulePaths paths_;
  std::map<std::string, std::string> environment_;
  std::filesystem::path user_log_;
  std::shared_ptr<Logger> module_log_;
};

}  // namespace hakit::scripts
