// ReplicationSender and ReplicationReceiver over loopback TCP (127.0.0.1,
// port 0), the receiver applying into a temporary directory with the real
// ApplyOperation. Hand-written peers (RawClient, StallingSecondary) play
// the broken or hostile side.
// clang-format off: Boost 1.74 Asio uses std::exchange without including <utility>
#include <utility>
// clang-format on

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "hakit/common/log.h"
#include "hakit/replication/receiver.h"
#include "hakit/replication/sender.h"
#include "hakit/replication/transport.h"
#include "hakit/replication/wire.h"
#include "test_tree.h"

namespace hakit::replication {
namespace {

using namespace std::chrono_literals;
using namespace testing;
using sdk::Status;
using Clock = std::chrono::steady_clock;
namespace asio = boost::asio;
using asio::ip::tcp;

template <typename Pred>
bool Eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

std::chrono::milliseconds Since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

// Lets a test hold the applier at a point and release it.
class Gate {
 public:
  void Close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Pass() {
    std::unique_lock lock(mu_);
    waiting_++;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    waiting_--;
  }
  bool WaitForWaiter(std::chrono::milliseconds limit = 5000ms) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return waiting_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int waiting_ = 0;
};

// A blocking client speaking raw frames, with a 3 s receive timeout.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) : socket_(io_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval tv{3, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void Send(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }
  void Send(const Message& m) {
    std::string f;
    ASSERT_TRUE(EncodeFrame(m, &f).ok());
    Send(f);
  }
  // The next message; IoError("eof") when the peer closed.
  sdk::Result<Message> Read() {
    for (;;) {
      auto next = reader_.Next();
      if (!next.ok()) return next.status();
      if (*next) return DecodePayload((*next)->header, (*next)->payload);
      auto space = reader_.PrepareRead(4096);
      boost::system::error_code ec;
      std::size_t n = socket_.read_some(asio::buffer(space.data(), space.size()), ec);
      if (ec == asio::error::eof || ec == asio::error::connection_reset) {
        return Status::IoError("eof");
      }
      if (ec) return Status::IoError(ec.message());
      reader_.CommitRead(n);
    }
  }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  FrameReader reader_;
};

// A secondary that completes the handshake and then neither reads nor
// answers: a hung process or a black-holed network.
class StallingSecondary {
 public:
  StallingSecondary() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] {
      boost::system::error_code ec;
      tcp::socket s(io_);
      acceptor_.accept(s, ec);
      if (ec) return;
      FrameReader reader;
      bool hello = false;
      while (!hello) {
        auto space = reader.PrepareRead(4096);
        std::size_t n = s.read_some(asio::buffer(space.data(), space.size()), ec);
        if (ec) return;
        reader.CommitRead(n);
        auto next = reader.Next();
        if (next.ok() && *next) hello = (*next)->header.type == FrameType::kHello;
      }
      std::string ack;
      EncodeFrame(HelloAck{}, &ack);
      asio::write(s, asio::buffer(ack), ec);
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_; });
    });
  }
  ~StallingSecondary() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

class ReplicationNet : public ::testing::Test {
 protected:
  ReplicationNet()
      : logger_(std::make_unique<Logger>(log_dir_.path() / "replication.log", false)),
        primary_fd_(primary_.path()),
        secondary_fd_(secondary_.path()) {
    hash_.fill(0x5a);
  }

  void TearDown() override { Shutdown(); }

  void Shutdown() {
    gate_.Open();
    sender_.reset();
    receiver_.reset();
  }

  // Declared after a test's locals that callbacks capture: stops the
  // threads that call them before those locals go away, even when an
  // assertion returns early.
  struct ShutdownAtExit {
    ReplicationNet* test;
    ~ShutdownAtExit() { test->Shutdown(); }
  };

  ReceiverOptions ReceiverOpts() {
    ReceiverOptions o;
    o.listen_address = "127.0.0.1";
    o.port = 0;
    o.module = "app";
    o.node = "node2";
    o.config_hash = hash_;
    o.key = key_;
    o.root_fds = {secondary_fd_.get()};
    o.logger = logger_.get();
    o.before_apply = [this](std::uint64_t seq, const Operation& op) {
      if (hold_fsync_ && op.kind != OpKind::kFsync) return;
      gate_.Pass();
    };
    return o;
  }

  SenderOptions SenderOpts(std::uint16_t port) {
    SenderOptions o;
    o.module = "app";
    o.node = "node1";
    o.config_hash = hash_;
    o.key = key_;
    o.peer_address = "127.0.0.1";
    o.peer_port = port;
    o.ack_timeout = 3000ms;
    o.connect_timeout = 3000ms;
    o.logger = logger_.get();
    o.on_peer_lost = [this](const PeerLost& lost) {
      std::lock_guard lock(mu_);
      lost_count_++;
      lost_ = lost;
    };
    return o;
  }

