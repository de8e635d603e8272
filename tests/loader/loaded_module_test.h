// The fixture of the tests of application module libraries (tests/postgresql,
// tests/mariadb): a module library loaded as hakitd loads it (host/loader:
// ABI check, factory) with a node root in a fresh folder, and the real
// ModuleHostContext its hooks run against.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "hakit/common/layout.h"
#include "hakit/loader/loader.h"
#include "hakit/scripts/module_host_context.h"
#include "hakit/sdk/module.h"

namespace hakit::loader {

class LoadedModuleTest : public ::testing::Test {
 protected:
  // Hook arguments for a transition, with a 60 s budget.
  static sdk::HookArgs Args(const std::string& from, const std::string& to, bool force = false) {
    sdk::HookArgs a;
    a.current_state = from;
    a.next_state = to;
    a.action = "start";
    a.timeout = std::chrono::seconds(60);
    a.force = force;
    return a;
  }

  static std::string ReadFile(const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  // Makes dir_ (mode 0755: the server's user walks through it) and the
  // node root in it; `library` is loaded by Load() as module `name`.
  void MakeRoot(const std::string& library, const std::string& name) {
    library_ = library;
    name_ = name;
    char tmpl[] = "/tmp/hakit-modtest-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    namespace fs = std::filesystem;
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    layout_ = std::make_unique<Layout>(dir_ / "root");
  }

  void RemoveRoot() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  sdk::Result<LoadedModule> Load(const std::map<std::string, std::string>& vars) {
    host_ = std::make_unique<scripts::ModuleHostContext>(*layout_, name_, "node1", vars);
    std::error_code ec;
    std::filesystem::create_directories(host_->paths().log_dir, ec);
    sdk::ModuleSettings s;
    s.name = name_;
    s.userconfig_path = layout_->UserConfig(name_).string();
    s.vars = vars;
    s.paths = host_->paths();
    return LoadModule(library_, s);
  }

  // Loads with vars_ + `extra`; the factory's error when it refuses.
  std::string Refusal(const std::map<std::string, std::string>& extra) {
    auto vars = vars_;
    for (const auto& [k, v] : extra) vars[k] = v;
    auto m = Load(vars);
    return m.ok() ? std::string("accepted") : m.status().message();
  }

  std::string ModuleLog() { return ReadFile(layout_->ModuleLog(name_)); }

  std::filesystem::path dir_;
  std::string library_, name_;
  std::unique_ptr<Layout> layout_;
  std::unique_ptr<scripts::ModuleHostContext> host_;
  std::map<std::string, std::string> vars_;
};

}  // namespace hakit::loader
