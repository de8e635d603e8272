#include "hakit/history/store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace hakit::history {
namespace {

using sdk::Status;
using std::chrono::steady_clock;

// Lower-case suite name so that `ctest -R history` selects it.
using history_store = testing::TempDirTest;

constexpr int64_t kS = 1000000;
constexpr int64_t kT0 = 1795687200LL * kS;  // 2026-11-26T10:00:00Z

Event Ev(int64_t t, std::string module, EventKind kind, std::string reason = "") {
  Event e;
  e.time_us = t;
  e.node = "node1";
  e.module = std::move(module);
  e.kind = KindName(kind);
  e.reason = std::move(reason);
  return e;
}

std::unique_ptr<HistoryStore> OpenOk(const std::filesystem::path& path) {
  auto store = HistoryStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

std::vector<std::string> Reasons(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const Event& e : events) out.push_back(e.reason);
  return out;
}

// Six events over two modules and three kinds, one per minute.
void Fill(HistoryStore& store) {
  ASSERT_TRUE(store.Append(Ev(kT0 + 0 * 60 * kS, "mysql", EventKind::kStateChange, "a")).ok());
  ASSERT_TRUE(store.Append(Ev(kT0 + 1 * 60 * kS, "web", EventKind::kStateChange, "b")).ok());
  ASSERT_TRUE(store.Append(Ev(kT0 + 2 * 60 * kS, "mysql", EventKind::kCheckerFailure, "c")).ok());
  ASSERT_TRUE(store.Append(Ev(kT0 + 3 * 60 * kS, "mysql", EventKind::kRestart, "d")).ok());
  ASSERT_TRUE(store.Append(Ev(kT0 + 4 * 60 * kS, "web", EventKind::kFailover, "e")).ok());
  ASSERT_TRUE(store.Append(Ev(kT0 + 5 * 60 * kS, "", EventKind::kPeerLost, "f")).ok());
}

TEST_F(history_store, RoundTripKeepsEveryField) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Event e = Ev(kT0 + 123456, "mysql", EventKind::kFailover, "peer lost, taking over");
  e.from_state = "SECOND";
  e.to_state = "ALONE";
  e.details = R"({"peer": "node2", "networks": ["lan", "san"]})";
  ASSERT_TRUE(store->Append(e).ok());

  auto got = store->Query({});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  const Event& g = (*got)[0];
  EXPECT_GT(g.id, 0);
  EXPECT_EQ(g.time_us, e.time_us);
  EXPECT_EQ(g.node, "node1");
  EXPECT_EQ(g.module, "mysql");
  EXPECT_EQ(g.kind, "failover");
  EXPECT_EQ(g.from_state, "SECOND");
  EXPECT_EQ(g.to_state, "ALONE");
  EXPECT_EQ(g.reason, "peer lost, taking over");
  EXPECT_EQ(nlohmann::json::parse(g.details), nlohmann::json::parse(e.details));
}

TEST_F(history_store, FiltersByModule) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Fill(*store);
  QueryFilter f;
  f.module = "mysql";
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"a", "c", "d"}));
  f.module = "";  // node-wide events
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"f"}));
  f.module = "nosuch";
  EXPECT_TRUE(store->Query(f)->empty());
}

TEST_F(history_store, FiltersByOneOrSeveralKinds) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Fill(*store);
  QueryFilter f;
  f.kinds = {"state_change"};
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"a", "b"}));
  f.kinds = {"restart", "failover", "peer_lost"};
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"d", "e", "f"}));
  f.module = "web";
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"e"}));
}

TEST_F(history_store, FiltersByTimeHalfOpen) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Fill(*store);
  QueryFilter f;
  f.since_us = kT0 + 2 * 60 * kS;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"c", "d", "e", "f"}));
  f.until_us = kT0 + 4 * 60 * kS;  // excluded
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"c", "d"}));
  f.since_us.reset();
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST_F(history_store, LimitOrderAndLatest) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Fill(*store);
  QueryFilter f;
  f.limit = 2;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"a", "b"}));
  f.latest = true;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"e", "f"}));
  f.order = QueryFilter::Order::kNewestFirst;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"f", "e"}));
  f.latest = false;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"f", "e"}));
  f.limit = 0;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"f", "e", "d", "c", "b", "a"}));
  f.module = "mysql";
  f.limit = 1;
  f.latest = true;
  f.order = QueryFilter::Order::kOldestFirst;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"d"}));
}