  void StartReceiver(ReceiverOptions o) {
    receiver_ = std::make_unique<ReplicationReceiver>(std::move(o));
    Status s = receiver_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(receiver_->port(), 0);
  }
  void StartReceiver() { StartReceiver(ReceiverOpts()); }

  void ConnectSender(SenderOptions o) {
    sender_ = std::make_unique<ReplicationSender>(std::move(o));
    Status s = sender_->Connect();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(sender_->state(), SenderState::kReplicating);
  }
  void ConnectSender() { ConnectSender(SenderOpts(receiver_->port())); }

  // What the interceptor does: apply locally, then hand to the sink.
  std::uint64_t ApplyAndSubmit(const Operation& op, bool* applied = nullptr) {
    Status s = ApplyOperation(primary_fd_.get(), op);
    if (applied) *applied = s.ok();
    if (!s.ok()) return 0;
    return sender_->Submit(op);
  }

  std::string LogText() { return ReadFile(log_dir_.path() / "replication.log"); }
  int LostCount() {
    std::lock_guard lock(mu_);
    return lost_count_;
  }
  PeerLost LastLost() {
    std::lock_guard lock(mu_);
    return lost_;
  }

  TempDir log_dir_{"hakit-repl-log"};
  TempDir primary_{"hakit-repl-prim"};
  TempDir secondary_{"hakit-repl-second"};
  std::unique_ptr<Logger> logger_;
  DirFd primary_fd_;
  DirFd secondary_fd_;
  ConfigHash hash_{};
  std::vector<std::uint8_t> key_ = std::vector<std::uint8_t>(32, 0x5a);
  Gate gate_;
  std::atomic<bool> hold_fsync_{false};
  std::unique_ptr<ReplicationReceiver> receiver_;
  std::unique_ptr<ReplicationSender> sender_;
  std::mutex mu_;
  int lost_count_ = 0;
  PeerLost lost_;
};

// ---------------------------------------------------------------- handshake

TEST_F(ReplicationNet, HandshakeSucceedsAndReportsThePeer) {
  std::mutex m;
  std::string started_by;
  auto o = ReceiverOpts();
  o.generation = 17;
  o.on_session_start = [&](const std::string& peer, const Hello& h) {
    std::lock_guard lock(m);
    started_by = h.node;
  };
  ShutdownAtExit shutdown{this};
  StartReceiver(o);
  ConnectSender();
  SenderStats st = sender_->Stats();
  EXPECT_EQ(st.peer_node, "node2");
  EXPECT_EQ(st.peer_generation, 17u);
  EXPECT_EQ(st.sessions, 1u);
  EXPECT_TRUE(Eventually([&] { return receiver_->Stats().state == ReceiverState::kConnected; }));
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(m);
    return started_by == "node1";
  }));
  // Connecting twice is a caller error, not a second session.
  EXPECT_FALSE(sender_->Connect().ok());
}

// ---------------------------------------------------------------- authentication

TEST_F(ReplicationNet, NodesWithDifferentKeysDoNotPair) {
  ShutdownAtExit shutdown{this};
  StartReceiver();
  auto o = SenderOpts(receiver_->port());
  o.key.assign(32, 0x33);
  sender_ = std::make_unique<ReplicationSender>(o);
  Status s = sender_->Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("did not prove it holds this cluster's key"), std::string::npos)
      << s.message();
  EXPECT_NE(sender_->state(), SenderState::kReplicating);
}

// Whoever reaches the port without the key writes nothing: the secondary
// wants AUTH before anything else.
TEST_F(ReplicationNet, AnOperationBeforeAuthIsRefusedAndNotApplied) {
  ShutdownAtExit shutdown{this};
  StartReceiver();
  RawClient client(receiver_->port());
  Hello h;
  h.module = "app";
  h.node = "intruder";
  h.config_hash = hash_;
  client.Send(Message(h));
  auto ack = client.Read();
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  ASSERT_NE(std::get_if<HelloAck>(&*ack), nullptr);
  client.Send(Message(OpFrame{1, 0, MakeCreate("planted")}));
  auto reply = client.Read();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  const auto* refuse = std::get_if<Refuse>(&*reply);
  ASSERT_NE(refuse, nullptr);
  EXPECT_EQ(refuse->code, RefuseCode::kAuth);
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "planted"));
}

