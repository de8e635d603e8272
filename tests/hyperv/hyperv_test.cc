// The VM module without a VM: its settings, the exact Hyper-V PowerShell
// command lines, the QEMU command line, loading through host/loader, and
// its hooks and heartbeat watcher checked on the Hypervisor seam.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "hakit/hyperv/hyperv_hypervisor.h"
#include "hakit/hyperv/qemu_hypervisor.h"
#include "hakit/hyperv/vm_module.h"
#include "hakit/hyperv/vm_settings.h"
#include "hakit/loader/loader.h"
#include "hakit/module_util/commands.h"
#include "hakit/scripts/module_host_context.h"

namespace hakit::hyperv {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

VmSettings Parse(std::map<std::string, std::string> vars, bool windows = false) {
  auto s = ParseVmSettings(vars, windows);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : VmSettings{};
}

TEST(VmSettingsTest, DefaultsAndRequiredValues) {
  VmSettings s = Parse({{"VM_NAME", "vm1"}, {"VM_DIR", "/srv/vm1"}});
  EXPECT_EQ(s.hypervisor, "qemu");
  EXPECT_EQ(s.normal_stop, StopMode::kShutdown);
  EXPECT_EQ(s.heartbeat_interval, 10s);
  EXPECT_EQ(s.heartbeat_failures, 3);
  EXPECT_EQ(s.accel, "auto");
  EXPECT_EQ(Parse({{"VM_NAME", "vm1"}, {"VM_DIR", "D:\\VMs\\vm1"}}, true).hypervisor, "hyperv");

  struct Case {
    std::map<std::string, std::string> vars;
    const char* message;
  };
  const std::vector<Case> bad = {
      {{{"VM_DIR", "/srv/vm1"}}, "VM_NAME\"> is required"},
      {{{"VM_NAME", "vm1"}}, "VM_DIR\"> is required"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "srv"}}, "an absolute path"},
      {{{"VM_NAME", "it's"}, {"VM_DIR", "/srv"}}, "without quotes"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"HYPERVISOR", "xen"}}, "qemu or hyperv"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"NORMAL_STOP", "halt"}}, "shutdown, save or stop"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"NORMAL_STOP", "save"}}, "save is Hyper-V's"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"HEARTBEAT_INTERVAL", "0"}}, "HEARTBEAT_INTERVAL"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"VM_MEMORY", "lots"}}, "VM_MEMORY"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"VM_ACCEL", "hvf"}}, "auto, kvm or tcg"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"VM_DISK", "../x.img"}}, "VM_DISK"},
      {{{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"VM_INITRD", "/i"}}, "need VM_KERNEL"},
  };
  for (const auto& c : bad) {
    auto r = ParseVmSettings(c.vars, false);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message));
  }
  auto save =
      ParseVmSettings({{"VM_NAME", "vm1"}, {"VM_DIR", "D:\\vm"}, {"NORMAL_STOP", "save"}}, true);
  ASSERT_TRUE(save.ok());
  EXPECT_EQ(save->normal_stop, StopMode::kSave);
}

