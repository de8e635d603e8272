#include "hakit/history/writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"

namespace hakit::history {
namespace {

using namespace std::chrono_literals;
using sdk::Status;
using std::chrono::steady_clock;

// Lower-case suite name so that `ctest -R history` selects it.
class WriterTest : public testing::TempDirTest {
 protected:
  HistoryWriter::Options Opts() {
    HistoryWriter::Options o;
    o.path = DbPath();
    o.node = "node1";
    o.retry_min = 20ms;
    o.retry_max = 100ms;
    o.on_error = [this](const std::string& m) {
      std::lock_guard lock(mu_);
      errors_.push_back(m);
    };
    o.on_recovered = [this](const std::string& m) {
      std::lock_guard lock(mu_);
      recoveries_.push_back(m);
    };
    return o;
  }
  std::vector<std::string> Errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }
  std::vector<std::string> Recoveries() {
    std::lock_guard lock(mu_);
    return recoveries_;
  }
  std::vector<Event> ReadAll() {
    auto store = HistoryStore::Open(DbPath());
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return {};
    auto events = (*store)->Query({});
    EXPECT_TRUE(events.ok()) << events.status().ToString();
    return events.ok() ? *events : std::vector<Event>{};
  }
  // Creates the database so that another connection can lock it.
  void CreateDb() { ASSERT_TRUE(HistoryStore::Open(DbPath()).ok()); }

