// The probes against the real thing: processes in /proc, a listening TCP
// socket, ICMP echo on the loopback.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "hakit/checkers/probes.h"

namespace hakit::checkers {
namespace {

namespace fs = std::filesystem;

// A copy of sleep(1) under a name no other process has.
class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "hkp" + std::to_string(::getpid() % 100000);
    exe_ = fs::temp_directory_path() / name_;
    fs::copy_file("/bin/sleep", exe_, fs::copy_options::overwrite_existing);
    fs::permissions(exe_, fs::perms::owner_all);
  }
  void TearDown() override {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
    std::error_code ec;
    fs::remove(exe_, ec);
  }
  pid_t Spawn(const char* arg) {
    pid_t p = ::fork();
    if (p == 0) {
      ::execl(exe_.c_str(), name_.c_str(), arg, nullptr);
      ::_exit(127);
    }
    pids_.push_back(p);
    return p;
  }
  int Count(const ProcMatch& m) {
    auto r = CountProcesses(m);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : -1;
  }
  // /proc shows the new comm once exec is done.
  void WaitCount(const ProcMatch& m, int n) {
    for (int i = 0; i < 200 && Count(m) != n; ++i) ::usleep(10000);
    EXPECT_EQ(Count(m), n);
  }
  std::string name_;
  fs::path exe_;
  std::vector<pid_t> pids_;
};

TEST_F(ProcessTest, CountsByNameRegexAndArguments) {
  ProcMatch by_name{name_, "", ""};
  EXPECT_EQ(Count(by_name), 0);
  pid_t a = Spawn("30");
  Spawn("31");
  WaitCount(by_name, 2);
  EXPECT_EQ(Count({"", "^hkp[0-9]+$", ""}), 2);
  EXPECT_EQ(Count({name_, "", "^31$"}), 1);
  EXPECT_EQ(Count({name_, "", "^4"}), 0);
  // Killed but not reaped yet: a zombie no longer counts.
  ::kill(a, SIGKILL);
  WaitCount(by_name, 1);
}

TEST(Probes, BadRegexIsAnError) {
  auto r = CountProcesses({"", "([", ""});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("regular expression"), std::string::npos);
  auto missing = CountProcesses({"x", "", ""}, "/nonexistent-proc");
  EXPECT_FALSE(missing.ok());
}

TEST(Probes, TcpUpWhileListeningDownOnceClosed) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const int port = acceptor.local_endpoint().port();
  int answers = 0;
  bool up = false;
  std::string why;
  auto done = [&](bool u, const std::string& w) {
    ++answers;
    up = u;
    why = w;
  };
  ProbeTcp(io, "127.0.0.1", port, std::chrono::seconds(2), done);
  io.run();
  EXPECT_EQ(answers, 1);
  EXPECT_TRUE(up) << why;
  acceptor.close();
  io.restart();
  ProbeTcp(io, "127.0.0.1", port, std::chrono::seconds(2), done);
  io.run();
  EXPECT_EQ(answers, 2);
  EXPECT_FALSE(up);
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << why;
}

TEST(Probes, PingLoopback) {
  if (::geteuid() != 0) GTEST_SKIP() << "raw ICMP sockets need root";
  boost::asio::io_context io;
  bool up = false;
  std::string why;
  ProbeAnyPing(io, {"not-an-address", "127.0.0.1"}, std::chrono::milliseconds(500),
               [&](bool u, const std::string& w) {
                 up = u;
                 why = w;
               });
  io.run();
  EXPECT_TRUE(up) << why;
  io.restart();
  ProbePing(io, "not-an-address", std::chrono::milliseconds(100),
            [&](bool u, const std::string& w) {
              up = u;
              why = w;
            });
  io.run();
  EXPECT_FALSE(up);
}

}  // namespace
}  // namespace hakit::checkers
