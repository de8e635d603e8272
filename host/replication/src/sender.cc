#include "hakit/replication/sender.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <thread>

#include "hakit/common/log.h"
#include "hakit/replication/handshake_auth.h"

namespace hakit::replication {

namespace asio = boost::asio;
using asio::ip::tcp;
using sdk::Status;
using Clock = std::chrono::steady_clock;

namespace {

// Write data up to this size is copied right behind its frame header, so a
// small operation costs one iovec instead of two: Asio hands at most 64
// buffers to one writev, and 4 KiB writes would otherwise halve what each
// system call carries. Larger data is referenced, never copied.
constexpr std::size_t kInlineData = 16 * 1024;
// One gathered write carries at most this much; a bound keeps the stats and
// the freeing of sent buffers moving during a long burst.
constexpr std::size_t kMaxBatchBytes = 8u << 20;
constexpr std::size_t kMaxBatchFrames = 1024;
// How long Stop() lets queued frames and BYE drain.
constexpr auto kStopFlush = std::chrono::seconds(1);

// A frame waiting to be written: header and fields, then the data bytes.
struct Frame {
  std::string head;
  std::string data;
  bool is_op = false;
};

// An operation in the window, from Submit() to its "applied" ack.
struct Pending {
  std::uint64_t seq = 0;
  std::uint8_t dir_index = 0;
  std::size_t bytes = 0;
  Clock::time_point submitted;
  Operation meta;  // without data: what on_peer_lost reports
  bool barrier = false;
};

std::int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

std::int64_t Millis(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::uint64_t NowNanos() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

}  // namespace

Status SenderOptions::Validate() const {
  if (module.empty() || module.size() > 255) {
    return Status::InvalidArgument("replication sender: module name must be 1..255 bytes");
  }
  if (node.size() > 255) {
    return Status::InvalidArgument("replication sender: node name longer than 255 bytes");
  }
  if (auto ep = MakeEndpoint(peer_address, peer_port); !ep.ok()) {
    return ep.status().WithContext("replication sender: peer address");
  }
  if (peer_port == 0) return Status::InvalidArgument("replication sender: peer port is 0");
  if (ack_timeout.count() <= 0) {
    return Status::InvalidArgument("replication sender: ack_timeout must be positive");
  }
  if (connect_timeout.count() <= 0) {
    return Status::InvalidArgument("replication sender: connect_timeout must be positive");
  }
  if (keepalive_interval.count() < 0) {
    return Status::InvalidArgument("replication sender: keepalive_interval is negative");
  }
  if (window_bytes == 0 || window_ops == 0) {
    return Status::InvalidArgument(
        "replication sender: the window must allow at least one byte "
        "and one operation");
  }
  return Status::Ok();
}

const char* SenderStateName(SenderState state) {
  switch (state) {
    case SenderState::kIdle:
      return "idle";
    case SenderState::kConnecting:
      return "connecting";
    case SenderState::kReplicating:
      return "replicating";
    case SenderState::kLost:
      return "lost";
    case SenderState::kStopped:
      return "stopped";
  }
  return "unknown";
}

class ReplicationSender::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(SenderOptions options, asio::io_context& io) : options_(std::move(options)), io_(io) {
    keepalive_ = options_.keepalive_interval;
    if (keepalive_.count() == 0) {
      keepalive_ = std::clamp(options_.ack_timeout / 5, std::chrono::milliseconds(10),
                              std::chrono::milliseconds(1000));
    }
    peer_text_ = options_.peer_address + ":" + std::to_string(options_.peer_port);
  }

  Status Connect();
  void Stop();
  void SetGeneration(std::uint64_t generation, bool consistent) {
    std::lock_guard lock(mu_);
    options_.generation = generation;
    options_.consistent = consistent;
  }
  std::uint64_t SubmitTo(std::uint8_t dir_index, Operation op);
  Status Wait(std::uint64_t ticket);
  SenderStats Stats() const;
  SenderState state() const {
    std::lock_guard lock(mu_);
    return state_;
  }

