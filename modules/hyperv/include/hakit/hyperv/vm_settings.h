// The VM module's settings, from its <user><var> values:
//   VM_NAME              the virtual machine's name (required)
//   VM_DIR               the dir holding every file of the VM, replicated
//                        (required, absolute)
//   HYPERVISOR           qemu (Linux default) or hyperv (Windows default)
//   NORMAL_STOP          shutdown (default), save or stop: how stop_prim ends
//                        the VM (see StopMode); save is Hyper-V only
//   HEARTBEAT_INTERVAL   seconds between two heartbeat checks (10)
//   HEARTBEAT_TIMEOUT    seconds one check waits for the guest (5)
//   HEARTBEAT_FAILURES   failed checks in a row that mean "lost" (3)
//   VM_BOOT_TIMEOUT      seconds after a start within which the first
//                        heartbeat must come (300)
//   HEARTBEAT_MAX_RESTARTS  local restarts before the watcher gives up (3)
//   QEMU only:
//   QEMU_BINARY          qemu-system-x86_64
//   VM_ACCEL             auto (KVM when /dev/kvm can create a VM, else TCG
//                        software emulation), kvm or tcg
//   VM_MEMORY, VM_CPUS   MiB (512) and virtual CPUs (1)
//   VM_DISK              the disk image, a raw file in VM_DIR (disk.img)
//   VM_KERNEL, VM_INITRD, VM_APPEND
//                        direct kernel boot (optional; without them the VM
//                        boots from its disk)
//   VM_QEMU_ARGS         more arguments, separated by spaces
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "hakit/hyperv/hypervisor.h"
#include "hakit/sdk/status.h"

namespace hakit::hyperv {

struct VmSettings {
  std::string name;
  std::string dir;
  std::string hypervisor;  // "qemu" or "hyperv"
  StopMode normal_stop = StopMode::kShutdown;
  std::chrono::milliseconds heartbeat_interval{10000};
  std::chrono::milliseconds heartbeat_timeout{5000};
  int heartbeat_failures = 3;
  std::chrono::milliseconds boot_timeout{300000};
  int max_restarts = 3;

  std::string qemu_binary = "qemu-system-x86_64";
  std::string accel = "auto";
  int memory_mib = 512;
  int cpus = 1;
  std::string disk = "disk.img";
  std::string kernel, initrd, append;
  std::vector<std::string> extra_args;
};

// InvalidArgument naming the variable for each bad or missing value.
// `windows` picks the default hypervisor.
sdk::Result<VmSettings> ParseVmSettings(const std::map<std::string, std::string>& vars,
                                        bool windows);

}  // namespace hakit::hyperv
