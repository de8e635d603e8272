#include "hakit/replication/manifest.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "byte_codec.h"

namespace hakit::replication {

using sdk::Result;
using sdk::Status;

ZoneHash HashZone(const void* data, std::size_t size) {
  unsigned char full[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data, size, full, &n, EVP_sha256(), nullptr);
  ZoneHash h{};
  std::memcpy(h.data(), full, h.size());
  return h;
}

bool ManifestEntry::IsDir() const { return S_ISDIR(mode); }
bool ManifestEntry::IsRegular() const { return S_ISREG(mode); }
bool ManifestEntry::IsSymlink() const { return S_ISLNK(mode); }

Result<std::vector<ZoneHash>> HashFileZones(int fd, std::uint64_t size, std::size_t zone_size) {
  std::vector<ZoneHash> zones;
  std::string buf(zone_size, '\0');
  for (std::uint64_t off = 0; off < size; off += zone_size) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(zone_size, size - off));
    std::size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(off + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::IoError(std::string("read: ") + std::strerror(errno));
      if (n == 0) break;  // shrank meanwhile: hash what is there
      got += static_cast<std::size_t>(n);
    }
    zones.push_back(HashZone(buf.data(), got));
    if (got < want) break;
  }
  return zones;
}

namespace {

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

Status Describe(int dir_fd, const std::string& rel, std::size_t zone_size, bool hash, int depth,
                const std::function<Status(ManifestEntry&&)>& sink) {
  if (depth > 4096) return Status::IoError(rel + ": directory nesting too deep");
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("open " + rel + ": " + std::strerror(errno));
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return Status::IoError("opendir " + rel + ": " + std::strerror(errno));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, ::closedir);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string path = Join(rel, name);
    struct stat st{};
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // removed meanwhile
      return Status::IoError("stat " + path + ": " + std::strerror(errno));
    }
    ManifestEntry e;
    e.path = path;
    e.mode = st.st_mode;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.size = static_cast<std::uint64_t>(st.st_size);
    e.nlink = st.st_nlink;
    e.mtime = st.st_mtim;
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlinkat(::dirfd(d), name.c_str(), target.data(), target.size());
      if (n < 0) return Status::IoError("readlink " + path + ": " + std::strerror(errno));
      target.resize(static_cast<std::size_t>(n));
      e.target = std::move(target);
    } else if (S_ISREG(st.st_mode) && hash) {
      int f = ::openat(::dirfd(d), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (f < 0) return Status::IoError("open " + path + ": " + std::strerror(errno));
      auto zones = HashFileZones(f, e.size, zone_size);
      ::close(f);
      if (!zones.ok()) return zones.status().WithContext(path);
      e.zones = std::move(*zones);
    }
    const bool is_dir = S_ISDIR(st.st_mode);
    if (Status s = sink(std::move(e)); !s.ok()) return s;
    if (is_dir) {
      int sub = ::openat(::dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        if (errno == ENOENT) continue;
        return Status::IoError("open " + path + ": " + std::strerror(errno));
      }
      Status s = Describe(sub, path, zone_size, hash, depth + 1, sink);
      ::close(sub);
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

}  // namespace

Status DescribeTree(int root_fd, std::size_t zone_size,
                    const std::function<Status(ManifestEntry&&)>& sink, bool hash_zones) {
  if (zone_size == 0) return Status::InvalidArgument("zone size 0");
  struct stat st{};
  if (::fstat(root_fd, &st) != 0) return Status::IoError(std::string("stat: ") + std::strerror(errno));
  ManifestEntry root;
  root.mode = st.st_mode;
  root.uid = st.st_uid;
  root.gid = st.st_gid;
  root.mtime = st.st_mtim;
  if (Status s = sink(std::move(root)); !s.ok()) return s;
  return Describe(root_fd, "", zone_size, hash_zones, 0, sink);
}

void EncodeManifestEntry(const ManifestEntry& e, std::string* out) {
  PutStr(out, e.path);
  PutU32(out, e.mode);
  PutU64(out, static_cast<std::uint64_t>(e.uid));
  PutU64(out, static_cast<std::uint64_t>(e.gid));
  PutU64(out, e.size);
  PutU64(out, e.nlink);
  PutU64(out, static_cast<std::uint64_t>(e.mtime.tv_sec));
  PutU64(out, static_cast<std::uint64_t>(e.mtime.tv_nsec));
  PutStr(out, e.target);
  PutU32(out, static_cast<std::uint32_t>(e.zones.size()));
  for (const auto& z : e.zones) out->append(reinterpret_cast<const char*>(z.data()), z.size());
  PutU32(out, static_cast<std::uint32_t>(e.suspect.size()));
  for (std::uint64_t z : e.suspect) PutU64(out, z);
}

Status DecodeManifestEntries(std::string_view data, std::vector<ManifestEntry>* out) {
  BytesIn in(data);
  while (!in.done()) {
    ManifestEntry e;
    std::uint64_t uid = 0, gid = 0, sec = 0, nsec = 0;
    std::uint32_t zones = 0;
    bool ok = in.Str(&e.path, 4096) && in.U32(&e.mode) && in.U64(&uid) && in.U64(&gid) &&
              in.U64(&e.size) && in.U64(&e.nlink) && in.U64(&sec) && in.U64(&nsec) && in.Str(&e.target, 4096) &&
              in.U32(&zones);
    if (!ok || zones > data.size() / sizeof(ZoneHash)) {
      return Status::Corruption("malformed tree description after " +
                                std::to_string(out->size()) + " entries");
    }
    e.uid = static_cast<std::int64_t>(uid);
    e.gid = static_cast<std::int64_t>(gid);
    e.mtime.tv_sec = static_cast<time_t>(sec);
    e.mtime.tv_nsec = static_cast<long>(nsec);
    e.zones.resize(zones);
    for (auto& z : e.zones) {
      if (!in.Raw(z.data(), z.size())) {
        return Status::Corruption("malformed tree description: zone hashes of " + e.path +
                                  " cut short");
      }
    }
    std::uint32_t suspect = 0;
    if (!in.U32(&suspect) || suspect > data.size() / 8) {
      return Status::Corruption("malformed tree description: suspect zones of " + e.path);
    }
    e.suspect.resize(suspect);
    for (auto& z : e.suspect) {
      if (!in.U64(&z)) {
        return Status::Corruption("malformed tree description: suspect zones of " + e.path +
                                  " cut short");
      }
    }
    out->push_back(std::move(e));
  }
  return Status::Ok();
}

void Manifest::Add(ManifestEntry entry) {
  if (!entry.path.empty()) {
    std::size_t slash = entry.path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : entry.path.substr(0, slash);
    std::string name = slash == std::string::npos ? entry.path : entry.path.substr(slash + 1);
    children_[parent].push_back(std::move(name));
  }
  std::string key = entry.path;
  entries_[key] = std::move(entry);
}

const ManifestEntry* Manifest::Find(const std::string& path) const {
  auto it = entries_.find(path);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> Manifest::Children(const std::string& path) const {
  auto it = children_.find(path);
  if (it == children_.end()) return {};
  std::vector<std::string> names = it->second;
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace hakit::replication