// A forged AUTH is refused and does not displace the real primary.
TEST_F(ReplicationNet, AForgedAuthDoesNotReplaceThePrimary) {
  ShutdownAtExit shutdown{this};
  StartReceiver();
  ConnectSender();
  RawClient client(receiver_->port());
  Hello h;
  h.module = "app";
  h.node = "intruder";
  h.config_hash = hash_;
  client.Send(Message(h));
  auto ack = client.Read();
  ASSERT_TRUE(ack.ok());
  client.Send(Message(Auth{}));
  auto reply = client.Read();
  ASSERT_TRUE(reply.ok());
  const auto* refuse = std::get_if<Refuse>(&*reply);
  ASSERT_NE(refuse, nullptr);
  EXPECT_EQ(refuse->code, RefuseCode::kAuth);
  EXPECT_NE(refuse->reason.find("did not prove"), std::string::npos) << refuse->reason;
  // The real primary still replicates.
  auto t = ApplyAndSubmit(MakeCreate("real"));
  ASSERT_TRUE(sender_->Wait(t).ok());
  EXPECT_EQ(sender_->state(), SenderState::kReplicating);
  EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(secondary_.path() / "real"); }));
}

TEST_F(ReplicationNet, RefusesAnotherModule) {
  StartReceiver();
  auto o = SenderOpts(receiver_->port());
  o.module = "otherapp";
  ReplicationSender sender(o);
  Status s = sender.Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("(module)"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'otherapp'"), std::string::npos) << s.message();
  EXPECT_EQ(sender.state(), SenderState::kIdle);
  EXPECT_TRUE(Eventually([&] { return receiver_->Stats().connections_refused == 1; }));
}

TEST_F(ReplicationNet, RefusesAnotherConfigHash) {
  StartReceiver();
  auto o = SenderOpts(receiver_->port());
  o.config_hash[31] ^= 1;
  ReplicationSender sender(o);
  Status s = sender.Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("(config)"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("differs"), std::string::npos) << s.message();
}

TEST_F(ReplicationNet, GenerationCheckRefusesWithItsReason) {
  auto o = ReceiverOpts();
  o.check_peer = [](const Hello& h) {
    return h.generation < 5 ? Status::Failed("primary generation " + std::to_string(h.generation) +
                                             " is older than ours (5)")
                            : Status::Ok();
  };
  StartReceiver(o);
  auto so = SenderOpts(receiver_->port());
  so.generation = 3;
  sender_ = std::make_unique<ReplicationSender>(so);
  Status s = sender_->Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("(generation)"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("older than ours"), std::string::npos) << s.message();
  sender_->SetGeneration(6, true);
  s = sender_->Connect();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ReplicationNet, RefusesAnotherProtocolVersionNamingBoth) {
  StartReceiver();
  RawClient client(receiver_->port());
  Hello h;
  h.module = "app";
  h.config_hash = hash_;
  std::string f;
  ASSERT_TRUE(EncodeFrame(h, &f).ok());
  f[5] = 1;  // header version 1 (before the synchronisation frames)
  client.Send(f);
  auto reply = client.Read();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  const auto* refuse = std::get_if<Refuse>(&*reply);
  ASSERT_NE(refuse, nullptr);
  EXPECT_EQ(refuse->code, RefuseCode::kVersion);
  EXPECT_NE(refuse->reason.find("version 1"), std::string::npos) << refuse->reason;
  EXPECT_NE(refuse->reason.find("2 to 2"), std::string::npos) << refuse->reason;
  EXPECT_EQ(client.Read().status().message(), "eof");
}

TEST_F(ReplicationNet, NoHelloWithinTheHandshakeTimeoutClosesTheConnection) {
  auto o = ReceiverOpts();
  o.handshake_timeout = 200ms;
  StartReceiver(o);
  RawClient client(receiver_->port());
  auto start = Clock::now();
  EXPECT_EQ(client.Read().status().message(), "eof");
  EXPECT_LT(Since(start), 2000ms);
}

// ---------------------------------------------------------------- data path

TEST_F(ReplicationNet, EightThreadsOfOperationsYieldTheSameTreeInOrder) {
  std::mutex seen_mu;
  std::map<std::string, std::uint64_t> last_seq_by_path;
  std::uint64_t last_seq = 0;
  bool order_ok = true;
  auto o = ReceiverOpts();
  o.before_apply = [&](std::uint64_t seq, const Operation& op) {
    std::lock_guard lock(seen_mu);
    if (seq != last_seq + 1) order_ok = false;
    last_seq = seq;
    auto& prev = last_seq_by_path[op.path];
    if (seq <= prev) order_ok = false;
    prev = seq;
  };
  ShutdownAtExit shutdown{this};
  StartReceiver(o);
  auto so = SenderOpts(receiver_->port());
  so.mode = SenderOptions::Mode::kApplied;
  ConnectSender(so);

  constexpr int kThreads = 8;
  constexpr int kOpsPerThread = 500;
  std::atomic<int> submitted{0};
  std::atomic<int> wait_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      const std::string dir = "t" + std::to_string(t);
      auto file = [&](int k) { return dir + "/f" + std::to_string(k); };
      std::uint64_t last_ticket = 0;
      auto run = [&](const Operation& op) {
        bool applied = false;
        std::uint64_t ticket = ApplyAndSubmit(op, &applied);
        if (!applied) return;
        EXPECT_GT(ticket, last_ticket);  // Submit order is ticket order
        last_ticket = ticket;
        submitted++;
        if (!sender_->Wait(ticket).ok()) wait_errors++;
      };
      run(MakeMkdir(dir));
      for (int i = 0; i < kOpsPerThread; ++i) {
        int k = rng() % 4;
        int dice = rng() % 100;
        if (dice < 50) {
          std::string data(1 + rng() % 8192, static_cast<char>('a' + rng() % 26));
          run(MakeWrite(file(k), rng() % 65536, std::move(data)));
        } else if (dice < 60) {
          run(MakeTruncate(file(k), rng() % 65536));
        } else if (dice < 70) {
          run(MakeRename(file(k), file(rng() % 4)));
        } else if (dice < 82) {
          run(MakeCreate(file(k), 0600 + rng() % 0100));
        } else if (dice < 87) {
          run(MakeUnlink(file(k)));
        } else if (dice < 92) {
          run(MakeFsync(file(k)));
        } else if (dice < 96) {
          run(MakeMkdir(dir + "/d" + std::to_string(rng() % 8)));
        } else {
          Operation chmod;
          chmod.kind = OpKind::kChmod;
          chmod.path = file(k);
          chmod.mode = 0600 + rng() % 0100;
          run(chmod);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wait_errors.load(), 0);
  EXPECT_GT(submitted.load(), kThreads * kOpsPerThread / 2);
  // Wait(kApplied) returned for every ticket: everything is applied now.
  ReceiverStats rs = receiver_->Stats();
  EXPECT_EQ(rs.ops_applied, static_cast<std::uint64_t>(submitted.load()));
  EXPECT_EQ(rs.backlog_ops, 0u);
  EXPECT_EQ(DescribeTree(secondary_.path()), DescribeTree(primary_.path()));
  std::lock_guard lock(seen_mu);
  EXPECT_TRUE(order_ok);
  EXPECT_EQ(last_seq, static_cast<std::uint64_t>(submitted.load()));
  SenderStats ss = sender_->Stats();
  EXPECT_EQ(ss.ops_unreplicated, 0u);
  EXPECT_EQ(ss.in_flight_ops, 0u);
  EXPECT_EQ(LostCount(), 0);
}

TEST_F(ReplicationNet, WriteLargerThanAFrameIsSplitAndReassembled) {
  StartReceiver();
  ConnectSender();
  std::string data(20u << 20, '\0');
  std::mt19937 rng(3);
  for (auto& c : data) c = static_cast<char>(rng());
  ASSERT_TRUE(ApplyOperation(primary_fd_.get(), MakeCreate("big")).ok());
  sender_->Submit(MakeCreate("big"));
  std::uint64_t t = ApplyAndSubmit(MakeWrite("big", 4096, data));
  ASSERT_TRUE(sender_->Wait(t).ok());
  EXPECT_EQ(receiver_->Stats().ops_received, 4u);  // create + 3 frames
  EXPECT_EQ(ReadFile(secondary_.path() / "big"), ReadFile(primary_.path() / "big"));
}

TEST_F(ReplicationNet, OperationsReachTheirReplicatedDir) {
  TempDir second_dir{"hakit-repl-dir1"};
  DirFd second_fd(second_dir.path());
  auto o = ReceiverOpts();
  o.root_fds = {secondary_fd_.get(), second_fd.get()};
  StartReceiver(o);
  ConnectSender();
  sender_->SubmitTo(1, MakeCreate("in-dir-1"));
  std::uint64_t t = sender_->Submit(MakeCreate("in-dir-0"));
  ASSERT_TRUE(sender_->Wait(t).ok());
  EXPECT_TRUE(std::filesystem::exists(second_dir.path() / "in-dir-1"));
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "in-dir-0"));
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "in-dir-1"));
  // A dir index this node does not have ends the session.
  sender_->SubmitTo(7, MakeCreate("nowhere"));
  EXPECT_TRUE(Eventually([&] { return LostCount() == 1; }));  // the callback ran
  EXPECT_NE(LastLost().reason.find("replicated dir 7"), std::string::npos) << LastLost().reason;
}

