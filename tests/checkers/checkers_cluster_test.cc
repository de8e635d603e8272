// Failure detection with real daemons (ClusterRig: two hakitd in network
// namespaces running the demo module): errd and the restart policy, a tcp
// checker against the application's real socket, a custom checker script,
// operator commands, and the split-brain witness.
#include <signal.h>

#include <fstream>
#include <regex>

#include "../cluster/rig_test.h"

namespace hakit::rig {
namespace {

using cluster::State;

class CheckersTest : public RigTest {
 protected:
  // Every hakit-demo-app of the machine is in the one /proc, whichever
  // namespace (or test) it serves: each rig's application listens on a
  // port of its own, and errd counts only the processes with that argument.
  void MakeRig(RigOptions o = {}) {
    static int n = 0;
    o.app_port = static_cast<std::uint16_t>(20000 + (::getpid() * 7 + n++) % 20000);
    RigTest::MakeRig(o);
  }

  std::string Errd(const std::string& action = "restart") {
    return "    <errd polltimer=\"200ms\">\n"
           "      <proc name=\"hakit-demo-app\" argregex=\"--port " +
           std::to_string(rig_->options().app_port) + "( |$)\" atleast=\"1\" action=\"" + action +
           "\" class=\"prim\"/>\n"
           "    </errd>\n";
  }

  // The rig's module with `extra` (errd, check) added to <service>, the same
  // on both nodes.
  void Configure(const std::string& extra) {
    std::string text = rig_->DefaultUserConfig();
    auto at = text.find("  </service>");
    ASSERT_NE(at, std::string::npos);
    text.insert(at, extra);
    for (const auto& n : rig_->nodes()) ASSERT_TRUE(rig_->WriteUserConfig(n, text).ok());
  }

  int StartPrimCalls(const std::string& node) {
    int n = 0;
    for (const auto& l : rig_->ScriptCalls(node)) n += l.rfind("start_prim", 0) == 0;
    return n;
  }

  nlohmann::json Checks(const std::string& node) {
    auto m = rig_->ModuleState(node);
    return m.ok() ? m->value("checks", nlohmann::json::object()) : nlohmann::json::object();
  }

  std::string ResourceState(const std::string& node, const std::string& name) {
    for (const auto& r : Checks(node).value("resources", nlohmann::json::array())) {
      if (r.value("name", "") == name) return r.value("state", "");
    }
    return "";
  }

  bool WaitResource(const std::string& node, const std::string& name, const std::string& state,
                    std::chrono::milliseconds wait = 10s) {
    return WaitFor([&] { return ResourceState(node, name) == state; }, wait);
  }

  // Kills the application on `node` and waits until start_prim ran again
  // there and the module is back in `state`.
  void KillAndExpectRestart(const std::string& node, State state) {
    int before = StartPrimCalls(node);
    ASSERT_TRUE(rig_->KillApp(node).ok());
    ASSERT_TRUE(WaitFor([&] { return StartPrimCalls(node) > before; }, 15s))
        << "start_prim did not run again on " << node;
    ASSERT_TRUE(rig_->WaitState(node, state, 15s).ok());
    ASSERT_TRUE(WaitFor([&] { return rig_->AppRunning(node); }, 10s));
  }

  std::string WitnessConfig() {
    return "    <check><splitbrain ident=\"witness\" exec=\"ping\" arg=\"" +
           rig_->bed().WitnessAddress() + "\"/></check>\n";
  }

