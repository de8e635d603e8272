// The FUSE passthrough behind Interceptor.
//
// Why the high-level libfuse API: replication is by path, and the high-level
// API hands every callback the current path of its node. It also locks
// paths for the duration of a callback (a rename or unlink of a node waits
// for the callbacks running on that node or below it, and the reverse), so
// the path we put in an Operation is still the file's path when we submit
// it. With the low-level API we would have to rebuild that path tracking
// ourselves. The price is a path string built per request, which is small
// next to the syscalls.
//
// Ordering (what the OperationSink contract asks): every change is applied
// and submitted under one lock, released before waiting for the sink:
//  - data and attribute changes of an existing file (write, truncate,
//    fallocate, chmod, chown, utimens, xattrs) hold a mutex of that inode
//    (keyed by the real st_dev/st_ino, so hard links share it);
//  - namespace changes (create, mkdir, mknod, symlink, link, unlink, rmdir,
//    rename) hold one namespace mutex. They are cheap and short (no wait
//    inside), and one order for all of them is easy to reason about.
// The kernel holds the directory locks of a namespace change until we reply,
// so nobody can see a new name before its operation has been submitted.
//
// O_APPEND: the real descriptor is opened without O_APPEND; an appending
// write takes the file size with fstat() under the inode lock and writes
// there with pwrite(), so the offset we send is where the data landed.
#define FUSE_USE_VERSION 314
#include <fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "hakit/replication/interceptor.h"

namespace hakit::replication {

using sdk::Result;
using sdk::Status;

namespace {

constexpr unsigned kMaxWrite = 1u << 20;       // one FUSE write request at most
constexpr double kPrimaryCacheSeconds = 1.0;   // only we change the primary's tree
constexpr const char* kFsType = "fuse.hakit";

// ---------------------------------------------------------------- locks

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator==(const InodeKey& o) const { return dev == o.dev && ino == o.ino; }
};

struct InodeKeyHash {
  std::size_t operator()(const InodeKey& k) const {
    return std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.ino) * 1000003u ^
                                      static_cast<std::uint64_t>(k.dev));
  }
};

// The ordering mutex of one real inode, counted by its users (open files
// and path operations in progress) and dropped with the last one.
struct InodeLock {
  std::mutex mu;
  int refs = 0;
  InodeKey key{};
};

class InodeLockTable {
 public:
  InodeLock* Acquire(const struct stat& st) {
    InodeKey key{st.st_dev, st.st_ino};
    std::lock_guard<std::mutex> guard(mu_);
    auto& slot = locks_[key];
    if (!slot) {
      slot = std::make_unique<InodeLock>();
      slot->key = key;
    }
    ++slot->refs;
    return slot.get();
  }

  void Release(InodeLock* lock) {
    std::lock_guard<std::mutex> guard(mu_);
    if (--lock->refs == 0) locks_.erase(lock->key);
  }

 private:
  std::mutex mu_;
  std::unordered_map<InodeKey, std::unique_ptr<InodeLock>, InodeKeyHash> locks_;
};

// ---------------------------------------------------------------- handles

// fuse_file_info::fh points at one of these; both start with their kind.
enum class HandleKind : std::uint8_t { kFile, kDir };

struct FileHandle {
  HandleKind kind = HandleKind::kFile;
  int fd = -1;
  bool append = false;
  InodeLock* lock = nullptr;  // set for descriptors that may change the file
};

struct DirHandle {
  HandleKind kind = HandleKind::kDir;
  DIR* dir = nullptr;
  off_t offset = 0;
  struct dirent* entry = nullptr;  // read but not yet given to the kernel
};

FileHandle* FileOf(const fuse_file_info* fi) {
  if (fi == nullptr || fi->fh == 0) return nullptr;
  auto* kind = reinterpret_cast<HandleKind*>(static_cast<std::uintptr_t>(fi->fh));
  if (*kind != HandleKind::kFile) return nullptr;
  return reinterpret_cast<FileHandle*>(static_cast<std::uintptr_t>(fi->fh));
}

DirHandle* DirOf(const fuse_file_info* fi) {
  if (fi == nullptr || fi->fh == 0) return nullptr;
  auto* kind = reinterpret_cast<HandleKind*>(static_cast<std::uintptr_t>(fi->fh));
  if (*kind != HandleKind::kDir) return nullptr;
  return reinterpret_cast<DirHandle*>(static_cast<std::uintptr_t>(fi->fh));
}

// ---------------------------------------------------------------- mounts

