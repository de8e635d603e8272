// End-to-end tests of the `hakit` CLI: the real binary runs as a child process
// with a clean environment (PATH and what each test adds) and a private root,
// and each test checks its exit code, stdout and stderr.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "hakit/control/protocol.h"
#include "hakit/history/event.h"
#include "hakit/history/store.h"
#include "hakit/history/time_arg.h"

namespace hakit {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kHakit = HAKIT_BINARY_DIR "/bin/hakit";
const fs::path kConfigData = HAKIT_SOURCE_DIR "/tests/config/data";

struct RunResult {
  int code = -1;  // exit code; 128+N when killed by signal N
  std::string out;
  std::string err;
};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// Runs `argv` (argv[0] is the program's path) with exactly `env` as its
// environment and stdin from /dev/null; stdout and stderr go through files in
// `scratch` so that no pipe can fill up. A child still running after 60 s is
// killed and the test fails.
RunResult Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                const fs::path& scratch) {
  static int counter = 0;
  const int n = ++counter;
  const fs::path out_path = scratch / (".stdout." + std::to_string(n));
  const fs::path err_path = scratch / (".stderr." + std::to_string(n));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  RunResult r;
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    return r;
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      ADD_FAILURE() << "waitpid: " << std::strerror(errno);
      return r;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << argv[0] << " did not finish within 60 s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return r;
}

// Every test gets a private folder (short, under /tmp, so that a control
// socket path fits in sun_path) holding the node root ROOT = DIR/root.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kHakit)) << kHakit << " missing: build the hakit target";
    std::string tmpl = "/tmp/hakit-cli-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    root_ = dir_ / "root";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // hakit ARGS... with only PATH in the environment plus `env`.
  RunResult Hakit(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), kHakit.string());
    env.emplace("PATH", "/usr/bin:/bin");
    return Spawn(args, env, dir_);
  }
  // hakit --root ROOT ARGS...
  RunResult AtRoot(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), {"--root", root_.string()});
    return Hakit(std::move(args), std::move(env));
  }

  fs::path dir_;
  fs::path root_;
};

// What every test prints when an expectation fails.
std::string Show(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

// ---------------------------------------------------------------------------
// hakit module check

using cli_module_check = CliTest;

// "LINE:COLUMN" of `attribute="value"` in `text`, both 1-based, as the parser
// reports a problem with an attribute (at the attribute's name).
std::string PositionOf(const std::string& text, const std::string& attribute,
                       const std::string& value) {
  const std::string needle = attribute + "=\"" + value + "\"";
  std::vector<std::string> lines = Lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto col = lines[i].find(needle);
    if (col != std::string::npos) return std::to_string(i + 1) + ":" + std::to_string(col + 1);
  }
  ADD_FAILURE() << needle << " not found";
  return "?";
}

TEST_F(cli_module_check, ReferenceConfigListsEveryPlaceholderWithItsPosition) {
  const fs::path file = kConfigData / "reference_userconfig.xml";
  const std::string text = ReadFile(file);
  RunResult r = Hakit({"module", "check", file.string()});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_NE(r.out.find("4 value(s) to fill in"), std::string::npos) << Show(r);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"addr", "VIRTUAL_TO_BE_DEFINED"},
      {"name", "PROCESS_NAME"},
      {"dir", "c:\\test1replicated"},
      {"dir", "c:\\test2replicated"},
  };
  std::vector<std::string> out = Lines(r.out);
  for (const auto& [attribute, value] : expected) {
    const std::string where = file.string() + ":" + PositionOf(text, attribute, value) + ":";
    bool found = false;
    for (const auto& line : out) {
      found = found || (line.find(where) != std::string::npos &&
                        line.find("\"" + value + "\"") != std::string::npos);
    }
    EXPECT_TRUE(found) << "no line with " << where << " and " << value << "\n" << Show(r);
  }
  // The two Windows paths are reported as such, with what is expected instead.
  std::size_t windows = 0;
  for (const auto& line : out) windows += line.find("Windows path") != std::string::npos;
  EXPECT_EQ(windows, 2u) << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
}

TEST_F(cli_module_check, FilledInConfigIsReady) {
  const fs::path file = kConfigData / "filled_userconfig.xml";
  RunResult r = Hakit({"module", "check", file.string()});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_NE(r.out.find("ready"), std::string::npos) << Show(r);
  EXPECT_NE(r.out.find(file.string()), std::string::npos) << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
}

TEST_F(cli_module_check, ModuleDirectoryIsCheckedThroughConfUserconfig) {
  const fs::path ready = dir_ / "ready_module";
  fs::create_directories(ready / "conf");
  fs::copy_file(kConfigData / "filled_userconfig.xml", ready / "conf" / "userconfig.xml");
  RunResult r = Hakit({"module", "check", ready.string()});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_NE(r.out.find("ready"), std::string::npos) << Show(r);
  // A trailing slash is the same folder.
  RunResult slash = Hakit({"module", "check", ready.string() + "/"});
  EXPECT_EQ(slash.code, 0) << Show(slash);

  const fs::path todo = dir_ / "todo_module";
  fs::create_directories(todo / "conf");
  fs::copy_file(kConfigData / "reference_userconfig.xml", todo / "conf" / "userconfig.xml");
  RunResult t = Hakit({"module", "check", todo.string()});
  EXPECT_EQ(t.code, 1) << Show(t);
  EXPECT_NE(t.out.find((todo / "conf" / "userconfig.xml").string() + ":17:"), std::string::npos)
      << Show(t);
  EXPECT_NE(t.out.find("PROCESS_NAME"), std::string::npos) << Show(t);
}