  static int CountKind(const std::vector<history::Event>& ev, const std::string& kind) {
    return static_cast<int>(
        std::count_if(ev.begin(), ev.end(), [&](const auto& e) { return e.kind == kind; }));
  }
};


// maxloop 3: two local restarts, the third failure fails over, and once the
// operator swaps back the fourth stops the module there, with the reason.
TEST_F(CheckersTest, ErrdRestartsThenFailsOverThenStops) {
  MakeRig();
  Configure(Errd());
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim, q = rig_->Peer(p);
  ASSERT_TRUE(WaitResource(p, "proc.hakit-demo-app", "up"));
  EXPECT_EQ(ResourceState(q, "proc.hakit-demo-app"), "init");  // class prim: not on SECOND

  KillAndExpectRestart(p, State::kPrim);
  ASSERT_TRUE(WaitResource(p, "proc.hakit-demo-app", "up"));
  EXPECT_EQ(Checks(p).value("loops", -1), 1);
  KillAndExpectRestart(p, State::kPrim);
  ASSERT_TRUE(WaitResource(p, "proc.hakit-demo-app", "up"));
  EXPECT_EQ(Checks(p).value("loops", -1), 2);

  // Third: the peer takes over.
  int peer_starts = StartPrimCalls(q);
  ASSERT_TRUE(rig_->KillApp(p).ok());
  ASSERT_TRUE(rig_->WaitState(q, State::kPrim, 20s).ok());
  ASSERT_TRUE(rig_->WaitState(p, State::kSecond, 20s).ok());
  EXPECT_GT(StartPrimCalls(q), peer_starts);
  EXPECT_TRUE(WaitFor([&] { return rig_->ClientRequest().ok(); }, 10s));

  // The operator moves it back; the counter of `p` is its own.
  auto swap = rig_->Command(q, "swap");
  ASSERT_TRUE(swap.ok() && swap->exit_code == 0) << (swap.ok() ? swap->error : "");
  ASSERT_TRUE(rig_->WaitState(p, State::kPrim, 20s).ok());
  ASSERT_TRUE(rig_->WaitState(q, State::kSecond, 20s).ok());
  ASSERT_TRUE(WaitResource(p, "proc.hakit-demo-app", "up"));

  // Fourth: past maxloop, the module stops here and the peer carries on.
  ASSERT_TRUE(rig_->KillApp(p).ok());
  ASSERT_TRUE(rig_->WaitState(p, State::kStop, 20s).ok());
  ASSERT_TRUE(rig_->WaitState(q, State::kAlone, 20s).ok());
  auto m = rig_->ModuleState(p);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->value("reason", "").find("maxloop"), std::string::npos) << m->dump();

