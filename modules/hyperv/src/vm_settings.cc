#include "hakit/hyperv/vm_settings.h"

#include <sstream>

namespace hakit::hyperv {

using sdk::Result;
using sdk::Status;

namespace {

using Vars = std::map<std::string, std::string>;

std::string Get(const Vars& vars, const std::string& key, const std::string& fallback = "") {
  auto it = vars.find(key);
  return it == vars.end() || it->second.empty() ? fallback : it->second;
}

Status Bad(const std::string& key, const std::string& value, const std::string& expected) {
  return Status::InvalidArgument("<user><var name=\"" + key + "\"> value \"" + value +
                                 "\": expected " + expected);
}

Result<int> Number(const Vars& vars, const std::string& key, int fallback, int min, int max) {
  std::string v = Get(vars, key);
  if (v.empty()) return fallback;
  std::size_t used = 0;
  long n = 0;
  try {
    n = std::stol(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || n < min || n > max) {
    return Bad(key, v, "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return static_cast<int>(n);
}

}  // namespace

Result<VmSettings> ParseVmSettings(const Vars& vars, bool windows) {
  VmSettings s;
  s.name = Get(vars, "VM_NAME");
  if (s.name.empty()) return Status::InvalidArgument("<user><var name=\"VM_NAME\"> is required");
  if (s.name.find_first_of("'\"/\\\n") != std::string::npos) {
    return Bad("VM_NAME", s.name, "a name without quotes, slashes or newlines");
  }
  s.dir = Get(vars, "VM_DIR");
  if (s.dir.empty()) return Status::InvalidArgument("<user><var name=\"VM_DIR\"> is required");
  const bool absolute = windows ? s.dir.size() > 2 && s.dir[1] == ':' : s.dir.front() == '/';
  if (!absolute) return Bad("VM_DIR", s.dir, "an absolute path");
  s.hypervisor = Get(vars, "HYPERVISOR", windows ? "hyperv" : "qemu");
  if (s.hypervisor != "qemu" && s.hypervisor != "hyperv") {
    return Bad("HYPERVISOR", s.hypervisor, "qemu or hyperv");
  }
  std::string stop = Get(vars, "NORMAL_STOP", "shutdown");
  if (stop == "shutdown") {
    s.normal_stop = StopMode::kShutdown;
  } else if (stop == "save") {
    s.normal_stop = StopMode::kSave;
  } else if (stop == "stop") {
    s.normal_stop = StopMode::kStop;
  } else {
    return Bad("NORMAL_STOP", stop, "shutdown, save or stop");
  }
  if (s.normal_stop == StopMode::kSave && s.hypervisor == "qemu") {
    return Bad("NORMAL_STOP", stop, "shutdown or stop with HYPERVISOR=qemu (save is Hyper-V's)");
  }
  struct Field {
    const char* key;
    int fallback, min, max;
    int* out;
  };
  int interval = 10, timeout = 5, boot = 300;
  for (const Field& f : {Field{"HEARTBEAT_INTERVAL", 10, 1, 3600, &interval},
                         Field{"HEARTBEAT_TIMEOUT", 5, 1, 3600, &timeout},
                         Field{"HEARTBEAT_FAILURES", 3, 1, 100, &s.heartbeat_failures},
                         Field{"VM_BOOT_TIMEOUT", 300, 1, 86400, &boot},
                         Field{"HEARTBEAT_MAX_RESTARTS", 3, 0, 1000, &s.max_restarts},
                         Field{"VM_MEMORY", 512, 16, 1 << 20, &s.memory_mib},
                         Field{"VM_CPUS", 1, 1, 256, &s.cpus}}) {
    auto n = Number(vars, f.key, f.fallback, f.min, f.max);
    if (!n.ok()) return n.status();
    *f.out = *n;
  }
  s.heartbeat_interval = std::chrono::seconds(interval);
  s.heartbeat_timeout = std::chrono::seconds(timeout);
  s.boot_timeout = std::chrono::seconds(boot);
  s.qemu_binary = Get(vars, "QEMU_BINARY", s.qemu_binary);
  s.accel = Get(vars, "VM_ACCEL", "auto");
  if (s.accel != "auto" && s.accel != "kvm" && s.accel != "tcg") {
    return Bad("VM_ACCEL", s.accel, "auto, kvm or tcg");
  }
  s.disk = Get(vars, "VM_DISK", s.disk);
  if (s.disk.find('/') != std::string::npos || s.disk.find(',') != std::string::npos) {
    return Bad("VM_DISK", s.disk, "a file name in VM_DIR, without '/' or ','");
  }
  s.kernel = Get(vars, "VM_KERNEL");
  s.initrd = Get(vars, "VM_INITRD");
  s.append = Get(vars, "VM_APPEND");
  if (s.kernel.empty() && (!s.initrd.empty() || !s.append.empty())) {
    return Status::InvalidArgument("VM_INITRD and VM_APPEND need VM_KERNEL");
  }
  std::istringstream extra(Get(vars, "VM_QEMU_ARGS"));
  for (std::string a; extra >> a;) s.extra_args.push_back(a);
  return s;
}

}  // namespace hakit::hyperv
