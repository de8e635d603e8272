#include "hakit/hyperv/qemu_hypervisor.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "hakit/hyperv/qmp_client.h"
#include "hakit/module_util/commands.h"

namespace hakit::hyperv {

namespace fs = std::filesystem;
using sdk::Result;
using sdk::Status;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::chrono::milliseconds OrDefault(std::chrono::milliseconds t, std::chrono::milliseconds d) {
  return t.count() > 0 ? t : d;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

QemuHypervisor::QemuHypervisor(VmSettings settings, std::string runtime_dir)
    : settings_(std::move(settings)), runtime_dir_(std::move(runtime_dir)) {}

bool QemuHypervisor::KvmUsable() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
  if (ok) {
    int vm = ::ioctl(fd, KVM_CREATE_VM, 0);
    ok = vm >= 0;
    if (vm >= 0) ::close(vm);
  }
  ::close(fd);
  return ok;
}

std::string QemuHypervisor::Accelerator() const {
  if (settings_.accel != "auto") return settings_.accel;
  return KvmUsable() ? "kvm" : "tcg";
}

std::vector<std::string> QemuHypervisor::Argv(const std::string& accel) const {
  // One option and its value per line.
  // clang-format off
  std::vector<std::string> a = {
      settings_.qemu_binary,
      "-name", settings_.name,
      "-accel", accel,
      "-m", std::to_string(settings_.memory_mib),
      "-smp", std::to_string(settings_.cpus),
      "-nodefaults", "-no-user-config", "-display", "none",
      "-drive", "file=" + DiskPath() + ",format=raw,if=virtio,cache=writeback",
      "-chardev", "file,id=hakit_console,path=" + ConsoleLog() + ",append=on",
      "-serial", "chardev:hakit_console",
      "-chardev", "socket,id=hakit_hb,path=" + HeartbeatSocket() + ",server=on,wait=off",
      "-serial", "chardev:hakit_hb",
      "-qmp", "unix:" + QmpSocket() + ",server=on,wait=off",
      "-pidfile", PidFile(),
      "-daemonize"};
  // clang-format on
  if (!settings_.kernel.empty()) {
    a.insert(a.end(), {"-kernel", settings_.kernel});
    if (!settings_.initrd.empty()) a.insert(a.end(), {"-initrd", settings_.initrd});
    if (!settings_.append.empty()) a.insert(a.end(), {"-append", settings_.append});
  }
  a.insert(a.end(), settings_.extra_args.begin(), settings_.extra_args.end());
  return a;
}

std::string QemuHypervisor::Definition() const {
  std::string d;
  for (const auto& arg : Argv(Accelerator())) d += arg + "\n";
  return d;
}

std::optional<pid_t> QemuHypervisor::Pid() const {
  std::ifstream in(PidFile());
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return std::nullopt;
  std::string stat = ReadText("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) S ...": a zombie or a recycled pid is not our VM.
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] == 'Z') {
    return std::nullopt;
  }
  std::string cmdline = ReadText("/proc/" + std::to_string(pid) + "/cmdline");
  if (cmdline.find(PidFile()) == std::string::npos) return std::nullopt;
  return static_cast<pid_t>(pid);
}

Result<bool> QemuHypervisor::IsRegistered(sdk::HostContext&) {
  std::error_code ec;
  if (!fs::exists(DefinitionFile(), ec)) return false;
  return ReadText(DefinitionFile()) == Definition();
}

Status QemuHypervisor::Register(sdk::HostContext& host) {
  std::error_code ec;
  if (!fs::is_regular_file(DiskPath(), ec)) {
    return Status::NotFound(Describe() + ": disk image " + DiskPath() +
                            " is missing (VM_DIR/VM_DISK)");
  }
  for (const std::string& f : {settings_.kernel, settings_.initrd}) {
    if (!f.empty() && !fs::is_regular_file(f, ec)) {
      return Status::NotFound(Describe() + ": " + f + " is missing (VM_KERNEL/VM_INITRD)");
    }
  }
  fs::create_directories(runtime_dir_, ec);
  std::ofstream out(DefinitionFile(), std::ios::trunc);
  out << Definition();
  if (!out.flush()) return Status::IoError("cannot write " + DefinitionFile());
  host.Log(sdk::LogLevel::kInfo, Describe() + " registered on " + std::string(host.node_name()) +
                                     " (disk " + DiskPath() + ")");
  return Status::Ok();
}

Result<bool> QemuHypervisor::IsRunning(sdk::HostContext&) { return Pid().has_value(); }

