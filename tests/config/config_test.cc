// userconfig.xml: the brief's file, defaults, units, macros, every kind of
// bad input (one TEST each, checking file:line:col and the names in the
// message) and readiness.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hakit/config/module_config.h"

namespace hakit::config {
namespace {

using namespace std::chrono_literals;

const std::string kDataDir = std::string(HAKIT_SOURCE_DIR) + "/tests/config/data/";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ParseOptions NoEnvironment() {
  ParseOptions o;
  o.use_environment = false;
  return o;
}

sdk::Result<ModuleConfig> Parse(const std::string& text,
                                const ParseOptions& options = NoEnvironment()) {
  return ParseUserConfigString(text, "test.xml", options);
}

// Parses `text`, expects a failure, and returns its message after checking
// that it starts with "test.xml:<where>: " and names every part in `parts`.
std::string ExpectError(const std::string& text, const std::string& where,
                        const std::vector<std::string>& parts) {
  auto r = Parse(text);
  EXPECT_FALSE(r.ok()) << "parsed without error:\n" << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kInvalidArgument);
  const std::string m = r.status().message();
  EXPECT_EQ(m.rfind("test.xml:" + where + ": ", 0), 0u) << m;
  for (const std::string& part : parts) EXPECT_NE(m.find(part), std::string::npos) << m;
  // One message, one line.
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  return m;
}

// ---------------------------------------------------------------- the brief

TEST(UserConfig, ReferenceFileLoadsWithExpectedValues) {
  const std::string path = kDataDir + "reference_userconfig.xml";
  auto r = ParseUserConfig(path, NoEnvironment());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModuleConfig& c = *r;
  EXPECT_EQ(c.source_path, path);
  EXPECT_EQ(c.raw_text, ReadAll(path));
  EXPECT_TRUE(c.warnings.empty());

  EXPECT_EQ(c.service.mode, ModuleMode::kMirror);
  EXPECT_EQ(c.service.default_prim, DefaultPrim::kAlone);
  EXPECT_EQ(c.service.maxloop, 3);
  EXPECT_EQ(c.service.loop_interval, 24h);
  EXPECT_TRUE(c.service.failover);
  EXPECT_EQ(c.service.location.line, 3);
  EXPECT_EQ(c.service.location.column, 4);

  EXPECT_EQ(c.heart.pulse, 700ms);
  EXPECT_EQ(c.heart.timeout, 30000ms);
  ASSERT_EQ(c.heart.heartbeats.size(), 1u);
  EXPECT_EQ(c.heart.heartbeats[0].name, "default");
  EXPECT_EQ(c.heart.heartbeats[0].ident, "flow");

  ASSERT_EQ(c.vip.interfaces.size(), 1u);
  const VipInterfaceConfig& iface = c.vip.interfaces[0];
  EXPECT_TRUE(iface.check);
  EXPECT_TRUE(iface.arpreroute);
  EXPECT_EQ(iface.name, "");
  ASSERT_EQ(iface.addrs.size(), 1u);
  EXPECT_EQ(iface.addrs[0].addr, "VIRTUAL_TO_BE_DEFINED");
  EXPECT_TRUE(iface.addrs[0].is_placeholder);
  EXPECT_TRUE(iface.addrs[0].one_side);

  EXPECT_EQ(c.errd.polltimer, 10s);
  ASSERT_EQ(c.errd.procs.size(), 1u);
  const ProcConfig& p = c.errd.procs[0];
  EXPECT_EQ(p.name, "PROCESS_NAME");
  EXPECT_EQ(p.atleast, 1);
  EXPECT_FALSE(p.atmax.has_value());
  EXPECT_EQ(p.action, Action::kRestart);
  EXPECT_EQ(p.when, When::kPrim);
  EXPECT_FALSE(p.service);

  EXPECT_TRUE(c.rfs.async);
  EXPECT_FALSE(c.rfs.acl);
  EXPECT_EQ(c.rfs.nbrei, 3);
  ASSERT_EQ(c.rfs.replicated.size(), 2u);
  EXPECT_EQ(c.rfs.replicated[0].dir, "c:\\test1replicated");
  EXPECT_EQ(c.rfs.replicated[1].dir, "c:\\test2replicated");
  EXPECT_TRUE(c.rfs.replicated[0].read_only);

  ASSERT_TRUE(c.user.has_value());
  EXPECT_EQ(c.user->nice_stop_timeout, 300s);
  EXPECT_EQ(c.user->force_stop_timeout, 300s);
  EXPECT_TRUE(c.user->log_output);
  EXPECT_TRUE(c.user->vars.empty());

  EXPECT_TRUE(c.check.checkers.empty());
  EXPECT_FALSE(c.check.splitbrain.has_value());
  EXPECT_FALSE(c.failover_rules.has_value());
}

TEST(UserConfig, ReferenceCopyIsTheBriefsFile) {
  // The test copy must stay byte-identical to the shared reference.
  const std::string shared = "/work/shared/reference/userconfig.xml";
  std::ifstream probe(shared);
  if (!probe) GTEST_SKIP() << shared << " not present on this machine";
  EXPECT_EQ(ReadAll(kDataDir + "reference_userconfig.xml"), ReadAll(shared));
}

TEST(UserConfig, ReferenceReadinessListsPlaceholdersAndWindowsPaths) {
  auto r = ParseUserConfig(kDataDir + "reference_userconfig.xml", NoEnvironment());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<Problem> problems = CheckModuleReadiness(*r);
  ASSERT_EQ(problems.size(), 4u);

  EXPECT_EQ(problems[0].element, "virtual_addr");
  EXPECT_EQ(problems[0].attribute, "addr");
  EXPECT_EQ(problems[0].location.line, 17);
  EXPECT_EQ(problems[0].location.column, 33);
  EXPECT_NE(problems[0].message.find("VIRTUAL_TO_BE_DEFINED"), std::string::npos);
  EXPECT_FALSE(problems[0].hint.empty());

  EXPECT_EQ(problems[1].element, "proc");
  EXPECT_EQ(problems[1].attribute, "name");
  EXPECT_EQ(problems[1].location.line, 27);
  EXPECT_EQ(problems[1].location.column, 15);
  EXPECT_NE(problems[1].message.find("PROCESS_NAME"), std::string::npos);

  for (int i : {2, 3}) {
    EXPECT_EQ(problems[i].element, "replicated");
    EXPECT_EQ(problems[i].attribute, "dir");
    EXPECT_EQ(problems[i].location.line, 29 + i);
    EXPECT_EQ(problems[i].location.column, 22);
    EXPECT_NE(problems[i].message.find("Windows path"), std::string::npos);
  }
  EXPECT_NE(problems[2].message.find("c:\\test1replicated"), std::string::npos);
  EXPECT_NE(problems[3].message.find("c:\\test2replicated"), std::string::npos);

  std::string line = problems[1].ToString();
  EXPECT_EQ(line.rfind(kDataDir + "reference_userconfig.xml:27:15: <proc> name: ", 0), 0u) << line;
}

TEST(UserConfig, FilledInCopyIsReady) {
  auto r = ParseUserConfig(kDataDir + "filled_userconfig.xml", NoEnvironment());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->warnings.empty());
  std::vector<Problem> problems = CheckModuleReadiness(*r);
  for (const Problem& p : problems) ADD_FAILURE() << p.ToString();
  ASSERT_EQ(r->vip.interfaces.size(), 1u);
  EXPECT_EQ(r->vip.interfaces[0].addrs[0].addr, "198.18.0.100");
  EXPECT_FALSE(r->vip.interfaces[0].addrs[0].is_placeholder);
  EXPECT_EQ(r->rfs.replicated[1].dir, "/srv/app/logs");
}

