// Interceptor: the write-interception layer. It mounts a FUSE passthrough
// file system (libfuse3) over a replicated directory, after opening a
// descriptor to the real directory underneath, so that applications keep
// their paths while every change they make passes through us.
//
// kPrimary: each modifying call is applied to the real directory (with *at()
// calls on the held descriptor), turned into an Operation, handed to the
// sink under a per-file lock (so that two changes to one file reach the sink
// in the order they were applied), and acknowledged to the application only
// after sink->Wait() returned. The kernel's writeback cache is off: every
// write reaches us before write(2) returns.
//
// kReadOnly: the secondary. The mount is read-only (EROFS for every change);
// the replication applier writes to the real directory through
// real_dir_fd(), not through FUSE. Attribute and entry caches are disabled
// so that local readers see the applier's changes at their next call.
//
// Semantics worth knowing (all from the high-level libfuse API we use):
//  - Files are created with the caller's uid and gid (the daemon runs as
//    root and chowns), group inherited from a set-group-ID parent; the
//    kernel checks permissions (default_permissions, allow_other), with
//    POSIX ACLs when xattrs are on.
//  - An open file that is unlinked (or renamed over) keeps working
//    (hard_remove, no .fuse_hidden files); changes made through such a
//    descriptor are applied locally but not replicated: there is no path
//    left to name them by. Harmless when the inode has no other name; when
//    it still has a hard link elsewhere the peer's copy now differs, which
//    Stats::unreplicated_changes counts (the daemon should resync).
//  - Hard links are separate nodes for libfuse: attributes seen through one
//    name may lag a change made through another by up to 1 s (the primary's
//    attribute cache); data is always current (no writeback cache).
//  - The mount is nosuid,nodev.
//
// Threading: Mount() runs the FUSE session on threads of its own; every
// method is thread-safe. Do not call Unmount() from a FUSE callback (the
// sink's Submit/Wait), it waits for them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "hakit/replication/operation.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {

struct InterceptorOptions {
  enum class Mode {
    kPrimary,   // read-write; every change goes to the sink
    kReadOnly,  // every change fails with EROFS; only the applier writes
  };

  // The replicated directory: an existing directory, mounted over in place.
  std::string dir;

  // Default kPrimary.
  Mode mode = Mode::kPrimary;

  // Where changes go (kPrimary). Not owned; must outlive the Interceptor.
  // Null: no replication at all ("FUSE alone", for benchmarks and tests).
  OperationSink* sink = nullptr;

  // acl="on": pass extended attributes (and so POSIX ACLs) through and
  // replicate them; the kernel then enforces ACLs. Off: the xattr calls fail
  // with ENOTSUP. Default off.
  bool xattrs = false;

  // Most FUSE worker threads serving requests at once. Default 8.
  int threads = 8;
};

class Interceptor {
 public:
  using Mode = InterceptorOptions::Mode;

  // Counters since Mount(), read without stopping the file system.
  struct Stats {
    std::uint64_t operations = 0;           // changes applied (and submitted, with a sink)
    std::uint64_t bytes_written = 0;        // write(2) payload applied
    std::uint64_t replication_errors = 0;   // sink->Wait() failures (the caller got EIO)
    std::uint64_t unreplicated_changes = 0; // to a hard-linked file through an unlinked name
  };

  // Mounts over options.dir. Cleans a stale mount left there by a crashed
  // daemon first (CleanupStaleMount); refuses a directory that already
  // carries a live hakit mount. Needs root (CAP_SYS_ADMIN) and /dev/fuse.
  static sdk::Result<std::unique_ptr<Interceptor>> Mount(InterceptorOptions options);

  // A FUSE mount at `dir` whose daemon died answers every call with
  // ENOTCONN ("Transport endpoint is not connected"). If `dir` is such a
  // mount, detaches it (lazily, so that processes still holding files there
  // do not block us), repeatedly if mounts are stacked. Ok when there was
  // nothing to clean. Never touches a live mount.
  static sdk::Status CleanupStaleMount(const std::string& dir);

  Interceptor(const Interceptor&) = delete;
  Interceptor& operator=(const Interceptor&) = delete;

  // Unmounts if still mounted.
  ~Interceptor();

  // Stops serving and detaches the mount. Always lazy: it returns at once,
  // even with files still open there; those descriptors then fail with
  // ENOTCONN (the connection is aborted) and the real directory is visible
  // at the path again. Waits for requests being served (bounded by the
  // sink's replication timeout). Idempotent.
  sdk::Status Unmount();

  // The real directory underneath (O_RDONLY|O_DIRECTORY), valid until the
  // Interceptor is destroyed, also after Unmount(). On the secondary the
  // applier passes it to ApplyOperation().
  int real_dir_fd() const;

  // Runs `step` while no change is in progress through this mount: changes
  // that started before have been applied, submitted and acknowledged, and
  // new ones wait until `step` returns. The full synchronisation (sync.h)
  // reads the real directory in such steps, so that what it reads and
  // submits is ordered with every change. `step` must not change the tree
  // through the mount.
  void RunExclusive(const std::function<void()>& step);

  const std::string& dir() const;
  Mode mode() const;
  Stats stats() const;

  struct State;  // the file system's state, shared with the FUSE callbacks

 private:
  explicit Interceptor(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace hakit::replication