struct MountEntry {
  std::string mount_point;
  std::string fstype;
  unsigned major = 0;
  unsigned minor = 0;
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountField(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The most recent mount whose mount point is exactly `path` (the one on
// top, if mounts are stacked). Reads /proc only: it never calls into a
// file system, so it cannot hang on a dead or busy FUSE mount.
bool FindTopMount(const std::string& path, MountEntry* out) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devs, root, point;
    if (!(fields >> id >> parent >> devs >> root >> point)) continue;
    if (UnescapeMountField(point) != path) continue;
    std::string word, fstype;
    while (fields >> word) {
      if (word == "-") {
        fields >> fstype;
        break;
      }
    }
    MountEntry entry;
    entry.mount_point = path;
    entry.fstype = fstype;
    std::sscanf(devs.c_str(), "%u:%u", &entry.major, &entry.minor);
    *out = entry;
    found = true;
  }
  return found;
}

bool IsFuseType(const std::string& fstype) {
  return fstype == "fuse" || fstype.rfind("fuse.", 0) == 0 || fstype == "fuseblk";
}

// realpath() of the parent plus the last component: the directory itself
// may be a dead mount that fails every lookup with ENOTCONN.
Result<std::string> CanonicalMountPoint(const std::string& dir) {
  if (dir.empty()) return Status::InvalidArgument("replicated dir: empty path");
  std::string trimmed = dir;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  std::size_t slash = trimmed.rfind('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : trimmed.substr(0, slash));
  std::string leaf = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  if (leaf.empty() || leaf == "." || leaf == "..") {
    char* real = ::realpath(trimmed.c_str(), nullptr);
    if (real == nullptr) {
      return Status::IoError("replicated dir " + dir + ": " + std::strerror(errno));
    }
    std::string result(real);
    std::free(real);
    return result;
  }
  char* real = ::realpath(parent.c_str(), nullptr);
  if (real == nullptr) {
    return Status::NotFound("replicated dir " + dir + ": parent: " + std::strerror(errno));
  }
  std::string result(real);
  std::free(real);
  if (result != "/") result += "/";
  result += leaf;
  // A link is mounted over where it points: name that place.
  struct stat st{};
  if (::lstat(result.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    real = ::realpath(result.c_str(), nullptr);
    if (real == nullptr) {
      return Status::NotFound("replicated dir " + dir + ": " + std::strerror(errno));
    }
    result = real;
    std::free(real);
  }
  return result;
}

mode_t ReadProcessUmask() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
  }
  return 022;
}

// Every open file through the mount holds one real descriptor.
void RaiseDescriptorLimit() {
  struct rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

// ---------------------------------------------------------------- state

struct Interceptor::State {
  std::string dir;  // canonical mount point
  Mode mode = Mode::kPrimary;
  bool read_only = false;
  OperationSink* sink = nullptr;
  bool xattrs = false;
  int threads = 8;

  int real_fd = -1;        // the directory underneath, opened before mounting
  int mount_root_fd = -1;  // O_PATH on the mount's root: wakes the loop at unmount
  unsigned mount_major = 0;
  unsigned mount_minor = 0;
  mode_t process_umask = 022;

  struct fuse* fuse = nullptr;
  std::thread loop;
  std::mutex unmount_mu;
  bool mounted = false;

  InodeLockTable inode_locks;
  std::mutex namespace_mu;

  // Every change holds this shared from its apply to its acknowledgement;
  // RunExclusive() holds it alone. Writer-preferring, so that a steady
  // stream of changes cannot starve a synchronisation step.
  pthread_rwlock_t change_lock;
  State() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&change_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
  }

  // Open handles, so that Unmount() can close the real descriptors of
  // files that applications still held (no release comes after an abort).
  std::mutex handles_mu;
  std::unordered_set<FileHandle*> files;
  std::unordered_set<DirHandle*> dirs;

  std::atomic<std::uint64_t> operations{0};
  std::atomic<std::uint64_t> bytes_written{0};
  std::atomic<std::uint64_t> replication_errors{0};
  std::atomic<std::uint64_t> unreplicated_changes{0};

  ~State() {
    pthread_rwlock_destroy(&change_lock);
    if (mount_root_fd >= 0) ::close(mount_root_fd);
    if (real_fd >= 0) ::close(real_fd);
  }
};

namespace {

using State = Interceptor::State;

State* Self() { return static_cast<State*>(fuse_get_context()->private_data); }

// "/a/b" -> "a/b" for *at() calls on the real directory; the root is ".".
const char* Rel(const char* path) { return path[1] != '\0' ? path + 1 : "."; }

// "/a/b" -> "a/b" for an Operation; the root is "".
std::string OpPath(const char* path) { return std::string(path + 1); }

std::string ParentRel(const char* path) {
  std::string_view p(path + 1);
  std::size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? std::string(".") : std::string(p.substr(0, slash));
}

// Names `rel` for the l*xattr calls without following its last component.
std::string ProcPath(int dir_fd, const char* rel) {
  return "/proc/self/fd/" + std::to_string(dir_fd) + "/" + rel;
}

// Exceptions must not cross into libfuse (C).
template <typename F>
auto Guard(F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    return -EIO;
  }
}

// Worker threads create entries with the caller's mode exactly: a private
// umask of 0 (the kernel already applied the caller's umask), so that the
// daemon's own umask does not strip bits. unshare(CLONE_FS) gives this
// thread its own umask without touching the rest of the daemon.
bool ThreadUmaskCleared() {
  thread_local const bool cleared = [] {
    if (::unshare(CLONE_FS) != 0) return false;
    ::umask(0);
    return true;
  }();
  return cleared;
}

// Before a change that Prepare() covers is applied: 0, or -EIO when the
// sink could not make ready what a crash would need (nothing is applied).
int Prepare(State* s, const Operation& op) {
  if (s->sink == nullptr) return 0;
  return s->sink->Prepare(op).ok() ? 0 : -EIO;
}

// Counts the change and hands it to the sink; call with the ordering lock
// held. No ticket without a sink.
std::optional<std::uint64_t> Submit(State* s, Operation&& op) {
  s->operations.fetch_add(1, std::memory_order_relaxed);
  if (s->sink == nullptr) return std::nullopt;
  return s->sink->Submit(std::move(op));
}

// Waits, with no lock held, until the change is replicated as the
// guarantee requires; `result` is the caller's answer when it is.
int Finish(State* s, std::optional<std::uint64_t> ticket, int result) {
  if (!ticket) return result;
  Status status = s->sink->Wait(*ticket);
  if (status.ok()) return result;
  s->replication_errors.fetch_add(1, std::memory_order_relaxed);
  return -EIO;
}

// A change reached a file through a name it no longer has (unlinked or
// renamed over while open): there is no path to replicate it under. That
// only matters if the inode still has another name, which the peer has too
// and which now differs there: count those, for the daemon to resync.
void NoteUnnamedChange(State* s, int fd) {
  if (s->sink == nullptr) return;
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_nlink > 0) {
    s->unreplicated_changes.fetch_add(1, std::memory_order_relaxed);
  }
}

void TrackFile(State* s, FileHandle* h) {
  std::lock_guard<std::mutex> guard(s->handles_mu);
  s->files.insert(h);
}

void CloseFile(State* s, FileHandle* h) {
  {
    std::lock_guard<std::mutex> guard(s->handles_mu);
    s->files.erase(h);
  }
  ::close(h->fd);
  if (h->lock != nullptr) s->inode_locks.Release(h->lock);
  delete h;
}

// Holds the inode mutex of the file a path operation changes.
class InodeGuard {
 public:
  explicit InodeGuard(State* s) : s_(s) {}
  InodeGuard(const InodeGuard&) = delete;
  InodeGuard& operator=(const InodeGuard&) = delete;
  ~InodeGuard() { Unlock(); }

  // Locks the inode of `path` (or of the open file, for an unlinked one).
  int Lock(const char* path, const fuse_file_info* fi) {
    FileHandle* h = FileOf(fi);
    if (h != nullptr && h->lock != nullptr) {
      lock_ = h->lock;
      lock_->mu.lock();
      return 0;
    }
    struct stat st{};
    int rc = path != nullptr ? ::fstatat(s_->real_fd, Rel(path), &st, AT_SYMLINK_NOFOLLOW)
                             : (h != nullptr ? ::fstat(h->fd, &st) : (errno = EBADF, -1));
    if (rc != 0) return -errno;
    lock_ = s_->inode_locks.Acquire(st);
    owned_ = true;
    lock_->mu.lock();
    return 0;
  }

