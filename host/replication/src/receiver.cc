#include "hakit/replication/receiver.h"

// clang-format off: Boost 1.74 Asio uses std::exchange without including <utility>
#include <utility>
// clang-format on

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "hakit/common/log.h"
#include "hakit/replication/handshake_auth.h"
#include "hakit/replication/manifest.h"

namespace hakit::replication {

namespace asio = boost::asio;
using asio::ip::tcp;
using sdk::Status;
using Clock = std::chrono::steady_clock;

namespace {

// Each socket read asks for at least this much room: with 1 MiB writes in
// flight, fewer and larger reads keep the io thread's cost per byte low.
constexpr std::size_t kReadChunk = 1u << 20;
// OP frames at least this big have their data read straight into place.
constexpr std::size_t kDirectReadMin = 128 * 1024;
// A refused or failed connection gets this long to take its REFUSE frame.
constexpr auto kRefuseLinger = std::chrono::seconds(2);

std::string ShortHex(const ConfigHash& h) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 8; ++i) {
    out.push_back(kDigits[h[i] >> 4]);
    out.push_back(kDigits[h[i] & 15]);
  }
  return out;
}

std::int64_t Millis(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

Status ReceiverOptions::Validate() const {
  if (module.empty() || module.size() > 255) {
    return Status::InvalidArgument("replication receiver: module name must be 1..255 bytes");
  }
  if (node.size() > 255) {
    return Status::InvalidArgument("replication receiver: node name longer than 255 bytes");
  }
  if (auto ep = MakeEndpoint(listen_address, port); !ep.ok()) {
    return ep.status().WithContext("replication receiver: listen address");
  }
  if (root_fds.empty() || root_fds.size() > 256) {
    return Status::InvalidArgument("replication receiver: 1..256 replicated dirs needed, got " +
                                   std::to_string(root_fds.size()));
  }
  for (std::size_t i = 0; i < root_fds.size(); ++i) {
    if (root_fds[i] < 0) {
      return Status::InvalidArgument("replication receiver: replicated dir " + std::to_string(i) +
                                     " has no descriptor");
    }
  }
  if (idle_timeout.count() <= 0 || handshake_timeout.count() <= 0) {
    return Status::InvalidArgument("replication receiver: timeouts must be positive");
  }
  if (max_backlog_bytes == 0) {
    return Status::InvalidArgument("replication receiver: max_backlog_bytes is 0");
  }
  return Status::Ok();
}

const char* ReceiverStateName(ReceiverState state) {
  switch (state) {
    case ReceiverState::kStopped:
      return "stopped";
    case ReceiverState::kListening:
      return "listening";
    case ReceiverState::kConnected:
      return "connected";
    case ReceiverState::kFailed:
      return "failed";
  }
  return "unknown";
}

class ReplicationReceiver::Impl {
 public:
  explicit Impl(ReceiverOptions options) : options_(std::move(options)) {}
  ~Impl() { Stop(); }

  Status Start();
  void Stop();
  std::uint16_t port() const { return port_.load(); }
  void ClearFailure() {
    std::lock_guard lock(mu_);
    failed_ = false;
    failure_.clear();
  }
  void SetGeneration(std::uint64_t generation, bool consistent) {
    std::lock_guard lock(mu_);
    options_.generation = generation;
    options_.consistent = consistent;
  }
  ReceiverStats Stats() const;

 private:
  // What the applier reports back to a session: cumulative sequences.
  // Written by the io thread (received) and the applier (applied, durable),
  // each update after the one it implies, so that a reader loading durable,
  // then applied, then received always sees durable <= applied <= received.
  struct Counters {
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> applied{0};
    std::atomic<std::uint64_t> durable{0};
    // Set while an ACK send is posted to the io thread: the applier posts
    // once per burst, not once per operation.
    std::atomic<bool> ack_post_pending{false};
  };

  // One accepted connection; io thread only, except the atomics.
  struct Session {
    explicit Session(asio::io_context& io) : socket(io), timer(io) {}
    tcp::socket socket;
    asio::steady_timer timer;  // handshake deadline, then idle watchdog, then refuse linger
    FrameReader reader{kReadChunk + 64 * 1024};
    std::string peer;
    bool handshaken = false;
    // With a key: the HELLO answered, waiting for the primary's AUTH.
    std::optional<Hello> pending_hello;
    Nonce ack_nonce{};
    bool closed = false;
    bool closing = false;  // REFUSE/BYE queued: read nothing more
    std::string end_reason;
    std::shared_ptr<Counters> counters = std::make_shared<Counters>();
    std::uint64_t first = 0;     // HELLO's first sequence
    std::uint64_t expected = 0;  // next OP sequence; 0 = the session's first
    Clock::time_point last_rx;
    bool read_paused = false;
    // Outgoing frames; ACKs are built when the write starts so that each
    // carries the latest counters.
    std::deque<std::string> out;
    std::vector<std::string> writing;
    std::vector<asio::const_buffer> buffers;
    bool write_busy = false;
    bool ack_wanted = false;
    Ack last_ack{};
    // OPs decoded from the current read, handed to the applier together.
    std::vector<OpFrame> decoded;
    std::size_t decoded_bytes = 0;
  };
  using SessionPtr = std::shared_ptr<Session>;

  // The applier holds a session weakly: its socket is only ever released
  // on the io thread.
  struct Item {
    std::weak_ptr<Session> session;
    std::shared_ptr<Counters> counters;
    OpFrame frame;
    std::size_t bytes = 0;
  };

  void Log(LogLevel level, const std::string& message) {
    if (options_.logger) {
      options_.logger->Log(level, "replication " + options_.module + ": " + message);
    }
  }
  template <typename F>
  void Guard(const SessionPtr& s, const char* what, F&& body) noexcept {
    try {
      body();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string(what) + ": unexpected exception: " + e.what());
      if (s) {
        try {
          EndSession(s, std::string("internal error in ") + what + ": " + e.what());
        } catch (...) {
        }
      }
    } catch (...) {
      Log(LogLevel::kError, std::string(what) + ": unexpected exception");
    }
  }

  void Accept();
  void OnAccepted(const SessionPtr& s);
  void Read(const SessionPtr& s);
  void ReadMore(const SessionPtr& s);
  bool StartDirectRead(const SessionPtr& s);
  void DirectRead(const SessionPtr& s, std::shared_ptr<OpFrame> direct, std::size_t have,
                  std::size_t frame_bytes);
  bool ProcessFrames(const SessionPtr& s);
  bool OnHello(const SessionPtr& s, const Hello& hello);
  bool OnAuth(const SessionPtr& s, const Auth& auth);
  // The handshake succeeded: `s` becomes the session.
  void Accept(const SessionPtr& s, const Hello& hello, const HelloAck* ack);
  bool OnOp(const SessionPtr& s, OpFrame&& frame, std::size_t frame_bytes);
  void FlushDecoded(const SessionPtr& s);
  void Watchdog(const SessionPtr& s);
  void Send(const SessionPtr& s, std::string frame);
  void SendAck(const SessionPtr& s);
  void PumpWrites(const SessionPtr& s);
  void Refuse(SessionPtr s, RefuseCode code,
              const std::string& reason);                    // by value: s may be session_
  void EndSession(SessionPtr s, const std::string& reason);  // by value: s may be session_
  void ResumeReading();
  void ApplierLoop();
  void FailApply(const Item& item, const Status& status);
  // Describes replicated dir `item`'s tree on a thread of its own and sends
  // it in MANIFEST frames to the session that asked.
  void StartManifest(const Item& item);

  ReceiverOptions options_;  // identity under mu_ (SetGeneration)
  // Declared before everything holding sockets so that it is destroyed last.
  asio::io_context io_{1};
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  tcp::acceptor acceptor_{io_};
  std::thread io_thread_;
  std::thread applier_thread_;
  std::atomic<std::uint16_t> port_{0};
  bool started_ = false;  // Start/Stop caller only

  // io thread only.
  SessionPtr session_;          // the accepted primary, if any
  std::set<SessionPtr> conns_;  // every open connection, for Stop()

  mutable std::mutex mu_;
  std::condition_variable cv_;  // applier: work or stop
  std::deque<Item> queue_;
  std::size_t backlog_bytes_ = 0;
  bool stopping_ = false;
  bool failed_ = false;
  std::string failure_;
  bool reads_paused_ = false;
  std::string peer_;  // current primary for Stats()
  std::shared_ptr<Counters> stats_counters_;
  ReceiverStats stats_;
  std::vector<std::thread> manifest_threads_;  // under mu_
  std::atomic<bool> manifest_abort_{false};
};

