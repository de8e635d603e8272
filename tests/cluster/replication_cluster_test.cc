// Replication across a real cluster: two hakitd with a module whose <rfs>
// replicates one dir, each node holding its own copy at the same path (a
// bind mount in each daemon's private mount namespace). A writer in the
// primary's namespaces changes files through the FUSE mount; the
// secondary's copy must equal the primary's, and after a power cut of the
// primary the new primary must serve every acknowledged byte.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "../replication_fuse/tree_compare.h"
#include "rig_test.h"

namespace hakit::rig {
namespace {

using cluster::State;
using namespace std::chrono_literals;

bool MountedHere(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

class ReplicationClusterTest : public RigTest {
 protected:
  void SetUp() override {
    RigTest::SetUp();
    if (!IsSkipped() && !HaveFuse()) GTEST_SKIP() << "no /dev/fuse";
  }

  // Every rig here replicates one dir.
  void MakeRig(RigOptions o = {}) {
    o.replicated = true;
    RigTest::MakeRig(o);
  }

  // Starts both nodes and waits until they pair with the primary
  // replicating; returns the primary's name.
  std::string PairReplicating() {
    StartBoth();
    auto paired = rig_->WaitPaired(15s);
    EXPECT_TRUE(paired.ok()) << paired.status().message();
    if (!paired.ok()) return "";
    EXPECT_TRUE(WaitReplication(*paired, "replicating", 10s)) << Replication(*paired).dump();
    return *paired;
  }

  // Runs `script` with sh inside `node`'s hakitd namespaces (where the
  // application runs); a failure fails the test.
  void Sh(const std::string& node, const std::string& script,
          std::chrono::milliseconds timeout = 30s) {
    auto w = rig_->RunInDaemon(node, {"sh", "-c", script}, timeout);
    ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());
  }

  // What still differs between two copies after waiting up to `wait` for
  // them to become identical (the last applies may still be landing).
  std::vector<std::string> DifferencesAfter(const std::filesystem::path& a,
                                            const std::filesystem::path& b,
                                            std::chrono::milliseconds wait = 10s) {
    std::vector<std::string> diffs;
    WaitFor(
        [&] {
          diffs = testing::CompareTrees(a.string(), b.string());
          return diffs.empty();
        },
        wait);
    return diffs;
  }

  // The node's last reintegration_end details once there is one (with
  // `method`, if given), waiting up to 5 s for the history to have it.
  nlohmann::json WaitReintegration(const std::string& node, const std::string& method = "") {
    nlohmann::json r;
    WaitFor(
        [&] {
          r = LastReintegration(node);
          return !r.empty() && (method.empty() || r.value("method", "") == method);
        },
        5s);
    return r;
  }

  // The details of the node's last reintegration_end, {} if none.
  nlohmann::json LastReintegration(const std::string& node) {
    nlohmann::json last = nlohmann::json::object();
    for (const auto& e : History(node)) {
      if (e.kind != "reintegration_end") continue;
      auto d = nlohmann::json::parse(e.details, nullptr, false);
      if (d.is_object() && d.contains("method")) last = d;
    }
    return last;
  }

  // The secondary goes away (`away`), the primary changes 5 scattered
  // 64 KiB zones of a 16 MiB file, appends 100 KiB to another and creates a
  // 200 KiB file, the secondary comes back (`back`). It must end identical,
  // found by `method`, with bytes sent within 1.5x of the bytes changed.
  void CatchUpAfter(const std::function<void(const std::string& second)>& away,
                    const std::function<void(const std::string& second)>& back,
                    const std::string& method) {
    const std::string dir = rig_->ReplicatedDir();
    const std::string prim = PairReplicating();
    ASSERT_FALSE(HasFailure());
    const std::string second = rig_->Peer(prim);
    ASSERT_NO_FATAL_FAILURE(Sh(prim,
                               "set -e; cd '" + dir +
                                   "'; dd if=/dev/urandom of=big bs=1M count=16 status=none; "
                                   "dd if=/dev/urandom of=log bs=64k count=4 status=none; sync",
                               30s));
    ASSERT_TRUE(WaitUpToDate(second, 20s)) << Replication(prim).dump();
    away(second);
    ASSERT_TRUE(WaitFor([&] { return Replication(prim).value("state", "") != "replicating"; }, 15s))
        << Replication(prim).dump();
    std::string change = "set -e; cd '" + dir + "';";
    for (int zone : {3, 40, 41, 100, 250}) {
      change += " dd if=/dev/urandom of=big bs=64k count=1 seek=" + std::to_string(zone) +
                " conv=notrunc status=none;";
    }
    change +=
        " dd if=/dev/urandom bs=100k count=1 status=none >> log;"
        " dd if=/dev/urandom of=new bs=200k count=1 status=none; sync";
    ASSERT_NO_FATAL_FAILURE(Sh(prim, change, 30s));
    const std::uint64_t changed = 5 * 65536 + 100 * 1024 + 200 * 1024;
    back(second);
    ASSERT_TRUE(WaitUpToDate(second, 60s)) << Replication(prim).dump();
    const auto diffs = DifferencesAfter(rig_->DataDir(prim), rig_->DataDir(second));
    EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
    const nlohmann::json r = WaitReintegration(prim, method);
    EXPECT_EQ(r.value("method", ""), method) << r.dump();
    EXPECT_GE(r.value("bytes_sent", 0ull), changed) << r.dump();
    EXPECT_LE(r.value("bytes_sent", 0ull), changed * 3 / 2) << r.dump();
  }

  // sha256sum of `files` (relative to dir), hashes only, in order.
  std::string Hashes(const testbed::CommandOutput& out) {
    std::istringstream in(out.output);
    std::string all;
    for (std::string line; std::getline(in, line);) all += line.substr(0, 64) + "\n";
    return all;
  }
};

TEST_F(ReplicationClusterTest, WritesReachTheSecondaryAndSurviveThePrimarysPowerCut) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  StartBoth();
  auto paired = rig_->WaitPaired(15s);
  ASSERT_TRUE(paired.ok()) << paired.status().message();
  const std::string prim = *paired;
  const std::string second = rig_->Peer(prim);
  ASSERT_TRUE(WaitReplication(prim, "replicating", 10s)) << Replication(prim).dump();
  ASSERT_TRUE(WaitReplication(second, "connected", 10s)) << Replication(second).dump();

