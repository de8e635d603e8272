// MariaDB made highly available by the module library, end to end: two real
// hakitd in network namespaces (ClusterRig) load modules/mariadb.so; the data
// directory, installed by the test, is the replicated dir the library
// declares; a client in the client namespace (the mariadb CLI, one INSERT per
// call) commits numbered rows through the VIP and ledgers each acknowledged
// commit.
//
// Enabled today: the server runs through the module on the primary and every
// commit goes through the replicated data directory. DISABLED_ until full
// synchronisation lands: the power cut of the primary (HAKIT_MARIADB_ROUNDS
// rounds, default 3), after which the other node serves every ledgered row.
// As with PostgreSQL, mariadbd writes at start-up while its primary is
// ALONE, so without a full sync the secondary's copy stays incomplete and
// never takes over on its own.
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

#include "mariadb_test_util.h"
#include "rig_test.h"

namespace hakit::rig {
namespace {

namespace fs = std::filesystem;
using cluster::State;
using namespace std::chrono_literals;

constexpr const char* kModule = "mariadb";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<long> Numbers(const std::string& text) {
  std::vector<long> out;
  std::size_t pos = 0;
  for (std::size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    out.push_back(std::strtol(text.substr(pos, nl - pos).c_str(), nullptr, 10));
  }
  return out;
}

class MariadbClusterTest : public RigTest {
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
    RigTest::SetUp();
    if (IsSkipped()) return;
    if (!HaveFuse()) GTEST_SKIP() << "no /dev/fuse";
    if (!mariadbtest::Installed()) GTEST_SKIP() << "mariadb-server is not installed";
    ASSERT_EQ(template_error_, "");
  }

  void TearDown() override { StopClient(); }

  std::string StateDump(const std::string& node) {
    auto m = rig_->ModuleState(node);
    return m.ok() ? m->dump() : m.status().message();
  }

  std::string ServerLog(const std::string& node) {
    return ReadFile(rig_->LayoutOf(node).ModuleLogDir(kModule) / "mariadb.log");
  }

  void StartPair(bool in_sync) {
    RigOptions o;
    o.module = kModule;
    o.replicated = true;
    o.replicated_dir_in_userconfig = false;  // the library declares the data dir
    o.library = HAKIT_BINARY_DIR "/modules/mariadb.so";
    MakeRig(o);
    ASSERT_TRUE(rig_->SetUserVar("MARIADB_DATADIR", rig_->ReplicatedDir()).ok());
    // A socket directory per node, as separate machines would have.
    ASSERT_TRUE(rig_->SetUserVar("MARIADB_SOCKET", "%SAFEUSERVAR%/mysqld/mysqld.sock").ok());
    for (const auto& n : rig_->nodes()) {
      Status copied = mariadbtest::CopyTemplate(template_, rig_->DataDir(n));
      ASSERT_TRUE(copied.ok()) << copied.message();
    }
    StartBoth();
    auto logs = [&] {
      return ReadFile(rig_->LayoutOf("node1").ModuleLog(kModule)) +
             ReadFile(rig_->LayoutOf("node2").ModuleLog(kModule));
    };
    if (in_sync) {
      auto paired = rig_->WaitPaired(60s);
      ASSERT_TRUE(paired.ok()) << paired.status().message() << "\n" << logs();
      prim_ = *paired;
    } else {
      ASSERT_TRUE(WaitFor(
          [&] {
            State a = rig_->StateOf("node1"), b = rig_->StateOf("node2");
            prim_ = a == State::kPrim && b == State::kSecond   ? "node1"
                    : b == State::kPrim && a == State::kSecond ? "node2"
                                                               : "";
            return !prim_.empty();
          },
          60s))
          << logs();
    }
    second_ = rig_->Peer(prim_);
    ASSERT_TRUE(WaitReplication(prim_, "replicating", 10s)) << Replication(prim_).dump();
    ASSERT_TRUE(WaitReplication(second_, "connected", 10s)) << Replication(second_).dump();
  }

  std::vector<std::string> Cli(const std::string& sql) {
    return {"mariadb", "--no-defaults", "--connect-timeout=2", "-N", "-B", "-h", rig_->Vip(),
            "-u",      "hakit",         "hakit",               "-e", sql};
  }

