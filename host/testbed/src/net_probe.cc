#include "hakit/testbed/net_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "internal.h"

namespace hakit::testbed {

using sdk::Result;
using sdk::Status;
using Clock = std::chrono::steady_clock;

namespace {

Result<sockaddr_in> ParseAddress(const std::string& address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    return Status::InvalidArgument("'" + address + "' is not an IPv4 address");
  }
  return sa;
}

// Milliseconds left until `deadline`, at least 0, for poll().
int MsLeft(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? int(left) + 1 : 0;
}

uint16_t Checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (len % 2 != 0) sum += uint32_t(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(uint16_t(~sum));
}

// Connects a non-blocking socket by the deadline; -1 with *error set if not.
int ConnectBy(const sockaddr_in& sa, Clock::time_point deadline, Status* error,
              const std::string& who) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = Status::IoError(who + ": socket: " + strerror(errno));
    return -1;
  }
  int e = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) < 0) {
    e = errno;
    if (e == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int r;
      while ((r = poll(&p, 1, MsLeft(deadline))) < 0 && errno == EINTR) {
      }
      if (r == 0) {
        close(fd);
        *error = Status::Timeout(who + ": connect: no answer in time");
        return -1;
      }
      socklen_t len = sizeof e;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
    }
  }
  if (e != 0) {
    close(fd);
    *error = Status::IoError(who + ": connect: " + strerror(e));
    return -1;
  }
  return fd;
}

// Writes all of `data` by the deadline (MSG_NOSIGNAL: a peer that is gone
// is an error, not a SIGPIPE).
Status SendAll(int fd, const std::string& data, Clock::time_point deadline,
               const std::string& who) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return Status::IoError(who + ": send: " + strerror(errno));
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, MsLeft(deadline)) == 0)
      return Status::Timeout(who + ": send: peer not reading");
  }
  return Status::Ok();
}

}  // namespace

Status Ping(const std::string& netns, const std::string& address,
            std::chrono::milliseconds timeout) {
  Result<sockaddr_in> dst = ParseAddress(address, 0);
  if (!dst.ok()) return dst.status();
  const std::string who = "ping " + address + " from " + netns;
  static std::atomic<uint16_t> counter{0};
  // Raw ICMP sockets all see every reply: the id tells ours apart.
  const uint16_t id = uint16_t(getpid() * 31 + counter++);
  const auto deadline = Clock::now() + timeout;
  Status result =
      Status::Timeout(who + ": no reply within " + std::to_string(timeout.count()) + " ms");
  Status entered = internal::RunInNetns(netns, [&] {
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (fd < 0) {
      result = Status::IoError(who + ": raw socket: " + strerror(errno));
      return;
    }
    std::string last_error;
    uint16_t seq = 0;
    auto next_send = Clock::now();
    while (Clock::now() < deadline) {
      if (Clock::now() >= next_send) {
        struct {
          icmphdr header;
          char payload[16];
        } packet{};
        packet.header.type = ICMP_ECHO;
        packet.header.un.echo.id = htons(id);
        packet.header.un.echo.sequence = htons(++seq);
        memcpy(packet.payload, "hakit testbed   ", sizeof packet.payload);
        packet.header.checksum = Checksum(&packet, sizeof packet);
        if (sendto(fd, &packet, sizeof packet, 0, reinterpret_cast<const sockaddr*>(&*dst),
                   sizeof *dst) < 0) {
          last_error = strerror(errno);  // e.g. unreachable: keep trying until the deadline
        }
        next_send = Clock::now() + std::chrono::milliseconds(200);
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, std::min(MsLeft(next_send), MsLeft(deadline))) <= 0) continue;
      char buf[1500];
      sockaddr_in from{};
      socklen_t from_len = sizeof from;
      ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < int(sizeof(iphdr))) continue;
      size_t ihl = size_t(reinterpret_cast<const iphdr*>(buf)->ihl) * 4;
      if (size_t(n) < ihl + sizeof(icmphdr)) continue;
      icmphdr reply;
      memcpy(&reply, buf + ihl, sizeof reply);
      if (reply.type == ICMP_ECHOREPLY && ntohs(reply.un.echo.id) == id &&
          from.sin_addr.s_addr == dst->sin_addr.s_addr) {
        result = Status::Ok();
        break;
      }
    }
    close(fd);
    if (!result.ok() && !last_error.empty()) {
      result = Status::Timeout(result.message() + " (last send error: " + last_error + ")");
    }
  });
  return entered.ok() ? result : entered.WithContext(who);
}