  // The writer runs where the application would: in the primary's
  // namespaces, through the FUSE mount.
  const std::string script =
      "set -e\n"
      "cd '" +
      dir +
      "'\n"
      "i=0\n"
      "while [ $i -lt 200 ]; do echo \"record $i\" >> log.txt; i=$((i+1)); done\n"
      "printf 'first version' > config.tmp\n"
      "mv config.tmp config.txt\n"
      "mkdir -p sub\n"
      "dd if=/dev/urandom of=sub/blob bs=4096 count=64 conv=fsync status=none\n"
      "echo tail >> sub/blob\n"
      "sync log.txt sub/blob\n"
      "echo WRITER_DONE\n";
  auto w = rig_->RunInDaemon(prim, {"sh", "-c", script}, 30s);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_TRUE(w->status.exited() && w->status.code == 0)
      << w->status.ToString() << ": " << w->output;
  ASSERT_NE(w->output.find("WRITER_DONE"), std::string::npos) << w->output;

  // The secondary's real directory equals the primary's (async="second":
  // acknowledged once received, applied shortly after).
  std::vector<std::string> diffs;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    diffs = testing::CompareTrees(rig_->DataDir(prim).string(), rig_->DataDir(second).string());
    if (diffs.empty()) break;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs) << "\n"
                             << Replication(prim).dump() << "\n"
                             << Replication(second).dump();

  // The secondary's mount refuses local writers.
  auto ro = rig_->RunInDaemon(second, {"sh", "-c", "echo x > '" + dir + "/intruder'"}, 10s);
  ASSERT_TRUE(ro.ok()) << ro.status().message();
  EXPECT_NE(ro->status.code, 0) << "the secondary's replicated dir accepted a local write";

  // What was acknowledged, read from the primary's real copy.
  const std::vector<std::string> files = {"log.txt", "config.txt", "sub/blob"};
  std::vector<std::string> local = {"sha256sum"};
  for (const auto& f : files) local.push_back((rig_->DataDir(prim) / f).string());
  auto expected = rig_->bed().RunIn(rig_->bed().ClientNamespace(), local, 10s);
  ASSERT_TRUE(expected.ok() && expected->status.code == 0) << expected.status().message();

  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 15s).ok());
  EXPECT_EQ(Replication(second).value("role", ""), "primary") << Replication(second).dump();

  // The new primary serves every acknowledged byte through its mount.
  std::vector<std::string> remote = {"sha256sum"};
  for (const auto& f : files) remote.push_back(dir + "/" + f);
  auto served = rig_->RunInDaemon(second, remote, 10s);
  ASSERT_TRUE(served.ok()) << served.status().message();
  ASSERT_EQ(served->status.code, 0) << served->output;
  EXPECT_EQ(Hashes(*served), Hashes(*expected));
  auto count = rig_->RunInDaemon(second, {"sh", "-c", "wc -l < '" + dir + "/log.txt'"}, 10s);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->output, "200\n");
  // And takes new writes.
  auto more =
      rig_->RunInDaemon(second, {"sh", "-c", "echo 'record 200' >> '" + dir + "/log.txt'"}, 10s);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->status.code, 0) << more->output;

  // The FUSE mounts live in the daemons' namespaces only.
  EXPECT_FALSE(MountedHere(dir));
  rig_.reset();
  EXPECT_FALSE(MountedHere(dir));
  std::error_code ec;
  EXPECT_FALSE(std::filesystem::exists(dir, ec)) << dir << " left behind";
}

// The secondary's node fails: the primary's sender loses its peer (no ack within
// the heart timeout), says so in its history, and goes on serving writes (the
// heartbeats take it ALONE).
TEST_F(ReplicationClusterTest, PrimaryRecordsTheLossOfItsReplicationPeer) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  StartBoth();
  auto paired = rig_->WaitPaired(15s);
  ASSERT_TRUE(paired.ok()) << paired.status().message();
  const std::string prim = *paired;
  const std::string second = rig_->Peer(prim);
  ASSERT_TRUE(WaitReplication(prim, "replicating", 10s)) << Replication(prim).dump();
  ASSERT_TRUE(rig_->PowerCut(second).ok());
  bool recorded = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!recorded && std::chrono::steady_clock::now() < deadline) {
    for (const auto& e : History(prim)) {
      if (e.kind == "peer_lost" && e.reason.rfind("replication: ", 0) == 0) recorded = true;
    }
    if (!recorded) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(recorded) << Replication(prim).dump();
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 15s).ok());
  auto w = rig_->RunInDaemon(prim, {"sh", "-c", "echo alone >> '" + dir + "/alone.txt'"}, 10s);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->status.code, 0) << w->output;
  std::ifstream in(rig_->DataDir(prim) / "alone.txt");
  std::string line;
  EXPECT_TRUE(std::getline(in, line) && line == "alone");
}

