// The SQL Server module: what it declares once loaded by host/loader, its
// TDS PRELOGIN probe against real listeners (one laid out as MS-TDS says,
// others not SQL Server), and its service managers, checked on the
// ServiceManager seam and, for systemd, through a real HostContext running a
// stand-in systemctl.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "hakit/loader/loader.h"
#include "hakit/scripts/module_host_context.h"
#include "hakit/sqlserver/sqlserver_module.h"
#include "hakit/sqlserver/tds_prelogin.h"

namespace hakit::sqlserver {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Bytes = std::vector<std::uint8_t>;

// A PRELOGIN response written out by hand from MS-TDS 2.2.6.5 (not by the
// code under test): header type 0x04 (tabular result), status 0x01 (end of
// message), length 0x002B; option table VERSION@0x1A/6, ENCRYPTION@0x20/1,
// INSTOPT@0x21/1, THREADID@0x22/0, MARS@0x22/1, terminator; then VERSION
// 16.0.4003 sub-build 1, ENCRYPT_OFF, INSTOPT 0, MARS 0.
const Bytes kSqlServerReply = {
    0x04, 0x01, 0x00, 0x2B, 0x00, 0x00, 0x01, 0x00,  // header
    0x00, 0x00, 0x1A, 0x00, 0x06,                    // VERSION
    0x01, 0x00, 0x20, 0x00, 0x01,                    // ENCRYPTION
    0x02, 0x00, 0x21, 0x00, 0x01,                    // INSTOPT
    0x03, 0x00, 0x22, 0x00, 0x00,                    // THREADID (empty)
    0x04, 0x00, 0x22, 0x00, 0x01,                    // MARS
    0xFF,                                            // TERMINATOR
    0x10, 0x00, 0x0F, 0xA3, 0x00, 0x01,              // 16.0.4003.1
    0x00,                                            // ENCRYPT_OFF
    0x00,                                            // INSTOPT
    0x00,                                            // MARS off
};

// A TCP listener on 127.0.0.1 (ephemeral port) in a thread of the test.
// For each connection it reads what the client sends (up to one TDS
// packet), records it, and answers `reply(request)`; an empty answer closes.
class Listener {
 public:
  explicit Listener(std::function<Bytes(const Bytes&)> reply, std::uint16_t port = 0)
      : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Listener() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  Bytes last_request() {
    std::lock_guard<std::mutex> l(mu_);
    return last_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++connections_;
      Bytes req;
      std::uint8_t buf[512];
      // A TDS client sends one packet whose Length is in bytes 2..3.
      while (req.size() < 8 || req.size() < static_cast<std::size_t>((req[2] << 8) | req[3])) {
        timeval tv{2, 0};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.insert(req.end(), buf, buf + n);
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        last_ = req;
      }
      Bytes answer = reply_(req);
      if (!answer.empty()) ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  std::function<Bytes(const Bytes&)> reply_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  Bytes last_;
};

// Answers only what looks like a PRELOGIN request, as SQL Server does.
Bytes SqlServerAnswer(const Bytes& req) {
  if (req.size() < 8 || req[0] != kPacketPrelogin) return {};
  return kSqlServerReply;
}

Bytes Text(const std::string& s) { return Bytes(s.begin(), s.end()); }

// ---------------------------------------------------------------- wire format

TEST(TdsPrelogin, RequestHasTheLayoutOfMsTdsSample41) {
  // MS-TDS 4.1 "Pre-Login Request": header and option table (the option
  // values differ: ours sends version 0, ENCRYPT_NOT_SUP, thread id 0).
  const Bytes sample_head = {0x12, 0x01, 0x00, 0x2F, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1A, 0x00,
                             0x06, 0x01, 0x00, 0x20, 0x00, 0x01, 0x02, 0x00, 0x21, 0x00, 0x01, 0x03,
                             0x00, 0x22, 0x00, 0x04, 0x04, 0x00, 0x26, 0x00, 0x01, 0xFF};
  Bytes req = BuildPreloginRequest();
  ASSERT_EQ(req.size(), 0x2Fu);
  EXPECT_EQ(Bytes(req.begin(), req.begin() + sample_head.size()), sample_head);
  EXPECT_EQ(req[0x20 + 8], kEncryptNotSup);
}

TEST(TdsPrelogin, ParsesAResponseLaidOutPerTheSpec) {
  auto r = ParsePreloginResponse(kSqlServerReply);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->major, 16);
  EXPECT_EQ(r->minor, 0);
  EXPECT_EQ(r->build, 4003);
  EXPECT_EQ(r->sub_build, 1);
  EXPECT_EQ(r->encryption, kEncryptOff);
  EXPECT_EQ(r->ToString(), "16.0.4003.1 (encryption off)");
  PreloginReply same{16, 0, 4003, 1, kEncryptOff};
  EXPECT_EQ(BuildPreloginResponse(same), kSqlServerReply);
}

TEST(TdsPrelogin, RefusesMalformedResponses) {
  struct Case {
    const char* name;
    std::function<void(Bytes&)> change;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"short", [](Bytes& b) { b.resize(5); }, "a TDS header has 8"},
      {"type", [](Bytes& b) { b[0] = 0x12; }, "packet type 18"},
      {"eom", [](Bytes& b) { b[1] = 0x00; }, "end-of-message"},
      {"length", [](Bytes& b) { b[3] = 0x40; }, "Length field 64"},
      {"truncated",
       [](Bytes& b) {
         b.resize(20);
         b[3] = 20;
       },
       "truncated"},
      {"offset", [](Bytes& b) { b[11] = 0x30; }, "outside the option data"},
      {"into table", [](Bytes& b) { b[11] = 0x02; }, "outside the option data"},
      {"version first",
       [](Bytes& b) {
         std::swap(b[8], b[13]);
         std::swap(b[10], b[15]);
         std::swap(b[12], b[17]);
       },
       "VERSION is not the first"},
      {"version size", [](Bytes& b) { b[12] = 0x05; }, "VERSION is 5 bytes"},
      {"duplicate", [](Bytes& b) { b[18] = 0x01; }, "twice"},
      {"encryption value", [](Bytes& b) { b[40] = 0x07; }, "ENCRYPTION value 7"},
      {"no encryption", [](Bytes& b) { b[13] = 0x09; }, "no ENCRYPTION"},
  };
  for (const auto& c : cases) {
    Bytes b = kSqlServerReply;
    c.change(b);
    auto r = ParsePreloginResponse(b);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), sdk::Status::Code::kInvalidArgument) << c.name;
    EXPECT_THAT(r.status().message(), HasSubstr(c.why)) << c.name;
  }
}

