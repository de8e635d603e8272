// VipManager on real interfaces. Each test builds two network namespaces,
// hk-vip-a-<pid> and hk-vip-b-<pid>, joined by a veth pair (veth-a
// 198.18.0.1/24, veth-b 198.18.0.2/24), and deletes them in TearDown. The
// product code runs in a forked child that has entered namespace a (setns is
// per thread, so a child process keeps the test process untouched) and
// reports back through a pipe. The test itself uses `ip` and `ping` to look
// from the outside.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakit/vip/vip_manager.h"

namespace hakit::vip {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kMacA = "02:00:00:00:0a:01";
constexpr const char* kMacB = "02:00:00:00:0b:01";
constexpr const char* kVip = "198.18.0.100";

struct ShellResult {
  int rc = -1;
  std::string out;
};

// Runs a shell command, stdout and stderr together.
ShellResult Sh(const std::string& command) {
  ShellResult result;
  FILE* f = popen((command + " 2>&1").c_str(), "r");
  if (!f) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) result.out.append(buf, n);
  int status = pclose(f);
  result.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// A child process inside a network namespace that runs `body` and sends its
// string result back. The body may call ready() once to tell the parent it
// is listening (WaitReady returns then).
class NetnsChild {
 public:
  using Body = std::function<std::string(const std::function<void()>& ready)>;

  NetnsChild(const std::string& netns, const Body& body) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_t pid = fork();
    if (pid < 0) {
      close(fds[0]);
      close(fds[1]);
      return;
    }
    if (pid == 0) {
      close(fds[0]);
      std::string out;
      int ns = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
        out = "child: cannot enter " + netns + ": " + std::strerror(errno);
      } else {
        out = body([&] { WriteAll(fds[1], "R"); });
      }
      WriteAll(fds[1], out);
      _exit(0);
    }
    close(fds[1]);
    pid_ = pid;
    fd_ = fds[0];
  }

  ~NetnsChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  // True once the body called ready(); false if it finished or failed first.
  bool WaitReady() {
    char c;
    if (fd_ < 0 || read(fd_, &c, 1) != 1) return false;
    if (c == 'R') return true;
    early_.push_back(c);
    return false;
  }

  // The body's result (or the reason there is none); reaps the child.
  std::string Finish() {
    if (fd_ < 0) return "child: could not start";
    std::string out = early_;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd_, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) out.append(buf, n);
    }
    close(fd_);
    fd_ = -1;
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (!WIFEXITED(status))
      out += " [child killed by signal " + std::to_string(WTERMSIG(status)) + "]";
    return out;
  }

 private:
  static void WriteAll(int fd, const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = write(fd, s.data() + done, s.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      done += n;
    }
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string early_;
};

std::string RunIn(const std::string& netns, const std::function<std::string()>& fn) {
  NetnsChild child(netns, [&](const std::function<void()>&) { return fn(); });
  return child.Finish();
}

std::string Str(const Status& s) { return s.ToString(); }
std::string Str(const Result<bool>& r) {
  return r.ok() ? (*r ? "true" : "false") : r.status().ToString();
}
std::string Str(const Result<VipSpec>& r) { return r.ok() ? r->ToString() : r.status().ToString(); }

VipSpec Spec(const std::string& address, std::optional<int> prefix, const std::string& ifname) {
  VipSpec spec;
  spec.address = address;
  spec.prefix_len = prefix;
  spec.interface = ifname;
  return spec;
}

