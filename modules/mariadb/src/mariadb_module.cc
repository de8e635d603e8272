// The MariaDB module: makes one MariaDB (MySQL-compatible) server highly
// available. Its data directory is replicated; mariadbd runs on the primary
// only, as the configured system user, started detached with its options on
// the command line (no my.cnf unless MARIADB_CONFIG names one) and stopped
// with SIGTERM (a clean shutdown), SIGKILL on the forced second call. InnoDB's
// crash recovery on the new primary replays the replicated redo log.
//
// Settings (<user><var> in userconfig.xml; defaults after the name):
//   MARIADB_DATADIR  /var/lib/mysql          data directory (replicated)
//   MARIADB_PORT     3306
//   MARIADB_OSUSER   mysql                   system user running mariadbd
//   MARIADB_BIN      /usr/sbin/mariadbd
//   MARIADB_BIND     *                       bind-address
//   MARIADB_SOCKET   /run/mysqld/mysqld.sock
//   MARIADB_CONFIG   (none: --no-defaults)   option file (--defaults-file)
//   MARIADB_OPTIONS  (none)                  more server options, space-separated
//   MARIADB_LOG      LOGDIR/mariadb.log      the server's output
//
// This library sees only the SDK (and the shared helpers of modules/common).

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hakit/modules/server_util.h"
#include "hakit/sdk/export.h"
#include "hakit/sdk/host_context.h"
#include "hakit/sdk/module.h"
#include "hakit/sdk/status.h"

namespace hakit::mariadb {
namespace {

using namespace std::chrono_literals;
using sdk::Result;
using sdk::Status;

constexpr std::chrono::milliseconds kDefaultTimeout = 300s;

struct Settings {
  std::string data_dir;
  int port = 3306;
  modules::SystemUser user;
  std::string server;
  std::string bind = "*";
  std::string socket;
  std::string config_file;
  std::vector<std::string> options;
  std::string log_file;

  std::string PidFile() const { return data_dir + "/mariadbd.pid"; }
  std::string SocketDir() const { return socket.substr(0, socket.rfind('/')); }
};

Result<Settings> ParseSettings(const sdk::ModuleSettings& m) {
  const std::string& uc = m.userconfig_path;
  Settings s;
  s.data_dir = modules::VarOr(m.vars, "MARIADB_DATADIR", "/var/lib/mysql");
  s.server = modules::VarOr(m.vars, "MARIADB_BIN", "/usr/sbin/mariadbd");
  s.bind = modules::VarOr(m.vars, "MARIADB_BIND", s.bind);
  s.socket = modules::VarOr(m.vars, "MARIADB_SOCKET", "/run/mysqld/mysqld.sock");
  s.config_file = modules::VarOr(m.vars, "MARIADB_CONFIG", "");
  s.log_file = modules::VarOr(m.vars, "MARIADB_LOG", m.paths.log_dir + "/mariadb.log");
  for (auto [var, value] :
       {std::pair{"MARIADB_DATADIR", &s.data_dir}, {"MARIADB_BIN", &s.server},
        {"MARIADB_SOCKET", &s.socket}, {"MARIADB_LOG", &s.log_file}}) {
    if (value->empty() || (*value)[0] != '/') {
      return modules::BadVar(uc, var, "\"" + *value + "\" is not an absolute path");
    }
    while (value->size() > 1 && value->back() == '/') value->pop_back();
  }
  if (!s.config_file.empty() && s.config_file[0] != '/') {
    return modules::BadVar(uc, "MARIADB_CONFIG", "\"" + s.config_file + "\" is not an absolute path");
  }
  std::istringstream options(modules::VarOr(m.vars, "MARIADB_OPTIONS", ""));
  for (std::string o; options >> o;) {
    if (o.rfind("--", 0) != 0) return modules::BadVar(uc, "MARIADB_OPTIONS", "\"" + o + "\" is not an --option");
    s.options.push_back(o);
  }
  if (Status st = modules::ParsePort(m.vars, "MARIADB_PORT", "3306", uc, &s.port); !st.ok()) {
    return st;
  }

  auto user = modules::LookupUser(modules::VarOr(m.vars, "MARIADB_OSUSER", "mysql"));
  if (!user.ok()) return modules::BadVar(uc, "MARIADB_OSUSER", user.status().message());
  s.user = *user;
  if (Status st = modules::CheckExecutable(
          s.server, "install mariadb-server, or set MARIADB_BIN in " + uc);
      !st.ok()) {
    return st.WithContext("MariaDB server");
  }
  return s;
}

// Whether a server accepts connections on the Unix socket.
bool Accepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

class MariadbModule : public sdk::Module {
 public:
  explicit MariadbModule(Settings s) : s_(std::move(s)) {}

