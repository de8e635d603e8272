// ReplicationSender: the primary's end of the replication connection, and
// the OperationSink the interceptor hands every change to.
//
// Submit() gives each operation the next sequence number and queues its
// frame in the same critical section, so that the order of Submit() calls is
// the order on the wire and hence the order the secondary applies. One Asio
// writer drains the queue, gathering every queued frame into one writev-style
// write (the payload of a large write is never copied). Acknowledgements are
// cumulative (wire.h): Wait(ticket) returns once the secondary has received
// (Mode::kReceived, async="second") or applied (Mode::kApplied,
// async="none") every sequence up to the ticket, or, for kFsync, made it
// durable.
//
// Backpressure: operations count against a window (bytes and operations)
// from Submit() until the secondary acknowledges them as *applied*, so the
// window also bounds the secondary's backlog. Submit() blocks while the
// window is full.
//
// Peer loss: the connection dropping, a refusal or malformed frame from the
// peer, no acknowledgement progress for `ack_timeout` while operations are
// outstanding, or no frame at all for `ack_timeout` (keepalive PINGs are
// answered) make the sender declare the peer lost, once per connection: it
// stops replicating, calls on_peer_lost with the operations that were not
// known to be applied (for the dirty map), and only then releases the
// threads in Wait(). From then on Submit() only counts operations and
// Wait() returns ok at once, until Connect() succeeds again. No Wait() and no
// Submit() blocks longer than ack_timeout (plus the on_peer_lost callback).
//
// Threading: Submit(), Wait(), Stats() and state() are thread-safe and may
// be called from any thread, but not from the io_context's thread (they may
// block). Connect() and Stop() block and must not be called from the
// io_context's thread nor from on_peer_lost. on_peer_lost runs on the
// io_context's thread or on a thread inside Wait()/Submit(); an exception
// it throws is caught and logged.
#pragma once

// clang-format off: Boost 1.74 Asio uses std::exchange without including <utility>
#include <utility>
// clang-format on

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "hakit/replication/operation.h"
#include "hakit/replication/transport.h"
#include "hakit/replication/wire.h"
#include "hakit/sdk/status.h"

namespace hakit {
class Logger;
}

namespace hakit::replication {

// What on_peer_lost receives.
struct PeerLost {
  std::string reason;
  // Highest sequence the secondary acknowledged as applied in the lost
  // session (everything up to it is on the secondary).
  std::uint64_t last_applied = 0;
  // The operations submitted to the lost session that were not acknowledged
  // as applied, in sequence order, without their data bytes (a write's size
  // is in `length`): what the primary must record as dirty.
  struct Unapplied {
    std::uint64_t seq = 0;
    std::uint8_t dir_index = 0;
    Operation op;
  };
  std::vector<Unapplied> unapplied;
};

struct SenderOptions {
  // Identity announced in HELLO; the receiver refuses another module or
  // configuration hash.
  std::string module;  // 1..255 bytes
  std::string node;    // this node's name, 0..255 bytes
  ConfigHash config_hash{};
  std::uint64_t generation = 0;  // this node's data generation
  bool consistent = true;        // this node's data is consistent

  // The cluster key: both ends prove they hold it (handshake_auth.h). Empty
  // = no authentication (tests of the protocol alone); the receiver must
  // then have none either.
  std::vector<std::uint8_t> key;
  // The secondary's replication endpoint: an IP literal and a TCP port.
  std::string peer_address;
  std::uint16_t peer_port = 0;

  // What Wait() waits for, kFsync aside (always "durable").
  enum class Mode { kReceived, kApplied };
  Mode mode = Mode::kApplied;

  // No acknowledgement progress for this long while operations are
  // outstanding, or silence from the peer this long, loses the peer; also
  // the bound of every Wait(). Default 30 s (the heartbeat timeout).
  std::chrono::milliseconds ack_timeout{30000};
  // TCP connect plus handshake. Default 10 s.
  std::chrono::milliseconds connect_timeout{10000};
  // PING period; 0 = ack_timeout / 5, clamped to [10 ms, 1 s]. Also the
  // resolution of the ack-progress watchdog.
  std::chrono::milliseconds keepalive_interval{0};

  // The window: operations submitted and not yet acknowledged as applied.
  // An operation bigger than window_bytes is let in when the window is
  // empty. Defaults 64 MiB and 4096 operations.
  std::size_t window_bytes = 64u << 20;
  std::size_t window_ops = 4096;

  TransportOptions transport;

