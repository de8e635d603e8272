// .safe packages on one node: write, check, install, refuse, uninstall;
// and the deploy exchange between two listeners on the loopback.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>

#include "hakit/package/archive.h"
#include "hakit/package/deploy.h"
#include "hakit/package/installer.h"
#include "hakit/package/manifest.h"
#include "hakit/sdk/module.h"
#include "package_util.h"

namespace hakit::package {
namespace {

using namespace testing;
using sdk::Status;

class PackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() /
            ("hakit-package-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(work_);
    fs::create_directories(work_);
    state_ = "STOP";
    options_.module_state = [this](const std::string&) -> sdk::Result<std::string> { return state_; };
  }
  void TearDown() override { fs::remove_all(work_); }

  Layout Root(const std::string& name = "root") const { return Layout(work_ / name); }

  // Packs a good module folder (marker distinguishes versions).
  fs::path GoodPackage(const std::string& marker = "v1", const std::string& version = "1.0") {
    fs::path dir = work_ / ("src-" + marker) / "app";
    WriteModuleDir(dir, ReadyConfig(), marker);
    fs::path out = work_ / ("app-" + marker + ".safe");
    Manifest m;
    m.module = "app";
    m.version = version;
    m.abi = sdk::kAbiVersion;
    EXPECT_TRUE(WritePackage(dir, m, out).ok());
    return out;
  }

