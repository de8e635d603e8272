#include "hakit/sqlserver/sqlserver_module.h"

#include <thread>
#include <utility>

#include "hakit/sqlserver/tds_prelogin.h"

namespace hakit::sqlserver {

using sdk::Result;
using sdk::Status;

namespace {

std::string Get(const std::map<std::string, std::string>& vars, const std::string& key,
                const std::string& fallback) {
  auto it = vars.find(key);
  return it == vars.end() || it->second.empty() ? fallback : it->second;
}

Result<long> ParseNumber(const std::map<std::string, std::string>& vars, const std::string& key,
                         long fallback, long min, long max) {
  auto it = vars.find(key);
  if (it == vars.end() || it->second.empty()) return fallback;
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != it->second.size() || v < min || v > max) {
    return Status::InvalidArgument("<user><var name=\"" + key + "\"> value \"" + it->second +
                                   "\": expected a number from " + std::to_string(min) + " to " +
                                   std::to_string(max));
  }
  return v;
}

}  // namespace

Platform ThisPlatform() {
#ifdef _WIN32
  return Platform::kWindows;
#else
  return Platform::kLinux;
#endif
}

Result<SqlServerSettings> ParseSettings(const std::map<std::string, std::string>& vars,
                                        Platform platform) {
  SqlServerSettings s;
  s.platform = platform;
  s.instance = Get(vars, "SQLSERVER_INSTANCE", "MSSQLSERVER");
  const bool windows = platform == Platform::kWindows;
  const std::string root =
      "C:\\Program Files\\Microsoft SQL Server\\MSSQL16." + s.instance + "\\MSSQL";
  s.data_dir = Get(vars, "SQLSERVER_DATA", windows ? root + "\\DATA" : "/var/opt/mssql/data");
  s.log_dir = Get(vars, "SQLSERVER_LOG", windows ? root + "\\Log" : "/var/opt/mssql/log");
  s.address = Get(vars, "SQLSERVER_ADDR", "127.0.0.1");
  auto port = ParseNumber(vars, "SQLSERVER_PORT", 1433, 1, 65535);
  if (!port.ok()) return port.status();
  s.port = static_cast<std::uint16_t>(*port);
  s.service_manager = Get(vars, "SQLSERVER_SERVICE_MANAGER", windows ? "scm" : "systemd");
  if (s.service_manager != "systemd" && s.service_manager != "scm") {
    return Status::InvalidArgument("<user><var name=\"SQLSERVER_SERVICE_MANAGER\"> value \"" +
                                   s.service_manager + "\": expected systemd or scm");
  }
  std::string default_service = "mssql-server";
  if (s.service_manager == "scm") {
    default_service = s.instance == "MSSQLSERVER" ? "MSSQLSERVER" : "MSSQL$" + s.instance;
  }
  s.service = Get(vars, "SQLSERVER_SERVICE", default_service);
  s.process = Get(vars, "SQLSERVER_PROCESS", "sqlservr");
  auto wait = ParseNumber(vars, "SQLSERVER_START_WAIT", 60, 1, 86400);
  if (!wait.ok()) return wait.status();
  s.start_wait = std::chrono::seconds(*wait);
  s.systemctl = Get(vars, "SYSTEMCTL", "systemctl");
  if (s.data_dir == s.log_dir) {
    return Status::InvalidArgument("SQLSERVER_DATA and SQLSERVER_LOG are the same dir " +
                                   s.data_dir + ": give the log its own");
  }
  return s;
}

std::unique_ptr<ServiceManager> MakeServiceManager(const SqlServerSettings& s) {
  if (s.service_manager == "scm") return std::make_unique<WindowsScmServiceManager>(s.service);
  return std::make_unique<SystemdServiceManager>(s.service, s.systemctl);
}

SqlServerModule::SqlServerModule(SqlServerSettings settings,
                                 std::unique_ptr<ServiceManager> services, std::string bin_dir)
    : settings_(std::move(settings)),
      services_(std::move(services)),
      bin_dir_(std::move(bin_dir)) {}

Status SqlServerModule::Describe(sdk::ModuleDescription* out) {
  for (const std::string& dir : {settings_.data_dir, settings_.log_dir}) {
    sdk::ReplicatedDirSpec spec;
    spec.path = dir;
    out->replicated_dirs.push_back(spec);
  }
  sdk::CheckerSpec process;
  process.kind = "process";
  process.ident = "sqlserver_process";
  process.params = {{"name", settings_.process}};
  out->checkers.push_back(process);
  sdk::CheckerSpec tds;
  tds.kind = "custom";
  tds.ident = "sqlserver_tds";
  tds.params = {{"command", bin_dir_ + "/hakit-tds-probe " + settings_.address + " " +
                                std::to_string(settings_.port) + " " +
                                std::to_string(tds.timeout.count())}};
  out->checkers.push_back(tds);
  return Status::Ok();
}

Status SqlServerModule::RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) {
  switch (hook) {
    case sdk::Hook::kStartPrim:
      return StartPrim(args, host);
    case sdk::Hook::kStopPrim: {
      Status s = services_->Stop(host, args.force, args.timeout);
      if (!s.ok())
        host.Log(sdk::LogLevel::kError, "stopping " + services_->Describe() + ": " + s.message());
      return s;
    }
    default:
      return Status::Ok();
  }
}

Status SqlServerModule::StartPrim(const sdk::HookArgs& args, sdk::HostContext& host) {
  if (Status s = services_->Start(host, args.timeout); !s.ok()) {
    s = s.WithContext("starting " + services_->Describe());
    host.Log(sdk::LogLevel::kError, s.message());
    return s;
  }
  // A started service is not yet a server that answers: wait for TDS.
  const auto deadline = std::chrono::steady_clock::now() + settings_.start_wait;
  Status last;
  for (;;) {
    auto r = ProbeTds(settings_.address, settings_.port, std::chrono::milliseconds(2000));
    if (r.ok()) {
      host.Log(sdk::LogLevel::kInfo, "SQL Server " + r->ToString() + " answers PRELOGIN on " +
                                         settings_.address + ":" + std::to_string(settings_.port));
      return Status::Ok();
    }
    last = r.status();
    // Something else answering on the port will not turn into SQL Server.
    if (last.code() == Status::Code::kInvalidArgument) break;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  Status s = Status::Failed(services_->Describe() + " started but " + last.message());
  host.Log(sdk::LogLevel::kError, s.message());
  return s;
}

}  // namespace hakit::sqlserver
