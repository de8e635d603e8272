#include "bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>

namespace hakit::bench {

using sdk::Status;
using namespace std::chrono_literals;

std::atomic<bool> g_interrupted{false};

namespace {
void OnSignal(int) { g_interrupted = true; }
}  // namespace

void InstallInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  // A probe writing to a socket the peer closed must not end the program.
  ::signal(SIGPIPE, SIG_IGN);
}

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

Status EnterNetns(const std::string& netns) {
  if (netns.empty() || netns.find('/') != std::string::npos) {
    return Status::InvalidArgument("bad namespace name '" + netns + "'");
  }
  std::string path = "/run/netns/" + netns;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound("cannot open " + path + ": " + std::strerror(errno));
  int rc = ::setns(fd, CLONE_NEWNET);
  int err = errno;
  ::close(fd);
  if (rc < 0) return Status::IoError("setns " + path + ": " + std::strerror(err));
  return Status::Ok();
}

Status RunInNetns(const std::string& netns, const std::function<void()>& fn) {
  Status status;
  std::thread t([&] {
    status = EnterNetns(netns);
    if (status.ok()) fn();
  });
  t.join();
  return status;
}

sdk::Result<Clock::time_point> LinksDownNow(const std::string& netns,
                                            const std::vector<std::string>& ifnames,
                                            Clock::time_point* done) {
  Clock::time_point t0{}, t1{};
  std::string error;
  Status s = RunInNetns(netns, [&] {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = std::string("socket: ") + std::strerror(errno);
      return;
    }
    std::vector<ifreq> reqs(ifnames.size());
    for (std::size_t i = 0; i < ifnames.size() && error.empty(); ++i) {
      std::snprintf(reqs[i].ifr_name, IFNAMSIZ, "%s", ifnames[i].c_str());
      if (::ioctl(fd, SIOCGIFFLAGS, &reqs[i]) < 0) {
        error = "SIOCGIFFLAGS " + ifnames[i] + ": " + std::strerror(errno);
      }
      reqs[i].ifr_flags = static_cast<short>(reqs[i].ifr_flags & ~IFF_UP);
    }
    if (error.empty()) {
      t0 = Clock::now();
      for (std::size_t i = 0; i < reqs.size(); ++i) {
        if (::ioctl(fd, SIOCSIFFLAGS, &reqs[i]) < 0 && error.empty()) {
          error = "SIOCSIFFLAGS " + ifnames[i] + ": " + std::strerror(errno);
        }
      }
      t1 = Clock::now();
    }
    ::close(fd);
  });
  if (!s.ok()) return s;
  if (!error.empty()) return Status::IoError(error);
  if (done) *done = t1;
  return t0;
}

// ---- Prober ---------------------------------------------------------------

Prober::Prober(Options options) : options_(std::move(options)) {}

Prober::~Prober() { Stop(); }

Status Prober::Start() {
  thread_ = std::thread([this] { Loop(); });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return started_; });
  if (!start_error_.empty()) {
    lock.unlock();
    Stop();
    return Status::Failed(start_error_);
  }
  return Status::Ok();
}

void Prober::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Prober::Clear() {
  std::lock_guard lock(mu_);
  replies_.clear();
}

std::optional<Clock::time_point> Prober::WaitReply(const std::string& node,
                                                   Clock::time_point after,
                                                   std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    for (const auto& r : replies_) {
      if (r.at >= after && r.node == node) return r.at;
    }
    if (Clock::now() >= deadline || g_interrupted) return std::nullopt;
    cv_.wait_until(lock, std::min(deadline, Clock::now() + 50ms));
  }
}

void Prober::Loop() {
  Status s = EnterNetns(options_.netns);
  {
    std::lock_guard lock(mu_);
    started_ = true;
    if (!s.ok()) start_error_ = s.message();
  }
  cv_.notify_all();
  if (!s.ok()) return;

  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(options_.port);
  ::inet_pton(AF_INET, options_.address.c_str(), &to.sin_addr);

  struct Attempt {
    int fd;
    Clock::time_point began;
    bool connected = false;
    std::string buf;
  };
  std::vector<Attempt> live;
  auto next = Clock::now();
  constexpr std::size_t kMaxInFlight = 128;

  auto finish = [&](Attempt& a) {
    // "hello from NODE #n"
    const std::string tag = "hello from ";
    auto p = a.buf.find(tag);
    if (p == std::string::npos) return;
    auto q = a.buf.find_first_of(" \n", p + tag.size());
    Reply r{Clock::now(), a.buf.substr(p + tag.size(), q - p - tag.size())};
    {
      std::lock_guard lock(mu_);
      replies_.push_back(std::move(r));
    }
    cv_.notify_all();
  };

  while (!stop_) {
    auto now = Clock::now();
    if (now >= next && live.size() < kMaxInFlight) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        ++attempts_;
        int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
        if (rc == 0 || errno == EINPROGRESS) {
          live.push_back({fd, now, rc == 0, {}});
        } else {
          ::close(fd);  // refused / unreachable at once
        }
      }
      next += options_.interval;
      if (next < now) next = now + options_.interval;
    }

    std::vector<pollfd> fds;
    fds.reserve(live.size());
    for (const auto& a : live) {
      fds.push_back({a.fd, static_cast<short>(a.connected ? POLLIN : POLLOUT), 0});
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    int wait_ms = static_cast<int>(std::clamp<long long>(wait.count(), 0, 10));
    int ready = ::poll(fds.data(), fds.size(), wait_ms);
    now = Clock::now();
    for (std::size_t i = 0; i < live.size(); ++i) {
      Attempt& a = live[i];
      bool done = false;
      if (ready > 0 && fds[i].revents != 0) {
        if (!a.connected) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err == 0) {
            a.connected = true;
          } else {
            done = true;
          }
        } else {
          char buf[256];
          for (;;) {
            ssize_t n = ::recv(a.fd, buf, sizeof buf, 0);
            if (n > 0) {
              a.buf.append(buf, static_cast<std::size_t>(n));
              if (a.buf.find('\n') != std::string::npos) {
                finish(a);
                done = true;
                break;
              }
              continue;
            }
            if (n == 0) {
              finish(a);
              done = true;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
              done = true;
            }
            break;
          }
        }
      }
      if (!done && now - a.began > options_.attempt_timeout) done = true;
      if (done) {
        ::close(a.fd);
        a.fd = -1;
      }
    }
    live.erase(std::remove_if(live.begin(), live.end(), [](const Attempt& a) { return a.fd < 0; }),
               live.end());
  }
  for (auto& a : live) ::close(a.fd);
}

