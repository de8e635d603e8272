// The generic module as hakitd sees it: generic.so opened with Boost.DLL, its
// ABI version read, a module object made by its exported factory, and hooks
// run against real bin/ scripts through a real ModuleHostContext. Suite names
// start with "generic_" so that `ctest -R generic` selects them.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/dll/shared_library.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hakit/common/layout.h"
#include "hakit/scripts/module_host_context.h"
#include "hakit/sdk/export.h"
#include "hakit/sdk/module.h"
#include "script_test_util.h"

namespace hakit::generic {
namespace {

using namespace std::chrono_literals;
using sdk::Hook;
using sdk::HookArgs;
using sdk::Status;
using testing_util::MillisSince;
using testing_util::ReadLines;
using testing_util::TempDir;
using testing_util::WriteScript;

constexpr const char* kLibraryPath = HAKIT_BINARY_DIR "/modules/generic.so";

// Records its arguments and the SafeKit environment into $SAFEUSERVAR, says
// something on stdout, and exits with `code`.
std::string RecordingScript(const std::string& name, int code = 0) {
  std::string body = "mkdir -p \"$SAFEUSERVAR\"\n";
  body += "out=\"$SAFEUSERVAR/" + name + ".out\"\n";
  body += "echo \"args=$*\" > \"$out\"\n";
  body += "echo \"argc=$#\" >> \"$out\"\n";
  body +=
      "for v in SAFE SAFEBIN SAFEVAR SAFEMODULE SAFEUSERBIN SAFEUSERCONF SAFEUSERVAR SAFENODE "
      "HAKIT_ROOT MYVAR; do eval \"echo $v=\\$$v\" >> \"$out\"; done\n";
  body += "echo \"pwd=$(pwd)\" >> \"$out\"\n";
  body += "echo \"" + name + " ran\"\n";
  body += "exit " + std::to_string(code);
  return body;
}

HookArgs Args(std::string current, std::string next, std::string action,
              std::chrono::milliseconds timeout = 10s, bool force = false) {
  HookArgs args;
  args.current_state = std::move(current);
  args.next_state = std::move(next);
  args.action = std::move(action);
  args.timeout = timeout;
  args.force = force;
  return args;
}

class generic_Module : public ::testing::Test {
 protected:
  void SetUp() override {
    library_ = boost::dll::shared_library(kLibraryPath);
    const std::uint32_t& abi = library_.get_alias<const std::uint32_t>("hakit_abi_version");
    ASSERT_EQ(abi, sdk::kAbiVersion);
    auto& create = library_.get_alias<sdk::CreateModuleFn>("hakit_create_module");

    host_ = std::make_unique<scripts::ModuleHostContext>(
        layout_, "app", "node1", std::map<std::string, std::string>{{"MYVAR", "my value"}});
    std::filesystem::create_directories(host_->paths().bin_dir);
    sdk::ModuleSettings settings;
    settings.name = "app";
    settings.userconfig_path = layout_.UserConfig("app").string();
    settings.vars = {{"MYVAR", "my value"}};
    settings.paths = host_->paths();
    Status made = create(settings, &module_);
    ASSERT_TRUE(made.ok()) << made.ToString();
    ASSERT_NE(module_, nullptr);
  }

  void TearDown() override {
    module_.reset();  // before the library that holds its code
  }

  std::filesystem::path Script(const std::string& name) const {
    return std::filesystem::path(host_->paths().bin_dir) / name;
  }