// ---------------------------------------------------------------- Wait semantics

TEST_F(ReplicationNet, ReceivedModeReturnsBeforeApply) {
  StartReceiver();
  auto so = SenderOpts(receiver_->port());
  so.mode = SenderOptions::Mode::kReceived;
  ConnectSender(so);
  gate_.Close();
  std::uint64_t t = sender_->Submit(MakeCreate("held"));
  auto start = Clock::now();
  ASSERT_TRUE(sender_->Wait(t).ok());
  EXPECT_LT(Since(start), 1000ms);
  ASSERT_TRUE(gate_.WaitForWaiter());
  EXPECT_EQ(receiver_->Stats().ops_applied, 0u);
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "held"));
  EXPECT_GE(sender_->Stats().acked_received, t);
  EXPECT_LT(sender_->Stats().acked_applied, t);
  gate_.Open();
  EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(secondary_.path() / "held"); }));
}

TEST_F(ReplicationNet, AppliedModeWaitsForApply) {
  StartReceiver();
  ConnectSender();  // kApplied by default
  gate_.Close();
  std::uint64_t t = sender_->Submit(MakeCreate("held"));
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    EXPECT_TRUE(sender_->Wait(t).ok());
    returned = true;
  });
  ASSERT_TRUE(gate_.WaitForWaiter());
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(returned.load());
  EXPECT_GE(sender_->Stats().acked_received, t);
  gate_.Open();
  waiter.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "held"));
}