TEST_F(history_store, SameTimeKeepsInsertionOrder) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  for (const char* r : {"x", "y", "z"}) {
    ASSERT_TRUE(store->Append(Ev(kT0, "m", EventKind::kStateChange, r)).ok());
  }
  EXPECT_EQ(Reasons(*store->Query({})), (std::vector<std::string>{"x", "y", "z"}));
  QueryFilter f;
  f.order = QueryFilter::Order::kNewestFirst;
  EXPECT_EQ(Reasons(*store->Query(f)), (std::vector<std::string>{"z", "y", "x"}));
}

TEST_F(history_store, ZeroTimeBecomesNowAndEmptyDetailsBecomeObject) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Event e = Ev(0, "m", EventKind::kSwap);
  e.details = "";
  int64_t before = NowMicros();
  ASSERT_TRUE(store->Append(e).ok());
  auto got = store->Query({});
  ASSERT_EQ(got->size(), 1u);
  EXPECT_GE((*got)[0].time_us, before);
  EXPECT_LE((*got)[0].time_us, NowMicros());
  EXPECT_EQ((*got)[0].details, "{}");
}

TEST_F(history_store, RejectsBadEventsAndBatchesAreAtomic) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Event no_kind = Ev(kT0, "m", EventKind::kSwap);
  no_kind.kind = "";
  EXPECT_EQ(store->Append(no_kind).code(), Status::Code::kInvalidArgument);
  Event bad_details = Ev(kT0, "m", EventKind::kSwap);
  bad_details.details = "not json";
  EXPECT_EQ(store->Append(bad_details).code(), Status::Code::kInvalidArgument);
  bad_details.details = "[1, 2]";
  EXPECT_EQ(store->Append(bad_details).code(), Status::Code::kInvalidArgument);

  std::vector<Event> batch = {Ev(kT0, "m", EventKind::kSwap, "ok"), no_kind};
  EXPECT_FALSE(store->AppendBatch(batch).ok());
  EXPECT_TRUE(store->Query({})->empty());
  batch.pop_back();
  batch.push_back(Ev(kT0 + 1, "m", EventKind::kSwap, "ok2"));
  EXPECT_TRUE(store->AppendBatch(batch).ok());
  EXPECT_EQ(store->Query({})->size(), 2u);
}

TEST_F(history_store, NewFileGetsSchemaWalAndIndexes) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->opened_version(), 0);
  testing::RawDb raw(DbPath());
  EXPECT_EQ(raw.Scalar("PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(raw.Scalar("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Scalar("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                       "('events_module_time', 'events_kind_time')"),
            "2");
  // The indexes are the ones queries use.
  std::string plan =
      raw.Scalar("EXPLAIN QUERY PLAN SELECT * FROM events WHERE module = 'x' ORDER BY time_us",
                 /*col=*/3);
  EXPECT_NE(plan.find("events_module_time"), std::string::npos) << plan;
}

TEST_F(history_store, ReopenKeepsData) {
  {
    auto store = OpenOk(DbPath());
    ASSERT_TRUE(store);
    Fill(*store);
  }
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->opened_version(), kSchemaVersion);
  EXPECT_EQ(store->Query({})->size(), 6u);
  ASSERT_TRUE(store->Append(Ev(kT0 + 3600 * kS, "m", EventKind::kSwap, "g")).ok());
  EXPECT_EQ(store->Query({})->size(), 7u);
}

TEST_F(history_store, EmptyExistingFileIsMigrated) {
  WriteFile(DbPath(), "");
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  EXPECT_EQ(store->opened_version(), 0);
  EXPECT_TRUE(store->Append(Ev(kT0, "m", EventKind::kSwap)).ok());
}

