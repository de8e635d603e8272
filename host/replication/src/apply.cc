// ApplyOperation: replays one Operation below the descriptor of a replicated
// directory (on the secondary, and in tests against a mirror directory).
//
// Safety: an operation names a path chosen by the primary, which we do not
// trust to stay inside the tree (a bug, a corrupted frame, a hostile peer).
// Every path is checked lexically (relative, no "." or ".." components) and
// resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) when the
// kernel has it (5.6+), else component by component with O_NOFOLLOW; the
// final component is then acted on with *at() calls that do not follow it.
// A symbolic link is therefore never traversed, inside the tree or out.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/replication/operation.h"

namespace hakit::replication {
namespace {

using sdk::Result;
using sdk::Status;

// Owns one descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string Describe(const Operation& op) {
  std::string s = "apply ";
  s += OpKindName(op.kind);
  s += " \"" + op.path + "\"";
  if (op.kind == OpKind::kRename || op.kind == OpKind::kLink || op.kind == OpKind::kSymlink) {
    s += " -> \"" + op.path2 + "\"";
  }
  return s;
}

Status ErrnoStatus(const Operation& op, const char* call, int err) {
  std::string msg = Describe(op) + ": " + call + ": " + std::strerror(err);
  if (err == ELOOP) msg += " (the path traverses a symbolic link)";
  if (err == EXDEV) msg += " (the path leaves the replicated directory)";
  if (err == ENOENT) return Status::NotFound(msg);
  return Status::IoError(msg);
}

// A replicated path is relative, made of non-empty components that are
// neither "." nor "..". The empty path names the root itself, which only
// some operations accept.
Status CheckPath(const Operation& op, const std::string& path, bool allow_root) {
  if (path.empty()) {
    if (allow_root) return Status::Ok();
    return Status::InvalidArgument(Describe(op) + ": empty path");
  }
  if (path.find('\0') != std::string::npos) {
    return Status::InvalidArgument(Describe(op) + ": path contains a NUL byte");
  }
  if (path.front() == '/') {
    return Status::InvalidArgument(Describe(op) + ": absolute path refused");
  }
  std::string_view rest(path);
  while (true) {
    std::size_t slash = rest.find('/');
    std::string_view component = rest.substr(0, slash);
    if (component.empty() || component == "." || component == "..") {
      return Status::InvalidArgument(Describe(op) + ": path component \"" +
                                     std::string(component) + "\" refused");
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return Status::Ok();
}

std::atomic<bool> g_no_openat2{false};

// Opens `path` (checked by CheckPath, non-empty) below root_fd without
// following any symbolic link. Returns the descriptor or -errno.
int OpenBeneath(int root_fd, const std::string& path, int flags, mode_t mode) {
  flags |= O_CLOEXEC;
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    for (int attempt = 0; attempt < 16; ++attempt) {
      long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
      if (fd >= 0) return static_cast<int>(fd);
      // EAGAIN: a concurrent rename or mount raced the lookup; try again.
      if (errno == EAGAIN) continue;
      if (errno != ENOSYS) return -errno;
      g_no_openat2.store(true, std::memory_order_relaxed);
      break;
    }
    if (!g_no_openat2.load(std::memory_order_relaxed)) return -EAGAIN;
  }
  // Older kernels: walk the directories one at a time, refusing links.
  Fd dir;
  int at = root_fd;
  std::string_view rest(path);
  while (true) {
    std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos) break;
    std::string component(rest.substr(0, slash));
    int next = ::openat(at, component.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) return errno == ENOTDIR ? -ELOOP : -errno;
    dir = Fd(next);
    at = next;
    rest.remove_prefix(slash + 1);
  }
  std::string leaf(rest);
  int fd = ::openat(at, leaf.c_str(), flags | O_NOFOLLOW, mode);
  return fd >= 0 ? fd : -errno;
}

// The directory holding an entry, and the entry's name in it.
struct Parent {
  Fd owned;          // empty when the parent is the root itself
  int dir_fd = -1;   // owned.get() or the root descriptor
  std::string name;  // "." for the root
};

Result<Parent> OpenParent(int root_fd, const Operation& op, const std::string& path) {
  Parent parent;
  if (path.empty()) {
    parent.dir_fd = root_fd;
    parent.name = ".";
    return parent;
  }
  std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    parent.dir_fd = root_fd;
    parent.name = path;
    return parent;
  }
  int fd = OpenBeneath(root_fd, path.substr(0, slash), O_PATH | O_DIRECTORY, 0);
  if (fd < 0) return ErrnoStatus(op, "open parent", -fd);
  parent.owned = Fd(fd);
  parent.dir_fd = fd;
  parent.name = path.substr(slash + 1);
  return parent;
}

