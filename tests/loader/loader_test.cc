#include "hakit/loader/loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace hakit::loader {
namespace {

namespace fs = std::filesystem;
using sdk::Status;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const fs::path kGood = TEST_MODULE_GOOD;
const fs::path kAbi999 = TEST_MODULE_ABI999;
const fs::path kNoAbi = TEST_MODULE_NO_ABI;
const fs::path kNoFactory = TEST_MODULE_NO_FACTORY;
const fs::path kThrowing = TEST_MODULE_THROWING;
const fs::path kFailing = TEST_MODULE_FAILING;
const fs::path kUnresolved = TEST_MODULE_UNRESOLVED;
const fs::path kPlainAbi = TEST_MODULE_PLAIN_ABI;

// True while some mapping of this process comes from `library`. The kernel
// lists the file under its resolved path.
bool IsMapped(const fs::path& library) {
  const std::string wanted = fs::canonical(library).string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() >= wanted.size() &&
        line.compare(line.size() - wanted.size(), wanted.size(), wanted) == 0) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> ReadLines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string ReadFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const fs::path& file, const std::string& data) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << data;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "hakit_loader_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    settings_.name = "app";
    settings_.userconfig_path = (dir_ / "modules/app/conf/userconfig.xml").string();
    settings_.vars["HOOK_LOG"] = HookLog().string();
    settings_.vars["REPLICATED_DIR"] = "/srv/app/data";
    settings_.vars["MARKER"] = Marker().string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path HookLog() const { return dir_ / "hooks.log"; }
  fs::path Marker() const { return dir_ / "factory_called"; }

  fs::path dir_;
  sdk::ModuleSettings settings_;
};

// --- The good module -------------------------------------------------------

TEST_F(LoaderTest, LoadsGoodModuleDescribesAndRunsHooks) {
  ASSERT_FALSE(IsMapped(kGood));
  sdk::Result<LoadedModule> loaded = LoadModule(kGood, settings_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->abi_version(), sdk::kAbiVersion);
  EXPECT_EQ(loaded->library_path(), kGood);
  ASSERT_NE(loaded->module(), nullptr);

  sdk::ModuleDescription description;
  ASSERT_TRUE((*loaded)->Describe(&description).ok());
  ASSERT_EQ(description.replicated_dirs.size(), 1u);
  EXPECT_EQ(description.replicated_dirs[0].path, "/srv/app/data");
  EXPECT_THAT(description.replicated_dirs[0].not_replicated, ElementsAre("tmp"));

  sdk::HookArgs start{"STOP", "ALONE", "start"};
  sdk::HookArgs stop{"ALONE", "STOP", "stop"};
  stop.force = true;
  // The good module never touches its host; a null reference would be UB, so
  // hand it a real object it will ignore.
  struct NullHost : sdk::HostContext {
    std::string_view module_name() const override { return "app"; }
    std::string_view node_name() const override { return "node1"; }
    void Log(sdk::LogLevel, std::string_view) override {}
    sdk::CommandResult RunCommand(const sdk::Command&) override { return {}; }
    const sdk::ModulePaths& paths() const override { return paths_; }
    const std::map<std::string, std::string>& environment() const override { return env_; }
    sdk::ModulePaths paths_;
    std::map<std::string, std::string> env_;
  } host;
  EXPECT_TRUE((*loaded)->RunHook(sdk::Hook::kStartPrim, start, host).ok());
  EXPECT_TRUE((*loaded)->RunHook(sdk::Hook::kStopPrim, stop, host).ok());

  loaded = Status::Failed("released");  // drops the only reference
  EXPECT_THAT(ReadLines(HookLog()),
              ElementsAre("create app", "describe", "start_prim STOP ALONE start",
                          "stop_prim ALONE STOP stop force", "destroy app"));
  EXPECT_FALSE(IsMapped(kGood));
}

TEST_F(LoaderTest, LibraryOutlivesTheWrapperWhileTheModuleObjectLives) {
  ASSERT_FALSE(IsMapped(kGood));
  std::shared_ptr<sdk::Module> module;
  {
    sdk::Result<LoadedModule> loaded = LoadModule(kGood, settings_);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    module = loaded->module();
  }
  // Only the shared_ptr remains: the library must still be mapped, and the
  // object's vtable must still resolve to it.
  EXPECT_TRUE(IsMapped(kGood));
  Dl_info info{};
  ASSERT_NE(::dladdr(*reinterpret_cast<void**>(module.get()), &info), 0);
  EXPECT_EQ(fs::canonical(info.dli_fname), fs::canonical(kGood));
  sdk::ModuleDescription description;
  EXPECT_TRUE(module->Describe(&description).ok());

  module.reset();
  // The destructor ran (its code is in the library, so the library was still
  // there), and then the library went away.
  EXPECT_EQ(ReadLines(HookLog()).back(), "destroy app");
  EXPECT_FALSE(IsMapped(kGood));
}

