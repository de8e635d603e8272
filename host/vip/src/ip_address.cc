#include "ip_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

namespace hakit::vip {

bool IpAddress::is_v4() const { return family == AF_INET; }

bool IpAddress::is_v6_link_local() const {
  return family == AF_INET6 && bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;
}

std::optional<IpAddress> ParseIpAddress(std::string_view text) {
  // inet_pton wants a NUL-terminated string; copying also rejects embedded NULs.
  std::string s(text);
  if (s.empty() || s.find('\0') != std::string::npos) return std::nullopt;
  IpAddress address;
  if (inet_pton(AF_INET, s.c_str(), address.bytes.data()) == 1) {
    address.family = AF_INET;
    return address;
  }
  if (inet_pton(AF_INET6, s.c_str(), address.bytes.data()) == 1) {
    address.family = AF_INET6;
    return address;
  }
  return std::nullopt;
}

std::string FormatIpAddress(const IpAddress& address) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(address.family, address.bytes.data(), buf, sizeof(buf)) == nullptr) return "?";
  return buf;
}

bool SameSubnet(const IpAddress& a, const IpAddress& b, int prefix_len) {
  if (a.family != b.family || prefix_len < 0 || prefix_len > a.max_prefix()) return false;
  int full = prefix_len / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), full) != 0) return false;
  int rest = prefix_len % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (b.bytes[full] & mask);
}

std::string FormatMac(const uint8_t* bytes, std::size_t size) {
  std::string out;
  char part[4];
  for (std::size_t i = 0; i < size; ++i) {
    std::snprintf(part, sizeof(part), i == 0 ? "%02x" : ":%02x", bytes[i]);
    out += part;
  }
  return out;
}

std::string ErrnoText(int err) {
  char buf[256];
  // The GNU strerror_r returns a pointer that may or may not be buf.
  return strerror_r(err, buf, sizeof(buf));
}

}  // namespace hakit::vip