// A swap reverses the roles: the old secondary's mount becomes the primary
// (connecting to the old primary, now receiving), and new writes reach the
// other copy. Synchronous mode (async="none").
TEST_F(ReplicationClusterTest, SwapReversesTheReplicationInSynchronousMode) {
  RigOptions o;
  o.replication_async = "none";
  MakeRig(o);
  const std::string dir = rig_->ReplicatedDir();
  StartBoth();
  auto paired = rig_->WaitPaired(15s);
  ASSERT_TRUE(paired.ok()) << paired.status().message();
  const std::string first = *paired;
  const std::string other = rig_->Peer(first);
  ASSERT_TRUE(WaitReplication(first, "replicating", 10s)) << Replication(first).dump();
  auto w = rig_->RunInDaemon(
      first, {"sh", "-c", "echo one > '" + dir + "/f' && sync '" + dir + "/f'"}, 10s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());
  // Synchronous: applied on the secondary before write(2) returned.
  auto diffs = testing::CompareTrees(rig_->DataDir(first).string(), rig_->DataDir(other).string());
  ASSERT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);

  auto r = rig_->Command(first, "swap");
  ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->error : r.status().message());
  ASSERT_TRUE(rig_->WaitState(other, State::kPrim, 15s).ok());
  ASSERT_TRUE(rig_->WaitState(first, State::kSecond, 15s).ok());
  ASSERT_TRUE(WaitReplication(other, "replicating", 10s)) << Replication(other).dump();
  ASSERT_TRUE(WaitReplication(first, "connected", 10s)) << Replication(first).dump();

  w = rig_->RunInDaemon(
      other, {"sh", "-c", "echo two >> '" + dir + "/f' && mv '" + dir + "/f' '" + dir + "/g'"},
      10s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());
  diffs = testing::CompareTrees(rig_->DataDir(other).string(), rig_->DataDir(first).string());
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
  std::ifstream in(rig_->DataDir(first) / "g");
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "one\ntwo\n");
}

// POSIX behaviour through the primary's mount, pjdfstest-style cases run by
// a shell in the primary's namespaces; the secondary's tree must then equal
// the primary's byte for byte and metadata for metadata (owners, modes,
// links, hard-link structure, sizes, sparse files, times set explicitly).
TEST_F(ReplicationClusterTest, PosixCasesOnThePrimaryLeaveTheSameTreeOnTheSecondary) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  const std::string script = "set -e\ncd '" + dir + R"('
umask 022
# files: create, append, overwrite, O_TRUNC, truncate up and down
printf 'hello' > f; printf ' world' >> f; printf 'HE' | dd of=f conv=notrunc status=none
printf 'long content' > t; : > t; printf 'x' > t
dd if=/dev/urandom of=g bs=1k count=300 status=none; truncate -s 100000 g; truncate -s 500000 g
# sparse and large
dd if=/dev/urandom of=sparse bs=4k count=1 seek=2000 status=none
dd if=/dev/urandom of=large bs=1M count=24 status=none
# directories, nested, removed, renamed, renamed over an existing one
mkdir -p d1/d2/d3; echo deep > d1/d2/d3/file; mkdir gone; rmdir gone
mkdir r1; echo a > r1/a; mv r1 r2; mkdir empty_target; mv r2 empty_target/r3
# rename over an existing file, exchange by three renames
echo old > over; echo new > newer; mv newer over
echo A > x; echo B > y; mv x tmp; mv y x; mv tmp y
# hard and symbolic links
echo shared > h1; ln h1 h2; ln h1 d1/h3; rm h2
ln -s f sym; ln -s ../f d1/sym2; ln -s dangling broken; mv sym sym_renamed
# special files
mkfifo fifo
# modes and owners
chmod 600 f; chmod 4755 g; chmod 1777 d1; chown 1234:5678 t; chown -h 42:43 sym_renamed
mkdir -m 700 private
# times set explicitly
touch -d '2001-02-03 04:05:06' f d1/d2
# many files in one directory, then half of them removed
mkdir many; i=0; while [ $i -lt 500 ]; do echo $i > many/$i; i=$((i+1)); done
i=0; while [ $i -lt 500 ]; do rm many/$i; i=$((i+2)); done
# unlink while open: the data written through the open descriptor stays local
exec 3> open_unlinked; echo x >&3; rm open_unlinked; echo y >&3; exec 3>&-
sync
echo POSIX_DONE
)";
  auto w = rig_->RunInDaemon(prim, {"sh", "-c", script}, 60s);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->status.code, 0) << w->output;
  ASSERT_NE(w->output.find("POSIX_DONE"), std::string::npos) << w->output;
  testing::TreeCompareOptions o;
  o.mtime_paths = {"f", "d1/d2"};
  o.compare_xattrs = false;
  std::vector<std::string> diffs;
  WaitFor(
      [&] {
        diffs =
            testing::CompareTrees(rig_->DataDir(prim).string(), rig_->DataDir(second).string(), o);
        return diffs.empty();
      },
      10s);
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
}