  Status Describe(sdk::ModuleDescription* out) override {
    sdk::ReplicatedDirSpec dir;
    dir.path = s_.data_dir;
    out->replicated_dirs.push_back(dir);

    out->checkers.push_back(modules::ServerProcessChecker(
        "mariadbd", "mariadbd", "--datadir=" + modules::RegexQuote(s_.data_dir) + "( |$)"));
    out->checkers.push_back(
        modules::ServerPortChecker("mariadb_port", modules::LocalAddress(s_.bind), s_.port));
    return Status::Ok();
  }

  Status RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) override {
    return modules::RunOnPrimaryOnly(
        hook, host, [&] { return Start(args, host); }, [&] { return Stop(args, host); });
  }

 private:
  pid_t Pid() const { return modules::ServerPid(s_.PidFile(), "mariadbd", s_.data_dir); }

  static std::chrono::milliseconds Budget(const sdk::HookArgs& args) {
    return modules::HookBudget(args, kDefaultTimeout);
  }

  Status CheckDataDir() const {
    if (Status st = modules::CheckDataDirOwner(s_.data_dir, "MARIADB_DATADIR", s_.user,
                                               /*private_mode=*/false);
        !st.ok()) {
      return st;
    }
    struct stat st;
    if (::stat((s_.data_dir + "/mysql").c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::NotFound("data directory " + s_.data_dir +
                              " is not initialised (no mysql/ system database): run "
                              "mariadb-install-db --user=" + s_.user.name + " --datadir=" +
                              s_.data_dir);
    }
    return Status::Ok();
  }

  // The socket directory and the log, which the server (not root) writes.
  Status PrepareFiles() {
    struct stat st;
    const std::string dir = s_.SocketDir();
    if (::stat(dir.c_str(), &st) != 0) {
      if (::mkdir(dir.c_str(), 0755) != 0 || ::chown(dir.c_str(), s_.user.uid, s_.user.gid) != 0) {
        return Status::IoError("cannot create the socket directory " + dir + " (MARIADB_SOCKET): " +
                               std::strerror(errno));
      }
    }
    std::ofstream create(s_.log_file, std::ios::app);
    if (!create) return Status::IoError("cannot open the server log " + s_.log_file + " (MARIADB_LOG)");
    return Status::Ok();
  }

  Status Start(const sdk::HookArgs& args, sdk::HostContext& host) {
    if (Status st = CheckDataDir(); !st.ok()) return st;
    if (Status st = PrepareFiles(); !st.ok()) return st;
    if (pid_t pid = Pid()) {
      host.Log(sdk::LogLevel::kInfo, "MariaDB already runs on " + s_.data_dir + " (pid " +
                                         std::to_string(pid) + ")");
      return Status::Ok();
    }
    std::vector<std::string> server = {s_.server};
    server.push_back(s_.config_file.empty() ? "--no-defaults"
                                            : "--defaults-file=" + s_.config_file);
    for (const std::string& o :
         {"--datadir=" + s_.data_dir, "--port=" + std::to_string(s_.port),
          "--bind-address=" + s_.bind, "--socket=" + s_.socket, "--pid-file=" + s_.PidFile()}) {
      server.push_back(o);
    }
    server.insert(server.end(), s_.options.begin(), s_.options.end());
    // mariadbd does not detach: a shell starts it in the background, its
    // output in the server log (not our pipes, which would keep the command
    // running).
    sdk::Command c;
    c.argv = {"/bin/sh", "-c", "\"$0\" \"$@\" </dev/null >>\"$HAKIT_SERVER_LOG\" 2>&1 &"};
    for (auto& a : modules::AsUser(s_.user, server)) c.argv.push_back(a);
    c.extra_env = {{"HAKIT_SERVER_LOG", s_.log_file}};
    c.working_dir = "/";
    c.timeout = 10s;
    host.Log(sdk::LogLevel::kInfo, "starting MariaDB on " + s_.data_dir + ", port " +
                                       std::to_string(s_.port) + ", as " + s_.user.name);
    auto begin = std::chrono::steady_clock::now();
    sdk::CommandResult r = host.RunCommand(c);
    if (!r.ok()) return Status::Failed(modules::DescribeOutcome("starting mariadbd", r));
    // Ready once it accepts connections (after InnoDB's recovery); failed if
    // it went away after writing its pid file, or never got that far.
    const auto deadline = begin + Budget(args);
    pid_t seen = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t pid = Pid();
      if (pid != 0) seen = pid;
      if (pid != 0 && Accepts(s_.socket)) {
        auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - begin);
        host.Log(sdk::LogLevel::kInfo, "MariaDB ready (pid " + std::to_string(pid) + ") after " +
                                           std::to_string(took.count()) + " ms");
        return Status::Ok();
      }
      if (seen != 0 && pid == 0) {
        return Status::Failed("mariadbd (pid " + std::to_string(seen) +
                              ") exited during start-up; server log " + s_.log_file + ": " +
                              modules::TailFile(s_.log_file, 5));
      }
      std::this_thread::sleep_for(50ms);
    }
    if (seen != 0) ::kill(seen, SIGKILL);
    return Status::Timeout("MariaDB did not accept connections on " + s_.socket + " within " +
                           std::to_string(Budget(args).count()) + " ms; server log " +
                           s_.log_file + ": " + modules::TailFile(s_.log_file, 5));
  }