TEST_F(ReplicationNet, FsyncWaitsForDurableEvenInReceivedMode) {
  StartReceiver();
  auto so = SenderOpts(receiver_->port());
  so.mode = SenderOptions::Mode::kReceived;
  ConnectSender(so);
  hold_fsync_ = true;  // the gate holds fsyncs only
  gate_.Close();
  ASSERT_TRUE(ApplyOperation(primary_fd_.get(), MakeCreate("f")).ok());
  std::uint64_t w = sender_->Submit(MakeCreate("f"));
  ASSERT_TRUE(sender_->Wait(w).ok());
  std::uint64_t f = sender_->Submit(MakeFsync("f"));
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    EXPECT_TRUE(sender_->Wait(f).ok());
    returned = true;
  });
  ASSERT_TRUE(gate_.WaitForWaiter());
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(returned.load());
  EXPECT_GE(sender_->Stats().acked_received, f);  // received, not durable
  EXPECT_LT(sender_->Stats().acked_durable, f);
  gate_.Open();
  waiter.join();
  EXPECT_GE(sender_->Stats().acked_durable, f);
}

TEST_F(ReplicationNet, FullWindowBlocksSubmitAndLosesNothing) {
  std::atomic<std::uint64_t> max_backlog{0};
  auto o = ReceiverOpts();
  ReplicationReceiver* rp = nullptr;
  o.before_apply = [&](std::uint64_t, const Operation&) {
    std::this_thread::sleep_for(2ms);
    if (rp) {
      std::uint64_t b = rp->Stats().backlog_ops;
      if (b > max_backlog) max_backlog = b;
    }
  };
  ShutdownAtExit shutdown{this};
  StartReceiver(o);
  rp = receiver_.get();
  auto so = SenderOpts(receiver_->port());
  so.mode = SenderOptions::Mode::kReceived;  // Wait would not block: only the window does
  so.window_ops = 8;
  so.window_bytes = 1u << 20;
  ConnectSender(so);
  ASSERT_TRUE(ApplyOperation(primary_fd_.get(), MakeCreate("w")).ok());
  sender_->Submit(MakeCreate("w"));
  constexpr int kOps = 300;
  std::uint64_t max_in_flight = 0, last = 0;
  auto start = Clock::now();
  for (int i = 0; i < kOps; ++i) {
    std::string data(4096, static_cast<char>('A' + i % 26));
    last = ApplyAndSubmit(MakeWrite("w", static_cast<std::uint64_t>(i) * 4096, data));
    max_in_flight = std::max<std::uint64_t>(max_in_flight, sender_->Stats().in_flight_ops);
  }
  auto elapsed = Since(start);
  EXPECT_LE(max_in_flight, 8u);
  // 300 operations at >= 2 ms each, at most 8 ahead: Submit must have waited.
  EXPECT_GE(elapsed, 2ms * (kOps - 8) * 8 / 10);
  EXPECT_LE(max_backlog.load(), 8u);
  ASSERT_TRUE(sender_->Wait(last).ok());
  EXPECT_TRUE(Eventually([&] { return receiver_->Stats().ops_applied == kOps + 1; }));
  EXPECT_EQ(ReadFile(secondary_.path() / "w"), ReadFile(primary_.path() / "w"));
  EXPECT_EQ(LostCount(), 0);
}