  void Unlock() {
    if (lock_ == nullptr) return;
    lock_->mu.unlock();
    if (owned_) s_->inode_locks.Release(lock_);
    lock_ = nullptr;
    owned_ = false;
  }

 private:
  State* s_;
  InodeLock* lock_ = nullptr;
  bool owned_ = false;
};

// Gives an entry just created (by root) the caller's ownership: the
// caller's uid, the caller's gid unless the parent directory is
// set-group-ID (then the file system already gave it the parent's group).
// `fd` is the entry's descriptor, or -1 to name it by `path`. Updates *st.
int TakeCallerOwnership(State* s, int fd, const char* path, struct stat* st) {
  const fuse_context* ctx = fuse_get_context();
  uid_t uid = ctx->uid;
  gid_t gid = ctx->gid;
  if (st->st_gid != gid) {
    if (st->st_gid != ::getegid()) {
      gid = st->st_gid;  // only a set-group-ID parent gives another group
    } else {
      struct stat parent{};
      if (::fstatat(s->real_fd, ParentRel(path).c_str(), &parent, 0) == 0 &&
          (parent.st_mode & S_ISGID)) {
        gid = st->st_gid;
      }
    }
  }
  if (st->st_uid == uid && st->st_gid == gid) return 0;
  mode_t before = st->st_mode;
  int rc = fd >= 0 ? ::fchown(fd, uid, gid)
                   : ::fchownat(s->real_fd, Rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return -errno;
  // chown clears set-user-ID (and set-group-ID) bits of a regular file; the
  // creator asked for them.
  if (fd >= 0 && S_ISREG(before) && (before & (S_ISUID | S_ISGID))) {
    mode_t keep = before & 07777;
    if (gid != ctx->gid) keep &= ~S_ISGID;
    if (::fchmod(fd, keep) != 0) return -errno;
  }
  rc = fd >= 0 ? ::fstat(fd, st) : ::fstatat(s->real_fd, Rel(path), st, AT_SYMLINK_NOFOLLOW);
  return rc == 0 ? 0 : -errno;
}

// If this thread could not clear its umask, put back the bits the daemon's
// umask took (never more than the caller asked for).
int RestoreMode(State* s, int fd, const char* path, mode_t wanted, struct stat* st) {
  if (ThreadUmaskCleared() || (wanted & s->process_umask & 0777) == 0) return 0;
  if ((st->st_mode & 07777) == (wanted & 07777)) return 0;
  int rc = fd >= 0 ? ::fchmod(fd, wanted & 07777)
                   : ::fchmodat(s->real_fd, Rel(path), wanted & 07777, 0);
  if (rc != 0) return -errno;
  rc = fd >= 0 ? ::fstat(fd, st) : ::fstatat(s->real_fd, Rel(path), st, AT_SYMLINK_NOFOLLOW);
  return rc == 0 ? 0 : -errno;
}

// Flags for the real descriptor: the access mode only. O_APPEND is ours to
// apply (see top), O_TRUNC too (replicated), O_SYNC/O_DSYNC arrive as FSYNC
// requests from the kernel after each write, O_DIRECT would demand aligned
// buffers we do not have.
int RealOpenFlags(int flags) {
  return (flags & O_ACCMODE) | O_CLOEXEC | O_NOFOLLOW | O_LARGEFILE | O_NOCTTY;
}

Operation MakeOp(OpKind kind, const char* path) {
  Operation op;
  op.kind = kind;
  op.path = OpPath(path);
  return op;
}

// ---------------------------------------------------------------- callbacks

void* OnInit(fuse_conn_info* conn, fuse_config* cfg) {
  State* s = Self();
  cfg->use_ino = 1;       // real inode numbers, as on the real directory
  cfg->hard_remove = 1;   // POSIX unlink of open files, no .fuse_hidden files
  cfg->nullpath_ok = 0;   // we need the path of every change
  cfg->kernel_cache = 0;
  cfg->direct_io = 0;
  cfg->intr = 0;
  if (s->read_only) {
    // The applier changes the real directory behind the kernel's back:
    // cache nothing, so local readers see its changes at their next call.
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  } else {
    cfg->entry_timeout = kPrimaryCacheSeconds;
    cfg->attr_timeout = kPrimaryCacheSeconds;
    cfg->negative_timeout = 0;
  }
  // Every write must reach us, to be replicated, before write(2) returns.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // We write as root, which does not clear set-user-ID bits: let the kernel
  // send those changes to us as chmod, so that they are replicated too.
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  // Write payloads are read into memory, not spliced: the sink needs the
  // bytes in memory anyway (splicing would only speed up the sink-less
  // benchmark mode, and needs pipes above pipe-max-size, CAP_SYS_RESOURCE).
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  // Read replies are copied, not spliced: splicing measured no faster here
  // (replies of 1 MiB do not fit pipe-max-size pipes and fall back anyway).
  conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  // The kernel applies the caller's umask; we create with the mode given.
  conn->want &= ~FUSE_CAP_DONT_MASK;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (s->xattrs && (conn->capable & FUSE_CAP_POSIX_ACL)) conn->want |= FUSE_CAP_POSIX_ACL;
  conn->max_write = kMaxWrite;
  conn->max_readahead = kMaxWrite;
  conn->time_gran = 1;
  return s;
}

int OnGetattr(const char* path, struct stat* st, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    FileHandle* h = FileOf(fi);
    int rc = h != nullptr ? ::fstat(h->fd, st)
                          : (path != nullptr
                                 ? ::fstatat(s->real_fd, Rel(path), st, AT_SYMLINK_NOFOLLOW)
                                 : (errno = EBADF, -1));
    return rc == 0 ? 0 : -errno;
  });
}

int OnAccess(const char* path, int mask) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only && (mask & W_OK)) return -EROFS;
    return ::faccessat(s->real_fd, Rel(path), mask, 0) == 0 ? 0 : -errno;
  });
}

int OnReadlink(const char* path, char* buf, size_t size) {
  return Guard([&] {
    if (size == 0) return -EINVAL;
    ssize_t n = ::readlinkat(Self()->real_fd, Rel(path), buf, size - 1);
    if (n < 0) return -errno;
    buf[n] = '\0';
    return 0;
  });
}

