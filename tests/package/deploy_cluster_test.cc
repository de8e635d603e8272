// Packages between two real hakitd in network namespaces: package, install
// on one node, deploy to the other over the authenticated channel, start
// the pair; and a SafeKit-style package whose scripts log through
// "$SAFE/safekit". The CLI runs as operators run it, inside the node's
// network namespace.
#include "../cluster/rig_test.h"
#include "hakit/sdk/module.h"
#include "package_util.h"

namespace hakit::rig {
namespace {

namespace fs = std::filesystem;
using package::testing::ReadText;
using package::testing::Snapshot;
using package::testing::ZipWriter;

class DeployTest : public RigTest {
 protected:
  std::string ConfigHash(const std::string& node) {
    auto m = rig_->ModuleState(node);
    return m.ok() ? m->value("details", nlohmann::json::object()).value("config_hash", "") : "";
  }
};

TEST_F(DeployTest, PackageInstallDeployAndTheModuleRunsOnBothNodes) {
  RigOptions o;
  o.module = "web";
  o.write_module = false;
  MakeRig(o);
  const fs::path src = rig_->work_dir() / "src" / "web";
  ASSERT_TRUE(rig_->WriteModuleFolder(src).ok());
  const std::string safe = (rig_->work_dir() / "web.safe").string();
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->StartDaemon("node2").ok());

  auto packed = Cli("node1", {"module", "package", src.string(), "-o", safe, "--version", "1.0"});
  ASSERT_EQ(packed.status.code, 0) << packed.output;
  auto checked = Cli("node1", {"module", "check", safe});
  ASSERT_EQ(checked.status.code, 0) << checked.output;
  EXPECT_NE(checked.output.find(safe + ": module web 1.0 (ABI " +
                                std::to_string(sdk::kAbiVersion) + ", scripts), 6 file(s)"),
            std::string::npos)
      << checked.output;
  auto installed = Cli("node1", {"module", "install", safe});
  ASSERT_EQ(installed.status.code, 0) << installed.output;
  EXPECT_NE(installed.output.find("installed web 1.0"), std::string::npos) << installed.output;
  // hakitd takes only module names that could be folders of ROOT/modules.
  auto nameless = control::SendRequest(rig_->LayoutOf("node1").ControlSocket(),
                                       {"reload", "", nlohmann::json::object()}, 10s);
  ASSERT_TRUE(nameless.ok()) << nameless.status().message();
  EXPECT_EQ(nameless->error, "a module name cannot be empty");
  EXPECT_NE(installed.output.find("hakitd on node1 loaded module web"), std::string::npos)
      << installed.output;
  ASSERT_TRUE(rig_->ModuleState("node1").ok()) << "node1's hakitd did not load the new module";
  EXPECT_FALSE(rig_->ModuleState("node2").ok());

  auto deployed = Cli("node1", {"module", "deploy", "-m", "web"});
  ASSERT_EQ(deployed.status.code, 0) << deployed.output;
  EXPECT_NE(deployed.output.find("node2: installed web 1.0"), std::string::npos) << deployed.output;
  EXPECT_NE(deployed.output.find("same configuration on both nodes"), std::string::npos)
      << deployed.output;
  const fs::path dir1 = rig_->LayoutOf("node1").ModuleDir("web");
  const fs::path dir2 = rig_->LayoutOf("node2").ModuleDir("web");
  EXPECT_EQ(Snapshot(dir1), Snapshot(dir2));
  ASSERT_TRUE(rig_->ModuleState("node2").ok()) << "node2's hakitd did not load the deployed module";
  EXPECT_FALSE(ConfigHash("node1").empty());
  EXPECT_EQ(ConfigHash("node1"), ConfigHash("node2"));