  fs::path work_;
  std::string state_;
  InstallOptions options_;
};

TEST_F(PackageTest, PackageThenInstallGivesTheSameFilesAndTheManifest) {
  fs::path safe = GoodPackage("v1", "2.3");
  auto checked = CheckPackage(safe, Root(), options_);
  ASSERT_TRUE(checked.ok()) << checked.status().message();
  EXPECT_EQ(checked->module, "app");
  EXPECT_TRUE(checked->readiness.empty());
  auto installed = InstallPackage(safe, Root(), options_);
  ASSERT_TRUE(installed.ok()) << installed.status().message();
  EXPECT_EQ(installed->Summary(), "app 2.3 (ABI " + std::to_string(sdk::kAbiVersion) + ", scripts)");
  fs::path dir = Root().ModuleDir("app");
  EXPECT_EQ(ReadText(dir / "bin" / "start_prim"), ReadText(work_ / "src-v1/app/bin/start_prim"));
  EXPECT_EQ(ReadText(dir / "conf" / "userconfig.xml"), ReadyConfig());
  EXPECT_EQ(fs::status(dir / "bin" / "start_prim").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
  auto m = ReadManifest(dir);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->version, "2.3");
  EXPECT_EQ(m->sha256.size(), 3u);
  // Nothing left behind in the staging area; what a crash left there long
  // ago goes with the next install.
  EXPECT_TRUE(fs::is_empty(Root().root() / ".install"));
  fs::create_directories(Root().root() / ".install" / "install-crashed" / "modules");
  fs::last_write_time(Root().root() / ".install" / "install-crashed",
                      fs::file_time_type::clock::now() - std::chrono::hours(2));

  // A new version replaces the old one whole.
  ASSERT_TRUE(InstallPackage(GoodPackage("v2", "2.4"), Root(), options_).ok());
  EXPECT_NE(ReadText(dir / "bin" / "start_prim").find("v2"), std::string::npos);
  EXPECT_EQ(ReadManifest(dir)->version, "2.4");
  EXPECT_TRUE(fs::is_empty(Root().root() / ".install"));
}

// One bad package: how it is built, and the words its refusal must hold.
struct BadCase {
  std::string name;
  std::function<void(const fs::path& zip, InstallOptions& o)> build;
  std::string expected;
};

TEST_F(PackageTest, EveryBadPackageIsRefusedWithItsOwnMessageAndTheInstalledModuleStays) {
  ASSERT_TRUE(InstallPackage(GoodPackage("v1"), Root(), options_).ok());
  const auto before = Snapshot(Root().root() / "modules");
  ASSERT_FALSE(before.empty());

  const std::string good_zip = (work_ / "app-v1.safe").string();
  std::vector<BadCase> cases = {
      {"dotdot", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.File("../evil", "x"); },
       "entry '../evil': path leaves the module ('..')"},
      {"dotdot_inside", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.File("bin/../../evil", "x"); },
       "path leaves the module ('..')"},
      {"absolute", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.File("/etc/evil", "x"); },
       "entry '/etc/evil': absolute path"},
      {"symlink_out", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.Symlink("bin/passwd", "../../../../etc/passwd"); },
       "entry 'bin/passwd': symbolic link to '../../../../etc/passwd' points outside the module"},
      {"symlink_absolute", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.Symlink("conf/etc", "/etc"); },
       "entry 'conf/etc': symbolic link to '/etc' points outside the module"},
      // Each link stays inside by its name; through the first, the second leaves.
      {"symlink_chain", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.Symlink("bin/up", ".."); w.Symlink("bin/out", "up/.."); },
       "entry 'bin/out': symbolic link to 'up/..' points outside the module"},
      {"char_device", [](const fs::path& z, InstallOptions&) {
         { ZipWriter w(z); w.Module(); w.File("bin/tty", ""); }
         ASSERT_TRUE(PatchZipMode(z, "bin/tty", S_IFCHR | 0644)); },
       "entry 'bin/tty': a character device (a package holds files, folders and links only)"},
      {"block_device", [](const fs::path& z, InstallOptions&) {
         { ZipWriter w(z); w.Module(); w.File("bin/disk", ""); }
         ASSERT_TRUE(PatchZipMode(z, "bin/disk", S_IFBLK | 0644)); },
       "entry 'bin/disk': a block device"},
      {"truncated", [good_zip](const fs::path& z, InstallOptions&) {
         std::string b = ReadText(good_zip);
         std::ofstream(z, std::ios::binary) << b.substr(0, b.size() * 2 / 3); },
       "truncated archive: no zip central directory"},
      {"corrupt", [good_zip](const fs::path& z, InstallOptions&) {
         std::string b = ReadText(good_zip);
         // The manifest comes first: its compressed bytes follow the 30-byte
         // local header, the name and the extra field.
         auto u16 = [&](std::size_t o) {
           return static_cast<unsigned char>(b[o]) | static_cast<unsigned char>(b[o + 1]) << 8;
         };
         std::size_t data = 30 + u16(26) + u16(28);
         for (std::size_t i = data + 4; i < data + 24; ++i) b[i] = static_cast<char>(b[i] ^ 0x5a);
         std::ofstream(z, std::ios::binary) << b; },
       "damaged or truncated archive at 'manifest'"},
      {"not_a_zip", [](const fs::path& z, InstallOptions&) {
         std::ofstream(z) << "#!/bin/sh\necho I am no package\n"; },
       "not a readable zip archive"},
      {"bomb_size", [](const fs::path& z, InstallOptions& o) {
         o.limits.max_bytes = 1 << 20;
         ZipWriter w(z); w.Module(); w.File("web/zeros", std::string(16 << 20, '\0')); },
       "expands to more than 1048576 bytes (limit): refused as a possible zip bomb"},
      {"bomb_count", [](const fs::path& z, InstallOptions& o) {
         o.limits.max_entries = 20;
         ZipWriter w(z); w.Module();
         for (int i = 0; i < 40; ++i) w.File("web/f" + std::to_string(i), "x"); },
       "holds more than 20 entries (limit): refused as a possible zip bomb"},
      {"no_userconfig", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.File("bin/start_prim", "#!/bin/sh\n", 0755); },
       "no conf/userconfig.xml: not a module package"},
      {"other_abi", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(); w.File("lib/app.so", ReadText(TEST_MODULE_ABI999)); },
       "lib/app.so was built for SDK ABI 999; this hakit speaks ABI"},
      {"name_separator", [](const fs::path& z, InstallOptions& o) {
         o.name = "apps/app";
         ZipWriter w(z); w.Module(); },
       "module name 'apps/app' contains a path separator"},
      {"manifest_name_separator", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module();
         w.File("manifest", "hakit-package 1\nmodule ../app\nversion 1\nabi 1\n"); },
       ":manifest:2: module name '../app' contains a path separator"},
      {"checksum", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z);
         w.File("manifest", "hakit-package 1\nmodule app\nversion 1\nabi 1\nsha256 " +
                                std::string(64, '0') + "  conf/userconfig.xml\n");
         w.File("conf/userconfig.xml", ReadyConfig()); },
       "conf/userconfig.xml: SHA-256 does not match the manifest"},
      {"unlisted_file", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z);
         w.File("manifest", "hakit-package 1\nmodule app\nversion 1\nabi 1\n");
         w.Module(); },
       "bin/start_prim is not listed in the manifest"},
      {"bad_config", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.Module(ReadyConfig("    <heart pulse=\"abc\"/>\n")); },
       ":conf/userconfig.xml:"},
      {"no_start_script", [](const fs::path& z, InstallOptions&) {
         ZipWriter w(z); w.File("conf/userconfig.xml", ReadyConfig()); },
       "no bin/start_prim"},
  };
  std::set<std::string> messages;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    fs::path zip = work_ / (c.name + ".safe");
    InstallOptions o = options_;
    o.name = "app";
    c.build(zip, o);
    auto r = InstallPackage(zip, Root(), o);
    ASSERT_FALSE(r.ok()) << c.name << " was installed";
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos)
        << c.name << ": " << r.status().message();
    EXPECT_EQ(r.status().message().rfind(zip.string(), 0), 0u)
        << "the message names the package: " << r.status().message();
    messages.insert(r.status().message());
    if (std::getenv("HAKIT_SHOW_REFUSALS")) std::cout << r.status().message() << "\n";
    EXPECT_EQ(Snapshot(Root().root() / "modules"), before) << c.name << " changed the module";
    EXPECT_TRUE(fs::is_empty(Root().root() / ".install")) << c.name << " left files behind";
    // `module check` says the same.
    auto checked = CheckPackage(zip, Root(), o);
    ASSERT_FALSE(checked.ok());
    EXPECT_EQ(checked.status().message(), r.status().message());
  }
  EXPECT_EQ(messages.size(), cases.size()) << "two cases share a message";
  EXPECT_FALSE(fs::exists("/etc/evil"));
  EXPECT_FALSE(fs::exists(work_ / "evil"));
  EXPECT_FALSE(fs::exists(Root().root() / "evil"));
}