// ---------------------------------------------------------------- real listeners

TEST(TdsProbe, AnswersFromASqlServerListener) {
  Listener server(SqlServerAnswer);
  auto r = ProbeTds("127.0.0.1", server.port(), std::chrono::milliseconds(3000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->major, 16);
  // What went over the wire is the PRELOGIN packet.
  EXPECT_EQ(server.last_request(), BuildPreloginRequest());
}

TEST(TdsProbe, ResponseSentInPiecesIsReadWhole) {
  Listener server([](const Bytes& req) { return SqlServerAnswer(req); });
  for (int i = 0; i < 3; ++i) {
    auto r = ProbeTds("127.0.0.1", server.port(), std::chrono::milliseconds(3000));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
  }
  EXPECT_EQ(server.connections(), 3);
}

TEST(TdsProbe, AnotherServiceOnThePortIsNotSqlServer) {
  Listener http([](const Bytes&) {
    return Text("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  auto r = ProbeTds("127.0.0.1", http.port(), std::chrono::milliseconds(3000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("not SQL Server"));
  EXPECT_THAT(r.status().message(), HasSubstr("127.0.0.1:" + std::to_string(http.port())));

  // A TDS-looking answer of the wrong kind (an echo of the request).
  Listener echo([](const Bytes& req) { return req; });
  r = ProbeTds("127.0.0.1", echo.port(), std::chrono::milliseconds(3000));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("packet type 18"));
}

TEST(TdsProbe, ClosedSilentAndAbsentListeners) {
  Listener closes([](const Bytes&) { return Bytes{}; });
  auto r = ProbeTds("127.0.0.1", closes.port(), std::chrono::milliseconds(3000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), sdk::Status::Code::kIoError);
  EXPECT_THAT(r.status().message(), HasSubstr("closed without answering"));

  // A port nobody listens on: the listener's, once it is gone.
  std::uint16_t gone;
  {
    Listener l(SqlServerAnswer);
    gone = l.port();
  }
  r = ProbeTds("127.0.0.1", gone, std::chrono::milliseconds(3000));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("Connection refused"));

  r = ProbeTds("localhost", 1433, std::chrono::milliseconds(100));
  EXPECT_THAT(r.status().message(), HasSubstr("is not an IP address"));
}

TEST(TdsProbe, CheckerProgramExitCodes) {
  Listener server(SqlServerAnswer);
  Listener http([](const Bytes&) { return Text("SSH-2.0-OpenSSH_9.2\r\n"); });
  auto run = [](const std::string& args) {
    return WEXITSTATUS(
        std::system((std::string(TDS_PROBE) + " " + args + " >/dev/null 2>&1").c_str()));
  };
  EXPECT_EQ(run("127.0.0.1 " + std::to_string(server.port()) + " 3000"), 0);
  EXPECT_EQ(run("127.0.0.1 " + std::to_string(http.port()) + " 3000"), 1);
  EXPECT_EQ(run("127.0.0.1 notaport"), 2);
}

// ---------------------------------------------------------------- the module

class SqlServerModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "hakit_sqlserver_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    fs::create_directories(root_ / "modules/mssql/bin");
    fs::create_directories(root_ / "var/modules/mssql");
  }
  void TearDown() override { fs::remove_all(root_); }

  sdk::ModuleSettings Settings(std::map<std::string, std::string> vars) {
    sdk::ModuleSettings s;
    s.name = "mssql";
    s.userconfig_path = (root_ / "modules/mssql/conf/userconfig.xml").string();
    s.vars = std::move(vars);
    s.paths.bin_dir = (root_ / "modules/mssql/bin").string();
    return s;
  }

  std::unique_ptr<scripts::ModuleHostContext> Host(std::map<std::string, std::string> vars = {}) {
    return std::make_unique<scripts::ModuleHostContext>(Layout(root_), "mssql", "node1", vars);
  }

  std::string ModuleLog() {
    std::ifstream in(Layout(root_).ModuleLog("mssql"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path root_;
};

TEST_F(SqlServerModuleTest, LoadsThroughTheLoaderWithLinuxDefaults) {
  auto m = loader::LoadModule(SQLSERVER_MODULE, Settings({}));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  sdk::ModuleDescription d;
  ASSERT_TRUE((*m)->Describe(&d).ok());
  ASSERT_EQ(d.replicated_dirs.size(), 2u);
  EXPECT_EQ(d.replicated_dirs[0].path, "/var/opt/mssql/data");
  EXPECT_EQ(d.replicated_dirs[1].path, "/var/opt/mssql/log");
  ASSERT_EQ(d.checkers.size(), 2u);
  EXPECT_EQ(d.checkers[0].kind, "process");
  EXPECT_EQ(d.checkers[0].params.at("name"), "sqlservr");
  EXPECT_EQ(d.checkers[0].action, "restart");
  EXPECT_EQ(d.checkers[1].kind, "custom");
  EXPECT_EQ(d.checkers[1].params.at("command"),
            (root_ / "modules/mssql/bin").string() + "/hakit-tds-probe 127.0.0.1 1433 5000");
}

TEST_F(SqlServerModuleTest, LoadsWithWhatItsConfigurationSays) {
  auto m = loader::LoadModule(SQLSERVER_MODULE, Settings({{"SQLSERVER_DATA", "/srv/mssql/data"},
                                                          {"SQLSERVER_LOG", "/srv/mssql/log"},
                                                          {"SQLSERVER_PORT", "14330"},
                                                          {"SQLSERVER_ADDR", "198.18.0.100"},
                                                          {"SQLSERVER_PROCESS", "sqlservr2"}}));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  sdk::ModuleDescription d;
  ASSERT_TRUE((*m)->Describe(&d).ok());
  EXPECT_EQ(d.replicated_dirs[0].path, "/srv/mssql/data");
  EXPECT_EQ(d.replicated_dirs[1].path, "/srv/mssql/log");
  EXPECT_EQ(d.checkers[0].params.at("name"), "sqlservr2");
  EXPECT_THAT(d.checkers[1].params.at("command"), HasSubstr("hakit-tds-probe 198.18.0.100 14330"));
}

TEST_F(SqlServerModuleTest, BadSettingsRefuseTheModuleNamingTheVariable) {
  auto m = loader::LoadModule(SQLSERVER_MODULE, Settings({{"SQLSERVER_PORT", "70000"}}));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("SQLSERVER_PORT"));
  EXPECT_THAT(m.status().message(), HasSubstr("userconfig.xml"));
  m = loader::LoadModule(SQLSERVER_MODULE, Settings({{"SQLSERVER_SERVICE_MANAGER", "upstart"}}));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("expected systemd or scm"));
}

TEST(SqlServerSettings, WindowsDefaultsFollowTheInstance) {
  auto d = ParseSettings({}, Platform::kWindows);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->data_dir,
            "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\DATA");
  EXPECT_EQ(d->log_dir, "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.MSSQLSERVER\\MSSQL\\Log");
  EXPECT_EQ(d->service_manager, "scm");
  EXPECT_EQ(d->service, "MSSQLSERVER");
  auto named = ParseSettings({{"SQLSERVER_INSTANCE", "SALES"}}, Platform::kWindows);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->data_dir, "C:\\Program Files\\Microsoft SQL Server\\MSSQL16.SALES\\MSSQL\\DATA");
  EXPECT_EQ(named->service, "MSSQL$SALES");
  auto linux_default = ParseSettings({}, Platform::kLinux);
  EXPECT_EQ(linux_default->service_manager, "systemd");
  EXPECT_EQ(linux_default->service, "mssql-server");
}

