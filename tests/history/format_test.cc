#include "hakit/history/format.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace hakit::history {
namespace {

constexpr int64_t kS = 1000000;
constexpr int64_t kT0 = 1795687200LL * kS;  // 2026-11-26T10:00:00Z

Event Ev(int64_t t, std::string node, std::string module, std::string kind, std::string from,
         std::string to, std::string reason, std::string details = "{}") {
  Event e;
  e.time_us = t;
  e.node = std::move(node);
  e.module = std::move(module);
  e.kind = std::move(kind);
  e.from_state = std::move(from);
  e.to_state = std::move(to);
  e.reason = std::move(reason);
  e.details = std::move(details);
  return e;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(history_format, TableIsAligned) {
  std::vector<Event> events = {
      Ev(kT0, "node1", "mysql", "state_change", "WAIT", "PRIM", "started"),
      Ev(kT0 + 1, "node-two", "m", "peer_lost", "", "", "no heartbeat\non any network"),
      Ev(kT0 + 2, "n", "", "quantum_flip", "", "", ""),
  };
  auto lines = Lines(FormatTable(events));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[2].find('\n'), std::string::npos);
  const std::vector<std::vector<std::string>> cells = {
      {"TIME", "NODE", "MODULE", "KIND", "TRANSITION", "REASON"},
      {"2026-11-26T10:00:00.000000Z", "node1", "mysql", "state_change", "WAIT->PRIM", "started"},
      {"2026-11-26T10:00:00.000001Z", "node-two", "m", "peer_lost", "",
       "no heartbeat on any network"},
      {"2026-11-26T10:00:00.000002Z", "n", "", "quantum_flip", "", ""},
  };
  // Every cell starts at its header's offset, after at least one blank.
  for (size_t c = 0; c < cells[0].size(); ++c) {
    size_t col = lines[0].find(cells[0][c]);
    ASSERT_NE(col, std::string::npos);
    for (size_t i = 1; i < lines.size(); ++i) {
      if (cells[i][c].empty()) continue;
      EXPECT_EQ(lines[i].compare(col, cells[i][c].size(), cells[i][c]), 0)
          << cells[0][c] << " line " << i << ": " << lines[i];
      if (col > 0) {
        EXPECT_EQ(lines[i][col - 1], ' ') << lines[i];
      }
    }
  }
  for (const auto& line : lines) EXPECT_NE(line.back(), ' ') << line;
}

TEST(history_format, EmptyTableHasHeaderOnly) { EXPECT_EQ(Lines(FormatTable({})).size(), 1u); }

TEST(history_format, JsonParsesBackWithDetailsAsObjects) {
  std::vector<Event> events = {
      Ev(kT0 + 5, "node1", "mysql", "failover", "SECOND", "ALONE", "peer \"node2\" lost",
         R"({"peer":"node2","after_ms":30000})"),
      Ev(kT0 + 6, "node1", "", "error", "", "", "old row", "not json"),
  };
  events[0].id = 42;
  std::string text = FormatJson(events);
  auto json = nlohmann::json::parse(text);
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["time"], "2026-11-26T10:00:00.000005Z");
  EXPECT_EQ(json[0]["time_us"], kT0 + 5);
  EXPECT_EQ(json[0]["kind"], "failover");
  EXPECT_EQ(json[0]["from_state"], "SECOND");
  EXPECT_EQ(json[0]["reason"], "peer \"node2\" lost");
  ASSERT_TRUE(json[0]["details"].is_object());
  EXPECT_EQ(json[0]["details"]["after_ms"], 30000);
  EXPECT_EQ(json[1]["details"], "not json");

  auto back = ParseJson(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].id, 42);
  EXPECT_EQ(nlohmann::json::parse((*back)[0].details), nlohmann::json::parse(events[0].details));
  (*back)[0].details = events[0].details;
  EXPECT_EQ(*back, events);

  EXPECT_EQ(FormatJson({}), "[]\n");
}

TEST(history_format, ParseJsonRejectsNonsense) {
  EXPECT_FALSE(ParseJson("{").ok());
  EXPECT_FALSE(ParseJson("{}").ok());
  EXPECT_FALSE(ParseJson("[1]").ok());
  EXPECT_FALSE(ParseJson(R"([{"kind":"x"}])").ok());  // no time
  EXPECT_FALSE(ParseJson(R"([{"time_us":1,"node":5}])").ok());
  auto by_iso = ParseJson(R"([{"time":"2026-11-26T10:00:00Z","kind":"swap"}])");
  ASSERT_TRUE(by_iso.ok()) << by_iso.status().ToString();
  EXPECT_EQ((*by_iso)[0].time_us, kT0);
}

TEST(history_format, MergeByTimeInterleavesAndKeepsTiesStable) {
  std::vector<Event> node1 = {
      Ev(kT0 + 1, "node1", "m", "state_change", "", "", "1a"),
      Ev(kT0 + 3, "node1", "m", "state_change", "", "", "1b"),
      Ev(kT0 + 5, "node1", "m", "state_change", "", "", "1c"),
  };
  std::vector<Event> node2 = {
      Ev(kT0 + 0, "node2", "m", "state_change", "", "", "2a"),
      Ev(kT0 + 3, "node2", "m", "state_change", "", "", "2b"),
      Ev(kT0 + 9, "node2", "m", "state_change", "", "", "2c"),
  };
  auto merged = MergeByTime({node1, node2});
  std::vector<std::string> reasons;
  for (const Event& e : merged) reasons.push_back(e.reason);
  EXPECT_EQ(reasons, (std::vector<std::string>{"2a", "1a", "1b", "2b", "1c", "2c"}));
  EXPECT_TRUE(MergeByTime({}).empty());
  EXPECT_EQ(MergeByTime({{}, node2}).size(), 3u);
}

}  // namespace
}  // namespace hakit::history
