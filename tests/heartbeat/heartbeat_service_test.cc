// Two HeartbeatServices on one io_context, on loopback: node1 on 127.0.0.1,
// node2 on 127.0.0.2 (all of 127.0.0.0/8 is local on Linux), two networks
// each on their own free UDP ports. Pulse 50 ms, timeout 300 ms.
#include "hakit/cluster/heartbeat_service.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <chrono>
#include <functional>
#include <stdexcept>

namespace hakit::cluster {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;

// A UDP port free on both loopback addresses we use, and not one of `avoid`.
std::uint16_t FreePort(const std::vector<std::uint16_t>& avoid) {
  asio::io_context io;
  for (int attempt = 0; attempt < 100; ++attempt) {
    asio::ip::udp::socket a(io), b(io);
    boost::system::error_code ec;
    a.open(asio::ip::udp::v4());
    a.bind({asio::ip::make_address("127.0.0.1"), 0}, ec);
    if (ec) continue;
    std::uint16_t port = a.local_endpoint().port();
    if (std::find(avoid.begin(), avoid.end(), port) != avoid.end()) continue;
    b.open(asio::ip::udp::v4());
    b.bind({asio::ip::make_address("127.0.0.2"), port}, ec);
    if (!ec) return port;
  }
  ADD_FAILURE() << "no free UDP port";
  return 0;
}

struct Recorder : HeartbeatListener {
  struct Change {
    std::string module;
    PeerInfo info;
  };
  void OnPeerChanged(const std::string& module, const PeerInfo& info) override {
    changes.push_back({module, info});
    if (throw_on_change) throw std::runtime_error("listener bug");
  }
  void OnPeerLost(const std::string& module) override {
    lost.push_back(module);
    lost_at = Clock::now();
  }
  void OnNetworkStatus(const std::string& lan, bool up) override { networks.emplace_back(lan, up); }
  void OnRejected(const std::string& reason, const std::string& from) override {
    rejects.emplace_back(reason, from);
  }

  bool Visible(const std::string& module) const {
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      if (it->module == module) return it->info.view.visible;
    }
    return false;
  }
  const PeerInfo* Last(const std::string& module) const {
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      if (it->module == module) return &it->info;
    }
    return nullptr;
  }
  int CountNetwork(const std::string& lan, bool up) const {
    return static_cast<int>(std::count(networks.begin(), networks.end(), std::make_pair(lan, up)));
  }
  int CountRejects(const std::string& text) const {
    int n = 0;
    for (const auto& r : rejects) n += r.first.find(text) != std::string::npos;
    return n;
  }

  std::vector<Change> changes;
  std::vector<std::string> lost;
  Clock::time_point lost_at;
  std::vector<std::pair<std::string, bool>> networks;
  std::vector<std::pair<std::string, std::string>> rejects;
  bool throw_on_change = false;
};

class heartbeat_service : public ::testing::Test {
 protected:
  void SetUp() override {
    port1_ = FreePort({});
    port2_ = FreePort({port1_});
    key_.assign(32, 0x5a);
    hash_.fill(0x11);
  }

  HeartbeatConfig Config(bool first, std::vector<std::uint8_t> key = {}) {
    HeartbeatConfig c;
    c.local_name = first ? "node1" : "node2";
    c.peer_name = first ? "node2" : "node1";
    std::string me = first ? "127.0.0.1" : "127.0.0.2";
    std::string peer = first ? "127.0.0.2" : "127.0.0.1";
    c.networks = {{"lan1", me, peer, port1_}, {"lan2", me, peer, port2_}};
    c.pulse = 50ms;
    c.timeout = 300ms;
    c.key = key.empty() ? key_ : key;
    return c;
  }

  LocalInfo Local(State state, ConfigHash hash) {
    LocalInfo info;
    info.state = state;
    info.config_hash = hash;
    info.data = DataStatus::kUpToDate;
    return info;
  }

  // Runs the io_context until `done` or `limit`; true if `done`.
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    auto end = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() >= end) return false;
      io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }
  void RunFor(std::chrono::milliseconds d) {
    RunUntil([] { return false; }, d);
  }

  // Starts both nodes with module "mod" and waits until each sees the other.
  void StartPair(HeartbeatService& a, HeartbeatService& b) {
    ASSERT_TRUE(a.SetLocal("mod", Local(State::kPrim, hash_)).ok());
    ASSERT_TRUE(b.SetLocal("mod", Local(State::kSecond, hash_)).ok());
    auto sa = a.Start();
    ASSERT_TRUE(sa.ok()) << sa.ToString();
    auto sb = b.Start();
    ASSERT_TRUE(sb.ok()) << sb.ToString();
    ASSERT_TRUE(RunUntil(
        [&] {
          return ra_.Visible("mod") && rb_.Visible("mod") && ra_.CountNetwork("lan1", true) &&
                 ra_.CountNetwork("lan2", true) && rb_.CountNetwork("lan1", true) &&
                 rb_.CountNetwork("lan2", true);
        },
        2s));
  }

  asio::io_context io_;
  std::uint16_t port1_ = 0, port2_ = 0;
  std::vector<std::uint8_t> key_;
  ConfigHash hash_{};
  Recorder ra_, rb_;
};

