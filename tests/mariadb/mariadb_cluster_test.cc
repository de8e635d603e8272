// MariaDB made highly available by the module library, end to end: two real
// hakitd in network namespaces (ClusterRig) load modules/mariadb.so; the data
// directory, installed by the test, is the replicated dir the library
// declares; a client in the client namespace (the mariadb CLI, one INSERT per
// call) commits numbered rows through the VIP and ledgers each acknowledged
// commit.
//
// The server runs through the module on the primary and every commit goes
// through the replicated data directory; the power cut of the primary
// (HAKIT_MARIADB_ROUNDS rounds, default 3), after which the other node serves
// every ledgered row. mariadbd writes at start-up while its primary is ALONE:
// the full synchronisation brings the secondary up to date first.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "db_rig_test.h"
#include "mariadb_test_util.h"

namespace hakit::rig {
namespace {

namespace fs = std::filesystem;
using cluster::State;
using namespace std::chrono_literals;

constexpr const char* kModule = "mariadb";

class MariadbClusterTest : public DbRigTest {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || !mariadbtest::Installed()) return;
    template_ = "/tmp/hakit-mdbtpl-" + std::to_string(::getpid());
    fs::remove_all(template_);
    if (Status s = mariadbtest::InstallDbTemplate(template_); !s.ok()) {
      template_error_ = s.message();
    }
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    if (!template_.empty()) fs::remove_all(template_, ec);
  }

  void SetUp() override {
    DbRigTest::SetUp();
    if (IsSkipped()) return;
    if (!mariadbtest::Installed()) GTEST_SKIP() << "mariadb-server is not installed";
    ASSERT_EQ(template_error_, "");
  }

  void StartPair(bool in_sync) {
    // A socket directory per node, as separate machines would have.
    DbRigTest::StartPair(
        kModule, "MARIADB_DATADIR", {{"MARIADB_SOCKET", "%SAFEUSERVAR%/mysqld/mysqld.sock"}},
        [](const fs::path& dir) { return mariadbtest::CopyTemplate(template_, dir); }, in_sync);
  }

  void StartClient() {
    DbRigTest::StartClient({"sh", "-c", R"sh(i=0
while :; do
  mariadb --no-defaults --connect-timeout=1 -h "$VIP" -u hakit hakit -e "INSERT INTO t VALUES ($i)" && echo $i
  i=$((i+1))
done
)sh"},
                           {{"VIP", rig_->Vip()}});
  }

  void ExpectLedgerServed(const std::string& context) {
    auto rows = rig_->bed().RunIn(
        rig_->bed().ClientNamespace(),
        {"mariadb", "--no-defaults", "--connect-timeout=2", "-N", "-B", "-h", rig_->Vip(), "-u",
         "hakit", "hakit", "-e", "SELECT i FROM t ORDER BY i"},
        30s);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    ASSERT_EQ(rows->status.code, 0) << rows->output;
    DbRigTest::ExpectLedgerServed(rows->output, context);
  }

  std::string ServerLog(const std::string& node) { return DbRigTest::ServerLog(node, "mariadb.log"); }

  static fs::path template_;
  static std::string template_error_;
};

fs::path MariadbClusterTest::template_;
std::string MariadbClusterTest::template_error_;

TEST_F(MariadbClusterTest, ServesCommitsThroughTheVipWhileReplicatingTheDataDir) {
  ASSERT_NO_FATAL_FAILURE(StartPair(/*in_sync=*/false));
  ASSERT_NO_FATAL_FAILURE(
      ExpectServerOnReplicatedDir("mariadbd", "--datadir=" + rig_->ReplicatedDir(), "mysql"));
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(50, 30s)) << ReadFile(errors_) << "\n" << ServerLog(prim_);
  EXPECT_EQ(Replication(prim_).value("state", ""), "replicating") << Replication(prim_).dump();
  EXPECT_GT(Replication(prim_).value("acked_received", 0), 50) << Replication(prim_).dump();
  EXPECT_EQ(rig_->StateOf(second_), State::kSecond);
  StopClient();
  ExpectLedgerServed("through the VIP on " + prim_);
}

TEST_F(MariadbClusterTest, NoAcknowledgedCommitIsLostWhenThePrimaryLosesPower) {
  const int rounds = EnvInt("HAKIT_MARIADB_ROUNDS", 3);
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(StartPair(/*in_sync=*/true));
    ASSERT_NO_FATAL_FAILURE(StartClient());
    ASSERT_TRUE(WaitCommits(1, 15s)) << ReadFile(errors_);
    std::mt19937 gen(static_cast<std::uint32_t>(round));
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 1500)(gen));
    std::this_thread::sleep_for(delay);
    ASSERT_TRUE(rig_->PowerCut(prim_).ok());
    Status alone = rig_->WaitState(second_, State::kAlone, 60s);
    ASSERT_TRUE(alone.ok()) << alone.message() << "\n" << StateDump(second_);
    ASSERT_TRUE(WaitCommits(5, 60s)) << ReadFile(errors_) << "\n" << ServerLog(second_);
    StopClient();
    ExpectLedgerServed("round " + std::to_string(round) + ", cut of " + prim_ + " after " +
                       std::to_string(delay.count()) + " ms");
    rig_.reset();
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace hakit::rig
