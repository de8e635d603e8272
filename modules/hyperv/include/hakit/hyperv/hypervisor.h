// Hypervisor: what the VM module needs of the hypervisor that runs its one
// virtual machine. Two implementations: QemuHypervisor (qemu-system with a
// QMP socket; run and tested here) and HyperVHypervisor (PowerShell's
// Hyper-V cmdlets; its command lines are tested, it is not run on Windows
// yet).
//
// Threading: calls may come from the module's hook thread and from its
// heartbeat watcher; the module serialises them, implementations need not be
// thread-safe. Every call is bounded by the timeout it is given (zero: the
// implementation's own bound) and never throws.
#pragma once

#include <chrono>
#include <string>

#include "hakit/sdk/host_context.h"
#include "hakit/sdk/status.h"

namespace hakit::hyperv {

// How a normal stop ends the VM (NORMAL_STOP).
enum class StopMode {
  kShutdown,  // the guest OS shuts down (ACPI power button / integration service)
  kSave,      // the VM's state is saved to its files (Hyper-V only)
  kStop,      // powered off at once, without the guest's help
};

class Hypervisor {
 public:
  Hypervisor() = default;
  Hypervisor(const Hypervisor&) = delete;
  Hypervisor& operator=(const Hypervisor&) = delete;
  virtual ~Hypervisor() = default;

  // Whether this host knows the VM (can start it by name). An error when
  // the hypervisor cannot be asked.
  virtual sdk::Result<bool> IsRegistered(sdk::HostContext& host) = 0;

  // Makes the VM known to this host from its files in the replicated dir,
  // in place (the files are not copied). NotFound when they are missing.
  virtual sdk::Status Register(sdk::HostContext& host) = 0;

  // Whether the VM runs (or is paused) on this host.
  virtual sdk::Result<bool> IsRunning(sdk::HostContext& host) = 0;

  // Starts the VM; returns once the hypervisor reports it running (the
  // guest may still be booting).
  virtual sdk::Status Start(sdk::HostContext& host, std::chrono::milliseconds timeout) = 0;

  // Stops the VM as `mode` says and returns once it no longer runs.
  // Timeout when it still runs after `timeout`. Stopping a VM that does not
  // run succeeds.
  virtual sdk::Status Stop(sdk::HostContext& host, StopMode mode,
                           std::chrono::milliseconds timeout) = 0;

  // Powers the VM off at once (the force path). Succeeds when it does not run.
  virtual sdk::Status TurnOff(sdk::HostContext& host, std::chrono::milliseconds timeout) = 0;

  // Ok when the guest's heartbeat is seen within `timeout`; Failed (or
  // Timeout) with what was seen otherwise.
  virtual sdk::Status Heartbeat(sdk::HostContext& host, std::chrono::milliseconds timeout) = 0;

  // "qemu VM vm1", for messages.
  virtual std::string Describe() const = 0;
};

}  // namespace hakit::hyperv
