// The PostgreSQL module: makes one PostgreSQL cluster (a data directory)
// highly available. The data directory is replicated; the server runs on the
// primary only, started with pg_ctl as the configured system user, stopped
// with `pg_ctl stop -m fast` and, on the forced second call, `-m immediate`
// (then SIGKILL of the postmaster if even that did not end it). Crash
// recovery on the new primary replays the WAL that replication carried, so
// every commit acknowledged to a client is there after a failover.
//
// Settings: pg_settings.h. This library sees only the SDK.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "hakit/sdk/export.h"
#include "hakit/sdk/host_context.h"
#include "hakit/sdk/module.h"
#include "hakit/sdk/status.h"
#include "pg_settings.h"

namespace hakit::postgresql {
namespace {

using namespace std::chrono_literals;
using sdk::Status;

constexpr std::chrono::milliseconds kDefaultTimeout = 300s;

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

class PostgresModule : public sdk::Module {
 public:
  explicit PostgresModule(PgSettings s) : s_(std::move(s)) {}

  sdk::Status Describe(sdk::ModuleDescription* out) override {
    sdk::ReplicatedDirSpec dir;
    dir.path = s_.data_dir;
    // Statistics scratch files, rebuilt at start (PostgreSQL documents the
    // directory as safe to lose), and the running postmaster's lock file,
    // which names a process of the other node (pg_basebackup leaves both
    // out for the same reasons).
    dir.not_replicated = {"pg_stat_tmp", "postmaster.pid", "postmaster.opts"};
    out->replicated_dirs.push_back(dir);

    // The postmaster is the one postgres process started with -D PGDATA
    // (backends rewrite their command line to "postgres: ...").
    out->checkers.push_back(modules::ServerProcessChecker(
        "postmaster", "postgres", "-D \"?" + modules::RegexQuote(s_.data_dir) + "\"?( |$)"));
    out->checkers.push_back(
        modules::ServerPortChecker("postgresql_port", modules::LocalAddress(s_.listen), s_.port));
    return Status::Ok();
  }

  sdk::Status RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) override {
    return modules::RunOnPrimaryOnly(
        hook, host, [&] { return Start(args, host); }, [&] { return Stop(args, host); });
  }

 private:
  static std::chrono::milliseconds Budget(const sdk::HookArgs& args) {
    return modules::HookBudget(args, kDefaultTimeout);
  }

  // pg_ctl's own -t, a little under the hook's budget so that pg_ctl
  // reports the timeout itself rather than being killed.
  static std::string PgCtlSeconds(std::chrono::milliseconds budget) {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(budget).count() - 1;
    return std::to_string(s < 1 ? 1 : s);
  }

  sdk::CommandResult RunPgCtl(sdk::HostContext& host, std::vector<std::string> argv,
                              std::chrono::milliseconds timeout) {
    sdk::Command c;
    c.argv = modules::AsUser(s_.user, std::move(argv));
    c.timeout = timeout;
    // The user may not be allowed into the module directory.
    c.working_dir = "/";
    c.log_output = true;
    return host.RunCommand(c);
  }

  // The postmaster of PGDATA on this node, or 0 (see modules::ServerPid).
  pid_t PostmasterPid() const {
    return modules::ServerPid(s_.data_dir + "/postmaster.pid", "postgres", s_.data_dir);
  }

  // The socket directory and the log file, which the server (not root) writes.
  Status PrepareFiles() {
    struct stat st;
    if (::stat(s_.socket_dir.c_str(), &st) != 0) {
      if (::mkdir(s_.socket_dir.c_str(), 02775) != 0 ||
          ::chown(s_.socket_dir.c_str(), s_.user.uid, s_.user.gid) != 0) {
        return Status::IoError("cannot create the socket directory " + s_.socket_dir +
                               " (PGSOCKETDIR): " + std::strerror(errno));
      }
    } else if (!S_ISDIR(st.st_mode)) {
      return Status::InvalidArgument(s_.socket_dir + " (PGSOCKETDIR) is not a directory");
    }
    if (::stat(s_.log_file.c_str(), &st) != 0) {
      std::ofstream create(s_.log_file, std::ios::app);
      if (!create) return Status::IoError("cannot create the server log " + s_.log_file + " (PGLOG)");
    }
    if (::stat(s_.log_file.c_str(), &st) == 0 && st.st_uid != s_.user.uid &&
        ::chown(s_.log_file.c_str(), s_.user.uid, s_.user.gid) != 0) {
      return Status::IoError("cannot give the server log " + s_.log_file + " to " + s_.user.name +
                             ": " + std::strerror(errno));
    }
    return Status::Ok();
  }