// ----------------------------------------------------------------- defaults

TEST(UserConfig, DefaultsOfAMinimalFile) {
  auto r = Parse(R"(<safe><service mode="mirror"/></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModuleConfig& c = *r;
  EXPECT_EQ(c.service.default_prim, DefaultPrim::kNone);
  EXPECT_EQ(c.service.maxloop, 3);
  EXPECT_EQ(c.service.loop_interval, 24h);
  EXPECT_TRUE(c.service.failover);
  EXPECT_EQ(c.service.boot, BootMode::kAuto);
  EXPECT_EQ(c.heart.pulse, 700ms);
  EXPECT_EQ(c.heart.timeout, 30000ms);
  EXPECT_TRUE(c.heart.heartbeats.empty());
  EXPECT_TRUE(c.vip.interfaces.empty());
  EXPECT_EQ(c.errd.polltimer, 30s);
  EXPECT_TRUE(c.rfs.async);
  EXPECT_FALSE(c.rfs.acl);
  EXPECT_EQ(c.rfs.nbrei, 6);
  EXPECT_EQ(c.rfs.zone_size, 64u << 10);
  EXPECT_FALSE(c.user.has_value());
  EXPECT_TRUE(c.check.checkers.empty());
  EXPECT_TRUE(c.macros.empty());
  EXPECT_TRUE(CheckModuleReadiness(c).empty());
}

TEST(UserConfig, DefaultsInsideElements) {
  auto r = Parse(R"(<safe><service mode="mirror">
  <heart><heartbeat/></heart>
  <vip><interface><real_interface><virtual_addr addr="198.18.0.100"/></real_interface></interface></vip>
  <errd><proc name="app"/></errd>
  <rfs><replicated dir="/srv/data"/></rfs>
  <user/>
  <check>
    <tcp ident="t"><to addr="127.0.0.1" port="80"/></tcp>
    <ping ident="p"><to addr="198.18.0.254"/></ping>
    <intf ident="i"><to name="eth0"/></intf>
    <ip ident="v"><to addr="198.18.0.100"/></ip>
    <custom ident="c" exec="check.sh"/>
  </check>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModuleConfig& c = *r;
  EXPECT_EQ(c.heart.heartbeats[0].name, "default");
  EXPECT_EQ(c.heart.heartbeats[0].ident, "");
  const VipInterfaceConfig& iface = c.vip.interfaces[0];
  EXPECT_FALSE(iface.check);
  EXPECT_FALSE(iface.arpreroute);
  EXPECT_EQ(iface.addrs[0].prefix_length, -1);
  EXPECT_TRUE(iface.addrs[0].one_side);
  EXPECT_FALSE(iface.addrs[0].check);
  const ProcConfig& p = c.errd.procs[0];
  EXPECT_EQ(p.atleast, 1);
  EXPECT_FALSE(p.atmax.has_value());
  EXPECT_EQ(p.action, Action::kRestart);
  EXPECT_EQ(p.when, When::kPrim);
  EXPECT_TRUE(c.rfs.replicated[0].read_only);
  EXPECT_TRUE(c.rfs.replicated[0].not_replicated.empty());
  ASSERT_TRUE(c.user.has_value());
  EXPECT_EQ(c.user->nice_stop_timeout, 300s);
  EXPECT_EQ(c.user->force_stop_timeout, 300s);
  EXPECT_TRUE(c.user->log_output);

  ASSERT_EQ(c.check.checkers.size(), 5u);
  for (const CheckerConfig& k : c.check.checkers) {
    EXPECT_EQ(k.interval, 10s) << ToString(k.kind);
    EXPECT_EQ(k.timeout, 5s) << ToString(k.kind);
  }
  EXPECT_EQ(c.check.checkers[0].when, When::kPrim);
  EXPECT_EQ(c.check.checkers[0].action, Action::kRestart);
  EXPECT_EQ(c.check.checkers[1].when, When::kPre);
  EXPECT_EQ(c.check.checkers[1].action, Action::kWait);
  EXPECT_EQ(c.check.checkers[2].when, When::kPre);
  EXPECT_EQ(c.check.checkers[2].action, Action::kWait);
  EXPECT_EQ(c.check.checkers[3].action, Action::kStopStart);
  EXPECT_EQ(c.check.checkers[4].when, When::kPrim);
  EXPECT_EQ(c.check.checkers[4].action, Action::kRestart);
  EXPECT_TRUE(CheckModuleReadiness(c).empty());
}

TEST(UserConfig, FarmDefaults) {
  auto r = Parse(R"(<safe><service mode="farm">
  <farm><lan name="default"/></farm>
  <vip><interface_list><interface><real_interface>
    <virtual_addr addr="2001:db8::10/64"/>
  </real_interface></interface></interface_list></vip>
  <errd><proc name="httpd" atleast="2" atmax="8"/></errd>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->service.mode, ModuleMode::kFarm);
  EXPECT_EQ(r->farm_lans, std::vector<std::string>{"default"});
  const VirtualAddrConfig& va = r->vip.interfaces[0].addrs[0];
  EXPECT_EQ(va.addr, "2001:db8::10");
  EXPECT_EQ(va.prefix_length, 64);
  EXPECT_FALSE(va.one_side);
  EXPECT_EQ(r->errd.procs[0].when, When::kBoth);
  EXPECT_EQ(r->errd.procs[0].atleast, 2);
  EXPECT_EQ(r->errd.procs[0].atmax, 8);
}

// -------------------------------------------------------------------- units

TEST(UserConfig, TimeUnitsAndPlainNumbers) {
  auto r = Parse(R"(<safe><service mode="mirror" loop_interval="90m">
  <heart pulse="1s" timeout="1m"/>
  <errd polltimer="500ms"/>
  <user nicestoptimeout="2m" forcestoptimeout="10"/>
  <check>
    <tcp ident="a"><to addr="localhost" port="5432" interval="1m" timeout="30s"/></tcp>
    <custom ident="b" exec="/opt/check" interval="20" timeout="1500ms"/>
  </check>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->service.loop_interval, 90min);
  EXPECT_EQ(r->heart.pulse, 1s);
  EXPECT_EQ(r->heart.timeout, 1min);
  EXPECT_EQ(r->errd.polltimer, 500ms);
  EXPECT_EQ(r->user->nice_stop_timeout, 2min);
  EXPECT_EQ(r->user->force_stop_timeout, 10s);
  EXPECT_EQ(r->check.checkers[0].interval, 1min);
  EXPECT_EQ(r->check.checkers[0].timeout, 30s);
  EXPECT_EQ(r->check.checkers[0].addr, "localhost");
  EXPECT_EQ(r->check.checkers[0].port, 5432);
  EXPECT_EQ(r->check.checkers[1].interval, 20s);
  EXPECT_EQ(r->check.checkers[1].timeout, 1500ms);
}

TEST(UserConfig, PlainNumbersUseEachAttributesUnit) {
  auto r = Parse(R"(<safe><service mode="mirror" loop_interval="2">
  <heart pulse="250" timeout="5000"/>
  <errd polltimer="7"/>
  <user nicestoptimeout="60" forcestoptimeout="30"/>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->service.loop_interval, 2h);
  EXPECT_EQ(r->heart.pulse, 250ms);
  EXPECT_EQ(r->heart.timeout, 5000ms);
  EXPECT_EQ(r->errd.polltimer, 7s);
  EXPECT_EQ(r->user->nice_stop_timeout, 60s);
  EXPECT_EQ(r->user->force_stop_timeout, 30s);
}

// ------------------------------------------------------------------- macros

TEST(UserConfig, MacrosExpandInAttributeValues) {
  ParseOptions options = NoEnvironment();
  options.variables["SAFEMODULE"] = "app";
  auto r = Parse(R"(<safe>
  <macro name="VIP" value="198.18.0.100"/>
  <macro name="DATA" value="/srv/%SAFEMODULE%"/>
  <service mode="mirror">
    <macro name="PORT" value="8080"/>
    <macro name="LOGS" value="%DATA%/logs"/>
    <vip><interface><real_interface><virtual_addr addr="%VIP%"/></real_interface></interface></vip>
    <rfs><replicated dir="%DATA%/db"/><replicated dir="%LOGS%"/></rfs>
    <user><var name="URL" value="http://%VIP%:%PORT%/ 100%% up, 50% off"/></user>
    <check><tcp ident="web"><to addr="%VIP%" port="%PORT%"/></tcp></check>
  </service>
</safe>)",
                 options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->vip.interfaces[0].addrs[0].addr, "198.18.0.100");
  EXPECT_EQ(r->rfs.replicated[0].dir, "/srv/app/db");
  EXPECT_EQ(r->rfs.replicated[1].dir, "/srv/app/logs");
  EXPECT_EQ(r->check.checkers[0].port, 8080);
  EXPECT_EQ(r->user->vars[0].value, "http://198.18.0.100:8080/ 100% up, 50% off");
  EXPECT_EQ(r->macros.at("LOGS"), "/srv/app/logs");
  EXPECT_EQ(r->macros.size(), 4u);
  std::map<std::string, std::string> vars = ScriptVariables(*r);
  EXPECT_EQ(vars.at("VIP"), "198.18.0.100");
  EXPECT_EQ(vars.at("URL"), "http://198.18.0.100:8080/ 100% up, 50% off");
}

TEST(UserConfig, MacrosFallBackToTheEnvironment) {
  ::setenv("HAKIT_CONFIG_TEST_DIR", "/srv/from-env", 1);
  ParseOptions options;  // environment allowed
  auto r = Parse(R"(<safe><service mode="mirror">
  <rfs><replicated dir="%HAKIT_CONFIG_TEST_DIR%"/></rfs>
</service></safe>)",
                 options);
  ::unsetenv("HAKIT_CONFIG_TEST_DIR");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rfs.replicated[0].dir, "/srv/from-env");
}