// A node that missed writes (stopped while the primary wrote alone: files
// created, changed, renamed and removed) rejoins as SECOND: the primary
// compares both trees by zone checksums and sends what differs while the
// application keeps writing, the history says so, the secondary's copy ends
// identical and takes the primary's generation, and after the primary's power
// cut it serves everything.
TEST_F(ReplicationClusterTest, SecondaryThatMissedWritesIsSynchronisedThenTakesOver) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  const std::string before =
      "set -e; cd '" + dir +
      "'; mkdir -p keep gone; echo kept > keep/a; echo old > keep/b; echo x > gone/x;"
      " dd if=/dev/urandom of=big bs=1M count=8 status=none; sync big";
  auto w = rig_->RunInDaemon(prim, {"sh", "-c", before}, 30s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());

  ASSERT_TRUE(rig_->StopDaemon(second).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  const std::string alone =
      "set -e; cd '" + dir +
      "'; echo missed >> missed.txt; echo new > keep/b; rm -r gone; mv keep/a keep/renamed;"
      " dd if=/dev/urandom of=big bs=64k count=1 seek=50 conv=notrunc status=none;"
      " mkdir -p fresh/deeper; echo deep > fresh/deeper/f; sync";
  w = rig_->RunInDaemon(prim, {"sh", "-c", alone}, 30s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());

  ASSERT_TRUE(rig_->StartDaemon(second).ok());
  ASSERT_TRUE(rig_->Command(second, "start").ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kSecond, 10s).ok());
  // The application keeps writing during the synchronisation.
  auto during = rig_->RunInDaemon(
      prim, {"sh", "-c", "cd '" + dir + "'; for i in $(seq 1 200); do echo $i >> during.txt; done"},
      30s);
  ASSERT_TRUE(during.ok() && during->status.code == 0);
  ASSERT_TRUE(WaitUpToDate(second, 20s)) << rig_->ModuleState(second)->dump() << "\n"
                                         << Replication(prim).dump();
  EXPECT_EQ(Replication(prim)["sync"].value("state", ""), "done") << Replication(prim).dump();
  // Only what differed travelled: one 64 KiB zone of the 8 MiB file, not all.
  EXPECT_LT(Replication(prim)["sync"].value("bytes_sent", 0), 1u << 20) << Replication(prim).dump();
  const auto diffs = DifferencesAfter(rig_->DataDir(prim), rig_->DataDir(second), 10s);
  ASSERT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
  // The secondary stopped cleanly and the primary noted what it missed: only
  // that was sent, without comparing the trees (the pairing itself, with
  // nothing noted yet, compared them by checksums).
  std::string method;
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& e : History(prim)) {
          if (e.kind != "reintegration_end") continue;
          auto d = nlohmann::json::parse(e.details, nullptr, false);
          if (d.is_object()) method = d.value("method", "");
        }
        return method == "record";
      },
      5s))
      << "last synchronisation's method: " << method;

  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 15s).ok());
  auto served = rig_->RunInDaemon(
      second,
      {"sh", "-c", "cd '" + dir + "'; cat missed.txt keep/b fresh/deeper/f; wc -l < during.txt"},
      10s);
  ASSERT_TRUE(served.ok() && served->status.code == 0) << served->output;
  EXPECT_EQ(served->output, "missed\nnew\ndeep\n200\n");
}

// A secondary stopped cleanly while nothing changed comes back without any
// transfer or comparison: the primary's record is empty.
TEST_F(ReplicationClusterTest, SecondaryThatMissedNothingGetsNothing) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  auto w = rig_->RunInDaemon(prim, {"sh", "-c", "echo data > '" + dir + "/f'; sync"}, 10s);
  ASSERT_TRUE(w.ok() && w->status.code == 0);
  ASSERT_TRUE(WaitUpToDate(second, 10s));
  auto count_syncs = [&] {
    int n = 0;
    for (const auto& e : History(prim)) n += e.kind == "reintegration_start" ? 1 : 0;
    return n;
  };
  WaitFor([&] { return Replication(prim)["sync"].value("state", "") != "running"; }, 10s);
  const int before = count_syncs();
  ASSERT_TRUE(rig_->StopDaemon(second).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  ASSERT_TRUE(rig_->StartDaemon(second).ok());
  ASSERT_TRUE(rig_->Command(second, "start").ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kSecond, 10s).ok());
  ASSERT_TRUE(WaitUpToDate(second, 10s)) << Replication(prim).dump();
  EXPECT_EQ(count_syncs(), before) << "a synchronisation ran although nothing changed";
  auto diffs = testing::CompareTrees(rig_->DataDir(prim).string(), rig_->DataDir(second).string());
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
}

