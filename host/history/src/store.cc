#include "hakit/history/store.h"

#include <sqlite3.h>

#include <iterator>
#include <nlohmann/json.hpp>
#include <system_error>

namespace hakit::history {
namespace {

// Schema migrations, oldest first. Entry N upgrades a file at user_version
// N-1 to N; all pending entries run in one transaction so that a crash
// mid-upgrade leaves the old schema intact. Add v2 as one more entry and bump
// kSchemaVersion; never edit an entry that has shipped.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  time_us    INTEGER NOT NULL,
  node       TEXT NOT NULL,
  module     TEXT NOT NULL,
  kind       TEXT NOT NULL,
  from_state TEXT NOT NULL,
  to_state   TEXT NOT NULL,
  reason     TEXT NOT NULL,
  details    TEXT NOT NULL
);
CREATE INDEX events_module_time ON events(module, time_us);
CREATE INDEX events_kind_time ON events(kind, time_us);
)sql"},
};
static_assert(kMigrations[std::size(kMigrations) - 1].version == kSchemaVersion,
              "the last migration must produce kSchemaVersion");

// Owns a prepared statement.
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  sqlite3_stmt** out() { return &stmt_; }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const unsigned char* text = sqlite3_column_text(stmt, col);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt, col)));
}

// The bind functions take int lengths; event fields are far below 2 GiB.
int BindText(sqlite3_stmt* stmt, int index, const std::string& text) {
  return sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

// Details as stored: compact JSON object text. Empty text means no details.
Result<std::string> NormalizeDetails(const std::string& details) {
  if (details.empty()) return std::string("{}");
  auto json = nlohmann::json::parse(details, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return Status::InvalidArgument("details are not a JSON object: " + details);
  }
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Result<std::unique_ptr<HistoryStore>> HistoryStore::Open(const std::filesystem::path& path,
                                                         Options options) {
  std::error_code ec;
  if (options.read_only) {
    if (!std::filesystem::exists(path, ec)) {
      return Status::NotFound("no history database at " + path.string() +
                              " (hakitd creates it when it first runs)");
    }
  } else if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return Status::IoError("cannot create " + path.parent_path().string() +
                             " for the history database: " + ec.message());
    }
  }

  int flags =
      options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  // Calls are serialized by mu_, so SQLite's own per-connection mutex is not
  // needed.
  flags |= SQLITE_OPEN_NOMUTEX;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status::IoError("cannot open history database " + path.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));
  std::unique_ptr<HistoryStore> store(new HistoryStore(path, db, options.busy_timeout));

  if (!options.read_only) {
    // WAL lets the CLI and the web console read while hakitd writes.
    // synchronous=FULL: an event that was written survives a power cut, which
    // is exactly when an operator needs the history. Events are few, so the
    // extra fsync per batch costs nothing that matters.
    Status s = store->Exec("PRAGMA journal_mode=WAL", "setting WAL mode");
    if (s.ok()) s = store->Exec("PRAGMA synchronous=FULL", "setting synchronous mode");
    if (!s.ok()) return s;
  }
  Status s = store->Migrate(options.read_only);
  if (!s.ok()) return s;
  return store;
}

HistoryStore::~HistoryStore() { sqlite3_close_v2(db_); }

Status HistoryStore::Error(int rc, const std::string& what) const {
  const std::string p = path_.string();
  std::string detail = sqlite3_errmsg(db_);
  if (detail.empty() || detail == "not an error") detail = sqlite3_errstr(rc);
  switch (rc & 0xff) {  // the primary code; extended codes add nothing here
    case SQLITE_NOTADB:
      return Status::Corruption(p + " is not a history database (" + detail + ", while " + what +
                                "); move it aside (mv " + p + " " + p +
                                ".bad) and hakitd will start a new history there");
    case SQLITE_CORRUPT:
      return Status::Corruption("history database " + p + " is corrupt (" + detail + ", while " +
                                what + "); move it aside (mv " + p + " " + p +
                                ".bad) and hakitd will start a new history there");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Timeout("history database " + p + " is locked by another process (" + what +
                             " waited " + std::to_string(busy_timeout_.count()) + " ms)");
    case SQLITE_FULL:
      return Status::IoError("history database " + p + ": " + what +
                             ": the disk holding it is full");
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IoError("history database " + p + ": " + what + ": " + detail +
                             "; check the permissions of the file and its folder");
    default:
      return Status::IoError("history database " + p + ": " + what + ": " + detail);
  }
}