TEST(UserConfig, MacroWinsOverEnvironment) {
  ::setenv("HAKIT_CONFIG_TEST_M", "env", 1);
  auto r = Parse(R"(<safe><macro name="HAKIT_CONFIG_TEST_M" value="/macro"/>
<service mode="mirror"><rfs><replicated dir="%HAKIT_CONFIG_TEST_M%"/></rfs></service></safe>)",
                 ParseOptions{});
  ::unsetenv("HAKIT_CONFIG_TEST_M");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rfs.replicated[0].dir, "/macro");
}

TEST(UserConfigError, UndefinedMacro) {
  std::string m = ExpectError(R"(<safe><service mode="mirror">
  <errd>
    <proc name="%APP_PROCESS%"/>
  </errd>
</service></safe>)",
                              "3:11", {"<proc> name:", "%APP_PROCESS%", "<macro"});
}

TEST(UserConfigError, MacroDefinedTwice) {
  ExpectError(R"(<safe>
<macro name="A" value="1"/>
<service mode="mirror"><macro name="A" value="2"/></service></safe>)",
              "3:31", {"<macro> name:", "\"A\"", "twice"});
}

TEST(UserConfig, PlaceholderInAMacroIsReportedOnceWhereDefined) {
  auto r = Parse(R"(<safe>
<macro name="VIP" value="VIRTUAL_TO_BE_DEFINED"/>
<service mode="mirror">
  <vip><interface><real_interface><virtual_addr addr="%VIP%"/></real_interface></interface></vip>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->vip.interfaces[0].addrs[0].is_placeholder);
  std::vector<Problem> problems = CheckModuleReadiness(*r);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].element, "macro");
  EXPECT_EQ(problems[0].attribute, "value");
  EXPECT_EQ(problems[0].location.ToString(), "2:19");
}

