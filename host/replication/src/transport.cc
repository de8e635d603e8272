#include "hakit/replication/transport.h"

#include <cstring>

namespace hakit::replication {

namespace asio = boost::asio;
using asio::ip::tcp;
using sdk::Result;
using sdk::Status;

FrameReader::FrameReader(std::size_t initial_capacity) : buf_(initial_capacity) {}

std::span<std::uint8_t> FrameReader::PrepareRead(std::size_t min_free) {
  if (begin_ == end_) begin_ = end_ = 0;
  std::size_t want = min_free;
  // While a large frame is being assembled, make room for all of it so it
  // arrives in as few reads as possible.
  if (need_ > buffered()) want = std::max(want, need_ - buffered());
  if (buf_.size() - end_ < want) {
    // Move the partial frame to the front before growing: usually enough.
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, buffered());
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() - end_ < want) buf_.resize(end_ + want);
  }
  return {buf_.data() + end_, buf_.size() - end_};
}

void FrameReader::CommitRead(std::size_t n) { end_ += std::min(n, buf_.size() - end_); }

Result<std::optional<RawFrame>> FrameReader::Next() {
  if (buffered() < kHeaderSize) return std::optional<RawFrame>();
  std::span<const std::uint8_t> bytes(buf_.data() + begin_, buffered());
  auto header = DecodeHeader(bytes);
  if (!header.ok()) return header.status();
  std::size_t total = kHeaderSize + header->length;
  if (buffered() < total) {
    need_ = total;
    return std::optional<RawFrame>();
  }
  need_ = 0;
  RawFrame f{*header, bytes.subspan(kHeaderSize, header->length)};
  begin_ += total;
  return std::optional<RawFrame>(f);
}

std::optional<FrameHeader> FrameReader::PendingHeader() const {
  if (need_ == 0 || buffered() < kHeaderSize) return std::nullopt;
  auto header = DecodeHeader(std::span<const std::uint8_t>(buf_.data() + begin_, buffered()));
  if (!header.ok()) return std::nullopt;
  return *header;
}

std::span<const std::uint8_t> FrameReader::PendingPayload() const {
  if (buffered() < kHeaderSize) return {};
  return {buf_.data() + begin_ + kHeaderSize, buffered() - kHeaderSize};
}

void FrameReader::ConsumePending(std::size_t n) {
  begin_ += std::min(buffered(), kHeaderSize + n);
  need_ = 0;
}

Status TuneSocket(tcp::socket& socket, const TransportOptions& options) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  if (ec) return Status::IoError("cannot set TCP_NODELAY: " + ec.message());
  if (options.socket_buffer_bytes > 0) {
    socket.set_option(asio::socket_base::send_buffer_size(options.socket_buffer_bytes), ec);
    if (ec) return Status::IoError("cannot set SO_SNDBUF: " + ec.message());
    socket.set_option(asio::socket_base::receive_buffer_size(options.socket_buffer_bytes), ec);
    if (ec) return Status::IoError("cannot set SO_RCVBUF: " + ec.message());
  }
  return Status::Ok();
}

Result<tcp::endpoint> MakeEndpoint(const std::string& address, std::uint16_t port) {
  boost::system::error_code ec;
  auto a = asio::ip::make_address(address, ec);
  if (ec) return Status::InvalidArgument("'" + address + "' is not an IP address");
  return tcp::endpoint(a, port);
}

std::string EndpointText(const tcp::endpoint& endpoint) {
  std::string a = endpoint.address().to_string();
  if (endpoint.address().is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(endpoint.port());
}

}  // namespace hakit::replication
