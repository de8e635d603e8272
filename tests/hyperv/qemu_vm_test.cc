// The VM module with real QEMU (software emulation) on one host: start_prim
// registers and boots a tiny Linux guest whose disk image is in VM_DIR; the
// guest's heartbeat is seen, lost while the VM is paused (QMP stop) and back
// after QMP cont; stop_prim presses the ACPI power button and the guest shuts
// down cleanly with every record it flushed on the image; the next start
// resumes after them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "guest_image.h"
#include "hakit/hyperv/qemu_hypervisor.h"
#include "hakit/hyperv/qmp_client.h"
#include "hakit/hyperv/vm_module.h"
#include "hakit/scripts/module_host_context.h"

namespace hakit::hyperv {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

template <typename F>
bool WaitFor(F done, std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  do {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class QemuVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (sdk::Status s = testing::CheckGuestPrerequisites(); !s.ok()) GTEST_SKIP() << s.message();
    std::string templ = (fs::temp_directory_path() / "hakit_qemu_vm_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    auto g = testing::BuildGuestImage(root_ / "guest");
    ASSERT_TRUE(g.ok()) << g.status().message();
    guest_ = *g;
    fs::create_directories(root_ / "vmdir");
    fs::resize_file((std::ofstream(root_ / "vmdir/disk.img"), root_ / "vmdir/disk.img"), 4 << 20);
    host_ = std::make_unique<scripts::ModuleHostContext>(Layout(root_ / "node"), "vm", "node1",
                                                         std::map<std::string, std::string>{});
    auto s = ParseVmSettings({{"VM_NAME", "vm1"},
                              {"VM_DIR", (root_ / "vmdir").string()},
                              {"VM_ACCEL", "tcg"},
                              {"VM_MEMORY", "256"},
                              {"VM_KERNEL", guest_.kernel.string()},
                              {"VM_INITRD", guest_.initrd.string()},
                              {"VM_APPEND", guest_.append},
                              {"HEARTBEAT_INTERVAL", "1"},
                              {"HEARTBEAT_TIMEOUT", "2"}},
                             false);
    ASSERT_TRUE(s.ok()) << s.status().message();
    settings_ = *s;
    auto q = std::make_unique<QemuHypervisor>(settings_, host_->paths().var_dir);
    qemu_ = q.get();
    module_ = std::make_unique<VmModule>(settings_, std::move(q));
  }
  void TearDown() override {
    // Never leave a VM behind, whatever failed.
    if (qemu_ != nullptr) {
      if (auto pid = qemu_->Pid()) ::kill(*pid, SIGKILL);
    }
    module_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }
  static sdk::HookArgs Args(bool force = false) {
    sdk::HookArgs a;
    a.current_state = "WAIT";
    a.next_state = "ALONE";
    a.action = "start";
    a.force = force;
    a.timeout = 60s;
    return a;
  }
  void Qmp(const std::string& command) {
    auto c = QmpClient::Connect(qemu_->QmpSocket(), 5s);
    ASSERT_TRUE(c.ok()) << c.status().message();
    auto r = (*c)->Execute(command);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  long Flushed() { return testing::LastFlushed(qemu_->ConsoleLog()); }

  fs::path root_;
  testing::GuestImage guest_;
  VmSettings settings_;
  std::unique_ptr<scripts::ModuleHostContext> host_;
  QemuHypervisor* qemu_ = nullptr;
  std::unique_ptr<VmModule> module_;
};

TEST_F(QemuVmTest, BootsHeartbeatsPausesAndShutsDownCleanly) {
  auto t0 = std::chrono::steady_clock::now();
  sdk::Status s = module_->RunHook(sdk::Hook::kStartPrim, Args(), *host_);
  ASSERT_TRUE(s.ok()) << s.message() << "\n" << ReadAll(Layout(root_ / "node").UserLog("vm"));
  ASSERT_TRUE(qemu_->Pid().has_value());
  ASSERT_TRUE(WaitFor([&] { return qemu_->Heartbeat(*host_, 2s).ok(); }, 90s))
      << ReadAll(qemu_->ConsoleLog());
  auto boot =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("VM boot to first heartbeat (tcg): %ld ms\n", static_cast<long>(boot.count()));
  ASSERT_TRUE(WaitFor([&] { return Flushed() >= 3; }, 30s)) << ReadAll(qemu_->ConsoleLog());

  // A paused guest answers nothing; resumed, it answers again.
  Qmp("stop");
  EXPECT_FALSE(qemu_->Heartbeat(*host_, 2s).ok());
  Qmp("cont");
  EXPECT_TRUE(WaitFor([&] { return qemu_->Heartbeat(*host_, 2s).ok(); }, 10s));

  // stop_prim, NORMAL_STOP=shutdown: the guest powers off by itself.
  s = module_->RunHook(sdk::Hook::kStopPrim, Args(), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(qemu_->Pid().has_value());
  EXPECT_THAT(ReadAll(qemu_->ConsoleLog()), HasSubstr("guest: power button"));
  EXPECT_THAT(ReadAll(Layout(root_ / "node").ModuleLog("vm")), HasSubstr("shut down by its guest"));
  const long flushed = Flushed();
  auto disk = testing::ReadDiskRecords(root_ / "vmdir/disk.img");
  ASSERT_GE(static_cast<long>(disk.records.size()), flushed);
  for (long i = 0; i < flushed; ++i) ASSERT_EQ(disk.records[i], i + 1);
  EXPECT_GE(disk.count, flushed);

  // The next start resumes after the last record on the disk.
  s = module_->RunHook(sdk::Hook::kStartPrim, Args(), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadAll(qemu_->ConsoleLog())
                   .find("guest: resuming after record " + std::to_string(disk.records.size())) !=
               std::string::npos;
      },
      90s))
      << ReadAll(qemu_->ConsoleLog());
  // Forced stop: turned off at once.
  s = module_->RunHook(sdk::Hook::kStopPrim, Args(true), *host_);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(qemu_->Pid().has_value());
}

}  // namespace
}  // namespace hakit::hyperv
