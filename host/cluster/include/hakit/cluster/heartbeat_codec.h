// The heartbeat wire format: one authenticated UDP datagram per module and
// pulse, carrying what the peer's state machine needs to know of this node.
//
// Layout (integers big-endian; strings are a u8 length then bytes, no NUL):
//
//   offset  size  field
//   0       4     magic "HKHB"
//   4       2     protocol version (u16)
//   6       8     key id: first 8 bytes of SHA-256(cluster key)
//   14      8     boot id: random per sender process
//   22      8     sequence: grows with every frame the sender emits
//   30      1+n   sender node name
//   ..      1+n   module name ("" for a node-level frame: liveness only)
//   ..      1     state (hakit::cluster::State)
//   ..      1     flags: bit0 busy, bit1 handing_over, bit2 was_last_prim,
//                 bit3 peer_generation_known, bit4 peer_in_sync
//   ..      1     data status (hakit::cluster::DataStatus)
//   ..      32    config hash: SHA-256 of the module configuration
//   ..      8     data generation
//   ..      8     the peer's generation this sender last heard
//   ..      1     resource count, then per resource: 1+n name, 1 state
//   ..      32    HMAC-SHA256(cluster key, every byte before it)
//
// Decoding checks, in this order, so that each failure has one name: the
// frame is long enough for the fixed prefix (truncated), magic, version
// window (before anything else, since a later version may lay out the rest
// differently), key id (a peer with another key is told apart from a
// corrupt or forged frame), structure (every length checked against the
// bytes left, no trailing bytes), MAC (constant-time compare), and only then
// the meaning of authenticated fields (state and data status in range,
// reserved flag bits zero).
//
// Replay protection is not the decoder's business (it has no memory):
// ReplayGuard below remembers what each sender last sent.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "hakit/cluster/mirror_fsm.h"
#include "hakit/sdk/status.h"

namespace hakit::cluster {

// Frames outside [kMinProtocolVersion, kMaxProtocolVersion] are refused;
// kProtocolVersion is what this build sends.
inline constexpr std::uint16_t kProtocolVersion = 1;
inline constexpr std::uint16_t kMinProtocolVersion = 1;
inline constexpr std::uint16_t kMaxProtocolVersion = 1;

// Encode refuses to build a bigger frame, so that a heartbeat always fits in
// one Ethernet frame: a fragmented heartbeat is lost whenever any fragment
// is, which makes the peer look flakier than the network is.
inline constexpr std::size_t kMaxFrameSize = 1400;

inline constexpr std::size_t kKeyIdSize = 8;
inline constexpr std::size_t kMacSize = 32;
using ConfigHash = std::array<std::uint8_t, 32>;
using KeyId = std::array<std::uint8_t, kKeyIdSize>;

// The shared secret of a cluster, with its key id computed once. The bytes
// are wiped when the object is destroyed.
class ClusterKey {
 public:
  // `bytes` should come from LoadClusterKey (heartbeat_key.h); any length is
  // accepted here, the file loader enforces the minimum.
  explicit ClusterKey(std::vector<std::uint8_t> bytes);
  ClusterKey(const ClusterKey& other);
  ClusterKey& operator=(const ClusterKey& other);
  ~ClusterKey();

  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  // First 8 bytes of SHA-256(bytes): public, identifies the key in frames.
  const KeyId& id() const { return id_; }
  // Lower-case hex of id(), for messages.
  std::string IdHex() const;