TEST_F(ReplicationNet, ReceiverStopsReadingWhenItsBacklogIsFull) {
  auto o = ReceiverOpts();
  o.max_backlog_bytes = 64 * 1024;  // far below the sender's window
  o.before_apply = [](std::uint64_t, const Operation&) { std::this_thread::sleep_for(1ms); };
  StartReceiver(o);
  auto so = SenderOpts(receiver_->port());
  so.mode = SenderOptions::Mode::kReceived;
  ConnectSender(so);
  ASSERT_TRUE(ApplyOperation(primary_fd_.get(), MakeCreate("b")).ok());
  sender_->Submit(MakeCreate("b"));
  std::uint64_t last = 0;
  for (int i = 0; i < 200; ++i) {
    last = ApplyAndSubmit(MakeWrite("b", i * 16384ull, std::string(16384, 'a' + i % 26)));
  }
  ASSERT_TRUE(sender_->Wait(last).ok());
  EXPECT_TRUE(Eventually([&] { return receiver_->Stats().ops_applied == 201; }));
  EXPECT_EQ(ReadFile(secondary_.path() / "b"), ReadFile(primary_.path() / "b"));
  EXPECT_EQ(LostCount(), 0);
}

TEST_F(ReplicationNet, SenderRunsOnAGivenIoContext) {
  StartReceiver();
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  {
    auto so = SenderOpts(receiver_->port());
    so.io = &io;
    ReplicationSender sender(so);
    ASSERT_TRUE(sender.Connect().ok());
    std::uint64_t t = sender.Submit(MakeCreate("via-given-io"));
    EXPECT_TRUE(sender.Wait(t).ok());
  }
  work.reset();
  runner.join();
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "via-given-io"));
}

// ---------------------------------------------------------------- peer loss

TEST_F(ReplicationNet, KilledReceiverLosesThePeerOnceAndNothingBlocks) {
  StartReceiver();
  auto so = SenderOpts(receiver_->port());
  so.ack_timeout = 500ms;
  ConnectSender(so);
  std::atomic<bool> stop{false};
  std::atomic<int> slow_waits{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      auto t0 = Clock::now();
      std::uint64_t t = sender_->Submit(MakeWrite("stream", i * 4096ull, std::string(4096, 'x')));
      EXPECT_TRUE(sender_->Wait(t).ok());
      if (Since(t0) > so.ack_timeout + 300ms) slow_waits++;
    }
  });
  sender_->Submit(MakeCreate("stream"));
  std::this_thread::sleep_for(200ms);
  receiver_.reset();  // the secondary dies mid-stream
  EXPECT_TRUE(Eventually([&] { return sender_->state() == SenderState::kLost; }, 2000ms));
  std::this_thread::sleep_for(200ms);
  stop = true;
  writer.join();
  EXPECT_EQ(slow_waits.load(), 0);
  EXPECT_EQ(LostCount(), 1);
  // Not replicating: Submit counts, Wait returns at once.
  auto t0 = Clock::now();
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(sender_->Wait(sender_->Submit(MakeCreate("later"))).ok());
  }
  EXPECT_LT(Since(t0), 100ms);
  EXPECT_EQ(LostCount(), 1);
  SenderStats st = sender_->Stats();
  EXPECT_EQ(st.state, SenderState::kLost);
  EXPECT_GE(st.ops_unreplicated, 100u);
  EXPECT_EQ(st.peers_lost, 1u);
  EXPECT_FALSE(st.last_error.empty());
}

TEST_F(ReplicationNet, StalledReceiverIsLostAfterAckTimeout) {
  StallingSecondary stall;
  auto so = SenderOpts(stall.port());
  so.key.clear();  // the fake secondary speaks no authentication
  so.ack_timeout = 400ms;
  so.window_bytes = 4u << 20;
  ConnectSender(so);
  // Enough 1 MiB writes to fill the socket buffers and the window.
  auto t0 = Clock::now();
  std::uint64_t last = 0;
  for (int i = 0; i < 32; ++i) {
    last = sender_->Submit(MakeWrite("big", i * (1ull << 20), std::string(1u << 20, 'q')));
  }
  EXPECT_TRUE(sender_->Wait(last).ok());
  auto elapsed = Since(t0);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 400ms + 600ms);  // one ack_timeout, plus scheduling slack on a busy machine
  EXPECT_EQ(sender_->state(), SenderState::kLost);
  EXPECT_EQ(LostCount(), 1);
  PeerLost lost = LastLost();
  EXPECT_FALSE(lost.unapplied.empty());
  EXPECT_EQ(lost.unapplied.front().op.path, "big");
  EXPECT_TRUE(lost.unapplied.front().op.data.empty());
  auto t1 = Clock::now();
  EXPECT_TRUE(sender_->Wait(sender_->Submit(MakeCreate("after"))).ok());
  EXPECT_LT(Since(t1), 50ms);
}