TEST_F(cli_module_check, MalformedXmlIsOneMessageWithFileLineColumn) {
  const fs::path file = dir_ / "broken.xml";
  WriteFile(file,
            "<!DOCTYPE safe>\n"
            "<safe>\n"
            "   <service mode=\"mirror\">\n"
            "   </servise>\n"
            "</safe>\n");
  RunResult r = Hakit({"module", "check", file.string()});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  std::vector<std::string> err = Lines(r.err);
  ASSERT_EQ(err.size(), 1u) << Show(r);
  EXPECT_TRUE(std::regex_search(err[0], std::regex("^" + file.string() + ":4:[0-9]+: ")))
      << Show(r);
  EXPECT_NE(err[0].find("XML"), std::string::npos) << Show(r);
}

TEST_F(cli_module_check, InvalidValueIsOneMessageWithPosition) {
  const fs::path file = kConfigData / "bad_userconfig.xml";
  RunResult r = Hakit({"module", "check", file.string()});
  EXPECT_EQ(r.code, 1) << Show(r);
  std::vector<std::string> err = Lines(r.err);
  ASSERT_EQ(err.size(), 1u) << Show(r);
  EXPECT_EQ(err[0].rfind(file.string() + ":" + PositionOf(ReadFile(file), "pulse", "fast") + ":",
                         0),
            0u)
      << Show(r);
}

TEST_F(cli_module_check, MissingFileIsAClearMessage) {
  const fs::path file = dir_ / "no_such_userconfig.xml";
  RunResult r = Hakit({"module", "check", file.string()});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find(file.string()), std::string::npos) << Show(r);
  EXPECT_NE(r.err.find("No such file"), std::string::npos) << Show(r);
  EXPECT_EQ(Lines(r.err).size(), 1u) << Show(r);

  // A folder that is not a module names the file it looked for.
  fs::create_directories(dir_ / "empty_module");
  RunResult d = Hakit({"module", "check", (dir_ / "empty_module").string()});
  EXPECT_EQ(d.code, 1) << Show(d);
  EXPECT_NE(d.err.find((dir_ / "empty_module" / "conf" / "userconfig.xml").string()),
            std::string::npos)
      << Show(d);
}

TEST_F(cli_module_check, NoArgumentIsAUsageError) {
  RunResult r = Hakit({"module", "check"});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_NE(r.err.find("usage: hakit module check"), std::string::npos) << Show(r);
}

// ---------------------------------------------------------------------------
// Usage: --help, no command, unknown command, bad options

using cli_usage = CliTest;

const std::vector<std::string> kCommands = {
    "start", "stop",        "restart", "stopstart", "swap",   "prim",   "second",
    "state", "module check", "module list", "history", "log", "printi", "printw",
    "printe", "cluster genkey"};

TEST_F(cli_usage, HelpListsEveryCommand) {
  for (const std::string flag : {"--help", "-h", "help"}) {
    RunResult r = Hakit({flag});
    EXPECT_EQ(r.code, 0) << flag << "\n" << Show(r);
    EXPECT_EQ(r.err, "") << Show(r);
    EXPECT_NE(r.out.find("usage: hakit"), std::string::npos) << Show(r);
    for (const auto& c : kCommands) {
      EXPECT_TRUE(std::regex_search(r.out, std::regex("\n  " + c + "  +[a-z]")))
          << "--help does not list " << c << "\n" << Show(r);
    }
  }
}

TEST_F(cli_usage, NoArgumentsPrintsUsageOnStderr) {
  RunResult r = Hakit({});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find("usage: hakit"), std::string::npos) << Show(r);
}

TEST_F(cli_usage, UnknownCommandIsAUsageError) {
  RunResult r = AtRoot({"frobnicate", "-m", "x"});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << Show(r);
  // "module" alone is not a command either.
  RunResult m = AtRoot({"module"});
  EXPECT_EQ(m.code, 2) << Show(m);
}

TEST_F(cli_usage, CommandHelpExitsZero) {
  RunResult r = Hakit({"state", "--help"});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_NE(r.out.find("usage: hakit state"), std::string::npos) << Show(r);
  EXPECT_NE(r.out.find("--quiet"), std::string::npos) << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
}

// --help wins over missing required options (`hakit start --help` must not
// say "--module is required").
TEST_F(cli_usage, EveryCommandHasHelp) {
  for (const auto& c : kCommands) {
    std::vector<std::string> args;
    std::istringstream words(c);
    for (std::string w; words >> w;) args.push_back(w);
    args.push_back("--help");
    RunResult r = AtRoot(args);
    EXPECT_EQ(r.code, 0) << c << " --help\n" << Show(r);
    EXPECT_NE(r.out.find("usage: hakit " + c), std::string::npos) << c << "\n" << Show(r);
    EXPECT_EQ(r.err, "") << c << "\n" << Show(r);
  }
}