// A path for the l*xattr calls that names `name` in `dir_fd` without
// following it: the /proc magic link is only an intermediate component.
std::string ProcPath(int dir_fd, const std::string& name) {
  return "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
}

Status WriteAll(const Operation& op, int fd, const std::string& data, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(op, "pwrite", errno);
    }
    if (n == 0) return ErrnoStatus(op, "pwrite", ENOSPC);
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

uid_t ToUid(std::int64_t v) { return v < 0 ? static_cast<uid_t>(-1) : static_cast<uid_t>(v); }
gid_t ToGid(std::int64_t v) { return v < 0 ? static_cast<gid_t>(-1) : static_cast<gid_t>(v); }
bool HasOwner(const Operation& op) { return op.uid >= 0 || op.gid >= 0; }

// Owner first, mode second: chown clears set-user-ID and set-group-ID bits.
Status SetOwnerAndMode(const Operation& op, int fd) {
  if (HasOwner(op) && ::fchown(fd, ToUid(op.uid), ToGid(op.gid)) != 0) {
    return ErrnoStatus(op, "fchown", errno);
  }
  if (::fchmod(fd, op.mode & 07777) != 0) return ErrnoStatus(op, "fchmod", errno);
  return Status::Ok();
}

Status ApplyCreate(int root_fd, const Operation& op) {
  int flags = O_WRONLY | O_CREAT | (op.flags & O_TRUNC ? O_TRUNC : 0);
  int fd = OpenBeneath(root_fd, op.path, flags, op.mode & 07777);
  if (fd < 0) return ErrnoStatus(op, "open", -fd);
  Fd file(fd);
  return SetOwnerAndMode(op, fd);
}

Status ApplyFileOp(int root_fd, const Operation& op) {
  int fd = OpenBeneath(root_fd, op.path, O_WRONLY, 0);
  if (fd < 0) return ErrnoStatus(op, "open", -fd);
  Fd file(fd);
  switch (op.kind) {
    case OpKind::kWrite:
      return WriteAll(op, fd, op.data, op.offset);
    case OpKind::kTruncate:
      if (::ftruncate(fd, static_cast<off_t>(op.length)) != 0) {
        return ErrnoStatus(op, "ftruncate", errno);
      }
      return Status::Ok();
    case OpKind::kFallocate:
      if (::fallocate(fd, static_cast<int>(op.flags), static_cast<off_t>(op.offset),
                      static_cast<off_t>(op.length)) != 0) {
        return ErrnoStatus(op, "fallocate", errno);
      }
      return Status::Ok();
    default:
      return Status::InvalidArgument(Describe(op) + ": not a file operation");
  }
}

Status ApplyFsync(int root_fd, const Operation& op) {
  if (op.path.empty()) {
    // The whole replicated directory: flush its file system.
    int fd = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(op, "open", errno);
    Fd dir(fd);
    if (::syncfs(fd) != 0) return ErrnoStatus(op, "syncfs", errno);
    return Status::Ok();
  }
  int fd = OpenBeneath(root_fd, op.path, O_RDONLY | O_NONBLOCK, 0);
  if (fd < 0) return ErrnoStatus(op, "open", -fd);
  Fd file(fd);
  int rc = (op.flags & 1) ? ::fdatasync(fd) : ::fsync(fd);
  // FIFOs and sockets have nothing to flush.
  if (rc != 0 && errno != EINVAL) return ErrnoStatus(op, "fsync", errno);
  return Status::Ok();
}

