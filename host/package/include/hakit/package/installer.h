// Checking, installing and uninstalling module packages on one node.
//
// Install is all or nothing: the package is unpacked into ROOT/.install/
// (beside ROOT/modules, on the same file system), checked there, and only
// then moved into ROOT/modules/NAME with one rename (an existing module is
// swapped out atomically with renameat2(RENAME_EXCHANGE)). Any refusal leaves
// what is installed exactly as it was.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hakit/common/layout.h"
#include "hakit/config/problem.h"
#include "hakit/package/archive.h"
#include "hakit/package/manifest.h"
#include "hakit/sdk/status.h"

namespace hakit::package {

// The state of `module` on this node as hakitd shows it ("STOP", "PRIM",
// "SECOND (busy)", ...), "STOP" for a module that is not loaded. An error
// means the state cannot be known; installing and uninstalling then refuse.
using ModuleStateFn = std::function<sdk::Result<std::string>(const std::string& module)>;

// What a checked (or installed) package holds.
struct PackageReport {
  std::string module;                // the name it installs (or installed) as
  std::optional<Manifest> manifest;  // none: a SafeKit package
  std::string library;               // "lib/x.so", empty: the generic module runs bin/
  std::size_t files = 0;
  std::uint64_t bytes = 0;
  // Placeholders and Windows paths left in userconfig.xml: the package
  // installs, the module cannot start until they are filled in.
  std::vector<config::Problem> readiness;
  std::vector<std::string> warnings;  // configuration warnings (unsupported elements)

  // "postgresql 2.1 (ABI 1, lib/postgresql.so)" / "mirror (SafeKit package, scripts)".
  std::string Summary() const;
};

struct InstallOptions {
  // The name to install under; empty: the manifest's module name, else the
  // package file's name without .safe.
  std::string name;
  ExtractLimits limits;
  // Required by InstallPackage and UninstallModule.
  ModuleStateFn module_state;
};

// Unpacks and checks `file` without installing it (in a temporary folder
// under `layout`'s root if it exists, else under the system's temporary
// folder). The configuration's %SAFE...% variables are those it would get
// under `layout`. Every refusal names the package and what is wrong:
// unsafe entries (see ExtractPackage), a bad or unmatched manifest (a file's
// SHA-256 differs, a file is missing or unlisted), a bad module name, no
// conf/userconfig.xml, a configuration error (with its line), a module
// without library lacking bin/start_prim or bin/stop_prim, lib/ holding
// several libraries or one built for another SDK ABI.
sdk::Result<PackageReport> CheckPackage(const std::filesystem::path& file, const Layout& layout,
                                        const InstallOptions& options);

// The same checks on a module folder (the one `hakit module package` would pack).
sdk::Result<PackageReport> CheckModuleDir(const std::filesystem::path& dir, const Layout& layout,
                                          const std::string& name);

// Checks `file`, then installs it as ROOT/modules/NAME, replacing a module
// of that name only if options.module_state says it is STOP ("module NAME
// is PRIM on this node: stop it first (hakit stop -m NAME)").
sdk::Result<PackageReport> InstallPackage(const std::filesystem::path& file, const Layout& layout,
                                          const InstallOptions& options);

// Removes ROOT/modules/NAME (its var/ and logs stay), refusing a module that
// is not STOP, and NotFound for a module that is not installed.
sdk::Status UninstallModule(const Layout& layout, const std::string& name,
                            const ModuleStateFn& module_state);

// The state of `module` when hakitd does not answer: what it last recorded
// in ROOT/var/modules/NAME/state.json ("STOP" when there is none). A module
// left PRIM by a daemon that died still has its application running.
std::string RecordedModuleState(const Layout& layout, const std::string& module);

}  // namespace hakit::package
