// Value helpers: durations, addresses, placeholders, paths.
#include "hakit/config/values.h"

#include <gtest/gtest.h>

namespace hakit::config {
namespace {

using namespace std::chrono_literals;

TEST(Values, DurationUnits) {
  EXPECT_EQ(*ParseDuration("700ms", TimeUnit::kSeconds), 700ms);
  EXPECT_EQ(*ParseDuration("30s", TimeUnit::kMilliseconds), 30s);
  EXPECT_EQ(*ParseDuration("5m", TimeUnit::kMilliseconds), 5min);
  EXPECT_EQ(*ParseDuration("2h", TimeUnit::kMilliseconds), 2h);
  EXPECT_EQ(*ParseDuration(" 10s ", TimeUnit::kMilliseconds), 10s);
}

TEST(Values, DurationPlainNumberUsesTheGivenUnit) {
  EXPECT_EQ(*ParseDuration("700", TimeUnit::kMilliseconds), 700ms);
  EXPECT_EQ(*ParseDuration("30", TimeUnit::kSeconds), 30s);
  EXPECT_EQ(*ParseDuration("24", TimeUnit::kHours), 24h);
  EXPECT_EQ(*ParseDuration("0", TimeUnit::kSeconds), 0ms);
}

TEST(Values, DurationRejects) {
  for (const char* bad : {"", "abc", "-1", "1.5s", "10 s", "10sec", "s", "+3", "99999999999999h"}) {
    EXPECT_FALSE(ParseDuration(bad, TimeUnit::kSeconds).ok()) << bad;
  }
}

TEST(Values, FormatDuration) {
  EXPECT_EQ(FormatDuration(700ms), "700ms");
  EXPECT_EQ(FormatDuration(30s), "30s");
  EXPECT_EQ(FormatDuration(5min), "5m");
  EXPECT_EQ(FormatDuration(24h), "24h");
  EXPECT_EQ(FormatDuration(0ms), "0ms");
}

TEST(Values, Addresses) {
  EXPECT_TRUE(IsIpAddress("198.18.0.1"));
  EXPECT_TRUE(IsIpAddress("::1"));
  EXPECT_TRUE(IsIpAddress("2001:db8::10"));
  EXPECT_FALSE(IsIpAddress("10.0.0.300"));
  EXPECT_FALSE(IsIpAddress("myhost"));
  EXPECT_FALSE(IsIpAddress(""));
  EXPECT_FALSE(IsIpAddress("198.18.0.1/24"));
  EXPECT_TRUE(IsIpv4Address("198.18.0.1"));
  EXPECT_FALSE(IsIpv4Address("::1"));
}

TEST(Values, HostNames) {
  EXPECT_TRUE(IsHostName("localhost"));
  EXPECT_TRUE(IsHostName("db-1.example.com"));
  EXPECT_TRUE(IsHostName("db-1.example.com."));
  EXPECT_FALSE(IsHostName("10.0.0.300"));  // a mistyped address, not a name
  EXPECT_FALSE(IsHostName("-bad"));
  EXPECT_FALSE(IsHostName("a..b"));
  EXPECT_FALSE(IsHostName("with space"));
}

TEST(Values, Placeholders) {
  EXPECT_TRUE(IsPlaceholder("VIRTUAL_TO_BE_DEFINED"));
  EXPECT_TRUE(IsPlaceholder("SERVER1_TO_BE_DEFINED"));
  EXPECT_TRUE(IsPlaceholder("PROCESS_NAME"));
  EXPECT_TRUE(IsPlaceholder("SERVICE_NAME"));
  EXPECT_TRUE(IsPlaceholder("DATA_DIR"));
  EXPECT_TRUE(IsPlaceholder("SERVER_ADDR"));
  EXPECT_FALSE(IsPlaceholder("postgres"));
  EXPECT_FALSE(IsPlaceholder("MSSQLSERVER"));   // a real SQL Server instance name
  EXPECT_FALSE(IsPlaceholder("FAST_MODE"));     // caps, but does not name a slot
  EXPECT_FALSE(IsPlaceholder("Process_Name"));  // not all caps
  EXPECT_FALSE(IsPlaceholder("one_side_alias"));
  EXPECT_FALSE(IsPlaceholder("_NAME"));
}

TEST(Values, WindowsPaths) {
  EXPECT_TRUE(IsWindowsPath("c:\\test1replicated"));
  EXPECT_TRUE(IsWindowsPath("D:/data"));
  EXPECT_TRUE(IsWindowsPath("\\\\server\\share"));
  EXPECT_TRUE(IsWindowsPath("data\\db"));
  EXPECT_FALSE(IsWindowsPath("/srv/data"));
  EXPECT_FALSE(IsWindowsPath("data"));
}

TEST(Values, VariableNames) {
  EXPECT_TRUE(IsVariableName("PGDATA"));
  EXPECT_TRUE(IsVariableName("_x1"));
  EXPECT_FALSE(IsVariableName("1X"));
  EXPECT_FALSE(IsVariableName("A-B"));
  EXPECT_FALSE(IsVariableName(""));
}

}  // namespace
}  // namespace hakit::config