TEST_F(cli_usage, BadOptionIsAUsageErrorWithUsageLine) {
  RunResult r = AtRoot({"state", "--bogus"});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find("--bogus"), std::string::npos) << Show(r);
  EXPECT_NE(r.err.find("usage: hakit state"), std::string::npos) << Show(r);
}

TEST_F(cli_usage, MissingRequiredOptionIsAUsageError) {
  RunResult r = AtRoot({"start"});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_NE(r.err.find("usage: hakit start -m MODULE"), std::string::npos) << Show(r);
  RunResult root = Hakit({"state", "--root"});
  EXPECT_EQ(root.code, 2) << Show(root);
  EXPECT_NE(root.err.find("--root"), std::string::npos) << Show(root);
}

// ---------------------------------------------------------------------------
// hakit history

int64_t Time(const std::string& iso) {
  auto t = history::ParseTimeArg(iso);
  EXPECT_TRUE(t.ok()) << iso;
  return t.ok() ? *t : 0;
}

history::Event Ev(const std::string& iso, const std::string& node, const std::string& module,
                  const std::string& kind, const std::string& reason, const std::string& from = "",
                  const std::string& to = "") {
  history::Event e;
  e.time_us = Time(iso);
  e.node = node;
  e.module = module;
  e.kind = kind;
  e.reason = reason;
  e.from_state = from;
  e.to_state = to;
  return e;
}

class cli_history : public CliTest {
 protected:
  fs::path Db() const { return root_ / "var" / "history.db"; }

  static void Fill(const fs::path& db, const std::vector<history::Event>& events) {
    auto store = history::HistoryStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->AppendBatch(events).ok());
  }

  // node1's history: four events over three hours.
  void FillNode1() {
    history::Event failover =
        Ev("2026-11-26T11:00:00Z", "node1", "mod1", "failover", "peer lost", "SECOND", "ALONE");
    failover.details = R"({"networks":["default"]})";
    Fill(Db(), {
                   Ev("2026-11-26T10:00:00Z", "node1", "mod1", "state_change", "start_prim done",
                      "WAIT", "PRIM"),
                   failover,
                   Ev("2026-11-26T12:00:00Z", "node1", "mod2", "checker_failure", "tcp 5432 down"),
                   Ev("2026-11-26T13:00:00Z", "node1", "", "auth_failure", "bad heartbeat MAC"),
               });
  }

  // The reasons of a --json output, in order.
  static std::vector<std::string> Reasons(const RunResult& r) {
    std::vector<std::string> out;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_array()) << Show(r);
    if (!j.is_array()) return out;
    for (const auto& e : j) out.push_back(e.value("reason", "?"));
    return out;
  }
};

