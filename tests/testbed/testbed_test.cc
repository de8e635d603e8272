// The testbed itself: topology, link faults, processes in namespaces, probes
// and cleanup. Needs root; skips otherwise. Every host lives in namespaces
// these tests create, on 198.18.0.0/24.
#include "hakit/testbed/testbed.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "hakit/testbed/net_probe.h"

namespace hakit::testbed {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using sdk::Status;

// What `ip netns list` shows, names only.
std::set<std::string> ListNetns() {
  std::set<std::string> names;
  FILE* p = popen("ip netns list 2>/dev/null", "r");
  if (p == nullptr) return names;
  char line[512];
  while (fgets(line, sizeof line, p) != nullptr) {
    std::string s(line);
    s = s.substr(0, s.find_first_of(" \n"));
    if (!s.empty()) names.insert(s);
  }
  pclose(p);
  return names;
}

ino_t InodeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits until `path` exists and is non-empty.
bool WaitForFile(const fs::path& path, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (fs::exists(path, ec) && fs::file_size(path, ec) > 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// Gone, or a zombie waiting for a parent that is not us: dead either way.
bool IsDead(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return true;
  size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

bool WaitDead(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (IsDead(pid)) return true;
    std::this_thread::sleep_for(10ms);
  }
  return IsDead(pid);
}

// A fresh directory under /tmp, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hakit-testbed-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TestbedOptions FullOptions() {
  TestbedOptions o;
  o.nodes = {"node1", "node2"};
  o.lans = 2;
  o.client = true;
  o.witness = true;
  return o;
}

class TestbedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Status s = Testbed::CheckPrerequisites();
    if (!s.ok()) GTEST_SKIP() << s.ToString();
  }

  static std::unique_ptr<Testbed> Make(const TestbedOptions& options) {
    auto r = Testbed::Create(options);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }
};

// The suite's name is what CTest shows ("testbed.CutNodeSilencesEveryLan"),
// so `ctest -R testbed` selects these cases.
using testbed = TestbedTest;

TEST_F(testbed, TopologyAddressesAndReachability) {
  auto tb = Make(FullOptions());
  ASSERT_NE(tb, nullptr);

  EXPECT_EQ(tb->Address("node1", 0), "198.18.0.11");
  EXPECT_EQ(tb->Address("node2", 0), "198.18.0.12");
  EXPECT_EQ(tb->Address("node1", 1), "198.18.0.139");
  EXPECT_EQ(tb->Address("node2", 1), "198.18.0.140");
  EXPECT_EQ(tb->ClientAddress(0), "198.18.0.50");
  EXPECT_EQ(tb->ClientAddress(1), "198.18.0.178");
  EXPECT_EQ(tb->WitnessAddress(), "198.18.0.60");
  EXPECT_EQ(tb->Address("witness", 1), "");  // the witness sees lan0 only
  EXPECT_EQ(tb->Address("nosuch", 0), "");
  EXPECT_EQ(tb->NodeNamespace("nosuch"), "");
  EXPECT_EQ(tb->NodeNamespace("client"), "");  // not a node
  EXPECT_EQ(Testbed::VipAddress(0), "198.18.0.100");
  EXPECT_EQ(Testbed::VipAddress(20), "198.18.0.120");
  EXPECT_EQ(Testbed::LanInterface(1), "lan1");
  EXPECT_EQ(tb->HubPort("node1", 1), "node1-l1");
  EXPECT_EQ(tb->NodeNamespace("node1"), tb->tag() + "-node1");

  std::set<std::string> listed = ListNetns();
  for (const std::string& ns : tb->Namespaces()) EXPECT_TRUE(listed.count(ns)) << ns;

  auto addr =
      tb->RunIn(tb->NodeNamespace("node1"), {"ip", "-o", "-4", "addr", "show", "dev", "lan0"}, 5s);
  ASSERT_TRUE(addr.ok()) << addr.status().ToString();
  EXPECT_NE(addr->output.find("198.18.0.11/25"), std::string::npos) << addr->output;

  const std::string n1 = tb->NodeNamespace("node1");
  const std::string n2 = tb->NodeNamespace("node2");
  const std::string client = tb->ClientNamespace();
  const std::string witness = tb->WitnessNamespace();
  for (int lan = 0; lan < 2; ++lan) {
    EXPECT_TRUE(Ping(n1, tb->Address("node2", lan), 3s).ok()) << "lan" << lan;
    EXPECT_TRUE(Ping(n2, tb->Address("node1", lan), 3s).ok()) << "lan" << lan;
    EXPECT_TRUE(Ping(client, tb->Address("node1", lan), 3s).ok()) << "lan" << lan;
    EXPECT_TRUE(Ping(client, tb->Address("node2", lan), 3s).ok()) << "lan" << lan;
  }
  EXPECT_TRUE(Ping(witness, tb->Address("node1", 0), 3s).ok());
  EXPECT_TRUE(Ping(n2, tb->WitnessAddress(), 3s).ok());

  Status empty = Ping("", "198.18.0.12", 100ms);
  EXPECT_EQ(empty.code(), Status::Code::kInvalidArgument) << empty.ToString();
}