Status HistoryStore::Exec(const char* sql, const std::string& what) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::Ok() : Error(rc, what);
}

Result<int> HistoryStore::UserVersion() {
  Statement stmt;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, stmt.out(), nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) return Error(rc, "reading the schema version");
  return sqlite3_column_int(stmt.get(), 0);
}

Status HistoryStore::Migrate(bool read_only) {
  auto version = UserVersion();
  if (!version.ok()) return version.status();
  opened_version_ = *version;
  // Checked before anything is written: a newer hakit may have changed the
  // meaning of columns, so neither reading nor writing is safe.
  auto too_new = [this](int v) {
    return Status::Unsupported("history database " + path_.string() + " has schema version " +
                               std::to_string(v) + ", newer than this hakit knows (" +
                               std::to_string(kSchemaVersion) +
                               "); it was written by a newer hakit: upgrade hakit on this node, "
                               "or move the file aside to start a new history");
  };
  if (*version > kSchemaVersion) return too_new(*version);
  if (*version == kSchemaVersion) return Status::Ok();
  if (read_only) {
    return Status::Unsupported("history database " + path_.string() + " has schema version " +
                               std::to_string(*version) + ", older than this hakit's (" +
                               std::to_string(kSchemaVersion) +
                               "); hakitd upgrades it when it next starts");
  }

  // IMMEDIATE takes the write lock now, so that two processes opening a new
  // file at once do not both run the migrations.
  Status s = Exec("BEGIN IMMEDIATE", "starting the schema upgrade");
  if (!s.ok()) return s;
  auto rollback = [this](Status error) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return error;
  };
  version = UserVersion();
  if (!version.ok()) return rollback(version.status());
  if (*version > kSchemaVersion) return rollback(too_new(*version));
  if (*version == 0) {
    // user_version 0 with tables: some other program's database. Adding our
    // table to it would hide the mistake.
    Statement stmt;
    int rc =
        sqlite3_prepare_v2(db_, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                           -1, stmt.out(), nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return rollback(Error(rc, "inspecting the schema"));
    if (sqlite3_column_int(stmt.get(), 0) != 0) {
      return rollback(Status::InvalidArgument(
          path_.string() +
          " is an SQLite database but not a hakit history (it has tables and no schema "
          "version); move it aside or point hakit at another file"));
    }
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= *version) continue;
    s = Exec(m.sql, "upgrading the schema to version " + std::to_string(m.version));
    if (!s.ok()) return rollback(s);
  }
  std::string set_version = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  s = Exec(set_version.c_str(), "recording the schema version");
  if (s.ok()) s = Exec("COMMIT", "committing the schema upgrade");
  if (!s.ok()) return rollback(s);
  return Status::Ok();
}

Status HistoryStore::Append(const Event& event) { return AppendBatch(std::span(&event, 1)); }