  // Lines "key=value" a RecordingScript wrote, as a map.
  std::map<std::string, std::string> Recorded(const std::string& name) const {
    std::map<std::string, std::string> values;
    for (const std::string& line :
         ReadLines(std::filesystem::path(host_->paths().var_dir) / (name + ".out"))) {
      std::size_t eq = line.find('=');
      if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return values;
  }

  std::string ModuleLog() const { return testing_util::ReadFile(layout_.ModuleLog("app")); }
  std::string UserLog() const { return testing_util::ReadFile(layout_.UserLog("app")); }

  TempDir root_;
  Layout layout_{root_.path()};
  boost::dll::shared_library library_;
  std::unique_ptr<scripts::ModuleHostContext> host_;
  std::unique_ptr<sdk::Module> module_;
};

TEST_F(generic_Module, DescribesNothingBeyondUserconfig) {
  sdk::ModuleDescription description;
  EXPECT_TRUE(module_->Describe(&description).ok());
  EXPECT_TRUE(description.replicated_dirs.empty());
  EXPECT_TRUE(description.checkers.empty());
}

TEST_F(generic_Module, StartPrimRunsTheScriptWithSafeKitArgumentsAndEnvironment) {
  WriteScript(Script("start_prim"), RecordingScript("start_prim"));
  Status status = module_->RunHook(Hook::kStartPrim, Args("STOP", "ALONE", "start"), *host_);
  ASSERT_TRUE(status.ok()) << status.ToString();

  const std::string root = root_.path().string();
  std::map<std::string, std::string> recorded = Recorded("start_prim");
  EXPECT_EQ(recorded["args"], "STOP ALONE start");
  EXPECT_EQ(recorded["argc"], "3");
  EXPECT_EQ(recorded["SAFE"], root);
  EXPECT_EQ(recorded["SAFEBIN"], root + "/bin");
  EXPECT_EQ(recorded["SAFEVAR"], root + "/var");
  EXPECT_EQ(recorded["SAFEMODULE"], "app");
  EXPECT_EQ(recorded["SAFEUSERBIN"], root + "/modules/app/bin");
  EXPECT_EQ(recorded["SAFEUSERCONF"], root + "/modules/app/conf");
  EXPECT_EQ(recorded["SAFEUSERVAR"], root + "/var/modules/app");
  EXPECT_EQ(recorded["SAFENODE"], "node1");
  EXPECT_EQ(recorded["HAKIT_ROOT"], root);
  EXPECT_EQ(recorded["MYVAR"], "my value");
  EXPECT_EQ(recorded["pwd"], root + "/modules/app");

  EXPECT_NE(UserLog().find(" I start_prim: start_prim ran"), std::string::npos) << UserLog();
  std::string log = ModuleLog();
  EXPECT_NE(log.find(" I running bin/start_prim STOP ALONE start (timeout 10000 ms)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(" I bin/start_prim succeeded after "), std::string::npos) << log;
}

TEST_F(generic_Module, EveryHookRunsItsOwnScript) {
  const std::vector<Hook> hooks = {Hook::kPrestart,    Hook::kStartPrim,  Hook::kStopPrim,
                                   Hook::kStartSecond, Hook::kStopSecond, Hook::kStartBoth,
                                   Hook::kStopBoth,    Hook::kPoststop};
  for (Hook hook : hooks)
    WriteScript(Script(sdk::HookName(hook)), RecordingScript(sdk::HookName(hook)));
  for (Hook hook : hooks) {
    Status status = module_->RunHook(hook, Args("SECOND", "PRIM", "swap"), *host_);
    ASSERT_TRUE(status.ok()) << sdk::HookName(hook) << ": " << status.ToString();
    EXPECT_EQ(Recorded(sdk::HookName(hook))["args"], "SECOND PRIM swap") << sdk::HookName(hook);
  }
}

TEST_F(generic_Module, MissingOptionalScriptIsSkipped) {
  for (Hook hook : {Hook::kPrestart, Hook::kStartSecond, Hook::kStopSecond, Hook::kStartBoth,
                    Hook::kStopBoth, Hook::kPoststop}) {
    Status status = module_->RunHook(hook, Args("STOP", "ALONE", "start"), *host_);
    EXPECT_TRUE(status.ok()) << sdk::HookName(hook) << ": " << status.ToString();
  }
  std::string log = ModuleLog();
  EXPECT_NE(log.find(" I bin/prestart not present: skipped"), std::string::npos) << log;
  EXPECT_NE(log.find(" I bin/poststop not present: skipped"), std::string::npos) << log;
}

TEST_F(generic_Module, MissingRequiredScriptIsNotFound) {
  for (Hook hook : {Hook::kStartPrim, Hook::kStopPrim}) {
    Status status = module_->RunHook(hook, Args("STOP", "ALONE", "start"), *host_);
    EXPECT_EQ(status.code(), Status::Code::kNotFound) << status.ToString();
    EXPECT_NE(status.message().find(Script(sdk::HookName(hook)).string()), std::string::npos)
        << status.message();
  }
}

TEST_F(generic_Module, ForcedStopPassesForceFirst) {
  WriteScript(Script("stop_prim"), RecordingScript("stop_prim"));
  ASSERT_TRUE(module_->RunHook(Hook::kStopPrim, Args("PRIM", "STOP", "stop"), *host_).ok());
  EXPECT_EQ(Recorded("stop_prim")["args"], "PRIM STOP stop");

  Status status =
      module_->RunHook(Hook::kStopPrim, Args("PRIM", "STOP", "stop", 10s, true), *host_);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(Recorded("stop_prim")["args"], "force PRIM STOP stop");
  EXPECT_EQ(Recorded("stop_prim")["argc"], "4");
  EXPECT_NE(ModuleLog().find("running bin/stop_prim force PRIM STOP stop"), std::string::npos);
}

TEST_F(generic_Module, ForceIsOnlyForStopHooks) {
  WriteScript(Script("start_prim"), RecordingScript("start_prim"));
  ASSERT_TRUE(
      module_->RunHook(Hook::kStartPrim, Args("STOP", "ALONE", "start", 10s, true), *host_).ok());
  EXPECT_EQ(Recorded("start_prim")["args"], "STOP ALONE start");
}

TEST_F(generic_Module, NonExecutableScriptIsAnErrorNamingThePath) {
  WriteScript(Script("start_prim"), "exit 0", 0644);
  Status status = module_->RunHook(Hook::kStartPrim, Args("STOP", "ALONE", "start"), *host_);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(Script("start_prim").string()), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("not executable"), std::string::npos) << status.message();

  // An optional script that exists is not skipped: it is broken.
  WriteScript(Script("prestart"), "exit 0", 0644);
  EXPECT_FALSE(module_->RunHook(Hook::kPrestart, Args("STOP", "ALONE", "start"), *host_).ok());
}

TEST_F(generic_Module, NonZeroExitIsReportedWithItsCode) {
  WriteScript(Script("start_prim"), RecordingScript("start_prim", 3));
  Status status = module_->RunHook(Hook::kStartPrim, Args("STOP", "ALONE", "start"), *host_);
  EXPECT_EQ(status.code(), Status::Code::kFailed);
  EXPECT_EQ(status.message().rfind("bin/start_prim exited with code 3 after ", 0), 0u)
      << status.message();
  EXPECT_NE(status.message().find(" ms"), std::string::npos);
  EXPECT_NE(ModuleLog().find(" E bin/start_prim exited with code 3"), std::string::npos);
}

TEST_F(generic_Module, DeathBySignalNamesTheSignal) {
  WriteScript(Script("stop_prim"), "kill -KILL $$");
  Status status = module_->RunHook(Hook::kStopPrim, Args("PRIM", "STOP", "stop"), *host_);
  EXPECT_EQ(status.code(), Status::Code::kFailed);
  EXPECT_NE(status.message().find("bin/stop_prim"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("SIGKILL"), std::string::npos) << status.message();
}

TEST_F(generic_Module, HangingScriptIsKilledAtTheTimeout) {
  auto pid_file = root_.path() / "child.pid";
  WriteScript(Script("stop_prim"),
              "sleep 1000 & echo $! > '" + pid_file.string() + "'; sleep 1000");
  auto start = std::chrono::steady_clock::now();
  Status status = module_->RunHook(Hook::kStopPrim, Args("PRIM", "STOP", "stop", 400ms), *host_);
  long long elapsed = MillisSince(start);
  EXPECT_EQ(status.code(), Status::Code::kTimeout) << status.ToString();
  EXPECT_NE(status.message().find("bin/stop_prim"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("400 ms"), std::string::npos) << status.message();
  EXPECT_GE(elapsed, 350);
  EXPECT_LT(elapsed, 2500);
  EXPECT_TRUE(testing_util::WaitGone(testing_util::ReadPid(pid_file)));
}

TEST_F(generic_Module, SafekitAliasIsReachableThroughSafe) {
  // Scripts log with "$SAFE/safekit printi"; here a stand-in records its call.
  WriteScript(root_.path() / "safekit", "echo \"$*\" >> \"$HAKIT_ROOT/safekit.calls\"");
  WriteScript(Script("start_prim"), "\"$SAFE/safekit\" printi \"starting $SAFEMODULE\"");
  ASSERT_TRUE(module_->RunHook(Hook::kStartPrim, Args("STOP", "ALONE", "start"), *host_).ok());
  EXPECT_EQ(ReadLines(root_.path() / "safekit.calls"),
            (std::vector<std::string>{"printi starting app"}));
}

TEST(generic_ModuleLibrary, ExportsAbiVersionAndFactory) {
  boost::dll::shared_library library(kLibraryPath);
  ASSERT_TRUE(library.has("hakit_abi_version"));
  ASSERT_TRUE(library.has("hakit_create_module"));
  EXPECT_EQ(library.get_alias<const std::uint32_t>("hakit_abi_version"), sdk::kAbiVersion);
}

}  // namespace
}  // namespace hakit::generic
