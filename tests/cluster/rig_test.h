// The fixture every cluster test starts from: a ClusterRig (two real hakitd
// in network namespaces) built from the tree's binaries, and the small
// queries the tests share. Tests skip, with the reason, where namespaces (or
// FUSE, for replicated rigs) are not available.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hakit/history/store.h"
#include "hakit/rig/cluster_rig.h"

namespace hakit::rig {

using namespace std::chrono_literals;

class RigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Status s = testbed::Testbed::CheckPrerequisites(); !s.ok()) GTEST_SKIP() << s.message();
  }

  // For fixtures whose rigs replicate: call from SetUp().
  static bool HaveFuse() { return ::access("/dev/fuse", R_OK | W_OK) == 0; }

  // Builds the rig from the tree's bin/.
  void MakeRig(RigOptions o = {}) {
    o.bin_dir = HAKIT_BINARY_DIR "/bin";
    auto r = ClusterRig::Create(o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    rig_ = std::move(*r);
  }

  // Starts both daemons, then the module on both.
  void StartBoth() {
    ASSERT_TRUE(rig_->StartDaemon("node1").ok());
    ASSERT_TRUE(rig_->StartDaemon("node2").ok());
    for (const auto& n : rig_->nodes()) {
      auto r = rig_->Command(n, "start");
      ASSERT_TRUE(r.ok()) << r.status().message();
      ASSERT_EQ(r->exit_code, 0) << r->error;
    }
  }

  // A fresh replicated rig, both nodes started and paired, the primary
  // replicating to a secondary whose copy is up to date. Sets *prim and
  // *second.
  void StartReplicatedPair(std::string* prim, std::string* second, RigOptions o = {}) {
    o.replicated = true;
    MakeRig(o);
    StartBoth();
    auto paired = rig_->WaitPaired(15s);
    ASSERT_TRUE(paired.ok()) << paired.status().message();
    *prim = *paired;
    *second = rig_->Peer(*prim);
    ASSERT_TRUE(WaitReplication(*prim, "replicating", 10s)) << Replication(*prim).dump();
    ASSERT_TRUE(WaitReplication(*second, "connected", 10s)) << Replication(*second).dump();
    ASSERT_TRUE(WaitUpToDate(*second, 30s)) << Replication(*prim).dump();
  }

  // Waits until the node's data is up to date (a secondary: synchronised).
  bool WaitUpToDate(const std::string& node, std::chrono::milliseconds wait) {
    return WaitFor(
        [&] {
          auto m = rig_->ModuleState(node);
          return m.ok() && m->at("details").value("data", "") == "up_to_date";
        },
        wait);
  }

  // `hakit --root NODE_ROOT ARGS...` (the real CLI) in the node's network
  // namespace.
  testbed::CommandOutput Cli(const std::string& node, std::vector<std::string> args) {
    std::vector<std::string> argv = {HAKIT_BINARY_DIR "/bin/hakit", "--root",
                                     rig_->LayoutOf(node).root().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = rig_->bed().RunIn(rig_->bed().NodeNamespace(node), argv, 60s);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : testbed::CommandOutput{};
  }

  // The module's `details.replication` of `hakit state --json`.
  nlohmann::json Replication(const std::string& node) {
    auto m = rig_->ModuleState(node);
    if (!m.ok()) return nlohmann::json::object();
    return m->value("details", nlohmann::json::object())
        .value("replication", nlohmann::json::object());
  }

  // Polls `done` every 50 ms until it holds or `wait` passes.
  template <typename F>
  static bool WaitFor(F done, std::chrono::milliseconds wait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    do {
      if (done()) return true;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return false;
  }

  bool WaitReplication(const std::string& node, const std::string& state,
                       std::chrono::milliseconds wait) {
    return WaitFor([&] { return Replication(node).value("state", "") == state; }, wait);
  }

  // The node's history, read from its database (stop its daemon first to
  // be sure the writer has flushed).
  std::vector<history::Event> History(const std::string& node) {
    history::HistoryStore::Options o;
    o.read_only = true;
    auto store = history::HistoryStore::Open(rig_->LayoutOf(node).HistoryDb(), o);
    if (!store.ok()) return {};
    auto ev = (*store)->Query({});
    return ev.ok() ? *ev : std::vector<history::Event>{};
  }

  static const history::Event* Find(const std::vector<history::Event>& events,
                                    const std::string& kind) {
    for (const auto& e : events) {
      if (e.kind == kind) return &e;
    }
    return nullptr;
  }

  static bool Contains(const std::vector<std::string>& lines, const std::string& text) {
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(text) != std::string::npos; });
  }

  std::unique_ptr<ClusterRig> rig_;
};

}  // namespace hakit::rig
