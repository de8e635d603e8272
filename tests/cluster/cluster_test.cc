// Cluster tests: two real hakitd daemons in network namespaces, a client in a
// third, the demo module's scripts starting a real application behind the
// VIP. Each test builds its own rig and tears it down, failures included.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <atomic>
#include <thread>

#include "rig_test.h"

namespace hakit::rig {
namespace {

using cluster::State;
using namespace std::chrono_literals;

class ClusterTest : public RigTest {
 protected:
  std::string Paired() {
    auto p = rig_->WaitPaired(15s);
    EXPECT_TRUE(p.ok()) << p.status().message();
    return p.ok() ? *p : std::string();
  }
};

TEST_F(ClusterTest, BothStartPairOnePrimOneSecondAndClientReachesVip) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  EXPECT_TRUE(rig_->HasVip(prim));
  EXPECT_FALSE(rig_->HasVip(second));
  EXPECT_TRUE(rig_->AppRunning(prim));
  EXPECT_FALSE(rig_->AppRunning(second));
  auto reply = rig_->ClientRequest();
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_NE(reply->find("hello from " + prim), std::string::npos) << *reply;
}

// Watches both nodes from a thread of its own for as long as it lives, and
// counts the moments when both ran as primary or both held the VIP.
class DoublePrimaryWatch {
 public:
  explicit DoublePrimaryWatch(ClusterRig& rig, bool check_vip = true)
      : rig_(rig), check_vip_(check_vip), thread_([this] { Run(); }) {}
  ~DoublePrimaryWatch() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int both_primary() const { return both_primary_; }
  int both_vip() const { return both_vip_; }
  int both_app() const { return both_app_; }
  int samples() const { return samples_; }

 private:
  // The two nodes are read one after the other: a hand-over between the
  // reads would look like an overlap. Reading node1 again after node2 and
  // requiring it both times leaves only real overlaps.
  template <typename Probe>
  static bool Both(Probe probe) {
    return probe("node1") && probe("node2") && probe("node1");
  }

  void Run() {
    while (!stop_) {
      if (Both([&](const char* n) { return cluster::IsPrimary(rig_.StateOf(n)); })) {
        ++both_primary_;
      }
      if (Both([&](const char* n) { return rig_.AppRunning(n); })) ++both_app_;
      if (check_vip_ && Both([&](const char* n) { return rig_.HasVip(n); })) ++both_vip_;
      ++samples_;
      std::this_thread::sleep_for(5ms);
    }
  }
  ClusterRig& rig_;
  bool check_vip_;
  std::atomic<bool> stop_{false};
  std::atomic<int> both_primary_{0}, both_vip_{0}, both_app_{0}, samples_{0};
  std::thread thread_;
};



TEST_F(ClusterTest, PowerCutOfPrimaryFailsOverAndClientReachesApplication) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 10s).ok());
  EXPECT_TRUE(rig_->HasVip(second));
  EXPECT_TRUE(rig_->AppRunning(second));
  // SafeKit's arguments: <current_state> <next_state> <action>.
  EXPECT_TRUE(Contains(rig_->ScriptCalls(second), "start_prim SECOND ALONE failover"));
  auto reply = rig_->ClientRequest(2s);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_NE(reply->find("hello from " + second), std::string::npos) << *reply;
  ASSERT_TRUE(rig_->StopDaemon(second).ok());  // flushes the history
  auto events = History(second);
  const history::Event* failover = Find(events, "failover");
  ASSERT_NE(failover, nullptr);
  EXPECT_EQ(failover->to_state, "ALONE");
  // The peer is declared lost after `timeout` of silence on every network:
  // the recorded detection is that silence, the takeover what followed.
  auto details = nlohmann::json::parse(failover->details);
  ASSERT_TRUE(details.contains("detection_ms") && details.contains("takeover_ms"))
      << failover->details;
  EXPECT_GE(details["detection_ms"].get<long>(), rig_->options().timeout.count());
  EXPECT_LT(details["detection_ms"].get<long>(), 3 * rig_->options().timeout.count());
  EXPECT_GE(details["takeover_ms"].get<long>(), 0);
  EXPECT_LT(details["takeover_ms"].get<long>(), 5000);
  EXPECT_NE(Find(events, "peer_lost"), nullptr);
}

