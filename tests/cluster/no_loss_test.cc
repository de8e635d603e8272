// No acknowledged write is lost by a failover. A writer in the primary's
// namespaces appends numbered, checksummed records to a file in the
// replicated dir, each one fsync'ed, and notes every record whose fsync
// returned in a ledger outside the cluster (its stdout, a file the test
// opened). After a random delay the primary loses power; the secondary takes
// over (ALONE) and must serve every record of the ledger, in order, intact;
// at most one record beyond the ledger (written, not yet acknowledged), torn
// or not, may follow.
//
// One fresh rig per round: a node that returns after a power cut cannot
// resynchronise yet (no full synchronisation exists).
//
// Rounds: 5 (HAKIT_NOLOSS_ROUNDS to change), 3 for the SQLite variant
// (HAKIT_NOLOSS_SQLITE_ROUNDS). Round r waits 200-1500 ms, drawn from a
// generator seeded with r (+ HAKIT_NOLOSS_SEED), before the cut.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rig_test.h"

namespace hakit::rig {
namespace {

using cluster::State;
using namespace std::chrono_literals;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (end != nullptr && *end == '\0' && n >= 0) ? static_cast<int>(n) : fallback;
}

// The record's checksum, as the writer's shell computes it with $((...)).
std::uint64_t Check(std::uint64_t i) { return (i * 2654435761ULL + 40503ULL) % 4294967291ULL; }

// Record i exactly as the writer appends it (with its newline).
std::string Record(std::uint64_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08llu %08llx\n", static_cast<unsigned long long>(i),
                static_cast<unsigned long long>(Check(i)));
  return buf;
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The numbers of the ledger's complete lines (a line cut by the kill is not an
// acknowledgement: the writer had not finished saying so).
std::vector<long> Ledger(const std::string& text) {
  std::vector<long> out;
  std::size_t pos = 0;
  while (true) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    out.push_back(std::strtol(text.substr(pos, nl - pos).c_str(), nullptr, 10));
    pos = nl + 1;
  }
  return out;
}

