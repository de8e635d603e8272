#include "hakit/daemon/peer_probe.h"

#include <utility>  // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace hakit::daemon {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct PeerProbe::Impl : std::enable_shared_from_this<PeerProbe::Impl> {
  asio::io_context& io;
  std::vector<std::string> local;
  std::vector<std::string> peers;
  int port;
  std::chrono::milliseconds timeout;
  std::shared_ptr<Logger> log;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  Clock::time_point refused_at{};
  bool stopped = false;

  Impl(asio::io_context& io, std::vector<std::string> l, std::vector<std::string> p, int port,
       std::chrono::milliseconds t, std::shared_ptr<Logger> log)
      : io(io), local(std::move(l)), peers(std::move(p)), port(port), timeout(t),
        log(std::move(log)) {}

  void Accept(tcp::acceptor& a) {
    auto self = shared_from_this();
    a.async_accept([self, &a](boost::system::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || self->stopped) return;
      // Nothing to say yet: being there is the answer.
      boost::system::error_code ignored;
      s.close(ignored);
      self->Accept(a);
    });
  }

  void ProbeOne(const std::string& address) {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(address, ec);
    if (ec) return;
    auto self = shared_from_this();
    auto socket = std::make_shared<tcp::socket>(io);
    auto timer = std::make_shared<asio::steady_timer>(io, timeout);
    timer->async_wait([socket](boost::system::error_code e) {
      if (!e) {
        boost::system::error_code ignored;
        socket->close(ignored);
      }
    });
    socket->async_connect(tcp::endpoint(ip, static_cast<unsigned short>(port)),
                          [self, socket, timer](boost::system::error_code e) {
                            timer->cancel();
                            if (e == asio::error::connection_refused) self->refused_at = Clock::now();
                            boost::system::error_code ignored;
                            socket->close(ignored);
                          });
  }
};

PeerProbe::PeerProbe(asio::io_context& io, std::vector<std::string> local_addresses,
                     std::vector<std::string> peer_addresses, int port,
                     std::chrono::milliseconds connect_timeout, std::shared_ptr<Logger> log)
    : impl_(std::make_shared<Impl>(io, std::move(local_addresses), std::move(peer_addresses), port,
                                   connect_timeout, std::move(log))) {}

PeerProbe::~PeerProbe() { Stop(); }

sdk::Status PeerProbe::Start() {
  for (const auto& a : impl_->local) {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(a, ec);
    if (ec) return sdk::Status::InvalidArgument("bad local address " + a);
    auto acc = std::make_unique<tcp::acceptor>(impl_->io);
    tcp::endpoint ep(ip, static_cast<unsigned short>(impl_->port));
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return sdk::Status::IoError("listen on " + a + ":" + std::to_string(impl_->port) +
                                  " (tcp): " + ec.message());
    }
    impl_->acceptors.push_back(std::move(acc));
    impl_->Accept(*impl_->acceptors.back());
  }
  return sdk::Status::Ok();
}

void PeerProbe::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  for (auto& a : impl_->acceptors) {
    boost::system::error_code ec;
    a->close(ec);
  }
}

void PeerProbe::Probe() {
  for (const auto& p : impl_->peers) impl_->ProbeOne(p);
}

bool PeerProbe::RefusedWithin(std::chrono::milliseconds window) const {
  return impl_->refused_at != Clock::time_point{} && Clock::now() - impl_->refused_at < window;
}

}  // namespace hakit::daemon