 private:
  // One TCP connection. Handlers hold it by shared_ptr; a handler whose
  // session is no longer session_ does nothing (the connection was lost or
  // replaced while it was pending).
  struct Session {
    explicit Session(asio::io_context& io) : socket(io), timer(io) {}
    tcp::socket socket;
    asio::steady_timer timer;  // connect deadline, then keepalive ticks
    FrameReader reader;
    std::string hello;         // io thread only
    std::vector<Frame> batch;  // io thread only: being written
    std::vector<asio::const_buffer> buffers;
    bool writer_busy = false;       // under mu_: a StartWrite is posted or running
    std::uint64_t hello_first = 0;  // under mu_
    Nonce nonce{};                  // io thread only: ours, in HELLO
    std::shared_ptr<std::promise<Status>> connect_done;  // io thread only
  };
  using SessionPtr = std::shared_ptr<Session>;

  std::uint64_t SubmitOne(std::uint8_t dir_index, Operation op);
  void Log(LogLevel level, const std::string& message) {
    if (options_.logger)
      options_.logger->Log(level, "replication " + options_.module + ": " + message);
  }
  // Runs a handler body; an exception ends the session instead of escaping.
  template <typename F>
  void Guard(const SessionPtr& session, const char* what, F&& body) noexcept {
    try {
      body();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string(what) + ": unexpected exception: " + e.what());
      try {
        Lost(session, std::string("internal error in ") + what + ": " + e.what());
      } catch (...) {
      }
    } catch (...) {
      Log(LogLevel::kError, std::string(what) + ": unexpected exception");
    }
  }

  void StartConnect(const SessionPtr& s, const tcp::endpoint& endpoint);
  void OnConnected(const SessionPtr& s);
  void ReadHandshake(const SessionPtr& s);
  void FailConnect(const SessionPtr& s, const Status& why);
  void ReadLoop(const SessionPtr& s);
  bool ProcessFrames(const SessionPtr& s);
  bool OnAck(const SessionPtr& s, const Ack& ack);
  void Tick(const SessionPtr& s);
  void KickLocked(const SessionPtr& s);
  void StartWrite(const SessionPtr& s);
  void Lost(const SessionPtr& s, const std::string& reason);
  void Close(const SessionPtr& s);

  SenderOptions options_;  // identity fields under mu_ (SetGeneration)
  asio::io_context& io_;
  std::chrono::milliseconds keepalive_{0};
  std::string peer_text_;

  mutable std::mutex mu_;
  std::condition_variable ack_cv_;    // ack progress, loss, stop: Wait()
  std::condition_variable room_cv_;   // window room, loss, stop: Submit()
  std::condition_variable drain_cv_;  // the writer went idle: Stop()
  SenderState state_ = SenderState::kIdle;
  SessionPtr session_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t base_ = 1;  // first sequence queued to the current session
  std::deque<Frame> queue_;
  std::deque<Pending> window_;
  std::size_t in_flight_bytes_ = 0;
  std::uint64_t received_ = 0, applied_ = 0, durable_ = 0;
  Clock::time_point last_progress_{};
  Clock::time_point last_rx_{};
  bool lost_reported_ = true;  // false while on_peer_lost runs
  bool stopping_ = false;      // Stop() is flushing: the peer closing is expected
  std::uint64_t ping_nonce_ = 0;
  SenderStats stats_;
};

struct ReplicationSender::OwnIo {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
};

// ---------------------------------------------------------------- connect

Status ReplicationSender::Impl::Connect() {
  if (Status s = options_.Validate(); !s.ok()) return s;
  auto endpoint = MakeEndpoint(options_.peer_address, options_.peer_port);
  auto session = std::make_shared<Session>(io_);
  auto done = std::make_shared<std::promise<Status>>();
  auto result = done->get_future();
  session->connect_done = done;
  {
    std::lock_guard lock(mu_);
    if (state_ == SenderState::kStopped) return Status::InvalidArgument("sender is stopped");
    if (state_ == SenderState::kConnecting || state_ == SenderState::kReplicating) {
      return Status::InvalidArgument(std::string("sender is already ") + SenderStateName(state_));
    }
    if (state_ == SenderState::kLost && !lost_reported_) {
      return Status::InvalidArgument("the previous session's loss is still being reported");
    }
    state_ = SenderState::kConnecting;
    session_ = session;
    session->hello_first = next_seq_;
  }
  asio::post(io_, [self = shared_from_this(), session, ep = *endpoint] {
    self->Guard(session, "connect", [&] { self->StartConnect(session, ep); });
  });
  // The io side always answers (its deadline timer fires); the extra margin
  // only protects against an io_context that nobody runs.
  if (result.wait_for(options_.connect_timeout + std::chrono::seconds(5)) !=
      std::future_status::ready) {
    asio::post(io_, [self = shared_from_this(), session] {
      self->FailConnect(session, Status::Timeout("io_context not running"));
    });
    return Status::Timeout("connecting to " + peer_text_ + ": the io_context does not run");
  }
  return result.get();
}