TEST_F(cli_history, TableShowsEveryEvent) {
  FillNode1();
  RunResult r = AtRoot({"history"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << Show(r);
  EXPECT_TRUE(std::regex_search(lines[0], std::regex("^TIME +NODE +MODULE +KIND +TRANSITION +REASON$")))
      << Show(r);
  EXPECT_TRUE(std::regex_search(
      lines[1], std::regex("^2026-11-26T10:00:00[.0-9]*Z +node1 +mod1 +state_change +WAIT->PRIM +"
                           "start_prim done$")))
      << Show(r);
  EXPECT_NE(lines[2].find("SECOND->ALONE"), std::string::npos) << Show(r);
  EXPECT_NE(lines[2].find("peer lost"), std::string::npos) << Show(r);
  EXPECT_NE(lines[3].find("tcp 5432 down"), std::string::npos) << Show(r);
  EXPECT_NE(lines[4].find("auth_failure"), std::string::npos) << Show(r);
}

TEST_F(cli_history, JsonHoldsEveryField) {
  FillNode1();
  RunResult r = AtRoot({"history", "--json"});
  ASSERT_EQ(r.code, 0) << Show(r);
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << Show(r);
  ASSERT_EQ(j.size(), 4u) << Show(r);
  const json& f = j[1];
  EXPECT_EQ(f["node"], "node1");
  EXPECT_EQ(f["module"], "mod1");
  EXPECT_EQ(f["kind"], "failover");
  EXPECT_EQ(f["from_state"], "SECOND");
  EXPECT_EQ(f["to_state"], "ALONE");
  EXPECT_EQ(f["reason"], "peer lost");
  EXPECT_EQ(f["time_us"], Time("2026-11-26T11:00:00Z"));
  EXPECT_EQ(f["time"].get<std::string>().rfind("2026-11-26T11:00:00", 0), 0u) << f.dump();
  EXPECT_EQ(f["details"], json::parse(R"({"networks":["default"]})"));
  EXPECT_TRUE(f["id"].is_number_integer());
  EXPECT_EQ(j[3]["module"], "");
  // One document, no trailing blank line.
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  EXPECT_NE(r.out.substr(r.out.size() - 2), "\n\n") << Show(r);
}

TEST_F(cli_history, EmptyDatabasePrintsHeaderOrEmptyArray) {
  Fill(Db(), {});
  RunResult r = AtRoot({"history"});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(Lines(r.out).size(), 1u) << Show(r);
  RunResult j = AtRoot({"history", "--json"});
  EXPECT_EQ(j.code, 0) << Show(j);
  EXPECT_EQ(json::parse(j.out, nullptr, false), json::array()) << Show(j);
}

TEST_F(cli_history, FilterByModule) {
  FillNode1();
  RunResult r = AtRoot({"history", "-m", "mod1", "--json"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(Reasons(r), (std::vector<std::string>{"start_prim done", "peer lost"}));
  RunResult none = AtRoot({"history", "--module", "nosuch", "--json"});
  ASSERT_EQ(none.code, 0) << Show(none);
  EXPECT_TRUE(Reasons(none).empty()) << Show(none);
}

TEST_F(cli_history, FilterByKind) {
  FillNode1();
  RunResult r = AtRoot({"history", "--kind", "failover", "--json"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(Reasons(r), (std::vector<std::string>{"peer lost"}));
  RunResult two =
      AtRoot({"history", "--kind", "auth_failure", "--kind", "state_change", "--json"});
  ASSERT_EQ(two.code, 0) << Show(two);
  EXPECT_EQ(Reasons(two), (std::vector<std::string>{"start_prim done", "bad heartbeat MAC"}));
}

TEST_F(cli_history, FilterBySinceAndUntil) {
  FillNode1();
  // since <= t < until: the event at exactly 12:00 is left out.
  RunResult r = AtRoot({"history", "--since", "2026-11-26T10:30:00Z", "--until",
                        "2026-11-26T12:00:00Z", "--json"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(Reasons(r), (std::vector<std::string>{"peer lost"}));
  RunResult since = AtRoot({"history", "--since", "2026-11-26T12:00:00Z", "--json"});
  ASSERT_EQ(since.code, 0) << Show(since);
  EXPECT_EQ(Reasons(since), (std::vector<std::string>{"tcp 5432 down", "bad heartbeat MAC"}));
  RunResult until = AtRoot({"history", "--until", "2026-11-26", "--json"});
  ASSERT_EQ(until.code, 0) << Show(until);
  EXPECT_TRUE(Reasons(until).empty()) << Show(until);
}

TEST_F(cli_history, LastN) {
  FillNode1();
  RunResult r = AtRoot({"history", "-n", "2", "--json"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(Reasons(r), (std::vector<std::string>{"tcp 5432 down", "bad heartbeat MAC"}));
}

TEST_F(cli_history, UnknownKindIsAUsageError) {
  FillNode1();
  RunResult r = AtRoot({"history", "--kind", "explosion"});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find("unknown kind 'explosion'"), std::string::npos) << Show(r);
  // The message lists the kinds that exist.
  EXPECT_NE(r.err.find("failover"), std::string::npos) << Show(r);
}

TEST_F(cli_history, BadTimeIsAUsageError) {
  FillNode1();
  RunResult r = AtRoot({"history", "--since", "last tuesday"});
  EXPECT_EQ(r.code, 2) << Show(r);
  EXPECT_NE(r.err.find("last tuesday"), std::string::npos) << Show(r);
}

TEST_F(cli_history, MergeOrdersBothNodesByTime) {
  FillNode1();
  const fs::path other = dir_ / "node2" / "history.db";
  Fill(other, {
                  Ev("2026-11-26T10:30:00Z", "node2", "mod1", "peer_lost", "node1 silent"),
                  Ev("2026-11-26T09:00:00Z", "node2", "mod1", "state_change", "node2 first",
                     "WAIT", "SECOND"),
                  Ev("2026-11-26T12:30:00Z", "node2", "mod1", "peer_found", "node1 back"),
              });
  RunResult r = AtRoot({"history", "--merge", other.string(), "--json"});
  ASSERT_EQ(r.code, 0) << Show(r);
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << Show(r);
  std::vector<std::string> nodes;
  int64_t previous = 0;
  for (const auto& e : j) {
    nodes.push_back(e["node"]);
    EXPECT_GE(e["time_us"].get<int64_t>(), previous) << Show(r);
    previous = e["time_us"];
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"node2", "node1", "node2", "node1", "node1", "node2",
                                             "node1"}));
  EXPECT_EQ(Reasons(r).front(), "node2 first");

  // The table is merged the same way; filters apply to both nodes.
  RunResult t = AtRoot({"history", "--merge", other.string(), "-m", "mod1"});
  ASSERT_EQ(t.code, 0) << Show(t);
  std::vector<std::string> lines = Lines(t.out);
  ASSERT_EQ(lines.size(), 6u) << Show(t);
  EXPECT_NE(lines[1].find("node2 first"), std::string::npos) << Show(t);
  EXPECT_NE(lines[3].find("node1 silent"), std::string::npos) << Show(t);
  EXPECT_NE(lines[5].find("node1 back"), std::string::npos) << Show(t);
}

TEST_F(cli_history, MergeOfAMissingFileNamesIt) {
  FillNode1();
  const fs::path other = dir_ / "nowhere.db";
  RunResult r = AtRoot({"history", "--merge", other.string()});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_NE(r.err.find(other.string()), std::string::npos) << Show(r);
  EXPECT_FALSE(fs::exists(other));
}

TEST_F(cli_history, NoDatabaseYetIsAClearMessage) {
  RunResult r = AtRoot({"history"});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find("no history yet"), std::string::npos) << Show(r);
  EXPECT_NE(r.err.find(Db().string()), std::string::npos) << Show(r);
  // Reading never creates the database.
  EXPECT_FALSE(fs::exists(Db()));
}

TEST_F(cli_history, CorruptDatabaseNamesThePath) {
  std::string garbage;
  for (int i = 0; i < 200; ++i) garbage += "this is not an SQLite database. ";
  WriteFile(Db(), garbage);
  RunResult r = AtRoot({"history"});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find(Db().string()), std::string::npos) << Show(r);
  EXPECT_EQ(Lines(r.err).size(), 1u) << Show(r);
  // Left as it was, for the operator to look at.
  EXPECT_EQ(ReadFile(Db()), garbage);

  // The same for a corrupt file given to --merge.
  fs::remove(Db());
  FillNode1();
  const fs::path other = dir_ / "corrupt.db";
  WriteFile(other, garbage);
  RunResult m = AtRoot({"history", "--merge", other.string()});
  EXPECT_EQ(m.code, 1) << Show(m);
  EXPECT_NE(m.err.find(other.string()), std::string::npos) << Show(m);
}

// ---------------------------------------------------------------------------
// printi / printw / printe and hakit log

class cli_log : public CliTest {
 protected:
  fs::path ModuleLog(const std::string& m) const { return root_ / "log" / m / "module.log"; }
  std::map<std::string, std::string> ScriptEnv(const std::string& module) const {
    return {{"SAFEMODULE", module}, {"HAKIT_ROOT", root_.string()}};
  }
};

// "2026-11-26T11:38:18.123456Z I message"
std::regex LogLine(char level, const std::string& message) {
  return std::regex(std::string("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z ") +
                    level + " " + message + "$");
}

TEST_F(cli_log, PrintCommandsAppendWithTheirLevel) {
  for (const auto& [cmd, msg] : std::vector<std::pair<std::string, std::string>>{
           {"printi", "hello info"}, {"printw", "a warning"}, {"printe", "an error"}}) {
    RunResult r = Hakit({cmd, msg}, ScriptEnv("m"));
    EXPECT_EQ(r.code, 0) << cmd << "\n" << Show(r);
    EXPECT_EQ(r.out, "") << Show(r);
    EXPECT_EQ(r.err, "") << Show(r);
  }
  std::vector<std::string> lines = Lines(ReadFile(ModuleLog("m")));
  ASSERT_EQ(lines.size(), 3u) << ReadFile(ModuleLog("m"));
  EXPECT_TRUE(std::regex_match(lines[0], LogLine('I', "hello info"))) << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], LogLine('W', "a warning"))) << lines[1];
  EXPECT_TRUE(std::regex_match(lines[2], LogLine('E', "an error"))) << lines[2];
}

TEST_F(cli_log, SeveralWordsAreJoined) {
  RunResult r = Hakit({"printi", "several", "words", "here"}, ScriptEnv("m"));
  ASSERT_EQ(r.code, 0) << Show(r);
  std::vector<std::string> lines = Lines(ReadFile(ModuleLog("m")));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(std::regex_match(lines[0], LogLine('I', "several words here"))) << lines[0];
}

// Scripts log messages that look like options; they are logged as given.
TEST_F(cli_log, MessagesStartingWithADashAreLoggedVerbatim) {
  EXPECT_EQ(Hakit({"printi", "--- start_prim ---"}, ScriptEnv("m")).code, 0);
  EXPECT_EQ(Hakit({"printe", "-1", "returned"}, ScriptEnv("m")).code, 0);
  EXPECT_EQ(Hakit({"printw", "--", "-m", "is", "not", "an", "option", "here"}, ScriptEnv("m")).code,
            0);
  std::vector<std::string> lines = Lines(ReadFile(ModuleLog("m")));
  ASSERT_EQ(lines.size(), 3u) << ReadFile(ModuleLog("m"));
  EXPECT_TRUE(std::regex_match(lines[0], LogLine('I', "--- start_prim ---"))) << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], LogLine('E', "-1 returned"))) << lines[1];
  EXPECT_TRUE(std::regex_match(lines[2], LogLine('W', "-m is not an option here"))) << lines[2];
}