// ---------------------------------------------------------------- warnings

TEST(UserConfig, FailoverRulesAreKeptWithAWarning) {
  auto r = Parse(R"(<safe><service mode="mirror">
  <failover>
<![CDATA[
c_ping: if (ping.router == down) then wait();
]]>
  </failover>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->failover_rules.has_value());
  EXPECT_NE(r->failover_rules->find("c_ping: if (ping.router == down) then wait();"),
            std::string::npos);
  ASSERT_EQ(r->warnings.size(), 1u);
  std::string w = r->warnings[0].ToString();
  EXPECT_EQ(w.rfind("test.xml:2:3: <failover>: ", 0), 0u) << w;
  EXPECT_NE(w.find("not supported"), std::string::npos) << w;
}

TEST(UserConfig, FailoverTiming) {
  auto d = Parse(R"(<safe><service mode="mirror"/></safe>)");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->failover.handle_time.count(), 0);
  EXPECT_EQ(d->failover.period.count(), 1000);
  auto r = Parse(R"(<safe><service mode="mirror">
  <failover handle_time="2s" period="250"/>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->failover.handle_time.count(), 2000);
  EXPECT_EQ(r->failover.period.count(), 250);
  EXPECT_TRUE(r->warnings.empty());  // no rules, nothing ignored
  auto bad = Parse(R"(<safe><service mode="mirror">
  <failover period="10ms"/>
</service></safe>)");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("period"), std::string::npos) << bad.status().message();
}