void ReplicationSender::Impl::StartConnect(const SessionPtr& s, const tcp::endpoint& endpoint) {
  auto self = shared_from_this();
  s->timer.expires_after(options_.connect_timeout);
  s->timer.async_wait([self, s](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the handshake finished
    self->FailConnect(
        s, Status::Timeout("no handshake with " + self->peer_text_ + " within " +
                           std::to_string(self->options_.connect_timeout.count()) + " ms"));
  });
  s->socket.async_connect(endpoint, [self, s](const boost::system::error_code& ec) {
    self->Guard(s, "connect", [&] {
      if (ec) {
        self->FailConnect(
            s, Status::IoError("cannot connect to " + self->peer_text_ + ": " + ec.message()));
        return;
      }
      self->OnConnected(s);
    });
  });
}

void ReplicationSender::Impl::OnConnected(const SessionPtr& s) {
  if (!s->connect_done) return;  // timed out meanwhile
  if (Status st = TuneSocket(s->socket, options_.transport); !st.ok()) {
    FailConnect(s, st.WithContext(peer_text_));
    return;
  }
  Hello hello;
  {
    std::lock_guard lock(mu_);
    hello.module = options_.module;
    hello.node = options_.node;
    hello.config_hash = options_.config_hash;
    hello.generation = options_.generation;
    hello.consistent = options_.consistent;
    hello.role = Role::kPrimary;
    hello.first_sequence = s->hello_first;
  }
  s->nonce = hello.nonce = RandomNonce();
  if (Status st = EncodeFrame(hello, &s->hello); !st.ok()) {
    FailConnect(s, st);
    return;
  }
  auto self = shared_from_this();
  asio::async_write(
      s->socket, asio::buffer(s->hello),
      [self, s](const boost::system::error_code& ec, std::size_t) {
        self->Guard(s, "handshake", [&] {
          if (ec) {
            self->FailConnect(
                s, Status::IoError("sending HELLO to " + self->peer_text_ + ": " + ec.message()));
          }
        });
      });
  ReadHandshake(s);
}

