// One history event: a state change, failover, checker failure, ... recorded
// on the node where it happened. Kinds are an enum for the code that writes
// events, but an Event carries its kind as text so that rows written by a
// newer hakit (with kinds this build does not know) still read and print.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hakit::history {

enum class EventKind {
  kStateChange,
  kFailover,
  kSwap,
  kRestart,
  kStopStart,
  kCheckerFailure,
  kReintegrationStart,
  kReintegrationEnd,
  kFullSync,
  kScriptFailure,
  kOperatorCommand,
  kPeerLost,
  kPeerFound,
  kConfigMismatch,
  kAuthFailure,
  kSplitBrain,
  kModuleStopped,
  kError,
};

// "state_change", "failover", ... : the names stored, printed and accepted
// by `hakit history --kind`.
const char* KindName(EventKind kind);
// The kind named `name`, or nullopt for a name this build does not know.
std::optional<EventKind> ParseKind(std::string_view name);
// Every kind, in declaration order (for help texts and validation).
std::span<const EventKind> AllKinds();

struct Event {
  // UTC, microseconds since the Unix epoch. 0 means "now" when appended.
  int64_t time_us = 0;
  // The node the event happened on; HistoryWriter fills it when empty.
  std::string node;
  // The module concerned; empty for node-wide events (auth_failure, ...).
  std::string module;
  // KindName() of an EventKind, or a name from a newer hakit.
  std::string kind;
  // Module states around a transition ("WAIT", "ALONE"); empty otherwise.
  std::string from_state;
  std::string to_state;
  // One line for operators: why it happened.
  std::string reason;
  // A JSON object with machine-readable extras (checker name, exit code, ...).
  std::string details = "{}";
  // Row id in the store it was read from; 0 when not read from a store. Ids
  // are per node: merged histories are ordered by time, not id.
  int64_t id = 0;

  // The kind as an enum, or nullopt when it is not one this build knows.
  std::optional<EventKind> Kind() const { return ParseKind(kind); }

  bool operator==(const Event&) const = default;
};

// An event of `kind` stamped now, with the other fields left to the caller.
Event MakeEvent(EventKind kind, std::string module, std::string reason);

// Microseconds since the epoch, from the system (UTC) clock.
int64_t NowMicros();

// "2026-11-26T10:00:00.123456Z".
std::string FormatTime(int64_t time_us);

}  // namespace hakit::history
