// What the sender and the receiver share below the protocol: cutting a TCP
// byte stream into frames, and setting sockets up.
//
// The protocol logic is tested over loopback TCP (127.0.0.1, port 0) rather
// than an in-memory pipe: a loopback socket is the cheapest twin that keeps
// the real partial reads, coalesced writes and connection resets, and it
// needs no second implementation of the session code. FrameReader is the
// seam the decoder fuzz test drives directly, without any socket.
#pragma once

// clang-format off: Boost 1.74 Asio uses std::exchange without including <utility>
#include <utility>
// clang-format on

#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hakit/replication/wire.h"
#include "hakit/sdk/status.h"

namespace hakit::replication {

// One frame cut from the stream: its header and a view of its payload,
// valid until the next PrepareRead() of the reader that returned it.
struct RawFrame {
  FrameHeader header;
  std::span<const std::uint8_t> payload;
};

// Accumulates bytes read from a stream and hands out whole frames.
//
// Usage: read into PrepareRead(), report the count with CommitRead(), then
// call Next() until it returns no frame; only then read again. The buffer
// grows to hold the largest frame the header allows (MaxPayload) and no
// more, since DecodeHeader refuses anything bigger before it is buffered.
// Not thread-safe.
class FrameReader {
 public:
  explicit FrameReader(std::size_t initial_capacity = 256 * 1024);

  // Free space to read into, at least `min_free` bytes (more when a large
  // frame is being assembled). May move buffered bytes: invalidates the
  // payload views of frames returned earlier.
  std::span<std::uint8_t> PrepareRead(std::size_t min_free = 64 * 1024);
  void CommitRead(std::size_t n);

  // The next whole frame, std::nullopt when more bytes are needed, or the
  // header's error (bad magic, unknown type, oversized length): the stream
  // cannot be resynchronised after that, so the caller closes it. The
  // version is not checked here (see CheckVersion).
  sdk::Result<std::optional<RawFrame>> Next();

  // After Next() returned no frame: the header of the incomplete frame at
  // the front, if its header is buffered, and the payload bytes buffered so
  // far. Lets a receiver take a large frame over (see ConsumePending).
  std::optional<FrameHeader> PendingHeader() const;
  std::span<const std::uint8_t> PendingPayload() const;
  // Drops the incomplete frame's header and the `n` payload bytes buffered
  // (n <= PendingPayload().size()): the caller reads the rest of the frame
  // itself, then resumes with PrepareRead().
  void ConsumePending(std::size_t n);

  // Bytes buffered but not yet returned as frames.
  std::size_t buffered() const { return end_ - begin_; }

 private:
  std::vector<std::uint8_t> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t need_ = 0;  // size of the frame being assembled, 0 = unknown
};

// Socket settings shared by both ends.
struct TransportOptions {
  // SO_SNDBUF / SO_RCVBUF in bytes; 0 leaves the kernel's autotuning, which
  // on Linux grows buffers to tcp_wmem/tcp_rmem as the connection needs.
  int socket_buffer_bytes = 0;
};

// TCP_NODELAY (every frame goes out at once: acknowledgements and small
// writes are latency-bound, and the sender coalesces large writes itself)
// plus the buffer sizes. Returns the first error.
sdk::Status TuneSocket(boost::asio::ip::tcp::socket& socket, const TransportOptions& options);

// An IPv4 or IPv6 literal and a port (no name resolution: the configuration
// names addresses, and a DNS lookup has no place on the failover path).
sdk::Result<boost::asio::ip::tcp::endpoint> MakeEndpoint(const std::string& address,
                                                         std::uint16_t port);

// "address:port" ("[v6]:port").
std::string EndpointText(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace hakit::replication
