// The TDS PRELOGIN exchange (MS-TDS 2.2.6.5), used as a health probe: a
// listener that answers a PRELOGIN request with a well-formed PRELOGIN
// response is SQL Server (or speaks its protocol); anything else holding the
// port is not.
//
// Wire layout (MS-TDS 2.2.3.1 packet header, 2.2.6.5 PRELOGIN):
//   header   Type(1) Status(1) Length(2, big-endian, header included)
//            SPID(2) PacketID(1) Window(1)
//   data     option table: Token(1) Offset(2, BE) Length(2, BE) ... 0xFF,
//            then the options' bytes; offsets count from the start of the
//            data (after the 8-byte header).
// The client sends packet type 0x12; the server answers with type 0x04
// (tabular result) whose data is a PRELOGIN structure starting with VERSION.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::sqlserver {

inline constexpr std::uint8_t kPacketPrelogin = 0x12;
inline constexpr std::uint8_t kPacketTabularResult = 0x04;
inline constexpr std::uint8_t kStatusEndOfMessage = 0x01;
inline constexpr std::size_t kHeaderSize = 8;

// PRELOGIN option tokens.
enum PreloginToken : std::uint8_t {
  kVersion = 0x00,
  kEncryption = 0x01,
  kInstOpt = 0x02,
  kThreadId = 0x03,
  kMars = 0x04,
  kTraceId = 0x05,
  kFedAuthRequired = 0x06,
  kNonceOpt = 0x07,
  kTerminator = 0xFF,
};

// B_FENCRYPTION values.
enum Encryption : std::uint8_t {
  kEncryptOff = 0x00,
  kEncryptOn = 0x01,
  kEncryptNotSup = 0x02,
  kEncryptReq = 0x03,
};

// What a server's PRELOGIN response says about it.
struct PreloginReply {
  std::uint8_t major = 0;  // UL_VERSION, first byte (16 for SQL Server 2022)
  std::uint8_t minor = 0;
  std::uint16_t build = 0;
  std::uint16_t sub_build = 0;  // US_SUBBUILD
  std::uint8_t encryption = kEncryptNotSup;
  // "16.0.4003.1 (encryption off)"
  std::string ToString() const;
};

// The client's PRELOGIN packet, laid out as MS-TDS 4.1's sample: VERSION
// (zero), ENCRYPTION (not supported: the probe never logs in), INSTOPT (an
// empty name, so any instance on the port answers), THREADID, MARS off. One
// packet, end of message set.
std::vector<std::uint8_t> BuildPreloginRequest();

// Builds a server-side PRELOGIN response packet with `reply`'s fields (for
// tests and for documentation of the layout). Options: VERSION, ENCRYPTION,
// INSTOPT (0x00), THREADID (empty), MARS (0x00).
std::vector<std::uint8_t> BuildPreloginResponse(const PreloginReply& reply);

// Checks one complete response packet (header included) and decodes it.
// InvalidArgument, with the first thing that is wrong, when: the packet is
// shorter than its header or its Length field, the type is not 0x04, the
// end-of-message bit is not set, the option table runs past the data or
// lacks its terminator, an option points outside the data or into the
// table, a token appears twice, VERSION is not the first option or is not 6
// bytes, ENCRYPTION is missing, not 1 byte or not one of the four values.
sdk::Result<PreloginReply> ParsePreloginResponse(std::span<const std::uint8_t> packet);

// Connects to addr:port (IPv4 or IPv6 literal), sends BuildPreloginRequest,
// reads one packet (its Length says how much) and parses it. The whole
// exchange is bounded by `timeout`. Errors: IoError (connection refused,
// reset, closed before a full packet), Timeout, InvalidArgument (an answer
// that is not a PRELOGIN response: "not SQL Server: ..."). Every message
// names addr:port.
sdk::Result<PreloginReply> ProbeTds(const std::string& addr, std::uint16_t port,
                                    std::chrono::milliseconds timeout);

}  // namespace hakit::sqlserver