// ---------------------------------------------------------------- lifecycle

Status ReplicationReceiver::Impl::Start() {
  if (started_) return Status::InvalidArgument("replication receiver already started");
  if (Status s = options_.Validate(); !s.ok()) return s;
  auto endpoint = MakeEndpoint(options_.listen_address, options_.port);
  boost::system::error_code ec;
  acceptor_.open(endpoint->protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(*endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return Status::IoError("replication receiver: cannot listen on " + EndpointText(*endpoint) +
                           ": " + ec.message());
  }
  port_ = acceptor_.local_endpoint(ec).port();
  started_ = true;
  {
    std::lock_guard lock(mu_);
    stats_.state = ReceiverState::kListening;
  }
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  Accept();
  io_thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (...) {  // handlers catch their own; this is the last guard
      }
    }
  });
  applier_thread_ = std::thread([this] { ApplierLoop(); });
  Log(LogLevel::kInfo, "listening for the primary on " + options_.listen_address + ":" +
                           std::to_string(port_.load()));
  return Status::Ok();
}

void ReplicationReceiver::Impl::Stop() {
  if (!started_) return;
  started_ = false;
  manifest_abort_ = true;
  auto closed = std::make_shared<std::promise<void>>();
  auto done = closed->get_future();
  asio::post(io_, [this, closed] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    auto conns = conns_;
    for (const auto& s : conns) EndSession(s, "receiver stopping");
    closed->set_value();
  });
  done.wait_for(std::chrono::seconds(5));
  work_.reset();
  io_.stop();
  io_thread_.join();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  applier_thread_.join();  // after the operations already received
  std::vector<std::thread> manifests;
  {
    std::lock_guard lock(mu_);
    manifests.swap(manifest_threads_);
  }
  for (auto& t : manifests) t.join();
  {
    std::lock_guard lock(mu_);
    stats_.state = ReceiverState::kStopped;
    stats_counters_ = nullptr;
  }
  session_ = nullptr;
  conns_.clear();
  Log(LogLevel::kInfo, "replication receiver stopped");
}