void ReplicationSender::Impl::ReadHandshake(const SessionPtr& s) {
  auto self = shared_from_this();
  auto space = s->reader.PrepareRead(4096);
  s->socket.async_read_some(
      asio::buffer(space.data(), space.size()),
      [self, s](const boost::system::error_code& ec, std::size_t n) {
        self->Guard(s, "handshake", [&] {
          if (ec) {
            self->FailConnect(
                s, Status::IoError(
                       "handshake with " + self->peer_text_ + ": " +
                       (ec == asio::error::eof ? std::string("connection closed") : ec.message())));
            return;
          }
          s->reader.CommitRead(n);
          auto next = s->reader.Next();
          if (!next.ok()) {
            self->FailConnect(s, next.status().WithContext("handshake with " + self->peer_text_));
            return;
          }
          if (!*next) {
            self->ReadHandshake(s);
            return;
          }
          const RawFrame& f = **next;
          // A REFUSE is read whatever its version: the header layout is
          // frozen so that a peer of another version can say why it refuses.
          if (f.header.type != FrameType::kRefuse) {
            if (Status v = CheckVersion(f.header.version); !v.ok()) {
              self->FailConnect(s, v.WithContext("handshake with " + self->peer_text_));
              return;
            }
          }
          auto message = DecodePayload(f.header, f.payload);
          if (!message.ok()) {
            self->FailConnect(s,
                              message.status().WithContext("handshake with " + self->peer_text_));
            return;
          }
          if (const auto* refuse = std::get_if<Refuse>(&*message)) {
            self->FailConnect(
                s, Status::Failed("refused by the secondary at " + self->peer_text_ + " (" +
                                  RefuseCodeName(refuse->code) + "): " + refuse->reason));
            return;
          }
          const auto* ack = std::get_if<HelloAck>(&*message);
          if (!ack) {
            self->FailConnect(
                s, Status::Corruption("handshake with " + self->peer_text_ +
                                      ": expected HELLO_ACK, got " +
                                      FrameTypeName(static_cast<std::uint8_t>(f.header.type))));
            return;
          }
          if (ack->role != Role::kSecondary) {
            self->FailConnect(s, Status::Failed("handshake with " + self->peer_text_ +
                                                ": the peer does not act as a secondary"));
            return;
          }
          Frame auth;
          if (!self->options_.key.empty()) {
            Proof expected = HandshakeProof(self->options_.key, "hakit-repl-ack", s->nonce,
                                            ack->nonce, self->options_.module, ack->node);
            if (!SameProof(expected, ack->proof)) {
              self->FailConnect(
                  s, Status::Failed("the secondary at " + self->peer_text_ +
                                    " did not prove it holds this cluster's key (another "
                                    "cluster, or a different conf/cluster.key)"));
              return;
            }
            EncodeFrame(Auth{HandshakeProof(self->options_.key, "hakit-repl-auth", ack->nonce,
                                            s->nonce, self->options_.module,
                                            self->options_.node)},
                        &auth.head);
          }
          auto done = std::exchange(s->connect_done, nullptr);
          if (!done) return;
          s->timer.cancel();
          std::uint64_t base = 0;
          {
            std::lock_guard lock(self->mu_);
            if (self->session_ != s || self->state_ != SenderState::kConnecting) {
              boost::system::error_code ignored;
              s->socket.close(ignored);
              done->set_value(Status::Failed("sender stopped during the handshake"));
              return;
            }
            auto now = Clock::now();
            self->state_ = SenderState::kReplicating;
            self->base_ = self->next_seq_;
            self->received_ = self->applied_ = self->durable_ = self->base_ - 1;
            self->queue_.clear();
            // AUTH first: the secondary takes nothing before it.
            if (!auth.head.empty()) {
              self->queue_.push_back(std::move(auth));
              self->KickLocked(s);
            }
            self->window_.clear();
            self->in_flight_bytes_ = 0;
            self->last_progress_ = self->last_rx_ = now;
            self->stats_.sessions++;
            self->stats_.peer_node = ack->node;
            self->stats_.peer_generation = ack->generation;
            self->stats_.peer_consistent = ack->consistent;
            self->stats_.peer_suspect = ack->suspect;
            self->stats_.last_error.clear();
            base = self->base_;
          }
          self->Log(LogLevel::kInfo, "replicating to " + ack->node + " at " + self->peer_text_ +
                                         " from sequence " + std::to_string(base));
          done->set_value(Status::Ok());
          // Frames that came with HELLO_ACK, then the steady state.
          if (!self->ProcessFrames(s)) return;
          self->ReadLoop(s);
          self->Tick(s);
        });
      });
}

void ReplicationSender::Impl::FailConnect(const SessionPtr& s, const Status& why) {
  auto done = std::exchange(s->connect_done, nullptr);
  if (!done) return;
  boost::system::error_code ignored;
  s->socket.close(ignored);
  s->timer.cancel();
  {
    std::lock_guard lock(mu_);
    if (session_ == s && state_ == SenderState::kConnecting) {
      state_ =
          stats_.sessions == 0 && stats_.peers_lost == 0 ? SenderState::kIdle : SenderState::kLost;
      session_ = nullptr;
    }
    stats_.last_error = why.message();
  }
  Log(LogLevel::kWarning, "cannot replicate: " + why.ToString());
  done->set_value(why);
}

// ---------------------------------------------------------------- steady state

void ReplicationSender::Impl::ReadLoop(const SessionPtr& s) {
  auto self = shared_from_this();
  auto space = s->reader.PrepareRead(16 * 1024);
  s->socket.async_read_some(asio::buffer(space.data(), space.size()),
                            [self, s](const boost::system::error_code& ec, std::size_t n) {
                              self->Guard(s, "read", [&] {
                                if (ec) {
                                  if (ec == asio::error::operation_aborted) return;
                                  self->Lost(s, ec == asio::error::eof
                                                    ? "the secondary closed the connection"
                                                    : "read failed: " + ec.message());
                                  return;
                                }
                                {
                                  std::lock_guard lock(self->mu_);
                                  self->last_rx_ = Clock::now();
                                }
                                s->reader.CommitRead(n);
                                if (self->ProcessFrames(s)) self->ReadLoop(s);
                              });
                            });
}