// ---- AddressWatch -----------------------------------------------------------

AddressWatch::AddressWatch(std::string netns, std::string address)
    : netns_(std::move(netns)), address_(std::move(address)) {}

AddressWatch::~AddressWatch() { Stop(); }

Status AddressWatch::Start() {
  thread_ = std::thread([this] { Loop(); });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return started_; });
  if (!start_error_.empty()) {
    lock.unlock();
    Stop();
    return Status::Failed(start_error_);
  }
  return Status::Ok();
}

void AddressWatch::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::optional<Clock::time_point> AddressWatch::AddedAfter(Clock::time_point after) {
  std::lock_guard lock(mu_);
  for (auto t : added_) {
    if (t >= after) return t;
  }
  return std::nullopt;
}

void AddressWatch::Loop() {
  std::string error;
  int fd = -1;
  Status s = EnterNetns(netns_);
  if (!s.ok()) {
    error = s.message();
  } else {
    fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_IPV4_IFADDR;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      error = std::string("rtnetlink socket: ") + std::strerror(errno);
    }
  }
  {
    std::lock_guard lock(mu_);
    started_ = true;
    start_error_ = error;
  }
  cv_.notify_all();
  if (!error.empty()) {
    if (fd >= 0) ::close(fd);
    return;
  }
  in_addr want{};
  ::inet_pton(AF_INET, address_.c_str(), &want);
  alignas(nlmsghdr) char buf[16384];
  while (!stop_) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    auto now = Clock::now();
    if (n <= 0) continue;
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != RTM_NEWADDR) continue;
      auto* ifa = static_cast<ifaddrmsg*>(NLMSG_DATA(h));
      int len = static_cast<int>(IFA_PAYLOAD(h));
      for (auto* a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if ((a->rta_type == IFA_LOCAL || a->rta_type == IFA_ADDRESS) &&
            RTA_PAYLOAD(a) == sizeof(in_addr) && std::memcmp(RTA_DATA(a), &want, 4) == 0) {
          std::lock_guard lock(mu_);
          if (added_.empty() || now - added_.back() > 1ms) added_.push_back(now);
          break;
        }
      }
    }
  }
  ::close(fd);
}

// ---- statistics and logs -------------------------------------------------------

Summary Summarize(std::vector<double> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

std::string FormatSummary(const Summary& s, const char* unit) {
  char buf[160];
  if (s.n == 0) return "no data";
  std::snprintf(buf, sizeof buf, "min/median/max = %.1f/%.1f/%.1f %s (n=%zu)", s.min, s.median,
                s.max, unit, s.n);
  return buf;
}

std::map<std::string, double> ParseFigures(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string tok; in >> tok;) {
    auto eq = tok.find('=');
    if (eq == std::string::npos) continue;
    out[tok.substr(0, eq)] = std::atof(tok.c_str() + eq + 1);
  }
  return out;
}

double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto p = text.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream rest(text.substr(p + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields 3.. after the command name; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::vector<LogLine> ReadLog(const std::filesystem::path& path) {
  std::vector<LogLine> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    int Y, M, D, h, m, sec;
    long us;
    char level[8] = {};
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%d-%d-%dT%d:%d:%d.%ldZ %7s %n", &Y, &M, &D, &h, &m, &sec, &us,
                    level, &consumed) < 8) {
      continue;
    }
    std::tm tm{};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    std::time_t t = ::timegm(&tm);
    LogLine l;
    l.at = WallClock::from_time_t(t) + std::chrono::microseconds(us);
    l.level = level;
    l.message = line.substr(static_cast<std::size_t>(consumed));
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace hakit::bench