// ---------------------------------------------------------------- connections

void ReplicationReceiver::Impl::Accept() {
  auto s = std::make_shared<Session>(io_);
  acceptor_.async_accept(s->socket, [this, s](const boost::system::error_code& ec) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    Guard(nullptr, "accept", [&] {
      if (ec) {
        Log(LogLevel::kWarning, "accept failed: " + ec.message());
      } else {
        OnAccepted(s);
      }
    });
    Accept();
  });
}

void ReplicationReceiver::Impl::OnAccepted(const SessionPtr& s) {
  boost::system::error_code ec;
  auto remote = s->socket.remote_endpoint(ec);
  s->peer = ec ? std::string("?") : EndpointText(remote);
  conns_.insert(s);
  if (Status st = TuneSocket(s->socket, options_.transport); !st.ok()) {
    EndSession(s, st.message());
    return;
  }
  s->last_rx = Clock::now();
  s->timer.expires_after(options_.handshake_timeout);
  s->timer.async_wait([this, s](const boost::system::error_code& ec) {
    if (ec || s->handshaken) return;
    Guard(s, "handshake", [&] {
      EndSession(s,
                 "no HELLO within " + std::to_string(options_.handshake_timeout.count()) + " ms");
    });
  });
  Read(s);
}

void ReplicationReceiver::Impl::Read(const SessionPtr& s) {
  if (s->closed || s->closing) return;
  auto space = s->reader.PrepareRead(kReadChunk);
  s->socket.async_read_some(asio::buffer(space.data(), space.size()),
                            [this, s](const boost::system::error_code& ec, std::size_t n) {
                              if (ec == asio::error::operation_aborted) return;
                              Guard(s, "read", [&] {
                                if (ec) {
                                  EndSession(s, ec == asio::error::eof
                                                    ? "the primary closed the connection"
                                                    : "read failed: " + ec.message());
                                  return;
                                }
                                s->last_rx = Clock::now();
                                s->reader.CommitRead(n);
                                {
                                  std::lock_guard lock(mu_);
                                  stats_.bytes_received += n;
                                }
                                bool go_on = ProcessFrames(s);
                                FlushDecoded(s);
                                if (!go_on || s->closed || s->closing) return;
                                if (s->handshaken) SendAck(s);  // one cumulative ACK per read
                                if (s->handshaken && StartDirectRead(s)) return;
                                ReadMore(s);
                              });
                            });
}

// Reads the rest of a taken-over OP frame's data, chunk by chunk so that
// the idle watchdog sees a slow but live primary.
void ReplicationReceiver::Impl::DirectRead(const SessionPtr& s, std::shared_ptr<OpFrame> direct,
                                           std::size_t have, std::size_t frame_bytes) {
  std::string& data = direct->op.data;
  if (have == data.size()) {
    bool go_on = OnOp(s, std::move(*direct), frame_bytes);
    FlushDecoded(s);
    if (!go_on || s->closed || s->closing) return;
    SendAck(s);
    ReadMore(s);
    return;
  }
  s->socket.async_read_some(
      asio::buffer(data.data() + have, data.size() - have),
      [this, s, direct, have, frame_bytes](const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::operation_aborted) return;
        Guard(s, "read", [&] {
          if (ec) {
            EndSession(s, ec == asio::error::eof ? "the primary closed the connection"
                                                 : "read failed: " + ec.message());
            return;
          }
          s->last_rx = Clock::now();
          {
            std::lock_guard lock(mu_);
            stats_.bytes_received += n;
          }
          DirectRead(s, direct, have + n, frame_bytes);
        });
      });
}

