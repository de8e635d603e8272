#include "hakit/sqlserver/tds_prelogin.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace hakit::sqlserver {

using sdk::Result;
using sdk::Status;

namespace {

void PutU16(std::vector<std::uint8_t>& out, std::size_t at, std::uint16_t v) {
  out[at] = static_cast<std::uint8_t>(v >> 8);
  out[at + 1] = static_cast<std::uint8_t>(v & 0xff);
}

std::uint16_t GetU16(std::span<const std::uint8_t> in, std::size_t at) {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

// A packet of `type` whose data is a PRELOGIN structure with these options,
// in this order.
std::vector<std::uint8_t> BuildPacket(
    std::uint8_t type,
    const std::vector<std::pair<std::uint8_t, std::vector<std::uint8_t>>>& opts) {
  const std::size_t table = opts.size() * 5 + 1;
  std::size_t data_len = table;
  for (const auto& o : opts) data_len += o.second.size();
  std::vector<std::uint8_t> p(kHeaderSize + data_len, 0);
  p[0] = type;
  p[1] = kStatusEndOfMessage;
  PutU16(p, 2, static_cast<std::uint16_t>(p.size()));
  p[6] = 1;  // PacketID
  std::size_t entry = kHeaderSize, offset = table;
  for (const auto& [token, bytes] : opts) {
    p[entry] = token;
    PutU16(p, entry + 1, static_cast<std::uint16_t>(offset));
    PutU16(p, entry + 3, static_cast<std::uint16_t>(bytes.size()));
    std::memcpy(p.data() + kHeaderSize + offset, bytes.data(), bytes.size());
    entry += 5;
    offset += bytes.size();
  }
  p[entry] = kTerminator;
  return p;
}

std::string Where(const std::string& addr, std::uint16_t port) {
  return (addr.find(':') != std::string::npos ? "[" + addr + "]" : addr) + ":" +
         std::to_string(port);
}

// Milliseconds left before `deadline`, at least 0.
int Left(std::chrono::steady_clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
  return d.count() < 0 ? 0 : static_cast<int>(d.count());
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string PreloginReply::ToString() const {
  static const char* kEnc[] = {"encryption off", "encryption on", "encryption not supported",
                               "encryption required"};
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(build) + "." +
         std::to_string(sub_build) + " (" + (encryption <= 3 ? kEnc[encryption] : "?") + ")";
}

std::vector<std::uint8_t> BuildPreloginRequest() {
  return BuildPacket(kPacketPrelogin, {{kVersion, {0, 0, 0, 0, 0, 0}},
                                       {kEncryption, {kEncryptNotSup}},
                                       {kInstOpt, {0}},
                                       {kThreadId, {0, 0, 0, 0}},
                                       {kMars, {0}}});
}

std::vector<std::uint8_t> BuildPreloginResponse(const PreloginReply& r) {
  return BuildPacket(
      kPacketTabularResult,
      {{kVersion,
        {r.major, r.minor, static_cast<std::uint8_t>(r.build >> 8),
         static_cast<std::uint8_t>(r.build & 0xff), static_cast<std::uint8_t>(r.sub_build >> 8),
         static_cast<std::uint8_t>(r.sub_build & 0xff)}},
       {kEncryption, {r.encryption}},
       {kInstOpt, {0}},
       {kThreadId, {}},
       {kMars, {0}}});
}

Result<PreloginReply> ParsePreloginResponse(std::span<const std::uint8_t> packet) {
  auto bad = [](const std::string& why) {
    return Status::InvalidArgument("not a PRELOGIN response: " + why);
  };
  if (packet.size() < kHeaderSize) {
    return bad("only " + std::to_string(packet.size()) + " bytes, a TDS header has 8");
  }
  if (packet[0] != kPacketTabularResult) {
    return bad("packet type " + std::to_string(packet[0]) + ", expected 4 (tabular result)");
  }
  if ((packet[1] & kStatusEndOfMessage) == 0) return bad("end-of-message bit not set");
  const std::size_t length = GetU16(packet, 2);
  if (length < kHeaderSize + 1 || length > packet.size()) {
    return bad("Length field " + std::to_string(length) + " does not fit the " +
               std::to_string(packet.size()) + " bytes received");
  }
  std::span<const std::uint8_t> data = packet.subspan(kHeaderSize, length - kHeaderSize);

  struct Option {
    std::uint8_t token;
    std::size_t offset, length;
  };
  std::vector<Option> options;
  std::set<std::uint8_t> seen;
  std::size_t pos = 0;
  for (;;) {
    if (pos >= data.size()) return bad("option table has no terminator (0xFF)");
    if (data[pos] == kTerminator) {
      ++pos;
      break;
    }
    if (pos + 5 > data.size()) return bad("option table truncated at byte " + std::to_string(pos));
    Option o{data[pos], GetU16(data, pos + 1), GetU16(data, pos + 3)};
    if (!seen.insert(o.token).second) return bad("option " + std::to_string(o.token) + " twice");
    options.push_back(o);
    pos += 5;
  }
  const std::size_t table_end = pos;
  for (const Option& o : options) {
    if (o.offset < table_end || o.offset + o.length > data.size()) {
      return bad("option " + std::to_string(o.token) + " at offset " + std::to_string(o.offset) +
                 " length " + std::to_string(o.length) + " lies outside the option data");
    }
  }
  if (options.empty() || options.front().token != kVersion) {
    return bad("VERSION is not the first option");
  }
  PreloginReply r;
  const Option& v = options.front();
  if (v.length != 6) return bad("VERSION is " + std::to_string(v.length) + " bytes, expected 6");
  r.major = data[v.offset];
  r.minor = data[v.offset + 1];
  r.build = GetU16(data, v.offset + 2);
  r.sub_build = GetU16(data, v.offset + 4);
  bool have_encryption = false;
  for (const Option& o : options) {
    if (o.token != kEncryption) continue;
    if (o.length != 1)
      return bad("ENCRYPTION is " + std::to_string(o.length) + " bytes, expected 1");
    if (data[o.offset] > kEncryptReq) {
      return bad("ENCRYPTION value " + std::to_string(data[o.offset]) + " is not 0 to 3");
    }
    r.encryption = data[o.offset];
    have_encryption = true;
  }
  if (!have_encryption) return bad("no ENCRYPTION option");
  return r;
}

Result<PreloginReply> ProbeTds(const std::string& addr, std::uint16_t port,
                               std::chrono::milliseconds timeout) {
  const std::string where = Where(addr, port);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_storage ss{};
  socklen_t ss_len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    ss_len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    ss_len = sizeof(sockaddr_in6);
  } else {
    return Status::InvalidArgument("TDS probe: \"" + addr + "\" is not an IP address");
  }
  Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0)
    return Status::IoError("TDS probe " + where + ": socket: " + std::strerror(errno));
  auto wait = [&](short events, const char* what) -> Status {
    pollfd p{fd.get(), events, 0};
    int n = ::poll(&p, 1, Left(deadline));
    if (n < 0) return Status::IoError("TDS probe " + where + ": poll: " + std::strerror(errno));
    if (n == 0) {
      return Status::Timeout("TDS probe " + where + ": no " + what + " within " +
                             std::to_string(timeout.count()) + " ms");
    }
    return Status::Ok();
  };
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), ss_len) != 0) {
    if (errno != EINPROGRESS) {
      return Status::IoError("TDS probe " + where + ": connect: " + std::strerror(errno));
    }
    if (Status s = wait(POLLOUT, "connection"); !s.ok()) return s;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Status::IoError("TDS probe " + where + ": connect: " + std::strerror(err));
  }
  const std::vector<std::uint8_t> request = BuildPreloginRequest();
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
      if (Status s = wait(POLLOUT, "room to send"); !s.ok()) return s;
      continue;
    }
    if (n < 0) return Status::IoError("TDS probe " + where + ": send: " + std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
  // One packet: its header's Length says how many bytes to wait for.
  std::vector<std::uint8_t> reply;
  std::size_t want = kHeaderSize;
  while (reply.size() < want) {
    std::uint8_t buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status s = wait(POLLIN, "complete PRELOGIN response"); !s.ok()) return s;
      continue;
    }
    if (n < 0) return Status::IoError("TDS probe " + where + ": recv: " + std::strerror(errno));
    if (n == 0) {
      if (reply.empty())
        return Status::IoError("TDS probe " + where + ": closed without answering");
      break;  // short: the parser says what is missing
    }
    reply.insert(reply.end(), buf, buf + n);
    if (reply.size() >= kHeaderSize) {
      // An answer that is not TDS can carry any "length": judge it as it is.
      if (reply[0] != kPacketTabularResult) break;
      want = std::max<std::size_t>(kHeaderSize, GetU16(reply, 2));
    }
  }
  auto parsed = ParsePreloginResponse(reply);
  if (!parsed.ok()) {
    return Status::InvalidArgument("TDS probe " + where +
                                   ": not SQL Server: " + parsed.status().message());
  }
  return parsed;
}

}  // namespace hakit::sqlserver
