#include "hakit/package/deploy.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <thread>
#include <utility>  // before Boost.Asio (see README)

#include "hakit/cluster/heartbeat_codec.h"
#include "hakit/package/manifest.h"

namespace hakit::package {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using sdk::Result;
using sdk::Status;
using Bytes = std::vector<std::uint8_t>;
using std::chrono::milliseconds;

namespace {

constexpr char kMagic[4] = {'H', 'K', 'D', 'P'};
constexpr std::size_t kNonceSize = 32;
constexpr std::size_t kMacSize = 32;
constexpr std::uint32_t kMaxHeader = 4096;
constexpr std::uint32_t kMaxReply = 64 * 1024;
constexpr const char kRequestLabel[] = "hakit-deploy-request";
constexpr const char kReplyLabel[] = "hakit-deploy-reply";

void PutU32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint32_t GetU32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

Bytes Random(std::size_t n) {
  Bytes b(n);
  RAND_bytes(b.data(), static_cast<int>(n));
  return b;
}

Bytes AsBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// HMAC-SHA256 over a label (so a request MAC can never pass as a reply's)
// and the parts, in order.
Bytes Mac(const Bytes& key, std::string_view label, std::initializer_list<Bytes> parts) {
  Bytes data(label.begin(), label.end());
  data.push_back(0);
  for (const auto& p : parts) data.insert(data.end(), p.begin(), p.end());
  Bytes mac(kMacSize);
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), mac.data(),
       &len);
  return mac;
}

bool SameMac(const Bytes& a, const std::uint8_t* b) {
  return a.size() == kMacSize && CRYPTO_memcmp(a.data(), b, kMacSize) == 0;
}

// Reads and writes on one socket, each bounded by a deadline. Used by one
// coroutine at a time on a single-threaded io_context.
class Channel {
 public:
  explicit Channel(tcp::socket socket)
      : socket_(std::move(socket)), timer_(socket_.get_executor()) {}

  tcp::socket& socket() { return socket_; }

  awaitable<Status> Read(void* data, std::size_t size, milliseconds timeout) {
    co_return co_await Bounded(timeout, "reading", [&](auto token) {
      return asio::async_read(socket_, asio::buffer(data, size), token);
    });
  }

  awaitable<Status> Write(const void* data, std::size_t size, milliseconds timeout) {
    co_return co_await Bounded(timeout, "writing", [&](auto token) {
      return asio::async_write(socket_, asio::buffer(data, size), token);
    });
  }

 private:
  struct Deadline {
    bool done = false;
    bool expired = false;
  };

  template <typename Start>
  awaitable<Status> Bounded(milliseconds timeout, const char* what, Start start) {
    auto d = std::make_shared<Deadline>();
    timer_.expires_after(timeout);
    // The handler may run after the operation completed (both were ready
    // at once): `done` keeps it from touching the socket then.
    timer_.async_wait([d, s = &socket_](boost::system::error_code ec) {
      if (ec || d->done) return;
      d->expired = true;
      boost::system::error_code ignored;
      s->cancel(ignored);
    });
    boost::system::error_code ec;
    co_await start(asio::redirect_error(use_awaitable, ec));
    d->done = true;
    timer_.cancel();
    if (d->expired) {
      co_return Status::Timeout(std::string("nothing for ") + std::to_string(timeout.count()) +
                                " ms while " + what);
    }
    if (ec == asio::error::eof)
      co_return Status::IoError("connection closed while " + std::string(what));
    if (ec) co_return Status::IoError(std::string(what) + ": " + ec.message());
    co_return Status::Ok();
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
};

// One reply frame: length, JSON, MAC over both nonces, the frame's place
// in the exchange and the JSON.
Bytes ReplyFrame(const Bytes& key, const Bytes& client_nonce, const Bytes& server_nonce,
                 std::uint8_t seq, const nlohmann::json& body) {
  std::string text = body.dump();
  Bytes out;
  PutU32(out, static_cast<std::uint32_t>(text.size()));
  out.insert(out.end(), text.begin(), text.end());
  Bytes mac = Mac(key, kReplyLabel, {client_nonce, server_nonce, Bytes{seq}, AsBytes(text)});
  out.insert(out.end(), mac.begin(), mac.end());
  return out;
}

std::string Hex(const Bytes& b) { return cluster::HexEncode(b); }

// Outside the coroutines: GCC 12 cannot take braced JSON literals inside them.
nlohmann::json Answer(bool ok, const std::string& message) {
  return {{"ok", ok}, {"message", message}};
}

std::string RequestHeader(const std::string& module, std::uint64_t size, const std::string& sha) {
  return nlohmann::json{{"module", module}, {"size", size}, {"sha256", sha}}.dump();
}

}  // namespace

