// The fixture of the database module tests (tests/postgresql, tests/mariadb):
// a ClusterRig running a module library whose data directory is the rig's
// replicated dir, a client in the client namespace that ledgers every
// acknowledged commit (one number a line on its stdout), and the check that
// the database serves every ledgered number.
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "rig_test.h"

namespace hakit::rig {

class DbRigTest : public RigTest {
 protected:
  static std::string ReadFile(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // The numbers of the complete lines (a line cut short is no acknowledgement).
  static std::vector<long> Numbers(const std::string& text) {
    std::vector<long> out;
    std::size_t pos = 0;
    for (std::size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      out.push_back(std::strtol(text.substr(pos, nl - pos).c_str(), nullptr, 10));
    }
    return out;
  }

  // A non-negative integer from the environment (round counts, seeds).
  static int EnvInt(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    return (end != nullptr && *end == '\0' && n >= 0) ? static_cast<int>(n) : fallback;
  }

  void SetUp() override {
    RigTest::SetUp();
    if (!IsSkipped() && !HaveFuse()) GTEST_SKIP() << "no /dev/fuse";
  }

  void TearDown() override { StopClient(); }

  std::string StateDump(const std::string& node) {
    auto m = rig_->ModuleState(node);
    return m.ok() ? m->dump() : m.status().message();
  }

  // A fresh rig running `module` from build/modules/MODULE.so with `vars`
  // (DATADIR_VAR set to the replicated dir), each node's copy of the data
  // filled by `fill(dir)`; both started until PRIM and SECOND with
  // replication running, with `in_sync` also the secondary's copy complete.
  // Sets prim_ and second_.
  void StartPair(const std::string& module, const std::string& datadir_var,
                 const std::map<std::string, std::string>& vars,
                 const std::function<Status(const std::filesystem::path&)>& fill, bool in_sync) {
    module_ = module;
    RigOptions o;
    o.module = module;
    o.replicated = true;
    o.replicated_dir_in_userconfig = false;  // the library declares its data dir
    o.library = std::string(HAKIT_BINARY_DIR "/modules/") + module + ".so";
    MakeRig(o);
    ASSERT_TRUE(rig_->SetUserVar(datadir_var, rig_->ReplicatedDir()).ok());
    for (const auto& [name, value] : vars) ASSERT_TRUE(rig_->SetUserVar(name, value).ok());
    for (const auto& n : rig_->nodes()) {
      Status filled = fill(rig_->DataDir(n));
      ASSERT_TRUE(filled.ok()) << filled.message();
    }
    StartBoth();
    auto logs = [&] {
      return ReadFile(rig_->LayoutOf("node1").ModuleLog(module)) +
             ReadFile(rig_->LayoutOf("node2").ModuleLog(module));
    };
    if (in_sync) {
      auto paired = rig_->WaitPaired(60s);
      ASSERT_TRUE(paired.ok()) << paired.status().message() << "\n" << logs();
      prim_ = *paired;
    } else {
      ASSERT_TRUE(WaitFor(
          [&] {
            cluster::State a = rig_->StateOf("node1"), b = rig_->StateOf("node2");
            using cluster::State;
            prim_ = a == State::kPrim && b == State::kSecond   ? "node1"
                    : b == State::kPrim && a == State::kSecond ? "node2"
                                                               : "";
            return !prim_.empty();
          },
          60s))
          << logs();
    }
    second_ = rig_->Peer(prim_);
    ASSERT_TRUE(WaitReplication(prim_, "replicating", 10s)) << Replication(prim_).dump();
    ASSERT_TRUE(WaitReplication(second_, "connected", 10s)) << Replication(second_).dump();
  }

  // The primary runs its server where the library said: the replicated dir
  // is a FUSE mount in its hakitd's namespace, and `process` (by name) runs
  // there as `user` with `arg` (its data dir option) on its command line.
  void ExpectServerOnReplicatedDir(const std::string& process, const std::string& arg,
                                   const std::string& user) {
    auto mounts = rig_->RunInDaemon(prim_, {"cat", "/proc/self/mounts"});
    ASSERT_TRUE(mounts.ok()) << mounts.status().message();
    EXPECT_NE(mounts->output.find(rig_->ReplicatedDir() + " fuse"), std::string::npos)
        << mounts->output;
    auto ps = rig_->RunInDaemon(prim_, {"ps", "-o", "user=,args=", "-C", process});
    ASSERT_TRUE(ps.ok()) << ps.status().message();
    EXPECT_NE(ps->output.find(arg), std::string::npos) << ps->output;
    EXPECT_EQ(ps->output.rfind(user + " ", 0), 0u) << "not run as " << user << ": " << ps->output;
  }

  // Starts the client in the client namespace: `argv` prints each
  // acknowledged number on stdout (the ledger), errors on stderr.
  void StartClient(std::vector<std::string> argv, std::map<std::string, std::string> env = {}) {
    ledger_ = rig_->work_dir() / "ledger.txt";
    errors_ = rig_->work_dir() / "client.err";
    testbed::SpawnOptions o;
    o.netns = rig_->bed().ClientNamespace();
    o.argv = std::move(argv);
    o.env = std::move(env);
    o.env.emplace("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    o.stdout_path = ledger_.string();
    o.stderr_path = errors_.string();
    auto c = rig_->bed().Spawn(o);
    ASSERT_TRUE(c.ok()) << c.status().message();
    client_ = *c;
  }

  void StopClient() {
    if (client_ <= 0 || !rig_) return;
    rig_->bed().KillGroup(client_, SIGKILL);
    rig_->bed().WaitExit(client_, 10s);
    client_ = -1;
  }

  std::size_t Acked() { return Numbers(ReadFile(ledger_)).size(); }

  // Waits until the client has `n` more acknowledged commits than now.
  bool WaitCommits(std::size_t n, std::chrono::milliseconds wait) {
    std::size_t base = Acked();
    return WaitFor([&] { return Acked() >= base + n; }, wait);
  }

  // Every ledgered number is among `served` (the table's rows, one a line).
  // Rows beyond the ledger are commits whose acknowledgement a cut
  // swallowed: a few at most.
  void ExpectLedgerServed(const std::string& served, const std::string& context) {
    std::vector<long> ledger = Numbers(ReadFile(ledger_));
    ASSERT_FALSE(ledger.empty()) << context << ": nothing committed: " << ReadFile(errors_);
    std::vector<long> got = Numbers(served);
    std::set<long> present(got.begin(), got.end());
    std::size_t lost = 0;
    long first_lost = -1;
    for (long i : ledger) {
      if (present.count(i)) continue;
      if (lost++ == 0) first_lost = i;
    }
    EXPECT_EQ(lost, 0u) << context << ": LOST " << lost << " of " << ledger.size()
                        << " acknowledged commits, first " << first_lost;
    EXPECT_LE(got.size(), ledger.size() + 10) << context;
    std::printf("[ %s ] %zu acknowledged, %zu rows served\n", context.c_str(), ledger.size(),
                got.size());
  }

  // The server's output, from the node's module log folder.
  std::string ServerLog(const std::string& node, const std::string& file) {
    return ReadFile(rig_->LayoutOf(node).ModuleLogDir(module_) / file);
  }

  std::string module_;
  std::string prim_, second_;
  std::filesystem::path ledger_, errors_;
  pid_t client_ = -1;
};

}  // namespace hakit::rig