TEST_F(testbed, CutLinkOnLan0LeavesLan1AndRestores) {
  TestbedOptions o = FullOptions();
  o.witness = false;
  auto tb = Make(o);
  ASSERT_NE(tb, nullptr);
  const std::string n1 = tb->NodeNamespace("node1");
  const std::string n2 = tb->NodeNamespace("node2");
  ASSERT_TRUE(Ping(n1, tb->Address("node2", 0), 3s).ok());

  for (CutMode mode : {CutMode::kLinkDown, CutMode::kSilentDrop}) {
    SCOPED_TRACE(mode == CutMode::kLinkDown ? "kLinkDown" : "kSilentDrop");
    ASSERT_TRUE(tb->CutLink("node1", 0, mode).ok());
    EXPECT_FALSE(Ping(n1, tb->Address("node2", 0), 500ms).ok());
    EXPECT_FALSE(Ping(n2, tb->Address("node1", 0), 500ms).ok());
    EXPECT_TRUE(Ping(n1, tb->Address("node2", 1), 3s).ok());
    EXPECT_TRUE(Ping(n2, tb->Address("node1", 1), 3s).ok());

    // What node1 itself sees: a pulled cable loses carrier, a silent drop not.
    auto state = tb->RunIn(n1, {"cat", "/sys/class/net/lan0/carrier"}, 5s);
    ASSERT_TRUE(state.ok()) << state.status().ToString();
    EXPECT_EQ(state->output, mode == CutMode::kLinkDown ? "0\n" : "1\n");

    ASSERT_TRUE(tb->RestoreLink("node1", 0).ok());
    EXPECT_TRUE(Ping(n1, tb->Address("node2", 0), 3s).ok());
    EXPECT_TRUE(Ping(n2, tb->Address("node1", 0), 3s).ok());
  }

  EXPECT_EQ(tb->CutLink("nosuch", 0).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(tb->CutLink("node1", 2).code(), Status::Code::kInvalidArgument);
}

TEST_F(testbed, CutNodeSilencesEveryLan) {
  auto tb = Make(FullOptions());
  ASSERT_NE(tb, nullptr);
  const std::string n2 = tb->NodeNamespace("node2");
  ASSERT_TRUE(tb->CutNode("node1").ok());
  EXPECT_FALSE(Ping(n2, tb->Address("node1", 0), 400ms).ok());
  EXPECT_FALSE(Ping(n2, tb->Address("node1", 1), 400ms).ok());
  EXPECT_FALSE(Ping(tb->WitnessNamespace(), tb->Address("node1", 0), 400ms).ok());
  EXPECT_TRUE(Ping(n2, tb->WitnessAddress(), 3s).ok());
  EXPECT_TRUE(Ping(tb->ClientNamespace(), tb->Address("node2", 1), 3s).ok());
  ASSERT_TRUE(tb->RestoreNode("node1").ok());
  EXPECT_TRUE(Ping(n2, tb->Address("node1", 0), 3s).ok());
  EXPECT_TRUE(Ping(n2, tb->Address("node1", 1), 3s).ok());
}

TEST_F(testbed, SpawnRunsInNamespaceWithPrivateBindMount) {
  auto tb = Make(FullOptions());
  ASSERT_NE(tb, nullptr);
  TempDir tmp;
  const fs::path source = tmp.path() / "source";
  const fs::path target = tmp.path() / "target" / "deep";  // Spawn creates it
  fs::create_directories(source);
  setenv("HAKIT_TESTBED_LEAK", "1", 1);

  SpawnOptions so;
  so.netns = tb->NodeNamespace("node1");
  so.argv = {"sh", "-c",
             "sleep 100 & echo $! > \"$T/child\"; env > \"$T/env\"; echo $$ > \"$T/ready\"; wait"};
  so.env = {{"PATH", "/usr/bin:/bin"}, {"T", target.string()}};
  so.stdout_path = (tmp.path() / "out.log").string();
  so.stderr_path = so.stdout_path;
  so.bind_mounts = {{source.string(), target.string()}};
  auto pid = tb->Spawn(so);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();

  ASSERT_TRUE(WaitForFile(source / "ready", 5s)) << ReadFile(tmp.path() / "out.log");
  EXPECT_EQ(std::stoi(ReadFile(source / "ready")), *pid);
  // The bind mount is the child's alone: here the target is an empty dir.
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_TRUE(fs::is_empty(target));
  // It runs in node1's network namespace and in a mount namespace of its own.
  const std::string proc = "/proc/" + std::to_string(*pid);
  EXPECT_EQ(InodeOf(proc + "/ns/net"), InodeOf("/run/netns/" + tb->NodeNamespace("node1")));
  EXPECT_NE(InodeOf(proc + "/ns/mnt"), InodeOf("/proc/self/ns/mnt"));
  // Exactly the environment given (sh adds PWD, SHLVL and _ itself).
  const std::string env = ReadFile(source / "env");
  EXPECT_NE(env.find("T=" + target.string()), std::string::npos) << env;
  EXPECT_EQ(env.find("HAKIT_TESTBED_LEAK"), std::string::npos) << env;
  unsetenv("HAKIT_TESTBED_LEAK");

  const pid_t child = std::stoi(ReadFile(source / "child"));
  EXPECT_FALSE(tb->WaitExit(*pid, 0ms).has_value());
  ASSERT_TRUE(tb->KillGroup(*pid).ok());
  auto status = tb->WaitExit(*pid, 5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->signal, SIGKILL) << status->ToString();
  EXPECT_TRUE(WaitDead(child, 2s)) << "background child " << child << " survived";
  // Reaped once, the same answer again; Kill now says it is gone.
  EXPECT_EQ(tb->WaitExit(*pid, 0ms)->signal, SIGKILL);
  EXPECT_EQ(tb->Kill(*pid, SIGTERM).code(), Status::Code::kNotFound);
}

TEST_F(testbed, KillGroupAfterLeaderExitReachesItsOrphans) {
  TestbedOptions o;
  o.client = false;
  auto tb = Make(o);
  ASSERT_NE(tb, nullptr);
  TempDir tmp;
  SpawnOptions so;
  so.netns = tb->NodeNamespace("node2");
  so.argv = {"/bin/sh", "-c", "sleep 100 & echo $! > \"$T/child\"; exit 7"};
  so.env = {{"PATH", "/usr/bin:/bin"}, {"T", tmp.path().string()}};
  auto pid = tb->Spawn(so);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  auto status = tb->WaitExit(*pid, 5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 7);
  ASSERT_TRUE(WaitForFile(tmp.path() / "child", 2s));
  const pid_t child = std::stoi(ReadFile(tmp.path() / "child"));
  EXPECT_FALSE(IsDead(child));
  ASSERT_TRUE(tb->KillGroup(*pid).ok());
  EXPECT_TRUE(WaitDead(child, 2s));
}

TEST_F(testbed, SpawnReportsStartErrorsClearly) {
  TestbedOptions o;
  o.client = false;
  auto tb = Make(o);
  ASSERT_NE(tb, nullptr);
  SpawnOptions so;
  so.netns = tb->NodeNamespace("node1");

  so.argv = {"/nonexistent/hakit-no-such-program"};
  auto r = tb->Spawn(so);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("hakit-no-such-program"), std::string::npos);
  EXPECT_NE(r.status().message().find("No such file or directory"), std::string::npos)
      << r.status().ToString();

  so.argv = {"hakit-no-such-program"};  // looked up in PATH
  EXPECT_EQ(tb->Spawn(so).status().code(), Status::Code::kNotFound);

  so.argv = {"/bin/true"};
  so.working_dir = "/nonexistent-dir";
  r = tb->Spawn(so);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("changing to /nonexistent-dir"), std::string::npos)
      << r.status().ToString();
  so.working_dir.clear();

  so.bind_mounts = {{"/nonexistent-source", "/tmp/hakit-testbed-unused-target"}};
  r = tb->Spawn(so);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bind mounting /nonexistent-source"), std::string::npos)
      << r.status().ToString();
  fs::remove("/tmp/hakit-testbed-unused-target");
  so.bind_mounts.clear();

  so.netns = tb->tag() + "-nosuch";
  r = tb->Spawn(so);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_NE(r.status().message().find("-nosuch"), std::string::npos) << r.status().ToString();

  so.netns = "";
  EXPECT_EQ(tb->Spawn(so).status().code(), Status::Code::kInvalidArgument);

  EXPECT_EQ(tb->Kill(getpid(), 0).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(tb->KillGroup(1, 0).code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(tb->WaitExit(1, 0ms).has_value());
}

TEST_F(testbed, RunInReportsExitCodeOutputAndTimeout) {
  TestbedOptions o;
  o.client = false;
  auto tb = Make(o);
  ASSERT_NE(tb, nullptr);
  const std::string n1 = tb->NodeNamespace("node1");

  auto r = tb->RunIn(n1, {"sh", "-c", "echo out; echo err >&2; exit 3"}, 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status.code, 3);
  EXPECT_EQ(r->output, "out\nerr\n");

  auto start = std::chrono::steady_clock::now();
  r = tb->RunIn(n1, {"sleep", "5"}, 200ms);
  EXPECT_EQ(r.status().code(), Status::Code::kTimeout) << r.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  // A background child holding the output pipe does not keep RunIn waiting.
  start = std::chrono::steady_clock::now();
  r = tb->RunIn(n1, {"sh", "-c", "sleep 100 & echo started"}, 5s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->output, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  EXPECT_EQ(tb->RunIn("", {"true"}, 1s).status().code(), Status::Code::kInvalidArgument);
}

TEST_F(testbed, TcpProbesReachServersAndVip) {
  auto tb = Make(FullOptions());
  ASSERT_NE(tb, nullptr);
  const std::string client = tb->ClientNamespace();
  const std::string n1 = tb->NodeNamespace("node1");
  const std::string n2 = tb->NodeNamespace("node2");

  auto server = TcpServer::Start(n2, tb->Address("node2", 0), 0,
                                 [](const std::string& req) { return "node2:" + req; });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);

  auto reply = TcpRequest(client, tb->Address("node2", 0), port, "hello", 3s);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(*reply, "node2:hello");
  EXPECT_TRUE(TryConnect(client, tb->Address("node2", 0), port, 2s));
  EXPECT_FALSE(TryConnect(client, tb->Address("node2", 0), uint16_t(port + 1), 2s));
  auto refused = TcpRequest(client, tb->Address("node2", 0), uint16_t(port + 1), "x", 2s);
  EXPECT_NE(refused.status().message().find("refused"), std::string::npos)
      << refused.status().ToString();

  ASSERT_TRUE(tb->CutLink("client", 0, CutMode::kSilentDrop).ok());
  EXPECT_FALSE(TryConnect(client, tb->Address("node2", 0), port, 300ms));
  EXPECT_EQ(TcpRequest(client, tb->Address("node2", 0), port, "x", 300ms).status().code(),
            Status::Code::kTimeout);
  ASSERT_TRUE(tb->RestoreLink("client", 0).ok());
  EXPECT_TRUE(TryConnect(client, tb->Address("node2", 0), port, 3s));

  // A VIP on node1's lan0 is reachable from the client: it is on lan0's subnet.
  const std::string vip = Testbed::VipAddress(0);
  auto add = tb->RunIn(n1, {"ip", "addr", "add", vip + "/25", "dev", "lan0"}, 5s);
  ASSERT_TRUE(add.ok() && add->status.code == 0) << add.status().ToString();
  auto vip_server = TcpServer::Start(n1, vip, 8080, [](const std::string&) { return "node1"; });
  ASSERT_TRUE(vip_server.ok()) << vip_server.status().ToString();
  reply = TcpRequest(client, vip, 8080, "", 3s);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(*reply, "node1");
}

TEST_F(testbed, DestructorCleansUpWhenATestFailsMidway) {
  TempDir tmp;
  std::vector<std::string> names;
  pid_t leader = -1;
  bool stray_was_alive = false;
  // A test body that stops half-way, as a failed ASSERT would: processes
  // running, one of them out of our process group, links cut.
  auto failing_body = [&] {
    auto tb = Make(FullOptions());
    if (tb == nullptr) return;
    names = tb->Namespaces();
    SpawnOptions so;
    so.netns = tb->NodeNamespace("node1");
    so.argv = {"sh", "-c", "setsid sleep 100 & echo $! > \"$T/stray\"; sleep 100"};
    so.env = {{"PATH", "/usr/bin:/bin"}, {"T", tmp.path().string()}};
    so.bind_mounts = {{tmp.path().string(), "/mnt"}};
    auto pid = tb->Spawn(so);
    if (!pid.ok()) return;
    leader = *pid;
    if (!WaitForFile(tmp.path() / "stray", 5s)) return;
    stray_was_alive = !IsDead(std::stoi(ReadFile(tmp.path() / "stray")));
    if (!tb->CutNode("node2").ok()) return;
    return;  // "ASSERT failed here"
  };
  failing_body();
  ASSERT_FALSE(names.empty());
  ASSERT_GT(leader, 0);
  std::set<std::string> listed = ListNetns();
  for (const std::string& ns : names) EXPECT_EQ(listed.count(ns), 0u) << ns << " left behind";
  EXPECT_TRUE(IsDead(leader));
  EXPECT_TRUE(stray_was_alive);
  const pid_t stray = std::stoi(ReadFile(tmp.path() / "stray"));
  EXPECT_TRUE(WaitDead(stray, 2s)) << "process " << stray << " that left the group survived";
}

TEST_F(testbed, TwoTestbedsAtOnceDoNotCollide) {
  TestbedOptions o;
  std::unique_ptr<Testbed> b;
  // Created concurrently, as two test processes or threads would.
  std::thread other([&] { b = Make(o); });
  auto a = Make(o);
  other.join();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->tag(), b->tag());
  for (const std::string& ns : a->Namespaces()) {
    for (const std::string& other_ns : b->Namespaces()) EXPECT_NE(ns, other_ns);
  }

  // Same addresses, separate networks: each client reaches its own node2.
  const std::string addr = a->Address("node2", 0);
  ASSERT_EQ(addr, b->Address("node2", 0));
  auto sa = TcpServer::Start(a->NodeNamespace("node2"), addr, 7000,
                             [](const std::string&) { return "a"; });
  auto sb = TcpServer::Start(b->NodeNamespace("node2"), addr, 7000,
                             [](const std::string&) { return "b"; });
  ASSERT_TRUE(sa.ok()) << sa.status().ToString();
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  auto ra = TcpRequest(a->ClientNamespace(), addr, 7000, "", 3s);
  auto rb = TcpRequest(b->ClientNamespace(), addr, 7000, "", 3s);
  ASSERT_TRUE(ra.ok()) << ra.status().ToString();
  ASSERT_TRUE(rb.ok()) << rb.status().ToString();
  EXPECT_EQ(*ra, "a");
  EXPECT_EQ(*rb, "b");

  // A fault in one leaves the other alone.
  ASSERT_TRUE(a->CutNode("node2").ok());
  EXPECT_FALSE(TryConnect(a->ClientNamespace(), addr, 7000, 300ms));
  EXPECT_TRUE(TryConnect(b->ClientNamespace(), addr, 7000, 2s));
}