// What the module asks of its ServiceManager, recorded on the seam. Start
// can bring up a listener (standing in for the database the service runs).
class RecordingServices : public ServiceManager {
 public:
  std::vector<std::string> calls;
  std::function<void()> on_start;
  sdk::Status start_result;

  sdk::Status Start(sdk::HostContext&, std::chrono::milliseconds) override {
    calls.push_back("start");
    if (on_start) on_start();
    return start_result;
  }
  sdk::Status Stop(sdk::HostContext&, bool force, std::chrono::milliseconds) override {
    calls.push_back(force ? "stop force" : "stop");
    return sdk::Status::Ok();
  }
  std::string Describe() const override { return "recorded service"; }
};

// A free port on 127.0.0.1 (bound once, released).
std::uint16_t FreePort() {
  Listener l(SqlServerAnswer);
  return l.port();
}

class ServiceSeamTest : public SqlServerModuleTest {
 protected:
  // The module with a recording ServiceManager; the service "runs" a
  // listener answering `answer` on `port_` once started.
  std::unique_ptr<SqlServerModule> Make(std::function<Bytes(const Bytes&)> answer) {
    port_ = FreePort();
    auto settings =
        ParseSettings({{"SQLSERVER_PORT", std::to_string(port_)}, {"SQLSERVER_START_WAIT", "3"}},
                      Platform::kLinux);
    EXPECT_TRUE(settings.ok());
    auto services = std::make_unique<RecordingServices>();
    services_ = services.get();
    services_->on_start = [this, answer] { server_ = std::make_unique<Listener>(answer, port_); };
    return std::make_unique<SqlServerModule>(*settings, std::move(services),
                                             (root_ / "modules/mssql/bin").string());
  }
  static sdk::HookArgs Args(const std::string& cur, const std::string& next, bool force = false) {
    sdk::HookArgs a;
    a.current_state = cur;
    a.next_state = next;
    a.action = "start";
    a.force = force;
    a.timeout = std::chrono::seconds(5);
    return a;
  }

