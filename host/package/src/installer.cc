#include "hakit/package/installer.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "hakit/config/module_config.h"
#include "hakit/loader/loader.h"
#include "hakit/sdk/module.h"

namespace hakit::package {

namespace fs = std::filesystem;
using sdk::Result;
using sdk::Status;

namespace {

// A folder removed, with everything in it, when the guard goes.
class TempDir {
 public:
  static Result<TempDir> Make(const fs::path& parent, const std::string& prefix) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    std::string templ = (parent / (prefix + "XXXXXX")).string();
    if (::mkdtemp(templ.data()) == nullptr) {
      return Status::IoError("cannot create a folder in " + parent.string() + ": " +
                             std::strerror(errno));
    }
    return TempDir(templ);
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempDir(fs::path p) : path_(std::move(p)) {}
  fs::path path_;
};

// Where packages are unpacked before they are installed: beside
// ROOT/modules, so that the final rename stays on one file system, and not
// inside it, where hakitd would take a half-checked folder for a module.
fs::path StagingParent(const Layout& layout) { return layout.root() / ".install"; }

// The %SAFE...% variables the daemon gives the file (see
// daemon/module_runtime), at the module's final place.
config::ParseOptions SafeVariables(const Layout& l, const std::string& name) {
  config::ParseOptions o;
  o.variables = {{"SAFE", l.SafeDir().string()},
                 {"SAFEBIN", l.SafeBinDir().string()},
                 {"SAFEVAR", l.VarDir().string()},
                 {"SAFEMODULE", name},
                 {"SAFEUSERBIN", l.ModuleBin(name).string()},
                 {"SAFEUSERCONF", l.ModuleConf(name).string()},
                 {"SAFEUSERVAR", l.ModuleVar(name).string()}};
  return o;
}

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The checks every module folder passes, whether unpacked from a package
// or given as a folder. `staging` holds modules/NAME (the folder to check).
Result<PackageReport> CheckModule(const std::string& display, const fs::path& staging,
                                  const std::string& name, const Layout& target,
                                  std::optional<Manifest> manifest) {
  const Layout staged(staging);
  const fs::path dir = staged.ModuleDir(name);
  PackageReport report;
  report.module = name;
  report.manifest = std::move(manifest);
  std::error_code ec;
  if (!fs::is_regular_file(staged.UserConfig(name), ec)) {
    return Status::InvalidArgument(display + ": no conf/userconfig.xml: not a module package");
  }
  auto cfg =
      config::ParseUserConfigString(ReadText(staged.UserConfig(name)),
                                    display + ":conf/userconfig.xml", SafeVariables(target, name));
  if (!cfg.ok()) return cfg.status();
  for (const auto& w : cfg->warnings) report.warnings.push_back(w.ToString());
  report.readiness = config::CheckModuleReadiness(*cfg);

  // The library, by the loader's own rule (one lib/*.so), and its ABI
  // before anything else of it is trusted.
  auto lib = loader::ModuleLibraryPath(staged, name, "");
  if (lib.ok()) {
    report.library = "lib/" + lib->filename().string();
    auto abi = loader::ReadAbiVersion(*lib);
    if (!abi.ok())
      return Status::InvalidArgument(display + ": " + report.library + ": " +
                                     abi.status().message());
    if (*abi != sdk::kAbiVersion) {
      return Status::AbiMismatch(display + ": " + report.library + " was built for SDK ABI " +
                                 std::to_string(*abi) + "; this hakit speaks ABI " +
                                 std::to_string(sdk::kAbiVersion));
    }
    if (report.manifest && report.manifest->abi != sdk::kAbiVersion) {
      return Status::AbiMismatch(display + ": the manifest says SDK ABI " +
                                 std::to_string(report.manifest->abi) + "; this hakit speaks ABI " +
                                 std::to_string(sdk::kAbiVersion));
    }
  } else if (lib.status().code() != Status::Code::kNotFound) {
    return Status::InvalidArgument(display + ": " + lib.status().message());
  } else {
    for (const char* script : {"start_prim", "stop_prim"}) {
      if (!fs::is_regular_file(staged.ModuleBin(name) / script, ec)) {
        return Status::InvalidArgument(display + ": no bin/" + script +
                                       ": a module without lib/*.so needs bin/start_prim and "
                                       "bin/stop_prim");
      }
    }
  }
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) {
      ++report.files;
      report.bytes += it->file_size(ec);
    }
  }
  return report;
}