// A synchronisation interrupted by a crash of the secondary (hakitd killed at
// about 20 %, 50 % and 99 % of the bytes to send) resumes when the secondary
// comes back: what it already holds is not sent again (the comparison finds
// it), and the trees end identical.
TEST_F(ReplicationClusterTest, InterruptedSynchronisationResumes) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  ASSERT_TRUE(rig_->StopDaemon(second).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  constexpr std::uint64_t kTotal = 384ull << 20;
  auto w =
      rig_->RunInDaemon(prim,
                        {"sh", "-c",
                         "cd '" + dir +
                             "' && for i in 1 2 3; do dd if=/dev/urandom of=big$i bs=1M count=128 "
                             "status=none; done && sync"},
                        120s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());
  auto sync_state = [&] { return Replication(prim)["sync"]; };
  auto sent = [&] { return sync_state().value("bytes_sent", std::uint64_t{0}); };
  std::uint64_t before = 0;  // sent by the interrupted synchronisations so far
  for (double fraction : {0.2, 0.5, 0.99}) {
    SCOPED_TRACE("interrupted at " + std::to_string(fraction));
    const std::uint64_t passes_before = sync_state().value("passes", std::uint64_t{0});
    ASSERT_TRUE(rig_->StartDaemon(second).ok());
    ASSERT_TRUE(rig_->Command(second, "start").ok());
    // This synchronisation (a new one: its own counters), until the share.
    std::uint64_t at_kill = 0;
    std::string state;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto j = sync_state();
          state = j.value("state", "");
          at_kill = j.value("bytes_sent", std::uint64_t{0});
          const bool fresh =
              state == "running" || j.value("passes", std::uint64_t{0}) != passes_before;
          return fresh && (state != "running" || before + at_kill >= fraction * kTotal);
        },
        60s))
        << sync_state().dump();
    ASSERT_TRUE(rig_->KillDaemon(second).ok());
    std::cerr << "secondary killed after " << at_kill << " more bytes (" << state << ")\n";
    before += at_kill;
    ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 15s).ok());
  }
  ASSERT_TRUE(rig_->StartDaemon(second).ok());
  ASSERT_TRUE(rig_->Command(second, "start").ok());
  ASSERT_TRUE(WaitUpToDate(second, 90s)) << Replication(prim).dump();
  // The resumed synchronisations found what the secondary already held:
  // nothing was sent twice beyond what was in flight at each kill (at most
  // the sender's 64 MiB window and the socket buffers), and the last one was
  // far from a full copy.
  EXPECT_LT(before + sent(), kTotal + 3 * (72ull << 20)) << Replication(prim).dump();
  EXPECT_LT(sent(), kTotal / 2) << Replication(prim).dump();
  EXPECT_GE(before + sent(), kTotal) << Replication(prim).dump();
  const auto diffs = DifferencesAfter(rig_->DataDir(prim), rig_->DataDir(second), 20s);
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
}

// Split brain: both nodes cut off from each other run ALONE and write
// different things; when they see each other again both wait; the operator
// keeps one node's data, the other is synchronised from it, and what that
// replaced or removed there is listed (file and history), not lost without
// trace.
TEST_F(ReplicationClusterTest, SplitBrainLoserConvergesAndListsWhatItLost) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  auto w = rig_->RunInDaemon(prim, {"sh", "-c", "echo shared > '" + dir + "/shared'; sync"}, 10s);
  ASSERT_TRUE(w.ok() && w->status.code == 0);
  ASSERT_TRUE(WaitUpToDate(second, 10s));
  ASSERT_TRUE(rig_->bed().CutNode(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 10s).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  w = rig_->RunInDaemon(
      prim, {"sh", "-c", "cd '" + dir + "' && echo loser > loser_only && echo L >> shared"}, 10s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());
  w = rig_->RunInDaemon(second, {"sh", "-c", "cd '" + dir + "' && echo winner > winner_only"}, 10s);
  ASSERT_TRUE(w.ok() && w->status.code == 0) << (w.ok() ? w->output : w.status().message());
  ASSERT_TRUE(rig_->bed().RestoreNode(prim).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kWait, 10s).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kWait, 10s).ok());
  // Both name the two generations and the command that picks the winner
  // (history and `hakit state`); plain `hakit prim` is refused.
  const std::string command = "hakit prim --force -m " + rig_->options().module;
  for (const auto& node : {prim, second}) {
    auto st = rig_->ModuleState(node);
    ASSERT_TRUE(st.ok());
    const std::string mine =
        std::to_string(st->at("details").value("generation", std::uint64_t{0}));
    const std::string theirs = std::to_string(
        rig_->ModuleState(rig_->Peer(node))->at("details").value("generation", std::uint64_t{0}));
    EXPECT_NE(st->value("wait_reason", "").find(command), std::string::npos) << st->dump();
    std::string said;
    WaitFor(
        [&] {
          for (const auto& e : History(node)) {
            if (e.kind == "split_brain" && e.reason.find("data diverged") != std::string::npos) {
              said = e.reason;
            }
          }
          return !said.empty();
        },
        5s);
    EXPECT_NE(said.find("generation " + mine + " on " + node), std::string::npos) << said;
    EXPECT_NE(said.find(theirs + " on " + rig_->Peer(node)), std::string::npos) << said;
    EXPECT_NE(said.find(command), std::string::npos) << said;
  }
  auto r = rig_->Command(second, "prim");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->error.find("diverged"), std::string::npos) << r->error;
  EXPECT_NE(r->error.find(command), std::string::npos) << r->error;
  EXPECT_NE(r->error.find(" here, "), std::string::npos) << r->error;  // the generations
  // The operator keeps `second`'s data.
  r = rig_->Command(second, "prim", {{"force", true}});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitState(prim, State::kSecond, 10s).ok());
  ASSERT_TRUE(WaitUpToDate(prim, 15s)) << rig_->ModuleState(prim)->dump();
  const auto diffs = DifferencesAfter(rig_->DataDir(second), rig_->DataDir(prim), 10s);
  ASSERT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
  // The loser's own changes are named in the list its history points to.
  std::string list;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& e : History(prim)) {
          auto d = nlohmann::json::parse(e.details, nullptr, false);
          if (e.kind == "reintegration_end" && d.is_object() && d.contains("list")) {
            list = d.value("list", "");
          }
        }
        return !list.empty();
      },
      10s));
  std::ifstream in(list);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("loser_only\n"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("shared\n"), std::string::npos) << text.str();
}

