// Times given on the command line to `hakit history --since/--until`.
#pragma once

#include <cstdint>
#include <string_view>

#include "hakit/sdk/status.h"

namespace hakit::history {

// Reads a CLI time into UTC microseconds since the epoch. Accepted:
//   "now", "today", "yesterday"           (days start at 00:00 UTC)
//   "-30s", "-30m", "-1h", "-2d", "-1w", "-1h30m"   (before now)
//   "2026-11-26"                          (00:00 UTC that day)
//   "2026-11-26T10:00:00Z", "2026-11-26 10:00", "2026-11-26T10:00:00.5+01:00"
// A time without a zone is UTC, the zone `hakit history` prints in.
sdk::Result<int64_t> ParseTimeArg(std::string_view arg, int64_t now_us);
sdk::Result<int64_t> ParseTimeArg(std::string_view arg);

}  // namespace hakit::history
