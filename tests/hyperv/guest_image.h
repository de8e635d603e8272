// A tiny Linux guest for the VM tests: Debian's kernel (/boot/vmlinuz-*),
// and an initramfs built here (libarchive: newc cpio, gzip) holding
// busybox-static, the kernel's virtio block and ACPI button modules, and an
// /init that
//   - keeps a log of numbered records on its disk (/dev/vda, raw): record n
//     in sector n ("record n"), the count in sector 0 ("count n"); each
//     record and the count are written with fsync (a virtio flush, so an
//     fdatasync of the image on the host), then "guest: flushed n" goes to
//     the console; at boot it resumes after the last record on the disk
//     ("guest: resuming after record n");
//   - writes "hakit-heartbeat n" twice a second on its second serial port;
//   - powers off cleanly (sync, poweroff) when the ACPI power button is
//     pressed ("guest: power button").
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::hyperv::testing {

struct GuestImage {
  std::filesystem::path kernel;
  std::filesystem::path initrd;
  std::string append = "console=ttyS0 quiet panic=-1";
};

// Why the VM tests cannot run here (no qemu-system-x86_64, no kernel, no
// busybox), or ok.
sdk::Status CheckGuestPrerequisites();

// Builds the initramfs into `dir`/guest-initrd.gz.
sdk::Result<GuestImage> BuildGuestImage(const std::filesystem::path& dir);

// The records "record n" found in a raw disk image, in sector order
// (sector n holds record n when nothing is lost), and the count in sector 0.
struct DiskRecords {
  long count = -1;            // sector 0's count, -1 when absent
  std::vector<long> records;  // record numbers, sector 1 onwards, until the first empty sector
};
DiskRecords ReadDiskRecords(const std::filesystem::path& image);

// The highest n of "guest: flushed n" in a console log, or 0.
long LastFlushed(const std::filesystem::path& console_log);

}  // namespace hakit::hyperv::testing
