#include "hakit/replication/sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <memory>
#include <set>
#include <thread>

#include "hakit/replication/interceptor.h"
#include "hakit/replication/sender.h"

namespace hakit::replication {

using sdk::Result;
using sdk::Status;

namespace {

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    std::size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Asks the disk for the zones `z` names of the file `fd` all at once, rather
// than one read at a time when they are sent.
void ReadZonesAhead(int fd, const DirtyMap::Zones& z, std::size_t zone) {
  if (z.whole) {
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    return;
  }
  for (std::uint64_t index : z.zones) {
    ::posix_fadvise(fd, static_cast<off_t>(index * zone), static_cast<off_t>(zone),
                    POSIX_FADV_WILLNEED);
  }
}

}  // namespace

// ---------------------------------------------------------------- cursor

void SyncCursor::SetNothing() {
  kind_ = Kind::kNothing;
  parts_.clear();
}

void SyncCursor::SetEverything() {
  kind_ = Kind::kEverything;
  parts_.clear();
}

void SyncCursor::Set(std::string_view path, bool subtree_done) {
  kind_ = Kind::kAt;
  parts_.clear();
  for (auto p : Split(path)) parts_.emplace_back(p);
  subtree_done_ = subtree_done;
}

bool SyncCursor::Covers(std::string_view path) const {
  if (kind_ != Kind::kAt) return kind_ == Kind::kEverything;
  auto parts = Split(path);
  std::size_t n = std::min(parts.size(), parts_.size());
  for (std::size_t i = 0; i < n; ++i) {
    int c = parts[i].compare(parts_[i]);
    if (c != 0) return c < 0;
  }
  // A parent of the entry being walked, the entry itself, or below it.
  return parts.size() <= parts_.size() || subtree_done_;
}

bool SyncCursor::IsOnPath(std::string_view path) const {
  if (kind_ != Kind::kAt) return false;
  auto parts = Split(path);
  if (parts.size() > parts_.size()) return false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] != parts_[i]) return false;
  }
  return true;
}

// ---------------------------------------------------------------- gate

SyncGate::SyncGate(ReplicationSender& sender, std::uint8_t dir_index, int root_fd)
    : sender_(sender), dir_index_(dir_index), root_fd_(root_fd) {
  cursor_.SetNothing();
}

std::uint64_t SyncGate::Forward(Operation&& op) { return sender_.SubmitTo(dir_index_, std::move(op)); }

std::uint64_t SyncGate::Drop() {
  dropped_.fetch_add(1);
  return 0;
}

std::uint64_t SyncGate::DropCreation(const std::string& path) {
  std::size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
  if (cursor_.IsOnPath(dir) || dir.empty()) {
    std::lock_guard lock(late_mu_);
    late_[dir].push_back(slash == std::string::npos ? path : path.substr(slash + 1));
  }
  return Drop();
}