  Status Start(const sdk::HookArgs& args, sdk::HostContext& host) {
    if (Status st = CheckDataDir(s_); !st.ok()) return st;
    if (Status st = PrepareFiles(); !st.ok()) return st;
    if (pid_t pid = PostmasterPid()) {
      host.Log(sdk::LogLevel::kInfo, "PostgreSQL already runs on " + s_.data_dir + " (pid " +
                                         std::to_string(pid) + ")");
      return Status::Ok();
    }
    // Lock files no postmaster of this data dir holds on this node were
    // left by a crash; their PID may since belong to another process, which
    // PostgreSQL would take for a live postmaster.
    for (const std::string& lock :
         {s_.data_dir + "/postmaster.pid",
          s_.socket_dir + "/.s.PGSQL." + std::to_string(s_.port) + ".lock"}) {
      if (::access(lock.c_str(), F_OK) != 0) continue;
      host.Log(sdk::LogLevel::kWarning,
               "removing " + lock + ", left by a postmaster that no longer runs on this node");
      if (::unlink(lock.c_str()) != 0 && errno != ENOENT) {
        return Status::IoError("cannot remove the stale " + lock + ": " + std::strerror(errno));
      }
    }
    std::string options = "-p " + std::to_string(s_.port) + " -k '" + s_.socket_dir +
                          "' -c listen_addresses='" + s_.listen + "'";
    if (!s_.config_file.empty()) options += " -c config_file='" + s_.config_file + "'";
    auto budget = Budget(args);
    host.Log(sdk::LogLevel::kInfo, "starting PostgreSQL " + s_.version + " on " + s_.data_dir +
                                       ", port " + std::to_string(s_.port) + ", as " + s_.user.name);
    sdk::CommandResult r = RunPgCtl(
        host, {s_.PgCtl(), "start", "-D", s_.data_dir, "-w", "-t", PgCtlSeconds(budget), "-l",
               s_.log_file, "-o", options},
        budget);
    if (!r.ok()) {
      return Status::Failed(modules::DescribeOutcome("pg_ctl start", r) + "; server log " + s_.log_file + ": " +
                            modules::TailFile(s_.log_file, 5));
    }
    host.Log(sdk::LogLevel::kInfo, "PostgreSQL started (pid " + std::to_string(PostmasterPid()) +
                                       ") after " + Millis(r.duration));
    return Status::Ok();
  }

  Status Stop(const sdk::HookArgs& args, sdk::HostContext& host) {
    pid_t pid = PostmasterPid();
    if (pid == 0) {
      host.Log(sdk::LogLevel::kInfo, "PostgreSQL is not running on " + s_.data_dir);
      return Status::Ok();
    }
    const std::string mode = args.force ? "immediate" : "fast";
    auto budget = Budget(args);
    host.Log(sdk::LogLevel::kInfo,
             "stopping PostgreSQL (pid " + std::to_string(pid) + ", mode " + mode + ")");
    sdk::CommandResult r = RunPgCtl(
        host, {s_.PgCtl(), "stop", "-D", s_.data_dir, "-m", mode, "-w", "-t", PgCtlSeconds(budget)},
        budget);
    if (r.ok()) {
      host.Log(sdk::LogLevel::kInfo, "PostgreSQL stopped after " + Millis(r.duration));
      return Status::Ok();
    }
    if (!args.force) return Status::Failed(modules::DescribeOutcome("pg_ctl stop -m fast", r));
    // Forced and even an immediate shutdown failed: kill the postmaster;
    // its backends notice its death and exit.
    host.Log(sdk::LogLevel::kWarning, modules::DescribeOutcome("pg_ctl stop -m immediate", r) +
                                          ": killing the postmaster (pid " + std::to_string(pid) +
                                          ") with SIGKILL");
    ::kill(pid, SIGKILL);
    if (!modules::WaitGone(pid, s_.data_dir + "/postmaster.pid", "postgres", s_.data_dir, 5000)) {
      return Status::Failed("the postmaster (pid " + std::to_string(pid) + ") survived SIGKILL");
    }
    return Status::Ok();
  }

  PgSettings s_;
};

sdk::Result<std::unique_ptr<sdk::Module>> MakePostgresModule(const sdk::ModuleSettings& settings) {
  auto s = ParseSettings(settings.vars, settings.userconfig_path, settings.paths);
  if (!s.ok()) return s.status();
  return std::unique_ptr<sdk::Module>(std::make_unique<PostgresModule>(std::move(*s)));
}

}  // namespace
}  // namespace hakit::postgresql

HAKIT_MODULE_EXPORT(hakit::postgresql::MakePostgresModule)