int OnOpen(const char* path, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    bool may_change = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
    if (s->read_only && may_change) return -EROFS;
    int fd = ::openat(s->real_fd, Rel(path), RealOpenFlags(fi->flags));
    if (fd < 0) return -errno;
    auto h = std::make_unique<FileHandle>();
    h->fd = fd;
    h->append = (fi->flags & O_APPEND) != 0;
    if (may_change) {
      struct stat st{};
      if (::fstat(fd, &st) != 0) {
        int err = errno;
        ::close(fd);
        return -err;
      }
      h->lock = s->inode_locks.Acquire(st);
    }
    std::optional<std::uint64_t> ticket;
    if (fi->flags & O_TRUNC) {
      std::unique_lock<std::mutex> lock(h->lock->mu);
      if (::ftruncate(fd, 0) != 0) {
        int err = errno;
        lock.unlock();
        s->inode_locks.Release(h->lock);
        ::close(fd);
        return -err;
      }
      Operation op = MakeOp(OpKind::kTruncate, path);
      op.length = 0;
      ticket = Submit(s, std::move(op));
    }
    FileHandle* raw = h.release();
    TrackFile(s, raw);
    int rc = Finish(s, ticket, 0);
    if (rc != 0) {
      CloseFile(s, raw);
      return rc;
    }
    fi->fh = reinterpret_cast<std::uintptr_t>(raw);
    return 0;
  });
}

int OnCreate(const char* path, mode_t mode, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    ThreadUmaskCleared();
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (int rc = Prepare(s, MakeOp(OpKind::kCreate, path)); rc != 0) return rc;
    int fd = ::openat(s->real_fd, Rel(path), RealOpenFlags(fi->flags) | O_CREAT | O_EXCL,
                      mode & 07777);
    if (fd < 0) {
      int err = errno;
      if (err == EEXIST && !(fi->flags & O_EXCL)) {
        // The name appeared behind the kernel's back: open what is there.
        ns.unlock();
        return OnOpen(path, fi);
      }
      return -err;
    }
    struct stat st{};
    int rc = ::fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0) rc = TakeCallerOwnership(s, fd, path, &st);
    if (rc == 0) rc = RestoreMode(s, fd, path, mode, &st);
    if (rc != 0) {
      // Do not leave behind a file the peer never heard of.
      ::unlinkat(s->real_fd, Rel(path), 0);
      ::close(fd);
      return rc;
    }
    auto* h = new FileHandle();
    h->fd = fd;
    h->append = (fi->flags & O_APPEND) != 0;
    h->lock = s->inode_locks.Acquire(st);
    TrackFile(s, h);
    Operation op = MakeOp(OpKind::kCreate, path);
    op.mode = st.st_mode & 07777;
    op.flags = O_TRUNC;  // the peer ends with an empty file, whatever it had
    op.uid = st.st_uid;
    op.gid = st.st_gid;
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    ns.unlock();
    rc = Finish(s, ticket, 0);
    if (rc != 0) {
      CloseFile(s, h);
      return rc;
    }
    fi->fh = reinterpret_cast<std::uintptr_t>(h);
    return 0;
  });
}

int OnReadBuf(const char* path, fuse_bufvec** bufp, size_t size, off_t off, fuse_file_info* fi) {
  return Guard([&] {
    FileHandle* h = FileOf(fi);
    if (h == nullptr) return -EBADF;
    // libfuse reads (or splices) straight from the real descriptor.
    auto* buf = static_cast<fuse_bufvec*>(std::malloc(sizeof(fuse_bufvec)));
    if (buf == nullptr) return -ENOMEM;
    std::memset(buf, 0, sizeof *buf);
    buf->count = 1;
    buf->buf[0].size = size;
    buf->buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf->buf[0].fd = h->fd;
    buf->buf[0].pos = off;
    *bufp = buf;
    return 0;
  });
}

// Writes `src` (memory, or a pipe when libfuse spliced the request) at
// `off` in `fd`; returns the bytes written or -errno.
ssize_t WriteFromBuf(int fd, fuse_bufvec* src, off_t off) {
  fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(src));
  dst.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  dst.buf[0].fd = fd;
  dst.buf[0].pos = off;
  return fuse_buf_copy(&dst, src, static_cast<fuse_buf_copy_flags>(0));
}

int OnWriteBuf(const char* path, fuse_bufvec* src, off_t off, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    FileHandle* h = FileOf(fi);
    if (h == nullptr || h->lock == nullptr) return -EBADF;
    std::size_t size = fuse_buf_size(src);
    std::unique_lock<std::mutex> lock(h->lock->mu);
    // Page writeback (shared mmap) carries its own offset, even through an
    // O_APPEND descriptor.
    if (h->append && !fi->writepage) {
      struct stat st{};
      if (::fstat(h->fd, &st) != 0) return -errno;
      off = st.st_size;
    }
    bool replicate = s->sink != nullptr && path != nullptr;
    if (!replicate) {
      // Straight from libfuse's buffer to disk.
      ssize_t n = WriteFromBuf(h->fd, src, off);
      if (n < 0) return static_cast<int>(n);
      s->bytes_written.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
      s->operations.fetch_add(1, std::memory_order_relaxed);
      if (path == nullptr) NoteUnnamedChange(s, h->fd);
      return static_cast<int>(n);
    }
    // The sink needs the bytes: take them into the operation, then write
    // from there.
    Operation op = MakeOp(OpKind::kWrite, path);
    if (src->count == 1 && !(src->buf[0].flags & FUSE_BUF_IS_FD)) {
      op.data.assign(static_cast<const char*>(src->buf[0].mem), size);
    } else {
      op.data.resize(size);
      fuse_bufvec mem = FUSE_BUFVEC_INIT(size);
      mem.buf[0].mem = op.data.data();
      ssize_t got = fuse_buf_copy(&mem, src, static_cast<fuse_buf_copy_flags>(0));
      if (got < 0) return static_cast<int>(got);
      op.data.resize(static_cast<std::size_t>(got));
    }
    op.offset = static_cast<std::uint64_t>(off);
    if (int rc = Prepare(s, op); rc != 0) return rc;
    ssize_t n = ::pwrite(h->fd, op.data.data(), op.data.size(), off);
    if (n < 0) return -errno;
    s->bytes_written.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
    op.data.resize(static_cast<std::size_t>(n));
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    lock.unlock();
    return Finish(s, ticket, static_cast<int>(n));
  });
}

