#include "hakit/history/time_arg.h"

#include <gtest/gtest.h>

namespace hakit::history {
namespace {

constexpr int64_t kS = 1000000;
// 2026-11-26T10:00:00Z
constexpr int64_t kNow = 1795687200LL * kS;
constexpr int64_t kMidnight = 1795651200LL * kS;

int64_t Parse(std::string_view arg) {
  auto r = ParseTimeArg(arg, kNow);
  EXPECT_TRUE(r.ok()) << arg << ": " << r.status().ToString();
  return r.ok() ? *r : -1;
}

TEST(history_time_arg, Keywords) {
  EXPECT_EQ(Parse("now"), kNow);
  EXPECT_EQ(Parse(" now "), kNow);
  EXPECT_EQ(Parse("today"), kMidnight);
  EXPECT_EQ(Parse("yesterday"), kMidnight - 86400 * kS);
}

TEST(history_time_arg, Offsets) {
  EXPECT_EQ(Parse("-1h"), kNow - 3600 * kS);
  EXPECT_EQ(Parse("-30m"), kNow - 1800 * kS);
  EXPECT_EQ(Parse("-45s"), kNow - 45 * kS);
  EXPECT_EQ(Parse("-2d"), kNow - 2 * 86400 * kS);
  EXPECT_EQ(Parse("-1w"), kNow - 7 * 86400 * kS);
  EXPECT_EQ(Parse("-1h30m"), kNow - 5400 * kS);
}

TEST(history_time_arg, AbsoluteTimes) {
  EXPECT_EQ(Parse("2026-11-26T10:00:00Z"), kNow);
  EXPECT_EQ(Parse("2026-11-26"), kMidnight);
  EXPECT_EQ(Parse("2026-11-26T10:00:00"), kNow);  // no zone: UTC
  EXPECT_EQ(Parse("2026-11-26 10:00"), kNow);
  EXPECT_EQ(Parse("2026-11-26T10:00:00.25Z"), kNow + 250000);
  EXPECT_EQ(Parse("2026-11-26T10:00:00.123456Z"), kNow + 123456);
  EXPECT_EQ(Parse("2026-11-26T11:00:00+01:00"), kNow);
  EXPECT_EQ(Parse("2026-11-26T08:30:00-0130"), kNow);
  EXPECT_EQ(Parse("1970-01-01T00:00:00Z"), 0);
}

TEST(history_time_arg, RejectsWithAHelpfulMessage) {
  for (const char* bad :
       {"", "-", "-1", "-1x", "-h", "soon", "2026-13-01", "2026-02-30", "2026-11-26T24:00:00Z",
        "2026-11-26T10:60", "2026-11-26T10:00:00Q", "2026-11-26T10:00:00+1", "2026-11-26X",
        "26/11/2026", "-99999999999999h"}) {
    auto r = ParseTimeArg(bad, kNow);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), sdk::Status::Code::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("2026-11-26T10:00:00Z"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace hakit::history