TEST_F(testbed, CleanupStaleRemovesOnlyNamespacesOfDeadOwners) {
  // A pid that surely exited: our own child, reaped.
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);

  const std::string stale = "hkst-" + std::to_string(dead) + "-0-node1";
  const std::string mine = "hkst-" + std::to_string(getpid()) + "-0-node1";
  const std::string init = "hkst-1-0-node1";  // pid 1 is always alive
  const std::string other_prefix = "hkstx-" + std::to_string(dead) + "-0-node1";
  const std::string other_scheme = "hkst-" + std::to_string(dead) + "-node1";  // no counter
  const std::vector<std::string> all = {stale, mine, init, other_prefix, other_scheme};
  struct Guard {
    const std::vector<std::string>& names;
    ~Guard() {
      for (const std::string& n : names) {
        std::string cmd = "ip netns del " + n + " 2>/dev/null";
        if (system(cmd.c_str()) != 0) {
          // already gone
        }
      }
    }
  } guard{all};
  for (const std::string& n : all) {
    ASSERT_EQ(system(("ip netns add " + n).c_str()), 0) << n;
  }

  Status s = Testbed::CleanupStale("hkst");
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::set<std::string> listed = ListNetns();
  EXPECT_EQ(listed.count(stale), 0u);
  EXPECT_EQ(listed.count(mine), 1u);
  EXPECT_EQ(listed.count(init), 1u);
  EXPECT_EQ(listed.count(other_prefix), 1u);
  EXPECT_EQ(listed.count(other_scheme), 1u);

  EXPECT_EQ(Testbed::CleanupStale("Bad-Prefix").code(), Status::Code::kInvalidArgument);
}

