// The replication wire format: length-prefixed frames over one TCP
// connection from the primary (ReplicationSender) to the secondary
// (ReplicationReceiver) and back.
//
// Every frame starts with the same 11-byte header, whose layout is frozen
// across protocol versions so that a peer of any version can at least read
// another's REFUSE and say why it was turned away:
//
//   offset  size  field
//   0       4     magic "HKRP"
//   4       2     protocol version (u16), refused outside [kMinProtocolVersion,
//   kMaxProtocolVersion] 6       1     frame type (FrameType) 7       4     payload length (u32),
//   at most MaxPayload(type)
//
// Integers are big-endian. Strings are a length (u8 for short names, u16 for
// paths and reasons, u32 for data) then the bytes, no NUL. Payloads:
//
//   HELLO      u16 version, str8 module, str8 node, 32 config hash, u64 generation,
//              u8 consistent (0/1), u8 role, u64 first sequence, 32 nonce
//   HELLO_ACK  u16 version, str8 node, u64 generation, u8 consistent (0/1, 2:
//              consistent but with suspect zones), u8 role, 32 nonce, 32 proof
//   AUTH       32 proof (handshake_auth.h)
//   REFUSE     u8 code (RefuseCode), str16 reason
//   OP         u64 sequence, u8 dir index, u8 kind, str16 path, str16 path2,
//              u64 offset, u64 length, u32 mode, u32 flags, i64 uid, i64 gid,
//              i64 atime.sec, i64 atime.nsec, i64 mtime.sec, i64 mtime.nsec,
//              str8 xattr name, u32 data length, data (last, so that a sender
//              can hand the bytes to writev without copying them)
//   ACK        u64 received, u64 applied, u64 durable (cumulative: every
//              sequence up to the value is received / applied / fsynced)
//   PING/PONG  u64 timestamp (the pinger's clock, echoed back), u64 nonce
//   BYE        str16 reason
//   MANIFEST   u8 dir index, u8 last (0/1), str16 error, u32 data length, data
//              (secondary -> primary: a piece of the tree description a
//              SYNC_BEGIN operation asked for; see manifest.h)
//
// Decoding is strict: every length is checked against the bytes left, a
// frame must be consumed exactly (no trailing bytes), enumerations must be
// in range, and paths must be relative without "..". A frame that fails is
// a protocol error: the connection is closed with the Status's message as
// the logged reason. Nothing here reads outside the span it is given.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include "hakit/replication/operation.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {

// Frames outside [kMinProtocolVersion, kMaxProtocolVersion] are refused;
// kProtocolVersion is what this build sends.
// Version 2 added the full synchronisation (SYNC_* operations, MANIFEST).
inline constexpr std::uint16_t kProtocolVersion = 2;
inline constexpr std::uint16_t kMinProtocolVersion = 2;
inline constexpr std::uint16_t kMaxProtocolVersion = 2;

inline constexpr std::size_t kHeaderSize = 11;
// The largest write data one OP frame carries; the sender splits bigger
// writes. 8 MiB keeps a frame's buffer bounded on the secondary while being
// far above FUSE's max_write (1 MiB), so splitting is rare.
inline constexpr std::size_t kMaxOpData = 8u << 20;
// Bounds on the names an OP carries (PATH_MAX and XATTR_NAME_MAX).
inline constexpr std::size_t kMaxPathSize = 4096;
inline constexpr std::size_t kMaxXattrNameSize = 255;
// OP payload bytes besides path, path2, name and data.
inline constexpr std::size_t kOpFixedSize = 8 + 1 + 1 + 2 + 2 + 8 + 8 + 4 + 4 + 8 * 6 + 1 + 4;
inline constexpr std::size_t kMaxOpPayload =
    kOpFixedSize + 2 * kMaxPathSize + kMaxXattrNameSize + kMaxOpData;
// Every other frame is small; a peer announcing more is broken or hostile.
inline constexpr std::size_t kMaxControlPayload = 4096 + 16;
// A MANIFEST frame's data; the secondary cuts its description in pieces.
inline constexpr std::size_t kMaxManifestData = 1u << 20;
inline constexpr std::size_t kMaxManifestPayload = kMaxManifestData + 4096 + 16;

using ConfigHash = std::array<std::uint8_t, 32>;

enum class FrameType : std::uint8_t {
  kHello = 1,
  kHelloAck = 2,
  kRefuse = 3,
  kOp = 4,
  kAck = 5,
  kPing = 6,
  kPong = 7,
  kBye = 8,
  kManifest = 9,
  kAuth = 10,
};

// "HELLO", "HELLO_ACK", ..., "type 42" for an unknown value.
std::string FrameTypeName(std::uint8_t type);

// The payload size limit of a frame type (0 for an unknown type).
std::size_t MaxPayload(FrameType type);

enum class Role : std::uint8_t { kPrimary = 1, kSecondary = 2 };

// Why a secondary turned a primary away (or ended a session).
enum class RefuseCode : std::uint8_t {
  kVersion = 1,      // protocol version outside the window
  kModule = 2,       // another module's replication port
  kConfig = 3,       // configuration hash differs
  kGeneration = 4,   // the generation check said no (stale or diverged data)
  kProtocol = 5,     // malformed or unexpected frame
  kApplyFailed = 6,  // this node could not apply an operation: it is inconsistent
  kBusy = 7,         // this node cannot take a primary now
  kAuth = 8,         // the peer did not prove it holds the cluster key
};
const char* RefuseCodeName(RefuseCode code);

struct FrameHeader {
  std::uint16_t version = kProtocolVersion;
  FrameType type = FrameType::kPing;
  std::uint32_t length = 0;  // payload bytes after the header
};

