// Cluster tests: two real hakitd daemons in network namespaces, a client in a
// third, the demo module's scripts starting a real application behind the
// VIP. Each test builds its own rig and tears it down, failures included.
#include <gtest/gtest.h>

#include <thread>

#include "hakit/history/store.h"
#include "hakit/rig/cluster_rig.h"

namespace hakit::rig {
namespace {

using cluster::State;
using namespace std::chrono_literals;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Status s = testbed::Testbed::CheckPrerequisites(); !s.ok()) GTEST_SKIP() << s.message();
  }

  // Builds the rig; options tweak the default two-lan, 100/500 ms cluster.
  void MakeRig(RigOptions o = {}) {
    o.bin_dir = HAKIT_BINARY_DIR "/bin";
    auto r = ClusterRig::Create(o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    rig_ = std::move(*r);
  }

  void StartBoth() {
    ASSERT_TRUE(rig_->StartDaemon("node1").ok());
    ASSERT_TRUE(rig_->StartDaemon("node2").ok());
    for (const auto& n : rig_->nodes()) {
      auto r = rig_->Command(n, "start");
      ASSERT_TRUE(r.ok()) << r.status().message();
      ASSERT_EQ(r->exit_code, 0) << r->error;
    }
  }

  std::string Paired() {
    auto p = rig_->WaitPaired(15s);
    EXPECT_TRUE(p.ok()) << p.status().message();
    return p.ok() ? *p : std::string();
  }

  std::vector<history::Event> History(const std::string& node) {
    history::HistoryStore::Options o;
    o.read_only = true;
    auto store = history::HistoryStore::Open(rig_->LayoutOf(node).HistoryDb(), o);
    if (!store.ok()) return {};
    auto ev = (*store)->Query({});
    return ev.ok() ? *ev : std::vector<history::Event>{};
  }

  std::unique_ptr<ClusterRig> rig_;
};

TEST_F(ClusterTest, BothStartPairOnePrimOneSecondAndClientReachesVip) {
  MakeRig();
  StartBoth();
  std::string prim = Paired();
  ASSERT_FALSE(prim.empty());
  std::string second = rig_->Peer(prim);
  EXPECT_TRUE(rig_->HasVip(prim));
  EXPECT_FALSE(rig_->HasVip(second));
  EXPECT_TRUE(rig_->AppRunning(prim));
  EXPECT_FALSE(rig_->AppRunning(second));
  auto reply = rig_->ClientRequest();
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_NE(reply->find("hello from " + prim), std::string::npos) << *reply;
}

}  // namespace
}  // namespace hakit::rig