TEST_F(testbed, FailedCreateRemovesWhatItBuilt) {
  // The next testbed's tag is predictable within this process: make its
  // node2 namespace exist already, so that Create fails half-way.
  TestbedOptions o;
  o.prefix = "hkpf";
  o.lans = 2;
  std::string next_tag;
  {
    auto first = Make(o);
    ASSERT_NE(first, nullptr);
    const std::string tag = first->tag();  // hkpf-<pid>-<n>
    const size_t dash = tag.rfind('-');
    next_tag = tag.substr(0, dash + 1) + std::to_string(std::stoi(tag.substr(dash + 1)) + 1);
  }
  const std::string squatter = next_tag + "-node2";
  ASSERT_EQ(system(("ip netns add " + squatter).c_str()), 0);
  auto r = Testbed::Create(o);
  EXPECT_EQ(system(("ip netns del " + squatter).c_str()), 0);
  ASSERT_FALSE(r.ok()) << "expected a collision on " << squatter;
  EXPECT_NE(r.status().message().find(squatter), std::string::npos) << r.status().ToString();
  for (const std::string& ns : ListNetns()) {
    EXPECT_NE(ns.rfind(next_tag + "-", 0), 0u) << ns << " left behind";
  }
}

TEST_F(testbed, CreateRejectsBadOptions) {
  auto code_of = [](TestbedOptions o) { return Testbed::Create(o).status().code(); };
  const auto kInvalid = Status::Code::kInvalidArgument;
  TestbedOptions o;
  o.lans = 3;
  EXPECT_EQ(code_of(o), kInvalid);
  o = {};
  o.nodes = {};
  EXPECT_EQ(code_of(o), kInvalid);
  o.nodes = {"node1", "node1"};
  EXPECT_EQ(code_of(o), kInvalid);
  o.nodes = {"node1", "client"};
  EXPECT_EQ(code_of(o), kInvalid);
  o.nodes = {"a-name-of-13c"};
  EXPECT_EQ(code_of(o), kInvalid);
  o.nodes = {"bad/name"};
  EXPECT_EQ(code_of(o), kInvalid);
  o = {};
  o.prefix = "HK";
  auto r = Testbed::Create(o);
  EXPECT_EQ(r.status().code(), kInvalid);
  EXPECT_NE(r.status().message().find("prefix"), std::string::npos) << r.status().ToString();
}

}  // namespace
}  // namespace hakit::testbed