// libarchive's zip reader turns a fifo's mode into a regular file's: the
// package installs, with an empty file where the fifo was announced.
TEST_F(PackageTest, AFifoInAZipComesOutAsAnEmptyFile) {
  fs::path zip = work_ / "fifo.safe";
  { ZipWriter w(zip); w.Module(); w.File("bin/pipe", ""); }
  ASSERT_TRUE(PatchZipMode(zip, "bin/pipe", S_IFIFO | 0644));
  auto r = InstallPackage(zip, Root(), options_);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(Root().ModuleBin("fifo") / "pipe")));
}

TEST_F(PackageTest, ARunningModuleIsNeitherReplacedNorUninstalled) {
  ASSERT_TRUE(InstallPackage(GoodPackage("v1"), Root(), options_).ok());
  const auto before = Snapshot(Root().root() / "modules");
  state_ = "PRIM";
  auto r = InstallPackage(GoodPackage("v2"), Root(), options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "cannot install over module app: it is PRIM on this node; stop it first (hakit stop -m app)");
  Status u = UninstallModule(Root(), "app", options_.module_state);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.message(), "cannot uninstall module app: it is PRIM on this node; stop it first (hakit stop -m app)");
  EXPECT_EQ(Snapshot(Root().root() / "modules"), before);

  state_ = "STOP";
  ASSERT_TRUE(UninstallModule(Root(), "app", options_.module_state).ok());
  EXPECT_FALSE(fs::exists(Root().ModuleDir("app")));
  EXPECT_TRUE(fs::is_empty(Root().root() / ".install"));
  Status again = UninstallModule(Root(), "app", options_.module_state);
  EXPECT_EQ(again.code(), Status::Code::kNotFound);
}