// Shows a string's unprintable bytes (a torn tail may hold zeros).
std::string Visible(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// What the new primary serves, against the ledger: empty when the guarantee
// holds, else what is wrong. `served` counts the complete records found.
std::string CheckRecords(const std::string& file, std::size_t acked, std::size_t* served) {
  std::size_t pos = 0;
  std::size_t n = 0;
  while (pos < file.size()) {
    std::size_t nl = file.find('\n', pos);
    if (nl == std::string::npos) break;
    std::string line = file.substr(pos, nl + 1 - pos);
    if (line != Record(n)) {
      return "record " + std::to_string(n) + " is \"" + Visible(line) + "\", expected \"" +
             Visible(Record(n)) + "\" (" + std::to_string(acked) + " acknowledged)";
    }
    ++n;
    pos = nl + 1;
  }
  *served = n;
  std::string tail = file.substr(pos);
  if (n < acked) {
    return "LOST: " + std::to_string(acked - n) + " acknowledged record(s): the new primary has " +
           std::to_string(n) + " complete record(s), the ledger " + std::to_string(acked) +
           (tail.empty() ? "" : ", then a torn line \"" + Visible(tail) + "\"");
  }
  std::size_t extra = n - acked + (tail.empty() ? 0 : 1);
  if (extra > 1) {
    return std::to_string(extra) + " records beyond the ledger's " + std::to_string(acked) +
           " (at most the one in flight may be there)";
  }
  if (!tail.empty() && Record(n).compare(0, tail.size(), tail) != 0) {
    return "the unacknowledged last line \"" + Visible(tail) + "\" is not a prefix of \"" +
           Visible(Record(n)) + "\"";
  }
  return "";
}

class NoLossTest : public RigTest {
 protected:
  void SetUp() override {
    RigTest::SetUp();
    if (!IsSkipped() && !HaveFuse()) GTEST_SKIP() << "no /dev/fuse";
  }

  void TearDown() override { StopWriter(); }

  std::string StateDump(const std::string& node) {
    auto m = rig_->ModuleState(node);
    return m.ok() ? m->dump() : m.status().message();
  }

  std::string DataStatus(const std::string& node) {
    auto m = rig_->ModuleState(node);
    if (!m.ok()) return "";
    return m->value("details", nlohmann::json::object()).value("data", "");
  }

  // A fresh replicated rig, both nodes started and paired, the primary
  // replicating to a secondary whose copy is up to date (else the secondary
  // would rightly refuse to take over). Sets prim_ and second_.
  void StartPair() { StartReplicatedPair(&prim_, &second_); }

  // Starts `script` (sh, with $F = `target`) in the primary's hakitd's
  // namespaces, its stdout appended to the ledger, its stderr to writer.err
  // (both in the rig's work dir, outside the cluster).
  void StartWriter(const std::string& target, const std::string& script) {
    auto pid = rig_->DaemonPid(prim_);
    ASSERT_TRUE(pid.has_value());
    ledger_ = rig_->work_dir() / "ledger.txt";
    errors_ = rig_->work_dir() / "writer.err";
    testbed::SpawnOptions o;
    o.netns = rig_->bed().NodeNamespace(prim_);
    o.argv = {"nsenter", "--target", std::to_string(*pid), "--mount", "--net", "--", "sh",
              "-c",      script};
    o.env = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
             {"F", target}};
    o.stdout_path = ledger_.string();
    o.stderr_path = errors_.string();
    auto w = rig_->bed().Spawn(o);
    ASSERT_TRUE(w.ok()) << w.status().message();
    writer_ = *w;
  }

  void StopWriter() {
    if (writer_ <= 0 || !rig_) return;
    rig_->bed().KillGroup(writer_, SIGKILL);
    rig_->bed().WaitExit(writer_, 10s);
    writer_ = -1;
  }

  // Waits `delay` while the writer runs, then cuts the primary's power and
  // kills the writer (which a power cut would have killed too; cut first, so
  // that nothing the primary could still acknowledge alone gets lost). The
  // secondary must take over. Returns the ledger.
  std::vector<long> CutAndFailOver(std::chrono::milliseconds delay) {
    std::this_thread::sleep_for(delay);
    auto early = rig_->bed().WaitExit(writer_, 0ms);
    EXPECT_FALSE(early.has_value())
        << "the writer ended before the cut: " << early->ToString() << ": " << ReadFile(errors_);
    EXPECT_TRUE(rig_->PowerCut(prim_).ok());
    StopWriter();
    std::vector<long> ledger = Ledger(ReadFile(ledger_));
    Status alone = rig_->WaitState(second_, State::kAlone, 15s);
    EXPECT_TRUE(alone.ok()) << alone.message() << "\n" << StateDump(second_);
    if (!alone.ok()) return {};
    EXPECT_EQ(Replication(second_).value("role", ""), "primary") << Replication(second_).dump();
    // The ledger is in writing order, from 0.
    for (std::size_t i = 0; i < ledger.size(); ++i) {
      EXPECT_EQ(ledger[i], static_cast<long>(i)) << "ledger line " << i;
      if (ledger[i] != static_cast<long>(i)) break;
    }
    return ledger;
  }

  std::chrono::milliseconds Delay(int round) {
    std::mt19937 gen(static_cast<std::uint32_t>(round + EnvInt("HAKIT_NOLOSS_SEED", 0)));
    std::uniform_int_distribution<int> d(200, 1500);
    return std::chrono::milliseconds(d(gen));
  }

  std::string prim_, second_;
  std::filesystem::path ledger_, errors_;
  pid_t writer_ = -1;
};