  std::mutex mu_;
  std::vector<std::string> errors_;
  std::vector<std::string> recoveries_;
};
using history_writer = WriterTest;

// Polls `done` for up to 5 s.
template <typename Pred>
bool WaitFor(Pred done) {
  for (auto end = steady_clock::now() + 5s; steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return done();
}

Event Numbered(int i) {
  Event e = MakeEvent(EventKind::kStateChange, "m", std::to_string(i));
  return e;
}

TEST_F(history_writer, WritesEverythingAndStampsNode) {
  {
    HistoryWriter writer(Opts());
    for (int i = 0; i < 600; ++i) writer.Append(Numbered(i));  // several batches
    Event other = Numbered(600);
    other.node = "node2";
    other.time_us = 0;
    writer.Append(other);
    ASSERT_TRUE(writer.Flush(5s).ok());
    EXPECT_EQ(writer.pending(), 0u);
    EXPECT_EQ(writer.dropped(), 0u);
  }
  auto events = ReadAll();
  ASSERT_EQ(events.size(), 601u);
  for (int i = 0; i < 600; ++i) {
    EXPECT_EQ(events[i].reason, std::to_string(i));
    EXPECT_EQ(events[i].node, "node1");
  }
  EXPECT_EQ(events[600].node, "node2");
  EXPECT_GT(events[600].time_us, 0);
  EXPECT_TRUE(Errors().empty());
}

TEST_F(history_writer, DetailsThatAreNotAnObjectAreKeptAsRaw) {
  {
    HistoryWriter writer(Opts());
    Event e = Numbered(1);
    e.details = "exit code 3";
    writer.Append(e);
    ASSERT_TRUE(writer.Flush(5s).ok());
  }
  auto events = ReadAll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(events[0].details)["raw"], "exit code 3");
}

TEST_F(history_writer, LockedDatabaseNeverBlocksAppendAndIsWrittenAfterRelease) {
  CreateDb();
  testing::RawDb other(DbPath());
  ASSERT_EQ(other.Exec("BEGIN EXCLUSIVE"), "");

  HistoryWriter writer(Opts());
  auto start = steady_clock::now();
  for (int i = 0; i < 50; ++i) writer.Append(Numbered(i));
  EXPECT_LT(steady_clock::now() - start, 50ms);

  // Several retries fail while the lock is held; the error is reported once.
  Status flushed = writer.Flush(600ms);
  EXPECT_EQ(flushed.code(), Status::Code::kTimeout);
  EXPECT_NE(flushed.message().find("locked"), std::string::npos) << flushed.ToString();
  std::this_thread::sleep_for(300ms);
  start = steady_clock::now();
  writer.Append(Numbered(50));  // even mid-retry
  EXPECT_LT(steady_clock::now() - start, 50ms);
  ASSERT_EQ(Errors().size(), 1u);
  EXPECT_NE(Errors()[0].find(DbPath().string()), std::string::npos) << Errors()[0];
  EXPECT_EQ(writer.pending(), 51u);
  EXPECT_FALSE(writer.last_error().ok());

  ASSERT_EQ(other.Exec("COMMIT"), "");
  ASSERT_TRUE(writer.Flush(5s).ok());
  EXPECT_TRUE(writer.last_error().ok());
  auto events = ReadAll();
  ASSERT_EQ(events.size(), 51u);
  EXPECT_EQ(events.front().reason, "0");
  EXPECT_EQ(events.back().reason, "50");
  EXPECT_EQ(Errors().size(), 1u);
  ASSERT_EQ(Recoveries().size(), 1u);
  EXPECT_EQ(Recoveries()[0].find("dropped"), std::string::npos) << Recoveries()[0];
}

TEST_F(history_writer, FullQueueKeepsTheLatestAndRecordsTheGap) {
  CreateDb();
  testing::RawDb other(DbPath());
  ASSERT_EQ(other.Exec("BEGIN EXCLUSIVE"), "");
  auto opts = Opts();
  opts.capacity = 5;
  HistoryWriter writer(opts);
  for (int i = 0; i < 20; ++i) writer.Append(Numbered(i));
  // Once a write has failed, whatever was in flight then is back in the
  // queue and trimmed with the rest: exactly the latest 5 remain.
  ASSERT_TRUE(WaitFor([&] { return !Errors().empty(); }));
  EXPECT_EQ(writer.dropped(), 15u);
  EXPECT_LE(writer.pending(), 5u);

  ASSERT_EQ(other.Exec("COMMIT"), "");
  ASSERT_TRUE(writer.Flush(5s).ok());
  ASSERT_TRUE(writer.Flush(5s).ok());  // the gap event queued on recovery
  auto events = ReadAll();
  ASSERT_EQ(events.size(), 6u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(events[i].reason, std::to_string(15 + i));
  EXPECT_EQ(events[5].kind, "error");
  EXPECT_EQ(events[5].node, "node1");
  EXPECT_EQ(nlohmann::json::parse(events[5].details)["dropped_events"], 15);
  ASSERT_EQ(Recoveries().size(), 1u);
  EXPECT_NE(Recoveries()[0].find("15 events were dropped"), std::string::npos);
}

TEST_F(history_writer, CorruptFileIsReportedAndRecoveredOnceMovedAside) {
  WriteFile(DbPath(), std::string(4096, '\x5a'));
  HistoryWriter writer(Opts());
  writer.Append(Numbered(1));
  EXPECT_FALSE(writer.Flush(300ms).ok());
  ASSERT_EQ(Errors().size(), 1u);
  EXPECT_NE(Errors()[0].find(DbPath().string()), std::string::npos) << Errors()[0];
  EXPECT_NE(Errors()[0].find("not a history database"), std::string::npos) << Errors()[0];

  // What the operator is told to do.
  std::filesystem::rename(DbPath(), DbPath().string() + ".bad");
  ASSERT_TRUE(writer.Flush(5s).ok());
  auto events = ReadAll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].reason, "1");
}

TEST_F(history_writer, ShutdownIsBoundedWhileLocked) {
  CreateDb();
  testing::RawDb other(DbPath());
  ASSERT_EQ(other.Exec("BEGIN EXCLUSIVE"), "");
  auto opts = Opts();
  opts.retry_min = 10s;  // the thread is asleep in a long backoff at shutdown
  opts.retry_max = 10s;
  auto writer = std::make_unique<HistoryWriter>(opts);
  writer->Append(Numbered(1));
  std::this_thread::sleep_for(300ms);
  writer->Append(Numbered(2));
  auto start = steady_clock::now();
  writer.reset();
  EXPECT_LT(steady_clock::now() - start, 1s);
  ASSERT_EQ(other.Exec("COMMIT"), "");
}

TEST_F(history_writer, ShutdownWritesWhatIsQueued) {
  {
    HistoryWriter writer(Opts());
    for (int i = 0; i < 10; ++i) writer.Append(Numbered(i));
  }
  EXPECT_EQ(ReadAll().size(), 10u);
}

}  // namespace
}  // namespace hakit::history
