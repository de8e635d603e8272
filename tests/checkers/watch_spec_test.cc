// userconfig.xml and a library's CheckerSpecs -> the probes and resources
// the daemon runs, with a clear message for every bad input.
#include <gtest/gtest.h>

#include "hakit/checkers/watch_spec.h"

namespace hakit::checkers {
namespace {

config::ModuleConfig Parse(const std::string& body) {
  auto r = config::ParseUserConfigString(
      "<safe><service mode=\"mirror\">" + body + "</service></safe>", "test.xml");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : config::ModuleConfig{};
}

sdk::CheckerSpec Spec(std::string kind, std::string ident,
                      std::map<std::string, std::string> params, std::string action = "restart") {
  sdk::CheckerSpec s;
  s.kind = std::move(kind);
  s.ident = std::move(ident);
  s.params = std::move(params);
  s.action = std::move(action);
  return s;
}

TEST(WatchSpecs, FromUserConfigWithSafeKitDefaults) {
  auto c = Parse(
      "<errd polltimer=\"2s\"><proc name=\"app\" atleast=\"2\" atmax=\"4\"/>"
      "<proc nameregex=\"^java\" argregex=\"-jar x\" class=\"both\" action=\"stop\"/></errd>"
      "<check><tcp ident=\"db\"><to addr=\"127.0.0.1\" port=\"5432\"/></tcp>"
      "<ping ident=\"gw\"><to addr=\"198.18.0.254\"/></ping>"
      "<intf ident=\"lan\"><to name=\"eth0\"/></intf>"
      "<ip ident=\"vip\"><to addr=\"198.18.0.100\"/></ip>"
      "<custom ident=\"c\" exec=\"check.sh\" arg=\"-q  fast\"/></check>");
  auto w = WatchSpecs(c, {});
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 7u);
  const auto& app = (*w)[0];
  EXPECT_EQ(app.resource, "proc.app");
  EXPECT_TRUE(app.errd);
  EXPECT_EQ(app.atleast, 2);
  EXPECT_EQ(app.atmax, 4);
  EXPECT_EQ(app.interval.count(), 2000);
  EXPECT_EQ(app.when, config::When::kPrim);
  EXPECT_EQ(app.action, PlannedKind::kRestart);
  EXPECT_EQ((*w)[1].resource, "proc.^java");
  EXPECT_EQ((*w)[1].action, PlannedKind::kStop);
  EXPECT_EQ((*w)[1].when, config::When::kBoth);
  const char* names[] = {"tcp.db", "ping.gw", "intf.lan", "ip.vip", "custom.c"};
  const PlannedKind actions[] = {PlannedKind::kRestart, PlannedKind::kWait, PlannedKind::kWait,
                                 PlannedKind::kStopStart, PlannedKind::kRestart};
  const config::When whens[] = {config::When::kPrim, config::When::kPre, config::When::kPre,
                                config::When::kPrim, config::When::kPrim};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ((*w)[2 + i].resource, names[i]);
    EXPECT_EQ((*w)[2 + i].action, actions[i]) << names[i];
    EXPECT_EQ((*w)[2 + i].when, whens[i]) << names[i];
    EXPECT_FALSE((*w)[2 + i].errd);
    EXPECT_EQ((*w)[2 + i].action, DefaultAction(names[i])) << names[i];
  }
  EXPECT_EQ((*w)[2].port, 5432);
  EXPECT_EQ((*w)[6].args, (std::vector<std::string>{"-q", "fast"}));
}

TEST(WatchSpecs, FromTheModuleLibrary) {
  auto w = WatchSpecs({}, {Spec("process", "pg", {{"name", "postgres"}, {"atleast", "3"}}),
                           Spec("tcp", "pg", {{"addr", "127.0.0.1"}, {"port", "5432"}}, "failover"),
                           Spec("interface", "lan", {{"name", "eth0"}}, "wait"),
                           Spec("custom", "x", {{"exec", "/bin/true"}, {"when", "both"}})});
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 4u);
  EXPECT_EQ((*w)[0].resource, "proc.pg");
  EXPECT_EQ((*w)[0].atleast, 3);
  EXPECT_FALSE((*w)[0].errd);
  EXPECT_EQ((*w)[1].resource, "tcp.pg");
  EXPECT_EQ((*w)[1].action, PlannedKind::kSwap);
  EXPECT_EQ((*w)[2].when, config::When::kPre);
  EXPECT_EQ((*w)[3].when, config::When::kBoth);
}

TEST(WatchSpecs, BadInputsAreNamed) {
  struct Bad {
    sdk::CheckerSpec spec;
    const char* says;
  } bad[] = {
      {Spec("http", "x", {}), "unknown kind \"http\""},
      {Spec("tcp", "x", {{"addr", "1.2.3.4"}}), "needs params[\"port\"]"},
      {Spec("tcp", "x", {{"addr", "1.2.3.4"}, {"port", "99999"}}), "needs params[\"port\"]"},
      {Spec("tcp", "x", {{"addr", "1.2.3.4"}, {"port", "80a"}}), "not a whole number"},
      {Spec("process", "x", {}), "needs params[\"name\"]"},
      {Spec("ping", "x", {{"addr", "1.2.3.4"}}, "reboot"), "unknown action \"reboot\""},
      {Spec("interface", "x", {{"name", "eth0"}, {"when", "sometimes"}}), "when=\"sometimes\""},
      {Spec("custom", "a b", {{"exec", "x"}}), "not a valid resource name"},
  };
  for (const auto& b : bad) {
    auto w = WatchSpecs({}, {b.spec});
    ASSERT_FALSE(w.ok()) << b.says;
    EXPECT_NE(w.status().message().find(b.says), std::string::npos) << w.status().message();
    EXPECT_NE(w.status().message().find("\"" + b.spec.ident + "\""), std::string::npos)
        << w.status().message();
  }
  auto twice = WatchSpecs(Parse("<check><tcp ident=\"db\"><to addr=\"127.0.0.1\" port=\"1\"/></tcp></check>"),
                          {Spec("tcp", "db", {{"addr", "127.0.0.1"}, {"port", "2"}})});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("tcp.db is declared twice"), std::string::npos);
  // (userconfig.xml's regexes are checked by the config parser already.)
  auto regex = WatchSpecs({}, {Spec("process", "j", {{"nameregex", "(["}})});
  ASSERT_FALSE(regex.ok());
  EXPECT_NE(regex.status().message().find("bad regular expression"), std::string::npos);
}

}  // namespace
}  // namespace hakit::checkers