std::vector<std::string> NodeAddresses(const config::ClusterConfig& cluster,
                                       const std::string& node) {
  std::vector<std::string> out;
  for (const auto& lan : cluster.lans) {
    auto a = cluster.AddressOf(node, lan.name);
    if (a.ok() && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  return out;
}

// ---------------------------------------------------------------- server

struct DeployServer::Impl {
  DeployServerOptions o;
  asio::io_context io;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::thread thread;
  bool busy = false;

  void Log(sdk::LogLevel level, const std::string& m) {
    if (o.log) o.log(level, m);
  }

  awaitable<void> AcceptLoop(tcp::acceptor& acceptor) {
    while (acceptor.is_open()) {
      boost::system::error_code ec;
      tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        continue;
      }
      std::string from = s.remote_endpoint(ec).address().to_string();
      co_spawn(io, Serve(std::move(s), from), asio::detached);
    }
  }

  // What the replies of one exchange need.
  struct Frames {
    Channel& ch;
    const Bytes& client_nonce;
    const Bytes& server_nonce;
    const std::string& from;
  };

  awaitable<Status> Reply(Frames& f, std::uint8_t seq, nlohmann::json body) {
    Bytes frame = ReplyFrame(o.key, f.client_nonce, f.server_nonce, seq, body);
    co_return co_await f.ch.Write(frame.data(), frame.size(), o.io_timeout);
  }

  awaitable<void> Refuse(Frames& f, std::uint8_t seq, std::string why) {
    Log(sdk::LogLevel::kError, "deployment from " + f.from + " refused: " + why);
    co_await Reply(f, seq, Answer(false, why));
  }

  awaitable<void> Serve(tcp::socket socket, std::string from) {
    Channel ch(std::move(socket));
    try {
      co_await Exchange(ch, from);
    } catch (const std::exception& e) {
      Log(sdk::LogLevel::kError, "from " + from + ": " + e.what());
    }
  }

  awaitable<void> Exchange(Channel& ch, const std::string& from) {
    const milliseconds t = o.io_timeout;
    Bytes server_nonce = Random(kNonceSize);
    Bytes hello(kMagic, kMagic + 4);
    PutU32(hello, kDeployProtocolVersion);
    hello.insert(hello.end(), server_nonce.begin(), server_nonce.end());
    if (!(co_await ch.Write(hello.data(), hello.size(), t)).ok()) co_return;

    std::uint8_t fixed[4 + kNonceSize + 4];
    if (Status s = co_await ch.Read(fixed, sizeof fixed, t); !s.ok()) {
      Log(sdk::LogLevel::kWarning, "from " + from + ": " + s.message());
      co_return;
    }
    std::uint32_t version = GetU32(fixed);
    Bytes client_nonce(fixed + 4, fixed + 4 + kNonceSize);
    std::uint32_t header_size = GetU32(fixed + 4 + kNonceSize);
    if (header_size > kMaxHeader) {
      Log(sdk::LogLevel::kWarning, "from " + from + ": request header of " +
                                       std::to_string(header_size) + " bytes refused (limit " +
                                       std::to_string(kMaxHeader) + ")");
      co_return;
    }
    Bytes header(header_size + kMacSize);
    if (Status s = co_await ch.Read(header.data(), header.size(), t); !s.ok()) {
      Log(sdk::LogLevel::kWarning, "from " + from + ": " + s.message());
      co_return;
    }
    Bytes header_text(header.begin(), header.begin() + header_size);
    Frames f{ch, client_nonce, server_nonce, from};
    Bytes expected = Mac(o.key, kRequestLabel, {server_nonce, client_nonce, header_text});
    if (!SameMac(expected, header.data() + header_size)) {
      co_await Refuse(f, 0, "authentication failed: the sender's cluster key is not this node's");
      co_return;
    }
    if (version != kDeployProtocolVersion) {
      co_await Refuse(f, 0,
                      "deploy protocol version " + std::to_string(version) +
                          " is not supported (this node speaks " +
                          std::to_string(kDeployProtocolVersion) + ")");
      co_return;
    }
    auto h = nlohmann::json::parse(header_text.begin(), header_text.end(), nullptr, false);
    if (!h.is_object() || !h.contains("module") || !h["module"].is_string() ||
        !h.contains("size") || !h["size"].is_number_unsigned() || !h.contains("sha256") ||
        !h["sha256"].is_string()) {
      co_await Refuse(f, 0, "malformed request header");
      co_return;
    }
    std::string module = h["module"];
    std::uint64_t size = h["size"];
    std::string sha = h["sha256"];
    if (std::string why = InvalidModuleName(module); !why.empty()) {
      co_await Refuse(f, 0, why);
      co_return;
    }
    if (size > o.max_package_bytes) {
      co_await Refuse(f, 0,
                      "package of " + std::to_string(size) + " bytes is larger than the limit (" +
                          std::to_string(o.max_package_bytes) + " bytes)");
      co_return;
    }
    if (busy) {
      co_await Refuse(f, 0, "another deployment is in progress on this node; try again");
      co_return;
    }
    busy = true;
    struct Release {
      bool& b;
      ~Release() { b = false; }
    } release{busy};

    std::error_code ec;
    fs::create_directories(o.spool_dir, ec);
    std::string templ = (o.spool_dir / "deploy-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      co_await Refuse(f, 0, "cannot create a folder in " + o.spool_dir.string());
      co_return;
    }
    struct Remove {
      fs::path p;
      ~Remove() {
        std::error_code ignored;
        fs::remove_all(p, ignored);
      }
    } spool{templ};
    fs::path file = spool.p / (module + ".safe");
    if (!(co_await Reply(f, 0, Answer(true, "send it"))).ok()) co_return;

    std::ofstream out(file, std::ios::binary);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
    std::vector<char> buf(64 * 1024);
    for (std::uint64_t left = size; left > 0;) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
      if (Status s = co_await ch.Read(buf.data(), n, t); !s.ok()) {
        Log(sdk::LogLevel::kError,
            "deployment from " + from + " of " + module + ": " + s.message());
        co_return;
      }
      EVP_DigestUpdate(md.get(), buf.data(), n);
      out.write(buf.data(), static_cast<std::streamsize>(n));
      left -= n;
    }
    out.close();
    Bytes digest(32);
    unsigned int len = 0;
    EVP_DigestFinal_ex(md.get(), digest.data(), &len);
    if (!out) {
      co_await Refuse(f, 1, "cannot write " + file.string());
      co_return;
    }
    if (Hex(digest) != sha) {
      co_await Refuse(f, 1,
                      "the package's SHA-256 does not match the request (damaged in transit)");
      co_return;
    }
    auto outcome = o.install ? o.install(file, module) : Status::Failed("no installer");
    if (!outcome.ok()) {
      co_await Refuse(f, 1, outcome.status().message());
      co_return;
    }
    Log(sdk::LogLevel::kInfo, "deployment from " + from + ": " + outcome->message);
    nlohmann::json done = Answer(true, outcome->message);
    done["config_hash"] = outcome->config_hash;
    co_await Reply(f, 1, std::move(done));
  }
};

