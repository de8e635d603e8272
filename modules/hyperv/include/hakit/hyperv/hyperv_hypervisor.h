// HyperVHypervisor: the VM is a Hyper-V virtual machine, driven through
// powershell.exe and the Hyper-V module's cmdlets:
//   known?     Get-VM -Name 'N'
//   register   Import-VM -Path '<VM_DIR>\Virtual Machines\<id>.vmcx' -Register
//              (in place: the files stay in the replicated dir)
//   running?   (Get-VM -Name 'N').State is Running or Paused
//   start      Start-VM -Name 'N'
//   stop       shutdown: Stop-VM -Name 'N' -Force (guest shutdown through
//              the integration services); save: Stop-VM -Name 'N' -Save;
//              stop: Stop-VM -Name 'N' -TurnOff -Force
//   turn off   Stop-VM -Name 'N' -TurnOff -Force
//   heartbeat  Get-VMIntegrationService -VMName 'N' -Name 'Heartbeat':
//              enabled and PrimaryStatusDescription OK
// Every script runs with $ErrorActionPreference = 'Stop', so a failing
// cmdlet makes powershell.exe exit non-zero. Built and unit-tested for these
// exact command lines on Linux; not run on Windows yet.
#pragma once

#include <string>
#include <vector>

#include "hakit/hyperv/hypervisor.h"
#include "hakit/hyperv/vm_settings.h"

namespace hakit::hyperv {

class HyperVHypervisor : public Hypervisor {
 public:
  explicit HyperVHypervisor(VmSettings settings, std::string powershell = "powershell.exe");

  // The command line each operation runs.
  std::vector<std::string> IsRegisteredArgv() const;
  std::vector<std::string> RegisterArgv() const;
  std::vector<std::string> IsRunningArgv() const;
  std::vector<std::string> StartArgv() const;
  std::vector<std::string> StopArgv(StopMode mode) const;
  std::vector<std::string> TurnOffArgv() const;
  std::vector<std::string> HeartbeatArgv() const;

  sdk::Result<bool> IsRegistered(sdk::HostContext& host) override;
  sdk::Status Register(sdk::HostContext& host) override;
  sdk::Result<bool> IsRunning(sdk::HostContext& host) override;
  sdk::Status Start(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  sdk::Status Stop(sdk::HostContext& host, StopMode mode,
                   std::chrono::milliseconds timeout) override;
  sdk::Status TurnOff(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  sdk::Status Heartbeat(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  std::string Describe() const override { return "Hyper-V VM " + settings_.name; }

 private:
  std::vector<std::string> PowerShell(const std::string& script) const;
  sdk::CommandResult Run(sdk::HostContext& host, const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout);
  sdk::Status Check(sdk::HostContext& host, const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout, const std::string& what);

  VmSettings settings_;
  std::string powershell_;
};

}  // namespace hakit::hyperv
