// The VM module (hyperv.safe / kvm.safe's role): one virtual machine whose
// files live in one replicated dir, started on the primary, stopped cleanly
// before the other node starts it, and restarted locally when its guest
// heartbeat is lost.
//
// Hooks:
//   start_prim  registers the VM on this host if it does not know it
//               (Hypervisor::Register), then starts it unless it runs, then
//               starts the heartbeat watcher;
//   stop_prim   stops the watcher, then the VM as NORMAL_STOP says; the
//               forced second call turns it off.
// The heartbeat watcher is this module's own thread (the host's checker
// engine does not take module-defined checks yet): every
// HEARTBEAT_INTERVAL it asks Hypervisor::Heartbeat; after
// HEARTBEAT_FAILURES failures in a row (or no heartbeat within
// VM_BOOT_TIMEOUT of a start) it turns the VM off and starts it again, at
// most HEARTBEAT_MAX_RESTARTS times per primary run, each logged in the
// module log as a warning ("guest heartbeat lost ...").
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "hakit/hyperv/hypervisor.h"
#include "hakit/hyperv/vm_settings.h"
#include "hakit/sdk/module.h"

namespace hakit::hyperv {

class VmModule : public sdk::Module {
 public:
  VmModule(VmSettings settings, std::unique_ptr<Hypervisor> hypervisor);
  ~VmModule() override;

  // Replicated: VM_DIR.
  sdk::Status Describe(sdk::ModuleDescription* out) override;
  sdk::Status RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) override;

  // Local restarts the watcher made since the last start_prim.
  int restarts() const { return restarts_; }

 private:
  sdk::Status StartPrim(const sdk::HookArgs& args, sdk::HostContext& host);
  sdk::Status StopPrim(const sdk::HookArgs& args, sdk::HostContext& host);
  void StartWatcher(sdk::HostContext& host);
  void StopWatcher();
  void Watch(sdk::HostContext* host);

  VmSettings settings_;
  std::unique_ptr<Hypervisor> hypervisor_;
  // Serialises hypervisor calls between hooks and the watcher.
  std::mutex vm_mu_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;
  std::thread watcher_;
  std::atomic<int> restarts_{0};
};

// The hypervisor backend `settings` names; `runtime_dir` holds QEMU's
// sockets and pid file.
std::unique_ptr<Hypervisor> MakeHypervisor(const VmSettings& settings,
                                           const std::string& runtime_dir);

}  // namespace hakit::hyperv