Result<std::string> TcpRequest(const std::string& netns, const std::string& address, uint16_t port,
                               const std::string& payload, std::chrono::milliseconds timeout) {
  Result<sockaddr_in> dst = ParseAddress(address, port);
  if (!dst.ok()) return dst.status();
  const std::string who = "tcp " + address + ":" + std::to_string(port) + " from " + netns;
  const auto deadline = Clock::now() + timeout;
  Status status;
  std::string reply;
  Status entered = internal::RunInNetns(netns, [&] {
    int fd = ConnectBy(*dst, deadline, &status, who);
    if (fd < 0) return;
    status = SendAll(fd, payload, deadline, who);
    if (status.ok()) shutdown(fd, SHUT_WR);
    while (status.ok()) {
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        reply.append(buf, size_t(n));
      } else if (n == 0) {
        break;
      } else if (errno == EAGAIN) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, MsLeft(deadline)) == 0) {
          status = Status::Timeout(who + ": no end of reply in time (" +
                                   std::to_string(reply.size()) + " bytes received)");
        }
      } else if (errno != EINTR) {
        status = Status::IoError(who + ": recv: " + strerror(errno));
      }
    }
    close(fd);
  });
  if (!entered.ok()) return entered.WithContext(who);
  if (!status.ok()) return status;
  return reply;
}

bool TryConnect(const std::string& netns, const std::string& address, uint16_t port,
                std::chrono::milliseconds timeout) {
  Result<sockaddr_in> dst = ParseAddress(address, port);
  if (!dst.ok()) return false;
  const auto deadline = Clock::now() + timeout;
  bool connected = false;
  Status entered = internal::RunInNetns(netns, [&] {
    Status ignored;
    int fd = ConnectBy(*dst, deadline, &ignored, "");
    if (fd >= 0) {
      connected = true;
      close(fd);
    }
  });
  return entered.ok() && connected;
}

// ---- TcpServer -------------------------------------------------------------

Result<std::unique_ptr<TcpServer>> TcpServer::Start(const std::string& netns,
                                                    const std::string& address, uint16_t port,
                                                    Handler handler) {
  Result<sockaddr_in> sa = ParseAddress(address, port);
  if (!sa.ok()) return sa.status();
  const std::string who = "tcp server " + address + ":" + std::to_string(port) + " in " + netns;
  int fd = -1;
  Status status;
  // The socket belongs to the namespace it was created in; the serving
  // thread can then live anywhere.
  Status entered = internal::RunInNetns(netns, [&] {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) < 0 || listen(fd, 16) < 0) {
      status = Status::IoError(who + ": " + strerror(errno));
    }
  });
  if (!entered.ok() || !status.ok()) {
    if (fd >= 0) close(fd);
    return entered.ok() ? status : entered.WithContext(who);
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    close(fd);
    return Status::IoError(who + ": eventfd: " + strerror(errno));
  }
  return std::unique_ptr<TcpServer>(
      new TcpServer(fd, stop_fd, ntohs(bound.sin_port), std::move(handler)));
}

TcpServer::TcpServer(int listen_fd, int stop_fd, uint16_t port, Handler handler)
    : listen_fd_(listen_fd), stop_fd_(stop_fd), port_(port), handler_(std::move(handler)) {
  thread_ = std::thread([this] { Serve(); });
}

TcpServer::~TcpServer() {
  uint64_t one = 1;
  ssize_t ignored = write(stop_fd_, &one, sizeof one);
  (void)ignored;
  thread_.join();
  close(listen_fd_);
  close(stop_fd_);
}

void TcpServer::Serve() {
  for (;;) {
    pollfd p[2] = {{stop_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) continue;
    if (p[0].revents != 0) return;
    int conn = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) continue;
    // Read until the client half-closes, falls silent, or takes too long.
    std::string request;
    const auto give_up = Clock::now() + std::chrono::seconds(2);
    bool stop = false;
    for (;;) {
      pollfd q[2] = {{stop_fd_, POLLIN, 0}, {conn, POLLIN, 0}};
      int r = poll(q, 2, std::min(500, MsLeft(give_up)));
      if (r > 0 && q[0].revents != 0) {
        stop = true;
        break;
      }
      if (r <= 0) break;
      char buf[4096];
      ssize_t n = recv(conn, buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, size_t(n));
    }
    if (stop) {
      close(conn);
      return;
    }
    std::string reply;
    try {
      reply = handler_ ? handler_(request) : request;
    } catch (...) {
      // A throwing handler must not take the test process down: no reply.
    }
    SendAll(conn, reply, Clock::now() + std::chrono::seconds(2), "");
    close(conn);
  }
}

}  // namespace hakit::testbed