  void StartClient() {
    ledger_ = rig_->work_dir() / "ledger.txt";
    errors_ = rig_->work_dir() / "client.err";
    testbed::SpawnOptions o;
    o.netns = rig_->bed().ClientNamespace();
    o.argv = {"sh", "-c", R"sh(i=0
while :; do
  mariadb --no-defaults --connect-timeout=1 -h "$VIP" -u hakit hakit -e "INSERT INTO t VALUES ($i)" && echo $i
  i=$((i+1))
done
)sh"};
    o.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
             {"VIP", rig_->Vip()}};
    o.stdout_path = ledger_.string();
    o.stderr_path = errors_.string();
    auto c = rig_->bed().Spawn(o);
    ASSERT_TRUE(c.ok()) << c.status().message();
    client_ = *c;
  }

  void StopClient() {
    if (client_ <= 0 || !rig_) return;
    rig_->bed().KillGroup(client_, SIGKILL);
    rig_->bed().WaitExit(client_, 10s);
    client_ = -1;
  }

  std::size_t Acked() { return Numbers(ReadFile(ledger_)).size(); }

  bool WaitCommits(std::size_t n, std::chrono::milliseconds wait) {
    std::size_t base = Acked();
    return WaitFor([&] { return Acked() >= base + n; }, wait);
  }

  void ExpectLedgerServed(const std::string& context) {
    std::vector<long> ledger = Numbers(ReadFile(ledger_));
    ASSERT_FALSE(ledger.empty()) << context << ": nothing committed: " << ReadFile(errors_);
    auto rows = rig_->bed().RunIn(rig_->bed().ClientNamespace(),
                                  Cli("SELECT i FROM t ORDER BY i"), 30s);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    ASSERT_EQ(rows->status.code, 0) << rows->output;
    std::vector<long> got = Numbers(rows->output);
    std::set<long> present(got.begin(), got.end());
    std::size_t lost = 0;
    for (long i : ledger) lost += present.count(i) ? 0 : 1;
    EXPECT_EQ(lost, 0u) << context << ": LOST " << lost << " of " << ledger.size()
                        << " acknowledged commits";
    EXPECT_LE(got.size(), ledger.size() + 10) << context;
    std::printf("[ %s ] %zu acknowledged, %zu rows served\n", context.c_str(), ledger.size(),
                got.size());
  }

  static fs::path template_;
  static std::string template_error_;
  std::string prim_, second_;
  fs::path ledger_, errors_;
  pid_t client_ = -1;
};

fs::path MariadbClusterTest::template_;
std::string MariadbClusterTest::template_error_;

TEST_F(MariadbClusterTest, ServesCommitsThroughTheVipWhileReplicatingTheDataDir) {
  ASSERT_NO_FATAL_FAILURE(StartPair(/*in_sync=*/false));
  auto mounts = rig_->RunInDaemon(prim_, {"cat", "/proc/self/mounts"});
  ASSERT_TRUE(mounts.ok()) << mounts.status().message();
  EXPECT_NE(mounts->output.find(rig_->ReplicatedDir() + " fuse"), std::string::npos)
      << mounts->output;
  auto ps = rig_->RunInDaemon(prim_, {"ps", "-o", "user=,args=", "-C", "mariadbd"});
  ASSERT_TRUE(ps.ok()) << ps.status().message();
  EXPECT_NE(ps->output.find("--datadir=" + rig_->ReplicatedDir()), std::string::npos)
      << ps->output;
  EXPECT_EQ(ps->output.rfind("mysql ", 0), 0u) << "not run as user mysql: " << ps->output;

  ASSERT_NO_FATAL_FAILURE(StartClient());
  ASSERT_TRUE(WaitCommits(50, 30s)) << ReadFile(errors_) << "\n" << ServerLog(prim_);
  EXPECT_EQ(Replication(prim_).value("state", ""), "replicating") << Replication(prim_).dump();
  EXPECT_GT(Replication(prim_).value("acked_received", 0), 50) << Replication(prim_).dump();
  EXPECT_EQ(rig_->StateOf(second_), State::kSecond);
  StopClient();
  ExpectLedgerServed("through the VIP on " + prim_);
}

// DISABLED until full synchronisation lands (see the top of this file).
TEST_F(MariadbClusterTest, DISABLED_NoAcknowledgedCommitIsLostWhenThePrimaryLosesPower) {
  const char* env = std::getenv("HAKIT_MARIADB_ROUNDS");
  const int rounds = env != nullptr ? std::atoi(env) : 3;
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
