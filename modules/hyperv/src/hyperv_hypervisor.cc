#include "hakit/hyperv/hyperv_hypervisor.h"

#include "hakit/module_util/commands.h"

namespace hakit::hyperv {

using sdk::Result;
using sdk::Status;
using namespace std::chrono_literals;
using module_util::CommandOutcome;
using module_util::PowerShellQuote;

namespace {

// powershell.exe's exit code for "the answer is no" in the yes/no queries,
// apart from 1, which a failing cmdlet gives.
constexpr int kNo = 3;

}  // namespace

HyperVHypervisor::HyperVHypervisor(VmSettings settings, std::string powershell)
    : settings_(std::move(settings)), powershell_(std::move(powershell)) {}

std::vector<std::string> HyperVHypervisor::PowerShell(const std::string& script) const {
  return module_util::PowerShellArgv(powershell_, script);
}

std::vector<std::string> HyperVHypervisor::IsRegisteredArgv() const {
  return PowerShell("if (Get-VM -Name " + PowerShellQuote(settings_.name) +
                    " -ErrorAction SilentlyContinue) { exit 0 } else { exit " +
                    std::to_string(kNo) + " }");
}

std::vector<std::string> HyperVHypervisor::RegisterArgv() const {
  const std::string vms = PowerShellQuote(settings_.dir + "\\Virtual Machines");
  return PowerShell("$f = Get-ChildItem -Path " + vms +
                    " -Filter *.vmcx | Select-Object -First 1; if (-not $f) { throw ('no .vmcx "
                    "file in ' + " +
                    vms + ") }; Import-VM -Path $f.FullName -Register | Out-Null");
}

std::vector<std::string> HyperVHypervisor::IsRunningArgv() const {
  return PowerShell("$s = (Get-VM -Name " + PowerShellQuote(settings_.name) +
                    ").State; if ($s -eq 'Running' -or $s -eq 'Paused') { exit 0 } else { exit " +
                    std::to_string(kNo) + " }");
}

std::vector<std::string> HyperVHypervisor::StartArgv() const {
  return PowerShell("Start-VM -Name " + PowerShellQuote(settings_.name));
}

std::vector<std::string> HyperVHypervisor::StopArgv(StopMode mode) const {
  const std::string vm = "Stop-VM -Name " + PowerShellQuote(settings_.name);
  switch (mode) {
    case StopMode::kShutdown:
      return PowerShell(vm + " -Force");
    case StopMode::kSave:
      return PowerShell(vm + " -Save");
    case StopMode::kStop:
      return TurnOffArgv();
  }
  return TurnOffArgv();
}

std::vector<std::string> HyperVHypervisor::TurnOffArgv() const {
  return PowerShell("Stop-VM -Name " + PowerShellQuote(settings_.name) + " -TurnOff -Force");
}

std::vector<std::string> HyperVHypervisor::HeartbeatArgv() const {
  return PowerShell("$h = Get-VMIntegrationService -VMName " + PowerShellQuote(settings_.name) +
                    " -Name 'Heartbeat'; if ($h.Enabled -and $h.PrimaryStatusDescription -eq "
                    "'OK') { exit 0 } else { Write-Output ('heartbeat: ' + "
                    "$h.PrimaryStatusDescription); exit 1 }");
}

sdk::CommandResult HyperVHypervisor::Run(sdk::HostContext& host,
                                         const std::vector<std::string>& argv,
                                         std::chrono::milliseconds timeout) {
  sdk::Command c;
  c.argv = argv;
  c.timeout = timeout.count() > 0 ? timeout : 120s;
  return host.RunCommand(c);
}

Status HyperVHypervisor::Check(sdk::HostContext& host, const std::vector<std::string>& argv,
                               std::chrono::milliseconds timeout, const std::string& what) {
  sdk::CommandResult r = Run(host, argv, timeout);
  if (r.ok()) return Status::Ok();
  if (r.outcome == sdk::CommandResult::Outcome::kTimedOut) {
    return Status::Timeout(Describe() + ": " + what + " " + CommandOutcome(r));
  }
  return Status::Failed(Describe() + ": " + what + " " + CommandOutcome(r) +
                        " (PowerShell's messages are in the user log)");
}

Result<bool> HyperVHypervisor::IsRegistered(sdk::HostContext& host) {
  sdk::CommandResult r = Run(host, IsRegisteredArgv(), 60s);
  if (r.ok()) return true;
  if (r.outcome == sdk::CommandResult::Outcome::kExited && r.exit_code == kNo) return false;
  return Status::Failed(Describe() + ": Get-VM " + CommandOutcome(r));
}

Status HyperVHypervisor::Register(sdk::HostContext& host) {
  return Check(host, RegisterArgv(), 120s, "Import-VM");
}

Result<bool> HyperVHypervisor::IsRunning(sdk::HostContext& host) {
  sdk::CommandResult r = Run(host, IsRunningArgv(), 60s);
  if (r.ok()) return true;
  if (r.outcome == sdk::CommandResult::Outcome::kExited && r.exit_code == kNo) return false;
  return Status::Failed(Describe() + ": Get-VM " + CommandOutcome(r));
}

Status HyperVHypervisor::Start(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  return Check(host, StartArgv(), timeout, "Start-VM");
}

Status HyperVHypervisor::Stop(sdk::HostContext& host, StopMode mode,
                              std::chrono::milliseconds timeout) {
  return Check(host, StopArgv(mode), timeout, "Stop-VM");
}

Status HyperVHypervisor::TurnOff(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  return Check(host, TurnOffArgv(), timeout, "Stop-VM -TurnOff");
}

Status HyperVHypervisor::Heartbeat(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  return Check(host, HeartbeatArgv(), timeout, "Get-VMIntegrationService Heartbeat");
}

}  // namespace hakit::hyperv