Status HistoryStore::AppendBatch(std::span<const Event> events) {
  if (events.empty()) return Status::Ok();
  // Validate everything first so that a bad event cannot leave half a batch.
  std::vector<std::string> details;
  details.reserve(events.size());
  for (const Event& e : events) {
    if (e.kind.empty()) {
      return Status::InvalidArgument("history event without a kind (module '" + e.module +
                                     "', reason '" + e.reason + "')");
    }
    auto d = NormalizeDetails(e.details);
    if (!d.ok()) return d.status().WithContext("history event " + e.kind);
    details.push_back(std::move(d).value());
  }
  const int64_t now = NowMicros();

  std::lock_guard lock(mu_);
  // IMMEDIATE: wait for the write lock (up to busy_timeout) up front, where
  // the busy handler applies, rather than failing at the first insert.
  Status s = Exec("BEGIN IMMEDIATE", "appending events");
  if (!s.ok()) return s;
  auto rollback = [this](Status error) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return error;
  };
  Statement stmt;
  int rc = sqlite3_prepare_v2(db_,
                              "INSERT INTO events (time_us, node, module, kind, from_state, "
                              "to_state, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              -1, stmt.out(), nullptr);
  if (rc != SQLITE_OK) return rollback(Error(rc, "preparing an insert"));
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    sqlite3_stmt* st = stmt.get();
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, e.time_us != 0 ? e.time_us : now);
    BindText(st, 2, e.node);
    BindText(st, 3, e.module);
    BindText(st, 4, e.kind);
    BindText(st, 5, e.from_state);
    BindText(st, 6, e.to_state);
    BindText(st, 7, e.reason);
    BindText(st, 8, details[i]);
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) return rollback(Error(rc, "appending events"));
  }
  s = Exec("COMMIT", "committing events");
  if (!s.ok()) return rollback(s);
  return Status::Ok();
}

Result<std::vector<Event>> HistoryStore::Query(const QueryFilter& filter) {
  std::string where;
  auto add = [&where](const std::string& cond) {
    where += where.empty() ? " WHERE " : " AND ";
    where += cond;
  };
  if (filter.module) add("module = ?");
  if (!filter.kinds.empty()) {
    std::string in = "kind IN (";
    for (size_t i = 0; i < filter.kinds.size(); ++i) in += i == 0 ? "?" : ", ?";
    add(in + ")");
  }
  if (filter.since_us) add("time_us >= ?");
  if (filter.until_us) add("time_us < ?");

  const char* dir = filter.order == QueryFilter::Order::kNewestFirst ? "DESC" : "ASC";
  const std::string order = std::string(" ORDER BY time_us ") + dir + ", id " + dir;
  std::string sql =
      "SELECT id, time_us, node, module, kind, from_state, to_state, reason, details FROM events" +
      where;
  if (filter.limit > 0 && filter.latest) {
    sql = "SELECT * FROM (" + sql + " ORDER BY time_us DESC, id DESC LIMIT ?)" + order;
  } else {
    sql += order;
    if (filter.limit > 0) sql += " LIMIT ?";
  }

  std::lock_guard lock(mu_);
  Statement stmt;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, stmt.out(), nullptr);
  if (rc != SQLITE_OK) return Error(rc, "preparing a query");
  sqlite3_stmt* st = stmt.get();
  int index = 1;
  if (filter.module) BindText(st, index++, *filter.module);
  for (const std::string& kind : filter.kinds) BindText(st, index++, kind);
  if (filter.since_us) sqlite3_bind_int64(st, index++, *filter.since_us);
  if (filter.until_us) sqlite3_bind_int64(st, index++, *filter.until_us);
  if (filter.limit > 0) sqlite3_bind_int64(st, index++, static_cast<int64_t>(filter.limit));

  std::vector<Event> events;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    Event e;
    e.id = sqlite3_column_int64(st, 0);
    e.time_us = sqlite3_column_int64(st, 1);
    e.node = ColumnText(st, 2);
    e.module = ColumnText(st, 3);
    e.kind = ColumnText(st, 4);
    e.from_state = ColumnText(st, 5);
    e.to_state = ColumnText(st, 6);
    e.reason = ColumnText(st, 7);
    e.details = ColumnText(st, 8);
    events.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return Error(rc, "reading events");
  return events;
}

}  // namespace hakit::history
