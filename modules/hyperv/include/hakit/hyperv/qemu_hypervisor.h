// QemuHypervisor: the VM runs as a daemonized qemu-system process started
// through the HostContext, controlled over its QMP unix socket
// (query-status, system_powerdown, quit).
//
// Its runtime files are in the module's var dir (not replicated):
//   NAME.vm          the "registration": the command line this host starts
//                    the VM with (written by Register, as `virsh define`
//                    would); the VM is unknown when it is missing or differs
//   NAME.qmp         QMP socket
//   NAME.hb          the guest heartbeat channel: the VM's second serial
//                    port, a socket; the guest writes a line starting with
//                    "hakit-heartbeat" at least once a second
//   NAME.console     the first serial port (the guest console), appended
//   NAME.pid         QEMU's pid
// The disk image is VM_DIR/VM_DISK, a raw file in the replicated dir, on a
// virtio block device (guest flushes become fdatasync on the image).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "hakit/hyperv/hypervisor.h"
#include "hakit/hyperv/vm_settings.h"

namespace hakit::hyperv {

class QemuHypervisor : public Hypervisor {
 public:
  QemuHypervisor(VmSettings settings, std::string runtime_dir);

  // The command line that starts the VM with accelerator `accel` ("kvm" or
  // "tcg").
  std::vector<std::string> Argv(const std::string& accel) const;
  // "kvm" or "tcg": VM_ACCEL, or for "auto" whether KvmUsable().
  std::string Accelerator() const;
  // /dev/kvm opens read-write, speaks API 12 and creates a VM.
  static bool KvmUsable();

  std::string QmpSocket() const { return runtime_dir_ + "/" + settings_.name + ".qmp"; }
  std::string HeartbeatSocket() const { return runtime_dir_ + "/" + settings_.name + ".hb"; }
  std::string ConsoleLog() const { return runtime_dir_ + "/" + settings_.name + ".console"; }
  std::string PidFile() const { return runtime_dir_ + "/" + settings_.name + ".pid"; }
  std::string DefinitionFile() const { return runtime_dir_ + "/" + settings_.name + ".vm"; }
  std::string DiskPath() const { return settings_.dir + "/" + settings_.disk; }
  // QEMU's pid while it runs.
  std::optional<pid_t> Pid() const;

  sdk::Result<bool> IsRegistered(sdk::HostContext& host) override;
  sdk::Status Register(sdk::HostContext& host) override;
  sdk::Result<bool> IsRunning(sdk::HostContext& host) override;
  sdk::Status Start(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  sdk::Status Stop(sdk::HostContext& host, StopMode mode,
                   std::chrono::milliseconds timeout) override;
  sdk::Status TurnOff(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  sdk::Status Heartbeat(sdk::HostContext& host, std::chrono::milliseconds timeout) override;
  std::string Describe() const override { return "qemu VM " + settings_.name; }

 private:
  std::string Definition() const;
  // Waits until QEMU's process is gone; false at the deadline.
  bool WaitGone(std::chrono::milliseconds timeout) const;

  VmSettings settings_;
  std::string runtime_dir_;
};

}  // namespace hakit::hyperv
