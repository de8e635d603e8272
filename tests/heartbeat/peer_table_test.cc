// PeerTable with a fake clock: visibility, per-network liveness, deadlines.
#include "hakit/cluster/peer_table.h"

#include <gtest/gtest.h>

namespace hakit::cluster {
namespace {

using namespace std::chrono_literals;
using TimePoint = PeerTable::TimePoint;

class heartbeat_peer_table : public ::testing::Test {
 protected:
  heartbeat_peer_table() : table_(2, 300ms) {
    hash_.fill(0xab);
    PeerEvents ev;
    table_.SetModule("mod", hash_, &ev);
    EXPECT_TRUE(ev.empty());
  }

  Heartbeat Frame(std::uint64_t seq, State state = State::kSecond) {
    Heartbeat hb;
    hb.boot_id = 77;
    hb.sequence = seq;
    hb.sender = "node2";
    hb.module = "mod";
    hb.state = state;
    hb.config_hash = hash_;
    return hb;
  }

  PeerEvents Feed(std::size_t net, const Heartbeat& hb, TimePoint at) {
    PeerEvents ev;
    table_.OnHeartbeat(net, hb, at, &ev);
    return ev;
  }
  PeerEvents ExpireAt(TimePoint at) {
    PeerEvents ev;
    table_.Expire(at, &ev);
    return ev;
  }

