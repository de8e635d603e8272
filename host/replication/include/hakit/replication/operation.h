// The unit of replication: one change to a replicated directory, named by
// its path relative to the directory's root.
//
// The interceptor (FUSE, on the primary) builds an Operation for every change
// an application makes, after applying it to the real directory; the
// transport carries it to the secondary; the applier replays it there. Both
// sides agree on nothing but this struct and ApplyOperation().
#pragma once

#include <sys/stat.h>  // UTIME_OMIT, UTIME_NOW
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <string>

#include "hakit/sdk/status.h"

namespace hakit::replication {

enum class OpKind : std::uint8_t {
  kCreate = 1,    // path, mode: a new empty regular file (O_CREAT|O_EXCL semantics relaxed:
                  // an existing file is truncated to 0 only if flags has O_TRUNC)
  kWrite,         // path, offset, data
  kTruncate,      // path, length
  kFallocate,     // path, flags (fallocate mode), offset, length
  kUnlink,        // path
  kRename,        // path -> path2, flags (RENAME_NOREPLACE / RENAME_EXCHANGE)
  kMkdir,         // path, mode
  kRmdir,         // path
  kSymlink,       // path (the link), path2 (its target text)
  kLink,          // path (existing) -> path2 (new name)
  kMknod,         // path, mode (FIFOs and sockets only; devices are refused)
  kChmod,         // path, mode
  kChown,         // path, uid, gid (-1 keeps)
  kUtimens,       // path, atime, mtime (UTIME_NOW / UTIME_OMIT allowed)
  kSetXattr,      // path, name, data, flags
  kRemoveXattr,   // path, name
  kFsync,         // path (empty: the whole directory), flags 1 = datasync only
  // Full synchronisation (sync.h), sent by the primary's TreeSync only:
  kRemoveTree,    // path: whatever is there (a directory with its content); missing is fine
  kSyncBegin,     // path "": the secondary describes this dir (MANIFEST frames), zones of
                  // `length` bytes; its copy is inconsistent until kSyncEnd
  kSyncEnd,       // path "": the copy now equals the primary's (generation in `offset`)
};

// kSyncBegin's flags: describe without zone hashes (the primary sends what
// its dirty map noted).
inline constexpr std::uint32_t kSyncBeginNoHashes = 1;

const char* OpKindName(OpKind kind);

struct Operation {
  OpKind kind = OpKind::kWrite;
  std::string path;   // relative, no leading '/', never "..": "dir/file"
  std::string path2;  // rename/link destination, symlink target
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint32_t mode = 0;
  std::uint32_t flags = 0;
  std::int64_t uid = -1;
  std::int64_t gid = -1;
  timespec atime{0, UTIME_OMIT};
  timespec mtime{0, UTIME_OMIT};
  std::string name;   // xattr name
  std::string data;   // write bytes, xattr value

  // True for the operations whose acknowledgement means "on disk" rather
  // than "received".
  bool IsDurabilityBarrier() const { return kind == OpKind::kFsync; }
};

// Applies one operation below `root_fd` (an O_PATH or O_DIRECTORY descriptor
// of the real directory), with *at() system calls that never follow a
// symbolic link out of the tree. Idempotent where the primary's result allows
// it (replaying a write, a chmod, an unlink of a missing file), so that a
// resent operation after a reconnection does no harm. Errors name the
// operation and the path.
sdk::Status ApplyOperation(int root_fd, const Operation& op);

// Where the interceptor hands every change, in the order it applied them.
//
// Threading: Submit() is called from many FUSE threads; for any two
// operations on the same file, the interceptor calls Submit() in the order it
// applied them (it holds a per-file lock around apply + Submit), and the
// secondary must apply them in the order of Submit(). Wait() may be called
// from any thread, outside that lock.
class OperationSink {
 public:
  virtual ~OperationSink() = default;

  // Called before a write, a fallocate, a create or a rename is applied
  // locally, with
  // the operation as it will be submitted (a write's data may be empty: its
  // size is then in `length`). A sink that must remember, across a crash,
  // where this copy may differ from its peer's makes that durable here. An
  // error fails the change before anything is applied. Default: nothing.
  virtual sdk::Status Prepare(const Operation& op) { return sdk::Status::Ok(); }

  // Queues an operation that was just applied locally; returns its ticket.
  // Never waits for the network; may wait for room in a bounded window.
  virtual std::uint64_t Submit(Operation op) = 0;

  // Blocks until the ticket is acknowledged as the replication guarantee
  // requires: received by the secondary (async="second"), applied by it
  // (async="none"), durable on its disk (kFsync, always). Returns ok at once
  // when the sink is not replicating (ALONE): the caller's local result
  // stands. Never blocks longer than the replication timeout.
  virtual sdk::Status Wait(std::uint64_t ticket) = 0;
};

}  // namespace hakit::replication