DeployServer::DeployServer(DeployServerOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->o = std::move(options);
}

DeployServer::~DeployServer() { Stop(); }

Status DeployServer::Start() {
  for (const auto& addr : impl_->o.addresses) {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(addr, ec);
    if (ec) return Status::InvalidArgument("deploy listener: bad address " + addr);
    auto a = std::make_unique<tcp::acceptor>(impl_->io);
    tcp::endpoint ep(ip, impl_->o.port);
    a->open(ep.protocol(), ec);
    if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a->bind(ep, ec);
    if (!ec) a->listen(8, ec);
    if (ec) {
      return Status::IoError("deploy listener: cannot listen on " + addr + " port " +
                             std::to_string(impl_->o.port) + ": " + ec.message());
    }
    impl_->acceptors.push_back(std::move(a));
  }
  for (auto& a : impl_->acceptors) {
    co_spawn(impl_->io, impl_->AcceptLoop(*a), asio::detached);
  }
  impl_->thread = std::thread([impl = impl_]() { impl->io.run(); });
  return Status::Ok();
}

void DeployServer::Stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [impl = impl_.get()]() {
    for (auto& a : impl->acceptors) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    impl->io.stop();
  });
  impl_->thread.join();
}

// ---------------------------------------------------------------- client

namespace {

awaitable<Result<nlohmann::json>> ReadReply(Channel& ch, const DeployRequest& r,
                                            const Bytes& client_nonce, const Bytes& server_nonce,
                                            std::uint8_t seq, milliseconds timeout) {
  std::uint8_t len_bytes[4];
  if (Status s = co_await ch.Read(len_bytes, 4, timeout); !s.ok()) co_return s;
  std::uint32_t len = GetU32(len_bytes);
  if (len > kMaxReply) co_return Status::Corruption("reply of " + std::to_string(len) + " bytes");
  Bytes body(len + kMacSize);
  if (Status s = co_await ch.Read(body.data(), body.size(), timeout); !s.ok()) co_return s;
  Bytes text(body.begin(), body.begin() + len);
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  std::string message = j.is_object() ? j.value("message", "") : "";
  Bytes expected = Mac(r.key, kReplyLabel, {client_nonce, server_nonce, Bytes{seq}, text});
  if (!SameMac(expected, body.data() + len)) {
    co_return Status::Failed(
        "the peer's reply is not authenticated: the cluster keys of the two "
        "nodes differ" +
        (message.empty() ? "" : " (it said: " + message + ")"));
  }
  if (!j.is_object()) co_return Status::Corruption("malformed reply");
  if (!j.value("ok", false)) co_return Status::Failed("the peer refused: " + message);
  co_return j;
}

awaitable<Result<DeployOutcome>> Exchange(const DeployRequest& r) {
  auto executor = co_await asio::this_coro::executor;
  std::string errors;
  std::optional<Channel> ch;
  for (const auto& addr : r.peer_addresses) {
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(addr, ec);
    if (ec) {
      errors += (errors.empty() ? "" : "; ") + addr + ": bad address";
      continue;
    }
    Channel attempt{tcp::socket(executor)};
    asio::steady_timer timer(executor);
    timer.expires_after(r.connect_timeout);
    auto expired = std::make_shared<bool>(false);
    auto done = std::make_shared<bool>(false);
    tcp::socket& s = attempt.socket();
    timer.async_wait([&s, expired, done](boost::system::error_code e) {
      if (e || *done) return;
      *expired = true;
      boost::system::error_code ignored;
      s.close(ignored);
    });
    co_await s.async_connect(tcp::endpoint(ip, r.port), asio::redirect_error(use_awaitable, ec));
    *done = true;
    timer.cancel();
    if (*expired) ec = asio::error::timed_out;
    if (ec) {
      errors += (errors.empty() ? "" : "; ") + addr + " port " + std::to_string(r.port) + ": " +
                ec.message();
      continue;
    }
    ch.emplace(std::move(s));
    break;
  }
  if (!ch) co_return Status::IoError("cannot reach the peer's deploy listener (" + errors + ")");

  const milliseconds t = r.io_timeout;
  std::uint8_t hello[4 + 4 + kNonceSize];
  if (Status s = co_await ch->Read(hello, sizeof hello, t); !s.ok()) co_return s;
  if (std::memcmp(hello, kMagic, 4) != 0)
    co_return Status::Corruption("not a hakit deploy listener");
  if (GetU32(hello + 4) != kDeployProtocolVersion) {
    co_return Status::Unsupported("the peer speaks deploy protocol " +
                                  std::to_string(GetU32(hello + 4)) + ", this hakit " +
                                  std::to_string(kDeployProtocolVersion));
  }
  Bytes server_nonce(hello + 8, hello + 8 + kNonceSize);
  Bytes client_nonce = Random(kNonceSize);

  std::error_code fec;
  std::uint64_t size = fs::file_size(r.package, fec);
  if (fec) co_return Status::IoError("cannot read " + r.package.string() + ": " + fec.message());
  auto sum = Sha256File(r.package);
  if (!sum.ok()) co_return sum.status();
  std::string header = RequestHeader(r.module, size, *sum);
  Bytes request;
  PutU32(request, kDeployProtocolVersion);
  request.insert(request.end(), client_nonce.begin(), client_nonce.end());
  PutU32(request, static_cast<std::uint32_t>(header.size()));
  request.insert(request.end(), header.begin(), header.end());
  Bytes mac = Mac(r.key, kRequestLabel, {server_nonce, client_nonce, AsBytes(header)});
  request.insert(request.end(), mac.begin(), mac.end());
  if (Status s = co_await ch->Write(request.data(), request.size(), t); !s.ok()) co_return s;
  auto go = co_await ReadReply(*ch, r, client_nonce, server_nonce, 0, t);
  if (!go.ok()) co_return go.status();

  std::ifstream in(r.package, std::ios::binary);
  std::vector<char> buf(64 * 1024);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    if (Status s = co_await ch->Write(buf.data(), static_cast<std::size_t>(in.gcount()), t);
        !s.ok()) {
      co_return s;
    }
  }
  auto done = co_await ReadReply(*ch, r, client_nonce, server_nonce, 1, r.install_timeout);
  if (!done.ok()) co_return done.status();
  DeployOutcome outcome;
  outcome.message = done->value("message", "");
  outcome.config_hash = done->value("config_hash", "");
  co_return outcome;
}

// co_spawn wants a default-constructible result; Result<> is not.
awaitable<void> RunExchange(const DeployRequest& r, Result<DeployOutcome>* out) {
  *out = co_await Exchange(r);
}

}  // namespace

Result<DeployOutcome> SendPackage(const DeployRequest& request) {
  asio::io_context io;
  Result<DeployOutcome> result = Status::Failed("deployment did not run");
  co_spawn(io, RunExchange(request, &result), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      result = Status::Failed(std::string("deployment failed: ") + x.what());
    }
  });
  io.run();
  return result;
}

}  // namespace hakit::package