// Unpacks `file` into STAGING/modules/NAME and checks it.
Result<PackageReport> Stage(const fs::path& file, const fs::path& staging, const Layout& target,
                            const InstallOptions& options) {
  const std::string display = file.string();
  const fs::path unpacked = staging / "unpacked";
  auto files = ExtractPackage(file, unpacked, options.limits);
  if (!files.ok()) return files.status();

  std::optional<Manifest> manifest;
  std::error_code ec;
  if (fs::exists(unpacked / kManifestName, ec)) {
    auto m = ParseManifest(ReadText(unpacked / kManifestName), display + ":" + kManifestName);
    if (!m.ok()) return m.status();
    manifest = std::move(*m);
  }

  std::string name = options.name;
  if (name.empty()) name = manifest ? manifest->module : file.stem().string();
  if (std::string why = InvalidModuleName(name); !why.empty()) {
    return Status::InvalidArgument(display + ": " + why);
  }
  if (manifest) {
    const Manifest* m = &*manifest;
    std::set<std::string> present(files->files.begin(), files->files.end());
    for (const auto& [path, sum] : m->sha256) {
      if (!present.count(path)) {
        return Status::InvalidArgument(display + ": the manifest lists " + path +
                                       ", which the package lacks");
      }
      auto actual = Sha256File(unpacked / path);
      if (!actual.ok()) return actual.status();
      if (*actual != sum) {
        return Status::Corruption(display + ": " + path +
                                  ": SHA-256 does not match the manifest (the package was "
                                  "altered or damaged)");
      }
    }
    for (const auto& path : files->files) {
      if (path != kManifestName && !m->sha256.count(path)) {
        return Status::InvalidArgument(display + ": " + path + " is not listed in the manifest");
      }
    }
  }
  fs::create_directories(staging / "modules", ec);
  fs::rename(unpacked, Layout(staging).ModuleDir(name), ec);
  if (ec) return Status::IoError("cannot stage " + display + ": " + ec.message());
  return CheckModule(display, staging, name, target, std::move(manifest));
}

Status RefuseUnlessStopped(const ModuleStateFn& module_state, const std::string& name,
                           const std::string& what) {
  if (!module_state) return Status::Failed("no way to ask the module's state was given");
  auto state = module_state(name);
  if (!state.ok()) {
    return Status::Failed("cannot " + what + " module " + name +
                          ": cannot tell whether it runs: " + state.status().message());
  }
  if (*state != "STOP") {
    return Status::Failed("cannot " + what + " module " + name + ": it is " + *state +
                          " on this node; stop it first (hakit stop -m " + name + ")");
  }
  return Status::Ok();
}

}  // namespace

std::string PackageReport::Summary() const {
  std::string s = module;
  if (manifest) {
    s += " " + manifest->version + " (ABI " + std::to_string(manifest->abi);
  } else {
    s += " (SafeKit package, no manifest";
  }
  s += library.empty() ? ", scripts)" : ", " + library + ")";
  return s;
}

Result<PackageReport> CheckPackage(const fs::path& file, const Layout& layout,
                                   const InstallOptions& options) {
  // Beside the modules when this node's root is writable, else wherever
  // temporary files go (a check needs no root).
  std::error_code ec;
  auto staging = TempDir::Make(StagingParent(layout), "check-");
  if (staging.ok()) return Stage(file, staging->path(), layout, options);
  auto elsewhere = TempDir::Make(fs::temp_directory_path(ec), "hakit-check-");
  if (!elsewhere.ok()) return elsewhere.status();
  return Stage(file, elsewhere->path(), layout, options);
}