TEST(HyperVCommands, ExactPowerShellCommandLines) {
  HyperVHypervisor hv(
      Parse({{"VM_NAME", "sql vm"}, {"VM_DIR", "D:\\Replicated\\sql vm"}, {"HYPERVISOR", "hyperv"}},
            true));
  const std::vector<std::string> head = {"powershell.exe", "-NoProfile", "-NonInteractive",
                                         "-Command"};
  const std::string pre = "$ErrorActionPreference = 'Stop'; ";
  auto script = [&](const std::vector<std::string>& argv) {
    EXPECT_EQ(std::vector<std::string>(argv.begin(), argv.end() - 1), head);
    return argv.back();
  };
  EXPECT_EQ(
      script(hv.IsRegisteredArgv()),
      pre + "if (Get-VM -Name 'sql vm' -ErrorAction SilentlyContinue) { exit 0 } else { exit 3 }");
  EXPECT_EQ(script(hv.RegisterArgv()),
            pre +
                "$f = Get-ChildItem -Path 'D:\\Replicated\\sql vm\\Virtual Machines' -Filter "
                "*.vmcx | Select-Object -First 1; if (-not $f) { throw ('no .vmcx file in ' + "
                "'D:\\Replicated\\sql vm\\Virtual Machines') }; Import-VM -Path $f.FullName "
                "-Register | Out-Null");
  EXPECT_EQ(script(hv.IsRunningArgv()),
            pre +
                "$s = (Get-VM -Name 'sql vm').State; if ($s -eq 'Running' -or $s -eq 'Paused') "
                "{ exit 0 } else { exit 3 }");
  EXPECT_EQ(script(hv.StartArgv()), pre + "Start-VM -Name 'sql vm'");
  EXPECT_EQ(script(hv.StopArgv(StopMode::kShutdown)), pre + "Stop-VM -Name 'sql vm' -Force");
  EXPECT_EQ(script(hv.StopArgv(StopMode::kSave)), pre + "Stop-VM -Name 'sql vm' -Save");
  EXPECT_EQ(script(hv.StopArgv(StopMode::kStop)), pre + "Stop-VM -Name 'sql vm' -TurnOff -Force");
  EXPECT_EQ(script(hv.TurnOffArgv()), pre + "Stop-VM -Name 'sql vm' -TurnOff -Force");
  EXPECT_EQ(script(hv.HeartbeatArgv()),
            pre +
                "$h = Get-VMIntegrationService -VMName 'sql vm' -Name 'Heartbeat'; if "
                "($h.Enabled -and $h.PrimaryStatusDescription -eq 'OK') { exit 0 } else { "
                "Write-Output ('heartbeat: ' + $h.PrimaryStatusDescription); exit 1 }");
  EXPECT_EQ(hv.Describe(), "Hyper-V VM sql vm");
  HyperVHypervisor quoted(Parse({{"VM_NAME", "vm1"}, {"VM_DIR", "D:\\o'brien"}}, true));
  EXPECT_THAT(script(quoted.RegisterArgv()), HasSubstr("-Path 'D:\\o''brien\\Virtual Machines'"));
}

class HostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "hakit_hyperv_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    fs::create_directories(root_ / "modules/vm/bin");
    host_ = std::make_unique<scripts::ModuleHostContext>(Layout(root_), "vm", "node1",
                                                         std::map<std::string, std::string>{});
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string ModuleLog() {
    std::ifstream in(Layout(root_).ModuleLog("vm"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::path root_;
  std::unique_ptr<scripts::ModuleHostContext> host_;
};

// The Hyper-V backend's yes/no queries through a real HostContext, with a
// stand-in powershell.exe that exits as told.
TEST_F(HostTest, HyperVExitCodesMeanYesNoOrError) {
  fs::path ps = root_ / "powershell";
  fs::path code = root_ / "code";
  std::ofstream(ps) << "#!/bin/sh\necho \"$4\" >> '" << (root_ / "calls").string()
                    << "'\nexit $(cat '" << code.string() << "')\n";
  fs::permissions(ps, fs::perms::owner_all);
  HyperVHypervisor hv(Parse({{"VM_NAME", "vm1"}, {"VM_DIR", "D:\\vm1"}}, true), ps.string());
  std::ofstream(code) << "0";
  auto r = hv.IsRegistered(*host_);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
  std::ofstream(code) << "3";
  r = hv.IsRunning(*host_);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  std::ofstream(code) << "1";
  r = hv.IsRegistered(*host_);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("Get-VM exited with code 1"));
  sdk::Status s = hv.Stop(*host_, StopMode::kSave, 5s);
  EXPECT_THAT(s.message(), HasSubstr("Hyper-V VM vm1: Stop-VM exited with code 1"));
  std::ifstream calls(root_ / "calls");
  std::string last, line;
  while (std::getline(calls, line)) last = line;
  EXPECT_EQ(last, "$ErrorActionPreference = 'Stop'; Stop-VM -Name 'vm1' -Save");
}

TEST(QemuCommands, CommandLine) {
  QemuHypervisor q(Parse({{"VM_NAME", "vm1"},
                          {"VM_DIR", "/srv/vm1"},
                          {"VM_MEMORY", "256"},
                          {"VM_KERNEL", "/boot/k"},
                          {"VM_INITRD", "/boot/i"},
                          {"VM_APPEND", "console=ttyS0 quiet"},
                          {"VM_QEMU_ARGS", "-cpu max"}}),
                   "/var/hakit/vm");
  EXPECT_THAT(
      q.Argv("tcg"),
      ElementsAre("qemu-system-x86_64", "-name", "vm1", "-accel", "tcg", "-m", "256", "-smp", "1",
                  "-nodefaults", "-no-user-config", "-display", "none", "-drive",
                  "file=/srv/vm1/disk.img,format=raw,if=virtio,cache=writeback", "-chardev",
                  "file,id=hakit_console,path=/var/hakit/vm/vm1.console,append=on", "-serial",
                  "chardev:hakit_console", "-chardev",
                  "socket,id=hakit_hb,path=/var/hakit/vm/vm1.hb,server=on,wait=off", "-serial",
                  "chardev:hakit_hb", "-qmp", "unix:/var/hakit/vm/vm1.qmp,server=on,wait=off",
                  "-pidfile", "/var/hakit/vm/vm1.pid", "-daemonize", "-kernel", "/boot/k",
                  "-initrd", "/boot/i", "-append", "console=ttyS0 quiet", "-cpu", "max"));
  QemuHypervisor forced(Parse({{"VM_NAME", "vm1"}, {"VM_DIR", "/srv"}, {"VM_ACCEL", "tcg"}}), "/v");
  EXPECT_EQ(forced.Accelerator(), "tcg");
}

TEST_F(HostTest, QemuRegisterNeedsTheDiskAndWritesTheDefinition) {
  fs::path dir = root_ / "vmdir";
  fs::create_directories(dir);
  QemuHypervisor q(Parse({{"VM_NAME", "vm1"}, {"VM_DIR", dir.string()}, {"VM_ACCEL", "tcg"}}),
                   (root_ / "var").string());
  auto known = q.IsRegistered(*host_);
  ASSERT_TRUE(known.ok());
  EXPECT_FALSE(*known);
  sdk::Status s = q.Register(*host_);
  EXPECT_EQ(s.code(), sdk::Status::Code::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr(dir.string() + "/disk.img is missing"));
  std::ofstream(dir / "disk.img") << "";
  ASSERT_TRUE(q.Register(*host_).ok());
  known = q.IsRegistered(*host_);
  EXPECT_TRUE(known.ok() && *known);
  // Not running: stopping succeeds, the heartbeat does not.
  EXPECT_TRUE(q.Stop(*host_, StopMode::kShutdown, 1s).ok());
  EXPECT_TRUE(q.TurnOff(*host_, 1s).ok());
  EXPECT_THAT(q.Heartbeat(*host_, 1s).message(), HasSubstr("does not run"));
}

TEST_F(HostTest, LoadsThroughTheLoaderAndDeclaresTheVmDir) {
  sdk::ModuleSettings ms;
  ms.name = "vm";
  ms.userconfig_path = (root_ / "modules/vm/conf/userconfig.xml").string();
  ms.vars = {{"VM_NAME", "vm1"}, {"VM_DIR", "/srv/replicated/vm1"}};
  ms.paths = host_->paths();
  auto m = loader::LoadModule(HYPERV_MODULE, ms);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  sdk::ModuleDescription d;
  ASSERT_TRUE((*m)->Describe(&d).ok());
  ASSERT_EQ(d.replicated_dirs.size(), 1u);
  EXPECT_EQ(d.replicated_dirs[0].path, "/srv/replicated/vm1");
  ms.vars.erase("VM_NAME");
  m = loader::LoadModule(HYPERV_MODULE, ms);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(),
              HasSubstr("userconfig.xml: <user><var name=\"VM_NAME\"> is required"));
}

// Records what the module asks; the heartbeat answers as the test says.
class FakeHypervisor : public Hypervisor {
 public:
  std::mutex mu;
  std::vector<std::string> calls;
  bool registered = false;
  bool running = false;
  std::atomic<bool> heartbeat_ok{true};