class vip_Netns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
    std::string pid = std::to_string(getpid());
    a_ = "hk-vip-a-" + pid;
    b_ = "hk-vip-b-" + pid;
    // Left over by a crashed run that had our pid: ours to delete. Names
    // with other pids belong to tests that may be running now.
    DeleteNamespaces();
    created_ = true;
    for (const std::string& cmd : {
             "ip netns add " + a_,
             "ip netns add " + b_,
             "ip -n " + a_ + " link add veth-a address " + kMacA + " type veth peer name veth-b" +
                 " address " + kMacB + " netns " + b_,
             "ip -n " + a_ + " addr add 198.18.0.1/24 dev veth-a",
             "ip -n " + b_ + " addr add 198.18.0.2/24 dev veth-b",
             "ip -n " + a_ + " link set lo up",
             "ip -n " + b_ + " link set lo up",
             "ip -n " + a_ + " link set veth-a up",
             "ip -n " + b_ + " link set veth-b up",
         }) {
      ShellResult r = Sh(cmd);
      ASSERT_EQ(r.rc, 0) << cmd << ": " << r.out;
    }
  }

  void TearDown() override {
    if (created_) DeleteNamespaces();
  }

  void DeleteNamespaces() {
    Sh("ip netns del " + a_);
    Sh("ip netns del " + b_);
  }

  // Runs fn with a fresh Linux VipManager inside namespace a.
  std::string InA(const std::function<std::string(VipManager&)>& fn) {
    return RunIn(a_, [&] {
      auto manager = NewLinuxVipManager();
      return fn(*manager);
    });
  }

  std::string AddrsOfA() { return Sh("ip -n " + a_ + " addr show").out; }
  bool PingFromB(const std::string& address) {
    return Sh("ip netns exec " + b_ + " ping -n -c1 -W1 " + address).rc == 0;
  }
  // The MAC b's neighbour table has for `address`, or "".
  std::string NeighbourMacInB(const std::string& address) {
    std::istringstream words(Sh("ip -n " + b_ + " neigh show " + address + " dev veth-b").out);
    std::string word;
    while (words >> word) {
      if (word == "lladdr" && words >> word) return word;
    }
    return "";
  }

  std::string a_, b_;
  bool created_ = false;
};

size_t CountOf(const std::string& haystack, const std::string& needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(vip_Spec, ToStringShowsWhatIsKnown) {
  EXPECT_EQ(Spec(kVip, std::nullopt, "").ToString(), "198.18.0.100");
  EXPECT_EQ(Spec(kVip, 24, "eth0").ToString(), "198.18.0.100/24 on eth0");
  EXPECT_EQ(Spec(kVip, std::nullopt, "eth0").ToString(), "198.18.0.100 on eth0");
}

TEST_F(vip_Netns, AddMakesVipReachableFromPeer) {
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "veth-a"))); }), "ok");
  std::string addrs = AddrsOfA();
  EXPECT_NE(addrs.find("inet 198.18.0.100/24"), std::string::npos) << addrs;
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.IsPresent(Spec(kVip, {}, "veth-a"))); }), "true");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.IsPresent(Spec(kVip, {}, ""))); }), "true");
  EXPECT_TRUE(PingFromB(kVip));
}

TEST_F(vip_Netns, RemoveTakesVipAway) {
  ASSERT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "veth-a"))); }), "ok");
  ASSERT_TRUE(PingFromB(kVip));
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Remove(Spec(kVip, 24, "veth-a"))); }), "ok");
  std::string addrs = AddrsOfA();
  EXPECT_EQ(addrs.find("198.18.0.100"), std::string::npos) << addrs;
  EXPECT_NE(addrs.find("inet 198.18.0.1/24"), std::string::npos) << addrs;  // the real one stays
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.IsPresent(Spec(kVip, {}, "veth-a"))); }), "false");
  EXPECT_FALSE(PingFromB(kVip));
}

TEST_F(vip_Netns, AddAndRemoveAreIdempotent) {
  auto add = [](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "veth-a"))); };
  EXPECT_EQ(InA(add), "ok");
  EXPECT_EQ(InA(add), "ok");
  // Already there with another prefix counts as there: no second entry.
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 32, "veth-a"))); }), "ok");
  EXPECT_EQ(CountOf(AddrsOfA(), "198.18.0.100/"), 1u) << AddrsOfA();

  // Remove ignores the prefix given: the address is what identifies a VIP.
  auto remove = [](VipManager& m) { return Str(m.Remove(Spec(kVip, 32, "veth-a"))); };
  EXPECT_EQ(InA(remove), "ok");
  EXPECT_EQ(InA(remove), "ok");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Remove(Spec(kVip, {}, ""))); }), "ok");
  EXPECT_EQ(CountOf(AddrsOfA(), "198.18.0.100"), 0u) << AddrsOfA();
}

TEST_F(vip_Netns, RemoveWithoutInterfaceFindsTheAddress) {
  ASSERT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "veth-a"))); }), "ok");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Remove(Spec(kVip, {}, ""))); }), "ok");
  EXPECT_EQ(CountOf(AddrsOfA(), "198.18.0.100"), 0u) << AddrsOfA();
}