// A secondary whose synchronisation has not ended never takes over on its
// own: cut the primary's power while the secondary may still be copying, and
// it waits for the operator if it was incomplete, or takes over with
// everything if it had finished.
TEST_F(ReplicationClusterTest, IncompleteSecondaryNeverTakesOverOnItsOwn) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  // Killed, the secondary is compared by checksums when it returns, and
  // 160 MiB it lacks must travel: its synchronisation takes seconds.
  ASSERT_TRUE(rig_->KillDaemon(second).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  ASSERT_NO_FATAL_FAILURE(
      Sh(prim, "dd if=/dev/urandom of='" + dir + "/bulk' bs=1M count=160 status=none", 60s));
  ASSERT_TRUE(rig_->StartDaemon(second).ok());
  ASSERT_TRUE(rig_->Command(second, "start").ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kSecond, 10s).ok());
  auto m = rig_->ModuleState(second);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->at("details").value("data", ""), "stale") << m->dump();
  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kWait, 10s).ok());
  std::this_thread::sleep_for(4 * rig_->options().timeout);
  auto st = rig_->ModuleState(second);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->value("state", ""), "WAIT") << st->dump();
  EXPECT_FALSE(rig_->HasVip(second));
  EXPECT_NE(st->value("wait_reason", "").find("not synchronised"), std::string::npos) << st->dump();
  // Only the operator's --force makes the half-synchronised copy primary.
  auto r = rig_->Command(second, "prim");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->error.find("data is stale"), std::string::npos) << r->error;
  r = rig_->Command(second, "prim", {{"force", true}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0) << r->error;
  EXPECT_TRUE(rig_->WaitState(second, State::kAlone, 15s).ok());
}

// The primary is cut off while a writer rewrites one region of a file: its
// last write is applied on its disk but never reaches the secondary, which
// takes over and changes another file. When the old primary returns, its
// hot-zone log names where its copy may differ; the new primary sends those
// zones and what it changed since the failover (its record), not the tree.
TEST_F(ReplicationClusterTest, PrimaryCutOffMidWriteReturnsAndGetsOnlyWhatDiffers) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  ASSERT_NO_FATAL_FAILURE(
      Sh(prim,
         "set -e; cd '" + dir +
             "'; for i in 1 2 3 4 5 6 7 8; do dd if=/dev/urandom of=f$i bs=1M count=8 "
             "status=none; done; sync",
         60s));
  ASSERT_TRUE(WaitUpToDate(second, 20s)) << Replication(prim).dump();

  // The writer runs where the application would: in the primary hakitd's
  // mount and network namespaces.
  const std::string script = (rig_->work_dir() / "writer.sh").string();
  {
    std::ofstream out(script);
    out << "cd '" << dir << "' || exit 1\ni=0\n"
        << "while :; do dd if=/dev/urandom of=f1 bs=64k count=1 seek=$((i % 64)) conv=notrunc "
           "status=none || exit 1; i=$((i+1)); done\n";
  }
  testbed::SpawnOptions so;
  so.netns = rig_->bed().NodeNamespace(prim);
  so.env = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}};
  so.argv = {"nsenter", "--target", std::to_string(*rig_->DaemonPid(prim)),
             "--mount", "--net",    "--",
             "sh",      script};
  auto writer = rig_->bed().Spawn(so);
  ASSERT_TRUE(writer.ok()) << writer.status().message();
  std::this_thread::sleep_for(1500ms);
  ASSERT_FALSE(rig_->bed().WaitExit(*writer, 0ms).has_value()) << "the writer stopped early";
  // Cut off mid-write: the write under way is applied here, not there.
  ASSERT_TRUE(rig_->bed().CutNode(prim).ok());
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  rig_->bed().Kill(*writer, SIGKILL);
  rig_->bed().WaitExit(*writer, 5s);
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 30s).ok());
  ASSERT_NO_FATAL_FAILURE(
      Sh(second,
         "cd '" + dir +
             "' && dd if=/dev/urandom of=f2 bs=64k count=2 seek=10 conv=notrunc "
             "status=none && sync",
         10s));

  ASSERT_TRUE(rig_->RestoreNetwork(prim).ok());
  ASSERT_TRUE(rig_->StartDaemon(prim).ok());
  auto start = rig_->Command(prim, "start");
  ASSERT_TRUE(start.ok()) << start.status().message();
  ASSERT_TRUE(rig_->WaitState(prim, State::kSecond, 30s).ok());
  ASSERT_TRUE(WaitUpToDate(prim, 60s)) << Replication(second).dump();
  const auto diffs = DifferencesAfter(rig_->DataDir(second), rig_->DataDir(prim));
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
  const nlohmann::json r = WaitReintegration(second);
  EXPECT_EQ(r.value("method", ""), "record") << r.dump();
  // f1's hot extent (4 MiB) and f2's two zones, not the 64 MiB tree.
  EXPECT_GT(r.value("bytes_sent", 0ull), 128u << 10) << r.dump();
  EXPECT_LT(r.value("bytes_sent", 0ull), 16u << 20) << r.dump();
}