TEST_F(heartbeat_service, TwoNodesSeeEachOtherOnBothNetworks) {
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  StartPair(a, b);
  const PeerInfo* seen_by_b = rb_.Last("mod");
  ASSERT_NE(seen_by_b, nullptr);
  EXPECT_EQ(seen_by_b->view.state, State::kPrim);
  EXPECT_EQ(seen_by_b->view.name, "node1");
  EXPECT_TRUE(seen_by_b->view.config_matches);
  EXPECT_EQ(seen_by_b->view.data, DataStatus::kUpToDate);
  EXPECT_EQ(seen_by_b->boot_id, a.boot_id());
  EXPECT_EQ(ra_.Last("mod")->view.state, State::kSecond);
  EXPECT_NE(a.boot_id(), b.boot_id());
  EXPECT_TRUE(ra_.rejects.empty()) << ra_.rejects[0].first;
  EXPECT_TRUE(rb_.rejects.empty()) << rb_.rejects[0].first;

  RunFor(200ms);
  auto snap = b.Snapshot();
  EXPECT_EQ(snap.local_name, "node2");
  ASSERT_EQ(snap.networks.size(), 2u);
  for (const auto& n : snap.networks) {
    EXPECT_TRUE(n.up) << n.lan;
    EXPECT_GE(n.last_heard_age_ms, 0);
    EXPECT_LT(n.last_heard_age_ms, 300);
    EXPECT_GT(n.frames_received, 2u);
    EXPECT_GT(n.frames_sent, 2u);
    EXPECT_EQ(n.frames_rejected, 0u);
  }
  ASSERT_EQ(snap.modules.size(), 1u);
  EXPECT_EQ(snap.modules[0].module, "mod");
  EXPECT_TRUE(snap.modules[0].peer_visible);
  EXPECT_EQ(snap.modules[0].peer_state, State::kPrim);
  EXPECT_GT(snap.modules[0].peer_sequence, 0u);
  EXPECT_TRUE(snap.modules[0].config_matches);
  EXPECT_EQ(snap.modules[0].rejects, 0u);
  EXPECT_EQ(snap.modules[0].network_age_ms.size(), 2u);
  ASSERT_NE(b.Peer("mod"), nullptr);
  EXPECT_EQ(b.Peer("mod")->view.state, State::kPrim);
}

TEST_F(heartbeat_service, StateChangeIsSentAtOnceNotAtNextPulse) {
  auto ca = Config(true), cb = Config(false);
  ca.pulse = cb.pulse = 2000ms;  // a pulse far longer than the wait below
  ca.timeout = cb.timeout = 10000ms;
  HeartbeatService a(io_, ca, &ra_);
  HeartbeatService b(io_, cb, &rb_);
  StartPair(a, b);
  auto before = Clock::now();
  ASSERT_TRUE(a.SetLocal("mod", Local(State::kAlone, hash_)).ok());
  ASSERT_TRUE(RunUntil(
      [&] { return rb_.Last("mod") && rb_.Last("mod")->view.state == State::kAlone; }, 500ms));
  EXPECT_LT(Clock::now() - before, 500ms);
  // Setting the same thing again sends nothing new.
  auto changes = rb_.changes.size();
  ASSERT_TRUE(a.SetLocal("mod", Local(State::kAlone, hash_)).ok());
  RunFor(100ms);
  EXPECT_EQ(rb_.changes.size(), changes);
}

TEST_F(heartbeat_service, StoppedPeerIsLostAfterTimeout) {
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  StartPair(a, b);
  auto stopped = Clock::now();
  a.Stop();
  ASSERT_TRUE(RunUntil([&] { return !rb_.lost.empty(); }, 2s));
  auto after = std::chrono::duration_cast<std::chrono::milliseconds>(rb_.lost_at - stopped);
  EXPECT_GE(after.count(), 250);
  EXPECT_LE(after.count(), 1000);
  EXPECT_EQ(rb_.lost, std::vector<std::string>{"mod"});
  EXPECT_EQ(rb_.CountNetwork("lan1", false), 1);
  EXPECT_EQ(rb_.CountNetwork("lan2", false), 1);
  EXPECT_FALSE(b.Snapshot().modules[0].peer_visible);
  EXPECT_TRUE(ra_.lost.empty());  // a stopped service calls nobody
  RunFor(400ms);
  EXPECT_EQ(rb_.lost.size(), 1u);  // reported once
}

