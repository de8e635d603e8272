// hakit history: the node's event history, from its SQLite database.
#include <iostream>

#include "hakit/cli/options.h"
#include "hakit/history/format.h"
#include "hakit/history/store.h"
#include "hakit/history/time_arg.h"

namespace hakit::cli {
namespace {

int History(Invocation& inv) {
  po::options_description desc("options");
  std::string module, since, until;
  std::vector<std::string> kinds, merge;
  std::size_t limit = 0;
  bool json = false;
  desc.add_options()("module,m", po::value(&module), "only this module's events")(
      "kind", po::value(&kinds)->composing(), "only events of this kind (repeatable)")(
      "since", po::value(&since), "from this time (2026-11-26T10:00:00Z, 2026-11-26, -1h, now)")(
      "until", po::value(&until), "before this time")(
      "last,n", po::value(&limit), "only the last N events")(
      "merge", po::value(&merge)->composing(),
      "also read this history database (another node's), merged by time (repeatable)")(
      "json", po::bool_switch(&json), "JSON array instead of a table");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "history",
                             "[-m MODULE] [--kind K] [--since T] [--until T] [-n N] "
                             "[--merge DB] [--json]",
                             desc, {}, &vm)) {
    return *rc;
  }
  history::QueryFilter filter;
  if (!module.empty()) filter.module = module;
  filter.kinds = kinds;
  for (const auto& k : kinds) {
    if (!history::ParseKind(k)) {
      inv.err << "hakit history: unknown kind '" << k << "'; kinds:";
      for (auto kind : history::AllKinds()) inv.err << " " << history::KindName(kind);
      inv.err << "\n";
      return kExitUsage;
    }
  }
  for (auto [arg, out] : {std::pair{&since, &filter.since_us}, std::pair{&until, &filter.until_us}}) {
    if (arg->empty()) continue;
    auto t = history::ParseTimeArg(*arg);
    if (!t.ok()) {
      inv.err << "hakit history: " << t.status().message() << "\n";
      return kExitUsage;
    }
    *out = *t;
  }
  filter.limit = limit;
  filter.latest = limit > 0;
  std::vector<std::vector<history::Event>> lists;
  std::vector<std::filesystem::path> dbs = {inv.layout.HistoryDb()};
  for (const auto& m : merge) dbs.emplace_back(m);
  for (const auto& db : dbs) {
    std::error_code ec;
    if (!std::filesystem::exists(db, ec)) {
      if (db == inv.layout.HistoryDb() && merge.empty()) {
        inv.err << "hakit history: no history yet at " << db.string()
                << " (hakitd has not run on this node)\n";
        return kExitFailed;
      }
      inv.err << "hakit history: " << db.string() << ": no such file\n";
      return kExitFailed;
    }
    history::HistoryStore::Options o;
    o.read_only = true;
    auto store = history::HistoryStore::Open(db, o);
    if (!store.ok()) {
      inv.err << "hakit history: " << store.status().message() << "\n";
      return kExitFailed;
    }
    auto events = (*store)->Query(filter);
    if (!events.ok()) {
      inv.err << "hakit history: " << events.status().message() << "\n";
      return kExitFailed;
    }
    lists.push_back(std::move(*events));
  }
  std::vector<history::Event> all = history::MergeByTime(std::move(lists));
  if (limit > 0 && all.size() > limit) all.erase(all.begin(), all.end() - limit);
  // Both formats end with a newline already.
  inv.out << (json ? history::FormatJson(all) : history::FormatTable(all));
  return kExitOk;
}

}  // namespace

std::vector<Command> HistoryCommands() {
  return {{"history", "the failover history of this node (and others with --merge)", History}};
}

}  // namespace hakit::cli