// The secondary's hakitd is killed (-9): its copy may miss what it had
// received but not written, so the primary compares both trees by
// checksums, and sends only the zones that differ.
TEST_F(ReplicationClusterTest, SecondaryKilledCatchesUpWithOnlyTheChangedZones) {
  MakeRig();
  CatchUpAfter([&](const std::string& second) { ASSERT_TRUE(rig_->KillDaemon(second).ok()); },
               [&](const std::string& second) {
                 ASSERT_TRUE(rig_->StartDaemon(second).ok());
                 ASSERT_TRUE(rig_->Command(second, "start").ok());
               },
               "checksums");
}

// The replication network is cut while the heartbeats go on over the other
// one (no failover): the primary goes on alone, notes what the secondary
// misses, reconnects when the network returns and sends only that.
TEST_F(ReplicationClusterTest, ReplicationNetworkCutThenBackSendsOnlyWhatChanged) {
  MakeRig();
  CatchUpAfter(
      [&](const std::string& second) { ASSERT_TRUE(rig_->bed().CutLink(second, 0).ok()); },
      [&](const std::string& second) { ASSERT_TRUE(rig_->bed().RestoreLink(second, 0).ok()); },
      "record");
}

// defaultprim names a node: after a power cut it returns, is synchronised
// (only what changed while it was away) and only then takes the application
// back by itself (failback), holding every write made meanwhile.
TEST_F(ReplicationClusterTest, DefaultPrimNodeReturnsIsSynchronisedThenTakesBack) {
  RigOptions o;
  o.defaultprim = "node1";
  MakeRig(o);
  const std::string dir = rig_->ReplicatedDir();
  StartBoth();
  ASSERT_TRUE(rig_->WaitState("node1", State::kPrim, 20s).ok());
  ASSERT_TRUE(WaitReplication("node1", "replicating", 10s)) << Replication("node1").dump();
  ASSERT_NO_FATAL_FAILURE(Sh("node1",
                             "cd '" + dir +
                                 "' && dd if=/dev/urandom of=big bs=1M count=8 "
                                 "status=none && sync",
                             30s));
  ASSERT_TRUE(WaitUpToDate("node2", 20s)) << Replication("node1").dump();
  // Written, acknowledged, flushed on both: no longer hot (otherwise the
  // whole file would be sent again, as writes in flight at the power cut).
  ASSERT_TRUE(WaitFor([&] { return Replication("node1").value("hot_extents", 1) == 0; }, 10s))
      << Replication("node1").dump();

  ASSERT_TRUE(rig_->PowerCut("node1").ok());
  ASSERT_TRUE(rig_->WaitState("node2", State::kAlone, 30s).ok());
  ASSERT_NO_FATAL_FAILURE(Sh("node2",
                             "cd '" + dir +
                                 "' && echo while-away > away.txt && dd if=/dev/urandom of=big "
                                 "bs=64k count=1 seek=7 conv=notrunc status=none && sync",
                             10s));

  ASSERT_TRUE(rig_->RestoreNetwork("node1").ok());
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->Command("node1", "start").ok());
  ASSERT_TRUE(rig_->WaitState("node1", State::kPrim, 60s).ok())
      << rig_->ModuleState("node1")->dump() << "\n"
      << Replication("node2").dump();
  ASSERT_TRUE(rig_->WaitState("node2", State::kSecond, 30s).ok());
  // It was synchronised from node2's record before it took over.
  const nlohmann::json r = LastReintegration("node2");
  EXPECT_EQ(r.value("method", ""), "record") << r.dump();
  EXPECT_LT(r.value("bytes_sent", 0ull), 1u << 20) << r.dump();
  auto served = rig_->RunInDaemon("node1", {"cat", dir + "/away.txt"}, 10s);
  ASSERT_TRUE(served.ok() && served->status.code == 0);
  EXPECT_EQ(served->output, "while-away\n");
  ASSERT_TRUE(WaitUpToDate("node2", 30s)) << Replication("node1").dump();
  const auto diffs = DifferencesAfter(rig_->DataDir("node1"), rig_->DataDir("node2"));
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
}

