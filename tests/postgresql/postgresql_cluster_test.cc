// PostgreSQL made highly available by the module library, end to end: two
// real hakitd in network namespaces (ClusterRig) load modules/postgresql.so;
// PGDATA, initdb'ed by the test, is the replicated dir the library declares;
// a client in the client namespace (hakit-pg-client, libpq) commits numbered
// transactions through the VIP and ledgers every acknowledged commit.
//
// The server runs through the module on the primary and every commit goes
// through the replicated PGDATA; failover after power cuts of the primary at
// random moments (HAKIT_PG_ROUNDS rounds, default 3, one fresh rig each;
// delay 300-1500 ms from a generator seeded with the round + HAKIT_PG_SEED)
// with every ledgered commit served by the other node; a swap under load; the
// old primary's return, its reintegration (only what differs sent) and a swap
// back under load.
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
#include "pg_test_util.h"

namespace hakit::rig {
namespace {

namespace fs = std::filesystem;
using cluster::State;
using namespace std::chrono_literals;

using pgtest::kPgBin;
constexpr const char* kModule = "postgresql";

class PostgresClusterTest : public DbRigTest {
 protected:
  // initdb once for the binary; every rig starts both nodes from a copy.
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || !fs::exists(std::string(kPgBin) + "/initdb")) return;
    template_ = "/tmp/hakit-pgtpl-" + std::to_string(::getpid());
    fs::remove_all(template_);
    if (Status s = pgtest::InitDbTemplate(template_); !s.ok()) template_error_ = s.message();
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    if (!template_.empty()) fs::remove_all(template_, ec);
  }

  void SetUp() override {
    DbRigTest::SetUp();
    if (IsSkipped()) return;
    if (!fs::exists(std::string(kPgBin) + "/initdb")) GTEST_SKIP() << "postgresql-15 missing";
    ASSERT_EQ(template_error_, "");
  }

  // Both nodes' PGDATA a copy of the template; with `in_sync` the
  // secondary's copy complete. The table created through the VIP.
  void StartPair(bool in_sync) {
    // %SAFEUSERVAR% (userconfig.xml is the same on both nodes) gives each
    // node a socket directory of its own, as separate machines would have.
    DbRigTest::StartPair(
        kModule, "PGDATA", {{"PGSOCKETDIR", "%SAFEUSERVAR%/pgsock"}},
        [](const fs::path& dir) { return pgtest::CopyTemplate(template_, dir); }, in_sync);
    if (HasFatalFailure()) return;
    auto made = Sql("CREATE TABLE t(i bigint PRIMARY KEY)");
    ASSERT_TRUE(made.ok()) << made.status().message();
  }

  // One psql statement from the client namespace through the VIP.
  Result<std::string> Sql(const std::string& sql) {
    auto r = rig_->bed().RunIn(rig_->bed().ClientNamespace(),
                               {std::string(kPgBin) + "/psql", "-X", "-At", "-h", rig_->Vip(),
                                "-U", "postgres", "-d", "postgres", "-c", sql},
                               20s);
    if (!r.ok()) return r.status();
    if (r->status.code != 0) return Status::Failed("psql: " + r->output);
    return r->output;
  }

  void StartClient() {
    DbRigTest::StartClient({HAKIT_BINARY_DIR "/bin/hakit-pg-client",
                            "host=" + rig_->Vip() + " port=5432 user=postgres dbname=postgres",
                            "0"});
  }

  // Every ledgered number is a row of t, served through the VIP.
  void ExpectLedgerServed(const std::string& context) {
    auto rows = Sql("SELECT i FROM t ORDER BY i");
    ASSERT_TRUE(rows.ok()) << context << ": " << rows.status().message();
    DbRigTest::ExpectLedgerServed(*rows, context);
  }

  std::string ServerLog(const std::string& node) {
    return DbRigTest::ServerLog(node, "postgresql.log");
  }

  // Ends the rig, and the shared memory its killed postmasters left.
  void ResetRig() {
    if (!rig_) return;
    StopClient();
    auto segments = pgtest::PostmasterSegments({rig_->DataDir("node1"), rig_->DataDir("node2")});
    rig_.reset();
    pgtest::RemoveUnattached(segments);
  }

  void TearDown() override { ResetRig(); }

  // Power cuts of the primary at random moments, one fresh rig per round;
  // the secondary takes over by itself.
  void PowerCutRounds() {
    const int rounds = EnvInt("HAKIT_PG_ROUNDS", 3);
    for (int round = 0; round < rounds; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      ASSERT_NO_FATAL_FAILURE(StartPair(/*in_sync=*/true));
      ASSERT_NO_FATAL_FAILURE(StartClient());
      ASSERT_TRUE(WaitCommits(1, 15s)) << ReadFile(errors_);
      const auto delay = Delay(round);
      std::this_thread::sleep_for(delay);
      ASSERT_TRUE(rig_->PowerCut(prim_).ok());
      const std::size_t at_cut = Acked();
      Status alone = rig_->WaitState(second_, State::kAlone, 30s);
      ASSERT_TRUE(alone.ok()) << alone.message() << "\n" << StateDump(second_);
      // The other node's server answers through the VIP: the client commits again.
      ASSERT_TRUE(WaitCommits(5, 30s)) << ReadFile(errors_) << "\n" << ServerLog(second_);
      StopClient();
      // It started from the dead primary's files: crash recovery, not a clean start.
      EXPECT_NE(ServerLog(second_).find("automatic recovery in progress"), std::string::npos)
          << ServerLog(second_);
      ExpectLedgerServed("round " + std::to_string(round) + ", cut of " + prim_ + " after " +
                         std::to_string(delay.count()) + " ms, " + std::to_string(at_cut) +
                         " acknowledged before the cut");
      ResetRig();
      if (HasFailure()) break;
    }
  }