TEST_F(LoaderTest, TwoModulesFromOneLibraryKeepItUntilBothAreGone) {
  sdk::Result<LoadedModule> first = LoadModule(kGood, settings_);
  sdk::Result<LoadedModule> second = LoadModule(kGood, settings_);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->module(), second->module());
  first = Status::Failed("released");
  EXPECT_TRUE(IsMapped(kGood));
  sdk::ModuleDescription description;
  EXPECT_TRUE(second->module()->Describe(&description).ok());
  second = Status::Failed("released");
  EXPECT_THAT(ReadLines(HookLog()),
              ElementsAre("create app", "create app", "destroy app", "describe", "destroy app"));
  EXPECT_FALSE(IsMapped(kGood));
}

TEST_F(LoaderTest, RelativePathIsLoadedAndReportedAbsolute) {
  const fs::path relative = fs::relative(kGood, fs::current_path());
  ASSERT_TRUE(relative.is_relative());
  sdk::Result<LoadedModule> loaded = LoadModule(relative, settings_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(loaded->library_path().is_absolute());
  EXPECT_EQ(fs::canonical(loaded->library_path()), fs::canonical(kGood));
}

TEST_F(LoaderTest, ReadAbiVersionReadsWithoutCreatingAnything) {
  sdk::Result<std::uint32_t> good = ReadAbiVersion(kGood);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(*good, sdk::kAbiVersion);
  EXPECT_FALSE(fs::exists(HookLog()));  // no module object was made
  EXPECT_FALSE(IsMapped(kGood));

  sdk::Result<std::uint32_t> other = ReadAbiVersion(kAbi999);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(*other, 999u);
  EXPECT_FALSE(fs::exists(Marker()));
  EXPECT_FALSE(IsMapped(kAbi999));
}

// --- Files that are not module libraries ------------------------------------

TEST_F(LoaderTest, MissingFileIsNotFound) {
  const fs::path missing = dir_ / "nowhere.so";
  sdk::Result<LoadedModule> loaded = LoadModule(missing, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(loaded.status().message(), "module library not found: " + missing.string());
  EXPECT_EQ(ReadAbiVersion(missing).status().code(), Status::Code::kNotFound);
}

TEST_F(LoaderTest, DirectoryIsInvalidArgument) {
  sdk::Result<LoadedModule> loaded = LoadModule(dir_, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr(dir_.string()));
}

TEST_F(LoaderTest, TextFileIsInvalidArgumentWithDlopenReason) {
  const fs::path garbage = dir_ / "garbage.so";
  // Longer than an ELF header, so that dlopen looks at it and says why.
  WriteFile(garbage,
            "#!/bin/sh\n# This is a shell script, not a shared library at all.\n"
            "echo hello\n");
  sdk::Result<LoadedModule> loaded = LoadModule(garbage, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kInvalidArgument);
  // glibc's reason; the path is named once, by us, not twice.
  EXPECT_EQ(loaded.status().message(),
            "cannot load module library " + garbage.string() + ": invalid ELF header");
  EXPECT_EQ(ReadAbiVersion(garbage).status().message(), loaded.status().message());

  const fs::path tiny = dir_ / "tiny.so";
  WriteFile(tiny, "x");
  EXPECT_EQ(LoadModule(tiny, settings_).status().message(),
            "cannot load module library " + tiny.string() + ": file too short");
}

TEST_F(LoaderTest, FifoIsRefusedWithoutBlocking) {
  const fs::path fifo = dir_ / "fifo.so";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  sdk::Result<LoadedModule> loaded = LoadModule(fifo, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(),
            "module library " + fifo.string() + " is not a regular file");
}

// Where the loadable segments of an ELF file end: cutting the file anywhere
// before that point makes it a truncated library.
std::size_t EndOfLoadableSegments(const std::string& elf) {
  ElfW(Ehdr) header;
  std::memcpy(&header, elf.data(), sizeof(header));
  std::size_t end = 0;
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    ElfW(Phdr) segment;
    std::memcpy(&segment, elf.data() + header.e_phoff + i * sizeof(segment), sizeof(segment));
    if (segment.p_type == PT_LOAD)
      end = std::max<std::size_t>(end, segment.p_offset + segment.p_filesz);
  }
  return end;
}

TEST_F(LoaderTest, TruncatedLibraryIsRefusedWithoutCrashing) {
  const std::string bytes = ReadFile(kGood);
  const std::size_t end = EndOfLoadableSegments(bytes);
  ASSERT_GT(end, 8192u);
  ASSERT_LE(end, bytes.size());
  // 40: inside the ELF header (dlopen's own reason). The others cut a
  // segment short: dlopen would map pages past the end of the file and the
  // process would die of SIGBUS; the loader must see it first.
  for (std::size_t size : {std::size_t{40}, std::size_t{2000}, end / 2, end - 1}) {
    const fs::path truncated = dir_ / ("truncated_" + std::to_string(size) + ".so");
    WriteFile(truncated, bytes.substr(0, size));
    sdk::Result<LoadedModule> loaded = LoadModule(truncated, settings_);
    ASSERT_FALSE(loaded.ok()) << size;
    EXPECT_EQ(loaded.status().code(), Status::Code::kInvalidArgument) << size;
    const std::string prefix = "cannot load module library " + truncated.string() + ": ";
    EXPECT_THAT(loaded.status().message(), HasSubstr(prefix));
    if (size == 40) {
      EXPECT_THAT(loaded.status().message(), HasSubstr("file too short"));
    } else {
      EXPECT_THAT(loaded.status().message(),
                  HasSubstr("truncated file: a loadable segment ends at byte"));
      EXPECT_THAT(loaded.status().message(),
                  HasSubstr("but the file has " + std::to_string(size) + " bytes"));
    }
    EXPECT_FALSE(ReadAbiVersion(truncated).ok()) << size;
  }
}

TEST_F(LoaderTest, UnresolvedSymbolIsReportedAtLoad) {
  sdk::Result<LoadedModule> loaded = LoadModule(kUnresolved, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr(kUnresolved.string()));
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("undefined symbol: hakit_test_symbol_nobody_defines"));
}