TEST_F(PackageTest, RecordedStateCountsWhatADeadDaemonLeftRunning) {
  EXPECT_EQ(RecordedModuleState(Root(), "app"), "STOP");
  WriteText(Root().ModuleVar("app") / "state.json", R"({"state":"WAIT"})");
  EXPECT_EQ(RecordedModuleState(Root(), "app"), "STOP");
  WriteText(Root().ModuleVar("app") / "state.json", R"({"state":"PRIM"})");
  EXPECT_EQ(RecordedModuleState(Root(), "app").rfind("PRIM (as hakitd last recorded it", 0), 0u);
}

// A SafeKit 8.2 package as SafeKit lays it out: no manifest, web/, a
// userconfig.xml.template, macros, scripts without modes (made on Windows).
TEST_F(PackageTest, ASafeKitPackageInstallsAsItIs) {
  fs::path zip = work_ / "mirror.safe";
  {
    ZipWriter w(zip);
    w.File("conf/userconfig.xml",
           "<!DOCTYPE safe>\n<safe>\n<macro name=\"VIRTUAL_IP\" value=\"198.18.0.100\"/>\n"
           "<service mode=\"mirror\" defaultprim=\"alone\" maxloop=\"3\" loop_interval=\"24\">\n"
           "  <heart><heartbeat name=\"default\" ident=\"flow\"/></heart>\n"
           "  <vip><interface_list><interface check=\"on\" arpreroute=\"on\"><real_interface>\n"
           "    <virtual_addr addr=\"%VIRTUAL_IP%\" where=\"one_side_alias\"/>\n"
           "  </real_interface></interface></interface_list></vip>\n"
           "  <user nicestoptimeout=\"300\" forcestoptimeout=\"300\" logging=\"userlog\">\n"
           "    <var name=\"APPDIR\" value=\"%SAFEUSERBIN%\"/>\n  </user>\n"
           "</service>\n</safe>\n", 0644);
    w.File("conf/userconfig.xml.template", "<safe/>\n", 0644);
    w.File("bin/start_prim", "#!/bin/sh\n\"$SAFE/safekit\" printi \"start_prim\"\n", 0644);
    w.File("bin/stop_prim", "#!/bin/sh\n\"$SAFE/safekit\" printi \"stop_prim\"\n", 0644);
    w.File("web/index.html", "<html></html>\n", 0644);
  }
  auto r = InstallPackage(zip, Root(), options_);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->module, "mirror");
  EXPECT_FALSE(r->manifest.has_value());
  EXPECT_EQ(r->Summary(), "mirror (SafeKit package, no manifest, scripts)");
  fs::path dir = Root().ModuleDir("mirror");
  EXPECT_TRUE(fs::exists(dir / "web" / "index.html"));
  EXPECT_TRUE(fs::exists(dir / "conf" / "userconfig.xml.template"));
  EXPECT_FALSE(fs::exists(dir / "manifest"));
  EXPECT_EQ(fs::status(dir / "bin" / "start_prim").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
  EXPECT_EQ(fs::status(dir / "web" / "index.html").permissions() & fs::perms::owner_exec,
            fs::perms::none);
}

TEST_F(PackageTest, AModuleLibraryForThisAbiInstalls) {
  fs::path zip = work_ / "lib.safe";
  {
    ZipWriter w(zip);
    w.File("conf/userconfig.xml", ReadyConfig());
    w.File("lib/app.so", ReadText(TEST_MODULE_GOOD), 0755);
  }
  InstallOptions o = options_;
  o.name = "app";
  auto r = InstallPackage(zip, Root(), o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->library, "lib/app.so");
  EXPECT_EQ(ReadText(Root().ModuleLib("app") / "app.so"), ReadText(TEST_MODULE_GOOD));
}

