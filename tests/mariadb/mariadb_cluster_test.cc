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
// every ledgered row; a swap under load; the old primary's return, its
// reintegration (only what differs sent) and a swap back under load.
// mariadbd writes at start-up while its primary is ALONE: the full
// synchronisation brings the secondary up to date first.
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
    // A socket directory per node, as separate machines would have. No
    // reverse DNS of the clients: the namespaces reach no name server, and a
    // lookup per connection that waits for its timeout would outlast the
    // client's 1 s connect timeout.
    DbRigTest::StartPair(
        kModule, "MARIADB_DATADIR",
        {{"MARIADB_SOCKET", "%SAFEUSERVAR%/mysqld/mysqld.sock"},
         {"MARIADB_OPTIONS", "--skip-name-resolve"}},
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

// A swap while the client commits: mariadbd shuts down cleanly (SIGTERM) on
// the primary and starts on the secondary, which held every change; nothing
// acknowledged is lost.
TEST_F(MariadbClusterTest, SwapUnderLoadLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartPair(true));
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(20, 30s)) << ReadFile(errors_);
  auto r = rig_->Command(prim_, "swap");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitState(second_, State::kPrim, 60s).ok()) << StateDump(second_);
  ASSERT_TRUE(rig_->WaitState(prim_, State::kSecond, 60s).ok()) << StateDump(prim_);
  ASSERT_TRUE(WaitCommits(20, 60s)) << ReadFile(errors_) << "\n" << ServerLog(second_);
  StopClient();
  // A clean handover: InnoDB on the new primary found no crash to recover.
  EXPECT_EQ(ServerLog(second_).find("crash recovery"), std::string::npos) << ServerLog(second_);
  ExpectLedgerServed("swap " + prim_ + " -> " + second_);
}

// The old primary returns after a power cut while the client keeps
// committing, is reintegrated as SECOND (only what differs sent), takes the
// primary role back by a swap under load, and every acknowledged commit is
// served.
TEST_F(MariadbClusterTest, OldPrimaryReintegratesAndTakesOverAgainUnderLoad) {
  ASSERT_NO_FATAL_FAILURE(StartPair(true));
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(20, 30s)) << ReadFile(errors_);
  const std::string first = prim_;
  ASSERT_TRUE(rig_->PowerCut(first).ok());
  ASSERT_TRUE(rig_->WaitState(second_, State::kAlone, 60s).ok()) << StateDump(second_);
  ASSERT_TRUE(WaitCommits(20, 60s)) << ReadFile(errors_) << "\n" << ServerLog(second_);

  ASSERT_TRUE(rig_->RestoreNetwork(first).ok());
  ASSERT_TRUE(rig_->StartDaemon(first).ok());
  auto start = rig_->Command(first, "start");
  ASSERT_TRUE(start.ok()) << start.status().message();
  auto paired = rig_->WaitPaired(120s);
  ASSERT_TRUE(paired.ok()) << paired.status().message() << "\n" << StateDump(first);
  EXPECT_EQ(*paired, second_);
  // Reintegration sent what differed (or what the record noted), not the
  // whole data directory.
  std::string ends;
  bool partial = WaitFor(
      [&] {
        ends.clear();
        for (const auto& e : History(second_)) {
          if (e.kind != "reintegration_end") continue;
          ends += e.details + "\n";
          auto d = nlohmann::json::parse(e.details, nullptr, false);
          if (d.is_object() &&
              (d.value("method", "") == "record" ||
               d.value("bytes_sent", 0ull) < d.value("bytes_compared", 0ull) / 2)) {
            return true;
          }
        }
        return false;
      },
      10s);
  EXPECT_TRUE(partial) << "no partial reintegration recorded on " << second_ << ": " << ends;
  ASSERT_TRUE(WaitCommits(20, 60s)) << ReadFile(errors_);

  auto r = rig_->Command(second_, "swap");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitState(first, State::kPrim, 60s).ok()) << StateDump(first);
  ASSERT_TRUE(WaitCommits(20, 60s)) << ReadFile(errors_) << "\n" << ServerLog(first);
  StopClient();
  ExpectLedgerServed("reintegration of " + first + " and swap back");
}

}  // namespace
}  // namespace hakit::rig
