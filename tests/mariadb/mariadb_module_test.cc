// The MariaDB module library as hakitd loads it (host/loader), its settings
// checked and its hooks run through the real ModuleHostContext against a
// real mariadbd: started as user mysql, stopped cleanly, restarted after a
// kill -9 with every committed row. Needs root and mariadb-server.
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
#include "mariadb_test_util.h"

namespace hakit::mariadb {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sdk::Hook;
using sdk::HookArgs;
using sdk::Status;

constexpr const char* kLibrary = HAKIT_BINARY_DIR "/modules/mariadb.so";

int Shell(const std::string& cmd) { return std::system(cmd.c_str()); }

class mariadb_Module : public loader::LoadedModuleTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the server runs as user mysql)";
    if (!mariadbtest::Installed() || ::getpwnam("mysql") == nullptr) {
      GTEST_SKIP() << "mariadb-server is not installed";
    }
    ASSERT_NO_FATAL_FAILURE(MakeRoot(kLibrary, "db"));
    port_ = std::to_string(30000 + ::getpid() % 10000);
    vars_ = {{"MARIADB_DATADIR", (dir_ / "data").string()},
             {"MARIADB_PORT", port_},
             {"MARIADB_BIND", "127.0.0.1"},
             {"MARIADB_SOCKET", (dir_ / "sock" / "mysqld.sock").string()}};
  }

  void TearDown() override {
    if (dir_.empty()) return;
    std::ifstream pid(dir_ / "data" / "mariadbd.pid");
    pid_t p = 0;
    if (pid >> p && p > 0) ::kill(p, SIGKILL);  // what a failed case left running
    RemoveRoot();
  }

  std::string Query(const std::string& sql) {
    std::string out = (dir_ / "q.out").string();
    int rc = Shell("mariadb --no-defaults -N -B -h 127.0.0.1 -P " + port_ +
                   " -u hakit hakit -e \"" + sql + "\" >" + out + " 2>&1");
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return rc == 0 ? text : "query failed: " + text;
  }

  std::string port_;
};

TEST_F(mariadb_Module, RefusesBadSettingsNamingTheVariable) {
  EXPECT_NE(Refusal({{"MARIADB_PORT", "0"}}).find("MARIADB_PORT"), std::string::npos);
  EXPECT_NE(Refusal({{"MARIADB_OSUSER", "no_such_user_x"}}).find("does not exist"),
            std::string::npos);
  std::string missing = Refusal({{"MARIADB_BIN", "/nonexistent/mariadbd"}});
  EXPECT_NE(missing.find("/nonexistent/mariadbd is missing (install mariadb-server"),
            std::string::npos)
      << missing;
  EXPECT_NE(Refusal({{"MARIADB_DATADIR", "data"}}).find("not an absolute path"), std::string::npos);
  EXPECT_NE(Refusal({{"MARIADB_OPTIONS", "skip-log-bin"}}).find("not an --option"),
            std::string::npos);
  EXPECT_EQ(Refusal({}), "accepted");
}

TEST_F(mariadb_Module, DescribesItsDataDirAndCheckers) {
  auto m = Load(vars_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  sdk::ModuleDescription d;
  ASSERT_TRUE((*m)->Describe(&d).ok());
  ASSERT_EQ(d.replicated_dirs.size(), 1u);
  EXPECT_EQ(d.replicated_dirs[0].path, vars_["MARIADB_DATADIR"]);
  ASSERT_EQ(d.checkers.size(), 2u);
  EXPECT_EQ(d.checkers[0].params.at("name"), "mariadbd");
  EXPECT_EQ(d.checkers[1].params.at("addr"), "127.0.0.1");
  EXPECT_EQ(d.checkers[1].params.at("port"), port_);
}

TEST_F(mariadb_Module, StartPrimExplainsAnUnusableDataDir) {
  auto m = Load(vars_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto start = [&] { return (*m)->RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_); };
  EXPECT_EQ(start().code(), Status::Code::kNotFound);
  fs::create_directories(vars_["MARIADB_DATADIR"]);
  Status s = start();
  EXPECT_NE(s.message().find("not by mysql"), std::string::npos) << s.message();
  ASSERT_EQ(Shell("chown mysql: " + vars_["MARIADB_DATADIR"]), 0);
  s = start();
  EXPECT_NE(s.message().find("not initialised (no mysql/ system database): run mariadb-install-db"),
            std::string::npos)
      << s.message();
}

TEST_F(mariadb_Module, StartsStopsAndRecoversARealServer) {
  Status t = mariadbtest::InstallDbTemplate(dir_ / "tpl");
  ASSERT_TRUE(t.ok()) << t.message();
  fs::create_directories(vars_["MARIADB_DATADIR"]);
  ASSERT_TRUE(mariadbtest::CopyTemplate(dir_ / "tpl", vars_["MARIADB_DATADIR"]).ok());
  auto m = Load(vars_);
  ASSERT_TRUE(m.ok()) << m.status().message();
  sdk::Module& mod = **m;
  EXPECT_TRUE(mod.RunHook(Hook::kStopPrim, Args("ALONE", "STOP"), *host_).ok());

  Status s = mod.RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Query("INSERT INTO t VALUES (1); SELECT COUNT(*) FROM t"), "1\n");
  std::ifstream pidfile(vars_["MARIADB_DATADIR"] + "/mariadbd.pid");
  pid_t pid = 0;
  pidfile >> pid;
  ASSERT_GT(pid, 0);
  struct stat st;
  ASSERT_EQ(::stat(("/proc/" + std::to_string(pid)).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getpwnam("mysql")->pw_uid);

  s = mod.RunHook(Hook::kStopPrim, Args("ALONE", "STOP"), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_NE(Query("SELECT 1").find("query failed"), std::string::npos);

  // kill -9, then a start: InnoDB recovers, the committed rows are there.
  ASSERT_TRUE(mod.RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_).ok());
  EXPECT_EQ(Query("INSERT INTO t VALUES (2); SELECT COUNT(*) FROM t"), "2\n");
  std::ifstream again(vars_["MARIADB_DATADIR"] + "/mariadbd.pid");
  again >> pid;
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(50ms);
  s = mod.RunHook(Hook::kStartPrim, Args("STOP", "ALONE"), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Query("SELECT COUNT(*) FROM t"), "2\n");
  s = mod.RunHook(Hook::kStopPrim, Args("ALONE", "STOP", /*force=*/true), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_NE(ModuleLog().find("SIGKILL"), std::string::npos) << ModuleLog();
}

}  // namespace
}  // namespace hakit::mariadb
