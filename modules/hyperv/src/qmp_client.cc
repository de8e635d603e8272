#include "hakit/hyperv/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace hakit::hyperv {

using sdk::Result;
using sdk::Status;
using Clock = std::chrono::steady_clock;

namespace {

int MillisLeft(Clock::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return d < 0 ? 0 : static_cast<int>(d);
}

}  // namespace

Result<int> ConnectUnix(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument("socket path " + path + " is longer than " +
                                   std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::IoError("socket: " + std::string(std::strerror(errno)));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    int err = errno;
    ::close(fd);
    if ((err != ENOENT && err != ECONNREFUSED) || Clock::now() >= deadline) {
      return Status::IoError("connecting to " + path + ": " + std::strerror(err));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& socket_path,
                                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto fd = ConnectUnix(socket_path, timeout);
  if (!fd.ok()) return fd.status().WithContext("QMP");
  std::unique_ptr<QmpClient> c(new QmpClient(*fd, socket_path));
  auto greeting = c->ReadMessage(deadline);
  if (!greeting.ok()) return greeting.status();
  if (!greeting->contains("QMP")) {
    return Status::Corruption("QMP " + socket_path + ": no greeting, got " + greeting->dump());
  }
  auto caps = c->Execute("qmp_capabilities", nullptr,
                         std::chrono::milliseconds(std::max(1, MillisLeft(deadline))));
  if (!caps.ok()) return caps.status();
  return c;
}

QmpClient::~QmpClient() { ::close(fd_); }

Status QmpClient::Send(const nlohmann::json& message) {
  std::string line = message.dump() + "\n";
  std::size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("QMP " + path_ + ": send: " + std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Result<nlohmann::json> QmpClient::ReadMessage(Clock::time_point deadline) {
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        return Status::Corruption("QMP " + path_ + ": not a JSON object: " + line.substr(0, 200));
      }
      return j;
    }
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, MillisLeft(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError("QMP " + path_ + ": poll: " + std::strerror(errno));
    if (n == 0) return Status::Timeout("QMP " + path_ + ": no answer in time");
    char buf[4096];
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::IoError("QMP " + path_ + ": recv: " + std::strerror(errno));
    if (r == 0) return Status::IoError("QMP " + path_ + ": QEMU closed the connection");
    buffer_.append(buf, static_cast<std::size_t>(r));
  }
}

Result<nlohmann::json> QmpClient::Execute(const std::string& command,
                                          const nlohmann::json& arguments,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  nlohmann::json msg = {{"execute", command}};
  if (!arguments.is_null()) msg["arguments"] = arguments;
  if (Status s = Send(msg); !s.ok()) return s;
  for (;;) {
    auto m = ReadMessage(deadline);
    if (!m.ok()) return m.status().WithContext(command);
    if (m->contains("event")) continue;  // asynchronous, not our reply
    if (m->contains("return")) return (*m)["return"];
    if (m->contains("error")) {
      return Status::Failed("QMP " + command + ": " +
                            (*m)["error"].value("desc", (*m)["error"].dump()));
    }
    return Status::Corruption("QMP " + command + ": unexpected reply " + m->dump());
  }
}

Status QmpClient::Quit(std::chrono::milliseconds timeout) {
  auto r = Execute("quit", nullptr, timeout);
  // QEMU may close the socket before its reply reaches us: that is a quit.
  if (r.ok() || r.status().code() == Status::Code::kIoError) return Status::Ok();
  return r.status();
}

}  // namespace hakit::hyperv
