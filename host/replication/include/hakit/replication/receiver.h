// ReplicationReceiver: the secondary's end of the replication connection.
//
// It listens on one TCP endpoint and serves one primary at a time: a new
// primary whose handshake is accepted replaces the current session (a
// primary that reconnects after a network cut must not wait for the old,
// half-dead connection to time out here). The handshake refuses, with a
// REFUSE frame naming the reason, a protocol version outside the window,
// another module, another configuration hash, a peer that is not a
// primary, and whatever check_peer refuses (the generation rules).
//
// OP frames must carry consecutive sequences. Receipt is acknowledged at
// once, with one cumulative ACK per socket read rather than per operation.
// A single applier thread applies operations in sequence order below the
// descriptor of their replicated dir, then acknowledges them as applied;
// a kFsync is acknowledged as durable once applied (ApplyOperation fsyncs).
// Operations already received when a session ends are still applied: the
// primary may have been told they were received.
//
// An apply error is fatal to the session and to this node's consistency:
// the receiver logs it with the sequence, operation and path, sends REFUSE
// (apply failed), closes the connection, drops its backlog, calls
// on_apply_failed and refuses every primary until ClearFailure().
//
// Threading: the receiver runs one io thread and one applier thread of its
// own. Public methods are thread-safe; Stop() must not be called from a
// callback. Callbacks: check_peer, on_session_start and on_session_end run
// on the io thread; before_apply, apply and on_apply_failed on the applier
// thread. A callback's exception is caught and logged (and, from apply,
// counts as an apply error).
#pragma once

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

struct ReceiverOptions {
  // Where to listen: an IP literal and a TCP port (0 = any free port; see
  // ReplicationReceiver::port()).
  std::string listen_address = "0.0.0.0";
  std::uint16_t port = 0;

  // This node's identity: HELLO must name the same module and configuration
  // hash; the rest goes back in HELLO_ACK.
  std::string module;
  std::string node;
  ConfigHash config_hash{};
  std::uint64_t generation = 0;
  bool consistent = true;
  // Where this copy may differ from any primary's although consistent (it
  // crashed as primary: hot_zones.h): `has_suspect` true makes HELLO_ACK say
  // so, and every description of a dir names the zones `suspect` returns for
  // each regular file (byte ranges: offset, length). Both may be empty.
  // Called from the io thread and the description threads.
  std::function<bool()> has_suspect;
  std::function<std::vector<std::pair<std::uint64_t, std::uint64_t>>(std::uint8_t dir_index,
                                                                     const std::string& path)>
      suspect;
  // The cluster key (see SenderOptions::key). Empty = no authentication.
  std::vector<std::uint8_t> key;

  // Replicated dir index (the OP frame's dir index) -> descriptor of the real
  // directory (O_PATH or O_DIRECTORY). Not owned; must stay open while the
  // receiver runs. At least one.
  std::vector<int> root_fds;

  // The generation rule: ok accepts the primary, an error refuses it with
  // the error's message as the reason. Empty = accept.
  std::function<sdk::Status(const Hello&)> check_peer;

  // Applies one operation; empty = ApplyOperation. Tests substitute it.
  std::function<sdk::Status(int root_fd, const Operation& op)> apply;
  // Called before each operation is applied, with its sequence; may block
  // (tests pause the applier with it).
  std::function<void(std::uint64_t sequence, const Operation& op)> before_apply;
  // An operation failed to apply (see above). The Status names the sequence,
  // operation and path.
  std::function<void(const sdk::Status&)> on_apply_failed;
  // Full synchronisation (sync.h). on_sync_begin: a SYNC_BEGIN for replicated
  // dir `dir_index` is about to be answered (this copy is inconsistent from
  // now until the matching SYNC_END). on_sync_end: the primary declared the
  // dir identical to its own at `generation`. Both on the applier thread.
  std::function<void(std::uint8_t dir_index)> on_sync_begin;
  std::function<void(std::uint8_t dir_index, std::uint64_t generation)> on_sync_end;
  // A primary was accepted ("address:port", its HELLO).
  std::function<void(const std::string& peer, const Hello& hello)> on_session_start;
  // The session ended, with the reason (EOF, BYE, protocol error, timeout...).
  std::function<void(const std::string& reason)> on_session_end;

  // A session that hears nothing (no OP, no PING) for this long is closed.
  // Default 30 s.
  std::chrono::milliseconds idle_timeout{30000};
  // From accept to a complete HELLO. Default 10 s.
  std::chrono::milliseconds handshake_timeout{10000};
  // The received-but-unapplied backlog above which the receiver stops
  // reading the socket (TCP then pushes back on the primary). The primary's
  // window normally keeps the backlog far below it. Default 256 MiB.
  std::size_t max_backlog_bytes = 256u << 20;

  TransportOptions transport;
  Logger* logger = nullptr;  // may be null; must outlive the receiver

  sdk::Status Validate() const;
};

enum class ReceiverState {
  kStopped,    // not started, or stopped
  kListening,  // no primary connected
  kConnected,  // serving a primary
  kFailed,     // an apply failed; refusing primaries until ClearFailure()
};
const char* ReceiverStateName(ReceiverState state);

struct ReceiverStats {
  ReceiverState state = ReceiverState::kStopped;
  std::string peer;  // current primary, "" when none
  std::uint64_t ops_received = 0;
  std::uint64_t bytes_received = 0;  // frame bytes
  std::uint64_t ops_applied = 0;
  std::uint64_t bytes_applied = 0;  // operation data bytes
  std::uint64_t backlog_ops = 0;    // received, not yet applied (the lag)
  std::uint64_t backlog_bytes = 0;
  std::uint64_t last_received = 0;  // sequences, current session
  std::uint64_t last_applied = 0;
  std::uint64_t last_durable = 0;
  std::uint64_t sessions_accepted = 0;
  std::uint64_t connections_refused = 0;  // handshakes refused or broken
  std::string last_error;                 // last refusal, protocol error or apply error
};

class ReplicationReceiver {
 public:
  explicit ReplicationReceiver(ReceiverOptions options);
  ~ReplicationReceiver();  // Stop()
  ReplicationReceiver(const ReplicationReceiver&) = delete;
  ReplicationReceiver& operator=(const ReplicationReceiver&) = delete;

  // Validates the options, binds and listens, starts the threads. On error
  // nothing is left bound. Call once.
  sdk::Status Start();

  // Closes the listener and the session, lets the applier finish the
  // operations already received (before_apply must not block forever), and
  // joins the threads. Idempotent.
  void Stop();

  // The bound port (useful with port 0); 0 before Start().
  std::uint16_t port() const;

  // After an apply failure, once the daemon has dealt with it (e.g. marked
  // the data inconsistent and updated the identity): accept primaries again.
  void ClearFailure();

  // Changes what the next HELLO_ACK announces.
  void SetGeneration(std::uint64_t generation, bool consistent);

  ReceiverStats Stats() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hakit::replication
