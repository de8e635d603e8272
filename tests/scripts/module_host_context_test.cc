// ModuleHostContext: paths from the Layout, the SafeKit environment, the
// module log and the user log.
#include "hakit/scripts/module_host_context.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "script_test_util.h"

namespace hakit::scripts {
namespace {

using namespace std::chrono_literals;
using testing_util::ReadLines;
using testing_util::TempDir;
using testing_util::WriteScript;

// The message part of a log line "<time> <level> <message>", with its level.
struct LogLine {
  std::string level;
  std::string message;
};

std::vector<LogLine> ReadLog(const std::filesystem::path& path) {
  std::vector<LogLine> lines;
  for (const std::string& line : ReadLines(path)) {
    std::size_t first = line.find(' ');
    std::size_t second = line.find(' ', first + 1);
    if (first == std::string::npos || second == std::string::npos) {
      ADD_FAILURE() << "malformed log line: " << line;
      continue;
    }
    lines.push_back({line.substr(first + 1, second - first - 1), line.substr(second + 1)});
  }
  return lines;
}

class scripts_ModuleHostContext : public ::testing::Test {
 protected:
  scripts_ModuleHostContext()
      : layout_(root_.path()),
        host_(layout_, "mymod", "node1", {{"MYVAR", "hello world"}, {"SAFE", "/hijacked"}}) {}