Result<PackageReport> CheckModuleDir(const fs::path& dir, const Layout& layout,
                                     const std::string& name) {
  if (std::string why = InvalidModuleName(name); !why.empty()) {
    return Status::InvalidArgument(dir.string() + ": " + why);
  }
  std::error_code ec;
  auto staging = TempDir::Make(fs::temp_directory_path(ec), "hakit-check-");
  if (!staging.ok()) return staging.status();
  // A link, so that the folder is seen where the checks expect a module.
  fs::create_directories(staging->path() / "modules", ec);
  fs::create_directory_symlink(fs::absolute(dir, ec), Layout(staging->path()).ModuleDir(name), ec);
  if (ec) return Status::IoError("cannot check " + dir.string() + ": " + ec.message());
  std::optional<Manifest> none;
  return CheckModule(dir.string(), staging->path(), name, layout, none);
}

namespace {

// What an install or uninstall interrupted by a crash left in ROOT/.install
// (anything an hour old: no exchange takes that long).
void RemoveStaleStaging(const Layout& layout) {
  std::error_code ec;
  const auto limit = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& e : fs::directory_iterator(StagingParent(layout), ec)) {
    std::error_code stat_ec;
    if (e.last_write_time(stat_ec) < limit && !stat_ec) fs::remove_all(e.path(), stat_ec);
  }
}

}  // namespace

Result<PackageReport> InstallPackage(const fs::path& file, const Layout& layout,
                                     const InstallOptions& options) {
  RemoveStaleStaging(layout);
  std::error_code ec;
  fs::create_directories(layout.ModulesDir(), ec);
  if (ec)
    return Status::IoError("cannot create " + layout.ModulesDir().string() + ": " + ec.message());
  auto staging = TempDir::Make(StagingParent(layout), "install-");
  if (!staging.ok()) return staging.status();
  auto report = Stage(file, staging->path(), layout, options);
  if (!report.ok()) return report.status();
  const std::string& name = report->module;
  if (Status s = RefuseUnlessStopped(options.module_state, name, "install over"); !s.ok()) {
    return s;
  }
  fs::path staged = Layout(staging->path()).ModuleDir(name);
  fs::path target = layout.ModuleDir(name);
  if (fs::exists(fs::symlink_status(target, ec))) {
    // One step: readers see the old module or the new one, never neither.
    if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
      return Status::IoError("cannot replace " + target.string() + ": " + std::strerror(errno));
    }
  } else {
    fs::rename(staged, target, ec);
    if (ec) return Status::IoError("cannot install " + target.string() + ": " + ec.message());
  }
  return report;
}

Status UninstallModule(const Layout& layout, const std::string& name,
                       const ModuleStateFn& module_state) {
  if (std::string why = InvalidModuleName(name); !why.empty()) return Status::InvalidArgument(why);
  fs::path dir = layout.ModuleDir(name);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) {
    return Status::NotFound("no module " + name + " installed in " + layout.ModulesDir().string());
  }
  if (Status s = RefuseUnlessStopped(module_state, name, "uninstall"); !s.ok()) return s;
  auto trash = TempDir::Make(StagingParent(layout), "remove-");
  if (!trash.ok()) return trash.status();
  // Out of ROOT/modules in one rename; the files go with the guard.
  fs::rename(dir, trash->path() / name, ec);
  if (ec) return Status::IoError("cannot remove " + dir.string() + ": " + ec.message());
  return Status::Ok();
}

std::string RecordedModuleState(const Layout& layout, const std::string& module) {
  std::ifstream in(layout.ModuleVar(module) / "state.json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  std::string state = j.is_object() ? j.value("state", "STOP") : "STOP";
  // WAIT runs nothing; neither does a module that was stopped.
  if (state == "STOP" || state == "WAIT") return "STOP";
  return state + " (as hakitd last recorded it; its stop scripts have not run since)";
}

}  // namespace hakit::package
