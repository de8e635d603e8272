// The local control channel between the `hakit` CLI and `hakitd`.
//
// One request per connection over a Unix domain socket (ROOT/var/control.sock,
// mode 0600, peers checked with SO_PEERCRED: root or the daemon's own uid).
// Frames are one JSON object per line. A request names a command and
// optionally a module; the reply carries the CLI's exit code, text for the
// terminal and, for --json output, structured data.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "hakit/sdk/status.h"

namespace hakit::control {

using sdk::Result;
using sdk::Status;

// Version of the control frames; the daemon refuses other versions.
inline constexpr int kControlProtocolVersion = 1;

struct Request {
  std::string command;  // "start", "stop", "state", ...
  std::string module;   // empty: not module-specific
  nlohmann::json args = nlohmann::json::object();
};

struct Response {
  int exit_code = 0;  // what the CLI exits with: 0 ok, 1 failed, 2 usage
  std::string output; // text for stdout
  std::string error;  // text for stderr
  nlohmann::json data = nlohmann::json::object();

  static Response Ok(std::string out = {}) { return {0, std::move(out), {}, nlohmann::json::object()}; }
  static Response Fail(std::string err, int code = 1) {
    return {code, {}, std::move(err), nlohmann::json::object()};
  }
};

nlohmann::json ToJson(const Request& r);
Result<Request> RequestFromJson(const nlohmann::json& j);
nlohmann::json ToJson(const Response& r);
Result<Response> ResponseFromJson(const nlohmann::json& j);

// Serves the control socket on the daemon's io_context. Each request is
// handed to `handler` on the io_context thread; the handler replies (now or
// later) through the callback, exactly once.
class ControlServer {
 public:
  using Reply = std::function<void(Response)>;
  using Handler = std::function<void(const Request&, Reply)>;

  ControlServer(boost::asio::io_context& io, std::filesystem::path socket_path, Handler handler);
  ~ControlServer();

  // Binds and listens (removing a stale socket file left by a dead daemon; a
  // live daemon answering on it is an error). Mode 0600.
  Status Start();
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Sends one request and waits for the reply. Errors name the socket path
// ("no hakitd is running for ROOT: cannot connect to ROOT/var/control.sock").
Result<Response> SendRequest(const std::filesystem::path& socket_path, const Request& request,
                             std::chrono::milliseconds timeout);

}  // namespace hakit::control
