// What the operator sees and decides during a reintegration, with real
// daemons and the real `hakit` CLI: the progress of a synchronisation in
// `hakit state` (bytes done of total, rate, time left), `hakit second
// --fullsync` (a comparison by checksums whatever record exists), and
// `hakit prim` refused on a stale copy unless --force.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include "../replication_fuse/tree_compare.h"
#include "rig_test.h"

namespace hakit::rig {
namespace {

using cluster::State;
using namespace std::chrono_literals;

class ReintegrationOperatorTest : public RigTest {
 protected:
  // The node's module state once its wait reason contains `text` (or the
  // last state seen after 15 s).
  nlohmann::json WaitReasonSays(const std::string& node, const std::string& text) {
    nlohmann::json m;
    WaitFor(
        [&] {
          auto s = rig_->ModuleState(node);
          if (s.ok()) m = *s;
          return s.ok() && m.value("wait_reason", "").find(text) != std::string::npos;
        },
        15s);
    return m;
  }

  void SetUp() override {
    RigTest::SetUp();
    if (!IsSkipped() && !HaveFuse()) GTEST_SKIP() << "no /dev/fuse";
  }

  void Pair() { StartReplicatedPair(&prim_, &second_); }

  // A shell script in the primary's namespaces (through its FUSE mount).
  void OnPrimary(const std::string& script, std::chrono::seconds wait = 30s) {
    auto w = rig_->RunInDaemon(prim_, {"sh", "-c", "set -e; cd '" + rig_->ReplicatedDir() + "'; " + script},
                               wait);
    ASSERT_TRUE(w.ok()) << w.status().message();
    ASSERT_EQ(w->status.code, 0) << w->output;
  }

  // The secondary's daemon stops cleanly; the primary goes on ALONE.
  void StopSecond() {
    ASSERT_TRUE(rig_->StopDaemon(second_).ok());
    ASSERT_TRUE(rig_->WaitState(prim_, State::kAlone, 10s).ok());
  }

  // The methods of the primary's synchronisations, in order (history).
  std::vector<std::string> SyncMethods() {
    std::vector<std::string> methods;
    for (const auto& e : History(prim_)) {
      if (e.kind != "reintegration_start") continue;
      auto d = nlohmann::json::parse(e.details, nullptr, false);
      methods.push_back(d.is_object() ? d.value("method", "?") : "?");
    }
    return methods;
  }

  // Waits for a synchronisation after the `before` first ones; its method.
  std::string NextSyncMethod(std::size_t before) {
    std::vector<std::string> methods;
    WaitFor(
        [&] {
          methods = SyncMethods();
          return methods.size() > before;
        },
        20s);
    return methods.size() > before ? methods[before] : "none";
  }

  void ExpectSameTrees() {
    std::vector<std::string> diffs;
    WaitFor(
        [&] {
          diffs = testing::CompareTrees(rig_->DataDir(prim_).string(),
                                        rig_->DataDir(second_).string());
          return diffs.empty();
        },
        20s);
    EXPECT_TRUE(diffs.empty()) << testing::JoinDifferences(diffs);
  }

