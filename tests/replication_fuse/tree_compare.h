// CompareTrees: are two directory trees the same, byte for byte and
// metadata for metadata? For replication tests: the primary's real
// directory against the secondary's (or a local mirror), e.g.
//
//   auto diffs = hakit::testing::CompareTrees(primary_dir, secondary_dir);
//   EXPECT_TRUE(diffs.empty()) << hakit::testing::JoinDifferences(diffs);
//
// Compared for every entry (the roots included): type, permission bits
// (07777), uid, gid, link count, hard-link structure (names sharing an inode
// on one side share one on the other), size and bytes of regular files
// (holes read as zeros, so a sparse file and a dense one with the same
// bytes are equal; only the data extents are read, so a sparse 5 GiB file
// is cheap), symbolic link targets, extended attributes, and mtime where
// asked. Not compared: atime, ctime, inode numbers, and mtime by default
// (a write stamps each side with its own clock).
//
// Header-only, POSIX calls only, no dependency beyond the C++ library.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hakit::testing {

struct TreeCompareOptions {
  // Compare the mtime of every entry. Default off.
  bool compare_all_mtimes = false;
  // Relative paths ("" is the root) whose mtime must match: those set
  // explicitly with utimensat.
  std::set<std::string> mtime_paths;
  // Compare extended attributes (both sides' file systems must support
  // them). Default on.
  bool compare_xattrs = true;
  // Relative paths left out, with everything below them.
  std::set<std::string> ignore;
  // Stop after this many differences.
  std::size_t max_differences = 25;
};

namespace tree_compare_internal {

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The root as "dir/." so that a root given as a link (/proc/self/fd/N)
// is looked at through, never at.
inline std::string Join(const std::string& dir, const std::string& rel) {
  return dir + "/" + (rel.empty() ? std::string(".") : rel);
}

inline std::string Display(const std::string& rel) { return rel.empty() ? "." : rel; }

// Sorted names in a directory, without "." and "..". False if unreadable.
inline bool ListDir(const std::string& path, std::vector<std::string>* names) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return false;
  while (struct dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names->push_back(e->d_name);
  }
  ::closedir(dir);
  std::sort(names->begin(), names->end());
  return true;
}

// The byte ranges that may hold data, from SEEK_DATA/SEEK_HOLE (the whole
// file where the file system cannot tell).
inline std::vector<std::pair<off_t, off_t>> DataExtents(int fd, off_t size) {
  std::vector<std::pair<off_t, off_t>> extents;
  off_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      extents.assign(1, {0, size});
      return extents;
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    extents.push_back({data, std::min(hole, size)});
    pos = hole;
  }
  return extents;
}