TEST_F(NoLossTest, NoAcknowledgedRecordIsLostByAFailover) {
  const int rounds = EnvInt("HAKIT_NOLOSS_ROUNDS", 5);
  std::size_t total_acked = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(StartPair());
    const std::string file = rig_->ReplicatedDir() + "/rec.txt";
    // One write(2) per record (printf is a builtin, its output one buffer),
    // fsync'ed by sync(1); the number goes to the ledger only then.
    ASSERT_NO_FATAL_FAILURE(StartWriter(file, R"(i=0
while :; do
  printf '%08d %08x\n' $i $(( (i * 2654435761 + 40503) % 4294967291 )) >> "$F" || exit 1
  sync "$F" || exit 2
  echo $i || exit 3
  i=$((i+1))
done
)"));
    const auto delay = Delay(round);
    std::vector<long> ledger = CutAndFailOver(delay);
    ASSERT_FALSE(HasFailure());
    ASSERT_FALSE(ledger.empty()) << "no record acknowledged in " << delay.count()
                                 << " ms: " << ReadFile(errors_);

    auto served = rig_->RunInDaemon(second_, {"cat", file}, 10s);
    ASSERT_TRUE(served.ok()) << served.status().message();
    ASSERT_EQ(served->status.code, 0) << served->output;
    std::size_t complete = 0;
    std::string problem = CheckRecords(served->output, ledger.size(), &complete);
    EXPECT_EQ(problem, "") << "cut after " << delay.count() << " ms on " << prim_;
    std::printf("[ round %d ] cut after %lld ms: %zu acknowledged, %zu served\n", round,
                static_cast<long long>(delay.count()), ledger.size(), complete);
    total_acked += ledger.size();
    rig_.reset();
    if (HasFailure()) break;
  }
  std::printf("[ no loss ] %d rounds, %zu acknowledged records checked\n", rounds, total_acked);
}

// The same with a database: SQLite in WAL mode (synchronous=FULL), one
// transaction per row, each id noted in the ledger once sqlite3 exited
// successfully. The new primary's copy opens, passes integrity_check and
// holds every ledgered id.
TEST_F(NoLossTest, NoCommittedSqliteTransactionIsLostByAFailover) {
  if (std::system("command -v sqlite3 >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "sqlite3 (the CLI) is not installed";
  const int rounds = EnvInt("HAKIT_NOLOSS_SQLITE_ROUNDS", 3);
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(StartPair());
    const std::string db = rig_->ReplicatedDir() + "/app.db";
    // The database is created (and switched to WAL, a persistent setting)
    // before the writer starts.
    auto init = rig_->RunInDaemon(
        prim_,
        {"sqlite3", db,
         "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);"},
        10s);
    ASSERT_TRUE(init.ok()) << init.status().message();
    ASSERT_EQ(init->status.code, 0) << init->output;
    ASSERT_NE(init->output.find("wal"), std::string::npos) << init->output;
    ASSERT_NO_FATAL_FAILURE(StartWriter(db, R"(i=0
while :; do
  sqlite3 "$F" 'PRAGMA synchronous=FULL;' "INSERT INTO t VALUES($i, 'row $i');" >/dev/null || exit 1
  echo $i || exit 3
  i=$((i+1))
done
)"));
    const auto delay = Delay(100 + round);
    std::vector<long> ledger = CutAndFailOver(delay);
    ASSERT_FALSE(HasFailure());
    ASSERT_FALSE(ledger.empty()) << "no row committed in " << delay.count()
                                 << " ms: " << ReadFile(errors_);

    auto check = rig_->RunInDaemon(second_, {"sqlite3", db, "PRAGMA integrity_check;"}, 20s);
    ASSERT_TRUE(check.ok()) << check.status().message();
    EXPECT_EQ(check->status.code, 0) << check->output;
    EXPECT_EQ(check->output, "ok\n");
    auto rows =
        rig_->RunInDaemon(second_, {"sqlite3", db, "SELECT id, v FROM t ORDER BY id;"}, 20s);
    ASSERT_TRUE(rows.ok()) << rows.status().message();
    ASSERT_EQ(rows->status.code, 0) << rows->output;
    // Rows 0..n-1, each with its value, n >= the ledger and at most one more.
    std::istringstream in(rows->output);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line); ++n) {
      ASSERT_EQ(line, std::to_string(n) + "|row " + std::to_string(n));
    }
    EXPECT_GE(n, ledger.size()) << "LOST: " << ledger.size() - std::min(n, ledger.size())
                                << " committed row(s)";
    EXPECT_LE(n, ledger.size() + 1);
    std::printf("[ round %d ] cut after %lld ms: %zu committed, %zu served\n", round,
                static_cast<long long>(delay.count()), ledger.size(), n);
    rig_.reset();
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace hakit::rig