void ReplicationReceiver::Impl::ReadMore(const SessionPtr& s) {
  {
    std::lock_guard lock(mu_);
    if (backlog_bytes_ > options_.max_backlog_bytes) {
      // The applier resumes us (ResumeReading) once it catches up.
      s->read_paused = true;
      reads_paused_ = true;
      return;
    }
  }
  Read(s);
}

// A large write whose fields are buffered is taken over from the reader:
// its data is read from the socket straight into the operation, saving a
// copy of every byte on the path that carries most of them.
bool ReplicationReceiver::Impl::StartDirectRead(const SessionPtr& s) {
  auto header = s->reader.PendingHeader();
  if (!header || header->type != FrameType::kOp || header->length < kDirectReadMin) return false;
  auto payload = s->reader.PendingPayload();
  if (payload.size() < std::min<std::size_t>(header->length, kMaxOpPrefix)) return false;
  std::size_t offset = 0;
  auto frame = DecodeOpPrefix(*header, payload, &offset);
  if (!frame.ok()) {
    Refuse(s, RefuseCode::kProtocol, frame.status().message());
    return true;
  }
  const std::size_t size = header->length - offset;
  const std::size_t have = std::min(payload.size() - offset, size);
  auto direct = std::make_shared<OpFrame>(std::move(*frame));
  direct->op.data.resize(size);
  std::memcpy(direct->op.data.data(), payload.data() + offset, have);
  s->reader.ConsumePending(offset + have);
  DirectRead(s, std::move(direct), have, kHeaderSize + header->length);
  return true;
}

// Handles every whole frame buffered; false when the session is ending.
bool ReplicationReceiver::Impl::ProcessFrames(const SessionPtr& s) {
  for (;;) {
    auto next = s->reader.Next();
    if (!next.ok()) {
      Refuse(s, RefuseCode::kProtocol, next.status().message());
      return false;
    }
    if (!*next) return true;
    const RawFrame& f = **next;
    const std::string type = FrameTypeName(static_cast<std::uint8_t>(f.header.type));
    if (Status v = CheckVersion(f.header.version); !v.ok()) {
      Refuse(s, s->handshaken ? RefuseCode::kProtocol : RefuseCode::kVersion, v.message());
      return false;
    }
    auto message = DecodePayload(f.header, f.payload);
    if (!message.ok()) {
      Refuse(s, RefuseCode::kProtocol, message.status().message());
      return false;
    }
    if (!s->handshaken && s->pending_hello) {
      const auto* auth = std::get_if<Auth>(&*message);
      if (!auth) {
        Refuse(s, RefuseCode::kAuth, "expected AUTH, got " + type);
        return false;
      }
      if (!OnAuth(s, *auth)) return false;
      continue;
    }
    if (!s->handshaken) {
      const auto* hello = std::get_if<Hello>(&*message);
      if (!hello) {
        Refuse(s, RefuseCode::kProtocol, "expected HELLO, got " + type);
        return false;
      }
      if (!OnHello(s, *hello)) return false;
      continue;
    }
    if (auto* op = std::get_if<OpFrame>(&*message)) {
      if (!OnOp(s, std::move(*op), kHeaderSize + f.header.length)) return false;
    } else if (const auto* ping = std::get_if<Ping>(&*message)) {
      std::string pong;
      EncodeFrame(Pong{ping->timestamp, ping->nonce}, &pong);
      Send(s, std::move(pong));
    } else if (const auto* bye = std::get_if<Bye>(&*message)) {
      EndSession(s, "the primary said BYE: " + bye->reason);
      return false;
    } else {
      Refuse(s, RefuseCode::kProtocol, "unexpected " + type + " frame");
      return false;
    }
  }
}