int OnTruncate(const char* path, off_t size, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    FileHandle* h = FileOf(fi);
    int fd = -1;
    int owned_fd = -1;
    if (h != nullptr && h->lock != nullptr) {
      fd = h->fd;
    } else {
      if (path == nullptr) return -EBADF;
      owned_fd = ::openat(s->real_fd, Rel(path), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      if (owned_fd < 0) return -errno;
      fd = owned_fd;
    }
    InodeGuard guard(s);
    int rc = guard.Lock(path, fi);
    std::optional<std::uint64_t> ticket;
    if (rc == 0) rc = ::ftruncate(fd, size) == 0 ? 0 : -errno;
    if (rc == 0 && path != nullptr) {
      Operation op = MakeOp(OpKind::kTruncate, path);
      op.length = static_cast<std::uint64_t>(size);
      ticket = Submit(s, std::move(op));
    } else if (rc == 0) {
      NoteUnnamedChange(s, fd);
    }
    guard.Unlock();
    if (owned_fd >= 0) ::close(owned_fd);
    return rc != 0 ? rc : Finish(s, ticket, 0);
  });
}

int OnFallocate(const char* path, int mode, off_t off, off_t len, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    FileHandle* h = FileOf(fi);
    if (h == nullptr || h->lock == nullptr) return -EBADF;
    std::unique_lock<std::mutex> lock(h->lock->mu);
    Operation op = MakeOp(OpKind::kFallocate, path != nullptr ? path : "/");
    op.flags = static_cast<std::uint32_t>(mode);
    op.offset = static_cast<std::uint64_t>(off);
    op.length = static_cast<std::uint64_t>(len);
    if (path != nullptr) {
      if (int rc = Prepare(s, op); rc != 0) return rc;
    }
    if (::fallocate(h->fd, mode, off, len) != 0) return -errno;
    std::optional<std::uint64_t> ticket;
    if (path != nullptr) {
      ticket = Submit(s, std::move(op));
    } else {
      NoteUnnamedChange(s, h->fd);
    }
    lock.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnChmod(const char* path, mode_t mode, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    InodeGuard guard(s);
    int rc = guard.Lock(path, fi);
    if (rc != 0) return rc;
    FileHandle* h = FileOf(fi);
    // The kernel resolves links before chmod: the last component is not one.
    rc = path != nullptr ? ::fchmodat(s->real_fd, Rel(path), mode & 07777, 0)
                         : (h != nullptr ? ::fchmod(h->fd, mode & 07777) : (errno = EBADF, -1));
    if (rc != 0) return -errno;
    std::optional<std::uint64_t> ticket;
    if (path != nullptr) {
      Operation op = MakeOp(OpKind::kChmod, path);
      op.mode = mode & 07777;
      ticket = Submit(s, std::move(op));
    } else if (h != nullptr) {
      NoteUnnamedChange(s, h->fd);
    }
    guard.Unlock();
    return Finish(s, ticket, 0);
  });
}

int OnChown(const char* path, uid_t uid, gid_t gid, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    InodeGuard guard(s);
    int rc = guard.Lock(path, fi);
    if (rc != 0) return rc;
    FileHandle* h = FileOf(fi);
    // lchown: a symbolic link has an owner of its own.
    rc = path != nullptr ? ::fchownat(s->real_fd, Rel(path), uid, gid, AT_SYMLINK_NOFOLLOW)
                         : (h != nullptr ? ::fchown(h->fd, uid, gid) : (errno = EBADF, -1));
    if (rc != 0) return -errno;
    std::optional<std::uint64_t> ticket;
    if (path != nullptr) {
      Operation op = MakeOp(OpKind::kChown, path);
      op.uid = uid == static_cast<uid_t>(-1) ? -1 : static_cast<std::int64_t>(uid);
      op.gid = gid == static_cast<gid_t>(-1) ? -1 : static_cast<std::int64_t>(gid);
      ticket = Submit(s, std::move(op));
    } else if (h != nullptr) {
      NoteUnnamedChange(s, h->fd);
    }
    guard.Unlock();
    return Finish(s, ticket, 0);
  });
}

int OnUtimens(const char* path, const struct timespec tv[2], fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    InodeGuard guard(s);
    int rc = guard.Lock(path, fi);
    if (rc != 0) return rc;
    FileHandle* h = FileOf(fi);
    rc = path != nullptr ? ::utimensat(s->real_fd, Rel(path), tv, AT_SYMLINK_NOFOLLOW)
                         : (h != nullptr ? ::futimens(h->fd, tv) : (errno = EBADF, -1));
    if (rc != 0) return -errno;
    std::optional<std::uint64_t> ticket;
    if (path != nullptr) {
      Operation op = MakeOp(OpKind::kUtimens, path);
      op.atime = tv[0];
      op.mtime = tv[1];
      // UTIME_NOW means our clock: send the time it became, so that both
      // sides hold the same timestamps.
      if (tv[0].tv_nsec == UTIME_NOW || tv[1].tv_nsec == UTIME_NOW) {
        struct stat st{};
        if (::fstatat(s->real_fd, Rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0) {
          if (tv[0].tv_nsec == UTIME_NOW) op.atime = st.st_atim;
          if (tv[1].tv_nsec == UTIME_NOW) op.mtime = st.st_mtim;
        }
      }
      ticket = Submit(s, std::move(op));
    } else if (h != nullptr) {
      NoteUnnamedChange(s, h->fd);
    }
    guard.Unlock();
    return Finish(s, ticket, 0);
  });
}