TEST(UserConfig, HandlerActionIsAWarningNotAnError) {
  auto r = Parse(R"(<safe><service mode="mirror">
  <errd><proc name="app" action="myhandler"/></errd>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->errd.procs[0].action, Action::kHandler);
  EXPECT_EQ(r->errd.procs[0].handler, "myhandler");
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].ToString().find("test.xml:2:26: <proc> action:"), std::string::npos)
      << r->warnings[0].ToString();
}

TEST(UserConfig, SafeKitRfsTuningIsAcceptedWithAWarning) {
  auto r = Parse(R"(<safe><service mode="mirror"><rfs nbremconn="2"/></service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].attribute, "nbremconn");
}

// ---------------------------------------------------------- checks section

TEST(UserConfig, CheckersAndSplitBrain) {
  auto r = Parse(R"(<safe><service mode="mirror">
  <check>
    <tcp ident="db" when="both" action="stopstart"><to addr="::1" port="5432" interval="15" timeout="3"/></tcp>
    <ping ident="router" when="pre" action="wait"><to addr="198.18.0.254"/></ping>
    <intf ident="lan" action="noaction"><to name="eth0"/></intf>
    <custom ident="app" when="prim" exec="check_app.sh" arg="-q --x" action="restart"/>
    <splitbrain ident="witness" exec="ping" arg="198.18.0.250 198.18.0.251"/>
  </check>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& k = r->check.checkers;
  ASSERT_EQ(k.size(), 4u);
  EXPECT_EQ(k[0].kind, CheckerKind::kTcp);
  EXPECT_EQ(k[0].ident, "db");
  EXPECT_EQ(k[0].when, When::kBoth);
  EXPECT_EQ(k[0].action, Action::kStopStart);
  EXPECT_EQ(k[0].addr, "::1");
  EXPECT_EQ(k[0].port, 5432);
  EXPECT_EQ(k[0].interval, 15s);
  EXPECT_EQ(k[0].timeout, 3s);
  EXPECT_EQ(k[0].location.ToString(), "3:5");
  EXPECT_EQ(k[1].kind, CheckerKind::kPing);
  EXPECT_EQ(k[1].addr, "198.18.0.254");
  EXPECT_EQ(k[2].kind, CheckerKind::kInterface);
  EXPECT_EQ(k[2].interface_name, "eth0");
  EXPECT_EQ(k[2].action, Action::kNoAction);
  EXPECT_EQ(k[3].kind, CheckerKind::kCustom);
  EXPECT_EQ(k[3].exec, "check_app.sh");
  EXPECT_EQ(k[3].arg, "-q --x");
  ASSERT_TRUE(r->check.splitbrain.has_value());
  EXPECT_EQ(r->check.splitbrain->exec, "ping");
  EXPECT_EQ(r->check.splitbrain->witnesses,
            (std::vector<std::string>{"198.18.0.250", "198.18.0.251"}));
}

TEST(UserConfig, SplitBrainWithToChildren) {
  auto r = Parse(R"(<safe><service mode="mirror"><check>
  <splitbrain><to addr="198.18.0.250"/><to addr="witness.example.com"/></splitbrain>
</check></service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->check.splitbrain->ident, "witness");
  EXPECT_EQ(r->check.splitbrain->witnesses,
            (std::vector<std::string>{"198.18.0.250", "witness.example.com"}));
}

TEST(UserConfig, NotReplicatedAndDefaultPrimNode) {
  auto r = Parse(R"(<safe><service mode="mirror" defaultprim="node1" boot="off" failover="off">
  <rfs async="none" acl="on" nbrei="12" ruzone_blocksize="1048576">
    <replicated dir="/srv/db/" mode="read_write">
      <notreplicated path="tmp"/>
      <notreplicated regexpath=".*\.lock$"/>
    </replicated>
  </rfs>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->service.default_prim, DefaultPrim::kNode);
  EXPECT_EQ(r->service.default_prim_node, "node1");
  EXPECT_EQ(r->service.boot, BootMode::kOff);
  EXPECT_FALSE(r->service.failover);
  EXPECT_FALSE(r->rfs.async);
  EXPECT_TRUE(r->rfs.acl);
  EXPECT_EQ(r->rfs.nbrei, 12);
  EXPECT_EQ(r->rfs.zone_size, 1u << 20);
  const ReplicatedDirConfig& rep = r->rfs.replicated[0];
  EXPECT_FALSE(rep.read_only);
  ASSERT_EQ(rep.not_replicated.size(), 2u);
  EXPECT_EQ(rep.not_replicated[0].path, "tmp");
  EXPECT_EQ(rep.not_replicated[1].regexpath, ".*\\.lock$");
}

TEST(UserConfig, LinesAndColumnsWithCrLfAndUtf8) {
  // "é" is two bytes but one column.
  std::string text =
      "<safe>\r\n<!-- é -->\r\n<service mode=\"mirror\">\r\n  <heart>é<x/></heart>\r\n"
      "</service></safe>\r\n";
  ExpectError(text, "4:10", {"<heart>", "unexpected text"});
  std::string text2 =
      "<safe>\r\n<service mode=\"mirror\">\r\n<!-- é --> <heart pulse=\"x\"/>\r\n"
      "</service></safe>\r\n";
  ExpectError(text2, "3:19", {"<heart> pulse:"});
}

// ----------------------------------------------------------- bad input

TEST(UserConfigError, MalformedXml) {
  std::string m = ExpectError(R"(<safe>
  <service mode="mirror">
    <heart pulse="700">
  </service>
</safe>)",
                              "4:5", {"malformed XML", "mismatch"});
}

TEST(UserConfigError, UnclosedQuote) {
  ExpectError("<safe>\n<service mode=\"mirror>\n</safe>\n", "2:16", {"malformed XML"});
}

TEST(UserConfigError, EmptyFile) { ExpectError("", "1:1", {"malformed XML"}); }

TEST(UserConfigError, WrongRootElement) {
  ExpectError("<!DOCTYPE safe>\n<cluster/>\n", "2:1", {"<cluster>", "<safe>"});
}

TEST(UserConfigError, MissingService) {
  ExpectError("<safe>\n</safe>\n", "1:1", {"<safe>", "<service"});
}

TEST(UserConfigError, MissingMode) {
  ExpectError("<safe>\n  <service/>\n</safe>\n", "2:3", {"<service> mode:", "missing"});
}

TEST(UserConfigError, UnknownElement) {
  ExpectError(R"(<safe><service mode="mirror">
  <heart>
    <hearbeat name="default"/>
  </heart>
</service></safe>)",
              "3:5", {"<hearbeat>", "unknown element inside <heart>", "<heartbeat>"});
}