TEST_F(ClusterTest, OldPrimaryReturnsAsSecondWithDefaultPrimAlone) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 10s).ok());
  ASSERT_TRUE(rig_->RestoreNetwork(prim).ok());
  ASSERT_TRUE(rig_->StartDaemon(prim).ok());
  // It was primary when it died: its data may be stale, it must not take
  // the application back on its own.
  ASSERT_TRUE(rig_->Command(prim, "start").ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kSecond, 10s).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kPrim, 10s).ok());
  EXPECT_FALSE(rig_->HasVip(prim));
  EXPECT_TRUE(rig_->HasVip(second));
}

TEST_F(ClusterTest, DefaultPrimNodeTakesTheApplicationBackWhenItReturns) {
  RigOptions o;
  o.defaultprim = "node1";
  MakeRig(o);
  StartBoth();
  ASSERT_EQ(Paired(), "node1");
  ASSERT_TRUE(rig_->PowerCut("node1").ok());
  ASSERT_TRUE(rig_->WaitState("node2", State::kAlone, 10s).ok());
  ASSERT_TRUE(rig_->RestoreNetwork("node1").ok());
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->Command("node1", "start").ok());
  // node1 comes back as SECOND, then the failback swap gives it the
  // application again.
  ASSERT_TRUE(rig_->WaitState("node1", State::kPrim, 15s).ok());
  ASSERT_TRUE(rig_->WaitState("node2", State::kSecond, 10s).ok());
  EXPECT_TRUE(rig_->HasVip("node1"));
  auto reply = rig_->ClientRequest(2s);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_NE(reply->find("hello from node1"), std::string::npos) << *reply;
}

TEST_F(ClusterTest, SwapUnderClientTrafficMovesTheApplicationWithoutOverlap) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  std::atomic<bool> stop{false};
  std::atomic<int> ok_before{0}, ok_after{0}, failed{0};
  std::atomic<bool> swapped{false};
  std::thread client([&] {
    while (!stop) {
      auto r = rig_->ClientRequest(300ms);
      if (!r.ok()) {
        ++failed;
      } else if (r->find("hello from " + second) != std::string::npos) {
        ++ok_after;
      } else {
        ++ok_before;
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  {
    DoublePrimaryWatch watch(*rig_);
    std::this_thread::sleep_for(300ms);
    auto r = rig_->Command(prim, "swap");
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->exit_code, 0) << r->error;
    ASSERT_TRUE(rig_->WaitState(second, State::kPrim, 15s).ok());
    ASSERT_TRUE(rig_->WaitState(prim, State::kSecond, 10s).ok());
    std::this_thread::sleep_for(300ms);
    watch.Stop();
    EXPECT_EQ(watch.both_primary(), 0);
    EXPECT_EQ(watch.both_vip(), 0);
    EXPECT_EQ(watch.both_app(), 0);
    EXPECT_GT(watch.samples(), 10);
  }
  stop = true;
  client.join();
  EXPECT_GT(ok_before.load(), 0);
  EXPECT_GT(ok_after.load(), 0);
  // The swap stops the application on one node before starting it on the
  // other: a short gap, not an outage.
  EXPECT_LT(failed.load(), 100);
  EXPECT_TRUE(Contains(rig_->ScriptCalls(prim), "stop_prim PRIM SECOND swap"));
  EXPECT_TRUE(Contains(rig_->ScriptCalls(second), "start_prim SECOND PRIM swap"));
}

TEST_F(ClusterTest, FailoverOffMakesTheSecondWaitInsteadOfTakingOver) {
  RigOptions o;
  o.failover = false;
  MakeRig(o);
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  ASSERT_TRUE(rig_->PowerCut(prim).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kWait, 10s).ok());
  EXPECT_FALSE(rig_->HasVip(second));
  EXPECT_FALSE(rig_->AppRunning(second));
  auto m = rig_->ModuleState(second);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->value("wait_reason", "").find("failover"), std::string::npos) << m->dump();
}

