// The packages the build makes of the module libraries (build/packages/NAME.safe,
// cmake/HakitHelpers.cmake's hakit_module_package), through the real `hakit`
// CLI: `module check` lists exactly the template's placeholders and nothing
// else; `module install` into a fresh root puts the library just built, the
// shipped template and the module's programs in place; once the placeholders
// are filled in, the installed module is ready to run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "hakit/scripts/run_process.h"

namespace hakit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path kHakit = HAKIT_BINARY_DIR "/bin/hakit";
const fs::path kPackages = HAKIT_BINARY_DIR "/packages";

struct CliRun {
  int code = -1;
  std::string out, err;
};

// Runs the CLI with an empty environment (PATH aside), so that no HAKIT_ROOT
// of the caller's reaches it.
CliRun Hakit(const std::vector<std::string>& args) {
  sdk::Command c;
  c.argv = {kHakit.string()};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.timeout = 60s;
  CliRun r;
  sdk::CommandResult res =
      scripts::RunProcess(c, {}, [&](scripts::OutputStream s, std::string_view line) {
        (s == scripts::OutputStream::kStdout ? r.out : r.err) += std::string(line) + "\n";
      });
  r.code = res.outcome == sdk::CommandResult::Outcome::kExited ? res.exit_code : -1;
  if (r.code < 0) r.err += scripts::DescribeResult(res) + "\n";
  return r;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Case {
  std::string name;
  // The values `module check` must report as left from the template, and
  // what the test fills in for each.
  std::vector<std::pair<std::string, std::string>> placeholders;
  std::vector<std::string> programs;  // bin/ entries, built into build/bin
};

std::ostream& operator<<(std::ostream& o, const Case& c) { return o << c.name; }

const std::pair<std::string, std::string> kVip{"VIRTUAL_TO_BE_DEFINED", "198.18.0.100"};

class ModulePackagesTest : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "hakit-module-packages-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    file_ = kPackages / (GetParam().name + ".safe");
    ASSERT_TRUE(fs::is_regular_file(file_)) << file_ << " was not built";
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  // The readiness lines of `module check`'s output ("  FILE:L:C: ...").
  static std::vector<std::string> ReadinessLines(const std::string& out) {
    std::vector<std::string> lines;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) {
      if (l.rfind("  ", 0) == 0) lines.push_back(l);
    }
    return lines;
  }

  fs::path root_;
  fs::path file_;
};

TEST_P(ModulePackagesTest, CheckListsOnlyTheTemplatesPlaceholders) {
  const Case& c = GetParam();
  CliRun r = Hakit({"--root", root_.string(), "module", "check", file_.string()});
  // Exit 1 means "not ready": a template is not, by design. Anything wrong
  // with the package itself would be an error on stderr instead.
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(r.err, "") << "no warning, no error expected";
  EXPECT_NE(r.out.find(file_.string() + ": module " + c.name + " " + HAKIT_VERSION + " (ABI "),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(", lib/" + c.name + ".so)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::to_string(c.placeholders.size()) + " value(s) to fill in"),
            std::string::npos)
      << r.out;
  std::vector<std::string> lines = ReadinessLines(r.out);
  ASSERT_EQ(lines.size(), c.placeholders.size()) << r.out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string quoted = "\"" + c.placeholders[i].first + "\"";
    EXPECT_NE(lines[i].find(":conf/userconfig.xml:"), std::string::npos) << lines[i];
    EXPECT_NE(lines[i].find(quoted + " is a placeholder left from the template"), std::string::npos)
        << lines[i];
  }
}

TEST_P(ModulePackagesTest, InstallsIntoAFreshRootAndIsReadyOnceFilledIn) {
  const Case& c = GetParam();
  CliRun r = Hakit({"--root", root_.string(), "module", "install", file_.string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("installed " + c.name + " " + HAKIT_VERSION), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hakitd is not running here"), std::string::npos) << r.out;

  // Exactly the module folder hakit_module_package staged, plus the manifest.
  const fs::path dir = root_ / "modules" / c.name;
  std::set<std::string> expected = {"conf/userconfig.xml", "lib/" + c.name + ".so", "manifest"};
  for (const auto& p : c.programs) expected.insert("bin/" + p);
  std::set<std::string> present;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) present.insert(e.path().lexically_relative(dir).generic_string());
  }
  EXPECT_EQ(present, expected);

  // The library and programs of this build, the template as shipped.
  EXPECT_TRUE(ReadFile(dir / "lib" / (c.name + ".so")) ==
              ReadFile(fs::path(HAKIT_BINARY_DIR "/modules") / (c.name + ".so")))
      << "lib/" << c.name << ".so is not the library just built";
  const std::string shipped =
      ReadFile(fs::path(HAKIT_SOURCE_DIR "/modules") / c.name / "conf" / "userconfig.xml");
  EXPECT_EQ(ReadFile(dir / "conf" / "userconfig.xml"), shipped);
  for (const auto& p : c.programs) {
    EXPECT_EQ(::access((dir / "bin" / p).c_str(), X_OK), 0) << p << " is not executable";
    EXPECT_TRUE(ReadFile(dir / "bin" / p) == ReadFile(fs::path(HAKIT_BINARY_DIR "/bin") / p))
        << "bin/" << p << " is not the program just built";
  }

  CliRun list = Hakit({"--root", root_.string(), "module", "list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_NE(list.out.find(c.name), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(HAKIT_VERSION), std::string::npos) << list.out;

  // Filling in what the check listed is all an operator has to do.
  std::string filled = shipped;
  for (const auto& [placeholder, value] : c.placeholders) {
    auto at = filled.find("\"" + placeholder + "\"");
    ASSERT_NE(at, std::string::npos) << placeholder;
    filled.replace(at + 1, placeholder.size(), value);
  }
  std::ofstream(dir / "conf" / "userconfig.xml", std::ios::binary | std::ios::trunc) << filled;
  CliRun ready = Hakit({"--root", root_.string(), "module", "check", dir.string()});
  EXPECT_EQ(ready.code, 0) << ready.out << ready.err;
  EXPECT_NE(ready.out.find("ok, ready to run"), std::string::npos) << ready.out;
}

INSTANTIATE_TEST_SUITE_P(Modules, ModulePackagesTest,
                         testing::Values(Case{"postgresql", {kVip}, {}},
                                         Case{"mariadb", {kVip}, {}},
                                         Case{"sqlserver", {kVip}, {"hakit-tds-probe"}},
                                         Case{"hyperv",
                                              {kVip,
                                               {"VM_NAME_TO_BE_DEFINED", "vm1"},
                                               {"VM_DIR_TO_BE_DEFINED", "/srv/hakit/vm1"}},
                                              {}}),
                         [](const testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
}  // namespace hakit