bool ReplicationReceiver::Impl::OnHello(const SessionPtr& s, const Hello& hello) {
  const std::string who =
      "primary " + (hello.node.empty() ? s->peer : hello.node + " at " + s->peer);
  if (hello.role != Role::kPrimary) {
    Refuse(s, RefuseCode::kProtocol, who + " does not announce itself as primary");
    return false;
  }
  if (hello.module != options_.module) {
    Refuse(s, RefuseCode::kModule,
           "this port replicates module '" + options_.module + "', " + who + " sent module '" +
               hello.module + "'");
    return false;
  }
  if (hello.config_hash != options_.config_hash) {
    Refuse(s, RefuseCode::kConfig,
           "configuration of module '" + options_.module + "' differs: " + who + " has " +
               ShortHex(hello.config_hash) + "..., this node " + ShortHex(options_.config_hash) +
               "...");
    return false;
  }
  HelloAck ack;
  std::string failure;
  {
    std::lock_guard lock(mu_);
    if (failed_) failure = failure_;
    ack.node = options_.node;
    ack.generation = options_.generation;
    ack.consistent = options_.consistent;
    ack.suspect = ack.consistent && options_.has_suspect && options_.has_suspect();
    ack.role = Role::kSecondary;
  }
  if (!failure.empty()) {
    Refuse(s, RefuseCode::kApplyFailed,
           "this node failed to apply an operation and is inconsistent: " + failure);
    return false;
  }
  if (options_.check_peer) {
    Status verdict;
    try {
      verdict = options_.check_peer(hello);
    } catch (const std::exception& e) {
      verdict = Status::Failed(std::string("generation check threw: ") + e.what());
    }
    if (!verdict.ok()) {
      Refuse(s, RefuseCode::kGeneration, verdict.message());
      return false;
    }
  }
  if (!options_.key.empty()) {
    // Nothing changes before the primary proves it holds the key.
    ack.nonce = s->ack_nonce = RandomNonce();
    ack.proof = HandshakeProof(options_.key, "hakit-repl-ack", hello.nonce, ack.nonce,
                               options_.module, ack.node);
    s->pending_hello = hello;
    std::string frame;
    EncodeFrame(ack, &frame);
    Send(s, std::move(frame));
    return true;
  }
  Accept(s, hello, &ack);
  return true;
}

bool ReplicationReceiver::Impl::OnAuth(const SessionPtr& s, const Auth& auth) {
  const Hello hello = *s->pending_hello;
  Proof expected = HandshakeProof(options_.key, "hakit-repl-auth", s->ack_nonce, hello.nonce,
                                  options_.module, hello.node);
  if (!SameProof(expected, auth.proof)) {
    Refuse(s, RefuseCode::kAuth,
           "primary " + (hello.node.empty() ? s->peer : hello.node + " at " + s->peer) +
               " did not prove it holds this cluster's key (another cluster, or a different "
               "conf/cluster.key)");
    return false;
  }
  s->pending_hello.reset();
  Accept(s, hello, nullptr);
  return true;
}

void ReplicationReceiver::Impl::Accept(const SessionPtr& s, const Hello& hello,
                                       const HelloAck* ack) {
  const std::string who =
      "primary " + (hello.node.empty() ? s->peer : hello.node + " at " + s->peer);
  if (session_ && session_ != s) {
    EndSession(session_, "replaced by a new connection from " + who);
  }
  session_ = s;
  s->handshaken = true;
  s->first = hello.first_sequence;
  s->counters->received = s->counters->applied = s->counters->durable = hello.first_sequence - 1;
  s->last_ack = Ack{hello.first_sequence - 1, hello.first_sequence - 1, hello.first_sequence - 1};
  s->timer.cancel();
  {
    std::lock_guard lock(mu_);
    stats_.sessions_accepted++;
    stats_.state = failed_ ? ReceiverState::kFailed : ReceiverState::kConnected;
    peer_ = s->peer;
    stats_counters_ = s->counters;
  }
  if (ack != nullptr) {
    std::string frame;
    EncodeFrame(*ack, &frame);
    Send(s, std::move(frame));
  }
  Log(LogLevel::kInfo, "replicating from " + who + " (generation " +
                           std::to_string(hello.generation) + ", from sequence " +
                           std::to_string(hello.first_sequence) + ")");
  if (options_.on_session_start) {
    try {
      options_.on_session_start(s->peer, hello);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string("on_session_start threw: ") + e.what());
    } catch (...) {
      Log(LogLevel::kError, "on_session_start threw");
    }
  }
  Watchdog(s);
}