TEST(UserConfigError, UnknownAttribute) {
  ExpectError(R"(<safe><service mode="mirror">
  <heart pulse="700" timeuot="30000"/>
</service></safe>)",
              "2:22", {"<heart> timeuot:", "unknown attribute", "pulse, timeout"});
}

TEST(UserConfigError, WrongTypeTime) {
  ExpectError(R"(<safe><service mode="mirror">
  <heart pulse="abc"/>
</service></safe>)",
              "2:10", {"<heart> pulse:", "\"abc\" is not a time value", "milliseconds"});
}

TEST(UserConfigError, WrongTypeInteger) {
  ExpectError(R"(<safe><service mode="mirror">
  <rfs nbrei="six"/>
</service></safe>)",
              "2:8", {"<rfs> nbrei:", "not a whole number", "1 to 64"});
}

TEST(UserConfigError, ZoneSizeNotAPowerOfTwoOrOutOfRange) {
  ExpectError(R"(<safe><service mode="mirror">
  <rfs ruzone_blocksize="100000"/>
</service></safe>)",
              "2:8", {"<rfs> ruzone_blocksize:", "100000", "not a power of two", "65536"});
  ExpectError(R"(<safe><service mode="mirror">
  <rfs ruzone_blocksize="4096"/>
</service></safe>)",
              "2:8", {"<rfs> ruzone_blocksize:", "out of range", "65536 to 8388608"});
}

TEST(UserConfigError, OutOfRange) {
  ExpectError(R"(<safe>
<service mode="mirror" maxloop="-1">
</service></safe>)",
              "2:24", {"<service> maxloop:", "\"-1\" is out of range", "0 to 1000"});
}

TEST(UserConfigError, TimeoutNotGreaterThanPulse) {
  ExpectError(R"(<safe><service mode="mirror">
  <heart pulse="700" timeout="500"/>
</service></safe>)",
              "2:22", {"<heart> timeout:", "500ms", "700ms", "timeout > pulse"});
}

TEST(UserConfigError, ReplicatedWithoutDir) {
  ExpectError(R"(<safe><service mode="mirror">
  <rfs>
    <replicated mode="read_only"/>
  </rfs>
</service></safe>)",
              "3:5", {"<replicated> dir:", "missing required attribute"});
}

TEST(UserConfigError, ProcWithoutName) {
  ExpectError(R"(<safe><service mode="mirror">
  <errd>
        <proc atleast="1"/>
  </errd>
</service></safe>)",
              "3:9", {"<proc> name:", "missing required attribute"});
}

TEST(UserConfigError, DuplicateReplicatedDirs) {
  ExpectError(R"(<safe><service mode="mirror">
  <rfs>
    <replicated dir="/srv/data"/>
    <replicated dir="/srv//data/"/>
  </rfs>
</service></safe>)",
              "4:17", {"<replicated> dir:", "already replicated", "line 3:17"});
}