TEST_F(ClusterTest, OneOfTwoHeartbeatNetworksCutDoesNotFailOverBothDo) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  ASSERT_TRUE(rig_->bed().CutLink(prim, 1).ok());
  // Several heartbeat timeouts with one network left: nothing moves.
  std::this_thread::sleep_for(4 * rig_->options().timeout);
  EXPECT_EQ(rig_->StateOf(prim), State::kPrim);
  EXPECT_EQ(rig_->StateOf(second), State::kSecond);
  auto st = rig_->Command(second, "state");
  ASSERT_TRUE(st.ok());
  bool lan1_down = false;
  for (const auto& n : st->data["networks"]) {
    if (n.value("lan", "") == "lan1") lan1_down = !n.value("up", true);
  }
  EXPECT_TRUE(lan1_down) << st->data.dump();
  // Both networks silent: the secondary takes over (the primary, cut off but
  // alive, goes ALONE too: that split brain is what a witness prevents).
  ASSERT_TRUE(rig_->bed().CutLink(prim, 0).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 10s).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kAlone, 10s).ok());
  // When the networks come back, the two primaries see each other: neither
  // keeps running, the operator chooses.
  ASSERT_TRUE(rig_->bed().RestoreNode(prim).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kWait, 10s).ok());
  ASSERT_TRUE(rig_->WaitState(second, State::kWait, 10s).ok());
  EXPECT_FALSE(rig_->HasVip(prim));
  EXPECT_FALSE(rig_->HasVip(second));
  auto m = rig_->ModuleState(second);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->value("wait_reason", "").find("hakit prim"), std::string::npos) << m->dump();
  // They stay so: neither copy is silently preferred.
  std::this_thread::sleep_for(4 * rig_->options().timeout);
  EXPECT_EQ(rig_->StateOf(prim), State::kWait);
  EXPECT_EQ(rig_->StateOf(second), State::kWait);
  // Diverged data wins only by the operator's --force.
  auto r = rig_->Command(second, "prim");
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->error.find("hakit prim --force -m " + rig_->options().module), std::string::npos)
      << r->error;
  // The operator keeps `second`'s data: it runs, the other follows it.
  r = rig_->Command(second, "prim", {{"force", true}});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitState(second, State::kPrim, 10s).ok());
  ASSERT_TRUE(rig_->WaitState(prim, State::kSecond, 10s).ok());
  EXPECT_TRUE(rig_->HasVip(second));
}

TEST_F(ClusterTest, DifferentConfigurationIsReportedAndNeverPaired) {
  MakeRig();
  std::string text = rig_->DefaultUserConfig();
  // Same module, one value changed on node2.
  auto pos = text.find("nicestoptimeout=\"10\"");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, std::string("nicestoptimeout=\"10\"").size(), "nicestoptimeout=\"11\"");
  ASSERT_TRUE(rig_->WriteUserConfig("node2", text).ok());
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->StartDaemon("node2").ok());
  ASSERT_TRUE(rig_->Command("node1", "start").ok());
  ASSERT_TRUE(rig_->Command("node2", "start").ok());
  std::this_thread::sleep_for(4 * rig_->options().timeout);
  for (const auto& n : rig_->nodes()) {
    auto m = rig_->ModuleState(n);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->value("state", ""), "WAIT") << n << ": " << m->dump();
    EXPECT_FALSE(m->at("peer").value("config_matches", true)) << m->dump();
  }
  EXPECT_FALSE(rig_->HasVip("node1"));
  EXPECT_FALSE(rig_->HasVip("node2"));
  ASSERT_TRUE(rig_->StopDaemon("node1").ok());
  auto events = History("node1");
  const history::Event* mismatch = Find(events, "config_mismatch");
  ASSERT_NE(mismatch, nullptr);
  EXPECT_NE(mismatch->reason.find("different configuration"), std::string::npos);
}

TEST_F(ClusterTest, NodeWithAnotherClusterKeyIsIgnoredReportedAndNeverPrimary) {
  MakeRig();
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->Command("node1", "start").ok());
  ASSERT_TRUE(rig_->WaitState("node1", State::kAlone, 10s).ok());
  ASSERT_TRUE(rig_->RegenerateKey("node2").ok());
  ASSERT_TRUE(rig_->StartDaemon("node2").ok());
  ASSERT_TRUE(rig_->Command("node2", "start").ok());
  std::this_thread::sleep_for(4 * rig_->options().timeout);
  // node2 hears a node it cannot authenticate where its peer should be: it
  // does not take the primary role on its own.
  EXPECT_EQ(rig_->StateOf("node2"), State::kWait);
  EXPECT_EQ(rig_->StateOf("node1"), State::kAlone);
  EXPECT_FALSE(rig_->HasVip("node2"));
  auto st = rig_->Command("node2", "state");
  ASSERT_TRUE(st.ok());
  EXPECT_NE(st->data["warnings"].dump().find("cluster key"), std::string::npos)
      << st->data.dump();
}

