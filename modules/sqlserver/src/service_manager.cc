#include "hakit/sqlserver/service_manager.h"

#include <utility>

#include "hakit/module_util/commands.h"

namespace hakit::sqlserver {

using sdk::Status;

using module_util::CommandOutcome;
using module_util::JoinArgv;
using module_util::PowerShellQuote;

Status RunAll(sdk::HostContext& host, const std::vector<std::vector<std::string>>& argvs,
              std::chrono::milliseconds timeout) {
  for (const auto& argv : argvs) {
    sdk::Command c;
    c.argv = argv;
    c.timeout = timeout;
    host.Log(sdk::LogLevel::kInfo, "running " + JoinArgv(argv));
    sdk::CommandResult r = host.RunCommand(c);
    if (!r.ok()) return Status::Failed(JoinArgv(argv) + " " + CommandOutcome(r));
  }
  return Status::Ok();
}

SystemdServiceManager::SystemdServiceManager(std::string unit, std::string systemctl)
    : unit_(std::move(unit)), systemctl_(std::move(systemctl)) {}

std::vector<std::string> SystemdServiceManager::StartArgv() const {
  return {systemctl_, "start", unit_};
}

std::vector<std::vector<std::string>> SystemdServiceManager::StopArgvs(bool force) const {
  if (!force) return {{systemctl_, "stop", unit_}};
  // kill first: a plain stop would wait for SQL Server's own shutdown again.
  return {{systemctl_, "kill", "--signal=SIGKILL", unit_}, {systemctl_, "stop", unit_}};
}

Status SystemdServiceManager::Start(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  return RunAll(host, {StartArgv()}, timeout);
}

Status SystemdServiceManager::Stop(sdk::HostContext& host, bool force,
                                   std::chrono::milliseconds timeout) {
  return RunAll(host, StopArgvs(force), timeout);
}

WindowsScmServiceManager::WindowsScmServiceManager(std::string service, std::string powershell)
    : service_(std::move(service)), powershell_(std::move(powershell)) {}

std::vector<std::string> WindowsScmServiceManager::PowerShell(const std::string& script) const {
  return module_util::PowerShellArgv(powershell_, script);
}

std::vector<std::string> WindowsScmServiceManager::StartArgv() const {
  return PowerShell("Start-Service -Name " + PowerShellQuote(service_));
}

std::vector<std::vector<std::string>> WindowsScmServiceManager::StopArgvs(bool force) const {
  if (!force) return {PowerShell("Stop-Service -Name " + PowerShellQuote(service_) + " -Force")};
  return {
      PowerShell("$s = Get-CimInstance Win32_Service -Filter \"Name=" + PowerShellQuote(service_) +
                 "\"; if ($s -and $s.ProcessId -ne 0) { Stop-Process -Id $s.ProcessId -Force }")};
}

Status WindowsScmServiceManager::Start(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  return RunAll(host, {StartArgv()}, timeout);
}

Status WindowsScmServiceManager::Stop(sdk::HostContext& host, bool force,
                                      std::chrono::milliseconds timeout) {
  return RunAll(host, StopArgvs(force), timeout);
}

}  // namespace hakit::sqlserver
