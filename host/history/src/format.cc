#include "hakit/history/format.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "hakit/history/time_arg.h"

namespace hakit::history {
namespace {

using nlohmann::json;
using sdk::Result;
using sdk::Status;

// One line per event whatever the reason text holds.
std::string OneLine(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

std::string Transition(const Event& e) {
  if (e.from_state.empty() && e.to_state.empty()) return std::string();
  return e.from_state + "->" + e.to_state;
}

}  // namespace

std::string FormatTable(const std::vector<Event>& events) {
  constexpr size_t kColumns = 6;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> rows;
  rows.reserve(events.size() + 1);
  rows.push_back({"TIME", "NODE", "MODULE", "KIND", "TRANSITION", "REASON"});
  for (const Event& e : events) {
    rows.push_back({FormatTime(e.time_us), OneLine(e.node), OneLine(e.module), OneLine(e.kind),
                    OneLine(Transition(e)), OneLine(e.reason)});
  }
  std::array<size_t, kColumns> width{};
  for (const Row& row : rows) {
    for (size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (size_t c = 0; c < kColumns; ++c) {
      line += row[c];
      // The last column is not padded, so lines carry no trailing blanks.
      if (c + 1 < kColumns) line.append(width[c] - row[c].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

std::string FormatJson(const std::vector<Event>& events) {
  json array = json::array();
  for (const Event& e : events) {
    json details = json::parse(e.details, nullptr, /*allow_exceptions=*/false);
    if (details.is_discarded()) details = e.details.empty() ? json::object() : json(e.details);
    array.push_back({
        {"id", e.id},
        {"time", FormatTime(e.time_us)},
        {"time_us", e.time_us},
        {"node", e.node},
        {"module", e.module},
        {"kind", e.kind},
        {"from_state", e.from_state},
        {"to_state", e.to_state},
        {"reason", e.reason},
        {"details", std::move(details)},
    });
  }
  // replace: a reason with invalid UTF-8 must not make the whole output fail.
  return array.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::vector<Event>> ParseJson(std::string_view text) {
  json array = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (array.is_discarded()) return Status::InvalidArgument("history JSON does not parse");
  if (!array.is_array()) return Status::InvalidArgument("history JSON is not an array");
  std::vector<Event> events;
  events.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const json& o = array[i];
    const std::string where = "history JSON event " + std::to_string(i);
    if (!o.is_object()) return Status::InvalidArgument(where + " is not an object");
    Event e;
    auto text_field = [&o](const char* key, std::string& out) {
      auto it = o.find(key);
      if (it == o.end() || it->is_null()) return true;
      if (!it->is_string()) return false;
      out = it->get<std::string>();
      return true;
    };
    for (auto [key, field] : {std::pair{"node", &e.node},
                              {"module", &e.module},
                              {"kind", &e.kind},
                              {"from_state", &e.from_state},
                              {"to_state", &e.to_state},
                              {"reason", &e.reason}}) {
      if (!text_field(key, *field)) {
        return Status::InvalidArgument(where + ": " + key + " is not a string");
      }
    }
    if (auto it = o.find("id"); it != o.end() && it->is_number_integer()) {
      e.id = it->get<int64_t>();
    }
    if (auto it = o.find("time_us"); it != o.end() && it->is_number_integer()) {
      e.time_us = it->get<int64_t>();
    } else if (auto t = o.find("time"); t != o.end() && t->is_string()) {
      auto parsed = ParseTimeArg(t->get<std::string>(), 0);
      if (!parsed.ok()) return parsed.status().WithContext(where);
      e.time_us = *parsed;
    } else {
      return Status::InvalidArgument(where + " has no time");
    }
    if (auto it = o.find("details"); it != o.end() && !it->is_null()) {
      // A string here is what FormatJson wrote for details that were not
      // JSON: give back the original text.
      e.details = it->is_string() ? it->get<std::string>()
                                  : it->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    events.push_back(std::move(e));
  }
  return events;
}

std::vector<Event> MergeByTime(std::vector<std::vector<Event>> lists) {
  std::vector<Event> all;
  size_t total = 0;
  for (const auto& list : lists) total += list.size();
  all.reserve(total);
  for (auto& list : lists) {
    std::move(list.begin(), list.end(), std::back_inserter(all));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Event& a, const Event& b) { return a.time_us < b.time_us; });
  return all;
}

}  // namespace hakit::history