TEST_F(ClusterTest, SimultaneousStartTwentyTimesNeverMakesTwoPrimaries) {
  MakeRig();
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->StartDaemon("node2").ok());
  DoublePrimaryWatch watch(*rig_, /*check_vip=*/false);
  std::map<std::string, int> primaries;
  for (int round = 0; round < 20; ++round) {
    std::thread a([&] { rig_->Command("node1", "start"); });
    std::thread b([&] { rig_->Command("node2", "start"); });
    a.join();
    b.join();
    auto prim = rig_->WaitPaired(15s);
    ASSERT_TRUE(prim.ok()) << "round " << round << ": " << prim.status().message();
    ++primaries[*prim];
    EXPECT_TRUE(rig_->HasVip(*prim));
    EXPECT_FALSE(rig_->HasVip(rig_->Peer(*prim)));
    // Stop the primary first: the secondary carries on alone and so holds
    // the newest data for the next round's election.
    std::string second = rig_->Peer(*prim);
    ASSERT_TRUE(rig_->Command(*prim, "stop").ok());
    ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 10s).ok());
    ASSERT_TRUE(rig_->Command(second, "stop").ok());
    ASSERT_TRUE(rig_->WaitState(second, State::kStop, 10s).ok());
    ASSERT_TRUE(rig_->WaitState(*prim, State::kStop, 10s).ok());
  }
  watch.Stop();
  EXPECT_EQ(watch.both_primary(), 0);
  EXPECT_EQ(watch.both_app(), 0);
  // The node that ran last holds the newest data and wins the next round:
  // the role alternates.
  EXPECT_GT(primaries["node1"], 0);
  EXPECT_GT(primaries["node2"], 0);
}

TEST_F(ClusterTest, HakitdAloneKilledOnPrimaryNeverLeavesTwoApplicationsOrTwoVips) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  DoublePrimaryWatch watch(*rig_);
  // Only the daemon dies: the node, its network and the application stay.
  ASSERT_TRUE(rig_->KillDaemon(prim).ok());
  // The secondary notices the silence, finds the node still up (its
  // connection refused) and waits for the operator instead of starting a
  // second copy of the application.
  ASSERT_TRUE(rig_->WaitState(second, State::kWait, 10s).ok());
  std::this_thread::sleep_for(4 * rig_->options().timeout);
  EXPECT_EQ(rig_->StateOf(second), State::kWait);
  EXPECT_TRUE(rig_->AppRunning(prim)) << "the service goes on where it ran";
  EXPECT_FALSE(rig_->AppRunning(second));
  EXPECT_FALSE(rig_->HasVip(second));
  auto reply = rig_->ClientRequest(2s);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_NE(reply->find("hello from " + prim), std::string::npos) << *reply;
  auto m = rig_->ModuleState(second);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->value("wait_reason", "").find("hakitd is not"), std::string::npos) << m->dump();
  // The daemon comes back: it stops what its predecessor left running, then
  // the module starts again and the pair forms anew (both copies are of the
  // same generation), still never with two copies of the application.
  ASSERT_TRUE(rig_->StartDaemon(prim).ok());
  auto paired = rig_->WaitPaired(15s);
  ASSERT_TRUE(paired.ok()) << paired.status().message();
  EXPECT_TRUE(rig_->AppRunning(*paired));
  EXPECT_FALSE(rig_->AppRunning(rig_->Peer(*paired)));
  watch.Stop();
  EXPECT_EQ(watch.both_primary(), 0);
  EXPECT_EQ(watch.both_app(), 0);
  EXPECT_EQ(watch.both_vip(), 0);
}