  std::uint16_t port_ = 0;
  RecordingServices* services_ = nullptr;
  std::unique_ptr<Listener> server_;
};

TEST_F(ServiceSeamTest, StartPrimStartsTheServiceAndWaitsForPrelogin) {
  auto m = Make(SqlServerAnswer);
  auto host = Host();
  sdk::Status s = m->RunHook(sdk::Hook::kStartPrim, Args("WAIT", "ALONE"), *host);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_THAT(services_->calls, ElementsAre("start"));
  EXPECT_GE(server_->connections(), 1);
  EXPECT_THAT(ModuleLog(), HasSubstr("answers PRELOGIN"));
  // Hooks that have nothing to do with the service leave it alone.
  ASSERT_TRUE(m->RunHook(sdk::Hook::kStartSecond, Args("WAIT", "SECOND"), *host).ok());
  ASSERT_TRUE(m->RunHook(sdk::Hook::kStopPrim, Args("ALONE", "STOP"), *host).ok());
  ASSERT_TRUE(m->RunHook(sdk::Hook::kStopPrim, Args("ALONE", "STOP", true), *host).ok());
  EXPECT_THAT(services_->calls, ElementsAre("start", "stop", "stop force"));
}

TEST_F(ServiceSeamTest, StartPrimFailsWhenThePortIsNotSqlServer) {
  auto m = Make([](const Bytes&) { return Text("220 smtp.example ESMTP\r\n"); });
  auto host = Host();
  auto t0 = std::chrono::steady_clock::now();
  sdk::Status s = m->RunHook(sdk::Hook::kStartPrim, Args("WAIT", "ALONE"), *host);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("not SQL Server"));
  EXPECT_THAT(s.message(), HasSubstr("recorded service started but"));
  // Refused at once, not after the whole start wait.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(ServiceSeamTest, StartPrimFailsWhenNothingAnswersInTime) {
  auto m = Make(SqlServerAnswer);
  services_->on_start = nullptr;  // the service "starts" but never listens
  auto host = Host();
  sdk::Status s = m->RunHook(sdk::Hook::kStartPrim, Args("WAIT", "ALONE"), *host);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("Connection refused"));
}

