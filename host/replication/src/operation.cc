#include "hakit/replication/operation.h"

namespace hakit::replication {

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kCreate: return "create";
    case OpKind::kWrite: return "write";
    case OpKind::kTruncate: return "truncate";
    case OpKind::kFallocate: return "fallocate";
    case OpKind::kUnlink: return "unlink";
    case OpKind::kRename: return "rename";
    case OpKind::kMkdir: return "mkdir";
    case OpKind::kRmdir: return "rmdir";
    case OpKind::kSymlink: return "symlink";
    case OpKind::kLink: return "link";
    case OpKind::kMknod: return "mknod";
    case OpKind::kChmod: return "chmod";
    case OpKind::kChown: return "chown";
    case OpKind::kUtimens: return "utimens";
    case OpKind::kSetXattr: return "setxattr";
    case OpKind::kRemoveXattr: return "removexattr";
    case OpKind::kFsync: return "fsync";
    case OpKind::kRemoveTree: return "remove-tree";
    case OpKind::kSyncBegin: return "sync-begin";
    case OpKind::kSyncEnd: return "sync-end";
  }
  return "unknown";
}

}  // namespace hakit::replication
