#include "hakit/scripts/module_host_context.h"

#include <utility>

namespace hakit::scripts {

ModuleHostContext::ModuleHostContext(const Layout& layout, std::string module_name,
                                     std::string node_name,
                                     std::map<std::string, std::string> user_vars,
                                     std::shared_ptr<Logger> module_log)
    : module_name_(std::move(module_name)),
      node_name_(std::move(node_name)),
      user_log_(layout.UserLog(module_name_)),
      module_log_(std::move(module_log)) {
  if (!module_log_) module_log_ = std::make_shared<Logger>(layout.ModuleLog(module_name_), false);

  paths_.module_dir = layout.ModuleDir(module_name_).string();
  paths_.bin_dir = layout.ModuleBin(module_name_).string();
  paths_.conf_dir = layout.ModuleConf(module_name_).string();
  paths_.var_dir = layout.ModuleVar(module_name_).string();
  paths_.log_dir = layout.ModuleLogDir(module_name_).string();
  paths_.safe_dir = layout.SafeDir().string();
  paths_.safe_bin_dir = layout.SafeBinDir().string();
  paths_.safe_var_dir = layout.VarDir().string();

  // Order matters: the default PATH first (a user var may replace it), then
  // the user vars, then the names hakit owns, which always win.
  environment_["PATH"] = kDefaultPath;
  for (auto& [key, value] : user_vars) environment_[key] = std::move(value);
  environment_["SAFE"] = paths_.safe_dir;
  environment_["SAFEBIN"] = paths_.safe_bin_dir;
  environment_["SAFEVAR"] = paths_.safe_var_dir;
  environment_["SAFEMODULE"] = module_name_;
  environment_["SAFEUSERBIN"] = paths_.bin_dir;
  environment_["SAFEUSERCONF"] = paths_.conf_dir;
  environment_["SAFEUSERVAR"] = paths_.var_dir;
  environment_["SAFENODE"] = node_name_;
  // So that `$SAFE/safekit printi` (the CLI) finds this node's root, also when
  // several nodes share one machine.
  environment_["HAKIT_ROOT"] = layout.root().string();
}

void ModuleHostContext::Log(sdk::LogLevel level, std::string_view message) {
  module_log_->Log(level, message);
}

sdk::CommandResult ModuleHostContext::RunCommand(const sdk::Command& command) {
  sdk::Command effective = command;
  if (effective.working_dir.empty()) effective.working_dir = paths_.module_dir;

  OutputSink sink;
  if (command.log_output && !command.argv.empty()) {
    std::string prefix = std::filesystem::path(command.argv[0]).filename().string() + ": ";
    // By value: the sink may outlive this call (and this context) when the
    // command leaves a process running that keeps writing.
    sink = [log = user_log_, prefix](OutputStream stream, std::string_view line) {
      std::string text = prefix;
      text.append(line);
      // One O_APPEND write per line: lines of concurrent commands and of
      // `hakit printi` never interleave within a line.
      AppendLogLine(log,
                    stream == OutputStream::kStdout ? LogLevel::kInfo : LogLevel::kWarning, text);
    };
  }
  return RunProcess(effective, environment_, sink);
}

}  // namespace hakit::scripts
