#include "hakit/cluster/heartbeat_key.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "hakit/cluster/heartbeat_codec.h"

namespace hakit::cluster {

namespace {

using sdk::Result;
using sdk::Status;

std::string Errno() { return std::strerror(errno); }

// Wipes a string holding key material before it is freed.
struct Scrub {
  std::string* s;
  ~Scrub() {
    if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
  }
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

Status GenerateClusterKey(const std::filesystem::path& path, bool overwrite) {
  std::error_code ec;
  if (!overwrite && std::filesystem::exists(path, ec)) {
    return Status::InvalidArgument("cluster key " + path.string() +
                                   " already exists: refusing to replace it (every node "
                                   "must share the same key; remove the file first to "
                                   "really generate a new one)");
  }
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return Status::IoError("cannot create " + path.parent_path().string() + ": " + ec.message());
    }
  }

  std::vector<std::uint8_t> bytes(kClusterKeySize);
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return Status::IoError("cannot generate a cluster key: the OpenSSL random generator failed");
  }
  std::string text = HexEncode(bytes) + "\n";
  OPENSSL_cleanse(bytes.data(), bytes.size());
  Scrub scrub{&text};

  const std::string tmp = path.string() + ".tmp";
  ::unlink(tmp.c_str());
  // O_EXCL: never write the key through a file (or symlink) someone planted.
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::IoError("cannot create " + tmp + ": " + Errno());
  // The umask may only remove bits, but be explicit about what we mean.
  bool ok = ::fchmod(fd, 0600) == 0 &&
            ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  std::string why = ok ? "" : Errno();
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Status::IoError("cannot write cluster key " + tmp + ": " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    why = Errno();
    ::unlink(tmp.c_str());
    return Status::IoError("cannot rename " + tmp + " to " + path.string() + ": " + why);
  }
  return Status::Ok();
}

Result<std::vector<std::uint8_t>> LoadClusterKey(const std::filesystem::path& path) {
  const std::string p = path.string();
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return Status::NotFound("no cluster key at " + p +
                              ": run hakit cluster genkey and copy the file to every node");
    }
    return Status::IoError("cannot stat cluster key " + p + ": " + Errno());
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument("cluster key " + p + " is not a regular file");
  }
  if (st.st_mode & 077) {
    return Status::InvalidArgument("cluster key " + p + " is accessible to group or others (mode " +
                                   Octal(st.st_mode) + "): chmod 600 " + p);
  }

  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError("cannot open cluster key " + p + ": " + Errno());
  std::string text;
  Scrub scrub{&text};
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string why = Errno();
      ::close(fd);
      OPENSSL_cleanse(buf, sizeof buf);
      return Status::IoError("cannot read cluster key " + p + ": " + why);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    // A key file is one short line; anything big is not a key file.
    if (text.size() > 4096) break;
  }
  ::close(fd);
  OPENSSL_cleanse(buf, sizeof buf);

  // Surrounding whitespace (a trailing newline, an editor's extra line) is fine.
  std::size_t begin = text.find_first_not_of(" \t\r\n");
  std::size_t end = text.find_last_not_of(" \t\r\n");
  if (begin == std::string::npos) {
    return Status::InvalidArgument("cluster key " + p +
                                   " is empty: run hakit cluster genkey and copy the file to "
                                   "every node");
  }
  std::string_view hex(text.data() + begin, end - begin + 1);
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (HexValue(hex[i]) < 0) {
      return Status::InvalidArgument("cluster key " + p +
                                     " is not hexadecimal (bad character at offset " +
                                     std::to_string(begin + i) + ")");
    }
  }
  if (hex.size() % 2 != 0) {
    return Status::InvalidArgument("cluster key " + p + " has an odd number of hex digits");
  }
  std::size_t n = hex.size() / 2;
  if (n < kMinClusterKeySize || n > kMaxClusterKeySize) {
    return Status::InvalidArgument("cluster key " + p + " holds " + std::to_string(n) +
                                   " bytes, expected " + std::to_string(kMinClusterKeySize) + ".." +
                                   std::to_string(kMaxClusterKeySize));
  }
  std::vector<std::uint8_t> key(n);
  for (std::size_t i = 0; i < n; ++i) {
    key[i] = static_cast<std::uint8_t>(HexValue(hex[2 * i]) << 4 | HexValue(hex[2 * i + 1]));
  }
  return key;
}

}  // namespace hakit::cluster
