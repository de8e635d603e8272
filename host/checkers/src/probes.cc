#include "hakit/checkers/probes.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <optional>
#include <fstream>
#include <memory>
#include <random>
#include <regex>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/icmp.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "hakit/scripts/run_process.h"

namespace hakit::checkers {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using sdk::Result;
using sdk::Status;

namespace {

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool IsZombie(const fs::path& pid_dir) {
  std::string stat = ReadAll(pid_dir / "stat");
  // "pid (comm) S ...": the state follows the last ')'.
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

}  // namespace

Result<int> CountProcesses(const ProcMatch& match, const fs::path& proc_root) {
  std::optional<std::regex> name_re, arg_re;
  try {
    if (!match.nameregex.empty()) name_re.emplace(match.nameregex, std::regex::ECMAScript);
    if (!match.argregex.empty()) arg_re.emplace(match.argregex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return Status::InvalidArgument("bad regular expression in <proc>: " + std::string(e.what()));
  }
  std::error_code ec;
  fs::directory_iterator it(proc_root, ec);
  if (ec) return Status::IoError("cannot read " + proc_root.string() + ": " + ec.message());
  const std::string short_name = match.name.substr(0, 15);
  int count = 0;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string pid = it->path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string comm = ReadAll(it->path() / "comm");
    if (comm.empty()) continue;  // gone
    if (comm.back() == '\n') comm.pop_back();
    if (name_re) {
      if (!std::regex_search(comm, *name_re)) continue;
    } else if (comm != short_name) {
      continue;
    }
    if (arg_re) {
      std::string cmdline = ReadAll(it->path() / "cmdline");
      // NUL-separated; the arguments are what follows argv[0].
      auto first = cmdline.find('\0');
      std::string args = first == std::string::npos ? "" : cmdline.substr(first + 1);
      for (char& c : args) {
        if (c == '\0') c = ' ';
      }
      while (!args.empty() && args.back() == ' ') args.pop_back();
      if (!std::regex_search(args, *arg_re)) continue;
    }
    if (IsZombie(it->path())) continue;
    ++count;
  }
  return count;
}

Result<bool> ServiceActive(const std::string& unit, std::chrono::milliseconds timeout) {
  std::error_code ec;
  if (!fs::is_directory("/run/systemd/system", ec)) {
    return Status::Unsupported("<proc service=\"yes\"> " + unit +
                                      ": systemd does not run on this node");
  }
  sdk::Command c;
  c.argv = {"systemctl", "is-active", "--quiet", unit};
  c.timeout = timeout;
  c.log_output = false;
  sdk::CommandResult r = scripts::RunProcess(c, {}, {});
  if (r.outcome == sdk::CommandResult::Outcome::kFailedToStart ||
      r.outcome == sdk::CommandResult::Outcome::kTimedOut) {
    return Status::IoError("systemctl is-active " + unit + ": " + scripts::DescribeResult(r));
  }
  return r.ok();
}

void ProbeTcp(asio::io_context& io, const std::string& addr, int port,
              std::chrono::milliseconds timeout, ProbeDone done) {
  struct Op {
    asio::ip::tcp::resolver resolver;
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    ProbeDone done;
    bool finished = false;
    explicit Op(asio::io_context& io) : resolver(io), socket(io), timer(io) {}
    void Finish(bool up, const std::string& why) {
      if (finished) return;
      finished = true;
      timer.cancel();
      resolver.cancel();
      boost::system::error_code ignored;
      socket.close(ignored);
      done(up, why);
    }
  };
  auto op = std::make_shared<Op>(io);
  op->done = std::move(done);
  const std::string target = addr + ":" + std::to_string(port);
  op->timer.expires_after(timeout);
  op->timer.async_wait([op, target, timeout](boost::system::error_code ec) {
    if (!ec) op->Finish(false, target + ": no connection within " +
                                   std::to_string(timeout.count()) + " ms");
  });
  op->resolver.async_resolve(
      addr, std::to_string(port), asio::ip::tcp::resolver::numeric_service,
      [op, target](boost::system::error_code ec, asio::ip::tcp::resolver::results_type results) {
        if (op->finished) return;
        if (ec) return op->Finish(false, target + ": cannot resolve: " + ec.message());
        asio::async_connect(op->socket, results,
                            [op, target](boost::system::error_code ec, const auto&) {
                              if (ec) return op->Finish(false, target + ": " + ec.message());
                              op->Finish(true, "");
                            });
      });
}

namespace {

std::uint16_t Checksum(const std::uint8_t* data, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (len & 1) sum += data[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

}  // namespace

void ProbePing(asio::io_context& io, const std::string& addr, std::chrono::milliseconds timeout,
               ProbeDone done) {
  struct Op {
    asio::ip::icmp::socket socket;
    asio::steady_timer timer;
    ProbeDone done;
    bool finished = false;
    std::uint16_t id = 0, seq = 0;
    asio::ip::address_v4 target;
    std::array<std::uint8_t, 64> request{};
    std::array<std::uint8_t, 1500> reply{};
    asio::ip::icmp::endpoint from;
    explicit Op(asio::io_context& io) : socket(io), timer(io) {}
    void Finish(bool up, const std::string& why) {
      if (finished) return;
      finished = true;
      timer.cancel();
      boost::system::error_code ignored;
      socket.close(ignored);
      done(up, why);
    }
    void Receive(std::shared_ptr<Op> self) {
      socket.async_receive_from(
          asio::buffer(reply), from, [self](boost::system::error_code ec, std::size_t n) {
            if (self->finished) return;
            if (ec) return self->Finish(false, "ping " + self->target.to_string() + ": " + ec.message());
            // A raw IPv4 socket delivers the IP header first.
            std::size_t ihl = n > 0 ? (self->reply[0] & 0x0f) * 4 : 0;
            if (n >= ihl + 8) {
              const std::uint8_t* icmp = self->reply.data() + ihl;
              std::uint16_t id = (icmp[4] << 8) | icmp[5];
              std::uint16_t seq = (icmp[6] << 8) | icmp[7];
              if (icmp[0] == 0 && id == self->id && seq == self->seq &&
                  self->from.address() == self->target) {
                return self->Finish(true, "");
              }
            }
            self->Receive(self);  // someone else's ICMP: keep listening
          });
    }
  };
  auto op = std::make_shared<Op>(io);
  op->done = std::move(done);
  boost::system::error_code ec;
  op->target = asio::ip::make_address_v4(addr, ec);
  if (ec) {
    asio::post(io, [op, addr]() { op->Finish(false, "ping " + addr + ": not an IPv4 address"); });
    return;
  }
  op->socket.open(asio::ip::icmp::v4(), ec);
  if (ec) {
    asio::post(io, [op, addr, ec]() {
      op->Finish(false, "ping " + addr + ": cannot open a raw ICMP socket: " + ec.message());
    });
    return;
  }
  static std::atomic<std::uint16_t> next_seq{1};
  op->id = static_cast<std::uint16_t>(::getpid() ^ std::random_device{}());
  op->seq = next_seq++;
  auto& q = op->request;
  q[0] = 8;  // echo request
  q[4] = op->id >> 8;
  q[5] = op->id & 0xff;
  q[6] = op->seq >> 8;
  q[7] = op->seq & 0xff;
  std::uint16_t sum = Checksum(q.data(), q.size());
  q[2] = sum >> 8;
  q[3] = sum & 0xff;
  op->timer.expires_after(timeout);
  op->timer.async_wait([op, timeout](boost::system::error_code ec) {
    if (!ec) {
      op->Finish(false, "ping " + op->target.to_string() + ": no answer within " +
                            std::to_string(timeout.count()) + " ms");
    }
  });
  op->Receive(op);
  op->socket.async_send_to(asio::buffer(op->request), asio::ip::icmp::endpoint(op->target, 0),
                           [op](boost::system::error_code ec, std::size_t) {
                             if (ec) op->Finish(false, "ping " + op->target.to_string() + ": " + ec.message());
                           });
}

void ProbeAnyPing(asio::io_context& io, const std::vector<std::string>& addrs,
                  std::chrono::milliseconds timeout, ProbeDone done) {
  if (addrs.empty()) {
    asio::post(io, [done]() { done(false, "no address to ping"); });
    return;
  }
  struct All {
    std::size_t left;
    bool answered = false;
    std::string why;
    ProbeDone done;
  };
  auto all = std::make_shared<All>(All{addrs.size(), false, "", std::move(done)});
  for (const auto& a : addrs) {
    ProbePing(io, a, timeout, [all](bool up, const std::string& why) {
      --all->left;
      if (up && !all->answered) {
        all->answered = true;
        all->done(true, "");
      }
      if (!up) all->why += (all->why.empty() ? "" : "; ") + why;
      if (all->left == 0 && !all->answered) all->done(false, all->why);
    });
  }
}

}  // namespace hakit::checkers
