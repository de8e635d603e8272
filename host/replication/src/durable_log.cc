#include "hakit/replication/durable_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "byte_codec.h"

namespace hakit::replication {

using sdk::Result;
using sdk::Status;

namespace {

constexpr std::uint32_t kMaxRecord = 1u << 20;

std::uint32_t Crc(std::string_view data) {
  boost::crc_32_type crc;
  crc.process_bytes(data.data(), data.size());
  return crc.checksum();
}

void Frame(std::string_view record, std::string* out) {
  PutU32(out, static_cast<std::uint32_t>(record.size()));
  PutU32(out, Crc(record));
  out->append(record);
}

Status WriteAll(int fd, const std::string& data, const std::string& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("writing " + path + ": " + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

Result<std::unique_ptr<DurableLog>> DurableLog::Open(
    const std::string& path, const std::function<void(std::string_view)>& replay) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(Errno("opening", path));
  std::unique_ptr<DurableLog> log(new DurableLog(path, fd));
  std::string content;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(content.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(Errno("reading", path));
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t pos = 0;
  while (pos < content.size()) {
    BytesIn in(std::string_view(content).substr(pos));
    std::uint32_t len = 0, crc = 0;
    bool whole = in.U32(&len) && in.U32(&crc) && len <= kMaxRecord &&
                 content.size() - pos - 8 >= len;
    std::string_view record = whole ? std::string_view(content).substr(pos + 8, len) : "";
    if (!whole || Crc(record) != crc) {
      // A crash during the last append cuts the file short; a bad record
      // followed by more is damage.
      if (whole && pos + 8 + len < content.size()) log->corrupt_at_ = pos;
      if (::ftruncate(fd, static_cast<off_t>(pos)) != 0) {
        return Status::IoError(Errno("truncating the damaged end of", path));
      }
      break;
    }
    replay(record);
    pos += 8 + len;
  }
  log->size_ = pos;
  return log;
}

DurableLog::~DurableLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::uint64_t DurableLog::Append(std::string_view record) {
  std::lock_guard lock(mu_);
  Frame(record, &buffer_);
  return ++appended_;
}

Status DurableLog::Flush(std::uint64_t ticket) {
  std::lock_guard flush(flush_mu_);
  std::string data;
  std::uint64_t target = 0;
  {
    std::lock_guard lock(mu_);
    if (ticket == 0) ticket = appended_;
    if (!failed_.ok()) return failed_;
    if (durable_ >= ticket) return Status::Ok();  // another flush covered it
    data.swap(buffer_);
    target = appended_;
    size_ += data.size();
  }
  Status s = WriteAll(fd_, data, path_);
  if (s.ok() && ::fdatasync(fd_) != 0) s = Status::IoError(Errno("syncing", path_));
  std::lock_guard lock(mu_);
  if (!s.ok()) {
    // What was written may be half there: nothing appended from now on can
    // be trusted to follow it.
    failed_ = s;
    return s;
  }
  durable_ = target;
  return Status::Ok();
}

Status DurableLog::Replace(const std::vector<std::string>& records) {
  std::lock_guard flush(flush_mu_);
  std::string data;
  for (const auto& r : records) Frame(r, &data);
  const std::string tmp = path_ + ".new";
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IoError(Errno("creating", tmp));
  Status s = WriteAll(fd, data, tmp);
  if (s.ok() && ::fsync(fd) != 0) s = Status::IoError(Errno("syncing", tmp));
  if (s.ok() && ::rename(tmp.c_str(), path_.c_str()) != 0) {
    s = Status::IoError(Errno("renaming " + tmp + " to", path_));
  }
  if (!s.ok()) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename itself is durable once the directory is.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  std::lock_guard lock(mu_);
  ::close(fd_);
  fd_ = fd;
  buffer_.clear();
  durable_ = appended_;
  size_ = data.size();
  failed_ = Status::Ok();
  return Status::Ok();
}

std::uint64_t DurableLog::size() const {
  std::lock_guard lock(mu_);
  return size_;
}

}  // namespace hakit::replication