bool ReplicationReceiver::Impl::OnOp(const SessionPtr& s, OpFrame&& frame,
                                     std::size_t frame_bytes) {
  if (s->expected == 0 ? frame.sequence < s->first : frame.sequence != s->expected) {
    Refuse(s, RefuseCode::kProtocol,
           "OP sequence " + std::to_string(frame.sequence) + " out of order, expected " +
               (s->expected == 0 ? "at least " + std::to_string(s->first)
                                 : std::to_string(s->expected)));
    return false;
  }
  if (frame.dir_index >= options_.root_fds.size()) {
    Refuse(s, RefuseCode::kProtocol,
           "OP sequence " + std::to_string(frame.sequence) + " names replicated dir " +
               std::to_string(frame.dir_index) + ", this node has " +
               std::to_string(options_.root_fds.size()));
    return false;
  }
  s->expected = frame.sequence + 1;
  s->decoded_bytes += frame_bytes;
  s->decoded.push_back(std::move(frame));
  return true;
}

// Hands the OPs of one read to the applier under one lock.
void ReplicationReceiver::Impl::FlushDecoded(const SessionPtr& s) {
  if (s->decoded.empty()) return;
  // Receipt first: the applier may acknowledge them as applied at once.
  s->counters->received = s->decoded.back().sequence;
  {
    std::lock_guard lock(mu_);
    if (!failed_ && !stopping_) {
      for (OpFrame& f : s->decoded) {
        std::size_t bytes = kHeaderSize + kOpFixedSize + f.op.data.size() + f.op.path.size();
        backlog_bytes_ += bytes;
        queue_.push_back(Item{s, s->counters, std::move(f), bytes});
      }
    }
    stats_.ops_received += s->decoded.size();
  }
  s->decoded.clear();
  s->decoded_bytes = 0;
  cv_.notify_one();
}

void ReplicationReceiver::Impl::Watchdog(const SessionPtr& s) {
  auto tick = std::clamp(options_.idle_timeout / 4, std::chrono::milliseconds(5),
                         std::chrono::milliseconds(1000));
  s->timer.expires_after(tick);
  s->timer.async_wait([this, s](const boost::system::error_code& ec) {
    if (ec || s->closed || s->closing) return;
    Guard(s, "watchdog", [&] {
      auto silent = Clock::now() - s->last_rx;
      // A paused reader hears nothing by choice; that is not the primary's silence.
      if (!s->read_paused && silent >= options_.idle_timeout) {
        EndSession(s, "the primary has been silent for " + std::to_string(Millis(silent)) + " ms");
        return;
      }
      Watchdog(s);
    });
  });
}

// ---------------------------------------------------------------- writes

void ReplicationReceiver::Impl::Send(const SessionPtr& s, std::string frame) {
  s->out.push_back(std::move(frame));
  PumpWrites(s);
}

void ReplicationReceiver::Impl::SendAck(const SessionPtr& s) {
  s->ack_wanted = true;
  PumpWrites(s);
}

void ReplicationReceiver::Impl::PumpWrites(const SessionPtr& s) {
  if (s->write_busy || s->closed) return;
  s->writing.clear();
  while (!s->out.empty()) {
    s->writing.push_back(std::move(s->out.front()));
    s->out.pop_front();
  }
  if (s->ack_wanted && !s->closing) {
    s->ack_wanted = false;
    Ack ack;
    ack.durable = s->counters->durable.load();
    ack.applied = s->counters->applied.load();
    ack.received = s->counters->received.load();
    if (!(ack == s->last_ack)) {
      s->last_ack = ack;
      s->writing.emplace_back();
      EncodeFrame(ack, &s->writing.back());
    }
  }
  if (s->writing.empty()) {
    if (s->closing) EndSession(s, s->end_reason);
    return;
  }
  s->buffers.clear();
  for (const auto& w : s->writing) s->buffers.emplace_back(w.data(), w.size());
  s->write_busy = true;
  asio::async_write(s->socket, s->buffers,
                    [this, s](const boost::system::error_code& ec, std::size_t) {
                      s->write_busy = false;
                      if (ec == asio::error::operation_aborted) return;
                      Guard(s, "write", [&] {
                        if (ec) {
                          EndSession(s, "write failed: " + ec.message());
                          return;
                        }
                        PumpWrites(s);
                      });
                    });
}

void ReplicationReceiver::Impl::Refuse(SessionPtr s, RefuseCode code, const std::string& reason) {
  if (s->closed || s->closing) return;
  std::string what = s->handshaken ? "ending the session with " : "refusing ";
  Log(LogLevel::kWarning, what + s->peer + " (" + RefuseCodeName(code) + "): " + reason);
  {
    std::lock_guard lock(mu_);
    if (!s->handshaken) stats_.connections_refused++;
    stats_.last_error = reason;
  }
  std::string frame;
  EncodeFrame(replication::Refuse{code, reason}, &frame);
  s->closing = true;
  s->end_reason = std::string(RefuseCodeName(code)) + ": " + reason;
  s->out.push_back(std::move(frame));
  PumpWrites(s);
  // The peer gets a moment to read the REFUSE, not more.
  s->timer.expires_after(kRefuseLinger);
  s->timer.async_wait([this, s](const boost::system::error_code& ec) {
    if (ec) return;
    Guard(s, "refuse", [&] { EndSession(s, s->end_reason); });
  });
}

