#include "test_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

namespace hakit::replication::testing {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

DirFd::DirFd(const fs::path& dir) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error("cannot open " + dir.string());
}

DirFd::~DirFd() {
  if (fd_ >= 0) ::close(fd_);
}

Operation MakeCreate(const std::string& path, std::uint32_t mode) {
  Operation op;
  op.kind = OpKind::kCreate;
  op.path = path;
  op.mode = mode;
  return op;
}

Operation MakeWrite(const std::string& path, std::uint64_t offset, std::string data) {
  Operation op;
  op.kind = OpKind::kWrite;
  op.path = path;
  op.offset = offset;
  op.length = data.size();
  op.data = std::move(data);
  return op;
}

Operation MakeTruncate(const std::string& path, std::uint64_t length) {
  Operation op;
  op.kind = OpKind::kTruncate;
  op.path = path;
  op.length = length;
  return op;
}

Operation MakeMkdir(const std::string& path, std::uint32_t mode) {
  Operation op;
  op.kind = OpKind::kMkdir;
  op.path = path;
  op.mode = mode;
  return op;
}

Operation MakeUnlink(const std::string& path) {
  Operation op;
  op.kind = OpKind::kUnlink;
  op.path = path;
  return op;
}

Operation MakeRename(const std::string& from, const std::string& to) {
  Operation op;
  op.kind = OpKind::kRename;
  op.path = from;
  op.path2 = to;
  return op;
}

Operation MakeFsync(const std::string& path) {
  Operation op;
  op.kind = OpKind::kFsync;
  op.path = path;
  return op;
}

std::string ReadFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string DescribeTree(const fs::path& root) {
  std::set<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::ostringstream line;
    line << fs::relative(it->path(), root).string() << " mode=" << std::oct << (st.st_mode & 07777)
         << std::dec;
    if (S_ISREG(st.st_mode)) {
      std::string data = ReadFile(it->path());
      line << " file size=" << st.st_size << " digest=" << std::hash<std::string>{}(data);
    } else if (S_ISDIR(st.st_mode)) {
      line << " dir";
    } else if (S_ISLNK(st.st_mode)) {
      line << " link -> " << fs::read_symlink(it->path()).string();
    } else {
      line << " other";
    }
    lines.insert(line.str());
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace hakit::replication::testing
