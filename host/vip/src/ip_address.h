// Small value types shared by the Linux VIP code: an IP address of either
// family, MAC formatting, errno text. Internal to hakit_vip.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hakit::vip {

struct IpAddress {
  int family = 0;                   // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; first 4 for IPv4

  bool is_v4() const;
  std::size_t size() const { return is_v4() ? 4 : 16; }
  // 32 or 128: the host prefix.
  int max_prefix() const { return is_v4() ? 32 : 128; }
  // fe80::/10: only meaningful together with an interface.
  bool is_v6_link_local() const;

  bool operator==(const IpAddress& other) const = default;
};

// Parses an IPv4 or IPv6 literal (no host names, no "/prefix").
std::optional<IpAddress> ParseIpAddress(std::string_view text);
// The canonical text (inet_ntop).
std::string FormatIpAddress(const IpAddress& address);
// Whether a and b agree on their first prefix_len bits (same family only).
bool SameSubnet(const IpAddress& a, const IpAddress& b, int prefix_len);

// "02:00:00:00:00:01".
std::string FormatMac(const uint8_t* bytes, std::size_t size);

// strerror, thread-safe: "Operation not permitted".
std::string ErrnoText(int err);

}  // namespace hakit::vip