  std::string prim_, second_;
};

// 512 MiB written while the secondary is away: while it is synchronised,
// `hakit state` on the primary shows bytes done of total, the rate and the
// time left (JSON and text), and at the end everything that had to travel.
TEST_F(ReintegrationOperatorTest, StateShowsTheSynchronisationsProgress) {
  Pair();
  ASSERT_FALSE(HasFailure());
  StopSecond();
  ASSERT_FALSE(HasFailure());
  constexpr std::uint64_t kTotal = 512ull << 20;
  OnPrimary("for i in 1 2 3 4; do dd if=/dev/urandom of=big$i bs=1M count=128 status=none; done; sync",
            180s);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(rig_->StartDaemon(second_).ok());
  ASSERT_TRUE(rig_->Command(second_, "start").ok());
  const std::string module = rig_->options().module;
  nlohmann::json mid;  // the JSON seen part-way
  std::string text;    // the text seen part-way
  nlohmann::json last;
  // Polled without pause: at this machine's speed the copy takes about a
  // second.
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  bool running = false;
  while ((mid.is_null() || text.empty()) && std::chrono::steady_clock::now() < deadline) {
    last = Replication(prim_)["sync"];
    const std::uint64_t done = last.value("bytes_done", std::uint64_t{0});
    const std::uint64_t total = last.value("bytes_total", std::uint64_t{0});
    if (mid.is_null() && last.value("state", "") == "running" && done > 0 && done < total &&
        last.value("rate_bps", std::uint64_t{0}) > 0 && last.contains("eta_s")) {
      mid = last;
    }
    if (text.empty()) {
      auto out = Cli(prim_, {"state", "-m", module});
      if (out.output.find("synchronisation: running") != std::string::npos &&
          out.output.find(" MiB/s, about ") != std::string::npos) {
        text = out.output;
      }
    }
    // (The pairing's own synchronisation, long done, shows until this one.)
    running = running || last.value("state", "") == "running";
    if (running && last.value("state", "") == "done") break;
  }
  ASSERT_TRUE(!mid.is_null() && !text.empty())
      << "part-way JSON: " << mid.dump() << "\nlast: " << last.dump() << "\ntext: " << text;
  std::cerr << "part-way: " << mid.dump() << "\n" << text;
  // The total is what the synchronisation has to move: the three new files.
  EXPECT_EQ(mid.value("bytes_total", std::uint64_t{0}), kTotal) << mid.dump();
  EXPECT_GE(mid.value("eta_s", -1.0), 0.0) << mid.dump();
  EXPECT_NE(text.find(" of 512.0 MiB ("), std::string::npos) << text;
  EXPECT_NE(text.find(" s left"), std::string::npos) << text;

  ASSERT_TRUE(WaitUpToDate(second_, 120s)) << Replication(prim_).dump();
  ASSERT_TRUE(WaitFor([&] { return Replication(prim_)["sync"].value("state", "") == "done"; }, 10s));
  const nlohmann::json end = Replication(prim_)["sync"];
  EXPECT_GE(end.value("bytes_done", std::uint64_t{0}), kTotal) << end.dump();
  EXPECT_EQ(end.value("bytes_total", std::uint64_t{0}), kTotal) << end.dump();
  EXPECT_FALSE(end.contains("eta_s")) << end.dump();
  EXPECT_EQ(Cli(prim_, {"state", "-m", module}).output.find("synchronisation:"), std::string::npos);
  ExpectSameTrees();
}

// A secondary stopped cleanly comes back with the primary's record of what
// changed (method "record"); with `hakit second --fullsync` both trees are
// compared by checksums instead, from STOP and from SECOND alike.
TEST_F(ReintegrationOperatorTest, SecondFullsyncComparesByChecksumsWhateverTheRecord) {
  Pair();
  ASSERT_FALSE(HasFailure());
  const std::string module = rig_->options().module;
  OnPrimary("mkdir -p d; for i in 1 2 3 4; do echo v1 > d/f$i; done; "
            "dd if=/dev/urandom of=blob bs=64k count=16 status=none; sync");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(WaitUpToDate(second_, 10s));
  WaitFor([&] { return Replication(prim_)["sync"].value("state", "") != "running"; }, 10s);

  // A plain restart: the record.
  StopSecond();
  ASSERT_FALSE(HasFailure());
  OnPrimary("echo v2 > d/f1; dd if=/dev/urandom of=blob bs=64k count=1 seek=3 conv=notrunc status=none");
  ASSERT_FALSE(HasFailure());
  std::size_t before = SyncMethods().size();
  ASSERT_TRUE(rig_->StartDaemon(second_).ok());
  ASSERT_EQ(Cli(second_, {"start", "-m", module}).status.code, 0);
  EXPECT_EQ(NextSyncMethod(before), "record");
  ASSERT_TRUE(WaitUpToDate(second_, 30s));
  ExpectSameTrees();

  // The same, with --fullsync: checksums.
  StopSecond();
  ASSERT_FALSE(HasFailure());
  OnPrimary("echo v3 > d/f2; rm d/f3; echo new > d/f5");
  ASSERT_FALSE(HasFailure());
  before = SyncMethods().size();
  ASSERT_TRUE(rig_->StartDaemon(second_).ok());
  auto out = Cli(second_, {"second", "--fullsync", "-m", module});
  ASSERT_EQ(out.status.code, 0) << out.output;
  EXPECT_EQ(NextSyncMethod(before), "checksums");
  ASSERT_TRUE(rig_->WaitState(second_, State::kSecond, 10s).ok());
  ASSERT_TRUE(WaitUpToDate(second_, 30s));
  ExpectSameTrees();

  // Already SECOND: it re-enters SECOND and is compared again.
  ASSERT_TRUE(WaitFor([&] { return Replication(prim_)["sync"].value("state", "") == "done"; }, 10s));
  before = SyncMethods().size();
  out = Cli(second_, {"second", "--fullsync", "-m", module});
  ASSERT_EQ(out.status.code, 0) << out.output;
  EXPECT_EQ(NextSyncMethod(before), "checksums");
  ASSERT_TRUE(rig_->WaitState(second_, State::kSecond, 15s).ok());
  ASSERT_TRUE(WaitUpToDate(second_, 30s));
  ExpectSameTrees();
  std::cerr << "synchronisations:";
  for (const auto& m : SyncMethods()) std::cerr << " " << m;
  std::cerr << "\n";
  // The operator's command is in the secondary's history.
  bool recorded = false;
  for (const auto& e : History(second_)) {
    recorded = recorded || (e.kind == "operator_command" &&
                            e.reason.find("hakit second --fullsync") != std::string::npos);
  }
  EXPECT_TRUE(recorded);
}

// A node whose copy is stale (it crashed as SECOND, its peer ran alone after
// it) never becomes primary on its own, and `hakit prim` there is refused,
// saying why and naming the override; `hakit prim --force` makes it primary.
TEST_F(ReintegrationOperatorTest, StaleNodeBecomesPrimaryOnlyWithForce) {
  Pair();
  ASSERT_FALSE(HasFailure());
  const std::string module = rig_->options().module;
  ASSERT_TRUE(rig_->KillDaemon(second_).ok());
  ASSERT_TRUE(rig_->WaitState(prim_, State::kAlone, 15s).ok());
  OnPrimary("echo only-on-the-primary > newer");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(rig_->StopDaemon(prim_).ok());
  // The module was running when hakitd died: it starts again, and waits.
  ASSERT_TRUE(rig_->StartDaemon(second_).ok());
  nlohmann::json m = WaitReasonSays(second_, "--force");
  ASSERT_NE(m.value("wait_reason", "").find("--force"), std::string::npos) << m.dump();
  EXPECT_EQ(m.value("state", ""), "WAIT") << m.dump();
  EXPECT_EQ(m.at("details").value("data", ""), "stale") << m.dump();
  EXPECT_NE(m.value("wait_reason", "").find("hakit prim --force -m " + module), std::string::npos)
      << m.dump();

  auto out = Cli(second_, {"prim", "-m", module});
  EXPECT_EQ(out.status.code, 1) << out.output;
  EXPECT_NE(out.output.find("data is stale"), std::string::npos) << out.output;
  EXPECT_NE(out.output.find("hakit prim --force -m " + module), std::string::npos) << out.output;
  EXPECT_EQ(rig_->StateOf(second_), State::kWait);

  out = Cli(second_, {"prim", "--force", "-m", module});
  EXPECT_EQ(out.status.code, 0) << out.output;
  ASSERT_TRUE(rig_->WaitState(second_, State::kAlone, 15s).ok());
  EXPECT_TRUE(rig_->HasVip(second_));
}

// A secondary stopped cleanly (its daemon too) while in step with its
// primary, which then carried on alone and stopped: started alone, it must
// not trust its old "up to date" (it waits for the peer or the operator).
TEST_F(ReintegrationOperatorTest, SecondaryStoppedCleanlyDoesNotStartAloneOnOldData) {
  Pair();
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(rig_->Command(second_, "stop").ok());
  ASSERT_TRUE(rig_->WaitState(second_, State::kStop, 15s).ok());
  ASSERT_TRUE(rig_->StopDaemon(second_).ok());
  ASSERT_TRUE(rig_->WaitState(prim_, State::kAlone, 15s).ok());
  OnPrimary("echo only-on-the-primary > newer");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(rig_->StopDaemon(prim_).ok());
  // What it saved says "up to date", as when the peer's heartbeat still
  // showed the same generation as the secondary stopped.
  const auto saved = rig_->LayoutOf(second_).ModuleVar(rig_->options().module) / "state.json";
  nlohmann::json state = nlohmann::json::parse(std::ifstream(saved), nullptr, false);
  ASSERT_TRUE(state.is_object()) << saved;
  state["data"] = "up_to_date";
  std::ofstream(saved) << state.dump() << "\n";
  ASSERT_TRUE(rig_->StartDaemon(second_).ok());
  ASSERT_TRUE(rig_->Command(second_, "start").ok());
  nlohmann::json m = WaitReasonSays(second_, "--force");
  ASSERT_NE(m.value("wait_reason", "").find("--force"), std::string::npos) << m.dump();
  std::this_thread::sleep_for(2 * rig_->options().timeout);
  auto st = rig_->ModuleState(second_);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->value("state", ""), "WAIT") << st->dump();
  EXPECT_EQ(st->at("details").value("data", ""), "stale") << st->dump();
  EXPECT_FALSE(rig_->HasVip(second_));
}

}  // namespace
}  // namespace hakit::rig