bool SyncGate::SendWhole(const std::string& path, std::uint64_t* ticket) {
  if (root_fd_ < 0) return false;
  struct stat st{};
  if (::fstatat(root_fd_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  if (!S_ISREG(st.st_mode) || st.st_nlink > 1) return false;
  int fd = ::openat(root_fd_, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  auto op = [&](OpKind kind) {
    Operation o;
    o.kind = kind;
    o.path = path;
    return o;
  };
  Forward(op(OpKind::kRemoveTree));
  Operation create = op(OpKind::kCreate);
  create.mode = st.st_mode & 07777;
  create.flags = O_TRUNC;
  create.uid = st.st_uid;
  create.gid = st.st_gid;
  Forward(std::move(create));
  std::string buf(1u << 20, '\0');
  bool ok = true;
  for (std::uint64_t off = 0; ok;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ok = false;
    if (n <= 0) break;
    Operation w = op(OpKind::kWrite);
    w.offset = off;
    w.data.assign(buf.data(), static_cast<std::size_t>(n));
    Forward(std::move(w));
    off += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  Operation size = op(OpKind::kTruncate);
  size.length = static_cast<std::uint64_t>(st.st_size);
  Forward(std::move(size));
  Operation times = op(OpKind::kUtimens);
  times.atime = st.st_atim;
  times.mtime = st.st_mtim;
  *ticket = Forward(std::move(times));
  return ok;
}

std::vector<std::string> SyncGate::TakeLateNames(const std::string& dir) {
  std::lock_guard lock(late_mu_);
  auto it = late_.find(dir);
  if (it == late_.end()) return {};
  std::vector<std::string> names = std::move(it->second);
  late_.erase(it);
  return names;
}

std::optional<std::uint64_t> SyncGate::Filter(Operation& op) {
  if (filter_ == nullptr || filter_->empty()) return std::nullopt;
  const bool two = op.kind == OpKind::kRename || op.kind == OpKind::kLink;
  const bool from = filter_->Excluded(op.path);
  const bool to = two && filter_->Excluded(op.path2);
  if (from && (!two || to)) return 0;  // entirely outside what is replicated
  if (!from && !to) return std::nullopt;
  if (!from) {
    // Leaves the replicated part: the secondary forgets the source.
    if (op.kind == OpKind::kLink || (op.flags & RENAME_EXCHANGE) != 0) return 0;
    Operation remove;
    remove.kind = OpKind::kRemoveTree;
    remove.path = op.path;
    return Decide(std::move(remove));
  }
  // Enters it: the secondary lacks the content.
  if (!passing_ && !cursor_.Covers(op.path2)) return DropCreation(op.path2);
  std::uint64_t ticket = 0;
  if (SendWhole(op.path2, &ticket)) return ticket;
  if (!passing_) aborted_ = true;
  unsent_.fetch_add(1);
  return 0;
}

Status SyncGate::Prepare(const Operation& op) {
  if (hot_ == nullptr) return Status::Ok();
  switch (op.kind) {
    case OpKind::kWrite:
      return hot_->Touch(op.path, op.offset, op.data.empty() ? op.length : op.data.size());
    case OpKind::kFallocate:
      return hot_->Touch(op.path, op.offset, op.length);
    case OpKind::kCreate:
      // Covers the record's entry for the new file until it is flushed; the
      // first write into it then costs nothing more.
      return hot_->Touch(op.path, 0, 1);
    case OpKind::kRename:
      return hot_->Rename(op.path, op.path2, (op.flags & RENAME_EXCHANGE) != 0);
    default:
      return Status::Ok();
  }
}

std::uint64_t SyncGate::Submit(Operation op) {
  // Until the pair holds the same data (a synchronisation, or no pairing
  // yet), every change is noted, dropped or sent: what was sent is harmless
  // to send again. Once passing, what the sender cannot deliver reaches the
  // record through its owner (SenderOptions::on_unreplicated, on_peer_lost).
  if (dirty_ != nullptr && !passing_) dirty_->Note(op);
  if (auto filtered = Filter(op)) return *filtered;
  return Decide(std::move(op));
}

std::uint64_t SyncGate::Decide(Operation&& op) {
  if (passing_) return Forward(std::move(op));
  if (aborted_) return Drop();
  // A whole-dir fsync names no entry; the secondary flushing more is harmless.
  if (op.kind == OpKind::kFsync && op.path.empty()) return Forward(std::move(op));
  if (op.kind == OpKind::kRename || op.kind == OpKind::kLink) {
    const bool from = cursor_.Covers(op.path);
    const bool to = cursor_.Covers(op.path2);
    const bool exchange = op.kind == OpKind::kRename && (op.flags & RENAME_EXCHANGE) != 0;
    if (from && to) {
      // The entry being walked (or a parent of it) moves within the walked
      // part: the walk loses track of it.
      if (op.kind == OpKind::kRename && cursor_.IsOnPath(op.path)) aborted_ = true;
      return Forward(std::move(op));
    }
    if (!from && !to) {
      if (exchange) return Drop();
      return DropCreation(op.path2);
    }
    if (op.kind == OpKind::kRename && from && !exchange) {
      // Leaves the walked part: gone from there; the walk meets it later.
      DropCreation(op.path2);
      Operation remove;
      remove.kind = OpKind::kRemoveTree;
      remove.path = op.path;
      return Forward(std::move(remove));
    }
    if (op.kind == OpKind::kLink && from && !to) return DropCreation(op.path2);
    // Content the secondary does not have moves into the walked part: a
    // plain file is sent whole now; anything else restarts the pass.
    std::uint64_t ticket = 0;
    if (op.kind == OpKind::kRename && !exchange && SendWhole(op.path2, &ticket)) {
      dropped_.fetch_add(1);  // the rename itself
      return ticket;
    }
    aborted_ = true;
    return Drop();
  }
  if (cursor_.Covers(op.path)) return Forward(std::move(op));
  switch (op.kind) {
    case OpKind::kCreate:
    case OpKind::kMkdir:
    case OpKind::kMknod:
    case OpKind::kSymlink:
      return DropCreation(op.path);
    default:
      return Drop();
  }
}

Status SyncGate::Wait(std::uint64_t ticket) {
  if (ticket == 0) return Status::Ok();
  return sender_.Wait(ticket);
}

void SyncGate::BeginSync() {
  passing_ = false;
  cursor_.SetNothing();
  aborted_ = false;
  dropped_ = 0;
  std::lock_guard lock(late_mu_);
  late_.clear();
}

void SyncGate::Pass() {
  cursor_.SetEverything();
  passing_ = true;
}

// ---------------------------------------------------------------- manifests

void ManifestCollector::Push(ManifestChunk&& chunk) {
  {
    std::lock_guard lock(mu_);
    Pending& p = pending_[chunk.dir_index];
    if (p.done) return;  // an answer nobody asked for again
    p.data += chunk.data;
    if (chunk.last) {
      p.done = true;
      p.error = chunk.error;
    }
  }
  cv_.notify_all();
}

void ManifestCollector::Reset(std::uint8_t dir_index) {
  std::lock_guard lock(mu_);
  pending_.erase(dir_index);
}

Result<Manifest> ManifestCollector::Take(std::uint8_t dir_index, std::chrono::milliseconds timeout,
                                         const std::function<bool()>& give_up) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    auto it = pending_.find(dir_index);
    if (it != pending_.end() && it->second.done) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Timeout("the secondary did not describe its tree within " +
                             std::to_string(timeout.count()) + " ms");
    }
    lock.unlock();
    bool stop = give_up && give_up();
    lock.lock();
    if (stop) return Status::Failed("stopped while waiting for the secondary's tree description");
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  Pending p = std::move(pending_[dir_index]);
  pending_.erase(dir_index);
  lock.unlock();
  if (!p.error.empty()) return Status::IoError("the secondary could not describe its tree: " + p.error);
  std::vector<ManifestEntry> entries;
  if (Status s = DecodeManifestEntries(p.data, &entries); !s.ok()) return s;
  Manifest m;
  for (auto& e : entries) m.Add(std::move(e));
  return m;
}

// ---------------------------------------------------------------- walk

namespace {

class Walk {
 public:
  Walk(const TreeSyncOptions& o, const Manifest& m, SyncProgress* progress)
      : o_(o), m_(m), progress_(progress), root_(o.mount->real_dir_fd()) {}

  // kOk: the dir is walked; kAborted: restart; an error: give up.
  enum class End { kDone, kAborted, kStopped };
  Result<End> Run() {
    // The root itself: its attributes, then its content.
    bool ok = Step([&] {
      struct stat st{};
      if (::fstat(root_, &st) != 0) return;
      SendAttrs("", st, m_.Find(""), /*times=*/false);
      o_.gate->cursor().Set("", false);
    });
    if (!ok) return Ended();
    return WalkDir("", 0);
  }

 private:
  // Runs `step` exclusively; false when the walk must end (see Ended()).
  template <typename F>
  bool Step(F&& step) {
    if (Stopped()) return false;
    bool go_on = true;
    o_.mount->RunExclusive([&] {
      if (o_.gate->aborted()) {
        go_on = false;
        return;
      }
      step();
    });
    if (!error_.ok()) return false;
    return go_on && !o_.gate->aborted();
  }

  bool Stopped() {
    if (o_.stop && o_.stop()) stopped_ = true;
    if (o_.sender->state() != SenderState::kReplicating) {
      if (error_.ok()) error_ = Status::Failed("the secondary was lost during the synchronisation");
    }
    return stopped_ || !error_.ok();
  }

  Result<End> Ended() {
    if (!error_.ok()) return error_;
    if (stopped_) return End::kStopped;
    if (o_.gate->aborted()) return End::kAborted;
    return End::kDone;
  }

  void Send(Operation&& op) { o_.sender->SubmitTo(o_.dir_index, std::move(op)); }

  static Operation Op(OpKind kind, const std::string& path) {
    Operation op;
    op.kind = kind;
    op.path = path;
    return op;
  }

  void Remove(const std::string& path) { Send(Op(OpKind::kRemoveTree, path)); }

  // An operation creating `path` as the primary's entry `st` is.
  static Operation Creating(OpKind kind, const std::string& path, const struct stat& st,
                            std::uint32_t mode) {
    Operation op = Op(kind, path);
    op.mode = mode;
    op.uid = st.st_uid;
    op.gid = st.st_gid;
    return op;
  }

  // Owner, permissions and (for all but directories, whose times move with
  // their content until it is walked) times, where they differ.
  void SendAttrs(const std::string& path, const struct stat& st, const ManifestEntry* m,
                 bool times) {
    if (S_ISLNK(st.st_mode)) {
      if (!m || m->uid != st.st_uid || m->gid != st.st_gid) {
        Operation op = Op(OpKind::kChown, path);
        op.uid = st.st_uid;
        op.gid = st.st_gid;
        Send(std::move(op));
      }
    } else {
      if (!m || m->uid != st.st_uid || m->gid != st.st_gid || (m->mode & 07777) != (st.st_mode & 07777)) {
        Operation own = Op(OpKind::kChown, path);
        own.uid = st.st_uid;
        own.gid = st.st_gid;
        Send(std::move(own));
        // After chown, which clears set-user-ID and set-group-ID bits.
        Operation mode = Op(OpKind::kChmod, path);
        mode.mode = st.st_mode & 07777;
        Send(std::move(mode));
      }
    }
    if (times && (!m || m->mtime.tv_sec != st.st_mtim.tv_sec ||
                  m->mtime.tv_nsec != st.st_mtim.tv_nsec)) {
      Operation op = Op(OpKind::kUtimens, path);
      op.atime = st.st_atim;
      op.mtime = st.st_mtim;
      Send(std::move(op));
    }
  }

  std::set<std::string> ListPrimary(const std::string& rel) {
    std::set<std::string> names;
    int fd = rel.empty() ? ::openat(root_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                         : ::openat(root_, rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return names;  // gone: its entries are extras on the secondary
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return names;
    }
    while (dirent* e = ::readdir(d)) {
      std::string_view n(e->d_name);
      if (n != "." && n != "..") names.emplace(n);
    }
    ::closedir(d);
    return names;
  }

  Result<End> WalkDir(const std::string& rel, int depth) {
    if (depth > 4096) return Status::IoError(rel + ": directory nesting too deep");
    std::set<std::string> names;
    auto add = [&](const std::string& n) {
      if (o_.filter == nullptr || !o_.filter->Excluded(Join(rel, n))) names.insert(n);
    };
    for (auto& n : ListPrimary(rel)) add(n);
    for (auto& n : m_.Children(rel)) add(n);
    std::optional<std::string> last;
    for (;;) {
      // The next name, chosen in a step: names created after the listing
      // and not yet walked were dropped, and the gate kept them.
      std::optional<std::string> next;
      bool closed = false;
      Entry entry;
      bool ok = Step([&] {
        for (auto& n : o_.gate->TakeLateNames(rel)) {
          if (!last || n > *last) add(n);
        }
        auto it = last ? names.upper_bound(*last) : names.begin();
        // Files the record settles are walked in this same step, up to a
        // bound, so that a writer waits little longer than for one entry's
        // step.
        const auto until = std::chrono::steady_clock::now() + kBatchTime;
        std::size_t settled = 0;
        bool bounded = false;
        for (; it != names.end(); ++it, ++settled) {
          if (settled > 0 &&
              (settled == kBatchEntries || std::chrono::steady_clock::now() >= until)) {
            bounded = true;
            break;
          }
          if (!WalkedFromRecord(Join(rel, *it))) break;
        }
        if (settled > 0) {
          last = *std::prev(it);
          o_.gate->cursor().Set(Join(rel, *last), true);
          if (progress_) progress_->entries += settled;
        }
        if (it != names.end()) {
          if (bounded) return;
          next = *it;
          entry.path = Join(rel, *it);
          FirstStep(entry);
          return;
        }
        // Nothing left: close the dir in this step.
        struct stat st{};
        int rc = rel.empty() ? ::fstat(root_, &st)
                             : ::fstatat(root_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW);
        if (rc == 0 && S_ISDIR(st.st_mode)) SendAttrs(rel, st, m_.Find(rel), true);
        o_.gate->cursor().Set(rel, true);
        closed = true;
      });
      if (!ok && entry.fd >= 0) ::close(entry.fd);
      if (!ok) return Ended();
      if (closed) return End::kDone;
      if (!next) continue;  // the step settled entries and stopped at its bound
      last = *next;
      auto end = WalkEntry(entry, depth);
      if (!end.ok() || *end != End::kDone) return end;
    }
  }

  // How many files one step may walk from the record, and for how long:
  // bounds what a write waits for behind a step.
  static constexpr std::size_t kBatchEntries = 4096;
  static constexpr std::chrono::microseconds kBatchTime{1000};

  // With a record: walks `path` at once when it is a regular file with a
  // single name on both sides, the secondary's size, and no zone noted: at
  // most its owner, permissions and times differ, and are sent. What the
  // file's own steps would send (WalkNotedZones with no zone, FinishFile),
  // for one stat and no open. False: the entry needs its own steps (nothing
  // was sent). Called in a step.
  bool WalkedFromRecord(const std::string& path) {
    if (o_.dirty == nullptr) return false;
    const ManifestEntry* m = m_.Find(path);
    // Zones the secondary names as suspect must travel: the slow path.
    if (m == nullptr || !S_ISREG(m->mode) || m->nlink > 1 || !m->suspect.empty()) return false;
    struct stat st{};
    if (::fstatat(root_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
    if (!S_ISREG(st.st_mode) || st.st_nlink > 1 ||
        m->size != static_cast<std::uint64_t>(st.st_size)) {
      return false;
    }
    const DirtyMap::Zones z = o_.dirty->Of(path);
    if (z.whole || !z.zones.empty()) return false;
    SendAttrs(path, st, m, /*times=*/true);
    return true;
  }

  // What an entry's first step found, for the steps after it.
  struct Entry {
    std::string path;
    enum class Next { kNone, kDir, kFile } next = Next::kNone;
    int fd = -1;
    struct stat st{};
    const ManifestEntry* m = nullptr;
  };

  // The first step of `e.path`, inside the step that chose the entry
  // (WalkDir): a name created in its dir between that step and a later one
  // would fall behind the cursor without being walked.
  void FirstStep(Entry& e) {
    using Next = Entry::Next;
    const std::string& path = e.path;
    Next& next = e.next;
    int& fd = e.fd;
    struct stat& st = e.st;
    const ManifestEntry*& m = e.m;
    m = m_.Find(path);
    if (progress_) progress_->entries++;
    if (::fstatat(root_, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (m) Remove(path);
      o_.gate->cursor().Set(path, true);
      return;
    }
    const mode_t type = st.st_mode & S_IFMT;
    if (m && (m->mode & S_IFMT) != type) {
      Remove(path);
      m = nullptr;
    }
    switch (type) {
      case S_IFDIR: {
        if (!m) Send(Creating(OpKind::kMkdir, path, st, st.st_mode & 07777));
        SendAttrs(path, st, m, false);
        o_.gate->cursor().Set(path, false);
        next = Next::kDir;
        return;
      }
      case S_IFLNK: {
        std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
        ssize_t n = ::readlinkat(root_, path.c_str(), target.data(), target.size());
        if (n < 0) {
          error_ = Status::IoError("readlink " + path + ": " + std::strerror(errno));
          return;
        }
        target.resize(static_cast<std::size_t>(n));
        if (m && m->target != target) {
          Remove(path);
          m = nullptr;
        }
        if (!m) {
          Operation op = Creating(OpKind::kSymlink, path, st, 0);
          op.path2 = target;
          Send(std::move(op));
        }
        SendAttrs(path, st, m, true);
        o_.gate->cursor().Set(path, true);
        return;
      }
      case S_IFIFO:
      case S_IFSOCK: {
        if (!m) Send(Creating(OpKind::kMknod, path, st, st.st_mode));
        SendAttrs(path, st, m, true);
        o_.gate->cursor().Set(path, true);
        return;
      }
      case S_IFREG:
        break;
      default:  // devices are never replicated (the mount is nodev)
        o_.gate->cursor().Set(path, true);
        return;
    }
    // A regular file. A second name of an inode already walked becomes a
    // link on the secondary too.
    if (st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto seen = links_.find(key);
      if (seen != links_.end()) {
        if (m) Remove(path);
        Operation op = Op(OpKind::kLink, seen->second);
        op.path2 = path;
        Send(std::move(op));
        o_.gate->cursor().Set(path, true);
        return;
      }
      links_[key] = path;
    }
    // A file the secondary shares with another name would change both:
    // start it afresh.
    if (m && m->nlink > 1) {
      Remove(path);
      m = nullptr;
    }
    if (!m) {
      Operation op = Creating(OpKind::kCreate, path, st, st.st_mode & 07777);
      op.flags = O_TRUNC;
      Send(std::move(op));
    }
    fd = ::openat(root_, path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      error_ = Status::IoError("open " + path + ": " + std::strerror(errno));
      return;
    }
    o_.gate->cursor().Set(path, true);
    next = Next::kFile;
  }

  // The steps of an entry after its first.
  Result<End> WalkEntry(Entry& e, int depth) {
    if (e.next == Entry::Next::kDir) return WalkDir(e.path, depth + 1);
    if (e.next == Entry::Next::kFile) {
      auto end = WalkFile(e.path, e.fd, e.st, e.m);
      ::close(e.fd);
      return end;
    }
    return End::kDone;
  }

  // A file the secondary has, from the dirty map: its noted zones (all of
  // them when it was replaced, or when the sizes differ and nothing says
  // why), then size and times.
  Result<End> WalkNotedZones(const std::string& path, int fd, const struct stat& st,
                             const ManifestEntry* m) {
    const std::size_t zone = o_.zone_size;
    std::string buf(zone, '\0');
    bool gone = false;
    bool sent_any = false;
    bool whole_file = false;
    // What the record says of this file, read once: the file is in the walked
    // part from the step that opened it, so no change of it is dropped (and
    // noted) from then on.
    // Zones the secondary may hold differently (it crashed as primary) are
    // sent too.
    DirtyMap::Zones z = o_.dirty->Of(path);
    if (!z.whole) {
      z.zones.insert(m->suspect.begin(), m->suspect.end());
      // Whatever lies beyond the end of the secondary's copy is missing there,
      // noted or not (a truncation it never got, then writes here).
      const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
      if (size > m->size && !z.zones.empty()) {
        for (std::uint64_t i = m->size / zone; i < (size + zone - 1) / zone; ++i) z.zones.insert(i);
      }
    }
    ReadZonesAhead(fd, z, zone);
    std::uint64_t next = 0;
    bool more = true;
    while (more && !gone) {
      bool ok = Step([&] {
        std::uint64_t size = 0;
        if (!CurrentSize(path, fd, st, &size, &gone)) return;
        // A size nothing noted explains: the map does not account for this
        // file, send it whole.
        if (next == 0 && !sent_any && z.zones.empty() && m->size != size) whole_file = true;
        const bool whole = z.whole || whole_file;
        std::vector<std::uint64_t> todo;
        const std::uint64_t zones = (size + zone - 1) / zone;
        if (whole) {
          for (std::uint64_t i = next; i < zones && todo.size() < ZonesPerStep(); ++i) {
            todo.push_back(i);
          }
        } else {
          for (auto it = z.zones.lower_bound(next);
               it != z.zones.end() && todo.size() < ZonesPerStep(); ++it) {
            if (*it < zones) todo.push_back(*it);
          }
        }
        if (todo.empty()) {
          more = false;
          return;
        }
        for (std::uint64_t index : todo) {
          const std::uint64_t off = index * zone;
          std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(zone, size - off));
          SendZone(path, buf, off, ReadAt(fd, buf, off, want));
          sent_any = true;
        }
        next = todo.back() + 1;
      });
      if (!ok) return Ended();
    }
    if (gone) return End::kDone;
    return FinishFile(path, fd, st, m, sent_any);
  }

  // Several zones (1 MiB) per step: fewer lock hand-overs, steps still short.
  std::size_t ZonesPerStep() const { return std::max<std::size_t>(1, (1u << 20) / o_.zone_size); }

  // The size of the file walked, in a step; false when the step ends there:
  // `path` no longer names it (removed or renamed: the gate told the
  // secondary; *gone) or it cannot be read (error_).
  bool CurrentSize(const std::string& path, int fd, const struct stat& st, std::uint64_t* size,
                   bool* gone) {
    if (!SameFile(path, st)) {
      *gone = true;
      return false;
    }
    struct stat now{};
    if (::fstat(fd, &now) != 0) {
      error_ = Status::IoError("stat " + path + ": " + std::strerror(errno));
      return false;
    }
    *size = static_cast<std::uint64_t>(now.st_size);
    return true;
  }

  // True while `path` still names the inode `st` describes.
  bool SameFile(const std::string& path, const struct stat& st) {
    struct stat now{};
    return ::fstatat(root_, path.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
           now.st_dev == st.st_dev && now.st_ino == st.st_ino;
  }

  Result<End> WalkFile(const std::string& path, int fd, const struct stat& st,
                       const ManifestEntry* m) {
    if (o_.dirty != nullptr && m != nullptr) return WalkNotedZones(path, fd, st, m);
    const std::size_t zone = o_.zone_size;
    std::string buf(zone, '\0');
    std::uint64_t index = 0;
    bool more = true;
    bool gone = false;
    bool sent_any = false;
    while (more && !gone) {
      bool ok = Step([&] {
        std::uint64_t size = 0;
        if (!CurrentSize(path, fd, st, &size, &gone)) return;
        for (std::size_t k = 0; k < ZonesPerStep(); ++k, ++index) {
          const std::uint64_t off = index * zone;
          if (off >= size) {
            more = false;
            return;
          }
          std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(zone, size - off));
          std::size_t got = ReadAt(fd, buf, off, want);
          if (progress_) progress_->bytes_compared += got;
          if (o_.dirty == nullptr) Done(got);
          if (m && index < m->zones.size() && m->zones[index] == HashZone(buf.data(), got)) {
            continue;
          }
          SendZone(path, buf, off, got);
          sent_any = true;
        }
      });
      if (!ok) return Ended();
    }
    if (gone) return End::kDone;
    return FinishFile(path, fd, st, m, sent_any);
  }

  // The file's last step: its size and attributes. A copy found identical
  // costs no operation at all; our writes moved the secondary's times.
  Result<End> FinishFile(const std::string& path, int fd, const struct stat& st,
                         const ManifestEntry* m, bool sent_any) {
    bool ok = Step([&] {
      if (!SameFile(path, st)) return;
      struct stat now{};
      if (::fstat(fd, &now) != 0) return;
      const std::uint64_t size = static_cast<std::uint64_t>(now.st_size);
      if (sent_any || !m || m->size != size) {
        Operation op = Op(OpKind::kTruncate, path);
        op.length = size;
        Send(std::move(op));
      }
      SendAttrs(path, now, m, false);
      if (sent_any || !m || m->mtime.tv_sec != now.st_mtim.tv_sec ||
          m->mtime.tv_nsec != now.st_mtim.tv_nsec) {
        Operation times = Op(OpKind::kUtimens, path);
        times.atime = now.st_atim;
        times.mtime = now.st_mtim;
        Send(std::move(times));
      }
    });
    if (!ok) return Ended();
    return End::kDone;
  }

  // Reads up to `want` bytes at `off` (less at the end of the file).
  static std::size_t ReadAt(int fd, std::string& buf, std::uint64_t off, std::size_t want) {
    std::size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(fd, buf.data() + got, want - got, static_cast<off_t>(off + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  }

  void SendZone(const std::string& path, const std::string& buf, std::uint64_t off,
                std::size_t got) {
    Operation op = Op(OpKind::kWrite, path);
    op.offset = off;
    op.data.assign(buf.data(), got);
    Send(std::move(op));
    if (progress_) {
      progress_->bytes_sent += got;
      progress_->zones_sent++;
    }
    if (o_.dirty != nullptr) Done(got);
  }

  // Bytes of the pass's total handled (SyncProgress::bytes_done).
  void Done(std::uint64_t n) {
    done_ += n;
    if (progress_) progress_->bytes_done += n;
  }

 public:
  std::uint64_t done() const { return done_; }

 private:
  const TreeSyncOptions& o_;
  const Manifest& m_;
  SyncProgress* progress_;
  std::uint64_t done_ = 0;
  const int root_;
  Status error_ = Status::Ok();
  bool stopped_ = false;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

// Reads ahead of the walk, on a thread of its own, from the moment the
// secondary is asked for its description: the primary's metadata (one stat
// per entry, in the walk's order) and, with a record, the zones it names.
// Its reads overlap the secondary's description instead of adding to the
// walk, whose steps hold writers back. A hint to the page cache only: the
// walk decides on what it reads itself.
class ReadAhead {
 public:
  ReadAhead(int root_fd, const DirtyMap* dirty, std::size_t zone_size, const PathFilter* filter)
      : root_(root_fd), dirty_(dirty), zone_(zone_size), filter_(filter) {
    thread_ = std::thread([this] { Dir(root_, "", 0); });
  }
  ~ReadAhead() {
    stop_ = true;
    thread_.join();
  }

 private:
  void Dir(int parent_fd, const std::string& rel, int depth) {
    if (depth > 4096 || stop_) return;
    int fd = rel.empty() ? ::openat(parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                         : ::openat(parent_fd, rel.substr(rel.rfind('/') + 1).c_str(),
                                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    DIR* d = ::fdopendir(fd);
    if (d == nullptr) {
      ::close(fd);
      return;
    }
    std::set<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string_view n(e->d_name);
      if (n != "." && n != "..") names.emplace(n);
    }
    for (const auto& name : names) {
      if (stop_) break;
      const std::string path = Join(rel, name);
      if (filter_ != nullptr && filter_->Excluded(path)) continue;
      struct stat st{};
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        Dir(fd, path, depth + 1);
      } else if (S_ISREG(st.st_mode) && dirty_ != nullptr) {
        Zones(fd, name, path);
      }
    }
    ::closedir(d);
  }

  void Zones(int dir_fd, const std::string& name, const std::string& path) {
    const DirtyMap::Zones z = dirty_->Of(path);
    if (!z.whole && z.zones.empty()) return;
    int f = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (f < 0) return;
    ReadZonesAhead(f, z, zone_);
    ::close(f);
  }

  const int root_;
  const DirtyMap* dirty_;
  const std::size_t zone_;
  const PathFilter* filter_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

namespace {

// What a pass has to handle, for its progress (SyncProgress::bytes_total):
// the record's estimate, or every regular file below the root. Read outside
// the walk's steps: an estimate of a tree that keeps changing.
std::uint64_t PassBytes(const TreeSyncOptions& o) {
  const int root = o.mount->real_dir_fd();
  auto bytes_at = [&](const std::string& rel) -> std::uint64_t {
    struct stat st{};
    if (::fstatat(root, rel.empty() ? "." : rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;
    if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
    if (!S_ISDIR(st.st_mode)) return 0;
    int fd = rel.empty() ? root : ::openat(root, rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    std::uint64_t sum = 0;
    DescribeTree(
        fd, o.zone_size,
        [&](ManifestEntry&& e) {
          if (e.IsRegular() && (o.filter == nullptr || !o.filter->Excluded(Join(rel, e.path)))) {
            sum += e.size;
          }
          return Status::Ok();
        },
        /*hash_zones=*/false);
    if (fd != root) ::close(fd);
    return sum;
  };
  return o.dirty != nullptr ? o.dirty->EstimateBytes(bytes_at) : bytes_at("");
}

}  // namespace

Status RunTreeSync(const TreeSyncOptions& o, SyncProgress* progress) {
  auto log = [&](const std::string& m) {
    if (o.log) o.log(m);
  };
  auto give_up = [&] {
    return (o.stop && o.stop()) || o.sender->state() != SenderState::kReplicating;
  };
  std::uint64_t last_total = 0;  // this dir's share of progress->bytes_total
  for (int pass = 1; pass <= o.max_passes; ++pass) {
    if (progress) progress->passes++;
    // The pass's total, summed before it starts (changes meanwhile are noted
    // or passed as before), so that neither the writers nor the walk wait
    // for it once the secondary has described its tree.
    const std::uint64_t total = progress ? PassBytes(o) : 0;
    o.manifests->Reset(o.dir_index);
    o.mount->RunExclusive([&] {
      o.gate->BeginSync();
      Operation begin;
      begin.kind = OpKind::kSyncBegin;
      begin.length = o.zone_size;
      begin.flags = o.dirty != nullptr ? kSyncBeginNoHashes : 0;
      o.sender->SubmitTo(o.dir_index, std::move(begin));
    });
    ReadAhead read_ahead(o.mount->real_dir_fd(), o.dirty, o.zone_size, o.filter);
    auto manifest = o.manifests->Take(o.dir_index, o.manifest_timeout, give_up);
    if (!manifest.ok()) return manifest.status();
    log("pass " + std::to_string(pass) + ": the secondary holds " +
        std::to_string(manifest->size()) + " entries; " +
        (o.dirty != nullptr ? "sending what changed (" + std::to_string(o.dirty->entries()) +
                                  " noted zones and files)"
                            : std::string("comparing by checksums")));
    if (progress) progress->BeginPass(total, last_total, o.dirty != nullptr);
    last_total = total;
    Walk walk(o, *manifest, progress);
    auto end = walk.Run();
    if (!end.ok()) return end.status();
    if (*end == Walk::End::kStopped) return Status::Failed("synchronisation stopped");
    if (*end == Walk::End::kAborted) {
      log("a change moved content the secondary lacks into the part already compared: "
          "comparing again");
      if (progress) progress->bytes_done -= walk.done();  // counted again by the next pass
      continue;
    }
    std::uint64_t ticket = 0;
    o.mount->RunExclusive([&] {
      Operation flush;
      flush.kind = OpKind::kFsync;
      ticket = o.sender->SubmitTo(o.dir_index, std::move(flush));
      Operation end_op;
      end_op.kind = OpKind::kSyncEnd;
      end_op.offset = o.generation;
      o.sender->SubmitTo(o.dir_index, std::move(end_op));
      o.gate->Pass();
      // From here the secondary holds everything: note afresh.
      if (o.record != nullptr) o.record->Reset(o.generation);
    });
    if (Status s = o.sender->Wait(ticket); !s.ok()) return s;
    if (o.sender->state() != SenderState::kReplicating) {
      return Status::Failed("the secondary was lost at the end of the synchronisation");
    }
    return Status::Ok();
  }
  return Status::Failed("the tree kept changing in ways that restart the comparison (" +
                        std::to_string(o.max_passes) + " passes)");
}

Status CoolHotZones(Interceptor& mount, HotZones& hot, DirtyMap& record) {
  if (hot.empty()) return Status::Ok();
  std::uint64_t ended = 0;
  mount.RunExclusive([&] { ended = hot.Advance(); });
  if (::syncfs(mount.real_dir_fd()) != 0) {
    return Status::IoError(std::string("syncfs: ") + std::strerror(errno));
  }
  if (Status s = record.Flush(); !s.ok()) return s;
  if (Status s = hot.Cool(ended); !s.ok()) return s;
  return record.CompactIfLarge();
}

}  // namespace hakit::replication