TEST_F(cli_log, DashMChoosesTheModule) {
  RunResult r = AtRoot({"printw", "-m", "other", "from the shell"}, {{"SAFEMODULE", "m"}});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_FALSE(fs::exists(ModuleLog("m")));
  std::vector<std::string> lines = Lines(ReadFile(ModuleLog("other")));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(std::regex_match(lines[0], LogLine('W', "from the shell"))) << lines[0];
  RunResult eq = AtRoot({"printi", "--module=third", "x"});
  ASSERT_EQ(eq.code, 0) << Show(eq);
  EXPECT_TRUE(fs::exists(ModuleLog("third")));
}

TEST_F(cli_log, NoModuleIsAUsageError) {
  for (const std::string cmd : {"printi", "printw", "printe"}) {
    RunResult r = AtRoot({cmd, "lost message"});
    EXPECT_EQ(r.code, 2) << cmd << "\n" << Show(r);
    EXPECT_NE(r.err.find("SAFEMODULE"), std::string::npos) << Show(r);
  }
  // An empty SAFEMODULE is no module either.
  RunResult empty = AtRoot({"printi", "lost"}, {{"SAFEMODULE", ""}});
  EXPECT_EQ(empty.code, 2) << Show(empty);
  EXPECT_FALSE(fs::exists(root_ / "log"));
}