  ASSERT_TRUE(rig_->StopDaemon(p).ok());
  auto ev = History(p);
  EXPECT_EQ(CountKind(ev, "checker_failure"), 4);
  EXPECT_EQ(CountKind(ev, "restart"), 2);
  EXPECT_GE(CountKind(ev, "failover"), 1);
  const history::Event* stop = nullptr;
  for (const auto& e : ev) {
    if (e.kind == "local_failure" && e.to_state == "STOP") stop = &e;
  }
  ASSERT_NE(stop, nullptr);
  EXPECT_NE(stop->reason.find("proc.hakit-demo-app down"), std::string::npos) << stop->reason;
  EXPECT_NE(stop->reason.find("maxloop reached"), std::string::npos) << stop->reason;
  for (const auto& e : ev) {
    if (e.kind == "checker_failure") {
      EXPECT_NE(e.reason.find("proc.hakit-demo-app"), std::string::npos) << e.reason;
    }
  }
}

// A tcp checker connects to the application's real listening socket; a
// custom checker script reports its own resource through `hakit set`.
TEST_F(CheckersTest, TcpAndCustomCheckers) {
  MakeRig();
  Configure(
      "    <check>\n"
      "      <tcp ident=\"app\" when=\"prim\" action=\"restart\">\n"
      "        <to addr=\"127.0.0.1\" port=\"" + std::to_string(rig_->options().app_port) +
      "\" interval=\"300ms\" timeout=\"200ms\"/>\n"
      "      </tcp>\n"
      "      <custom ident=\"probe\" when=\"prim\" action=\"restart\" exec=\"check_probe\" "
      "arg=\"fail\" interval=\"1s\" timeout=\"1s\"/>\n"
      "    </check>\n");
  // Started as `check_probe MODULE RESOURCE fail`: down once each time
  // $SAFEUSERVAR/fail appears (consumed), up otherwise.
  const std::string script =
      "#!/bin/sh\n"
      "echo \"check_probe $*\" >> \"$SAFEUSERVAR/custom.log\"\n"
      "while true; do\n"
      "  if [ -f \"$SAFEUSERVAR/$3\" ]; then rm -f \"$SAFEUSERVAR/$3\"; v=down; else v=up; fi\n"
      "  \"$SAFE/safekit\" set -m \"$1\" -r \"$2\" -v $v >/dev/null 2>&1\n"
      "  sleep 0.2\n"
      "done\n";
  for (const auto& n : rig_->nodes()) ASSERT_TRUE(rig_->WriteScript(n, "check_probe", script).ok());
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim, q = rig_->Peer(p);
  ASSERT_TRUE(WaitResource(p, "tcp.app", "up"));
  ASSERT_TRUE(WaitResource(p, "custom.probe", "up"));
  EXPECT_EQ(ResourceState(q, "custom.probe"), "init");
  // The peer sees them in the heartbeats.
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& r : Checks(q).value("peer_resources", nlohmann::json::array())) {
          if (r.value("name", "") == "tcp.app" && r.value("state", "") == "up") return true;
        }
        return false;
      },
      5s));
  std::ifstream args(rig_->LayoutOf(p).ModuleVar("demo") / "custom.log");
  std::string first;
  std::getline(args, first);
  EXPECT_EQ(first, "check_probe demo custom.probe fail");

  // `hakit state -v` lists every resource with its state and age.
  auto out = Cli(p, {"state", "-m", "demo", "-v"});
  EXPECT_EQ(out.status.code, 0) << out.output;
  EXPECT_TRUE(std::regex_search(out.output, std::regex("resource tcp\\.app +up +for [0-9.]+s")))
      << out.output;
  EXPECT_TRUE(std::regex_search(out.output, std::regex("resource custom\\.probe +up")))
      << out.output;

  // No errd here: only the tcp checker sees the application gone.
  KillAndExpectRestart(p, State::kPrim);
  ASSERT_TRUE(WaitResource(p, "tcp.app", "up"));
  ASSERT_TRUE(WaitResource(p, "custom.probe", "up"));

  // The custom script reports down once.
  int before = StartPrimCalls(p);
  std::ofstream(rig_->LayoutOf(p).ModuleVar("demo") / "fail") << "1\n";
  ASSERT_TRUE(WaitFor([&] { return StartPrimCalls(p) > before; }, 15s));
  ASSERT_TRUE(rig_->WaitState(p, State::kPrim, 15s).ok());
  ASSERT_TRUE(WaitResource(p, "custom.probe", "up"));

  // checker off: the application may die unnoticed; on: it is restarted
  // (after resetloop: two restarts already count).
  EXPECT_EQ(Cli(p, {"checker", "off", "-m", "demo"}).status.code, 0);
  EXPECT_EQ(Cli(p, {"resetloop", "-m", "demo"}).status.code, 0);
  before = StartPrimCalls(p);
  ASSERT_TRUE(rig_->KillApp(p).ok());
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(StartPrimCalls(p), before);
  EXPECT_EQ(ResourceState(p, "tcp.app"), "init");
  EXPECT_EQ(Cli(p, {"checker", "on", "-m", "demo"}).status.code, 0);
  ASSERT_TRUE(WaitFor([&] { return StartPrimCalls(p) > before; }, 15s));
  ASSERT_TRUE(rig_->WaitState(p, State::kPrim, 15s).ok());

  ASSERT_TRUE(rig_->StopDaemon(p).ok());
  auto ev = History(p);
  int tcp = 0, custom = 0;
  for (const auto& e : ev) {
    if (e.kind != "checker_failure") continue;
    tcp += e.reason.rfind("tcp.app down", 0) == 0;
    custom += e.reason.rfind("custom.probe down", 0) == 0;
  }
  EXPECT_EQ(tcp, 2);
  EXPECT_EQ(custom, 1);
  // The custom checker's reports are not operator commands.
  for (const auto& e : ev) EXPECT_NE(e.reason.find("hakit set"), 0u) << e.reason;
}