bool SameEntry(int dir_a, const std::string& a, int dir_b, const std::string& b) {
  struct stat sa{}, sb{};
  if (::fstatat(dir_a, a.c_str(), &sa, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (::fstatat(dir_b, b.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool Exists(int dir, const std::string& name) {
  struct stat st{};
  return ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

Status ApplyRename(int root_fd, const Operation& op) {
  auto from = OpenParent(root_fd, op, op.path);
  if (!from.ok()) return from.status();
  auto to = OpenParent(root_fd, op, op.path2);
  if (!to.ok()) return to.status();
  if (::renameat2(from->dir_fd, from->name.c_str(), to->dir_fd, to->name.c_str(), op.flags) == 0) {
    return Status::Ok();
  }
  int err = errno;
  // A replay: the source is gone and the destination is there. (An
  // exchange cannot be recognised as done; it is never replayed blindly.)
  if ((err == ENOENT || err == EEXIST) && !(op.flags & RENAME_EXCHANGE) &&
      !Exists(from->dir_fd, from->name) && Exists(to->dir_fd, to->name)) {
    return Status::Ok();
  }
  return ErrnoStatus(op, "renameat2", err);
}

Status ApplyMkdir(int root_fd, const Operation& op) {
  auto parent = OpenParent(root_fd, op, op.path);
  if (!parent.ok()) return parent.status();
  if (::mkdirat(parent->dir_fd, parent->name.c_str(), op.mode & 07777) != 0 && errno != EEXIST) {
    return ErrnoStatus(op, "mkdirat", errno);
  }
  // O_NOFOLLOW|O_DIRECTORY: an existing non-directory (or link) is an error.
  int fd = ::openat(parent->dir_fd, parent->name.c_str(),
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(op, "open", errno);
  Fd dir(fd);
  return SetOwnerAndMode(op, fd);
}

Status ApplySymlink(int root_fd, const Operation& op) {
  if (op.path2.empty() || op.path2.find('\0') != std::string::npos) {
    return Status::InvalidArgument(Describe(op) + ": bad link target");
  }
  auto parent = OpenParent(root_fd, op, op.path);
  if (!parent.ok()) return parent.status();
  if (::symlinkat(op.path2.c_str(), parent->dir_fd, parent->name.c_str()) != 0) {
    int err = errno;
    if (err != EEXIST) return ErrnoStatus(op, "symlinkat", err);
    // A replay leaves the same link in place; anything else is a conflict.
    std::string target(op.path2.size() + 1, '\0');
    ssize_t n = ::readlinkat(parent->dir_fd, parent->name.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<std::size_t>(n) != op.path2.size() ||
        target.compare(0, op.path2.size(), op.path2) != 0) {
      return ErrnoStatus(op, "symlinkat", err);
    }
  }
  if (HasOwner(op) && ::fchownat(parent->dir_fd, parent->name.c_str(), ToUid(op.uid),
                                 ToGid(op.gid), AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(op, "fchownat", errno);
  }
  return Status::Ok();
}

Status ApplyLink(int root_fd, const Operation& op) {
  auto from = OpenParent(root_fd, op, op.path);
  if (!from.ok()) return from.status();
  auto to = OpenParent(root_fd, op, op.path2);
  if (!to.ok()) return to.status();
  if (::linkat(from->dir_fd, from->name.c_str(), to->dir_fd, to->name.c_str(), 0) == 0) {
    return Status::Ok();
  }
  int err = errno;
  if (err == EEXIST && SameEntry(from->dir_fd, from->name, to->dir_fd, to->name)) {
    return Status::Ok();
  }
  return ErrnoStatus(op, "linkat", err);
}

Status ApplyMknod(int root_fd, const Operation& op) {
  mode_t type = op.mode & S_IFMT;
  if (type != S_IFIFO && type != S_IFSOCK) {
    return Status::InvalidArgument(Describe(op) + ": only FIFOs and sockets are replicated");
  }
  auto parent = OpenParent(root_fd, op, op.path);
  if (!parent.ok()) return parent.status();
  const char* name = parent->name.c_str();
  if (::mknodat(parent->dir_fd, name, type | (op.mode & 07777), 0) != 0) {
    int err = errno;
    struct stat st{};
    if (err != EEXIST || ::fstatat(parent->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        (st.st_mode & S_IFMT) != type) {
      return ErrnoStatus(op, "mknodat", err);
    }
  }
  if (HasOwner(op) &&
      ::fchownat(parent->dir_fd, name, ToUid(op.uid), ToGid(op.gid), AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(op, "fchownat", errno);
  }
  if (::fchmodat(parent->dir_fd, name, op.mode & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(op, "fchmodat", errno);
  }
  return Status::Ok();
}

Status ApplyAttr(int root_fd, const Operation& op) {
  auto parent = OpenParent(root_fd, op, op.path);
  if (!parent.ok()) return parent.status();
  const char* name = parent->name.c_str();
  switch (op.kind) {
    case OpKind::kChmod:
      // AT_SYMLINK_NOFOLLOW: a link is refused (EOPNOTSUPP), never followed.
      if (::fchmodat(parent->dir_fd, name, op.mode & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(op, "fchmodat", errno);
      }
      return Status::Ok();
    case OpKind::kChown:
      if (::fchownat(parent->dir_fd, name, ToUid(op.uid), ToGid(op.gid), AT_SYMLINK_NOFOLLOW) !=
          0) {
        return ErrnoStatus(op, "fchownat", errno);
      }
      return Status::Ok();
    case OpKind::kUtimens: {
      timespec times[2] = {op.atime, op.mtime};
      if (::utimensat(parent->dir_fd, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(op, "utimensat", errno);
      }
      return Status::Ok();
    }
    case OpKind::kSetXattr: {
      if (op.name.empty()) return Status::InvalidArgument(Describe(op) + ": empty xattr name");
      // The value is the truth: XATTR_CREATE/REPLACE succeeded on the
      // primary, so a replay must not fail on them.
      std::string path = ProcPath(parent->dir_fd, parent->name);
      if (::lsetxattr(path.c_str(), op.name.c_str(), op.data.data(), op.data.size(), 0) != 0) {
        return ErrnoStatus(op, "lsetxattr", errno);
      }
      return Status::Ok();
    }
    case OpKind::kRemoveXattr: {
      std::string path = ProcPath(parent->dir_fd, parent->name);
      if (::lremovexattr(path.c_str(), op.name.c_str()) != 0 && errno != ENODATA) {
        return ErrnoStatus(op, "lremovexattr", errno);
      }
      return Status::Ok();
    }
    default:
      return Status::InvalidArgument(Describe(op) + ": not an attribute operation");
  }
}

Status ApplyRemove(int root_fd, const Operation& op) {
  auto parent = OpenParent(root_fd, op, op.path);
  if (!parent.ok()) return parent.status();
  int flags = op.kind == OpKind::kRmdir ? AT_REMOVEDIR : 0;
  // Idempotent: removing what is already gone is done.
  if (::unlinkat(parent->dir_fd, parent->name.c_str(), flags) != 0 && errno != ENOENT) {
    return ErrnoStatus(op, op.kind == OpKind::kRmdir ? "rmdir" : "unlink", errno);
  }
  return Status::Ok();
}

// Removes `name` in `dir_fd` whatever it is, a directory with everything
// below it included; never follows a symbolic link.
Status RemoveTreeAt(const Operation& op, int dir_fd, const std::string& name, int depth) {
  if (depth > 4096) return Status::IoError(Describe(op) + ": directory nesting too deep");
  if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) return Status::Ok();
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus(op, "unlink", errno);
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Status::Ok() : ErrnoStatus(op, "open", errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return ErrnoStatus(op, "fdopendir", errno);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n != "." && n != "..") names.emplace_back(n);
  }
  Status result = Status::Ok();
  for (const auto& n : names) {
    result = RemoveTreeAt(op, ::dirfd(d), n, depth + 1);
    if (!result.ok()) break;
  }
  ::closedir(d);
  if (!result.ok()) return result;
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(op, "rmdir", errno);
  }
  return Status::Ok();
}

Status ApplyRemoveTree(int root_fd, const Operation& op) {
  auto parent = OpenParent(root_fd, op, op.path);
  if (!parent.ok()) {
    // A parent that is missing (or not a directory) holds nothing to remove.
    return parent.status().code() == Status::Code::kNotFound ? Status::Ok() : parent.status();
  }
  return RemoveTreeAt(op, parent->dir_fd, parent->name, 0);
}

bool AcceptsRoot(OpKind kind) {
  switch (kind) {
    case OpKind::kChmod:
    case OpKind::kChown:
    case OpKind::kUtimens:
    case OpKind::kSetXattr:
    case OpKind::kRemoveXattr:
    case OpKind::kFsync:
    case OpKind::kSyncBegin:
    case OpKind::kSyncEnd:
      return true;
    default:
      return false;
  }
}

}  // namespace

sdk::Status ApplyOperation(int root_fd, const Operation& op) {
  Status s = CheckPath(op, op.path, AcceptsRoot(op.kind));
  if (!s.ok()) return s;
  if (op.kind == OpKind::kRename || op.kind == OpKind::kLink) {
    s = CheckPath(op, op.path2, false);
    if (!s.ok()) return s;
  }
  switch (op.kind) {
    case OpKind::kCreate: return ApplyCreate(root_fd, op);
    case OpKind::kWrite:
    case OpKind::kTruncate:
    case OpKind::kFallocate: return ApplyFileOp(root_fd, op);
    case OpKind::kUnlink:
    case OpKind::kRmdir: return ApplyRemove(root_fd, op);
    case OpKind::kRename: return ApplyRename(root_fd, op);
    case OpKind::kMkdir: return ApplyMkdir(root_fd, op);
    case OpKind::kSymlink: return ApplySymlink(root_fd, op);
    case OpKind::kLink: return ApplyLink(root_fd, op);
    case OpKind::kMknod: return ApplyMknod(root_fd, op);
    case OpKind::kChmod:
    case OpKind::kChown:
    case OpKind::kUtimens:
    case OpKind::kSetXattr:
    case OpKind::kRemoveXattr: return ApplyAttr(root_fd, op);
    case OpKind::kFsync: return ApplyFsync(root_fd, op);
    case OpKind::kRemoveTree: return ApplyRemoveTree(root_fd, op);
    // The receiver acts on these itself; as operations they change nothing.
    case OpKind::kSyncBegin:
    case OpKind::kSyncEnd: return Status::Ok();
  }
  return Status::InvalidArgument(Describe(op) + ": unknown operation kind " +
                                 std::to_string(static_cast<int>(op.kind)));
}

}  // namespace hakit::replication