// <rfs nbrei="2"> with two replicated dirs that both missed changes: they
// are synchronised at once (one walk each over the connection), and both
// end identical, from the record.
TEST_F(ReplicationClusterTest, TwoDirsAreSynchronisedAsParallelStreams) {
  RigOptions o;
  o.replicated_dir_in_userconfig = false;
  MakeRig(o);
  const std::string top = rig_->ReplicatedDir();
  std::string xml = rig_->DefaultUserConfig();
  const std::string rfs = "<rfs async=\"second\">";
  ASSERT_NE(xml.find(rfs), std::string::npos) << xml;
  xml.replace(xml.find(rfs), rfs.size(),
              "<rfs async=\"second\" nbrei=\"2\">\n      <replicated dir=\"" + top +
                  "/a\"/>\n      <replicated dir=\"" + top + "/b\"/>");
  for (const auto& n : rig_->nodes()) {
    std::filesystem::create_directories(rig_->DataDir(n) / "a");
    std::filesystem::create_directories(rig_->DataDir(n) / "b");
    ASSERT_TRUE(rig_->WriteUserConfig(n, xml).ok());
  }
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  ASSERT_NO_FATAL_FAILURE(Sh(prim,
                             "set -e; cd '" + top +
                                 "'; for d in a b; do dd if=/dev/urandom of=$d/f bs=1M count=4 "
                                 "status=none; done; sync",
                             30s));
  ASSERT_TRUE(WaitUpToDate(second, 20s)) << Replication(prim).dump();
  ASSERT_TRUE(rig_->StopDaemon(second).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  ASSERT_NO_FATAL_FAILURE(Sh(prim,
                             "set -e; cd '" + top +
                                 "'; for d in a b; do dd if=/dev/urandom of=$d/f bs=64k count=1 "
                                 "seek=9 conv=notrunc status=none; echo $d > $d/new; done; sync",
                             30s));
  ASSERT_TRUE(rig_->StartDaemon(second).ok());
  ASSERT_TRUE(rig_->Command(second, "start").ok());
  ASSERT_TRUE(WaitUpToDate(second, 30s)) << Replication(prim).dump();
  for (const char* d : {"a", "b"}) {
    const auto diffs = DifferencesAfter((rig_->DataDir(prim) / d), (rig_->DataDir(second) / d));
    EXPECT_TRUE(diffs.empty()) << d << ": " << testing::JoinDifferences(diffs);
  }
  const nlohmann::json r = WaitReintegration(prim, "record");
  EXPECT_EQ(r.value("method", ""), "record") << r.dump();
  EXPECT_EQ(r.value("streams", 0), 2) << r.dump();
  // At once: both walks started before either ended (one after the other,
  // b would start after a is done).
  std::ifstream in(rig_->LayoutOf(prim).ModuleLog(rig_->options().module));
  std::vector<std::string> steps;
  for (std::string line; std::getline(in, line);) {
    for (const char* d : {"/a: ", "/b: "}) {
      for (const char* what : {"started", "done"}) {
        if (line.find(d + std::string(what)) != std::string::npos)
          steps.push_back(d + std::string(what));
      }
    }
  }
  ASSERT_GE(steps.size(), 4u);
  const std::vector<std::string> last(steps.end() - 4, steps.end());
  EXPECT_NE(last[0].find("started"), std::string::npos) << ::testing::PrintToString(last);
  EXPECT_NE(last[1].find("started"), std::string::npos) << ::testing::PrintToString(last);
  // One 64 KiB zone and a 2-byte file per dir.
  EXPECT_EQ(r.value("bytes_sent", 0ull), 2u * (65536 + 2)) << r.dump();
  // `hakit state` summed both dirs' totals, as the record estimated them.
  const nlohmann::json sync = Replication(prim)["sync"];
  EXPECT_EQ(sync.value("bytes_total", 0ull), 2u * (65536 + 2)) << sync.dump();
  EXPECT_EQ(sync.value("bytes_done", 0ull), 2u * (65536 + 2)) << sync.dump();
}

// The record survives the primary's hakitd: killed (-9) while running alone
// and restarted, the primary still knows what its secondary missed, and
// sends only that when the secondary returns (no tree comparison).
TEST_F(ReplicationClusterTest, ThePrimarysRecordSurvivesItsDaemonsCrash) {
  MakeRig();
  const std::string dir = rig_->ReplicatedDir();
  const std::string prim = PairReplicating();
  ASSERT_FALSE(HasFailure());
  const std::string second = rig_->Peer(prim);
  ASSERT_NO_FATAL_FAILURE(
      Sh(prim, "cd '" + dir + "' && dd if=/dev/urandom of=big bs=1M count=16 status=none && sync"));
  ASSERT_TRUE(WaitUpToDate(second, 20s)) << Replication(prim).dump();
  ASSERT_TRUE(rig_->StopDaemon(second).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  ASSERT_NO_FATAL_FAILURE(Sh(prim, "cd '" + dir +
                                       "' && dd if=/dev/urandom of=big bs=64k count=1 seek=3 "
                                       "conv=notrunc status=none && echo one > one"));
  // Cooled: the record alone says what changed (a write still hot at the
  // crash would send its whole 4 MiB extent again).
  ASSERT_TRUE(WaitFor([&] { return Replication(prim).value("hot_extents", 1) == 0; }, 10s))
      << Replication(prim).dump();
  ASSERT_TRUE(rig_->KillDaemon(prim).ok());
  ASSERT_TRUE(rig_->StartDaemon(prim).ok());
  ASSERT_TRUE(rig_->Command(prim, "start").ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 30s).ok());
  ASSERT_NO_FATAL_FAILURE(Sh(prim, "cd '" + dir +
                                       "' && dd if=/dev/urandom of=big bs=64k count=1 seek=200 "
                                       "conv=notrunc status=none && echo two > two"));
  ASSERT_TRUE(rig_->StartDaemon(second).ok());
  ASSERT_TRUE(rig_->Command(second, "start").ok());
  ASSERT_TRUE(WaitUpToDate(second, 30s)) << Replication(prim).dump();
  const auto diffs = DifferencesAfter(rig_->DataDir(prim), rig_->DataDir(second));
  EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
  const nlohmann::json r = WaitReintegration(prim);
  EXPECT_EQ(r.value("method", ""), "record") << r.dump();
  EXPECT_LT(r.value("bytes_sent", 0ull), 1u << 20) << r.dump();
}

}  // namespace
}  // namespace hakit::rig
