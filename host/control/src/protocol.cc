#include "hakit/control/protocol.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <istream>

namespace hakit::control {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

// A request larger than this is refused: the CLI never sends one.
constexpr std::size_t kMaxFrame = 16 * 1024 * 1024;

nlohmann::json ToJson(const Request& r) {
  return {{"version", kControlProtocolVersion},
          {"command", r.command},
          {"module", r.module},
          {"args", r.args}};
}

Result<Request> RequestFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("control request is not a JSON object");
  int version = j.value("version", 0);
  if (version != kControlProtocolVersion) {
    return Status::InvalidArgument("control protocol version " + std::to_string(version) +
                                   " not supported (this hakitd speaks " +
                                   std::to_string(kControlProtocolVersion) + ")");
  }
  Request r;
  if (!j.contains("command") || !j["command"].is_string()) {
    return Status::InvalidArgument("control request without a command");
  }
  r.command = j["command"].get<std::string>();
  if (j.contains("module") && j["module"].is_string()) r.module = j["module"].get<std::string>();
  if (j.contains("args") && j["args"].is_object()) r.args = j["args"];
  return r;
}

nlohmann::json ToJson(const Response& r) {
  return {{"exit_code", r.exit_code}, {"output", r.output}, {"error", r.error}, {"data", r.data}};
}

Result<Response> ResponseFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("control reply is not a JSON object");
  Response r;
  r.exit_code = j.value("exit_code", 1);
  r.output = j.value("output", "");
  r.error = j.value("error", "");
  if (j.contains("data")) r.data = j["data"];
  return r;
}

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket socket, ControlServer::Handler& handler)
      : socket_(std::move(socket)), handler_(handler), buf_(kMaxFrame) {}

  void Begin() {
    if (!PeerAllowed()) {
      Send(Response::Fail("permission denied: the control socket is for root only", 1));
      return;
    }
    auto self = shared_from_this();
    asio::async_read_until(socket_, buf_, '\n', [self](boost::system::error_code ec, std::size_t) {
      if (ec) return;  // the client went away or sent too much: nothing to answer
      std::istream in(&self->buf_);
      std::string line;
      std::getline(in, line);
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) {
        self->Send(Response::Fail("malformed control request (not JSON)", 2));
        return;
      }
      Result<Request> req = RequestFromJson(j);
      if (!req.ok()) {
        self->Send(Response::Fail(req.status().message(), 2));
        return;
      }
      try {
        self->handler_(*req, [self](Response r) { self->Send(std::move(r)); });
      } catch (const std::exception& e) {
        self->Send(Response::Fail(std::string("internal error: ") + e.what(), 1));
      }
    });
  }

 private:
  bool PeerAllowed() {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      return false;
    }
    return cred.uid == 0 || cred.uid == ::geteuid();
  }

  void Send(Response r) {
    auto self = shared_from_this();
    out_ = ToJson(r).dump() + "\n";
    asio::async_write(socket_, asio::buffer(out_),
                      [self](boost::system::error_code, std::size_t) {
                        boost::system::error_code ignored;
                        self->socket_.shutdown(local::socket::shutdown_both, ignored);
                      });
  }

  local::socket socket_;
  ControlServer::Handler& handler_;
  asio::streambuf buf_;
  std::string out_;
};

}  // namespace

struct ControlServer::Impl : std::enable_shared_from_this<ControlServer::Impl> {
  Impl(asio::io_context& io, std::filesystem::path path, Handler handler)
      : acceptor(io), path(std::move(path)), handler(std::move(handler)) {}

  void Accept() {
    auto self = shared_from_this();
    acceptor.async_accept([self](boost::system::error_code ec, local::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) std::make_shared<Session>(std::move(socket), self->handler)->Begin();
      self->Accept();
    });
  }

  local::acceptor acceptor;
  std::filesystem::path path;
  Handler handler;
};

ControlServer::ControlServer(asio::io_context& io, std::filesystem::path socket_path,
                             Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(socket_path), std::move(handler))) {}

ControlServer::~ControlServer() { Stop(); }

Status ControlServer::Start() {
  std::error_code fec;
  std::filesystem::create_directories(impl_->path.parent_path(), fec);
  if (std::filesystem::exists(impl_->path)) {
    // A live daemon answers; a stale file from a crashed one does not.
    asio::io_context probe_io;
    local::socket probe(probe_io);
    boost::system::error_code ec;
    probe.connect(local::endpoint(impl_->path.string()), ec);
    if (!ec) {
      return Status::Failed("another hakitd is already serving " + impl_->path.string());
    }
    std::filesystem::remove(impl_->path, fec);
  }
  boost::system::error_code ec;
  mode_t old = ::umask(0077);
  impl_->acceptor.open(local(), ec);
  if (!ec) impl_->acceptor.bind(local::endpoint(impl_->path.string()), ec);
  ::umask(old);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IoError("control socket " + impl_->path.string() + ": " + ec.message());
  }
  ::chmod(impl_->path.c_str(), 0600);
  impl_->Accept();
  return Status::Ok();
}

void ControlServer::Stop() {
  if (!impl_ || !impl_->acceptor.is_open()) return;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  std::error_code fec;
  std::filesystem::remove(impl_->path, fec);
}

Result<Response> SendRequest(const std::filesystem::path& socket_path, const Request& request,
                             std::chrono::milliseconds timeout) {
  asio::io_context io;
  local::socket socket(io);
  boost::system::error_code ec;
  socket.connect(local::endpoint(socket_path.string()), ec);
  if (ec) {
    return Status::NotFound("no hakitd is running here: cannot connect to " +
                            socket_path.string() + " (" + ec.message() + ")");
  }
  std::string out = ToJson(request).dump() + "\n";
  asio::streambuf in(kMaxFrame);
  bool timed_out = false;
  boost::system::error_code io_ec;
  asio::steady_timer timer(io, timeout);
  timer.async_wait([&](boost::system::error_code e) {
    if (!e) {
      timed_out = true;
      socket.close();
    }
  });
  asio::async_write(socket, asio::buffer(out), [&](boost::system::error_code e, std::size_t) {
    if (e) {
      io_ec = e;
      timer.cancel();
      return;
    }
    asio::async_read_until(socket, in, '\n', [&](boost::system::error_code e2, std::size_t) {
      io_ec = e2;
      timer.cancel();
    });
  });
  io.run();
  if (timed_out) {
    return Status::Timeout("hakitd did not answer '" + request.command + "' within " +
                           std::to_string(timeout.count()) + " ms");
  }
  if (io_ec && io_ec != asio::error::eof) {
    return Status::IoError("control socket " + socket_path.string() + ": " + io_ec.message());
  }
  std::istream is(&in);
  std::string line;
  std::getline(is, line);
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return Status::Corruption("hakitd sent a malformed reply");
  return ResponseFromJson(j);
}

}  // namespace hakit::control