int OnMknod(const char* path, mode_t mode, dev_t rdev) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    // Regular files come through create; devices are not replicated.
    if (!S_ISFIFO(mode) && !S_ISSOCK(mode)) return -EPERM;
    ThreadUmaskCleared();
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (::mknodat(s->real_fd, Rel(path), mode, 0) != 0) return -errno;
    struct stat st{};
    int rc = ::fstatat(s->real_fd, Rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    if (rc == 0) rc = TakeCallerOwnership(s, -1, path, &st);
    if (rc == 0) rc = RestoreMode(s, -1, path, mode, &st);
    if (rc != 0) {
      ::unlinkat(s->real_fd, Rel(path), 0);
      return rc;
    }
    Operation op = MakeOp(OpKind::kMknod, path);
    op.mode = st.st_mode & (S_IFMT | 07777);
    op.uid = st.st_uid;
    op.gid = st.st_gid;
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnMkdir(const char* path, mode_t mode) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    ThreadUmaskCleared();
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (::mkdirat(s->real_fd, Rel(path), mode & 07777) != 0) return -errno;
    struct stat st{};
    int rc = ::fstatat(s->real_fd, Rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    if (rc == 0) rc = TakeCallerOwnership(s, -1, path, &st);
    if (rc == 0) rc = RestoreMode(s, -1, path, mode, &st);
    if (rc != 0) {
      ::unlinkat(s->real_fd, Rel(path), AT_REMOVEDIR);
      return rc;
    }
    Operation op = MakeOp(OpKind::kMkdir, path);
    op.mode = st.st_mode & 07777;
    op.uid = st.st_uid;
    op.gid = st.st_gid;
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnSymlink(const char* target, const char* path) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (::symlinkat(target, s->real_fd, Rel(path)) != 0) return -errno;
    struct stat st{};
    int rc = ::fstatat(s->real_fd, Rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    if (rc == 0) rc = TakeCallerOwnership(s, -1, path, &st);
    if (rc != 0) {
      ::unlinkat(s->real_fd, Rel(path), 0);
      return rc;
    }
    Operation op = MakeOp(OpKind::kSymlink, path);
    op.path2 = target;
    op.uid = st.st_uid;
    op.gid = st.st_gid;
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnLink(const char* from, const char* to) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (::linkat(s->real_fd, Rel(from), s->real_fd, Rel(to), 0) != 0) return -errno;
    Operation op = MakeOp(OpKind::kLink, from);
    op.path2 = OpPath(to);
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnUnlink(const char* path) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (::unlinkat(s->real_fd, Rel(path), 0) != 0) return -errno;
    std::optional<std::uint64_t> ticket = Submit(s, MakeOp(OpKind::kUnlink, path));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnRmdir(const char* path) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    if (::unlinkat(s->real_fd, Rel(path), AT_REMOVEDIR) != 0) return -errno;
    std::optional<std::uint64_t> ticket = Submit(s, MakeOp(OpKind::kRmdir, path));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnRename(const char* from, const char* to, unsigned int flags) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    std::unique_lock<std::mutex> ns(s->namespace_mu);
    Operation op = MakeOp(OpKind::kRename, from);
    op.path2 = OpPath(to);
    op.flags = flags;
    if (int rc = Prepare(s, op); rc != 0) return rc;
    if (::renameat2(s->real_fd, Rel(from), s->real_fd, Rel(to), flags) != 0) return -errno;
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    ns.unlock();
    return Finish(s, ticket, 0);
  });
}

int OnStatfs(const char* path, struct statvfs* st) {
  return Guard([&] { return ::fstatvfs(Self()->real_fd, st) == 0 ? 0 : -errno; });
}

// close(2) promises no durability and every write was already replicated.
int OnFlush(const char* path, fuse_file_info* fi) { return 0; }

int OnRelease(const char* path, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    FileHandle* h = FileOf(fi);
    if (h == nullptr) return 0;
    CloseFile(s, h);
    fi->fh = 0;
    return 0;
  });
}

// fsync of a file or directory: the peer's flush is asked for first, so that
// both disks flush at the same time; the call returns once both have. Neither
// needs the inode lock: changes that returned before the fsync were submitted
// before it, which is all it covers.
template <typename LocalFlush>
int FlushBoth(State* s, const char* path, bool datasync, LocalFlush local_flush) {
  std::optional<std::uint64_t> ticket;
  if (!s->read_only && path != nullptr) {
    Operation op = MakeOp(OpKind::kFsync, path);
    op.flags = datasync ? 1 : 0;
    ticket = Submit(s, std::move(op));
  }
  int local = local_flush() != 0 ? -errno : 0;
  int remote = Finish(s, ticket, 0);
  return local != 0 ? local : remote;
}

int OnFsync(const char* path, int datasync, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    FileHandle* h = FileOf(fi);
    if (h == nullptr) return -EBADF;
    return FlushBoth(s, path, datasync != 0,
                     [&] { return datasync ? ::fdatasync(h->fd) : ::fsync(h->fd); });
  });
}

int OnOpendir(const char* path, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    int fd = ::openat(s->real_fd, Rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      int err = errno;
      ::close(fd);
      return -err;
    }
    auto* h = new DirHandle();
    h->dir = dir;
    {
      std::lock_guard<std::mutex> guard(s->handles_mu);
      s->dirs.insert(h);
    }
    fi->fh = reinterpret_cast<std::uintptr_t>(h);
    return 0;
  });
}

int OnReaddir(const char* path, void* buf, fuse_fill_dir_t filler, off_t offset,
              fuse_file_info* fi, fuse_readdir_flags flags) {
  return Guard([&] {
    DirHandle* h = DirOf(fi);
    if (h == nullptr) return -EBADF;
    if (offset != h->offset) {
      ::seekdir(h->dir, offset);
      h->entry = nullptr;
      h->offset = offset;
    }
    while (true) {
      if (h->entry == nullptr) {
        errno = 0;
        h->entry = ::readdir(h->dir);
        if (h->entry == nullptr) {
          if (errno != 0) return -errno;
          break;
        }
      }
      struct stat st{};
      st.st_ino = h->entry->d_ino;
      st.st_mode = static_cast<mode_t>(DTTOIF(h->entry->d_type));
      off_t next = ::telldir(h->dir);
      // The buffer is full: keep this entry for the next call.
      if (filler(buf, h->entry->d_name, &st, next, static_cast<fuse_fill_dir_flags>(0)) != 0) break;
      h->entry = nullptr;
      h->offset = next;
    }
    return 0;
  });
}

int OnReleasedir(const char* path, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    DirHandle* h = DirOf(fi);
    if (h == nullptr) return 0;
    {
      std::lock_guard<std::mutex> guard(s->handles_mu);
      s->dirs.erase(h);
    }
    ::closedir(h->dir);
    delete h;
    fi->fh = 0;
    return 0;
  });
}

int OnFsyncdir(const char* path, int datasync, fuse_file_info* fi) {
  return Guard([&] {
    State* s = Self();
    DirHandle* h = DirOf(fi);
    if (h == nullptr) return -EBADF;
    // The root's path is "", which the peer reads as its whole file system:
    // more than asked, never less.
    return FlushBoth(s, path, false, [&] { return ::fsync(::dirfd(h->dir)); });
  });
}

off_t OnLseek(const char* path, off_t off, int whence, fuse_file_info* fi) {
  return Guard([&]() -> off_t {
    FileHandle* h = FileOf(fi);
    if (h == nullptr) return -EBADF;
    off_t r = ::lseek(h->fd, off, whence);
    return r >= 0 ? r : -errno;
  });
}