  // A MANIFEST frame from the secondary (the answer to a kSyncBegin this
  // sender carried; sync.h collects it). On the io thread; must not block.
  std::function<void(ManifestChunk&&)> on_manifest;
  // See PeerLost; may be empty.
  std::function<void(const PeerLost&)> on_peer_lost;
  // An operation submitted while not replicating (idle, connecting, lost):
  // the secondary will not get it. Called on the submitting thread, with no
  // lock held, before SubmitTo() returns; the data may be gone (a write's
  // size is in `length`). Operations lost with a session go to on_peer_lost.
  std::function<void(std::uint8_t dir_index, const Operation&)> on_unreplicated;

  // The io_context to run on, run by exactly one thread; null = the sender
  // runs its own thread. A given io_context must outlive the sender.
  boost::asio::io_context* io = nullptr;
  Logger* logger = nullptr;  // may be null; must outlive the sender

  // InvalidArgument naming the first bad field, else ok.
  sdk::Status Validate() const;
};

enum class SenderState {
  kIdle,         // constructed, never connected
  kConnecting,   // Connect() in progress
  kReplicating,  // session established: operations go to the peer
  kLost,         // peer lost; operations are counted, not sent
  kStopped,      // Stop() called
};
const char* SenderStateName(SenderState state);

struct SenderStats {
  SenderState state = SenderState::kIdle;
  std::string peer;  // "address:port"
  std::uint64_t next_sequence = 1;
  std::uint64_t ops_submitted = 0;     // every Submit(), split writes counted per frame
  std::uint64_t ops_unreplicated = 0;  // submitted while not replicating or lost in flight
  std::uint64_t ops_sent = 0;          // written to the socket
  std::uint64_t bytes_sent = 0;        // every frame byte, pings included
  std::uint64_t in_flight_ops = 0;     // in the window
  std::uint64_t in_flight_bytes = 0;
  std::uint64_t acked_received = 0;  // cumulative sequences from the last ACK
  std::uint64_t acked_applied = 0;
  std::uint64_t acked_durable = 0;
  std::int64_t last_ack_latency_us = -1;  // Submit() to the ack of receipt, last ACK
  std::int64_t last_rtt_us = -1;          // PING to PONG
  std::uint64_t sessions = 0;             // handshakes that succeeded
  std::uint64_t peers_lost = 0;
  std::string last_error;  // why the peer was lost / connect failed
  std::string peer_node;   // from HELLO_ACK
  std::uint64_t peer_generation = 0;
  bool peer_consistent = false;
  bool peer_suspect = false;  // consistent except for zones it names (HelloAck::suspect)
};

class ReplicationSender : public OperationSink {
 public:
  explicit ReplicationSender(SenderOptions options);
  ~ReplicationSender() override;  // Stop()
  ReplicationSender(const ReplicationSender&) = delete;
  ReplicationSender& operator=(const ReplicationSender&) = delete;

  // Connects to the peer and performs the handshake, within
  // connect_timeout. Ok: replicating. Otherwise the Status says why (connect
  // error, timeout, or "refused by the secondary (code): reason") and the
  // state is kLost, or kIdle if it never connected. Callable again after a
  // loss (reconnection): operations submitted while not replicating are not
  // resent. InvalidArgument when already replicating or stopped, or when the
  // options are invalid.
  sdk::Status Connect();
  sdk::Status Reconnect() { return Connect(); }

  // Changes what the next HELLO announces (a primary running ALONE moves to
  // a new generation before the pair is reconnected).
  void SetGeneration(std::uint64_t generation, bool consistent);

  // Says BYE to the peer (after the frames already queued, for at most one
  // second), closes the connection and releases every waiter. on_peer_lost
  // is not called. Idempotent.
  void Stop();

  // OperationSink. Submit() goes to replicated dir 0.
  std::uint64_t Submit(Operation op) override;
  sdk::Status Wait(std::uint64_t ticket) override;

  // Submit() for replicated dir `dir_index` of the module. A write larger
  // than kMaxOpData travels as several frames; the ticket is the last one's.
  // An operation the wire cannot carry (a path over 4096 bytes...) loses the
  // peer: the secondary cannot be kept identical without it.
  std::uint64_t SubmitTo(std::uint8_t dir_index, Operation op);

  SenderStats Stats() const;
  SenderState state() const;

 private:
  class Impl;
  struct OwnIo;
  std::unique_ptr<OwnIo> own_io_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hakit::replication