void ReplicationReceiver::Impl::EndSession(SessionPtr s, const std::string& reason) {
  if (s->closed) return;
  s->closed = true;
  boost::system::error_code ignored;
  s->socket.shutdown(tcp::socket::shutdown_both, ignored);
  s->socket.close(ignored);
  s->timer.cancel();
  conns_.erase(s);
  if (session_ != s) {
    if (!s->closing) Log(LogLevel::kInfo, "connection from " + s->peer + " closed: " + reason);
    return;
  }
  session_ = nullptr;
  {
    std::lock_guard lock(mu_);
    peer_.clear();
    if (stats_.state == ReceiverState::kConnected) stats_.state = ReceiverState::kListening;
  }
  Log(LogLevel::kInfo, "session with the primary at " + s->peer + " ended: " + reason);
  if (options_.on_session_end) {
    try {
      options_.on_session_end(reason);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string("on_session_end threw: ") + e.what());
    } catch (...) {
      Log(LogLevel::kError, "on_session_end threw");
    }
  }
}

void ReplicationReceiver::Impl::ResumeReading() {
  {
    std::lock_guard lock(mu_);
    reads_paused_ = false;
  }
  for (const auto& s : conns_) {
    if (s->read_paused && !s->closed) {
      s->read_paused = false;
      s->last_rx = Clock::now();
      Read(s);
    }
  }
}

// ---------------------------------------------------------------- applier

void ReplicationReceiver::Impl::ApplierLoop() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything received is applied
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    const Operation& op = item.frame.op;
    Status status;
    try {
      if (options_.before_apply) options_.before_apply(item.frame.sequence, op);
      const int fd = options_.root_fds[item.frame.dir_index];
      status = options_.apply ? options_.apply(fd, op) : ApplyOperation(fd, op);
    } catch (const std::exception& e) {
      status = Status::Failed(std::string("apply threw: ") + e.what());
    } catch (...) {
      status = Status::Failed("apply threw");
    }
    if (!status.ok()) {
      FailApply(item, status);
      continue;
    }
    if (op.kind == OpKind::kSyncBegin) {
      if (options_.on_sync_begin) options_.on_sync_begin(item.frame.dir_index);
      StartManifest(item);
    } else if (op.kind == OpKind::kSyncEnd && options_.on_sync_end) {
      options_.on_sync_end(item.frame.dir_index, op.offset);
    }
    Counters& c = *item.counters;
    c.applied = item.frame.sequence;
    if (op.IsDurabilityBarrier()) c.durable = item.frame.sequence;
    bool resume = false;
    {
      std::lock_guard lock(mu_);
      backlog_bytes_ -= std::min(backlog_bytes_, item.bytes);
      stats_.ops_applied++;
      stats_.bytes_applied += op.data.size();
      if (reads_paused_ && backlog_bytes_ <= options_.max_backlog_bytes / 2) {
        reads_paused_ = false;
        resume = true;
      }
    }
    if (!c.ack_post_pending.exchange(true)) {
      asio::post(io_, [this, weak = item.session, counters = item.counters] {
        counters->ack_post_pending = false;
        SessionPtr s = weak.lock();
        if (!s) return;
        Guard(s, "ack", [&] {
          if (!s->closed && s == session_) SendAck(s);
        });
      });
    }
    if (resume) {
      asio::post(io_, [this] { Guard(nullptr, "resume", [&] { ResumeReading(); }); });
    }
  }
}

