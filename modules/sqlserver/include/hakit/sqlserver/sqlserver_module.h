// The SQL Server module: SQL Server's data and log directories replicated,
// the service started and stopped through a ServiceManager, a process
// checker on sqlservr and a TDS PRELOGIN health check on its port.
//
// Settings come from the module's <user><var> values (all optional):
//   SQLSERVER_INSTANCE         instance name (MSSQLSERVER, the default instance)
//   SQLSERVER_DATA, SQLSERVER_LOG
//                              replicated dirs. Linux: /var/opt/mssql/data and
//                              /var/opt/mssql/log. Windows, under
//                              C:\Program Files\Microsoft SQL Server:
//                              MSSQL16.<INSTANCE>\MSSQL\DATA and ...\Log
//   SQLSERVER_ADDR, SQLSERVER_PORT
//                              where the TDS probe connects (127.0.0.1, 1433)
//   SQLSERVER_SERVICE_MANAGER  systemd (Linux default) or scm (Windows default)
//   SQLSERVER_SERVICE          systemd unit (mssql-server) or Windows service
//                              (MSSQLSERVER; MSSQL$<INSTANCE> for a named one)
//   SQLSERVER_PROCESS          process the process checker watches (sqlservr)
//   SQLSERVER_START_WAIT       seconds start_prim waits for a PRELOGIN answer
//                              after the service started (60)
//   SYSTEMCTL                  the systemctl program (systemctl)
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "hakit/sdk/module.h"
#include "hakit/sqlserver/service_manager.h"

namespace hakit::sqlserver {

enum class Platform { kLinux, kWindows };

// The platform this library was built for.
Platform ThisPlatform();

struct SqlServerSettings {
  Platform platform = Platform::kLinux;
  std::string instance = "MSSQLSERVER";
  std::string data_dir;
  std::string log_dir;
  std::string address = "127.0.0.1";
  std::uint16_t port = 1433;
  std::string service_manager;  // "systemd" or "scm"
  std::string service;
  std::string process = "sqlservr";
  std::chrono::milliseconds start_wait{60000};
  std::string systemctl = "systemctl";
};

// Reads the settings from <user><var> values, with `platform`'s defaults.
// InvalidArgument naming the variable for a bad port, wait, manager or an
// empty directory.
sdk::Result<SqlServerSettings> ParseSettings(const std::map<std::string, std::string>& vars,
                                             Platform platform);

// The ServiceManager the settings name.
std::unique_ptr<ServiceManager> MakeServiceManager(const SqlServerSettings& settings);

class SqlServerModule : public sdk::Module {
 public:
  // `bin_dir`: the module's bin/ (where hakit-tds-probe is installed).
  SqlServerModule(SqlServerSettings settings, std::unique_ptr<ServiceManager> services,
                  std::string bin_dir);

  // Replicated: data_dir and log_dir. Checkers: "process" on `process`
  // (params name), "custom" running `bin_dir/hakit-tds-probe ADDR PORT
  // TIMEOUT_MS` (params command); both restart the module on failure.
  sdk::Status Describe(sdk::ModuleDescription* out) override;

  // start_prim: starts the service, then waits (SQLSERVER_START_WAIT) until
  // the port answers PRELOGIN; fails if it answers something else or never.
  // stop_prim: stops the service (force: kills it). Other hooks: nothing.
  sdk::Status RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) override;

  const SqlServerSettings& settings() const { return settings_; }

 private:
  sdk::Status StartPrim(const sdk::HookArgs& args, sdk::HostContext& host);

  SqlServerSettings settings_;
  std::unique_ptr<ServiceManager> services_;
  std::string bin_dir_;
};

}  // namespace hakit::sqlserver
