// What `hakit history` prints, and merging two nodes' histories.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hakit/history/event.h"
#include "hakit/sdk/status.h"

namespace hakit::history {

// An aligned table, one line per event, header first:
//   TIME  NODE  MODULE  KIND  TRANSITION  REASON
// TRANSITION is "FROM->TO" (empty when the event is not a transition).
// Control characters in fields print as spaces so that lines stay aligned.
std::string FormatTable(const std::vector<Event>& events);

// A JSON array of objects with the keys id, time (ISO 8601), time_us, node,
// module, kind, from_state, to_state, reason and details. details is embedded
// as a JSON value; text that is not JSON is embedded as a string.
std::string FormatJson(const std::vector<Event>& events);

// The inverse of FormatJson (a peer's history fetched for --merge). time_us
// wins over time when both are present.
sdk::Result<std::vector<Event>> ParseJson(std::string_view text);

// All events of all lists ordered by time; events with the same time keep
// the order of the lists, then their order within a list. The lists need not
// be sorted.
std::vector<Event> MergeByTime(std::vector<std::vector<Event>> lists);

}  // namespace hakit::history