  TempDir root_;
  Layout layout_;
  ModuleHostContext host_;
};

TEST_F(scripts_ModuleHostContext, NamesAndPathsComeFromTheLayout) {
  EXPECT_EQ(host_.module_name(), "mymod");
  EXPECT_EQ(host_.node_name(), "node1");
  const sdk::ModulePaths& p = host_.paths();
  EXPECT_EQ(p.module_dir, layout_.ModuleDir("mymod").string());
  EXPECT_EQ(p.bin_dir, layout_.ModuleBin("mymod").string());
  EXPECT_EQ(p.conf_dir, layout_.ModuleConf("mymod").string());
  EXPECT_EQ(p.var_dir, layout_.ModuleVar("mymod").string());
  EXPECT_EQ(p.log_dir, layout_.ModuleLogDir("mymod").string());
  EXPECT_EQ(p.safe_dir, layout_.SafeDir().string());
  EXPECT_EQ(p.safe_bin_dir, layout_.SafeBinDir().string());
  EXPECT_EQ(p.safe_var_dir, layout_.VarDir().string());
}

TEST_F(scripts_ModuleHostContext, EnvironmentIsTheSafeKitOne) {
  const std::string root = root_.path().string();
  std::map<std::string, std::string> expected = {
      {"SAFE", root},
      {"SAFEBIN", root + "/bin"},
      {"SAFEVAR", root + "/var"},
      {"SAFEMODULE", "mymod"},
      {"SAFEUSERBIN", root + "/modules/mymod/bin"},
      {"SAFEUSERCONF", root + "/modules/mymod/conf"},
      {"SAFEUSERVAR", root + "/var/modules/mymod"},
      {"SAFENODE", "node1"},
      {"HAKIT_ROOT", root},
      {"PATH", kDefaultPath},
      {"MYVAR", "hello world"},
  };
  EXPECT_EQ(host_.environment(), expected);
}

TEST(scripts_ModuleHostContextVars, UserVarMayOverridePath) {
  TempDir root;
  ModuleHostContext host(Layout(root.path()), "m", "n", {{"PATH", "/opt/app/bin:/bin"}});
  EXPECT_EQ(host.environment().at("PATH"), "/opt/app/bin:/bin");
}

TEST_F(scripts_ModuleHostContext, CommandSeesExactlyTheEnvironment) {
  ::setenv("HAKIT_TEST_LEAK", "must-not-appear", 1);
  std::filesystem::create_directories(host_.paths().module_dir);
  sdk::Command command;
  command.argv = {"env"};
  command.extra_env = {{"EXTRA", "1"}, {"MYVAR", "overridden"}};
  sdk::CommandResult result = host_.RunCommand(command);
  ASSERT_TRUE(result.ok()) << result.error;

  std::set<std::string> expected;
  for (const auto& [key, value] : host_.environment()) {
    expected.insert(key + "=" + (key == "MYVAR" ? "overridden" : value));
  }
  expected.insert("EXTRA=1");
  std::set<std::string> got;
  for (const LogLine& line : ReadLog(layout_.UserLog("mymod"))) {
    EXPECT_EQ(line.level, "I");
    ASSERT_EQ(line.message.rfind("env: ", 0), 0u) << line.message;
    got.insert(line.message.substr(5));
  }
  EXPECT_EQ(got, expected);
}

TEST_F(scripts_ModuleHostContext, OutputGoesToTheUserLogWithTheProgramName) {
  auto script = std::filesystem::path(host_.paths().bin_dir) / "start_prim";
  WriteScript(script, "echo to stdout; echo to stderr >&2; exit 0");
  sdk::Command command;
  command.argv = {script.string()};
  sdk::CommandResult result = host_.RunCommand(command);
  ASSERT_TRUE(result.ok()) << result.error;
  std::vector<LogLine> lines = ReadLog(layout_.UserLog("mymod"));
  ASSERT_EQ(lines.size(), 2u);
  // stdout and stderr are separate pipes: their relative order is not kept.
  std::set<std::pair<std::string, std::string>> got;
  for (const LogLine& line : lines) got.insert({line.level, line.message});
  EXPECT_EQ(got, (std::set<std::pair<std::string, std::string>>{{"I", "start_prim: to stdout"},
                                                                {"W", "start_prim: to stderr"}}));
}

TEST_F(scripts_ModuleHostContext, NoLogOutputWritesNothing) {
  std::filesystem::create_directories(host_.paths().module_dir);
  sdk::Command command;
  command.argv = {"/bin/sh", "-c", "echo quiet"};
  command.log_output = false;
  ASSERT_TRUE(host_.RunCommand(command).ok());
  EXPECT_FALSE(std::filesystem::exists(layout_.UserLog("mymod")));
}

TEST_F(scripts_ModuleHostContext, RunsInTheModuleDirByDefault) {
  std::filesystem::create_directories(host_.paths().module_dir);
  sdk::Command command;
  command.argv = {"/bin/sh", "-c", "pwd"};
  ASSERT_TRUE(host_.RunCommand(command).ok());
  std::vector<LogLine> lines = ReadLog(layout_.UserLog("mymod"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].message, "sh: " + host_.paths().module_dir);
}

TEST_F(scripts_ModuleHostContext, TimeoutIsPassedOn) {
  std::filesystem::create_directories(host_.paths().module_dir);
  sdk::Command command;
  command.argv = {"/bin/sh", "-c", "sleep 1000"};
  command.timeout = 200ms;
  EXPECT_EQ(host_.RunCommand(command).outcome, sdk::CommandResult::Outcome::kTimedOut);
}

TEST_F(scripts_ModuleHostContext, LogAppendsToTheModuleLog) {
  host_.Log(sdk::LogLevel::kInfo, "first");
  host_.Log(sdk::LogLevel::kError, "second");
  std::vector<LogLine> lines = ReadLog(layout_.ModuleLog("mymod"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].level, "I");
  EXPECT_EQ(lines[0].message, "first");
  EXPECT_EQ(lines[1].level, "E");
  EXPECT_EQ(lines[1].message, "second");
}

TEST(scripts_ModuleHostContextLogger, UsesTheGivenLogger) {
  TempDir root;
  auto path = root.path() / "elsewhere.log";
  auto logger = std::make_shared<Logger>(path, false);
  ModuleHostContext host(Layout(root.path()), "m", "n", {}, logger);
  host.Log(sdk::LogLevel::kWarning, "via logger");
  std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" W via logger"), std::string::npos);
}

}  // namespace
}  // namespace hakit::scripts