  for (const auto& n : rig_->nodes()) {
    auto r = rig_->Command(n, "start");
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->exit_code, 0) << r->error;
  }
  auto prim = rig_->WaitPaired(60s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  auto answer = rig_->ClientRequest(2s);
  ASSERT_TRUE(answer.ok()) << answer.status().message();
  EXPECT_NE(answer->find(*prim), std::string::npos) << *answer;

  // While the module runs on the peer, a new deployment is refused there
  // and changes nothing; uninstalling it here is refused too.
  const std::string second = rig_->Peer(*prim);
  const auto before = Snapshot(dir2);
  ASSERT_TRUE(ReadText(src / "bin" / "stop_second").size() > 0);
  package::testing::WriteText(dir1 / "bin" / "stop_second", "#!/bin/sh\nexit 0\n", true);
  auto refused = Cli("node1", {"module", "deploy", "-m", "web"});
  EXPECT_EQ(refused.status.code, 1) << refused.output;
  std::string running_on_2 = second == "node2" ? "SECOND" : "PRIM";
  EXPECT_NE(refused.output.find("the peer refused: cannot install over module web: it is " +
                                running_on_2 + " on this node"),
            std::string::npos)
      << refused.output;
  EXPECT_EQ(Snapshot(dir2), before);
  auto kept = Cli("node1", {"module", "uninstall", "-m", "web"});
  EXPECT_EQ(kept.status.code, 1) << kept.output;
  EXPECT_NE(kept.output.find("cannot uninstall module web: it is"), std::string::npos) << kept.output;
  EXPECT_TRUE(fs::exists(dir1 / "conf" / "userconfig.xml"));

  // A sender without the cluster key is refused before anything is sent.
  ASSERT_TRUE(rig_->RegenerateKey("node1").ok());
  auto forged = Cli("node1", {"module", "deploy", "-m", "web"});
  EXPECT_EQ(forged.status.code, 1) << forged.output;
  EXPECT_NE(forged.output.find("cluster keys of the two nodes differ"), std::string::npos)
      << forged.output;
  EXPECT_EQ(Snapshot(dir2), before);
  EXPECT_TRUE(rig_->ClientRequest(2s).ok());

  // Stopped, the module can go; hakitd drops it at once.
  for (const auto& n : rig_->nodes()) {
    auto r = rig_->Command(n, "stop");
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  for (const auto& n : rig_->nodes()) ASSERT_TRUE(rig_->WaitState(n, cluster::State::kStop, 30s).ok());
  auto listed = Cli("node2", {"module", "list"});
  EXPECT_EQ(listed.output, "web                 1.0\n");
  auto gone = Cli("node2", {"module", "uninstall", "-m", "web"});
  ASSERT_EQ(gone.status.code, 0) << gone.output;
  EXPECT_NE(gone.output.find("hakitd on node2 has no module web"), std::string::npos) << gone.output;
  EXPECT_FALSE(rig_->ModuleState("node2").ok());
  EXPECT_FALSE(fs::exists(dir2));

  // node2's history tells who installed what.
  ASSERT_TRUE(rig_->StopDaemon("node2").ok());
  bool recorded = false;
  for (const auto& e : History("node2")) {
    if (e.kind == "operator_command" && e.module == "web" &&
        e.reason.find("installed web 1.0 (ABI") != std::string::npos &&
        e.reason.find("deployed by node1") != std::string::npos) {
      recorded = true;
    }
  }
  EXPECT_TRUE(recorded);
}

// A package as SafeKit 8.2 ships one: no manifest, conf/userconfig.xml with
// macros and a template beside it, web/, scripts without modes (zipped on
// Windows) that log with "$SAFE/safekit" printi.
TEST_F(DeployTest, ASafeKitPackageInstallsAndItsScriptsRunAndLog) {
  RigOptions o;
  o.module = "mirror";
  o.write_module = false;
  MakeRig(o);
  const fs::path safe = rig_->work_dir() / "mirror.safe";
  {
    ZipWriter w(safe);
    w.File("conf/userconfig.xml",
           "<!DOCTYPE safe>\n<safe>\n"
           "<macro name=\"VIRTUAL_IP\" value=\"" + rig_->Vip() + "\"/>\n"
           "<macro name=\"APP_PORT\" value=\"" + std::to_string(o.app_port) + "\"/>\n"
           "<service mode=\"mirror\" defaultprim=\"alone\" maxloop=\"3\" loop_interval=\"24\" "
           "failover=\"on\">\n"
           "  <heart pulse=\"100ms\" timeout=\"1000ms\">\n"
           "    <heartbeat name=\"default\" ident=\"flow\"/><heartbeat name=\"lan1\"/>\n"
           "  </heart>\n"
           "  <vip><interface_list><interface check=\"on\" arpreroute=\"on\"><real_interface>\n"
           "    <virtual_addr addr=\"%VIRTUAL_IP%\" where=\"one_side_alias\"/>\n"
           "  </real_interface></interface></interface_list></vip>\n"
           "  <errd polltimer=\"10\">\n"
           "    <proc name=\"hakit-demo-app\" atleast=\"1\" action=\"restart\" class=\"prim\" "
           "service=\"yes\"/>\n"
           "  </errd>\n"
           "  <check>\n"
           "    <tcp ident=\"app\" when=\"prim\" action=\"restart\">"
           "<to addr=\"%VIRTUAL_IP%\" port=\"%APP_PORT%\" interval=\"10\" timeout=\"5\"/></tcp>\n"
           "  </check>\n"
           "  <user nicestoptimeout=\"10\" forcestoptimeout=\"10\" logging=\"userlog\">\n"
           "    <var name=\"APP\" value=\"" HAKIT_BINARY_DIR "/bin/hakit-demo-app\"/>\n"
           "    <var name=\"APP_PORT\" value=\"%APP_PORT%\"/>\n"
           "  </user>\n"
           "  <failover><![CDATA[\n"
           "interface_failure: if (interface.1 == down) then failover(interface.1);\n"
           "  ]]></failover>\n"
           "</service>\n</safe>\n");
    w.File("conf/userconfig.xml.template",
           "<safe><service mode=\"mirror\"><vip><interface_list><interface><real_interface>"
           "<virtual_addr addr=\"VIRTUAL_TO_BE_DEFINED\"/></real_interface></interface>"
           "</interface_list></vip></service></safe>\n");
    w.File("bin/prestart", "#!/bin/sh\n\"$SAFE/safekit\" printi \"prestart $*\"\n");
    w.File("bin/start_prim",
           "#!/bin/sh\n"
           "\"$SAFE/safekit\" printi \"start_prim: starting the application on $SAFENODE\"\n"
           "mkdir -p \"$SAFEUSERVAR\"\n"
           "\"$APP\" --port \"$APP_PORT\" --name \"$SAFENODE\" >\"$SAFEUSERVAR/app.out\" 2>&1 &\n"
           "echo $! > \"$SAFEUSERVAR/app.pid\"\n");
    w.File("bin/stop_prim",
           "#!/bin/sh\n"
           "\"$SAFE/safekit\" printi \"stop_prim $*\"\n"
           "[ -f \"$SAFEUSERVAR/app.pid\" ] && kill -9 \"$(cat \"$SAFEUSERVAR/app.pid\")\"\n"
           "rm -f \"$SAFEUSERVAR/app.pid\"\nexit 0\n");
    w.File("bin/start_second", "#!/bin/sh\n\"$SAFE/safekit\" printw \"start_second $*\"\n");
    w.File("bin/stop_second", "#!/bin/sh\nexit 0\n");
    w.File("web/index.html", "<html><body>mirror</body></html>\n");
  }
  ASSERT_TRUE(rig_->StartDaemon("node1").ok());
  ASSERT_TRUE(rig_->StartDaemon("node2").ok());
  auto installed = Cli("node1", {"module", "install", safe.string()});
  ASSERT_EQ(installed.status.code, 0) << installed.output;
  EXPECT_NE(installed.output.find("installed mirror (SafeKit package, no manifest, scripts)"),
            std::string::npos)
      << installed.output;
  // What hakit parses but does not act on is said, not refused.
  EXPECT_NE(installed.output.find("warning: " + safe.string() +
                                  ":conf/userconfig.xml:22:3: <failover>: failover rules are not "
                                  "supported by hakit"),
            std::string::npos)
      << installed.output;
  auto deployed = Cli("node1", {"module", "deploy", "-m", "mirror"});
  ASSERT_EQ(deployed.status.code, 0) << deployed.output;
  // Both nodes hold the same files, the manifest made for the trip included.
  EXPECT_EQ(Snapshot(rig_->LayoutOf("node1").ModuleDir("mirror")),
            Snapshot(rig_->LayoutOf("node2").ModuleDir("mirror")));
  EXPECT_EQ(Cli("node1", {"module", "list"}).output, "mirror              1\n");
  for (const auto& n : rig_->nodes()) {
    const fs::path dir = rig_->LayoutOf(n).ModuleDir("mirror");
    EXPECT_TRUE(fs::exists(dir / "web" / "index.html")) << n;
    EXPECT_TRUE(fs::exists(dir / "conf" / "userconfig.xml.template")) << n;
    auto r = rig_->Command(n, "start");
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(r->exit_code, 0) << r->error;
  }
  auto prim = rig_->WaitPaired(60s);
  ASSERT_TRUE(prim.ok()) << prim.status().message();
  EXPECT_TRUE(rig_->ClientRequest(2s).ok());
  const std::string second = rig_->Peer(*prim);
  std::string log1 = ReadText(rig_->LayoutOf(*prim).ModuleLog("mirror"));
  std::string log2 = ReadText(rig_->LayoutOf(second).ModuleLog("mirror"));
  EXPECT_NE(log1.find(" I start_prim: starting the application on " + *prim), std::string::npos)
      << log1;
  EXPECT_NE(log1.find(" I prestart "), std::string::npos) << log1;
  EXPECT_NE(log2.find(" W start_second "), std::string::npos) << log2;
}

}  // namespace
}  // namespace hakit::rig