// errd off/on, set, resetloop, failover off (persisted): each does what it
// says and is in the history.
TEST_F(CheckersTest, OperatorCommands) {
  MakeRig();
  Configure(Errd());
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim;
  const std::string res = "proc.hakit-demo-app";
  ASSERT_TRUE(WaitResource(p, res, "up"));

  // errd off: a dead application is left alone.
  EXPECT_EQ(Cli(p, {"errd", "off", "-m", "demo"}).status.code, 0);
  int before = StartPrimCalls(p);
  ASSERT_TRUE(rig_->KillApp(p).ok());
  std::this_thread::sleep_for(1500ms);  // 7 polls of errd
  EXPECT_EQ(StartPrimCalls(p), before);
  EXPECT_EQ(rig_->StateOf(p), State::kPrim);
  EXPECT_EQ(ResourceState(p, res), "init");
  EXPECT_FALSE(Checks(p).value("errd", true));
  // errd on: found dead and restarted.
  EXPECT_EQ(Cli(p, {"errd", "on", "-m", "demo"}).status.code, 0);
  ASSERT_TRUE(WaitFor([&] { return StartPrimCalls(p) > before; }, 15s));
  ASSERT_TRUE(rig_->WaitState(p, State::kPrim, 15s).ok());
  ASSERT_TRUE(WaitResource(p, res, "up"));

  // The operator declares the resource down: the rule acts on it.
  before = StartPrimCalls(p);
  auto set = Cli(p, {"set", "-m", "demo", "-r", res, "-v", "down"});
  EXPECT_EQ(set.status.code, 0) << set.output;
  ASSERT_TRUE(WaitFor([&] { return StartPrimCalls(p) > before; }, 15s));
  ASSERT_TRUE(rig_->WaitState(p, State::kPrim, 15s).ok());
  EXPECT_EQ(Checks(p).value("loops", -1), 2);
  EXPECT_EQ(Cli(p, {"resetloop", "-m", "demo"}).status.code, 0);
  EXPECT_EQ(Checks(p).value("loops", -1), 0);

  auto unknown = Cli(p, {"set", "-m", "demo", "-r", "tcp.nothing", "-v", "down"});
  EXPECT_EQ(unknown.status.code, 1);
  EXPECT_NE(unknown.output.find("no resource tcp.nothing"), std::string::npos) << unknown.output;
  EXPECT_NE(unknown.output.find(res), std::string::npos) << unknown.output;
  EXPECT_EQ(Cli(p, {"set", "-m", "demo", "-r", res, "-v", "maybe"}).status.code, 2);
  EXPECT_EQ(Cli(p, {"failover", "sideways", "-m", "demo"}).status.code, 2);

  // failover off survives a daemon restart.
  EXPECT_EQ(Cli(p, {"failover", "off", "-m", "demo"}).status.code, 0);
  EXPECT_FALSE(Checks(p).value("failover", true));
  ASSERT_TRUE(rig_->StopDaemon(p).ok());
  auto ev = History(p);
  std::vector<std::string> commands;
  for (const auto& e : ev) {
    if (e.kind == "operator_command") commands.push_back(e.reason);
  }
  for (const char* c : {"hakit errd off", "hakit errd on", "hakit resetloop", "hakit failover off"}) {
    EXPECT_TRUE(Contains(commands, c)) << c;
  }
  EXPECT_TRUE(Contains(commands, "hakit set -r " + res + " -v down"));
  ASSERT_TRUE(rig_->StartDaemon(p).ok());
  EXPECT_FALSE(Checks(p).value("failover", true));
}