TEST_F(heartbeat_service, MutedNetworkIsDownButPeerIsNotLost) {
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  StartPair(a, b);
  a.MuteNetworkForTest("lan2", true);
  ASSERT_TRUE(RunUntil(
      [&] { return rb_.CountNetwork("lan2", false) && ra_.CountNetwork("lan2", false); }, 2s));
  RunFor(400ms);  // more than a timeout with lan1 alone
  EXPECT_TRUE(ra_.lost.empty());
  EXPECT_TRUE(rb_.lost.empty());
  EXPECT_EQ(rb_.CountNetwork("lan1", false), 0);
  EXPECT_TRUE(b.Snapshot().modules[0].peer_visible);
  EXPECT_FALSE(b.Snapshot().networks[1].up);
  EXPECT_TRUE(a.Snapshot().networks[1].muted);

  a.MuteNetworkForTest("lan2", false);
  ASSERT_TRUE(RunUntil(
      [&] { return rb_.CountNetwork("lan2", true) == 2 && ra_.CountNetwork("lan2", true) == 2; },
      2s));
  EXPECT_TRUE(rb_.lost.empty());
}

TEST_F(heartbeat_service, WrongKeyIsRejectedAndNeverVisible) {
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false, std::vector<std::uint8_t>(32, 0x77)), &rb_);
  ASSERT_TRUE(a.SetLocal("mod", Local(State::kPrim, hash_)).ok());
  ASSERT_TRUE(b.SetLocal("mod", Local(State::kSecond, hash_)).ok());
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  RunFor(500ms);  // ~10 pulses on 2 networks
  EXPECT_TRUE(ra_.changes.empty());
  EXPECT_TRUE(rb_.changes.empty());
  EXPECT_TRUE(ra_.networks.empty());
  // Rate-limited: one report per reason per 10 s, however many frames came.
  ASSERT_EQ(ra_.rejects.size(), 1u);
  EXPECT_NE(ra_.rejects[0].first.find("sender uses another cluster key"), std::string::npos)
      << ra_.rejects[0].first;
  EXPECT_EQ(ra_.rejects[0].second.rfind("127.0.0.2:", 0), 0u) << ra_.rejects[0].second;
  auto snap = a.Snapshot();
  EXPECT_GT(snap.rejects_by_reason["unknown key"], 5u);
  EXPECT_FALSE(snap.modules[0].peer_visible);
  EXPECT_FALSE(snap.modules[0].peer_known);
  EXPECT_EQ(a.Peer("mod"), nullptr);
}

TEST_F(heartbeat_service, ConfigMismatchIsVisibleButNotMatching) {
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  ConfigHash other;
  other.fill(0x22);
  ASSERT_TRUE(a.SetLocal("mod", Local(State::kPrim, hash_)).ok());
  ASSERT_TRUE(b.SetLocal("mod", Local(State::kWait, other)).ok());
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  ASSERT_TRUE(RunUntil([&] { return rb_.Visible("mod") && ra_.Visible("mod"); }, 2s));
  EXPECT_FALSE(rb_.Last("mod")->view.config_matches);
  EXPECT_FALSE(ra_.Last("mod")->view.config_matches);
  RunFor(200ms);
  EXPECT_EQ(rb_.CountRejects("configuration differs"), 1);
  EXPECT_FALSE(b.Snapshot().modules[0].config_matches);
  EXPECT_GT(b.Snapshot().modules[0].rejects, 0u);

  // b is reconfigured to match: the peer view says so.
  ASSERT_TRUE(b.SetLocal("mod", Local(State::kWait, hash_)).ok());
  ASSERT_TRUE(RunUntil(
      [&] { return rb_.Last("mod")->view.config_matches && ra_.Last("mod")->view.config_matches; },
      2s));
}

TEST_F(heartbeat_service, NodeFramesWatchNetworksWithoutModules) {
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  ASSERT_TRUE(RunUntil(
      [&] { return rb_.CountNetwork("lan1", true) && rb_.CountNetwork("lan2", true); }, 2s));
  EXPECT_TRUE(rb_.changes.empty());
}