Status QemuHypervisor::Start(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  timeout = OrDefault(timeout, 60s);
  const auto deadline = Clock::now() + timeout;
  if (Pid()) return Status::Ok();
  std::error_code ec;
  for (const auto& stale : {QmpSocket(), HeartbeatSocket(), PidFile()}) fs::remove(stale, ec);
  fs::create_directories(runtime_dir_, ec);
  const std::string accel = Accelerator();
  sdk::Command c;
  c.argv = Argv(accel);
  c.timeout = timeout;
  c.working_dir = runtime_dir_;
  host.Log(sdk::LogLevel::kInfo, "starting " + Describe() + " with " + accel +
                                     (accel == "tcg" ? " (software emulation)" : ""));
  sdk::CommandResult r = host.RunCommand(c);
  if (!r.ok()) {
    return Status::Failed(Describe() + ": " + settings_.qemu_binary + " " +
                          module_util::CommandOutcome(r) + " (its messages are in the user log)");
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto qmp = QmpClient::Connect(QmpSocket(), std::max(left, 1000ms));
  if (!qmp.ok()) return qmp.status().WithContext(Describe() + " started but");
  auto st = (*qmp)->Execute("query-status");
  if (!st.ok()) return st.status().WithContext(Describe());
  if (!st->value("running", false)) {
    return Status::Failed(Describe() + " is " + st->value("status", "?") + ", not running");
  }
  host.Log(sdk::LogLevel::kInfo, Describe() + " running, pid " + std::to_string(Pid().value_or(0)));
  return Status::Ok();
}

bool QemuHypervisor::WaitGone(std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  while (Pid()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

Status QemuHypervisor::Stop(sdk::HostContext& host, StopMode mode,
                            std::chrono::milliseconds timeout) {
  timeout = OrDefault(timeout, 300s);
  if (!Pid()) return Status::Ok();
  if (mode == StopMode::kSave) {
    return Status::Unsupported(Describe() + ": NORMAL_STOP=save is not supported with qemu");
  }
  if (mode == StopMode::kStop) return TurnOff(host, timeout);
  auto qmp = QmpClient::Connect(QmpSocket(), 5s);
  if (!qmp.ok()) return qmp.status().WithContext(Describe() + " shutdown");
  auto r = (*qmp)->Execute("system_powerdown");
  if (!r.ok()) return r.status().WithContext(Describe() + " shutdown");
  host.Log(sdk::LogLevel::kInfo, Describe() + ": ACPI power button pressed, waiting for the guest");
  auto t0 = Clock::now();
  if (!WaitGone(timeout)) {
    return Status::Timeout(Describe() + " still runs " + std::to_string(timeout.count()) +
                           " ms after the power button");
  }
  host.Log(
      sdk::LogLevel::kInfo,
      Describe() + " shut down by its guest after " +
          std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()) +
          " ms");
  return Status::Ok();
}

Status QemuHypervisor::TurnOff(sdk::HostContext& host, std::chrono::milliseconds timeout) {
  auto pid = Pid();
  if (!pid) return Status::Ok();
  auto qmp = QmpClient::Connect(QmpSocket(), 2s);
  if (qmp.ok()) (*qmp)->Quit(2s);
  if (!WaitGone(3s)) {
    host.Log(sdk::LogLevel::kWarning, Describe() + ": QMP quit did not end pid " +
                                          std::to_string(*pid) + ", sending SIGKILL");
    ::kill(*pid, SIGKILL);
    if (!WaitGone(5s))
      return Status::Failed(Describe() + ": pid " + std::to_string(*pid) + " survives SIGKILL");
  }
  host.Log(sdk::LogLevel::kInfo, Describe() + " turned off");
  return Status::Ok();
}

Status QemuHypervisor::Heartbeat(sdk::HostContext&, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!Pid()) return Status::Failed(Describe() + " does not run");
  auto fd = ConnectUnix(HeartbeatSocket(), timeout);
  if (!fd.ok()) return fd.status().WithContext(Describe() + " heartbeat");
  // The first line may have waited in a buffer since before a hang: only a
  // second one proves the guest is alive now.
  int lines = 0;
  std::string buf;
  Status result = Status::Timeout(Describe() + ": no guest heartbeat within " +
                                  std::to_string(timeout.count()) + " ms");
  while (Clock::now() < deadline) {
    pollfd p{*fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long>(0, left.count()))) <= 0) continue;
    char b[512];
    ssize_t n = ::read(*fd, b, sizeof b);
    if (n <= 0) {
      result = Status::Failed(Describe() + ": heartbeat channel closed");
      break;
    }
    buf.append(b, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      if (buf.find("hakit-heartbeat") < nl) ++lines;
      buf.erase(0, nl + 1);
    }
    if (lines >= 2) {
      result = Status::Ok();
      break;
    }
  }
  ::close(*fd);
  return result;
}

}  // namespace hakit::hyperv