TEST_F(ReplicationNet, SilentIdlePeerIsLostAfterAckTimeout) {
  StallingSecondary stall;  // never answers PING
  auto so = SenderOpts(stall.port());
  so.key.clear();  // the fake secondary speaks no authentication
  so.ack_timeout = 300ms;
  ConnectSender(so);
  auto t0 = Clock::now();
  EXPECT_TRUE(Eventually([&] { return LostCount() == 1; }, 2000ms));
  EXPECT_LT(Since(t0), 300ms + 900ms);  // ack_timeout, a keepalive tick, slack
  EXPECT_NE(LastLost().reason.find("silent"), std::string::npos) << LastLost().reason;
}

TEST_F(ReplicationNet, ReceiverClosesASilentPrimary) {
  auto o = ReceiverOpts();
  o.idle_timeout = 200ms;
  o.key.clear();  // the raw client speaks no authentication
  StartReceiver(o);
  RawClient client(receiver_->port());
  Hello h;
  h.module = "app";
  h.config_hash = hash_;
  client.Send(h);
  ASSERT_TRUE(client.Read().ok());  // HELLO_ACK
  auto start = Clock::now();
  EXPECT_EQ(client.Read().status().message(), "eof");
  EXPECT_GE(Since(start), 150ms);
  EXPECT_LT(Since(start), 2000ms);
  EXPECT_TRUE(Eventually([&] { return LogText().find("silent") != std::string::npos; }));
}

TEST_F(ReplicationNet, ReconnectsToARestartedReceiver) {
  StartReceiver();
  ConnectSender();
  std::uint64_t before = sender_->Submit(MakeCreate("one"));
  ASSERT_TRUE(sender_->Wait(before).ok());
  std::uint16_t port = receiver_->port();
  receiver_.reset();
  EXPECT_TRUE(Eventually([&] { return sender_->state() == SenderState::kLost; }));
  sender_->Submit(MakeCreate("during-loss"));  // counted, not sent
  auto o = ReceiverOpts();
  o.port = port;
  StartReceiver(o);
  Status s = sender_->Reconnect();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(sender_->Wait(before).ok());
  std::uint64_t after = sender_->Submit(MakeCreate("two"));
  ASSERT_TRUE(sender_->Wait(after).ok());
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "two"));
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "during-loss"));
  EXPECT_EQ(sender_->Stats().sessions, 2u);
}

TEST_F(ReplicationNet, StopSaysByeAfterQueuedFrames) {
  std::mutex m;
  std::string end_reason;
  auto o = ReceiverOpts();
  o.on_session_end = [&](const std::string& r) {
    std::lock_guard lock(m);
    end_reason = r;
  };
  ShutdownAtExit shutdown{this};
  StartReceiver(o);
  auto so = SenderOpts(receiver_->port());
  so.mode = SenderOptions::Mode::kReceived;
  ConnectSender(so);
  for (int i = 0; i < 50; ++i) sender_->Submit(MakeCreate("s" + std::to_string(i)));
  sender_->Stop();
  EXPECT_EQ(sender_->state(), SenderState::kStopped);
  EXPECT_TRUE(Eventually([&] { return receiver_->Stats().ops_applied == 50; }));
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(m);
    return end_reason.find("BYE") != std::string::npos;
  }));
  EXPECT_EQ(LostCount(), 0);
}

TEST_F(ReplicationNet, ANewPrimaryConnectionReplacesTheOldOne) {
  StartReceiver();
  ConnectSender();
  ReplicationSender second(SenderOpts(receiver_->port()));
  ASSERT_TRUE(second.Connect().ok());
  EXPECT_TRUE(Eventually([&] { return sender_->state() == SenderState::kLost; }));
  std::uint64_t t = second.Submit(MakeCreate("from-second"));
  ASSERT_TRUE(second.Wait(t).ok());
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "from-second"));
}

// ---------------------------------------------------------------- failures