TEST(UserConfigError, DuplicateWindowsReplicatedDirsDifferInCase) {
  ExpectError(R"(<safe><service mode="mirror"><rfs>
<replicated dir="c:\data"/>
<replicated dir="C:\Data\"/>
</rfs></service></safe>)",
              "3:13", {"<replicated> dir:", "already replicated"});
}

TEST(UserConfigError, NestedReplicatedDirs) {
  ExpectError(R"(<safe><service mode="mirror">
  <rfs>
    <replicated dir="/srv/data"/>
    <replicated dir="/srv/data/db"/>
  </rfs>
</service></safe>)",
              "4:17", {"<replicated> dir:", "is inside", "/srv/data", "line 3:17"});
}

TEST(UserConfigError, NestedReplicatedDirsOuterSecond) {
  ExpectError(R"(<safe><service mode="mirror"><rfs>
<replicated dir="/srv/data/db"/>
<replicated dir="/srv/data"/>
</rfs></service></safe>)",
              "3:13", {"<replicated> dir:", "contains"});
}

TEST(UserConfig, SiblingDirsWithACommonPrefixAreNotNested) {
  auto r = Parse(R"(<safe><service mode="mirror"><rfs>
<replicated dir="/srv/data"/><replicated dir="/srv/data2"/>
</rfs></service></safe>)");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(UserConfigError, VipNotAnAddress) {
  ExpectError(R"(<safe><service mode="mirror"><vip><interface_list><interface>
  <real_interface>
    <virtual_addr addr="10.0.0.300" where="one_side_alias"/>
  </real_interface>
</interface></interface_list></vip></service></safe>)",
              "3:19", {"<virtual_addr> addr:", "\"10.0.0.300\" is not an IP address", "IPv4"});
}

TEST(UserConfigError, VipHostNameIsRefusedWithAReason) {
  ExpectError(R"(<safe><service mode="mirror"><vip><interface><real_interface>
<virtual_addr addr="myhost"/>
</real_interface></interface></vip></service></safe>)",
              "2:15", {"<virtual_addr> addr:", "\"myhost\" is a host name", "IPv4"});
}

TEST(UserConfigError, VipBadPrefix) {
  ExpectError(R"(<safe><service mode="mirror"><vip><interface>
<virtual_addr addr="198.18.0.1/33"/>
</interface></vip></service></safe>)",
              "2:15", {"<virtual_addr> addr:", "prefix", "/32"});
}

TEST(UserConfigError, VipDeclaredTwice) {
  ExpectError(R"(<safe><service mode="mirror"><vip><interface>
<virtual_addr addr="198.18.0.1"/>
<virtual_addr addr="198.18.0.1"/>
</interface></vip></service></safe>)",
              "3:15", {"<virtual_addr> addr:", "already declared"});
}

TEST(UserConfigError, UnknownEnumValue) {
  ExpectError(R"(<safe>
<service mode="mirrors"/>
</safe>)",
              "2:10", {"<service> mode:", "unknown value \"mirrors\"", "mirror or farm"});
}

TEST(UserConfigError, UnknownEnumValueInRfs) {
  ExpectError(R"(<safe><service mode="mirror">
  <rfs async="first"/>
</service></safe>)",
              "2:8", {"<rfs> async:", "\"first\"", "second or none"});
}

TEST(UserConfigError, UnknownProcClass) {
  ExpectError(R"(<safe><service mode="mirror"><errd>
<proc name="x" class="primary"/>
</errd></service></safe>)",
              "2:16", {"<proc> class:", "\"primary\"", "pre or prim or second or both"});
}

TEST(UserConfigError, UnknownActionThatIsNotAScriptName) {
  ExpectError(R"(<safe><service mode="mirror"><errd>
<proc name="x" action="re start"/>
</errd></service></safe>)",
              "2:16", {"<proc> action:", "unknown action"});
}

TEST(UserConfigError, OnOffValue) {
  ExpectError(R"(<safe><service mode="mirror" failover="yes"/></safe>)", "1:30",
              {"<service> failover:", "on or off"});
}

TEST(UserConfigError, SectionGivenTwice) {
  ExpectError(R"(<safe><service mode="mirror">
  <heart/>
  <heart/>
</service></safe>)",
              "3:3", {"<heart>", "twice", "2:3"});
}

TEST(UserConfigError, AttributeGivenTwice) {
  ExpectError(R"(<safe><service mode="mirror" mode="farm"/></safe>)", "1:30",
              {"<service> mode:", "twice"});
}

TEST(UserConfigError, TcpCheckerWithoutTo) {
  ExpectError(R"(<safe><service mode="mirror"><check>
  <tcp ident="web"/>
</check></service></safe>)",
              "2:3", {"<tcp>", "missing <to>", "port"});
}

TEST(UserConfigError, TcpPortOutOfRange) {
  ExpectError(R"(<safe><service mode="mirror"><check>
  <tcp ident="web"><to addr="127.0.0.1" port="70000"/></tcp>
</check></service></safe>)",
              "2:41", {"<to> port:", "out of range", "1 to 65535"});
}