struct Hello {
  std::uint16_t version = kProtocolVersion;
  std::string module;  // 1..255 bytes
  std::string node;    // 0..255 bytes, for messages
  ConfigHash config_hash{};
  std::uint64_t generation = 0;
  bool consistent = true;
  Role role = Role::kPrimary;
  // The sequence of the first OP this session will carry. Sequences keep
  // growing across reconnections so that acknowledgements never alias.
  std::uint64_t first_sequence = 1;
  std::array<std::uint8_t, 32> nonce{};  // handshake_auth.h
  bool operator==(const Hello&) const = default;
};

struct HelloAck {
  std::uint16_t version = kProtocolVersion;
  std::string node;
  std::uint64_t generation = 0;
  bool consistent = true;
  Role role = Role::kSecondary;
  std::array<std::uint8_t, 32> nonce{};
  std::array<std::uint8_t, 32> proof{};  // zeros when the secondary has no key
  // Consistent, except for zones this copy may hold differently (it crashed
  // as primary); its tree description names them (ManifestEntry::suspect).
  bool suspect = false;
  bool operator==(const HelloAck&) const = default;
};

struct Refuse {
  RefuseCode code = RefuseCode::kProtocol;
  std::string reason;  // at most 4096 bytes (longer is cut when encoded)
  bool operator==(const Refuse&) const = default;
};

struct OpFrame {
  std::uint64_t sequence = 0;
  std::uint8_t dir_index = 0;  // which replicated dir of the module
  Operation op;
};

struct Ack {
  std::uint64_t received = 0;
  std::uint64_t applied = 0;
  std::uint64_t durable = 0;
  bool operator==(const Ack&) const = default;
};

struct Ping {
  std::uint64_t timestamp = 0;
  std::uint64_t nonce = 0;
  bool operator==(const Ping&) const = default;
};
struct Pong {
  std::uint64_t timestamp = 0;
  std::uint64_t nonce = 0;
  bool operator==(const Pong&) const = default;
};

struct Bye {
  std::string reason;
  bool operator==(const Bye&) const = default;
};

struct ManifestChunk {
  std::uint8_t dir_index = 0;
  bool last = false;
  std::string error;  // set on the last chunk when the description failed
  std::string data;   // at most kMaxManifestData bytes
  bool operator==(const ManifestChunk&) const = default;
};

struct Auth {
  std::array<std::uint8_t, 32> proof{};
  bool operator==(const Auth&) const = default;
};

using Message =
    std::variant<Hello, HelloAck, Refuse, OpFrame, Ack, Ping, Pong, Bye, ManifestChunk, Auth>;

// Checks magic, frame type and the payload length against MaxPayload(type);
// the version is returned, not checked (see CheckVersion), so that a REFUSE
// from a peer of another version can still be read. `bytes` must hold at
// least kHeaderSize bytes; Corruption otherwise.
sdk::Result<FrameHeader> DecodeHeader(std::span<const std::uint8_t> bytes);

// Ok when `version` is in our window; otherwise InvalidArgument naming both
// the peer's version and the window.
sdk::Status CheckVersion(std::uint16_t version);

// Decodes the payload of a frame whose header was accepted by DecodeHeader.
// Corruption naming the frame type and the bad field on any inconsistency.
sdk::Result<Message> DecodePayload(const FrameHeader& header,
                                   std::span<const std::uint8_t> payload);

// DecodeHeader + CheckVersion + DecodePayload over one whole frame, which
// must be exactly header plus payload (no trailing bytes). For tests and
// fuzzing; connections decode incrementally (transport.h).
sdk::Result<Message> DecodeFrame(std::span<const std::uint8_t> frame);

// For a receiver that reads large write data straight into its final
// buffer: decodes an OP payload up to its data. `prefix` holds the payload's
// first bytes, at least min(header.length, kMaxOpPrefix). On success the
// frame's op.data is empty, *data_offset is where the data starts in the
// payload and header.length - *data_offset is its size; every check of
// DecodePayload has been made except those on the data bytes (there are
// none).
inline constexpr std::size_t kMaxOpPrefix = kOpFixedSize + 2 * kMaxPathSize + kMaxXattrNameSize;
sdk::Result<OpFrame> DecodeOpPrefix(const FrameHeader& header, std::span<const std::uint8_t> prefix,
                                    std::size_t* data_offset);

// Appends one whole frame (header and payload) to *out. Fails only with
// InvalidArgument when a field exceeds its wire limit (module or node over
// 255 bytes, paths over kMaxPathSize, data over kMaxOpData...), leaving *out
// as it was.
sdk::Status EncodeFrame(const Message& message, std::string* out);

// Appends an OP frame without its data bytes: the header counts them, so the
// caller must send `op.data` right after. This is how the sender avoids
// copying large writes. Same failures as EncodeFrame.
sdk::Status EncodeOpPrefix(std::uint64_t sequence, std::uint8_t dir_index, const Operation& op,
                           std::string* out);
// Where the sequence sits in an EncodeOpPrefix/EncodeFrame OP output,
// relative to the frame's first byte: lets the sender encode outside its
// lock and stamp the sequence under it.
inline constexpr std::size_t kOpSequenceOffset = kHeaderSize;
void StampSequence(std::uint64_t sequence, char* frame_start);

// Checks what the decoder checks of an operation's fields (kind in range,
// relative paths without "..", sizes within limits), so that a sender can
// refuse an operation the secondary would reject.
sdk::Status ValidateOperation(const Operation& op);

}  // namespace hakit::replication