TEST_F(PackageTest, AModuleFolderIsCheckedAndLinksInsideAreKept) {
  fs::path dir = work_ / "app";
  WriteModuleDir(dir);
  fs::create_symlink("start_prim", dir / "bin" / "start_both");
  auto r = CheckModuleDir(dir, Root(), "app");
  ASSERT_TRUE(r.ok()) << r.status().message();
  fs::path out = work_ / "app.safe";
  ASSERT_TRUE(WritePackage(dir, {"app", "1", sdk::kAbiVersion, {}}, out).ok());
  auto installed = InstallPackage(out, Root(), options_);
  ASSERT_TRUE(installed.ok()) << installed.status().message();
  EXPECT_EQ(fs::read_symlink(Root().ModuleBin("app") / "start_both"), "start_prim");
  // A link out of the folder is not packed.
  fs::create_symlink("/etc/passwd", dir / "conf" / "passwd");
  Status s = WritePackage(dir, {"app", "1", sdk::kAbiVersion, {}}, work_ / "bad.safe");
  EXPECT_NE(s.message().find("points outside the module"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(work_ / "bad.safe"));
}

// The deploy exchange on the loopback: authenticated both ways, capped.
TEST_F(PackageTest, DeployExchangeInstallsOnlyWithTheClusterKey) {
  std::vector<std::uint8_t> key(32, 7), other(32, 8);
  Layout remote = Root("remote");
  DeployServerOptions so;
  so.addresses = {"127.0.0.1"};
  so.key = key;
  so.spool_dir = remote.root() / ".install";
  so.max_package_bytes = 1 << 20;
  so.install = [&](const fs::path& file, const std::string& module) -> sdk::Result<DeployOutcome> {
    InstallOptions o = options_;
    o.name = module;
    auto r = InstallPackage(file, remote, o);
    if (!r.ok()) return r.status();
    return DeployOutcome{"installed " + r->Summary(), "cafe"};
  };
  // A free port on the shared loopback: the first of a few that binds.
  std::unique_ptr<DeployServer> server;
  std::uint16_t port = 0;
  for (int i = 0; i < 50 && !server; ++i) {
    so.port = port = static_cast<std::uint16_t>(20000 + (::getpid() * 7 + i * 131) % 40000);
    server = std::make_unique<DeployServer>(so);
    if (!server->Start().ok()) server.reset();
  }
  ASSERT_TRUE(server) << "no free port";

  DeployRequest req;
  req.peer_addresses = {"127.0.0.2", "127.0.0.1"};  // the first does not listen
  req.port = port;
  req.key = key;
  req.package = GoodPackage("v1", "3.0");
  req.module = "app";
  auto ok = SendPackage(req);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->message, "installed app 3.0 (ABI " + std::to_string(sdk::kAbiVersion) + ", scripts)");
  EXPECT_EQ(ok->config_hash, "cafe");
  EXPECT_EQ(ReadText(remote.ModuleBin("app") / "start_prim"), ReadText(work_ / "src-v1/app/bin/start_prim"));

  const auto before = Snapshot(remote.ModulesDir());
  req.key = other;
  req.package = GoodPackage("v2");
  auto bad_key = SendPackage(req);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("cluster keys of the two nodes differ"), std::string::npos)
      << bad_key.status().message();

  req.key = key;
  state_ = "SECOND";
  auto running = SendPackage(req);
  ASSERT_FALSE(running.ok());
  EXPECT_NE(running.status().message().find("the peer refused: cannot install over module app: it is SECOND"),
            std::string::npos) << running.status().message();
  state_ = "STOP";

  fs::path big = work_ / "big.safe";
  std::ofstream(big) << std::string(2 << 20, 'x');
  req.package = big;
  auto too_big = SendPackage(req);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("larger than the limit"), std::string::npos)
      << too_big.status().message();
  EXPECT_EQ(Snapshot(remote.ModulesDir()), before);

  req.peer_addresses = {"127.0.0.3"};  // the listener is on 127.0.0.1 only
  auto nobody = SendPackage(req);
  ASSERT_FALSE(nobody.ok());
  EXPECT_NE(nobody.status().message().find("cannot reach the peer's deploy listener"), std::string::npos);
  server->Stop();
}

}  // namespace
}  // namespace hakit::package