TEST_F(cli_log, LogShowsTheLastLines) {
  for (int i = 1; i <= 4; ++i) {
    ASSERT_EQ(Hakit({"printi", "line " + std::to_string(i)}, ScriptEnv("m")).code, 0);
  }
  RunResult r = AtRoot({"log", "-m", "m", "-n", "2"});
  ASSERT_EQ(r.code, 0) << Show(r);
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << Show(r);
  EXPECT_TRUE(std::regex_match(lines[0], LogLine('I', "line 3"))) << Show(r);
  EXPECT_TRUE(std::regex_match(lines[1], LogLine('I', "line 4"))) << Show(r);
  RunResult all = AtRoot({"log", "-m", "m", "-n", "0"});
  EXPECT_EQ(Lines(all.out).size(), 4u) << Show(all);
  RunResult dflt = AtRoot({"log", "-m", "m"});
  EXPECT_EQ(Lines(dflt.out).size(), 4u) << Show(dflt);
}

TEST_F(cli_log, UserLogWithDashU) {
  WriteFile(root_ / "log" / "m" / "userlog.log", "out 1\nout 2\nout 3\n");
  RunResult r = AtRoot({"log", "-m", "m", "-u", "-n", "1"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(r.out, "out 3\n");
}

TEST_F(cli_log, NoLogIsAClearMessage) {
  RunResult r = AtRoot({"log", "-m", "ghost"});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_NE(r.err.find("ghost"), std::string::npos) << Show(r);
  EXPECT_NE(r.err.find(ModuleLog("ghost").string()), std::string::npos) << Show(r);
  RunResult nom = AtRoot({"log"});
  EXPECT_EQ(nom.code, 2) << Show(nom);
}

// A SafeKit script logs through "$SAFE/safekit", an alias of hakit.
TEST_F(cli_log, SafekitAliasFromAShellScript) {
  const fs::path safe = dir_ / "safe";
  fs::create_directories(safe);
  fs::create_symlink(kHakit, safe / "safekit");
  const fs::path script = dir_ / "start_prim";
  WriteFile(script,
            "#!/bin/sh\n"
            "set -e\n"
            "\"$SAFE/safekit\" printi \"hello\"\n"
            "\"$SAFE/safekit\" printw \"--- $1 -> $2 ---\"\n"
            "\"$SAFE/safekit\" printe \"it's done: 100%\"\n"
            "\"$SAFE/safekit\" state -m \"$SAFEMODULE\" -lq || echo \"state $?\"\n"
            "echo finished\n");
  fs::permissions(script, fs::perms::owner_all);
  std::map<std::string, std::string> env = ScriptEnv("mod1");
  env["SAFE"] = safe.string();
  env["PATH"] = "/usr/bin:/bin";
  RunResult r = Spawn({"/bin/sh", script.string(), "STOP", "ALONE"}, env, dir_);
  ASSERT_EQ(r.code, 0) << Show(r);
  // No daemon: the module is stopped, -lq exits 0 and prints nothing.
  EXPECT_EQ(r.out, "finished\n") << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
  std::vector<std::string> lines = Lines(ReadFile(ModuleLog("mod1")));
  ASSERT_EQ(lines.size(), 3u) << ReadFile(ModuleLog("mod1"));
  EXPECT_TRUE(std::regex_match(lines[0], LogLine('I', "hello"))) << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], LogLine('W', "--- STOP -> ALONE ---"))) << lines[1];
  EXPECT_TRUE(std::regex_match(lines[2], LogLine('E', "it's done: 100%"))) << lines[2];
}

// ---------------------------------------------------------------------------
// hakit cluster genkey

using cli_cluster_genkey = CliTest;

