// The PostgreSQL module library as hakitd loads it (host/loader, ABI check,
// factory), its settings checked, and its hooks run through the real
// ModuleHostContext against a real PostgreSQL server: initdb'ed here, started
// with pg_ctl as user postgres, stopped fast and immediately, restarted after
// a kill -9. Needs root and the postgresql-15 package (skips otherwise).
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "hakit/sdk/module.h"
#include "loaded_module_test.h"

namespace hakit::postgresql {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sdk::Hook;
using sdk::HookArgs;
using sdk::Status;

constexpr const char* kLibrary = HAKIT_BINARY_DIR "/modules/postgresql.so";
constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";

int Shell(const std::string& cmd) { return std::system(cmd.c_str()); }

class postgresql_Module : public loader::LoadedModuleTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the server runs as user postgres)";
    if (::getpwnam("postgres") == nullptr) GTEST_SKIP() << "no user postgres (postgresql-15)";
    if (!fs::exists(std::string(kPgBin) + "/pg_ctl")) GTEST_SKIP() << "postgresql-15 missing";
    ASSERT_NO_FATAL_FAILURE(MakeRoot(kLibrary, "pg"));
    port_ = std::to_string(40000 + ::getpid() % 10000);
    vars_ = {{"PGDATA", (dir_ / "pgdata").string()},
             {"PGPORT", port_},
             {"PGLISTEN", "127.0.0.1"},
             {"PGSOCKETDIR", (dir_ / "sock").string()}};
  }

  void TearDown() override {
    if (dir_.empty()) return;
    // A server a failed case left running.
    Shell("setpriv --reuid=postgres --regid=postgres --init-groups " + std::string(kPgBin) +
          "/pg_ctl stop -D " + (dir_ / "pgdata").string() + " -m immediate >/dev/null 2>&1");
    RemoveRoot();
  }

  void InitDb() {
    ASSERT_EQ(Shell("mkdir -m 0700 " + vars_["PGDATA"] + " && chown postgres: " + vars_["PGDATA"]),
              0);
    ASSERT_EQ(Shell("setpriv --reuid=postgres --regid=postgres --init-groups " +
                    std::string(kPgBin) + "/initdb -D " + vars_["PGDATA"] +
                    " -A trust -U postgres --no-sync >" + (dir_ / "initdb.log").string() +
                    " 2>&1"),
              0)
        << (dir_ / "initdb.log").string();
  }

  std::string Query(const std::string& sql) {
    std::string out = (dir_ / "psql.out").string();
    int rc = Shell(std::string(kPgBin) + "/psql -X -q -At -h " + vars_["PGSOCKETDIR"] + " -p " +
                   port_ + " -U postgres -d postgres -c \"" + sql + "\" >" + out + " 2>&1");
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return rc == 0 ? text : "psql failed: " + text;
  }

  std::string port_;
};

TEST_F(postgresql_Module, RefusesBadSettingsNamingTheVariable) {
  EXPECT_NE(Refusal({{"PGPORT", "70000"}}).find("PGPORT"), std::string::npos);
  EXPECT_NE(Refusal({{"PGPORT", "70000"}}).find("userconfig.xml"), std::string::npos);
  EXPECT_NE(Refusal({{"PGOSUSER", "no_such_user_x"}}).find("does not exist"), std::string::npos);
  std::string missing = Refusal({{"PGBIN", "/nonexistent/bin"}});
  EXPECT_NE(missing.find("/nonexistent/bin/pg_ctl is missing"), std::string::npos) << missing;
  std::string version = Refusal({{"PGVERSION", "9"}});
  EXPECT_NE(version.find("/usr/lib/postgresql/9/bin/pg_ctl is missing"), std::string::npos)
      << version;
  EXPECT_NE(Refusal({{"PGDATA", "relative/data"}}).find("not an absolute path"), std::string::npos);
  EXPECT_NE(Refusal({{"PGLISTEN", "a' -c x='y"}}).find("quotes"), std::string::npos);
  EXPECT_EQ(Refusal({}), "accepted");
}

