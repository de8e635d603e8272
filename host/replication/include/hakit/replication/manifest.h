// Manifest: a description of a replicated directory's tree (every entry's
// type, permissions, owner, size, modification time, link target, and for
// regular files a hash of each fixed-size zone), so that a full
// synchronisation sends only the zones and entries that differ.
//
// The secondary builds it on request (kSyncBegin) and sends it to the
// primary in MANIFEST frames; the primary compares it with its own tree
// (sync.h). A zone hash is SHA-256 cut to 16 bytes: a collision between two
// versions of a zone is not a practical concern, and the cut halves the
// manifest.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::replication {

using ZoneHash = std::array<std::uint8_t, 16>;

// The default zone: small enough that scattered small writes resend little,
// large enough that a 2 GiB tree's description stays around 1 MiB.
inline constexpr std::size_t kDefaultZoneSize = 64u << 10;

ZoneHash HashZone(const void* data, std::size_t size);

struct ManifestEntry {
  std::string path;  // relative to the dir; "" is the dir itself
  std::uint32_t mode = 0;  // st_mode: type and permission bits
  std::int64_t uid = -1;
  std::int64_t gid = -1;
  std::uint64_t size = 0;
  std::uint64_t nlink = 1;
  timespec mtime{0, 0};
  std::string target;           // symbolic links
  std::vector<ZoneHash> zones;  // regular files: one per zone, the last one short
  // Zones this copy may hold differently from its last primary (writes in
  // flight when it crashed as primary, hot_zones.h): the primary sends them
  // whatever its record says. Sorted zone indexes.
  std::vector<std::uint64_t> suspect;

  bool IsDir() const;
  bool IsRegular() const;
  bool IsSymlink() const;
};

// Walks the tree below `root_fd` (never following a symbolic link; device
// files are described but never replicated) and hands `sink` every entry,
// parents before their children. A sink error stops the walk and is
// returned; so is an I/O error, naming the path.
// `hash_zones` false: regular files get no zone hashes (nothing is read).
sdk::Status DescribeTree(int root_fd, std::size_t zone_size,
                         const std::function<sdk::Status(ManifestEntry&&)>& sink,
                         bool hash_zones = true);

// The hashes of one regular file's zones, read through `fd` from offset 0
// up to `size`.
sdk::Result<std::vector<ZoneHash>> HashFileZones(int fd, std::uint64_t size,
                                                 std::size_t zone_size);

// The binary form in MANIFEST frames: entries one after another.
void EncodeManifestEntry(const ManifestEntry& entry, std::string* out);
sdk::Status DecodeManifestEntries(std::string_view data, std::vector<ManifestEntry>* out);

// A decoded manifest, indexed for the comparison.
class Manifest {
 public:
  void Add(ManifestEntry entry);
  const ManifestEntry* Find(const std::string& path) const;
  // The names directly inside directory `path`, sorted.
  std::vector<std::string> Children(const std::string& path) const;
  std::size_t size() const { return entries_.size(); }

 private:
  std::map<std::string, ManifestEntry> entries_;
  std::map<std::string, std::vector<std::string>> children_;
};

}  // namespace hakit::replication
