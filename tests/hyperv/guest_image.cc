#include "guest_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

namespace hakit::hyperv::testing {

namespace fs = std::filesystem;
using sdk::Result;
using sdk::Status;

namespace {

const char* kBusybox = "/bin/busybox";
// Load order follows modinfo's dependencies.
const char* kModules[] = {"drivers/virtio/virtio_ring.ko",
                          "drivers/virtio/virtio.ko",
                          "drivers/virtio/virtio_pci_legacy_dev.ko",
                          "drivers/virtio/virtio_pci_modern_dev.ko",
                          "drivers/virtio/virtio_pci.ko",
                          "drivers/block/virtio_blk.ko",
                          "drivers/acpi/button.ko",
                          "drivers/input/evdev.ko"};

const char* kInit = R"INIT(#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk button evdev; do
  insmod /lib/modules/$m.ko
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
for e in /dev/input/event*; do
  (head -c 1 "$e" >/dev/null; echo "guest: power button"; sync; poweroff -f) &
done
c=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | head -n 1)
n=${c#count }
case "$n" in ''|*[!0-9]*) n=0;; esac
while [ "$(dd if=/dev/vda bs=512 skip=$((n+1)) count=1 2>/dev/null | head -c 7)" = "record " ]; do
  n=$((n+1))
done
echo "guest: resuming after record $n"
echo $n > /tmp/count
(while true; do echo "hakit-heartbeat $(cat /tmp/count)" > /dev/ttyS1; sleep 0.5; done) &
while true; do
  n=$((n+1))
  printf 'record %d\n' $n | dd of=/dev/vda bs=512 seek=$n conv=notrunc,fsync 2>/dev/null || { echo "guest: write $n failed"; sleep 1; n=$((n-1)); continue; }
  printf 'count %d\n' $n | dd of=/dev/vda bs=512 seek=0 conv=notrunc,fsync 2>/dev/null || { echo "guest: count $n failed"; sleep 1; continue; }
  echo $n > /tmp/count
  echo "guest: flushed $n"
  sleep 0.1
done
)INIT";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The running kernel's release if Debian's image for it is installed, else
// the newest /boot/vmlinuz-* with its modules.
Result<std::string> KernelRelease() {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/boot", ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("vmlinuz-", 0) != 0) continue;
    std::string release = name.substr(8);
    if (fs::exists("/lib/modules/" + release + "/kernel/drivers/block/virtio_blk.ko")) {
      found.push_back(release);
    }
  }
  if (found.empty()) {
    return Status::NotFound(
        "no /boot/vmlinuz-* with uncompressed virtio_blk.ko (apt-get install linux-image-amd64)");
  }
  std::sort(found.begin(), found.end());
  return found.back();
}

}  // namespace

Status CheckGuestPrerequisites() {
  if (!fs::exists("/usr/bin/qemu-system-x86_64")) {
    return Status::NotFound("qemu-system-x86_64 missing (apt-get install qemu-system-x86)");
  }
  if (!fs::exists(kBusybox))
    return Status::NotFound("busybox missing (apt-get install busybox-static)");
  auto k = KernelRelease();
  return k.status();
}

Result<GuestImage> BuildGuestImage(const fs::path& dir) {
  auto release = KernelRelease();
  if (!release.ok()) return release.status();
  GuestImage g;
  g.kernel = "/boot/vmlinuz-" + *release;
  g.initrd = dir / "guest-initrd.gz";
  std::error_code ec;
  fs::create_directories(dir, ec);

  struct archive* a = archive_write_new();
  archive_write_set_format_cpio_newc(a);
  archive_write_add_filter_gzip(a);
  if (archive_write_open_filename(a, g.initrd.c_str()) != ARCHIVE_OK) {
    Status s =
        Status::IoError("cannot write " + g.initrd.string() + ": " + archive_error_string(a));
    archive_write_free(a);
    return s;
  }
  auto add = [&](const std::string& path, mode_t type, mode_t perm, const std::string& data,
                 dev_t rdev = 0) -> Status {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_size(e, type == AE_IFREG ? static_cast<la_int64_t>(data.size()) : 0);
    if (rdev != 0) archive_entry_set_rdev(e, rdev);
    Status s;
    if (archive_write_header(a, e) != ARCHIVE_OK ||
        (type == AE_IFREG && !data.empty() &&
         archive_write_data(a, data.data(), data.size()) != static_cast<la_ssize_t>(data.size()))) {
      s = Status::IoError("initramfs " + path + ": " + archive_error_string(a));
    }
    archive_entry_free(e);
    return s;
  };
  Status s;
  for (const char* d : {"bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"}) {
    if (s.ok()) s = add(d, AE_IFDIR, 0755, "");
  }
  if (s.ok()) s = add("dev/console", AE_IFCHR, 0600, "", makedev(5, 1));
  if (s.ok()) s = add("bin/busybox", AE_IFREG, 0755, ReadAll(kBusybox));
  if (s.ok()) s = add("init", AE_IFREG, 0755, kInit);
  for (const char* m : kModules) {
    if (!s.ok()) break;
    fs::path from = fs::path("/lib/modules") / *release / "kernel" / m;
    std::string bytes = ReadAll(from);
    if (bytes.empty()) {
      s = Status::NotFound("kernel module " + from.string() + " missing");
      break;
    }
    s = add("lib/modules/" + from.filename().string(), AE_IFREG, 0644, bytes);
  }
  if (archive_write_close(a) != ARCHIVE_OK && s.ok()) {
    s = Status::IoError("closing " + g.initrd.string() + ": " + archive_error_string(a));
  }
  archive_write_free(a);
  if (!s.ok()) return s;
  return g;
}

DiskRecords ReadDiskRecords(const fs::path& image) {
  DiskRecords r;
  std::ifstream in(image, std::ios::binary);
  std::string sector(512, '\0');
  long n = 0;
  while (in.read(sector.data(), 512)) {
    std::string line = sector.substr(0, sector.find('\n'));
    if (n == 0) {
      if (line.rfind("count ", 0) == 0) r.count = std::atol(line.c_str() + 6);
    } else {
      if (line.rfind("record ", 0) != 0) break;
      r.records.push_back(std::atol(line.c_str() + 7));
    }
    ++n;
  }
  return r;
}

long LastFlushed(const fs::path& console_log) {
  std::ifstream in(console_log);
  long last = 0;
  for (std::string line; std::getline(in, line);) {
    auto at = line.find("guest: flushed ");
    if (at != std::string::npos) last = std::max(last, std::atol(line.c_str() + at + 15));
  }
  return last;
}

}  // namespace hakit::hyperv::testing