TEST_F(vip_Netns, InterfaceAndPrefixComeFromTheSubnet) {
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Resolve(Spec(kVip, {}, ""))); }),
            "198.18.0.100/24 on veth-a");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Resolve(Spec(kVip, 28, ""))); }),
            "198.18.0.100/28 on veth-a");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, {}, ""))); }), "ok");
  std::string shown = Sh("ip -n " + a_ + " addr show dev veth-a").out;
  EXPECT_NE(shown.find("inet 198.18.0.100/24"), std::string::npos) << shown;
  // Once added, the VIP resolves as before: the real address still decides.
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Resolve(Spec(kVip, {}, ""))); }),
            "198.18.0.100/24 on veth-a");
  EXPECT_TRUE(PingFromB(kVip));
}

TEST_F(vip_Netns, NamedInterfaceWithoutThatSubnetGetsHostPrefix) {
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Resolve(Spec(kVip, {}, "lo"))); }),
            "198.18.0.100/32 on lo");
  // Loopback has no ARP: Add puts the address there and announces nothing.
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, {}, "lo"))); }), "ok");
  std::string shown = Sh("ip -n " + a_ + " addr show dev lo").out;
  EXPECT_NE(shown.find("inet 198.18.0.100/32"), std::string::npos) << shown;
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Remove(Spec(kVip, {}, "lo"))); }), "ok");
  EXPECT_EQ(CountOf(AddrsOfA(), "198.18.0.100"), 0u);
}

TEST_F(vip_Netns, NoInterfaceInTheSubnetIsAnErrorNamingTheVip) {
  ASSERT_EQ(Sh("ip -n " + a_ + " addr flush dev veth-a").rc, 0);
  std::string out = InA([](VipManager& m) { return Str(m.Add(Spec(kVip, {}, ""))); });
  EXPECT_EQ(out,
            "not found: add VIP 198.18.0.100: no interface has an address in the same subnet as "
            "198.18.0.100; name the interface");
  EXPECT_EQ(CountOf(AddrsOfA(), "198.18.0.100"), 0u);
}

TEST_F(vip_Netns, UnknownInterfaceIsAClearError) {
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "nosuch0"))); }),
            "not found: add VIP 198.18.0.100/24 on nosuch0: interface nosuch0 not found");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Remove(Spec(kVip, 24, "nosuch0"))); }),
            "not found: remove VIP 198.18.0.100/24 on nosuch0: interface nosuch0 not found");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.IsPresent(Spec(kVip, {}, "nosuch0"))); }),
            "not found: look up VIP 198.18.0.100 on nosuch0: interface nosuch0 not found");
}

TEST_F(vip_Netns, MalformedSpecsAreRejected) {
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec("198.18.0.300", {}, "veth-a"))); }),
            "invalid argument: add VIP 198.18.0.300 on veth-a: \"198.18.0.300\" is not an IPv4 "
            "or IPv6 address");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 33, "veth-a"))); }),
            "invalid argument: add VIP 198.18.0.100/33 on veth-a: prefix length 33 is outside "
            "1..32");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "a-very-long-name0"))); }),
            "invalid argument: add VIP 198.18.0.100/24 on a-very-long-name0: "
            "\"a-very-long-name0\" is not a valid interface name");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec("fe80::4b:100", {}, ""))); }),
            "invalid argument: add VIP fe80::4b:100: a link-local VIP needs an interface: every "
            "link has that subnet");
}

TEST_F(vip_Netns, PermissionErrorNamesVipInterfaceAndReason) {
  std::string out = InA([](VipManager& m) {
    // Give up root in the child: adding an address needs CAP_NET_ADMIN.
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
      return std::string("cannot drop privileges");
    }
    return Str(m.Add(Spec(kVip, 24, "veth-a")));
  });
  EXPECT_EQ(out, "I/O error: add VIP 198.18.0.100/24 on veth-a: Operation not permitted");
}