TEST_F(heartbeat_service, UnexpectedSenderAndOwnFramesAreRefused) {
  auto ca = Config(true);
  ca.peer_name = "node3";  // b calls itself node2
  HeartbeatService a(io_, ca, &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  RunFor(200ms);
  EXPECT_EQ(ra_.CountRejects("heartbeat from node 'node2', but the peer is 'node3'"), 1);
  EXPECT_TRUE(ra_.networks.empty());
  a.Stop();
  b.Stop();

  // A node whose peer address is its own hears itself.
  Recorder self;
  auto cs = Config(true);
  cs.networks.resize(1);
  cs.networks[0].peer_address = "127.0.0.1";
  HeartbeatService s(io_, cs, &self);
  ASSERT_TRUE(s.Start().ok());
  RunFor(150ms);
  EXPECT_EQ(self.CountRejects("own heartbeat"), 1);
}

TEST_F(heartbeat_service, ListenerExceptionsDoNotEscape) {
  ra_.throw_on_change = true;
  HeartbeatService a(io_, Config(true), &ra_);
  HeartbeatService b(io_, Config(false), &rb_);
  StartPair(a, b);  // would throw out of io_context::run otherwise
  ASSERT_TRUE(b.SetLocal("mod", Local(State::kAlone, hash_)).ok());
  ASSERT_TRUE(RunUntil(
      [&] { return ra_.Last("mod") && ra_.Last("mod")->view.state == State::kAlone; }, 1s));
}

TEST_F(heartbeat_service, DestroyingAServiceWithWorkPendingIsSafe) {
  auto b = std::make_unique<HeartbeatService>(io_, Config(false), &rb_);
  {
    HeartbeatService a(io_, Config(true), &ra_);
    StartPair(a, *b);
    // Leave sends, receives and timers pending, then destroy: their handlers
    // run later with operation_aborted and must not touch the dead service.
  }
  b->Stop();
  EXPECT_FALSE(b->Start().ok());  // a stopped service does not restart
  b.reset();
  io_.restart();
  io_.run_for(100ms);
  EXPECT_TRUE(ra_.lost.empty());
  EXPECT_TRUE(rb_.lost.empty());
}

TEST_F(heartbeat_service, StartFailsClearlyWhenTheAddressIsNotLocal) {
  auto c = Config(true);
  c.networks[1].local_address = "198.51.100.7";  // TEST-NET-2: not on this host
  c.networks[1].peer_address = "198.51.100.8";
  HeartbeatService a(io_, c, &ra_);
  auto s = a.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), sdk::Status::Code::kIoError);
  EXPECT_NE(s.message().find("lan 'lan2'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("198.51.100.7"), std::string::npos) << s.message();
  // Nothing stays bound: lan1's port is free again.
  HeartbeatService again(io_, Config(true), &ra_);
  EXPECT_TRUE(again.Start().ok());
}

TEST_F(heartbeat_service, ConfigValidationNamesTheProblem) {
  struct Case {
    std::function<void(HeartbeatConfig&)> edit;
    const char* expect;
  } cases[] = {
      {[](HeartbeatConfig& c) { c.local_name.clear(); }, "local node name"},
      {[](HeartbeatConfig& c) { c.peer_name = c.local_name; }, "both named"},
      {[](HeartbeatConfig& c) { c.networks.clear(); }, "no network"},
      {[](HeartbeatConfig& c) { c.networks[1].lan = "lan1"; }, "configured twice"},
      {[](HeartbeatConfig& c) { c.networks[0].port = 0; }, "port is 0"},
      {[](HeartbeatConfig& c) { c.networks[0].peer_address = "node2"; }, "not an IP address"},
      {[](HeartbeatConfig& c) { c.networks[0].peer_address = "::1"; }, "same IP family"},
      {[](HeartbeatConfig& c) { c.timeout = c.pulse; }, "longer than pulse"},
      {[](HeartbeatConfig& c) { c.key.resize(8); }, "cluster key"},
  };
  for (const auto& c : cases) {
    auto config = Config(true);
    c.edit(config);
    auto s = config.Validate();
    EXPECT_FALSE(s.ok()) << c.expect;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
    HeartbeatService svc(io_, config, &ra_);
    EXPECT_FALSE(svc.Start().ok()) << c.expect;
  }
  EXPECT_TRUE(Config(true).Validate().ok());
}

TEST_F(heartbeat_service, SetLocalRefusesAnUnsendableModule) {
  HeartbeatService a(io_, Config(true), &ra_);
  EXPECT_FALSE(a.SetLocal("", Local(State::kStop, hash_)).ok());
  EXPECT_FALSE(a.SetLocal(std::string(300, 'm'), Local(State::kStop, hash_)).ok());
  auto big = Local(State::kStop, hash_);
  big.resources.assign(50, ResourceState{std::string(50, 'r'), 0});
  EXPECT_FALSE(a.SetLocal("mod", big).ok());
  EXPECT_TRUE(a.Snapshot().modules.empty());
}

}  // namespace
}  // namespace hakit::cluster
