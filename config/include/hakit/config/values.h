// Checks and conversions for attribute values, shared by the userconfig.xml
// and cluster.xml parsers and usable by the CLI. None of them touches the
// network: addresses are recognised with inet_pton, never resolved.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "hakit/sdk/status.h"

namespace hakit::config {

// The unit a plain number stands for; each time attribute documents its own.
enum class TimeUnit { kMilliseconds, kSeconds, kMinutes, kHours };

// "700ms", "30s", "5m", "2h", or a plain non-negative integer counted in
// `plain_unit`. Surrounding blanks are ignored; fractions and signs are not
// accepted. The error message says what was wrong, without a location.
sdk::Result<std::chrono::milliseconds> ParseDuration(std::string_view text, TimeUnit plain_unit);

// "700ms", "30s", "5m", "2h": the shortest exact spelling.
std::string FormatDuration(std::chrono::milliseconds value);

// A literal IPv4 or IPv6 address (inet_pton), without prefix or zone.
bool IsIpAddress(std::string_view text);
bool IsIpv4Address(std::string_view text);
bool IsIpv6Address(std::string_view text);

// A syntactically valid DNS host name (RFC 1123 labels); not resolved.
bool IsHostName(std::string_view text);

// A value that SafeKit's templates ship for the user to replace:
// anything containing "TO_BE_DEFINED", or an ALL_CAPS_WITH_UNDERSCORES word
// whose last part names what to put there (PROCESS_NAME, SERVICE_NAME,
// DATA_DIR, SERVER_ADDR, ...). A parser that meets one where an address is
// expected accepts it; CheckModuleReadiness() then reports it.
bool IsPlaceholder(std::string_view text);

// A path only Windows understands: a drive letter ("c:\", "D:/") or a
// backslash anywhere, or a UNC path.
bool IsWindowsPath(std::string_view text);

// A name usable as an environment variable and a macro: [A-Za-z_][A-Za-z0-9_]*.
bool IsVariableName(std::string_view text);

}  // namespace hakit::config