int OnSetxattr(const char* path, const char* name, const char* value, size_t size, int flags) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    InodeGuard guard(s);
    int rc = guard.Lock(path, nullptr);
    if (rc != 0) return rc;
    if (::lsetxattr(ProcPath(s->real_fd, Rel(path)).c_str(), name, value, size, flags) != 0) {
      return -errno;
    }
    Operation op = MakeOp(OpKind::kSetXattr, path);
    op.name = name;
    op.data.assign(value, size);
    op.flags = static_cast<std::uint32_t>(flags);
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    guard.Unlock();
    return Finish(s, ticket, 0);
  });
}

int OnGetxattr(const char* path, const char* name, char* value, size_t size) {
  return Guard([&] {
    ssize_t n = ::lgetxattr(ProcPath(Self()->real_fd, Rel(path)).c_str(), name, value, size);
    return n >= 0 ? static_cast<int>(n) : -errno;
  });
}

int OnListxattr(const char* path, char* list, size_t size) {
  return Guard([&] {
    ssize_t n = ::llistxattr(ProcPath(Self()->real_fd, Rel(path)).c_str(), list, size);
    return n >= 0 ? static_cast<int>(n) : -errno;
  });
}

int OnRemovexattr(const char* path, const char* name) {
  return Guard([&] {
    State* s = Self();
    if (s->read_only) return -EROFS;
    InodeGuard guard(s);
    int rc = guard.Lock(path, nullptr);
    if (rc != 0) return rc;
    if (::lremovexattr(ProcPath(s->real_fd, Rel(path)).c_str(), name) != 0) return -errno;
    Operation op = MakeOp(OpKind::kRemoveXattr, path);
    op.name = name;
    std::optional<std::uint64_t> ticket = Submit(s, std::move(op));
    guard.Unlock();
    return Finish(s, ticket, 0);
  });
}

// Wraps a FUSE callback that may change the tree in the shared hold of the
// change lock (see State::change_lock).
template <typename F>
struct Changing;
template <typename... A>
struct Changing<int (*)(A...)> {
  template <int (*F)(A...)>
  static int Call(A... a) {
    State* s = Self();
    pthread_rwlock_rdlock(&s->change_lock);
    int r = F(a...);
    pthread_rwlock_unlock(&s->change_lock);
    return r;
  }
};
#define HAKIT_CHANGING(f) (&Changing<decltype(&f)>::template Call<&f>)

fuse_operations MakeOperations(bool xattrs) {
  fuse_operations ops{};
  ops.init = OnInit;
  ops.getattr = OnGetattr;
  ops.access = OnAccess;
  ops.readlink = OnReadlink;
  ops.open = HAKIT_CHANGING(OnOpen);
  ops.create = HAKIT_CHANGING(OnCreate);
  ops.read_buf = OnReadBuf;
  ops.write_buf = HAKIT_CHANGING(OnWriteBuf);
  ops.truncate = HAKIT_CHANGING(OnTruncate);
  ops.fallocate = HAKIT_CHANGING(OnFallocate);
  ops.chmod = HAKIT_CHANGING(OnChmod);
  ops.chown = HAKIT_CHANGING(OnChown);
  ops.utimens = HAKIT_CHANGING(OnUtimens);
  ops.mknod = HAKIT_CHANGING(OnMknod);
  ops.mkdir = HAKIT_CHANGING(OnMkdir);
  ops.symlink = HAKIT_CHANGING(OnSymlink);
  ops.link = HAKIT_CHANGING(OnLink);
  ops.unlink = HAKIT_CHANGING(OnUnlink);
  ops.rmdir = HAKIT_CHANGING(OnRmdir);
  ops.rename = HAKIT_CHANGING(OnRename);
  ops.statfs = OnStatfs;
  ops.flush = OnFlush;
  ops.release = OnRelease;
  ops.fsync = HAKIT_CHANGING(OnFsync);
  ops.opendir = OnOpendir;
  ops.readdir = OnReaddir;
  ops.releasedir = OnReleasedir;
  ops.fsyncdir = HAKIT_CHANGING(OnFsyncdir);
  ops.lseek = OnLseek;
  // Left null when off: libfuse answers ENOSYS, which the kernel remembers
  // (and turns into EOPNOTSUPP for applications) instead of asking us for
  // security.capability before every write.
  if (xattrs) {
    ops.setxattr = HAKIT_CHANGING(OnSetxattr);
    ops.getxattr = OnGetxattr;
    ops.listxattr = OnListxattr;
    ops.removexattr = HAKIT_CHANGING(OnRemovexattr);
  }
  return ops;
}