// Handles every whole frame buffered; false when the session ended.
bool ReplicationSender::Impl::ProcessFrames(const SessionPtr& s) {
  for (;;) {
    auto next = s->reader.Next();
    if (!next.ok()) {
      Lost(s, "protocol error from the secondary: " + next.status().message());
      return false;
    }
    if (!*next) return true;
    const RawFrame& f = **next;
    Status version = CheckVersion(f.header.version);
    if (!version.ok() && f.header.type != FrameType::kRefuse) {
      Lost(s, "protocol error from the secondary: " + version.message());
      return false;
    }
    auto message = DecodePayload(f.header, f.payload);
    if (!message.ok()) {
      Lost(s, "protocol error from the secondary: " + message.status().message());
      return false;
    }
    if (const auto* ack = std::get_if<Ack>(&*message)) {
      if (!OnAck(s, *ack)) return false;
    } else if (const auto* pong = std::get_if<Pong>(&*message)) {
      std::lock_guard lock(mu_);
      std::uint64_t now = NowNanos();
      if (pong->timestamp <= now) {
        stats_.last_rtt_us = static_cast<std::int64_t>((now - pong->timestamp) / 1000);
      }
    } else if (const auto* ping = std::get_if<Ping>(&*message)) {
      Frame frame;
      EncodeFrame(Pong{ping->timestamp, ping->nonce}, &frame.head);
      std::lock_guard lock(mu_);
      if (session_ == s && state_ == SenderState::kReplicating) {
        queue_.push_back(std::move(frame));
        KickLocked(s);
      }
    } else if (const auto* refuse = std::get_if<Refuse>(&*message)) {
      Lost(s, std::string("the secondary ended the session (") + RefuseCodeName(refuse->code) +
                  "): " + refuse->reason);
      return false;
    } else if (const auto* bye = std::get_if<Bye>(&*message)) {
      Lost(s, "the secondary said BYE: " + bye->reason);
      return false;
    } else if (auto* chunk = std::get_if<ManifestChunk>(&*message)) {
      if (options_.on_manifest) options_.on_manifest(std::move(*chunk));
    } else {
      Lost(s, "protocol error from the secondary: unexpected " +
                  FrameTypeName(static_cast<std::uint8_t>(f.header.type)) + " frame");
      return false;
    }
  }
}

bool ReplicationSender::Impl::OnAck(const SessionPtr& s, const Ack& ack) {
  {
    std::unique_lock lock(mu_);
    if (session_ != s || state_ != SenderState::kReplicating) return false;
    if (ack.received >= next_seq_) {
      std::string reason = "protocol error from the secondary: ACK of sequence " +
                           std::to_string(ack.received) + " never sent (last is " +
                           std::to_string(next_seq_ - 1) + ")";
      lock.unlock();
      Lost(s, reason);
      return false;
    }
    auto now = Clock::now();
    bool progress = false;
    if (ack.received > received_) {
      if (!window_.empty() && ack.received >= window_.front().seq) {
        std::size_t i = ack.received - window_.front().seq;
        if (i < window_.size()) stats_.last_ack_latency_us = Micros(now - window_[i].submitted);
      }
      received_ = ack.received;
      progress = true;
    }
    if (ack.applied > applied_) {
      applied_ = ack.applied;
      progress = true;
    }
    if (ack.durable > durable_) {
      durable_ = ack.durable;
      progress = true;
    }
    while (!window_.empty() && window_.front().seq <= applied_) {
      in_flight_bytes_ -= window_.front().bytes;
      window_.pop_front();
    }
    if (!progress) return true;
    last_progress_ = now;
  }
  ack_cv_.notify_all();
  room_cv_.notify_all();
  return true;
}

void ReplicationSender::Impl::Tick(const SessionPtr& s) {
  auto self = shared_from_this();
  s->timer.expires_after(keepalive_);
  s->timer.async_wait([self, s](const boost::system::error_code& ec) {
    if (ec) return;
    self->Guard(s, "keepalive", [&] {
      std::string reason;
      {
        std::lock_guard lock(self->mu_);
        if (self->session_ != s || self->state_ != SenderState::kReplicating) return;
        auto now = Clock::now();
        const auto timeout = self->options_.ack_timeout;
        if (!self->window_.empty() && now - self->last_progress_ >= timeout) {
          reason = "no acknowledgement for " + std::to_string(Millis(now - self->last_progress_)) +
                   " ms with " + std::to_string(self->window_.size()) + " operations (" +
                   std::to_string(self->in_flight_bytes_) + " bytes) outstanding";
        } else if (now - self->last_rx_ >= timeout) {
          reason = "the secondary has been silent for " +
                   std::to_string(Millis(now - self->last_rx_)) + " ms";
        } else {
          Frame ping;
          EncodeFrame(Ping{NowNanos(), ++self->ping_nonce_}, &ping.head);
          self->queue_.push_back(std::move(ping));
          self->KickLocked(s);
        }
      }
      if (!reason.empty()) {
        self->Lost(s, reason);
        return;
      }
      self->Tick(s);
    });
  });
}

