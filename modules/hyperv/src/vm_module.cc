#include "hakit/hyperv/vm_module.h"

#include "hakit/hyperv/hyperv_hypervisor.h"
#include "hakit/hyperv/qemu_hypervisor.h"

namespace hakit::hyperv {

using sdk::Status;
using Clock = std::chrono::steady_clock;

std::unique_ptr<Hypervisor> MakeHypervisor(const VmSettings& settings,
                                           const std::string& runtime_dir) {
  if (settings.hypervisor == "hyperv") return std::make_unique<HyperVHypervisor>(settings);
  return std::make_unique<QemuHypervisor>(settings, runtime_dir);
}

VmModule::VmModule(VmSettings settings, std::unique_ptr<Hypervisor> hypervisor)
    : settings_(std::move(settings)), hypervisor_(std::move(hypervisor)) {}

VmModule::~VmModule() { StopWatcher(); }

Status VmModule::Describe(sdk::ModuleDescription* out) {
  sdk::ReplicatedDirSpec dir;
  dir.path = settings_.dir;
  out->replicated_dirs.push_back(dir);
  return Status::Ok();
}

Status VmModule::RunHook(sdk::Hook hook, const sdk::HookArgs& args, sdk::HostContext& host) {
  Status s;
  if (hook == sdk::Hook::kStartPrim) {
    s = StartPrim(args, host);
  } else if (hook == sdk::Hook::kStopPrim) {
    s = StopPrim(args, host);
  }
  if (!s.ok())
    host.Log(sdk::LogLevel::kError, sdk::HookName(hook) + std::string(": ") + s.message());
  return s;
}

Status VmModule::StartPrim(const sdk::HookArgs& args, sdk::HostContext& host) {
  StopWatcher();
  {
    std::lock_guard<std::mutex> l(vm_mu_);
    auto known = hypervisor_->IsRegistered(host);
    if (!known.ok()) return known.status();
    if (!*known) {
      host.Log(sdk::LogLevel::kInfo,
               hypervisor_->Describe() + " unknown on this host: registering it");
      if (Status s = hypervisor_->Register(host); !s.ok()) return s;
    }
    auto running = hypervisor_->IsRunning(host);
    if (!running.ok()) return running.status();
    if (*running) {
      host.Log(sdk::LogLevel::kInfo, hypervisor_->Describe() + " already runs");
    } else if (Status s = hypervisor_->Start(host, args.timeout); !s.ok()) {
      return s;
    }
  }
  restarts_ = 0;
  StartWatcher(host);
  return Status::Ok();
}

Status VmModule::StopPrim(const sdk::HookArgs& args, sdk::HostContext& host) {
  StopWatcher();
  std::lock_guard<std::mutex> l(vm_mu_);
  if (args.force) return hypervisor_->TurnOff(host, args.timeout);
  return hypervisor_->Stop(host, settings_.normal_stop, args.timeout);
}

void VmModule::StartWatcher(sdk::HostContext& host) {
  std::lock_guard<std::mutex> l(watch_mu_);
  watch_stop_ = false;
  // The host keeps its context alive as long as this module object, which
  // joins the thread before it goes.
  watcher_ = std::thread([this, h = &host] { Watch(h); });
}

void VmModule::StopWatcher() {
  {
    std::lock_guard<std::mutex> l(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

void VmModule::Watch(sdk::HostContext* host) {
  const std::string vm = hypervisor_->Describe();
  auto started = Clock::now();
  bool seen = false;  // a heartbeat since the last (re)start
  int failures = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(watch_mu_);
      if (watch_cv_.wait_for(l, settings_.heartbeat_interval, [this] { return watch_stop_; }))
        return;
    }
    Status hb;
    {
      std::lock_guard<std::mutex> l(vm_mu_);
      hb = hypervisor_->Heartbeat(*host, settings_.heartbeat_timeout);
    }
    if (hb.ok()) {
      if (!seen) host->Log(sdk::LogLevel::kInfo, vm + ": guest heartbeat seen");
      seen = true;
      failures = 0;
      continue;
    }
    // A booting guest has VM_BOOT_TIMEOUT to send its first heartbeat.
    if (!seen && Clock::now() - started < settings_.boot_timeout) continue;
    ++failures;
    if (seen && failures < settings_.heartbeat_failures) continue;
    if (restarts_ >= settings_.max_restarts) {
      host->Log(sdk::LogLevel::kError, vm + ": guest heartbeat lost (" + hb.message() + "); " +
                                           std::to_string(restarts_.load()) +
                                           " local restarts already: not restarting again");
      return;
    }
    ++restarts_;
    host->Log(sdk::LogLevel::kWarning,
              vm + ": guest heartbeat lost (" + hb.message() + ", " + std::to_string(failures) +
                  " failed checks): restarting it locally (" + std::to_string(restarts_.load()) +
                  " of " + std::to_string(settings_.max_restarts) + ")");
    std::lock_guard<std::mutex> l(vm_mu_);
    {
      std::lock_guard<std::mutex> w(watch_mu_);
      if (watch_stop_) return;  // a stop hook takes over
    }
    Status s = hypervisor_->TurnOff(*host, std::chrono::seconds(30));
    if (s.ok()) s = hypervisor_->Start(*host, std::chrono::seconds(60));
    if (!s.ok()) host->Log(sdk::LogLevel::kError, vm + ": local restart failed: " + s.message());
    started = Clock::now();
    seen = false;
    failures = 0;
  }
}

}  // namespace hakit::hyperv
