#include "hakit/history/event.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace hakit::history {
namespace {

// Suite names start with "history" so that `ctest -R history` selects them
// (CTest's regex is case-sensitive).

TEST(history_event, EveryKindNameParsesBack) {
  std::set<std::string> names;
  for (EventKind kind : AllKinds()) {
    ASSERT_EQ(ParseKind(KindName(kind)), kind) << KindName(kind);
    names.insert(KindName(kind));
  }
  EXPECT_EQ(names.size(), 18u);
  EXPECT_STREQ(KindName(EventKind::kStopStart), "stopstart");
  EXPECT_STREQ(KindName(EventKind::kReintegrationStart), "reintegration_start");
  EXPECT_STREQ(KindName(EventKind::kError), "error");
}

TEST(history_event, UnknownKindStaysText) {
  EXPECT_FALSE(ParseKind("quantum_flip").has_value());
  Event e;
  e.kind = "quantum_flip";
  EXPECT_FALSE(e.Kind().has_value());
  e.kind = "failover";
  EXPECT_EQ(e.Kind(), EventKind::kFailover);
}

TEST(history_event, MakeEventStampsNow) {
  int64_t before = NowMicros();
  Event e = MakeEvent(EventKind::kRestart, "mysql", "checker failed");
  EXPECT_GE(e.time_us, before);
  EXPECT_LE(e.time_us, NowMicros());
  EXPECT_EQ(e.kind, "restart");
  EXPECT_EQ(e.module, "mysql");
  EXPECT_EQ(e.details, "{}");
}

TEST(history_event, FormatTimeIsIsoWithMicroseconds) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTime(1795687200LL * 1000000 + 123456), "2026-11-26T10:00:00.123456Z");
  EXPECT_EQ(FormatTime(1709251199LL * 1000000 + 999999), "2024-02-29T23:59:59.999999Z");
  EXPECT_EQ(FormatTime(-1), "1969-12-31T23:59:59.999999Z");
}

}  // namespace
}  // namespace hakit::history