  TimePoint t0_{std::chrono::seconds(1000)};
  ConfigHash hash_{};
  PeerTable table_;
};

TEST_F(heartbeat_peer_table, FirstFrameMakesPeerVisibleAndNetworkUp) {
  auto ev = Feed(0, Frame(1, State::kPrim), t0_);
  ASSERT_EQ(ev.networks.size(), 1u);
  EXPECT_EQ(ev.networks[0], std::make_pair(std::size_t{0}, true));
  ASSERT_EQ(ev.changed.size(), 1u);
  EXPECT_EQ(ev.changed[0].first, "mod");
  const PeerView& v = ev.changed[0].second.view;
  EXPECT_TRUE(v.visible);
  EXPECT_TRUE(v.config_matches);
  EXPECT_EQ(v.state, State::kPrim);
  EXPECT_EQ(v.name, "node2");
  EXPECT_FALSE(ev.config_mismatch);
}

TEST_F(heartbeat_peer_table, OnlyAnnouncementChangesAreReported) {
  Feed(0, Frame(1), t0_);
  EXPECT_TRUE(Feed(0, Frame(2), t0_ + 50ms).empty());  // same announcement
  auto second_net = Feed(1, Frame(2), t0_ + 51ms);     // copy on the other network
  ASSERT_EQ(second_net.networks.size(), 1u);
  EXPECT_TRUE(second_net.changed.empty());
  auto ev = Feed(0, Frame(3, State::kAlone), t0_ + 100ms);
  ASSERT_EQ(ev.changed.size(), 1u);
  EXPECT_EQ(ev.changed[0].second.view.state, State::kAlone);
  auto busy = Frame(4, State::kAlone);
  busy.busy = true;
  EXPECT_EQ(Feed(0, busy, t0_ + 150ms).changed.size(), 1u);
  auto gen = busy;
  gen.sequence = 5;
  gen.generation = 9;
  EXPECT_EQ(Feed(0, gen, t0_ + 200ms).changed.size(), 1u);
}

TEST_F(heartbeat_peer_table, LateCopyOnSlowNetworkDoesNotRollBack) {
  Feed(0, Frame(1, State::kSecond), t0_);
  Feed(0, Frame(2, State::kAlone), t0_ + 10ms);
  auto late = Feed(1, Frame(1, State::kSecond), t0_ + 20ms);
  EXPECT_TRUE(late.changed.empty());
  EXPECT_EQ(table_.module("mod")->info.view.state, State::kAlone);
  EXPECT_EQ(table_.module("mod")->info.sequence, 2u);
}

TEST_F(heartbeat_peer_table, PeerRestartIsAChangeEvenWithLowerSequence) {
  Feed(0, Frame(500, State::kPrim), t0_);
  auto hb = Frame(1, State::kPrim);
  hb.boot_id = 78;
  auto ev = Feed(0, hb, t0_ + 10ms);
  ASSERT_EQ(ev.changed.size(), 1u);
  EXPECT_EQ(ev.changed[0].second.boot_id, 78u);
}

TEST_F(heartbeat_peer_table, OneSilentNetworkIsDownButPeerStaysVisible) {
  Feed(0, Frame(1), t0_);
  Feed(1, Frame(1), t0_);
  // Only network 0 keeps bringing frames.
  for (int i = 1; i <= 10; ++i) Feed(0, Frame(1 + i), t0_ + i * 50ms);
  auto ev = ExpireAt(t0_ + 300ms);
  ASSERT_EQ(ev.networks.size(), 1u);
  EXPECT_EQ(ev.networks[0], std::make_pair(std::size_t{1}, false));
  EXPECT_TRUE(ev.lost.empty());
  EXPECT_TRUE(table_.module("mod")->info.view.visible);
  EXPECT_TRUE(table_.networks()[0].up);
  EXPECT_FALSE(table_.networks()[1].up);
  // Network 1 returns.
  auto back = Feed(1, Frame(20), t0_ + 600ms);
  ASSERT_EQ(back.networks.size(), 1u);
  EXPECT_EQ(back.networks[0], std::make_pair(std::size_t{1}, true));
}

TEST_F(heartbeat_peer_table, PeerIsLostExactlyWhenEveryNetworkIsSilentForTimeout) {
  Feed(0, Frame(1), t0_);
  Feed(1, Frame(1), t0_ + 100ms);
  ASSERT_TRUE(table_.NextDeadline().has_value());
  EXPECT_EQ(*table_.NextDeadline(), t0_ + 300ms);  // network 0 first

  auto first = ExpireAt(t0_ + 300ms);
  ASSERT_EQ(first.networks.size(), 1u);  // network 0 down, module still heard on 1
  EXPECT_TRUE(first.lost.empty());
  EXPECT_EQ(*table_.NextDeadline(), t0_ + 400ms);

  EXPECT_TRUE(ExpireAt(t0_ + 399ms).empty());
  auto second = ExpireAt(t0_ + 400ms);
  ASSERT_EQ(second.lost.size(), 1u);
  EXPECT_EQ(second.lost[0], "mod");
  ASSERT_EQ(second.networks.size(), 1u);
  EXPECT_FALSE(table_.module("mod")->info.view.visible);
  EXPECT_FALSE(table_.NextDeadline().has_value());  // nothing left to watch
  EXPECT_TRUE(ExpireAt(t0_ + 10s).empty());         // reported once

  // The peer comes back: visible again, announced as a change.
  auto back = Feed(0, Frame(2), t0_ + 11s);
  ASSERT_EQ(back.changed.size(), 1u);
  EXPECT_TRUE(back.changed[0].second.view.visible);
}

TEST_F(heartbeat_peer_table, ConfigMismatchIsVisibleButNeverMatching) {
  auto hb = Frame(1);
  hb.config_hash.fill(0xcd);
  auto ev = Feed(0, hb, t0_);
  EXPECT_TRUE(ev.config_mismatch);
  ASSERT_EQ(ev.changed.size(), 1u);
  EXPECT_TRUE(ev.changed[0].second.view.visible);
  EXPECT_FALSE(ev.changed[0].second.view.config_matches);
  // Our side is reconfigured to the same hash: now they match.
  ConfigHash same;
  same.fill(0xcd);
  PeerEvents fix;
  table_.SetModule("mod", same, &fix);
  ASSERT_EQ(fix.changed.size(), 1u);
  EXPECT_TRUE(fix.changed[0].second.view.config_matches);
}

TEST_F(heartbeat_peer_table, UnknownModulesAndNodeFramesKeepNetworksAlive) {
  auto other = Frame(1);
  other.module = "not-here";
  auto ev = Feed(0, other, t0_);
  EXPECT_EQ(ev.networks.size(), 1u);
  EXPECT_TRUE(ev.changed.empty());
  EXPECT_EQ(table_.module("not-here"), nullptr);
  auto node = Frame(2);
  node.module.clear();
  ev = Feed(1, node, t0_);
  EXPECT_EQ(ev.networks.size(), 1u);
  EXPECT_TRUE(ev.changed.empty());
  EXPECT_FALSE(table_.module("mod")->have_info);
  table_.RemoveModule("mod");
  EXPECT_EQ(table_.module("mod"), nullptr);
}

}  // namespace
}  // namespace hakit::cluster