// A pair with a ping witness (on lan0 only), primary on `primary`, then
// every heartbeat network cut between the nodes: node1 keeps lan0 (and the
// witness, unless `witness_down`), node2 keeps lan1 only.
void SplitWithWitness(std::unique_ptr<ClusterRig>& rig, const std::string& primary,
                      bool witness_down) {
  auto prim = rig->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  if (*prim != primary) {
    auto swap = rig->Command(*prim, "swap");
    ASSERT_TRUE(swap.ok() && swap->exit_code == 0);
    ASSERT_TRUE(rig->WaitState(primary, State::kPrim, 20s).ok());
    ASSERT_TRUE(rig->WaitState(*prim, State::kSecond, 20s).ok());
  }
  if (witness_down) {
    ASSERT_TRUE(rig->bed().CutLink("witness", 0).ok());
  }
  ASSERT_TRUE(rig->bed().CutLink("node1", 1).ok());
  ASSERT_TRUE(rig->bed().CutLink("node2", 0).ok());
}

// Whichever node was primary, only node1 (which reaches the witness) runs
// the application after the cut.
TEST_F(CheckersTest, WitnessLetsOnlyTheSideThatReachesItRun) {
  for (const std::string primary : {"node2", "node1"}) {
    SCOPED_TRACE("primary before the cut: " + primary);
    RigOptions o;
    o.witness = true;
    MakeRig(o);
    Configure(WitnessConfig());
    StartBoth();
    ASSERT_NO_FATAL_FAILURE(SplitWithWitness(rig_, primary, /*witness_down=*/false));
    ASSERT_TRUE(rig_->WaitState("node1", State::kAlone, 20s).ok());
    ASSERT_TRUE(rig_->WaitState("node2", State::kWait, 20s).ok());
    EXPECT_TRUE(rig_->AppRunning("node1"));
    EXPECT_FALSE(rig_->AppRunning("node2"));
    EXPECT_EQ(ResourceState("node1", "splitbrain.witness"), "up");
    EXPECT_EQ(ResourceState("node2", "splitbrain.witness"), "down");
    // It stays that way: node2 does not start alone later either.
    std::this_thread::sleep_for(2s);
    EXPECT_EQ(rig_->StateOf("node2"), State::kWait);
    EXPECT_FALSE(rig_->AppRunning("node2"));
    auto m = rig_->ModuleState("node2");
    ASSERT_TRUE(m.ok());
    EXPECT_NE(m->value("wait_reason", "").find("witness"), std::string::npos) << m->dump();

    ASSERT_TRUE(rig_->StopDaemon("node2").ok());
    auto ev = History("node2");
    const history::Event* w = Find(ev, "witness");
    ASSERT_NE(w, nullptr);
    EXPECT_NE(w->reason.find("unreachable"), std::string::npos) << w->reason;
    rig_.reset();
  }
}

// The same cut with the witness gone for both: neither side runs it.
TEST_F(CheckersTest, NoWitnessReachableBothWait) {
  RigOptions o;
  o.witness = true;
  MakeRig(o);
  Configure(WitnessConfig());
  StartBoth();
  ASSERT_NO_FATAL_FAILURE(SplitWithWitness(rig_, "node1", /*witness_down=*/true));
  ASSERT_TRUE(rig_->WaitState("node1", State::kWait, 20s).ok());
  ASSERT_TRUE(rig_->WaitState("node2", State::kWait, 20s).ok());
  EXPECT_FALSE(rig_->AppRunning("node1"));
  EXPECT_FALSE(rig_->AppRunning("node2"));
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(rig_->StateOf("node1"), State::kWait);
  EXPECT_EQ(rig_->StateOf("node2"), State::kWait);
  // The network back: they pair again on their own.
  ASSERT_TRUE(rig_->bed().RestoreLink("node1", 1).ok());
  ASSERT_TRUE(rig_->bed().RestoreLink("node2", 0).ok());
  auto again = rig_->WaitPaired(30s);
  EXPECT_TRUE(again.ok()) << again.status().message();
}

