// ServiceManager: the seam through which the SQL Server module starts and
// stops the database service. Linux: systemd (`systemctl` on the
// `mssql-server` unit); Windows: the service control manager (MSSQLSERVER or
// MSSQL$NAME), through PowerShell's service cmdlets. Both build their
// commands here and run them through the HostContext, so they compile and
// are tested on Linux; only systemd's are run for real on this platform.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "hakit/sdk/host_context.h"
#include "hakit/sdk/status.h"

namespace hakit::sqlserver {

class ServiceManager {
 public:
  ServiceManager() = default;
  ServiceManager(const ServiceManager&) = delete;
  ServiceManager& operator=(const ServiceManager&) = delete;
  virtual ~ServiceManager() = default;

  // Starts the service and returns once the service manager reports it
  // started (not once SQL Server accepts logins: the module probes that).
  // Failed, naming the command and how it ended, otherwise. `timeout` bounds
  // each command; zero means none. Called from hook threads only.
  virtual sdk::Status Start(sdk::HostContext& host, std::chrono::milliseconds timeout) = 0;

  // Stops the service. With `force`, kills its process instead of asking
  // (the second call of a stop hook, after a failed or late first one).
  // Stopping a service that does not run succeeds.
  virtual sdk::Status Stop(sdk::HostContext& host, bool force,
                           std::chrono::milliseconds timeout) = 0;

  // "systemd unit mssql-server", for messages.
  virtual std::string Describe() const = 0;
};

// systemd: `systemctl start|stop UNIT`; force: `systemctl kill
// --signal=SIGKILL UNIT` then `systemctl stop UNIT`.
class SystemdServiceManager : public ServiceManager {
 public:
  // `systemctl`: the program (a name looked up in PATH, or a path).
  SystemdServiceManager(std::string unit, std::string systemctl = "systemctl");

  std::vector<std::string> StartArgv() const;
  std::vector<std::vector<std::string>> StopArgvs(bool force) const;

  sdk::Status Start(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  sdk::Status Stop(sdk::HostContext& host, bool force, std::chrono::milliseconds timeout) override;
  std::string Describe() const override { return "systemd unit " + unit_; }

 private:
  std::string unit_;
  std::string systemctl_;
};

// Windows service control manager, through powershell.exe:
//   start: Start-Service -Name 'SVC'            (waits for RUNNING)
//   stop:  Stop-Service -Name 'SVC' -Force      (-Force: dependent services
//                                                such as SQL Agent too)
//   force: the service's process, from Win32_Service, Stop-Process -Force.
// Not run on Windows yet: only its command lines are tested.
class WindowsScmServiceManager : public ServiceManager {
 public:
  explicit WindowsScmServiceManager(std::string service, std::string powershell = "powershell.exe");

  std::vector<std::string> StartArgv() const;
  std::vector<std::vector<std::string>> StopArgvs(bool force) const;

  sdk::Status Start(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  sdk::Status Stop(sdk::HostContext& host, bool force, std::chrono::milliseconds timeout) override;
  std::string Describe() const override { return "Windows service " + service_; }

 private:
  std::vector<std::string> PowerShell(const std::string& script) const;

  std::string service_;
  std::string powershell_;
};

// Runs each command in turn through `host`, stopping at the first failure,
// which it returns naming the command line and how it ended.
sdk::Status RunAll(sdk::HostContext& host, const std::vector<std::vector<std::string>>& argvs,
                   std::chrono::milliseconds timeout);

}  // namespace hakit::sqlserver