TEST_F(ServiceSeamTest, AFailedServiceStartIsReportedWithoutProbing) {
  auto m = Make(SqlServerAnswer);
  services_->start_result = sdk::Status::Failed("unit failed");
  auto host = Host();
  sdk::Status s = m->RunHook(sdk::Hook::kStartPrim, Args("WAIT", "ALONE"), *host);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("starting recorded service: unit failed"));
}

// systemd through a real HostContext: a stand-in systemctl notes its
// arguments and fails when asked to.
TEST_F(SqlServerModuleTest, SystemdRunsSystemctlOnTheUnit) {
  fs::path calls = root_ / "systemctl.calls";
  fs::path fake = root_ / "systemctl";
  std::ofstream(fake) << "#!/bin/sh\necho \"$*\" >> '" << calls.string() << "'\n[ -e '"
                      << (root_ / "fail").string() << "' ] && exit 3\nexit 0\n";
  fs::permissions(fake, fs::perms::owner_all);
  auto settings = ParseSettings({{"SYSTEMCTL", fake.string()}}, Platform::kLinux);
  ASSERT_TRUE(settings.ok());
  auto sm = MakeServiceManager(*settings);
  EXPECT_EQ(sm->Describe(), "systemd unit mssql-server");
  auto host = Host();
  ASSERT_TRUE(sm->Start(*host, std::chrono::seconds(5)).ok());
  ASSERT_TRUE(sm->Stop(*host, false, std::chrono::seconds(5)).ok());
  ASSERT_TRUE(sm->Stop(*host, true, std::chrono::seconds(5)).ok());
  std::ifstream in(calls);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  EXPECT_THAT(lines, ElementsAre("start mssql-server", "stop mssql-server",
                                 "kill --signal=SIGKILL mssql-server", "stop mssql-server"));
  std::ofstream(root_ / "fail") << "";
  sdk::Status s = sm->Start(*host, std::chrono::seconds(5));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("systemctl start mssql-server exited with code 3"));
}

TEST(WindowsScm, CommandLines) {
  WindowsScmServiceManager scm("MSSQL$SALES");
  const std::string pre = "$ErrorActionPreference = 'Stop'; ";
  EXPECT_THAT(scm.StartArgv(), ElementsAre("powershell.exe", "-NoProfile", "-NonInteractive",
                                           "-Command", pre + "Start-Service -Name 'MSSQL$SALES'"));
  auto stop = scm.StopArgvs(false);
  ASSERT_EQ(stop.size(), 1u);
  EXPECT_EQ(stop[0].back(), pre + "Stop-Service -Name 'MSSQL$SALES' -Force");
  auto kill = scm.StopArgvs(true);
  ASSERT_EQ(kill.size(), 1u);
  EXPECT_EQ(kill[0].back(),
            pre +
                "$s = Get-CimInstance Win32_Service -Filter \"Name='MSSQL$SALES'\"; if ($s -and "
                "$s.ProcessId -ne 0) { Stop-Process -Id $s.ProcessId -Force }");
  EXPECT_EQ(scm.Describe(), "Windows service MSSQL$SALES");
}

}  // namespace
}  // namespace hakit::sqlserver