// Precondition: mu_ held.
void ReplicationSender::Impl::KickLocked(const SessionPtr& s) {
  if (s->writer_busy) return;
  s->writer_busy = true;
  asio::post(io_, [self = shared_from_this(), s] {
    self->Guard(s, "write", [&] { self->StartWrite(s); });
  });
}

void ReplicationSender::Impl::StartWrite(const SessionPtr& s) {
  std::size_t ops = 0;
  {
    std::lock_guard lock(mu_);
    if (session_ != s || state_ != SenderState::kReplicating || queue_.empty()) {
      s->writer_busy = false;
      drain_cv_.notify_all();
      return;
    }
    s->batch.clear();
    std::size_t bytes = 0;
    while (!queue_.empty() && s->batch.size() < kMaxBatchFrames && bytes < kMaxBatchBytes) {
      bytes += queue_.front().head.size() + queue_.front().data.size();
      ops += queue_.front().is_op ? 1 : 0;
      s->batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  s->buffers.clear();
  for (const Frame& f : s->batch) {
    s->buffers.emplace_back(f.head.data(), f.head.size());
    if (!f.data.empty()) s->buffers.emplace_back(f.data.data(), f.data.size());
  }
  auto self = shared_from_this();
  asio::async_write(s->socket, s->buffers,
                    [self, s, ops](const boost::system::error_code& ec, std::size_t n) {
                      self->Guard(s, "write", [&] {
                        if (ec) {
                          {
                            std::lock_guard lock(self->mu_);
                            s->writer_busy = false;
                          }
                          self->drain_cv_.notify_all();
                          if (ec != asio::error::operation_aborted) {
                            self->Lost(s, "write failed: " + ec.message());
                          }
                          return;
                        }
                        s->batch.clear();
                        {
                          std::lock_guard lock(self->mu_);
                          self->stats_.bytes_sent += n;
                          self->stats_.ops_sent += ops;
                        }
                        self->StartWrite(s);
                      });
                    });
}

void ReplicationSender::Impl::Lost(const SessionPtr& s, const std::string& reason) {
  PeerLost info;
  {
    std::lock_guard lock(mu_);
    if (!s || session_ != s || state_ != SenderState::kReplicating || stopping_) return;
    state_ = SenderState::kLost;
    lost_reported_ = false;
    stats_.peers_lost++;
    stats_.last_error = reason;
    stats_.ops_unreplicated += window_.size();
    info.reason = reason;
    info.last_applied = applied_;
    info.unapplied.reserve(window_.size());
    for (Pending& p : window_) {
      info.unapplied.push_back(PeerLost::Unapplied{p.seq, p.dir_index, std::move(p.meta)});
    }
    window_.clear();
    in_flight_bytes_ = 0;
    queue_.clear();
  }
  Log(LogLevel::kWarning, "peer " + peer_text_ + " lost: " + reason + " (" +
                              std::to_string(info.unapplied.size()) +
                              " operations not acknowledged as applied)");
  asio::post(io_, [self = shared_from_this(), s] { self->Close(s); });
  if (options_.on_peer_lost) {
    try {
      options_.on_peer_lost(info);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string("on_peer_lost threw: ") + e.what());
    } catch (...) {
      Log(LogLevel::kError, "on_peer_lost threw");
    }
  }
  {
    std::lock_guard lock(mu_);
    lost_reported_ = true;
  }
  ack_cv_.notify_all();
  room_cv_.notify_all();
  drain_cv_.notify_all();
}

void ReplicationSender::Impl::Close(const SessionPtr& s) {
  boost::system::error_code ignored;
  s->socket.shutdown(tcp::socket::shutdown_both, ignored);
  s->socket.close(ignored);
  s->timer.cancel();
  if (s->connect_done) FailConnect(s, Status::Failed("sender stopped"));
}

void ReplicationSender::Impl::Stop() {
  SessionPtr s;
  {
    std::unique_lock lock(mu_);
    if (state_ == SenderState::kStopped) return;
    s = session_;
    stopping_ = true;
    if (state_ == SenderState::kReplicating && s) {
      // Queued frames go first, then BYE; give them a moment, not forever.
      Frame bye;
      EncodeFrame(Bye{"primary stopping replication"}, &bye.head);
      queue_.push_back(std::move(bye));
      KickLocked(s);
      drain_cv_.wait_for(lock, kStopFlush, [&] {
        return session_ != s || state_ != SenderState::kReplicating ||
               (queue_.empty() && !s->writer_busy);
      });
    }
    state_ = SenderState::kStopped;
    session_ = nullptr;
    queue_.clear();
    window_.clear();
    in_flight_bytes_ = 0;
  }
  ack_cv_.notify_all();
  room_cv_.notify_all();
  if (s) {
    auto closed = std::make_shared<std::promise<void>>();
    auto done = closed->get_future();
    asio::post(io_, [self = shared_from_this(), s, closed] {
      self->Close(s);
      closed->set_value();
    });
    done.wait_for(std::chrono::seconds(5));
  }
  Log(LogLevel::kInfo, "replication sender stopped");
}

// ---------------------------------------------------------------- sink

std::uint64_t ReplicationSender::Impl::SubmitTo(std::uint8_t dir_index, Operation op) {
  if (op.kind != OpKind::kWrite || op.data.size() <= kMaxOpData) {
    return SubmitOne(dir_index, std::move(op));
  }
  // A write the wire cannot carry in one frame travels as consecutive
  // frames; cumulative acks make the last ticket cover them all.
  std::uint64_t ticket = 0;
  for (std::size_t at = 0; at < op.data.size(); at += kMaxOpData) {
    Operation part = op;
    part.data = op.data.substr(at, kMaxOpData);
    part.offset = op.offset + at;
    part.length = part.data.size();
    ticket = SubmitOne(dir_index, std::move(part));
  }
  return ticket;
}

std::uint64_t ReplicationSender::Impl::SubmitOne(std::uint8_t dir_index, Operation op) {
  // Encoding happens outside the lock, on the caller's thread; the sequence
  // is stamped once it is known.
  Frame frame;
  frame.is_op = true;
  Status encoded = EncodeOpPrefix(0, dir_index, op, &frame.head);
  std::size_t bytes = frame.head.size() + op.data.size();
  const std::size_t data_size = op.data.size();
  if (encoded.ok()) {
    if (op.data.size() <= kInlineData) {
      frame.head.append(op.data);
      op.data.clear();
    } else {
      frame.data = std::move(op.data);
    }
  }
  op.data.clear();
  op.data.shrink_to_fit();
  // What PeerLost reports of a write: where and how much, without the bytes.
  if (op.kind == OpKind::kWrite) op.length = data_size;
  const bool barrier = op.IsDurabilityBarrier();

  std::unique_lock lock(mu_);
  if (!encoded.ok()) {
    std::uint64_t seq = next_seq_++;
    stats_.ops_submitted++;
    stats_.ops_unreplicated++;
    SessionPtr s = state_ == SenderState::kReplicating ? session_ : nullptr;
    lock.unlock();
    if (options_.on_unreplicated) options_.on_unreplicated(dir_index, op);
    if (s) {
      Lost(s, std::string("operation ") + OpKindName(op.kind) + " '" + op.path.substr(0, 200) +
                  "' cannot be replicated: " + encoded.message());
    }
    return seq;
  }
  auto full = [&] {
    return !window_.empty() && (window_.size() >= options_.window_ops ||
                                in_flight_bytes_ + bytes > options_.window_bytes);
  };
  // Backpressure: wait for room as long as the secondary makes progress.
  // A secondary that acknowledges nothing for ack_timeout is lost, here
  // as in the keepalive tick, so that Submit() never hangs on a dead peer.
  while (state_ == SenderState::kReplicating && full()) {
    const auto deadline = last_progress_ + options_.ack_timeout;
    if (room_cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
        state_ == SenderState::kReplicating && full() &&
        Clock::now() >= last_progress_ + options_.ack_timeout) {
      SessionPtr s = session_;
      lock.unlock();
      Lost(s, "no acknowledgement for " + std::to_string(options_.ack_timeout.count()) +
                  " ms with the window full");
      lock.lock();
    }
  }
  std::uint64_t seq = next_seq_++;
  stats_.ops_submitted++;
  if (state_ != SenderState::kReplicating) {
    stats_.ops_unreplicated++;
    lock.unlock();
    if (options_.on_unreplicated) options_.on_unreplicated(dir_index, op);
    return seq;
  }
  StampSequence(seq, frame.head.data());
  auto now = Clock::now();
  if (window_.empty()) last_progress_ = now;  // the ack clock starts with the first outstanding op
  window_.push_back(Pending{seq, dir_index, bytes, now, std::move(op), barrier});
  in_flight_bytes_ += bytes;
  queue_.push_back(std::move(frame));
  KickLocked(session_);
  return seq;
}

Status ReplicationSender::Impl::Wait(std::uint64_t ticket) {
  std::unique_lock lock(mu_);
  const auto deadline = Clock::now() + options_.ack_timeout;
  for (;;) {
    if (state_ != SenderState::kReplicating) {
      // While on_peer_lost runs (recording what is dirty), hold on: the
      // caller must not acknowledge before the loss is accounted for.
      if (state_ == SenderState::kLost && !lost_reported_) {
        ack_cv_.wait(lock);
        continue;
      }
      return Status::Ok();
    }
    if (ticket == 0 || ticket >= next_seq_) {
      return Status::InvalidArgument("unknown replication ticket " + std::to_string(ticket));
    }
    if (ticket < base_) return Status::Ok();  // an earlier session's or an unreplicated op
    // Operations leave the window once applied, which satisfies every mode
    // (the secondary acknowledges an fsync as durable when it applies it).
    if (window_.empty() || ticket < window_.front().seq) return Status::Ok();
    const Pending& p = window_[ticket - window_.front().seq];
    std::uint64_t have = p.barrier                                         ? durable_
                         : options_.mode == SenderOptions::Mode::kReceived ? received_
                                                                           : applied_;
    if (have >= ticket) return Status::Ok();
    if (ack_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (state_ != SenderState::kReplicating || ticket < base_ || window_.empty() ||
          ticket < window_.front().seq) {
        continue;
      }
      const Pending& q = window_[ticket - window_.front().seq];
      have = q.barrier                                         ? durable_
             : options_.mode == SenderOptions::Mode::kReceived ? received_
                                                               : applied_;
      if (have >= ticket) return Status::Ok();
      SessionPtr s = session_;
      lock.unlock();
      Lost(s, "sequence " + std::to_string(ticket) + " not acknowledged within " +
                  std::to_string(options_.ack_timeout.count()) + " ms");
      lock.lock();
    }
  }
}

SenderStats ReplicationSender::Impl::Stats() const {
  std::lock_guard lock(mu_);
  SenderStats s = stats_;
  s.state = state_;
  s.peer = peer_text_;
  s.next_sequence = next_seq_;
  s.in_flight_ops = window_.size();
  s.in_flight_bytes = in_flight_bytes_;
  s.acked_received = received_;
  s.acked_applied = applied_;
  s.acked_durable = durable_;
  return s;
}

// ---------------------------------------------------------------- facade

ReplicationSender::ReplicationSender(SenderOptions options) {
  asio::io_context* io = options.io;
  if (!io) {
    own_io_ = std::make_unique<OwnIo>();
    io = &own_io_->io;
    own_io_->thread = std::thread([this] {
      // Handlers catch their own exceptions; this loop is the last guard.
      for (;;) {
        try {
          own_io_->io.run();
          return;
        } catch (...) {
        }
      }
    });
  }
  impl_ = std::make_shared<Impl>(std::move(options), *io);
}

ReplicationSender::~ReplicationSender() {
  impl_->Stop();
  if (own_io_) {
    // Stop() closed the socket and cancelled the timer: the remaining
    // handlers complete at once and run() returns.
    own_io_->work.reset();
    own_io_->thread.join();
    own_io_.reset();
  }
}

Status ReplicationSender::Connect() { return impl_->Connect(); }
void ReplicationSender::SetGeneration(std::uint64_t generation, bool consistent) {
  impl_->SetGeneration(generation, consistent);
}
void ReplicationSender::Stop() { impl_->Stop(); }
std::uint64_t ReplicationSender::Submit(Operation op) { return impl_->SubmitTo(0, std::move(op)); }
std::uint64_t ReplicationSender::SubmitTo(std::uint8_t dir_index, Operation op) {
  return impl_->SubmitTo(dir_index, std::move(op));
}
Status ReplicationSender::Wait(std::uint64_t ticket) { return impl_->Wait(ticket); }
SenderStats ReplicationSender::Stats() const { return impl_->Stats(); }
SenderState ReplicationSender::state() const { return impl_->state(); }

}  // namespace hakit::replication