TEST(UserConfigError, CheckerTimeoutLongerThanInterval) {
  ExpectError(R"(<safe><service mode="mirror"><check>
  <ping ident="gw"><to addr="198.18.0.254" interval="5s" timeout="6s"/></ping>
</check></service></safe>)",
              "2:58", {"<to> timeout:", "longer than interval"});
}

TEST(UserConfigError, CheckerIdentGivenTwice) {
  ExpectError(R"(<safe><service mode="mirror"><check>
  <custom ident="a" exec="x"/>
  <custom ident="a" exec="y"/>
</check></service></safe>)",
              "3:11", {"<custom> ident:", "twice"});
}

TEST(UserConfigError, SplitBrainWithoutWitness) {
  ExpectError(R"(<safe><service mode="mirror"><check>
  <splitbrain ident="witness"/>
</check></service></safe>)",
              "2:3", {"<splitbrain> arg:", "no witness"});
}

TEST(UserConfigError, NotReplicatedPathAndRegex) {
  ExpectError(R"(<safe><service mode="mirror"><rfs><replicated dir="/srv">
  <notreplicated path="tmp" regexpath="x"/>
</replicated></rfs></service></safe>)",
              "2:29", {"<notreplicated> regexpath:", "together"});
}

TEST(UserConfigError, NotReplicatedAbsolutePath) {
  ExpectError(R"(<safe><service mode="mirror"><rfs><replicated dir="/srv">
  <notreplicated path="/srv/tmp"/>
</replicated></rfs></service></safe>)",
              "2:18", {"<notreplicated> path:", "absolute", "relative"});
}

TEST(UserConfigError, BadRegex) {
  ExpectError(R"(<safe><service mode="mirror"><errd>
<proc nameregex="(unclosed"/>
</errd></service></safe>)",
              "2:7", {"<proc> nameregex:", "regular expression"});
}

TEST(UserConfigError, AtmaxBelowAtleast) {
  ExpectError(R"(<safe><service mode="mirror"><errd>
<proc name="x" atleast="3" atmax="2"/>
</errd></service></safe>)",
              "2:28", {"<proc> atmax:", "less than atleast"});
}

TEST(UserConfigError, BadVariableName) {
  ExpectError(R"(<safe><service mode="mirror"><user>
  <var name="1X" value="v"/>
</user></service></safe>)",
              "2:8", {"<var> name:", "not a valid variable name"});
}

TEST(UserConfigError, TextWhereOnlyElementsBelong) {
  ExpectError(R"(<safe><service mode="mirror">
  <errd>oops</errd>
</service></safe>)",
              "2:9", {"<errd>", "unexpected text \"oops\""});
}

TEST(UserConfigError, FarmOnlyElementsInAMirror) {
  ExpectError(R"(<safe><service mode="mirror">
  <farm><lan name="default"/></farm>
</service></safe>)",
              "2:3", {"<farm>", "farm"});
}

TEST(UserConfigError, RfsInAFarm) {
  ExpectError(R"(<safe><service mode="farm">
  <rfs/>
</service></safe>)",
              "2:3", {"<rfs>", "farm modules do not replicate"});
}

TEST(UserConfig, MissingFileIsNotFound) {
  auto r = ParseUserConfig(kDataDir + "no_such_file.xml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("no_such_file.xml"), std::string::npos);
}

TEST(UserConfig, BadFileErrorNamesThePath) {
  auto r = ParseUserConfig(kDataDir + "bad_userconfig.xml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(kDataDir + "bad_userconfig.xml:5:14: <heart> pulse:", 0), 0u)
      << r.status().message();
}

// --------------------------------------------------------------- readiness

TEST(Readiness, RelativeAndWindowsPaths) {
  auto r = Parse(R"(<safe><service mode="mirror">
  <rfs>
    <replicated dir="data"/>
    <replicated dir="/srv/x">
      <notreplicated path="logs\tmp"/>
    </replicated>
  </rfs>
  <check><custom ident="c" exec="c:\check.cmd"/></check>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<Problem> problems = CheckModuleReadiness(*r);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].ToString().rfind("test.xml:3:17: <replicated> dir: \"data\" is a relative "
                                         "path (expected an absolute path",
                                         0),
            0u)
      << problems[0].ToString();
  EXPECT_EQ(problems[1].element, "notreplicated");
  EXPECT_EQ(problems[1].location.ToString(), "5:22");
  EXPECT_EQ(problems[2].element, "custom");
  EXPECT_EQ(problems[2].attribute, "exec");
}

TEST(Readiness, GenericPlaceholders) {
  auto r = Parse(R"(<safe><service mode="mirror">
  <user><var name="PGDATA" value="DATA_DIR"/><var name="MODE" value="FAST"/></user>
  <check><tcp ident="db"><to addr="SERVER_ADDR" port="5432"/></tcp></check>
  <errd><proc name="x" nameregex="SERVICE_NAME"/></errd>
</service></safe>)");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<Problem> problems = CheckModuleReadiness(*r);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].element, "var");
  EXPECT_EQ(problems[0].attribute, "value");
  EXPECT_EQ(problems[1].element, "to");
  EXPECT_EQ(problems[2].attribute, "nameregex");
}

}  // namespace
}  // namespace hakit::config
