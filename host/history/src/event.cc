#include "hakit/history/event.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <utility>

namespace hakit::history {
namespace {

// Indexed by EventKind; the names are stored in databases, so never rename one.
constexpr std::array<std::pair<EventKind, const char*>, 18> kKinds = {{
    {EventKind::kStateChange, "state_change"},
    {EventKind::kFailover, "failover"},
    {EventKind::kSwap, "swap"},
    {EventKind::kRestart, "restart"},
    {EventKind::kStopStart, "stopstart"},
    {EventKind::kCheckerFailure, "checker_failure"},
    {EventKind::kReintegrationStart, "reintegration_start"},
    {EventKind::kReintegrationEnd, "reintegration_end"},
    {EventKind::kFullSync, "full_sync"},
    {EventKind::kScriptFailure, "script_failure"},
    {EventKind::kOperatorCommand, "operator_command"},
    {EventKind::kPeerLost, "peer_lost"},
    {EventKind::kPeerFound, "peer_found"},
    {EventKind::kConfigMismatch, "config_mismatch"},
    {EventKind::kAuthFailure, "auth_failure"},
    {EventKind::kSplitBrain, "split_brain"},
    {EventKind::kModuleStopped, "module_stopped"},
    {EventKind::kError, "error"},
}};

constexpr bool KindsInOrder() {
  for (size_t i = 0; i < kKinds.size(); ++i) {
    if (static_cast<size_t>(kKinds[i].first) != i) return false;
  }
  return static_cast<size_t>(EventKind::kError) + 1 == kKinds.size();
}
static_assert(KindsInOrder(), "kKinds must list every EventKind in declaration order");

constexpr std::array<EventKind, kKinds.size()> MakeAllKinds() {
  std::array<EventKind, kKinds.size()> all{};
  for (size_t i = 0; i < kKinds.size(); ++i) all[i] = kKinds[i].first;
  return all;
}
constexpr std::array<EventKind, kKinds.size()> kAllKinds = MakeAllKinds();

}  // namespace

const char* KindName(EventKind kind) {
  auto i = static_cast<size_t>(kind);
  return i < kKinds.size() ? kKinds[i].second : "unknown";
}

std::optional<EventKind> ParseKind(std::string_view name) {
  for (const auto& [kind, kind_name] : kKinds) {
    if (name == kind_name) return kind;
  }
  return std::nullopt;
}

std::span<const EventKind> AllKinds() { return kAllKinds; }

Event MakeEvent(EventKind kind, std::string module, std::string reason) {
  Event e;
  e.time_us = NowMicros();
  e.module = std::move(module);
  e.kind = KindName(kind);
  e.reason = std::move(reason);
  return e;
}

int64_t NowMicros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string FormatTime(int64_t time_us) {
  using namespace std::chrono;
  // floor, not truncation, so that times before 1970 still print correctly.
  const sys_time<microseconds> t{microseconds(time_us)};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const auto in_day = duration_cast<microseconds>(t - day).count();
  const int64_t secs = in_day / 1000000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(secs / 3600),
                static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60),
                static_cast<long long>(in_day % 1000000));
  return buf;
}

}  // namespace hakit::history