TEST_F(vip_Netns, GratuitousArpMovesPeersNeighbourEntry) {
  // b remembers the VIP at another MAC, as after a failover from the other
  // node; the gratuitous ARP must move it to a's MAC without b asking.
  ASSERT_EQ(Sh("ip -n " + b_ + " neigh replace " + kVip +
               " lladdr 02:00:00:00:00:99 dev veth-b nud stale")
                .rc,
            0);
  ASSERT_EQ(NeighbourMacInB(kVip), "02:00:00:00:00:99");
  ASSERT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "veth-a"))); }), "ok");
  std::string mac;
  for (auto end = Clock::now() + milliseconds(2000); Clock::now() < end;) {
    mac = NeighbourMacInB(kVip);
    if (mac == kMacA) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(mac, kMacA);
}

TEST_F(vip_Netns, GratuitousArpIsSentThreeTimesAboutAHundredMsApart) {
  // Listen on veth-b for ARP requests whose sender and target are the VIP.
  NetnsChild capture(b_, [](const std::function<void()>& ready) -> std::string {
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ARP);
    sll.sll_ifindex = static_cast<int>(if_nametoindex("veth-b"));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) {
      return std::string("capture: ") + std::strerror(errno);
    }
    ready();
    in_addr vip;
    inet_pton(AF_INET, kVip, &vip);
    std::vector<long> times;
    auto start = Clock::now();
    auto end = start + milliseconds(1500);
    while (Clock::now() < end) {
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      ether_arp arp;
      if (recv(fd, &arp, sizeof(arp), 0) != sizeof(arp)) continue;
      char mac[18];
      std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", arp.arp_sha[0],
                    arp.arp_sha[1], arp.arp_sha[2], arp.arp_sha[3], arp.arp_sha[4], arp.arp_sha[5]);
      if (ntohs(arp.arp_op) == ARPOP_REQUEST && std::memcmp(arp.arp_spa, &vip, 4) == 0 &&
          std::memcmp(arp.arp_tpa, &vip, 4) == 0 && std::string(mac) == kMacA) {
        times.push_back(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
      }
    }
    std::string out = "count=" + std::to_string(times.size());
    for (size_t i = 1; i < times.size(); ++i)
      out += " gap=" + std::to_string(times[i] - times[i - 1]);
    return out;
  });
  ASSERT_TRUE(capture.WaitReady()) << capture.Finish();
  // The repeats go out from a background thread: the process that added the
  // VIP (here a short-lived child) must outlive them, as hakitd does.
  ASSERT_EQ(InA([](VipManager& m) {
              std::string added = Str(m.Add(Spec(kVip, 24, "veth-a")));
              std::this_thread::sleep_for(milliseconds(500));
              return added;
            }),
            "ok");
  std::string seen = capture.Finish();
  ASSERT_EQ(seen.rfind("count=3", 0), 0u) << seen;
  std::istringstream gaps(seen.substr(7));
  std::string gap;
  while (gaps >> gap) {
    long ms = std::stol(gap.substr(4));
    EXPECT_GE(ms, 80) << seen;
    EXPECT_LE(ms, 400) << seen;
  }
}

TEST_F(vip_Netns, NoGratuitousArpWhenArpRerouteIsOff) {
  ASSERT_EQ(Sh("ip -n " + b_ + " neigh replace " + kVip +
               " lladdr 02:00:00:00:00:99 dev veth-b nud stale")
                .rc,
            0);
  EXPECT_EQ(InA([](VipManager& m) {
              VipSpec spec = Spec(kVip, 24, "veth-a");
              spec.arp_reroute = false;
              return Str(m.Add(spec));
            }),
            "ok");
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(NeighbourMacInB(kVip), "02:00:00:00:00:99");
}

TEST_F(vip_Netns, ProbeFindsVipHeldByPeer) {
  ASSERT_EQ(Sh("ip -n " + b_ + " addr add 198.18.0.101/24 dev veth-b").rc, 0);
  std::string out = InA([](VipManager& m) {
    std::string mac;
    auto start = Clock::now();
    auto r = m.ProbeInUse(Spec("198.18.0.101", {}, ""), milliseconds(2000), &mac);
    auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    // An answer ends the probe at once, long before the timeout.
    return Str(r) + " " + mac + (took < 1000 ? " fast" : " slow");
  });
  EXPECT_EQ(out, std::string("true ") + kMacB + " fast");
}