void ReplicationReceiver::Impl::StartManifest(const Item& item) {
  const std::uint8_t dir = item.frame.dir_index;
  const int root_fd = options_.root_fds[dir];
  const std::size_t zone = static_cast<std::size_t>(
      std::clamp<std::uint64_t>(item.frame.op.length, 4096, 64u << 20));
  const bool hash = (item.frame.op.flags & kSyncBeginNoHashes) == 0;
  auto post = [this, weak = item.session](ManifestChunk chunk) {
    std::string frame;
    if (!EncodeFrame(chunk, &frame).ok()) return;
    asio::post(io_, [this, weak, frame = std::move(frame)]() mutable {
      SessionPtr s = weak.lock();
      if (!s) return;
      Guard(s, "manifest", [&] {
        if (!s->closed && s == session_) Send(s, std::move(frame));
      });
    });
  };
  std::lock_guard lock(mu_);
  manifest_threads_.emplace_back([this, dir, root_fd, zone, hash, post] {
    ManifestChunk chunk;
    chunk.dir_index = dir;
    std::size_t entries = 0;
    Status s = DescribeTree(root_fd, zone, [&](ManifestEntry&& e) {
      if (manifest_abort_) return Status::Failed("receiver stopping");
      if (options_.suspect && e.IsRegular()) {
        for (const auto& [off, len] : options_.suspect(dir, e.path)) {
          if (len == 0) continue;
          for (std::uint64_t z = off / zone; z <= (off + len - 1) / zone; ++z) {
            e.suspect.push_back(z);
          }
        }
        std::sort(e.suspect.begin(), e.suspect.end());
        e.suspect.erase(std::unique(e.suspect.begin(), e.suspect.end()), e.suspect.end());
      }
      std::string one;
      EncodeManifestEntry(e, &one);
      if (chunk.data.size() + one.size() > kMaxManifestData && !chunk.data.empty()) {
        post(std::move(chunk));
        chunk = ManifestChunk{};
        chunk.dir_index = dir;
      }
      if (one.size() > kMaxManifestData) {
        return Status::Unsupported(e.path + ": too many zones for one description piece");
      }
      chunk.data += one;
      ++entries;
      return Status::Ok();
    }, hash);
    chunk.last = true;
    if (!s.ok()) {
      chunk.data.clear();
      chunk.error = s.message();
      Log(LogLevel::kError, "describing replicated dir " + std::to_string(dir) +
                                " for the primary failed: " + s.message());
    } else {
      Log(LogLevel::kInfo, "replicated dir " + std::to_string(dir) + " described for the primary (" +
                               std::to_string(entries) + " entries)");
    }
    post(std::move(chunk));
  });
}

void ReplicationReceiver::Impl::FailApply(const Item& item, const Status& status) {
  const Operation& op = item.frame.op;
  std::string where = "replicated dir " + std::to_string(item.frame.dir_index) + ", sequence " +
                      std::to_string(item.frame.sequence) + ", " + OpKindName(op.kind) + " '" +
                      op.path + "'";
  Status failure = status.WithContext("cannot apply (" + where + ")");
  {
    std::lock_guard lock(mu_);
    failed_ = true;
    failure_ = failure.message();
    stats_.last_error = failure.message();
    stats_.state = ReceiverState::kFailed;
    // Order is broken from here on: applying anything more would build a
    // tree that matches neither side.
    queue_.clear();
    backlog_bytes_ = 0;
  }
  Log(LogLevel::kError, failure.ToString() + "; this node's data is now inconsistent");
  asio::post(io_, [this, msg = failure.message()] {
    Guard(nullptr, "apply failure", [&] {
      if (session_) Refuse(session_, RefuseCode::kApplyFailed, msg);
    });
  });
  if (options_.on_apply_failed) {
    try {
      options_.on_apply_failed(failure);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string("on_apply_failed threw: ") + e.what());
    } catch (...) {
      Log(LogLevel::kError, "on_apply_failed threw");
    }
  }
}

ReceiverStats ReplicationReceiver::Impl::Stats() const {
  std::lock_guard lock(mu_);
  ReceiverStats s = stats_;
  if (failed_) s.state = ReceiverState::kFailed;
  s.peer = peer_;
  s.backlog_ops = queue_.size();
  s.backlog_bytes = backlog_bytes_;
  if (stats_counters_) {
    s.last_durable = stats_counters_->durable.load();
    s.last_applied = stats_counters_->applied.load();
    s.last_received = stats_counters_->received.load();
  }
  return s;
}

// ---------------------------------------------------------------- facade

ReplicationReceiver::ReplicationReceiver(ReceiverOptions options)
    : impl_(std::make_shared<Impl>(std::move(options))) {}
ReplicationReceiver::~ReplicationReceiver() { impl_->Stop(); }
Status ReplicationReceiver::Start() { return impl_->Start(); }
void ReplicationReceiver::Stop() { impl_->Stop(); }
std::uint16_t ReplicationReceiver::port() const { return impl_->port(); }
void ReplicationReceiver::ClearFailure() { impl_->ClearFailure(); }
void ReplicationReceiver::SetGeneration(std::uint64_t generation, bool consistent) {
  impl_->SetGeneration(generation, consistent);
}
ReceiverStats ReplicationReceiver::Stats() const { return impl_->Stats(); }

}  // namespace hakit::replication