  void Note(const std::string& c) {
    std::lock_guard<std::mutex> l(mu);
    calls.push_back(c);
  }
  std::vector<std::string> Calls() {
    std::lock_guard<std::mutex> l(mu);
    return calls;
  }
  sdk::Result<bool> IsRegistered(sdk::HostContext&) override { return registered; }
  sdk::Status Register(sdk::HostContext&) override {
    Note("register");
    registered = true;
    return sdk::Status::Ok();
  }
  sdk::Result<bool> IsRunning(sdk::HostContext&) override { return running; }
  sdk::Status Start(sdk::HostContext&, std::chrono::milliseconds) override {
    Note("start");
    running = true;
    return sdk::Status::Ok();
  }
  sdk::Status Stop(sdk::HostContext&, StopMode mode, std::chrono::milliseconds) override {
    Note(mode == StopMode::kShutdown ? "shutdown" : mode == StopMode::kSave ? "save" : "stop");
    running = false;
    return sdk::Status::Ok();
  }
  sdk::Status TurnOff(sdk::HostContext&, std::chrono::milliseconds) override {
    Note("turnoff");
    running = false;
    return sdk::Status::Ok();
  }
  sdk::Status Heartbeat(sdk::HostContext&, std::chrono::milliseconds) override {
    return heartbeat_ok ? sdk::Status::Ok() : sdk::Status::Timeout("no heartbeat");
  }
  std::string Describe() const override { return "fake VM"; }
};

sdk::HookArgs Args(bool force = false) {
  sdk::HookArgs a;
  a.current_state = "WAIT";
  a.next_state = "ALONE";
  a.action = "start";
  a.force = force;
  a.timeout = 5s;
  return a;
}

TEST_F(HostTest, HooksRegisterStartAndStopOnTheSeam) {
  auto fake = std::make_unique<FakeHypervisor>();
  FakeHypervisor* hv = fake.get();
  VmModule m(Parse({{"VM_NAME", "vm1"}, {"VM_DIR", "/srv/vm1"}, {"NORMAL_STOP", "stop"}}),
             std::move(fake));
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStartPrim, Args(), *host_).ok());
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStopPrim, Args(), *host_).ok());
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStopPrim, Args(true), *host_).ok());
  // Known now: no second registration. Already running: no second start.
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStartPrim, Args(), *host_).ok());
  hv->running = true;
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStartPrim, Args(), *host_).ok());
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStartSecond, Args(), *host_).ok());
  EXPECT_THAT(hv->Calls(), ElementsAre("register", "start", "stop", "turnoff", "start"));
  EXPECT_THAT(ModuleLog(), HasSubstr("fake VM already runs"));
}

TEST_F(HostTest, WatcherRestartsTheVmWhenTheHeartbeatIsLost) {
  auto fake = std::make_unique<FakeHypervisor>();
  FakeHypervisor* hv = fake.get();
  VmModule m(Parse({{"VM_NAME", "vm1"},
                    {"VM_DIR", "/srv/vm1"},
                    {"HEARTBEAT_INTERVAL", "1"},
                    {"HEARTBEAT_FAILURES", "2"},
                    {"HEARTBEAT_MAX_RESTARTS", "1"}}),
             std::move(fake));
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStartPrim, Args(), *host_).ok());
  std::this_thread::sleep_for(1500ms);  // one good heartbeat
  hv->heartbeat_ok = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (m.restarts() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(m.restarts(), 1);
  std::this_thread::sleep_for(300ms);
  EXPECT_THAT(hv->Calls(), ElementsAre("register", "start", "turnoff", "start"));
  EXPECT_THAT(ModuleLog(), HasSubstr("fake VM: guest heartbeat lost (no heartbeat, 2 failed "
                                     "checks): restarting it locally (1 of 1)"));
  // The boot grace (300 s default) keeps a silent restarted guest alive;
  // stop_prim ends the watcher before stopping the VM.
  ASSERT_TRUE(m.RunHook(sdk::Hook::kStopPrim, Args(), *host_).ok());
  EXPECT_THAT(hv->Calls(), ElementsAre("register", "start", "turnoff", "start", "shutdown"));
}

}  // namespace
}  // namespace hakit::hyperv