  Status Stop(const sdk::HookArgs& args, sdk::HostContext& host) {
    pid_t pid = Pid();
    if (pid == 0) {
      host.Log(sdk::LogLevel::kInfo, "MariaDB is not running on " + s_.data_dir);
      return Status::Ok();
    }
    // SIGTERM is mariadbd's clean shutdown; SIGKILL leaves InnoDB to recover.
    const int sig = args.force ? SIGKILL : SIGTERM;
    host.Log(sdk::LogLevel::kInfo, "stopping MariaDB (pid " + std::to_string(pid) + ", " +
                                       (args.force ? "SIGKILL" : "SIGTERM") + ")");
    ::kill(pid, sig);
    const int wait_ms = static_cast<int>(args.force ? 5000 : Budget(args).count());
    if (!modules::WaitGone(pid, s_.PidFile(), "mariadbd", s_.data_dir, wait_ms)) {
      return Status::Timeout("mariadbd (pid " + std::to_string(pid) + ") still runs " +
                             std::to_string(wait_ms) + " ms after " +
                             (args.force ? "SIGKILL" : "SIGTERM"));
    }
    host.Log(sdk::LogLevel::kInfo, "MariaDB stopped");
    return Status::Ok();
  }

  Settings s_;
};

Result<std::unique_ptr<sdk::Module>> MakeMariadbModule(const sdk::ModuleSettings& settings) {
  auto s = ParseSettings(settings);
  if (!s.ok()) return s.status();
  return std::unique_ptr<sdk::Module>(std::make_unique<MariadbModule>(std::move(*s)));
}

}  // namespace
}  // namespace hakit::mariadb

HAKIT_MODULE_EXPORT(hakit::mariadb::MakeMariadbModule)