TEST_F(ClusterTest, DaemonStoppedWithSigtermStopsTheModuleAndThePeerTakesOver) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  ASSERT_TRUE(rig_->StopDaemon(prim).ok());  // SIGTERM, exit code 0
  EXPECT_FALSE(rig_->AppRunning(prim));
  EXPECT_FALSE(rig_->HasVip(prim));
  EXPECT_TRUE(Contains(rig_->ScriptCalls(prim), "stop_prim PRIM STOP stop"));
  ASSERT_TRUE(rig_->WaitState(second, State::kAlone, 10s).ok());
  EXPECT_TRUE(rig_->HasVip(second));
  auto reply = rig_->ClientRequest(2s);
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_NE(reply->find("hello from " + second), std::string::npos) << *reply;
}

TEST_F(ClusterTest, RestartRunsTheScriptsAgainLocallyWithoutFailover) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  auto r = rig_->Command(prim, "restart");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->exit_code, 0) << r->error;
  ASSERT_TRUE(rig_->WaitPaired(10s).ok());
  EXPECT_EQ(rig_->StateOf(prim), State::kPrim);
  EXPECT_TRUE(Contains(rig_->ScriptCalls(prim), "stop_prim PRIM PRIM restart"));
  EXPECT_TRUE(Contains(rig_->ScriptCalls(prim), "start_prim PRIM PRIM restart"));
  EXPECT_FALSE(Contains(rig_->ScriptCalls(second), "start_prim"));
  EXPECT_TRUE(rig_->AppRunning(prim));
}

TEST_F(ClusterTest, FailingStartPrimStopsTheModuleAndThePeerStarts) {
  RigOptions o;
  o.defaultprim = "node1";
  MakeRig(o);
  // The same script on both nodes (the configuration hash covers bin/):
  // it fails on node1 only.
  std::string start_prim =
      "#!/bin/sh\n"
      "echo \"$(basename \"$0\") $*\" >> \"$SAFEUSERVAR/calls.log\"\n"
      "if [ \"$SAFENODE\" = node1 ]; then \"$SAFE/safekit\" printe \"cannot start\"; exit 3; fi\n"
      "\"$APP\" --port \"$APP_PORT\" --name \"$SAFENODE\" >/dev/null 2>&1 &\n"
      "echo $! > \"$SAFEUSERVAR/app.pid\"\n";
  for (const auto& n : rig_->nodes()) ASSERT_TRUE(rig_->WriteScript(n, "start_prim", start_prim).ok());
  StartBoth();
  // node1 is elected (defaultprim), its start_prim fails: it stops, with
  // the failure recorded, and node2 runs the application instead.
  ASSERT_TRUE(rig_->WaitState("node2", State::kAlone, 15s).ok());
  ASSERT_TRUE(rig_->WaitState("node1", State::kStop, 10s).ok());
  EXPECT_TRUE(rig_->HasVip("node2"));
  EXPECT_FALSE(rig_->HasVip("node1"));
  ASSERT_TRUE(rig_->StopDaemon("node1").ok());
  auto events = History("node1");
  const history::Event* failure = Find(events, "script_failure");
  ASSERT_NE(failure, nullptr);
  EXPECT_NE(failure->reason.find("exited with code 3"), std::string::npos) << failure->reason;
}

TEST_F(ClusterTest, VirtualAddressInUseElsewhereIsRefusedWithItsHolder) {
  MakeRig();
  std::string text = rig_->DefaultUserConfig();
  auto pos = text.find("where=\"one_side_alias\"");
  ASSERT_NE(pos, std::string::npos);
  text.insert(pos, "check=\"on\" ");
  for (const auto& n : rig_->nodes()) ASSERT_TRUE(rig_->WriteUserConfig(n, text).ok());
  // The client already answers for the VIP.
  auto held = rig_->bed().RunIn(rig_->bed().ClientNamespace(),
                                {"ip", "addr", "add", rig_->Vip() + "/25", "dev", "lan0"}, 5s);
  ASSERT_TRUE(held.ok() && held->status.code == 0);
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->Command("node1", "start").ok());
  ASSERT_TRUE(rig_->WaitState("node1", State::kStop, 10s).ok());
  EXPECT_FALSE(rig_->HasVip("node1"));
  auto log = rig_->LayoutOf("node1").ModuleLog("demo");
  std::ifstream in(log);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(all.find("already in use on the network"), std::string::npos) << all;
}

}  // namespace
}  // namespace hakit::rig