void RunLoop(State* s) {
  // Worker threads inherit this mask: process signals belong to the daemon.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 0);
  fuse_loop_cfg_set_max_threads(config, static_cast<unsigned>(s->threads));
  fuse_loop_cfg_set_idle_threads(config, static_cast<unsigned>(s->threads));
  fuse_loop_mt(s->fuse, config);
  fuse_loop_cfg_destroy(config);
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

// ---------------------------------------------------------------- Interceptor

Interceptor::Interceptor(std::unique_ptr<State> state) : state_(std::move(state)) {}

Interceptor::~Interceptor() { Unmount(); }

int Interceptor::real_dir_fd() const { return state_->real_fd; }

void Interceptor::RunExclusive(const std::function<void()>& step) {
  pthread_rwlock_wrlock(&state_->change_lock);
  try {
    step();
  } catch (...) {
    pthread_rwlock_unlock(&state_->change_lock);
    throw;
  }
  pthread_rwlock_unlock(&state_->change_lock);
}
const std::string& Interceptor::dir() const { return state_->dir; }
Interceptor::Mode Interceptor::mode() const { return state_->mode; }

Interceptor::Stats Interceptor::stats() const {
  Stats stats;
  stats.operations = state_->operations.load(std::memory_order_relaxed);
  stats.bytes_written = state_->bytes_written.load(std::memory_order_relaxed);
  stats.replication_errors = state_->replication_errors.load(std::memory_order_relaxed);
  stats.unreplicated_changes = state_->unreplicated_changes.load(std::memory_order_relaxed);
  return stats;
}

Status Interceptor::CleanupStaleMount(const std::string& dir) {
  auto path = CanonicalMountPoint(dir);
  if (!path.ok()) return path.status();
  // Stacked dead mounts are possible (several crashes); a bound keeps a
  // mount we cannot remove from looping us forever.
  for (int round = 0; round < 16; ++round) {
    MountEntry top;
    if (!FindTopMount(*path, &top) || !IsFuseType(top.fstype)) return Status::Ok();
    struct statfs sfs{};
    if (::statfs(path->c_str(), &sfs) == 0) return Status::Ok();  // alive: not ours to clean
    if (errno != ENOTCONN && errno != ECONNABORTED) {
      return Status::IoError(Errno("stale mount check " + *path));
    }
    if (::umount2(path->c_str(), MNT_DETACH) != 0) {
      return Status::IoError(Errno("detach stale mount " + *path));
    }
  }
  return Status::IoError("stale mounts at " + *path + ": still there after 16 detaches");
}

Result<std::unique_ptr<Interceptor>> Interceptor::Mount(InterceptorOptions options) {
  if (options.threads < 1) {
    return Status::InvalidArgument("interceptor: threads must be at least 1");
  }
  Status cleaned = CleanupStaleMount(options.dir);
  if (!cleaned.ok()) return cleaned;
  auto path = CanonicalMountPoint(options.dir);
  if (!path.ok()) return path.status();
  MountEntry top;
  if (FindTopMount(*path, &top) && top.fstype == kFsType) {
    return Status::Failed("replicated dir " + *path + " already carries a live hakit mount");
  }

  auto state = std::make_unique<State>();
  state->dir = *path;
  state->mode = options.mode;
  state->read_only = options.mode == Mode::kReadOnly;
  state->sink = state->read_only ? nullptr : options.sink;
  state->xattrs = options.xattrs;
  state->threads = options.threads;
  state->process_umask = ReadProcessUmask();
  // Before mounting: afterwards the path leads to ourselves.
  state->real_fd = ::open(path->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (state->real_fd < 0) {
    int err = errno;
    std::string msg = "replicated dir " + *path + ": " + std::strerror(err);
    return err == ENOENT ? Status::NotFound(msg) : Status::IoError(msg);
  }
  RaiseDescriptorLimit();

  fuse_operations ops = MakeOperations(options.xattrs);
  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, "hakitd");
  if (const char* debug = std::getenv("HAKIT_FUSE_DEBUG"); debug != nullptr && *debug == '1') {
    fuse_opt_add_arg(&args, "-odebug");
  }
  state->fuse = fuse_new(&args, &ops, sizeof ops, state.get());
  fuse_opt_free_args(&args);
  if (state->fuse == nullptr) return Status::Failed("fuse_new failed for " + *path);

  // We mount ourselves and give libfuse the descriptor ("/dev/fd/N"), so
  // that libfuse never unmounts by path: at Unmount() we detach only a
  // mount that is still ours.
  int dev_fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (dev_fd < 0) {
    fuse_destroy(state->fuse);
    state->fuse = nullptr;
    return Status::IoError(Errno("open /dev/fuse"));
  }
  std::string data = "fd=" + std::to_string(dev_fd) +
                     ",rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other" +
                     ",max_read=" + std::to_string(kMaxWrite);
  unsigned long flags = MS_NOSUID | MS_NODEV | (state->read_only ? MS_RDONLY : 0);
  if (::mount("hakit", path->c_str(), kFsType, flags, data.c_str()) != 0) {
    Status error = Status::IoError(Errno("mount FUSE on " + *path));
    ::close(dev_fd);
    fuse_destroy(state->fuse);
    state->fuse = nullptr;
    return error;
  }
  std::string dev_path = "/dev/fd/" + std::to_string(dev_fd);
  if (fuse_mount(state->fuse, dev_path.c_str()) != 0) {
    ::umount2(path->c_str(), MNT_DETACH);
    ::close(dev_fd);
    fuse_destroy(state->fuse);
    state->fuse = nullptr;
    return Status::Failed("fuse_mount failed for " + *path);
  }
  state->mounted = true;
  state->loop = std::thread(RunLoop, state.get());

  auto interceptor = std::unique_ptr<Interceptor>(new Interceptor(std::move(state)));
  State* s = interceptor->state_.get();
  MountEntry mine;
  if (!FindTopMount(s->dir, &mine) || mine.fstype != kFsType) {
    return Status::Failed("mount of " + s->dir + " not found in /proc/self/mountinfo");
  }
  s->mount_major = mine.major;
  s->mount_minor = mine.minor;
  s->mount_root_fd = ::open(s->dir.c_str(), O_PATH | O_CLOEXEC);
  if (s->mount_root_fd < 0) return Status::IoError(Errno("open mount root " + s->dir));
  // A first request through the mount: proves the session answers.
  struct stat root{};
  if (::fstat(s->mount_root_fd, &root) != 0) {
    return Status::IoError(Errno("stat through the mount " + s->dir));
  }
  return interceptor;
}

Status Interceptor::Unmount() {
  State* s = state_.get();
  std::lock_guard<std::mutex> guard(s->unmount_mu);
  if (!s->mounted) return Status::Ok();
  s->mounted = false;
  MountEntry top;
  bool ours = FindTopMount(s->dir, &top) && top.fstype == kFsType &&
              top.major == s->mount_major && top.minor == s->mount_minor;
  // Stop the session. Workers notice the flag only after their next
  // request, so send one: a statfs through our own root. The worker that
  // takes it leaves without answering, hence a detached thread, released
  // when the connection is aborted below.
  fuse_exit(s->fuse);
  int poke = s->mount_root_fd >= 0 ? ::dup(s->mount_root_fd) : -1;
  std::thread([poke, dir = s->dir] {
    struct statfs sfs{};
    if (poke >= 0) {
      ::fstatfs(poke, &sfs);
      ::close(poke);
    } else {
      ::statfs(dir.c_str(), &sfs);
    }
  }).detach();
  if (s->loop.joinable()) s->loop.join();
  if (s->mount_root_fd >= 0) {
    ::close(s->mount_root_fd);
    s->mount_root_fd = -1;
  }
  // Closes /dev/fuse: the kernel aborts the connection, so files still open
  // there fail with ENOTCONN instead of hanging.
  fuse_destroy(s->fuse);
  s->fuse = nullptr;
  // No release will come for what applications still held.
  for (FileHandle* h : std::unordered_set<FileHandle*>(s->files)) CloseFile(s, h);
  for (DirHandle* h : s->dirs) {
    ::closedir(h->dir);
    delete h;
  }
  s->dirs.clear();
  if (ours && ::umount2(s->dir.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return Status::IoError(Errno("detach FUSE mount " + s->dir));
  }
  return Status::Ok();
}

}  // namespace hakit::replication