 private:
  std::vector<std::uint8_t> bytes_;
  KeyId id_{};
};

// A resource the sender reports (reserved for later issues; may be empty).
struct ResourceState {
  std::string name;  // at most 255 bytes
  std::uint8_t state = 0;
  bool operator==(const ResourceState&) const = default;
};

// What one frame says. Decode fills every field; Encode ignores `version`
// (it always writes kProtocolVersion).
struct Heartbeat {
  std::uint16_t version = kProtocolVersion;
  std::uint64_t boot_id = 0;   // random per sender process; 0 is valid but unwise
  std::uint64_t sequence = 0;  // starts at 1; ReplayGuard refuses 0
  std::string sender;          // node name, 1..255 bytes
  std::string module;          // 0..255 bytes; "" = node-level frame
  State state = State::kStop;
  bool busy = false;
  bool handing_over = false;
  bool was_last_prim = false;
  DataStatus data = DataStatus::kUnknown;
  ConfigHash config_hash{};
  std::uint64_t generation = 0;
  // The peer's generation this sender last heard, and whether that
  // generation is in the sender's own generation history (the peer's data
  // is an ancestor of, or equal to, the sender's). With both nodes' answers
  // each can tell same / behind / ahead / diverged.
  std::uint64_t peer_generation_seen = 0;
  bool peer_generation_known = false;
  // From a primary: the peer's copy holds everything this one holds (same
  // generation, or the parent of ours with nothing written unreplicated since),
  // so the peer, as SECOND, may take our generation.
  bool peer_in_sync = false;
  std::vector<ResourceState> resources;  // at most 255 entries

  bool operator==(const Heartbeat&) const = default;
};

// Why Decode refused a frame. The Status message says the same in words.
enum class DecodeError {
  kNone,                // decoded fine
  kTruncated,           // a field runs past the end of the datagram
  kMalformed,           // structure or authenticated content is invalid
  kBadMagic,            // not a hakit heartbeat at all
  kUnsupportedVersion,  // a hakit heartbeat outside our version window
  kUnknownKey,          // key id differs: the sender uses another cluster key
  kBadMac,              // same key id, MAC wrong: corrupted or forged
};

// "ok", "truncated", "malformed", "bad magic", "unsupported version",
// "unknown key", "bad mac". Stable: used as the rate-limit key and in
// `hakit state` reject counters.
const char* DecodeErrorName(DecodeError error);

// Serialises `hb` and appends the MAC. Fails (InvalidArgument) when a name is
// empty/too long, there are too many resources or the frame would exceed
// kMaxFrameSize; nothing else can fail.
sdk::Result<std::vector<std::uint8_t>> Encode(const Heartbeat& hb, const ClusterKey& key);

// Parses and authenticates one datagram. On failure the Status names the
// reason (see DecodeError) and, when `error` is not null, *error says which;
// on success *error is kNone. Never reads outside `frame`.
sdk::Result<Heartbeat> Decode(std::span<const std::uint8_t> frame, const ClusterKey& key,
                              DecodeError* error = nullptr);

// Refuses frames already seen, per (sender, module) and per channel (the
// network a frame came in on: the sender sends the same frame, same
// sequence, on every network, so each network's copy is fresh once).
//
// A frame is accepted when its sequence is greater than the last one
// accepted on that channel from the same sender run (boot id). A new boot id
// means the sender restarted: its sequence starts again, so the record is
// reset, and the previous boot id is retired so that frames recorded from
// that older run cannot be replayed later. Limitation: a receiver that
// itself restarted knows no history, so the first frame of any run is
// believed until a newer run is seen.
//
// Not thread-safe; memory grows with the number of (sender, module) pairs,
// which the configuration bounds.
class ReplayGuard {
 public:
  // `channels`: how many networks frames may arrive on (indices 0..n-1).
  explicit ReplayGuard(std::size_t channels = 1);

  // Ok and remembered when fresh; InvalidArgument naming the sequence
  // otherwise (nothing remembered). Precondition: channel < channels.
  sdk::Status Accept(const Heartbeat& hb, std::size_t channel = 0);

  // Forgets everything about `sender` (e.g. after reconfiguration).
  void Forget(const std::string& sender);

 private:
  struct Entry {
    std::uint64_t boot_id = 0;
    std::vector<std::uint64_t> last;  // per channel; 0 = nothing yet
    std::deque<std::uint64_t> retired_boots;
  };
  std::size_t channels_;
  std::map<std::pair<std::string, std::string>, Entry> entries_;
};

// Lower-case hex of `bytes`.
std::string HexEncode(std::span<const std::uint8_t> bytes);

// SHA-256 of `data`, e.g. for LocalInfo::config_hash from a configuration file.
ConfigHash Sha256(std::span<const std::uint8_t> data);

}  // namespace hakit::cluster