TEST_F(history_store, NewerSchemaIsRefusedClearly) {
  { OpenOk(DbPath()); }
  {
    testing::RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("PRAGMA user_version = 7"), "");
  }
  auto store = HistoryStore::Open(DbPath());
  ASSERT_FALSE(store.ok());
  const Status s = store.status();
  EXPECT_EQ(s.code(), Status::Code::kUnsupported);
  EXPECT_NE(s.message().find(DbPath().string()), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("version 7"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("newer"), std::string::npos) << s.ToString();
}

TEST_F(history_store, GarbageFileIsRefusedNamingThePath) {
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>((i * 7919) % 251));
  WriteFile(DbPath(), garbage);
  auto store = HistoryStore::Open(DbPath());
  ASSERT_FALSE(store.ok());
  const Status s = store.status();
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find(DbPath().string()), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("not a history database"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("mv "), std::string::npos) << s.ToString();

  HistoryStore::Options ro;
  ro.read_only = true;
  auto read_only = HistoryStore::Open(DbPath(), ro);
  ASSERT_FALSE(read_only.ok());
  EXPECT_EQ(read_only.status().code(), Status::Code::kCorruption);
}

TEST_F(history_store, ForeignDatabaseIsRefused) {
  std::filesystem::create_directories(DbPath().parent_path());
  {
    testing::RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("CREATE TABLE customers (id INTEGER)"), "");
  }
  auto store = HistoryStore::Open(DbPath());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("not a hakit history"), std::string::npos)
      << store.status().ToString();
}

TEST_F(history_store, LockedDatabaseFailsFastNamingThePath) {
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  Fill(*store);
  testing::RawDb other(DbPath());
  ASSERT_EQ(other.Exec("BEGIN EXCLUSIVE"), "");

  auto start = steady_clock::now();
  Status s = store->Append(Ev(kT0, "m", EventKind::kSwap));
  auto took = steady_clock::now() - start;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kTimeout);
  EXPECT_NE(s.message().find(DbPath().string()), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("locked"), std::string::npos) << s.ToString();
  EXPECT_LT(took, std::chrono::milliseconds(600));

  // WAL: readers are not blocked by the writer's lock.
  EXPECT_EQ(store->Query({})->size(), 6u);
  // A second process opening the store meanwhile is not blocked either.
  EXPECT_TRUE(HistoryStore::Open(DbPath()).ok());

  ASSERT_EQ(other.Exec("COMMIT"), "");
  EXPECT_TRUE(store->Append(Ev(kT0, "m", EventKind::kSwap)).ok());
}

TEST_F(history_store, UnknownKindsInStoredRowsAreReadable) {
  { OpenOk(DbPath()); }
  {
    testing::RawDb raw(DbPath());
    ASSERT_EQ(raw.Exec("INSERT INTO events (time_us, node, module, kind, from_state, to_state, "
                       "reason, details) VALUES (1, 'n2', 'm', 'quantum_flip', '', '', 'r', "
                       "'{}')"),
              "");
  }
  auto store = OpenOk(DbPath());
  ASSERT_TRUE(store);
  auto got = store->Query({});
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].kind, "quantum_flip");
  EXPECT_FALSE((*got)[0].Kind().has_value());
  QueryFilter f;
  f.kinds = {"quantum_flip"};
  EXPECT_EQ(store->Query(f)->size(), 1u);
}

TEST_F(history_store, ReadOnlyNeitherCreatesNorWrites) {
  HistoryStore::Options ro;
  ro.read_only = true;
  auto missing = HistoryStore::Open(DbPath(), ro);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_NE(missing.status().message().find(DbPath().string()), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(DbPath()));

  {
    auto store = OpenOk(DbPath());
    ASSERT_TRUE(store);
    Fill(*store);
  }
  auto store = HistoryStore::Open(DbPath(), ro);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Query({})->size(), 6u);
  EXPECT_FALSE((*store)->Append(Ev(kT0, "m", EventKind::kSwap)).ok());
}

}  // namespace
}  // namespace hakit::history