// Interface and ping checkers (class pre, action wait): the node whose lan1
// loses its carrier stops the application and waits, its peer takes over;
// a router (the client) gone for both keeps both waiting; each comes back
// on its own once the resource is up.
TEST_F(CheckersTest, InterfaceAndPingWait) {
  MakeRig();
  Configure(
      "    <check>\n"
      "      <intf ident=\"lan1\"><to name=\"lan1\" interval=\"300ms\" timeout=\"200ms\"/></intf>\n"
      "      <ping ident=\"router\"><to addr=\"" + rig_->bed().ClientAddress(0) +
      "\" interval=\"300ms\" timeout=\"200ms\"/></ping>\n"
      "    </check>\n");
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim, q = rig_->Peer(p);
  ASSERT_TRUE(WaitResource(p, "intf.lan1", "up"));
  ASSERT_TRUE(WaitResource(q, "ping.router", "up"));

  ASSERT_TRUE(rig_->bed().CutLink(p, 1, testbed::CutMode::kLinkDown).ok());
  ASSERT_TRUE(WaitResource(p, "intf.lan1", "down"));
  ASSERT_TRUE(rig_->WaitState(p, State::kWait, 15s).ok());
  ASSERT_TRUE(rig_->WaitState(q, State::kAlone, 15s).ok());
  EXPECT_FALSE(rig_->AppRunning(p));
  EXPECT_TRUE(rig_->AppRunning(q));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(rig_->StateOf(p), State::kWait);  // held while the link is down
  ASSERT_TRUE(rig_->bed().RestoreLink(p, 1).ok());
  ASSERT_TRUE(rig_->WaitState(p, State::kSecond, 20s).ok());
  ASSERT_TRUE(rig_->WaitState(q, State::kPrim, 20s).ok());

  // The router gone for both: neither runs the application.
  ASSERT_TRUE(rig_->bed().CutLink("client", 0).ok());
  ASSERT_TRUE(rig_->WaitState(p, State::kWait, 15s).ok());
  ASSERT_TRUE(rig_->WaitState(q, State::kWait, 15s).ok());
  EXPECT_FALSE(rig_->AppRunning(p));
  EXPECT_FALSE(rig_->AppRunning(q));
  ASSERT_TRUE(rig_->bed().RestoreLink("client", 0).ok());
  auto again = rig_->WaitPaired(30s);
  ASSERT_TRUE(again.ok()) << again.status().message();

  ASSERT_TRUE(rig_->StopDaemon(p).ok());
  auto ev = History(p);
  bool intf = false;
  for (const auto& e : ev) {
    intf |= e.kind == "checker_failure" && e.reason.rfind("intf.lan1 down", 0) == 0;
  }
  EXPECT_TRUE(intf);
}

// The ip checker: the VIP removed behind hakitd's back is a stopstart (the
// peer takes over while this node restarts its module).
TEST_F(CheckersTest, IpCheckerStopStarts) {
  MakeRig();
  Configure("    <check><ip ident=\"vip\"><to addr=\"" + rig_->Vip() +
            "\" interval=\"300ms\" timeout=\"200ms\"/></ip></check>\n");
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim, q = rig_->Peer(p);
  ASSERT_TRUE(WaitResource(p, "ip.vip", "up"));
  auto del = rig_->bed().RunIn(rig_->bed().NodeNamespace(p),
                               {"ip", "addr", "del", rig_->Vip() + "/25", "dev", "lan0"}, 5s);
  ASSERT_TRUE(del.ok() && del->status.code == 0) << (del.ok() ? del->output : del.status().message());
  ASSERT_TRUE(rig_->WaitState(q, State::kPrim, 20s).ok());
  ASSERT_TRUE(rig_->WaitState(p, State::kSecond, 20s).ok());
  EXPECT_TRUE(rig_->HasVip(q));
  EXPECT_FALSE(rig_->HasVip(p));
  ASSERT_TRUE(rig_->StopDaemon(p).ok());
  auto ev = History(p);
  const history::Event* ss = Find(ev, "stopstart");
  ASSERT_NE(ss, nullptr);
  EXPECT_NE(ss->reason.find("ip.vip down"), std::string::npos) << ss->reason;
}

