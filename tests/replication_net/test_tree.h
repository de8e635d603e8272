// Helpers shared by the replication protocol tests and the benchmark:
// temporary directories, operation builders and a textual snapshot of a
// tree to compare the primary's and the secondary's copies.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "hakit/replication/operation.h"

namespace hakit::replication::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "hakit-repl");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// An O_DIRECTORY descriptor of `dir`, closed by the destructor.
class DirFd {
 public:
  explicit DirFd(const std::filesystem::path& dir);
  ~DirFd();
  DirFd(const DirFd&) = delete;
  DirFd& operator=(const DirFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

Operation MakeCreate(const std::string& path, std::uint32_t mode = 0644);
Operation MakeWrite(const std::string& path, std::uint64_t offset, std::string data);
Operation MakeTruncate(const std::string& path, std::uint64_t length);
Operation MakeMkdir(const std::string& path, std::uint32_t mode = 0755);
Operation MakeUnlink(const std::string& path);
Operation MakeRename(const std::string& from, const std::string& to);
Operation MakeFsync(const std::string& path);

// One line per entry below `root`, sorted: relative path, type, permission
// bits, and for files the size and a digest of the contents, for links the
// target. Two trees are equal for replication purposes when these are.
std::string DescribeTree(const std::filesystem::path& root);

// The whole contents of a file ("" if it cannot be read).
std::string ReadFile(const std::filesystem::path& file);

}  // namespace hakit::replication::testing