TEST_F(vip_Netns, ProbeOfFreeVipReturnsFalseAfterTimeout) {
  std::string out = InA([](VipManager& m) {
    std::string mac = "untouched";
    auto start = Clock::now();
    auto r = m.ProbeInUse(Spec("198.18.0.102", {}, "veth-a"), milliseconds(300), &mac);
    auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    return Str(r) + " " + mac + " " +
           (took >= 290 && took < 800 ? "in-time" : std::to_string(took));
  });
  EXPECT_EQ(out, "false untouched in-time");
}

TEST_F(vip_Netns, ProbeIgnoresThisHostsOwnVip) {
  ASSERT_EQ(InA([](VipManager& m) { return Str(m.Add(Spec(kVip, 24, "veth-a"))); }), "ok");
  EXPECT_EQ(InA([](VipManager& m) {
              return Str(m.ProbeInUse(Spec(kVip, {}, ""), milliseconds(300), nullptr));
            }),
            "false");
}

TEST_F(vip_Netns, ProbeErrors) {
  EXPECT_EQ(InA([](VipManager& m) {
              return Str(m.ProbeInUse(Spec(kVip, {}, "nosuch0"), milliseconds(100), nullptr));
            }),
            "not found: probe VIP 198.18.0.100 on nosuch0: interface nosuch0 not found");
  EXPECT_EQ(InA([](VipManager& m) {
              return Str(m.ProbeInUse(Spec(kVip, {}, "lo"), milliseconds(100), nullptr));
            }),
            "unsupported: probe VIP 198.18.0.100/32 on lo: the interface does not use ARP");
  ASSERT_EQ(Sh("ip -n " + a_ + " link set veth-a down").rc, 0);
  EXPECT_EQ(InA([](VipManager& m) {
              return Str(m.ProbeInUse(Spec(kVip, {}, "veth-a"), milliseconds(100), nullptr));
            }),
            "I/O error: probe VIP 198.18.0.100/24 on veth-a: send ARP probe: Network is down");
}

std::string Describe(const Result<LinkState>& r) {
  if (!r.ok()) return r.status().ToString();
  const LinkState& s = *r;
  return s.name + (s.admin_up ? " up" : " down") + (s.carrier ? " carrier" : " no-carrier") +
         (s.running ? " running" : " not-running") + (s.usable() ? " usable" : " unusable") +
         " mac=" + s.mac;
}

TEST_F(vip_Netns, InterfaceExistsAndLinkState) {
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.InterfaceExists("veth-a")); }), "true");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.InterfaceExists("lo")); }), "true");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.InterfaceExists("veth-b")); }), "false");
  EXPECT_EQ(InA([](VipManager& m) { return Str(m.InterfaceExists("nosuch0")); }), "false");
  EXPECT_EQ(InA([](VipManager& m) { return Describe(m.GetLinkState("veth-a")); }),
            std::string("veth-a up carrier running usable mac=") + kMacA);
  EXPECT_EQ(InA([](VipManager& m) { return Describe(m.GetLinkState("nosuch0")); }),
            "not found: interface nosuch0 not found");
  EXPECT_EQ(InA([](VipManager& m) {
              return Str(m.GetLinkState("lo").status()) +
                     (m.GetLinkState("lo")->loopback ? " loopback" : "");
            }),
            "ok loopback");

  // The peer's end down: a's end stays up but loses its carrier.
  ASSERT_EQ(Sh("ip -n " + b_ + " link set veth-b down").rc, 0);
  EXPECT_EQ(InA([](VipManager& m) { return Describe(m.GetLinkState("veth-a")); }),
            std::string("veth-a up no-carrier not-running unusable mac=") + kMacA);

  ASSERT_EQ(Sh("ip -n " + a_ + " link set veth-a down").rc, 0);
  EXPECT_EQ(InA([](VipManager& m) { return Describe(m.GetLinkState("veth-a")); }),
            std::string("veth-a down no-carrier not-running unusable mac=") + kMacA);
}

// IPv6 with a link-local VIP: link-local traffic cannot leave the veth link
// between our two namespaces, and the test needs no address outside
// 198.18.0.0/24 that could be routed anywhere.
}  // namespace
}  // namespace hakit::vip