// A module library's own CheckerSpecs run like <errd> and <check>: its
// process checker restarts the application it watches.
TEST_F(CheckersTest, ModuleLibraryCheckers) {
  MakeRig();
  for (const auto& n : rig_->nodes()) {
    auto lib = rig_->LayoutOf(n).ModuleLib("demo");
    std::filesystem::create_directories(lib);
    std::filesystem::copy_file(HAKIT_BINARY_DIR "/modules/checkers_watched_module.so",
                               lib / "demo.so", std::filesystem::copy_options::overwrite_existing);
  }
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim;
  auto m = rig_->ModuleState(p);
  ASSERT_TRUE(m.ok());
  EXPECT_NE(m->value("details", nlohmann::json::object()).value("library", "").find("demo.so"),
            std::string::npos);
  ASSERT_TRUE(WaitResource(p, "proc.app", "up"));
  ASSERT_TRUE(WaitResource(p, "tcp.port", "up"));
  KillAndExpectRestart(p, State::kPrim);
  ASSERT_TRUE(WaitResource(p, "proc.app", "up"));
  ASSERT_TRUE(rig_->StopDaemon(p).ok());
  auto ev = History(p);
  int restarts = 0;
  for (const auto& e : ev) {
    // The tcp checker (noaction) saw the port closed too, but only reports.
    if (e.kind == "checker_failure") {
      EXPECT_EQ(e.reason.rfind("proc.app down", 0), 0u) << e.reason;
      ++restarts;
    }
  }
  EXPECT_EQ(restarts, 1);
}

// A handler script as the action, applied only once the process has been
// missing for handle_time (the debounce).
TEST_F(CheckersTest, HandlerAfterHandleTime) {
  MakeRig();
  Configure(Errd("on_app_failure") + "    <failover handle_time=\"1500ms\" period=\"200ms\"/>\n");
  for (const auto& n : rig_->nodes()) {
    ASSERT_TRUE(rig_->WriteScript(n, "on_app_failure",
                                  "#!/bin/sh\necho \"$*\" >> \"$SAFEUSERVAR/handler.log\"\n")
                    .ok());
  }
  StartBoth();
  auto prim = rig_->WaitPaired(30s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  const std::string p = *prim;
  ASSERT_TRUE(WaitResource(p, "proc.hakit-demo-app", "up"));
  const auto log = rig_->LayoutOf(p).ModuleVar("demo") / "handler.log";
  const int starts = StartPrimCalls(p);
  ASSERT_TRUE(rig_->KillApp(p).ok());
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitResource(p, "proc.hakit-demo-app", "down", 5s));
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(log); }, 10s));
  const auto waited = std::chrono::steady_clock::now() - killed;
  EXPECT_GE(waited, 1500ms);
  std::ifstream in(log);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "proc.hakit-demo-app down");
  // The handler is the whole action: nothing restarted, and it ran once.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(StartPrimCalls(p), starts);
  EXPECT_EQ(rig_->StateOf(p), State::kPrim);
  EXPECT_EQ(Checks(p).value("loops", -1), 1);
  std::getline(in, line);
  EXPECT_TRUE(in.eof() || line.empty()) << line;
}

}  // namespace
}  // namespace hakit::rig