// --- Libraries that are not (right) hakit modules ----------------------------

TEST_F(LoaderTest, NoAbiVersionIsNotAHakitModule) {
  const std::string expected =
      "not a hakit module: " + kNoAbi.string() + " exports no hakit_abi_version";
  sdk::Result<LoadedModule> loaded = LoadModule(kNoAbi, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(loaded.status().message(), expected);
  EXPECT_EQ(ReadAbiVersion(kNoAbi).status().message(), expected);
  EXPECT_FALSE(IsMapped(kNoAbi));
}

TEST_F(LoaderTest, AbiMismatchNamesBothVersionsAndNeverCallsTheFactory) {
  sdk::Result<LoadedModule> loaded = LoadModule(kAbi999, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kAbiMismatch);
  EXPECT_EQ(loaded.status().message(), "module " + kAbi999.string() +
                                           " was built for SDK ABI 999, this hakitd speaks ABI " +
                                           std::to_string(sdk::kAbiVersion));
  EXPECT_FALSE(fs::exists(Marker())) << "the factory of a mismatched module ran";
  EXPECT_FALSE(IsMapped(kAbi999)) << "a refused library stayed loaded";
}

TEST_F(LoaderTest, AbiVersionThatIsNotAnAliasIsRefusedWithoutCrashing) {
  sdk::Result<LoadedModule> loaded = LoadModule(kPlainAbi, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr(kPlainAbi.string()));
  EXPECT_THAT(loaded.status().message(), HasSubstr("not as a Boost.DLL alias"));
}

TEST_F(LoaderTest, MissingFactoryIsAClearError) {
  sdk::Result<LoadedModule> loaded = LoadModule(kNoFactory, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(loaded.status().message(),
            "module " + kNoFactory.string() +
                " exports hakit_abi_version but no hakit_create_module factory (export it with "
                "HAKIT_MODULE_EXPORT)");
  // Its ABI alone is readable: a package check can still report it.
  EXPECT_EQ(*ReadAbiVersion(kNoFactory), sdk::kAbiVersion);
}

TEST_F(LoaderTest, ThrowingFactoryIsFailedWithTheModulesMessage) {
  sdk::Result<LoadedModule> loaded = LoadModule(kThrowing, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kFailed);
  EXPECT_EQ(loaded.status().message(),
            "module " + kThrowing.string() +
                " failed to create 'app': module factory threw: cannot reach the database on "
                "port 5432");
  EXPECT_FALSE(IsMapped(kThrowing));
}

TEST_F(LoaderTest, FailingFactoryIsFailedWithTheModulesMessage) {
  sdk::Result<LoadedModule> loaded = LoadModule(kFailing, settings_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Status::Code::kFailed);
  EXPECT_EQ(loaded.status().message(), "module " + kFailing.string() +
                                           " failed to create 'app': PGDATA is not set in " +
                                           settings_.userconfig_path);
}

// --- Which library a module uses --------------------------------------------

class ModuleLibraryPathTest : public LoaderTest {
 protected:
  Layout layout() const { return Layout(dir_); }
  const fs::path generic_ = "/usr/lib/hakit/generic_module.so";
};

TEST_F(ModuleLibraryPathTest, NoLibFolderUsesTheGenericModule) {
  EXPECT_EQ(*ModuleLibraryPath(layout(), "app", generic_), generic_);
}

TEST_F(ModuleLibraryPathTest, LibFolderWithoutSharedLibraryUsesTheGenericModule) {
  WriteFile(layout().ModuleLib("app") / "README", "no library here\n");
  WriteFile(layout().ModuleLib("app") / "libfoo.so.1", "versioned: not a module library\n");
  EXPECT_EQ(*ModuleLibraryPath(layout(), "app", generic_), generic_);
}

TEST_F(ModuleLibraryPathTest, OwnLibraryWins) {
  const fs::path own = layout().ModuleLib("app") / "postgresql.so";
  WriteFile(own, "elf");
  WriteFile(layout().ModuleLib("app") / "README", "");
  EXPECT_EQ(*ModuleLibraryPath(layout(), "app", generic_), own);
}

TEST_F(ModuleLibraryPathTest, SymlinkToLibraryCounts) {
  WriteFile(layout().ModuleLib("app") / "app.so.1", "elf");
  fs::create_symlink("app.so.1", layout().ModuleLib("app") / "app.so");
  EXPECT_EQ(*ModuleLibraryPath(layout(), "app", generic_), layout().ModuleLib("app") / "app.so");
}

TEST_F(ModuleLibraryPathTest, SeveralLibrariesAreAnErrorNamingThem) {
  WriteFile(layout().ModuleLib("app") / "b.so", "elf");
  WriteFile(layout().ModuleLib("app") / "a.so", "elf");
  sdk::Result<fs::path> path = ModuleLibraryPath(layout(), "app", generic_);
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(path.status().message(), "module app: " + layout().ModuleLib("app").string() +
                                         " holds 2 shared libraries (a.so, b.so); a module "
                                         "ships exactly one");
}

TEST_F(ModuleLibraryPathTest, LibThatIsAFileIsAnError) {
  WriteFile(layout().ModuleLib("app"), "not a folder");
  sdk::Result<fs::path> path = ModuleLibraryPath(layout(), "app", generic_);
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(path.status().message(), HasSubstr(layout().ModuleLib("app").string()));
}

TEST_F(ModuleLibraryPathTest, NoLibraryAndNoGenericModuleIsNotFound) {
  sdk::Result<fs::path> path = ModuleLibraryPath(layout(), "app", "");
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(path.status().message(), HasSubstr("module app has no library in"));
}

TEST_F(ModuleLibraryPathTest, NameThatLeavesTheModulesFolderIsRefused) {
  for (const std::string name : {"", ".", "..", "../etc", "a/b"}) {
    sdk::Result<fs::path> path = ModuleLibraryPath(layout(), name, generic_);
    ASSERT_FALSE(path.ok()) << name;
    EXPECT_EQ(path.status().code(), Status::Code::kInvalidArgument) << name;
  }
}

TEST_F(ModuleLibraryPathTest, ChosenLibraryLoads) {
  fs::create_directories(layout().ModuleLib("app"));
  fs::copy_file(kGood, layout().ModuleLib("app") / "app.so");
  sdk::Result<fs::path> path = ModuleLibraryPath(layout(), "app", generic_);
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  sdk::Result<LoadedModule> loaded = LoadModule(*path, settings_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->library_path(), layout().ModuleLib("app") / "app.so");
}

}  // namespace
}  // namespace hakit::loader