TEST_F(cli_cluster_genkey, WritesAPrivateKeyAndRefusesToReplaceIt) {
  const fs::path key = root_ / "conf" / "cluster.key";
  RunResult r = AtRoot({"cluster", "genkey"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_NE(r.out.find(key.string()), std::string::npos) << Show(r);
  struct stat st {};
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const std::string first = ReadFile(key);
  EXPECT_TRUE(std::regex_match(first, std::regex("[0-9a-f]{64}\n"))) << first;

  RunResult again = AtRoot({"cluster", "genkey"});
  EXPECT_EQ(again.code, 1) << Show(again);
  EXPECT_NE(again.err.find(key.string()), std::string::npos) << Show(again);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << Show(again);
  EXPECT_EQ(ReadFile(key), first);

  RunResult forced = AtRoot({"cluster", "genkey", "--force"});
  ASSERT_EQ(forced.code, 0) << Show(forced);
  const std::string second = ReadFile(key);
  EXPECT_TRUE(std::regex_match(second, std::regex("[0-9a-f]{64}\n"))) << second;
  EXPECT_NE(second, first);
  ASSERT_EQ(::stat(key.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(key.string() + ".tmp"));
}

TEST_F(cli_cluster_genkey, OutputOption) {
  const fs::path key = dir_ / "elsewhere" / "k";
  RunResult r = AtRoot({"cluster", "genkey", "-o", key.string()});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_TRUE(fs::exists(key));
  EXPECT_FALSE(fs::exists(root_ / "conf" / "cluster.key"));
}

// ---------------------------------------------------------------------------
// Commands for the daemon, with no daemon running

using cli_control = CliTest;

TEST_F(cli_control, StateWithoutDaemonNamesTheControlSocket) {
  RunResult r = AtRoot({"state"});
  EXPECT_EQ(r.code, 1) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_NE(r.err.find((root_ / "var" / "control.sock").string()), std::string::npos) << Show(r);
  EXPECT_NE(r.err.find("no hakitd"), std::string::npos) << Show(r);
}

TEST_F(cli_control, StateLqWithoutDaemonIsStop) {
  RunResult r = AtRoot({"state", "-m", "x", "-lq"});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
}

TEST_F(cli_control, ActionsWithoutDaemonFail) {
  for (const std::string cmd : {"start", "stop", "restart", "stopstart", "swap", "prim", "second"}) {
    RunResult r = AtRoot({cmd, "-m", "x"});
    EXPECT_EQ(r.code, 1) << cmd << "\n" << Show(r);
    EXPECT_EQ(r.out, "") << Show(r);
    EXPECT_NE(r.err.find("hakit " + cmd + ": "), std::string::npos) << Show(r);
    EXPECT_NE(r.err.find((root_ / "var" / "control.sock").string()), std::string::npos) << Show(r);
  }
}

// HAKIT_ROOT stands for --root; --root wins over it.
TEST_F(cli_control, RootFromEnvironmentOrOption) {
  RunResult env = Hakit({"state"}, {{"HAKIT_ROOT", root_.string()}});
  EXPECT_NE(env.err.find((root_ / "var" / "control.sock").string()), std::string::npos)
      << Show(env);
  const fs::path other = dir_ / "other";
  RunResult both = Hakit({"state", "--root=" + other.string()}, {{"HAKIT_ROOT", root_.string()}});
  EXPECT_NE(both.err.find((other / "var" / "control.sock").string()), std::string::npos)
      << Show(both);
}

// ---------------------------------------------------------------------------
// Commands for the daemon, with a stand-in daemon on the control socket

class FakeDaemon {
 public:
  using Handler = std::function<control::Response(const control::Request&)>;

  FakeDaemon(const fs::path& socket, Handler handler)
      : handler_(std::move(handler)),
        server_(io_, socket, [this](const control::Request& req, control::ControlServer::Reply reply) {
          {
            std::lock_guard lock(mu_);
            requests_.push_back(req);
          }
          reply(handler_(req));
        }) {}

  bool Start() {
    sdk::Status s = server_.Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return false;
    thread_ = std::thread([this] { io_.run(); });
    return true;
  }

  ~FakeDaemon() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.Stop();
  }

  std::vector<control::Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  Handler handler_;
  boost::asio::io_context io_;
  control::ControlServer server_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<control::Request> requests_;
};

json StateData(const std::string& state, int exit_code) {
  return json{
      {"node", "node1"},
      {"peer", "node2"},
      {"modules",
       json::array({json{
           {"name", "mod1"},
           {"state", state},
           {"exit_code", exit_code},
           {"busy", false},
           {"target", state},
           {"reason", "start_prim done"},
           {"wait_reason", ""},
           {"peer", {{"name", "node2"}, {"visible", true}, {"state", "SECOND"}, {"config_matches", true}}},
           {"summary", {{"failovers", 1}, {"swaps", 2}, {"script_failures", 0}, {"last_primary", "node1"}}},
           {"details", {{"data", "up_to_date"}}},
       }})},
      {"networks", json::array({json{{"lan", "default"}, {"up", true}, {"age_ms", 400}}})},
      {"warnings", json::array()},
  };
}

class cli_daemon : public CliTest {
 protected:
  fs::path Socket() const { return root_ / "var" / "control.sock"; }
};

TEST_F(cli_daemon, StateTableAndJson) {
  FakeDaemon daemon(Socket(), [](const control::Request&) {
    control::Response r = control::Response::Ok();
    r.data = StateData("PRIM", 3);
    return r;
  });
  ASSERT_TRUE(daemon.Start());
  RunResult r = AtRoot({"state"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_NE(r.out.find("node node1"), std::string::npos) << Show(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nmod1 +PRIM +peer node2: SECOND\n"))) << Show(r);
  EXPECT_NE(r.out.find("1 failovers, 2 swaps"), std::string::npos) << Show(r);
  EXPECT_NE(r.out.find("network default: up, last heard 0.4s ago"), std::string::npos) << Show(r);
  EXPECT_EQ(r.out.find("up_to_date"), std::string::npos) << "details need -v\n" << Show(r);
  RunResult v = AtRoot({"state", "-v"});
  EXPECT_NE(v.out.find("data: \"up_to_date\""), std::string::npos) << Show(v);

  RunResult j = AtRoot({"state", "--json"});
  ASSERT_EQ(j.code, 0) << Show(j);
  EXPECT_EQ(json::parse(j.out, nullptr, false), StateData("PRIM", 3)) << Show(j);

  auto requests = daemon.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].command, "state");
  EXPECT_EQ(requests[0].module, "");
}

// The primary's synchronisation, while it runs: one line of figures; once
// done, nothing.
TEST_F(cli_daemon, StateShowsARunningSynchronisationsProgress) {
  std::mutex mu;
  json sync = {{"state", "running"}, {"method", "checksums"},     {"bytes_done", 120ull << 20},
               {"bytes_total", 384ull << 20}, {"rate_bps", 50ull << 20}, {"eta_s", 5.28},
               {"passes", 1}, {"entries", 7}, {"bytes_compared", 120ull << 20}, {"bytes_sent", 0}};
  FakeDaemon daemon(Socket(), [&](const control::Request&) {
    control::Response r = control::Response::Ok();
    r.data = StateData("PRIM", 3);
    std::lock_guard lock(mu);
    r.data["modules"][0]["details"]["replication"] = {{"role", "primary"}, {"sync", sync}};
    return r;
  });
  ASSERT_TRUE(daemon.Start());
  RunResult r = AtRoot({"state"});
  ASSERT_EQ(r.code, 0) << Show(r);
  EXPECT_NE(r.out.find("\n  synchronisation: running (checksums), 120.0 MiB of 384.0 MiB (31 %), "
                       "50.0 MiB/s, about 5.3 s left\n"),
            std::string::npos)
      << Show(r);
  {
    std::lock_guard lock(mu);
    sync["state"] = "done";
    sync.erase("eta_s");
  }
  r = AtRoot({"state"});
  EXPECT_EQ(r.out.find("synchronisation"), std::string::npos) << Show(r);
  {
    std::lock_guard lock(mu);
    sync["state"] = "failed: the secondary was lost";
  }
  r = AtRoot({"state"});
  EXPECT_NE(r.out.find("  synchronisation: failed: the secondary was lost\n"), std::string::npos)
      << Show(r);
}

TEST_F(cli_daemon, StateLqExitsWithTheStateCode) {
  std::mutex mu;
  std::string state;
  int code = 0;
  FakeDaemon daemon(Socket(), [&](const control::Request&) {
    std::lock_guard lock(mu);
    control::Response r = control::Response::Ok();
    r.data = StateData(state, code);
    return r;
  });
  ASSERT_TRUE(daemon.Start());
  for (const auto& [s, c] : std::vector<std::pair<std::string, int>>{
           {"STOP", 0}, {"WAIT", 1}, {"ALONE", 2}, {"PRIM", 3}, {"SECOND", 4}}) {
    {
      std::lock_guard lock(mu);
      state = s;
      code = c;
    }
    RunResult r = AtRoot({"state", "-m", "mod1", "-lq"});
    EXPECT_EQ(r.code, c) << s << "\n" << Show(r);
    EXPECT_EQ(r.out, "") << Show(r);
    EXPECT_EQ(r.err, "") << Show(r);
  }
  auto requests = daemon.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests.back().module, "mod1");
}

TEST_F(cli_daemon, ActionsAreForwardedWithTheirOptions) {
  FakeDaemon daemon(Socket(), [](const control::Request& req) {
    if (req.module != "mod1") return control::Response::Fail("no module " + req.module + " on node node1");
    return control::Response::Ok(req.command + " " + req.module + ": WAIT -> ALONE");
  });
  ASSERT_TRUE(daemon.Start());
  RunResult r = AtRoot({"start", "-m", "mod1"});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(r.out, "start mod1: WAIT -> ALONE\n") << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);

  RunResult second = AtRoot({"second", "-m", "mod1", "--fullsync"});
  EXPECT_EQ(second.code, 0) << Show(second);
  RunResult prim = AtRoot({"prim", "--force", "-m", "mod1"});
  EXPECT_EQ(prim.code, 0) << Show(prim);

  RunResult refused = AtRoot({"stop", "-m", "ghost"});
  EXPECT_EQ(refused.code, 1) << Show(refused);
  EXPECT_EQ(refused.out, "") << Show(refused);
  EXPECT_EQ(refused.err, "no module ghost on node node1\n") << Show(refused);

  auto requests = daemon.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].command, "start");
  EXPECT_EQ(requests[0].module, "mod1");
  EXPECT_EQ(requests[0].args.value("fullsync", true), false);
  EXPECT_EQ(requests[1].command, "second");
  EXPECT_EQ(requests[1].args.value("fullsync", false), true);
  EXPECT_EQ(requests[2].command, "prim");
  EXPECT_EQ(requests[2].args.value("force", false), true);
  EXPECT_EQ(requests[3].command, "stop");
}

// ---------------------------------------------------------------------------
// hakit module list

using cli_module_list = CliTest;

TEST_F(cli_module_list, ListsModuleFoldersSorted) {
  fs::create_directories(root_ / "modules" / "web");
  fs::create_directories(root_ / "modules" / "db" / "conf");
  fs::create_directories(root_ / "modules" / "app");
  WriteFile(root_ / "modules" / "README", "not a module\n");
  RunResult r = AtRoot({"module", "list"});
  ASSERT_EQ(r.code, 0) << Show(r);
  // NAME, then the version from the module's manifest ("-": none).
  EXPECT_EQ(r.out, "app                 -\ndb                  -\nweb                 -\n") << Show(r);
  EXPECT_EQ(r.err, "") << Show(r);
}

TEST_F(cli_module_list, NoModulesIsEmpty) {
  RunResult r = AtRoot({"module", "list"});
  EXPECT_EQ(r.code, 0) << Show(r);
  EXPECT_EQ(r.out, "") << Show(r);
}

}  // namespace
}  // namespace hakit