inline std::vector<std::pair<off_t, off_t>> Union(std::vector<std::pair<off_t, off_t>> a,
                                                  const std::vector<std::pair<off_t, off_t>>& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  std::vector<std::pair<off_t, off_t>> merged;
  for (const auto& r : a) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

// "" when equal, else where they first differ. `ba` and `bb` are scratch
// buffers, reused from file to file.
inline std::string CompareContents(const std::string& pa, const std::string& pb, off_t size,
                                   std::vector<char>& ba, std::vector<char>& bb) {
  ScopedFd a(::open(pa.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  ScopedFd b(::open(pb.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (a.get() < 0 || b.get() < 0) return std::string("cannot open: ") + std::strerror(errno);
  auto ranges = Union(DataExtents(a.get(), size), DataExtents(b.get(), size));
  constexpr std::size_t kChunk = 1 << 20;
  if (ba.size() < kChunk) ba.resize(kChunk);
  if (bb.size() < kChunk) bb.resize(kChunk);
  for (const auto& [begin, end] : ranges) {
    for (off_t pos = begin; pos < end;) {
      std::size_t want = static_cast<std::size_t>(std::min<off_t>(end - pos, kChunk));
      ssize_t na = ::pread(a.get(), ba.data(), want, pos);
      ssize_t nb = ::pread(b.get(), bb.data(), want, pos);
      if (na != static_cast<ssize_t>(want) || nb != static_cast<ssize_t>(want)) {
        return "short read at offset " + std::to_string(pos);
      }
      if (std::memcmp(ba.data(), bb.data(), want) != 0) {
        std::size_t i = 0;
        while (ba[i] == bb[i]) ++i;
        return "bytes differ at offset " + std::to_string(pos + static_cast<off_t>(i)) +
               " (" + std::to_string(static_cast<unsigned char>(ba[i])) + " vs " +
               std::to_string(static_cast<unsigned char>(bb[i])) + ")";
      }
      pos += static_cast<off_t>(want);
    }
  }
  return "";
}

inline bool ReadXattrs(const std::string& path, std::map<std::string, std::string>* out) {
  ssize_t len = ::llistxattr(path.c_str(), nullptr, 0);
  if (len < 0) return errno == ENOTSUP;  // no xattrs there at all
  std::string names(static_cast<std::size_t>(len), '\0');
  len = ::llistxattr(path.c_str(), names.data(), names.size());
  if (len < 0) return false;
  names.resize(static_cast<std::size_t>(len));
  for (std::size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty()) continue;
    ssize_t vlen = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (vlen < 0) return false;
    std::string value(static_cast<std::size_t>(vlen), '\0');
    vlen = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (vlen < 0) return false;
    value.resize(static_cast<std::size_t>(vlen));
    (*out)[name] = value;
  }
  return true;
}

inline std::string ReadLink(const std::string& path) {
  std::string target(4096, '\0');
  ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
  if (n < 0) return "<unreadable: " + std::string(std::strerror(errno)) + ">";
  target.resize(static_cast<std::size_t>(n));
  return target;
}

inline const char* TypeName(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char device";
    case S_IFBLK: return "block device";
  }
  return "unknown";
}

inline std::string Octal(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", v);
  return buf;
}

inline std::string Time(const timespec& t) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}

class Comparer {
 public:
  Comparer(std::string a, std::string b, const TreeCompareOptions& options)
      : a_(std::move(a)), b_(std::move(b)), options_(options) {}

  std::vector<std::string> Run() {
    Entry("");
    return std::move(diffs_);
  }

 private:
  bool Full() const { return diffs_.size() >= options_.max_differences; }

  void Diff(const std::string& rel, const std::string& what) {
    if (!Full()) diffs_.push_back(Display(rel) + ": " + what);
  }

  // The first name seen for an inode with several links, per side.
  std::string FirstName(std::map<std::pair<dev_t, ino_t>, std::string>* names,
                        const struct stat& st, const std::string& rel) {
    auto [it, inserted] = names->emplace(std::make_pair(st.st_dev, st.st_ino), rel);
    return it->second;
  }

  void Entry(const std::string& rel) {
    if (Full() || options_.ignore.count(rel)) return;
    std::string pa = Join(a_, rel), pb = Join(b_, rel);
    struct stat sa{}, sb{};
    bool has_a = ::lstat(pa.c_str(), &sa) == 0;
    bool has_b = ::lstat(pb.c_str(), &sb) == 0;
    if (!has_a || !has_b) {
      if (has_a) Diff(rel, "only in " + a_);
      if (has_b) Diff(rel, "only in " + b_);
      return;
    }
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
      Diff(rel, std::string("type ") + TypeName(sa.st_mode) + " vs " + TypeName(sb.st_mode));
      return;
    }
    if ((sa.st_mode & 07777) != (sb.st_mode & 07777)) {
      Diff(rel, "mode " + Octal(sa.st_mode & 07777) + " vs " + Octal(sb.st_mode & 07777));
    }
    if (sa.st_uid != sb.st_uid) {
      Diff(rel, "uid " + std::to_string(sa.st_uid) + " vs " + std::to_string(sb.st_uid));
    }
    if (sa.st_gid != sb.st_gid) {
      Diff(rel, "gid " + std::to_string(sa.st_gid) + " vs " + std::to_string(sb.st_gid));
    }
    if (sa.st_nlink != sb.st_nlink) {
      Diff(rel, "link count " + std::to_string(sa.st_nlink) + " vs " +
                    std::to_string(sb.st_nlink));
    }
    if (!S_ISDIR(sa.st_mode) && sa.st_nlink > 1) {
      std::string fa = FirstName(&links_a_, sa, rel), fb = FirstName(&links_b_, sb, rel);
      if (fa != fb) Diff(rel, "hard link of " + Display(fa) + " vs of " + Display(fb));
    }
    if ((options_.compare_all_mtimes || options_.mtime_paths.count(rel)) &&
        (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec || sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)) {
      Diff(rel, "mtime " + Time(sa.st_mtim) + " vs " + Time(sb.st_mtim));
    }
    if (options_.compare_xattrs) {
      std::map<std::string, std::string> xa, xb;
      bool ok_a = ReadXattrs(pa, &xa), ok_b = ReadXattrs(pb, &xb);
      if (!ok_a || !ok_b) {
        Diff(rel, "cannot read xattrs");
      } else if (xa != xb) {
        std::string names;
        for (const auto& [k, v] : xa) names += " " + k;
        names += " |";
        for (const auto& [k, v] : xb) names += " " + k;
        Diff(rel, "xattrs differ:" + names);
      }
    }
    if (S_ISREG(sa.st_mode)) {
      if (sa.st_size != sb.st_size) {
        Diff(rel, "size " + std::to_string(sa.st_size) + " vs " + std::to_string(sb.st_size));
      } else {
        std::string c = CompareContents(pa, pb, sa.st_size, buf_a_, buf_b_);
        if (!c.empty()) Diff(rel, c);
      }
    } else if (S_ISLNK(sa.st_mode)) {
      std::string ta = ReadLink(pa), tb = ReadLink(pb);
      if (ta != tb) Diff(rel, "link target \"" + ta + "\" vs \"" + tb + "\"");
    } else if (S_ISDIR(sa.st_mode)) {
      std::vector<std::string> na, nb;
      if (!ListDir(pa, &na) || !ListDir(pb, &nb)) {
        Diff(rel, "cannot list");
        return;
      }
      std::set<std::string> all(na.begin(), na.end());
      all.insert(nb.begin(), nb.end());
      for (const std::string& name : all) Entry(rel.empty() ? name : rel + "/" + name);
    }
  }

  std::string a_, b_;
  const TreeCompareOptions& options_;
  std::vector<std::string> diffs_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_a_, links_b_;
  std::vector<char> buf_a_, buf_b_;
};

}  // namespace tree_compare_internal

// One line per difference, "relative/path: what differs"; empty when the
// trees are the same.
inline std::vector<std::string> CompareTrees(const std::string& a, const std::string& b,
                                             const TreeCompareOptions& options = {}) {
  return tree_compare_internal::Comparer(a, b, options).Run();
}

inline std::string JoinDifferences(const std::vector<std::string>& diffs) {
  std::string out;
  for (const std::string& d : diffs) out += "  " + d + "\n";
  return out;
}

}  // namespace hakit::testing