  std::chrono::milliseconds Delay(int round) {
    std::mt19937 gen(static_cast<std::uint32_t>(round + EnvInt("HAKIT_PG_SEED", 0)));
    std::uniform_int_distribution<int> d(300, 1500);
    return std::chrono::milliseconds(d(gen));
  }

  static fs::path template_;
  static std::string template_error_;
};

fs::path PostgresClusterTest::template_;
std::string PostgresClusterTest::template_error_;

// What works today: hakitd loads the library, mounts the replicated dir it
// declares (PGDATA) and starts PostgreSQL there as user postgres; the client
// commits through the VIP and every change made while paired goes to the
// secondary.
TEST_F(PostgresClusterTest, ServesCommitsThroughTheVipWhileReplicatingPgdata) {
  ASSERT_NO_FATAL_FAILURE(StartPair(/*in_sync=*/false));
  ASSERT_NO_FATAL_FAILURE(
      ExpectServerOnReplicatedDir("postgres", "postgres -D " + rig_->ReplicatedDir(), "postgres"));
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(200, 30s)) << ReadFile(errors_) << "\n" << ServerLog(prim_);
  const auto acked = Replication(prim_).value("acked_received", 0);
  EXPECT_GT(acked, 200) << Replication(prim_).dump();
  EXPECT_EQ(Replication(prim_).value("state", ""), "replicating") << Replication(prim_).dump();
  EXPECT_EQ(Replication(second_).value("state", ""), "connected") << Replication(second_).dump();
  EXPECT_EQ(rig_->StateOf(second_), State::kSecond);
  StopClient();
  ExpectLedgerServed("through the VIP on " + prim_);
}

// The primary starts ALONE and PostgreSQL writes at start-up (pg_control "in
// production", ...) before the secondary connects: the full synchronisation
// brings the secondary up to date before it counts as complete.
TEST_F(PostgresClusterTest, NoAcknowledgedCommitIsLostWhenThePrimaryLosesPower) {
  PowerCutRounds();
}

// A swap while the client commits: PostgreSQL stops (fast) on the primary and
// starts on the secondary, which held every change; nothing acknowledged is lost.
TEST_F(PostgresClusterTest, SwapUnderLoadLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartPair(true));
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(20, 15s)) << ReadFile(errors_);
  auto r = rig_->Command(prim_, "swap");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitState(second_, State::kPrim, 30s).ok()) << StateDump(second_);
  ASSERT_TRUE(rig_->WaitState(prim_, State::kSecond, 30s).ok()) << StateDump(prim_);
  ASSERT_TRUE(WaitCommits(20, 30s)) << ReadFile(errors_) << "\n" << ServerLog(second_);
  StopClient();
  // A clean handover: the new primary's server found a cleanly shut down cluster.
  EXPECT_EQ(ServerLog(second_).find("automatic recovery in progress"), std::string::npos)
      << ServerLog(second_);
  ExpectLedgerServed("swap " + prim_ + " -> " + second_);
}

// The old primary returns while the client keeps committing, is reintegrated
// as SECOND (only what differs sent), takes the primary role back by a swap
// under load, and every acknowledged commit is served.
TEST_F(PostgresClusterTest, OldPrimaryReintegratesAndTakesOverAgainUnderLoad) {
  ASSERT_NO_FATAL_FAILURE(StartPair(true));
  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(20, 15s)) << ReadFile(errors_);
  std::this_thread::sleep_for(Delay(7));
  const std::string first = prim_;
  ASSERT_TRUE(rig_->PowerCut(first).ok());
  ASSERT_TRUE(rig_->WaitState(second_, State::kAlone, 30s).ok()) << StateDump(second_);
  ASSERT_TRUE(WaitCommits(20, 30s)) << ReadFile(errors_);

  ASSERT_TRUE(rig_->RestoreNetwork(first).ok());
  ASSERT_TRUE(rig_->StartDaemon(first).ok());
  auto start = rig_->Command(first, "start");
  ASSERT_TRUE(start.ok()) << start.status().message();
  auto paired = rig_->WaitPaired(120s);
  ASSERT_TRUE(paired.ok()) << paired.status().message() << "\n" << StateDump(first);
  EXPECT_EQ(*paired, second_);
  // Reintegration copied what differed, not the whole data dir.
  bool partial = WaitFor(
      [&] {
        for (const auto& e : History(second_)) {
          if (e.kind != "reintegration_end") continue;
          auto d = nlohmann::json::parse(e.details, nullptr, false);
          // The record of what changed (and the old primary's hot zones),
          // or a comparison that sent less than half of what it compared.
          if (d.is_object() &&
              (d.value("method", "") == "record" ||
               d.value("bytes_sent", 0ull) < d.value("bytes_compared", 0ull) / 2)) {
            return true;
          }
        }
        return false;
      },
      10s);
  EXPECT_TRUE(partial) << "no partial reintegration recorded on " << second_;
  ASSERT_TRUE(WaitCommits(20, 30s)) << ReadFile(errors_);

  auto r = rig_->Command(second_, "swap");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitState(first, State::kPrim, 30s).ok()) << StateDump(first);
  ASSERT_TRUE(WaitCommits(20, 30s)) << ReadFile(errors_) << "\n" << ServerLog(first);
  StopClient();
  ExpectLedgerServed("reintegration of " + first + " and swap back");
}

}  // namespace
}  // namespace hakit::rig
