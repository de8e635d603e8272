#include "hakit/config/values.h"

#include <arpa/inet.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <string>

#include "hakit/config/problem.h"

namespace hakit::config {

using sdk::Result;
using sdk::Status;

std::string SourceLocation::ToString() const {
  if (!known()) return "?";
  return std::to_string(line) + ":" + std::to_string(column);
}

std::string Problem::ToString() const {
  std::string out = file;
  if (location.known()) out += ":" + location.ToString();
  out += ": ";
  if (!element.empty()) out += "<" + element + ">";
  if (!attribute.empty()) out += " " + attribute;
  if (!element.empty() || !attribute.empty()) out += ": ";
  out += message;
  if (!hint.empty()) out += " (" + hint + ")";
  return out;
}

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool IsUpperWord(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isupper(static_cast<unsigned char>(c)) &&
        !std::isdigit(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

}  // namespace

Result<std::chrono::milliseconds> ParseDuration(std::string_view text, TimeUnit plain_unit) {
  std::string_view s = Trim(text);
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) {
    return Status::InvalidArgument(s.empty() ? "empty time value"
                                             : "\"" + std::string(text) + "\" is not a time value");
  }
  std::uint64_t number = 0;
  for (size_t i = 0; i < digits; ++i) {
    number = number * 10 + static_cast<std::uint64_t>(s[i] - '0');
    // Beyond this no unit multiplier can stay in range; stop before wrapping.
    if (number > (std::uint64_t{1} << 40)) {
      return Status::InvalidArgument("\"" + std::string(text) + "\" is too large");
    }
  }
  std::string_view unit = s.substr(digits);
  std::uint64_t factor = 0;
  if (unit.empty()) {
    switch (plain_unit) {
      case TimeUnit::kMilliseconds:
        factor = 1;
        break;
      case TimeUnit::kSeconds:
        factor = 1000;
        break;
      case TimeUnit::kMinutes:
        factor = 60'000;
        break;
      case TimeUnit::kHours:
        factor = 3'600'000;
        break;
    }
  } else if (unit == "ms") {
    factor = 1;
  } else if (unit == "s") {
    factor = 1000;
  } else if (unit == "m" || unit == "min") {
    factor = 60'000;
  } else if (unit == "h") {
    factor = 3'600'000;
  } else {
    return Status::InvalidArgument("\"" + std::string(text) + "\" is not a time value");
  }
  std::uint64_t ms = number * factor;
  if (ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 2)) {
    return Status::InvalidArgument("\"" + std::string(text) + "\" is too large");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::string FormatDuration(std::chrono::milliseconds value) {
  auto ms = value.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

bool IsIpv4Address(std::string_view text) {
  std::string s(text);
  unsigned char buf[sizeof(struct in_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1;
}

bool IsIpv6Address(std::string_view text) {
  std::string s(text);
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool IsIpAddress(std::string_view text) { return IsIpv4Address(text) || IsIpv6Address(text); }

bool IsHostName(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  if (text.back() == '.') text.remove_suffix(1);  // fully qualified
  bool all_numeric = true;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('.', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view label = text.substr(start, end - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
      if (!std::isdigit(static_cast<unsigned char>(c))) all_numeric = false;
    }
    start = end + 1;
  }
  // "10.0.0.300" has host name syntax but is a mistyped address, not a name.
  return !all_numeric;
}

bool IsPlaceholder(std::string_view text) {
  text = Trim(text);
  if (text.find("TO_BE_DEFINED") != std::string_view::npos) return true;
  // What SafeKit templates name the value to put in place of the word.
  static constexpr std::array<std::string_view, 14> kPlaceholderTails = {
      "NAME", "PATH",   "DIR",  "DIRECTORY", "ADDR",  "ADDRESS",  "IP",
      "HOST", "SERVER", "PORT", "USER",      "VALUE", "HOSTNAME", "INSTANCE"};
  size_t underscore = text.rfind('_');
  if (underscore == std::string_view::npos || underscore == 0) return false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('_', start);
    if (end == std::string_view::npos) end = text.size();
    if (!IsUpperWord(text.substr(start, end - start))) return false;
    start = end + 1;
  }
  std::string_view tail = text.substr(underscore + 1);
  for (std::string_view t : kPlaceholderTails) {
    if (tail == t) return true;
  }
  return false;
}

bool IsWindowsPath(std::string_view text) {
  if (text.find('\\') != std::string_view::npos) return true;
  return text.size() >= 2 && std::isalpha(static_cast<unsigned char>(text[0])) && text[1] == ':';
}

bool IsVariableName(std::string_view text) {
  if (text.empty()) return false;
  if (!std::isalpha(static_cast<unsigned char>(text[0])) && text[0] != '_') return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace hakit::config