TEST_F(ReplicationNet, ApplyErrorIsFatalAndReported) {
  std::mutex m;
  std::string failure;
  auto o = ReceiverOpts();
  o.apply = [](int fd, const Operation& op) {
    if (op.path == "poison") return Status::IoError("pwrite: Input/output error (errno 5)");
    return ApplyOperation(fd, op);
  };
  o.on_apply_failed = [&](const Status& s) {
    std::lock_guard lock(m);
    failure = s.message();
  };
  ShutdownAtExit shutdown{this};
  StartReceiver(o);
  ConnectSender();
  sender_->Submit(MakeCreate("fine"));
  std::uint64_t t = sender_->Submit(MakeWrite("poison", 0, "x"));
  sender_->Submit(MakeCreate("after-poison"));
  EXPECT_TRUE(sender_->Wait(t).ok());  // returns: the peer is lost, the local result stands
  EXPECT_TRUE(Eventually([&] { return LostCount() == 1; }));  // the callback ran
  EXPECT_NE(LastLost().reason.find("apply failed"), std::string::npos) << LastLost().reason;
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(m);
    return !failure.empty();
  }));
  {
    std::lock_guard lock(m);
    EXPECT_NE(failure.find("write 'poison'"), std::string::npos) << failure;
    EXPECT_NE(failure.find("sequence 2"), std::string::npos) << failure;
    EXPECT_NE(failure.find("errno 5"), std::string::npos) << failure;
  }
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "fine"));
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "after-poison"));
  EXPECT_EQ(receiver_->Stats().state, ReceiverState::kFailed);
  EXPECT_NE(LogText().find("poison"), std::string::npos);
  // Inconsistent until the daemon clears it.
  Status s = sender_->Reconnect();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("inconsistent"), std::string::npos) << s.message();
  receiver_->ClearFailure();
  s = sender_->Reconnect();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ReplicationNet, MalformedFrameClosesOnlyThatConnection) {
  auto unauthenticated = ReceiverOpts();
  unauthenticated.key.clear();  // the raw clients speak no authentication
  StartReceiver(unauthenticated);
  {
    RawClient client(receiver_->port());
    Hello h;
    h.module = "app";
    h.config_hash = hash_;
    client.Send(h);
    auto ack = client.Read();
    ASSERT_TRUE(ack.ok()) << ack.status().ToString();
    ASSERT_NE(std::get_if<HelloAck>(&*ack), nullptr);
    client.Send(std::string("HKRQ\0\1\4\0\0\0\0", 11));  // bad magic
    auto reply = client.Read();
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    const auto* refuse = std::get_if<Refuse>(&*reply);
    ASSERT_NE(refuse, nullptr);
    EXPECT_EQ(refuse->code, RefuseCode::kProtocol);
    EXPECT_NE(refuse->reason.find("magic"), std::string::npos) << refuse->reason;
    EXPECT_EQ(client.Read().status().message(), "eof");
  }
  EXPECT_NE(LogText().find("bad magic"), std::string::npos) << LogText();
  {
    RawClient client(receiver_->port());
    client.Send(OpFrame{1, 0, MakeCreate("sneaky")});  // no handshake
    auto reply = client.Read();
    ASSERT_TRUE(reply.ok());
    ASSERT_NE(std::get_if<Refuse>(&*reply), nullptr);
    EXPECT_NE(std::get<Refuse>(*reply).reason.find("expected HELLO"), std::string::npos);
  }
  {
    RawClient client(receiver_->port());
    Hello h;
    h.module = "app";
    h.config_hash = hash_;
    h.first_sequence = 10;
    client.Send(h);
    ASSERT_TRUE(client.Read().ok());
    client.Send(OpFrame{10, 0, MakeCreate("ten")});
    client.Send(OpFrame{12, 0, MakeCreate("twelve")});  // a gap
    Status why;
    for (;;) {  // ACKs first, then the REFUSE
      auto m = client.Read();
      ASSERT_TRUE(m.ok()) << m.status().ToString();
      if (const auto* r = std::get_if<Refuse>(&*m)) {
        why = Status::Failed(r->reason);
        break;
      }
    }
    EXPECT_NE(why.message().find("out of order"), std::string::npos) << why.message();
  }
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "sneaky"));
  EXPECT_TRUE(Eventually([&] { return std::filesystem::exists(secondary_.path() / "ten"); }));
  EXPECT_FALSE(std::filesystem::exists(secondary_.path() / "twelve"));
  // The receiver still serves the next primary.
  auto so = SenderOpts(receiver_->port());
  so.key.clear();
  ConnectSender(so);
  std::uint64_t t = sender_->Submit(MakeCreate("served"));
  ASSERT_TRUE(sender_->Wait(t).ok());
  EXPECT_TRUE(std::filesystem::exists(secondary_.path() / "served"));
}

TEST_F(ReplicationNet, SenderRefusesAnOperationTheWireCannotCarry) {
  StartReceiver();
  ConnectSender();
  sender_->Submit(MakeCreate(std::string(5000, 'n')));
  EXPECT_EQ(sender_->state(), SenderState::kLost);
  EXPECT_NE(LastLost().reason.find("cannot be replicated"), std::string::npos);
}

}  // namespace
}  // namespace hakit::replication