TEST_F(postgresql_Module, DescribesItsDataDirAndCheckers) {
  auto m = Load(vars_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  sdk::ModuleDescription d;
  ASSERT_TRUE((*m)->Describe(&d).ok());
  ASSERT_EQ(d.replicated_dirs.size(), 1u);
  EXPECT_EQ(d.replicated_dirs[0].path, vars_["PGDATA"]);
  EXPECT_EQ(d.replicated_dirs[0].not_replicated, (std::vector<std::string>{"pg_stat_tmp", "postmaster.pid", "postmaster.opts"}));
  ASSERT_EQ(d.checkers.size(), 2u);
  EXPECT_EQ(d.checkers[0].kind, "process");
  EXPECT_EQ(d.checkers[0].params.at("name"), "postgres");
  EXPECT_NE(d.checkers[0].params.at("argregex").find("pgdata"), std::string::npos);
  EXPECT_EQ(d.checkers[1].kind, "tcp");
  EXPECT_EQ(d.checkers[1].params.at("addr"), "127.0.0.1");
  EXPECT_EQ(d.checkers[1].params.at("port"), port_);
}

TEST_F(postgresql_Module, StartPrimExplainsAnUnusableDataDir) {
  auto m = Load(vars_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto start = [&] { return (*m)->RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_); };
  Status s = start();
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s.message();

  const fs::path data = vars_["PGDATA"];
  fs::create_directories(data);
  fs::permissions(data, fs::perms::owner_all);
  s = start();
  EXPECT_NE(s.message().find("not by postgres"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("chown -R postgres"), std::string::npos) << s.message();

  ASSERT_EQ(Shell("chown postgres: " + data.string()), 0);
  s = start();
  EXPECT_NE(s.message().find("not initialised (no PG_VERSION): run initdb"), std::string::npos)
      << s.message();

  std::ofstream(data / "PG_VERSION") << "14\n";
  s = start();
  EXPECT_NE(s.message().find("belongs to PostgreSQL 14"), std::string::npos) << s.message();

  fs::permissions(data, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  s = start();
  EXPECT_NE(s.message().find("chmod 0700"), std::string::npos) << s.message();
  // Each refusal went to the module log too.
  EXPECT_NE(ModuleLog().find("belongs to PostgreSQL 14"), std::string::npos);
}

TEST_F(postgresql_Module, StartsStopsAndRecoversARealServer) {
  ASSERT_NO_FATAL_FAILURE(InitDb());
  auto m = Load(vars_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  sdk::Module& mod = **m;

  // Stopping what does not run succeeds (stop hooks run even after a failed start).
  EXPECT_TRUE(mod.RunHook(Hook::kStopPrim, Args("ALONE", "STOP"), *host_).ok());

  Status s = mod.RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Query("CREATE TABLE t(i int); INSERT INTO t VALUES (1); SELECT count(*) FROM t"),
            "1\n");
  // The server runs as postgres, not root.
  std::ifstream pidfile(vars_["PGDATA"] + "/postmaster.pid");
  pid_t pid = 0;
  pidfile >> pid;
  ASSERT_GT(pid, 0);
  struct stat st;
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pid)).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getpwnam("postgres")->pw_uid);
  // A second start_prim finds it running.
  EXPECT_TRUE(mod.RunHook(Hook::kStartPrim, Args("ALONE", "ALONE"), *host_).ok());

  s = mod.RunHook(Hook::kStopPrim, Args("ALONE", "STOP"), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_NE(Query("SELECT 1").find("psql failed"), std::string::npos);

  // kill -9 of the postmaster and its backends leaves a stale postmaster.pid:
  // the next start recovers from the WAL, the committed row is there.
  ASSERT_TRUE(mod.RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_).ok());
  EXPECT_EQ(Query("INSERT INTO t VALUES (2); SELECT count(*) FROM t"), "2\n");
  std::ifstream again(vars_["PGDATA"] + "/postmaster.pid");
  again >> pid;
  const std::string p = std::to_string(pid);
  // Frozen first, so that it forks nothing while its children die.
  Shell("kill -STOP " + p + "; pkill -KILL -P " + p + "; kill -KILL " + p);
  for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(fs::exists(vars_["PGDATA"] + "/postmaster.pid"));
  s = mod.RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Query("SELECT count(*) FROM t"), "2\n");

  // The forced stop is an immediate shutdown.
  s = mod.RunHook(Hook::kStopPrim, Args("ALONE", "STOP", /*force=*/true), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_NE(ReadFile(host_->user_log_path()).find("server stopped"), std::string::npos);
  EXPECT_NE(ModuleLog().find("mode immediate"), std::string::npos) << ModuleLog();
}

}  // namespace
}  // namespace hakit::postgresql
