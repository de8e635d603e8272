// Loading module libraries (Boost.DLL) and checking their SDK ABI.
//
// A module library exports, through HAKIT_MODULE_EXPORT (sdk/export.h), two
// Boost.DLL aliases: `hakit_abi_version` and `hakit_create_module`. The
// loader opens the library, reads the ABI version first and refuses a
// mismatch before it resolves or calls anything else, then creates the one
// Module object through the factory.
//
// Lifetime: the library stays loaded for as long as any object it made is
// alive. The shared_ptr<sdk::Module> handed out owns a reference to the
// library in its deleter, so the module object is destroyed while its code is
// still mapped and the library is closed only after the last copy is gone.
// Nothing here unloads a library behind an object's back.
//
// Caveat: opening a library runs its static initializers; the ABI check
// happens after dlopen but before any exported entry point is called. Only
// load libraries from installed (trusted) packages.
//
// Thread-safety: every function here may be called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "hakit/common/layout.h"
#include "hakit/sdk/module.h"
#include "hakit/sdk/status.h"

namespace hakit::loader {

// The names a module library exports (see sdk/export.h).
inline constexpr const char kAbiVersionSymbol[] = "hakit_abi_version";
inline constexpr const char kCreateModuleSymbol[] = "hakit_create_module";

// One module object created from a module library. Cheap to copy; copies
// share the module object. Dropping every LoadedModule is fine as long as
// someone still holds module(): the library lives as long as the object.
class LoadedModule {
 public:
  // Public so that tests of the daemon can wrap an in-process fake module;
  // production code gets LoadedModules from LoadModule().
  LoadedModule(std::shared_ptr<sdk::Module> module, std::filesystem::path library_path,
               std::uint32_t abi_version)
      : module_(std::move(module)),
        library_path_(std::move(library_path)),
        abi_version_(abi_version) {}

  // Never null. Its deleter keeps the library loaded until the object is
  // destroyed; copy it to keep the module (and its library) alive.
  const std::shared_ptr<sdk::Module>& module() const { return module_; }
  sdk::Module& operator*() const { return *module_; }
  sdk::Module* operator->() const { return module_.get(); }

  // The library the module came from, absolute, as it was loaded.
  const std::filesystem::path& library_path() const { return library_path_; }

  // The SDK ABI the library declares (equal to sdk::kAbiVersion once loaded).
  std::uint32_t abi_version() const { return abi_version_; }

 private:
  std::shared_ptr<sdk::Module> module_;
  std::filesystem::path library_path_;
  std::uint32_t abi_version_;
};

// Loads `library` (RTLD_NOW | RTLD_LOCAL: unresolved symbols fail here, not
// at the first hook; modules cannot see each other's symbols), checks its
// ABI and creates its module object with `settings`. Errors, each naming the
// path:
//   NotFound         the file does not exist; the library exports no
//                    hakit_abi_version ("not a hakit module: ...") or no
//                    hakit_create_module;
//   InvalidArgument  not a loadable shared library (text file, truncated
//                    .so, unresolved symbol, directory), with dlopen's reason;
//                    an export that is not a Boost.DLL alias;
//   AbiMismatch      built for another SDK ABI (names both versions); the
//                    factory is never called;
//   Failed           the factory returned an error or threw (the module's
//                    message is kept) or returned no object.
// On error the library is unloaded again before returning.
sdk::Result<LoadedModule> LoadModule(const std::filesystem::path& library,
                                     const sdk::ModuleSettings& settings);

// Reads the SDK ABI version `library` was built for, without creating
// anything (for package checks). The library is loaded and unloaded again;
// its static initializers run. A version other than sdk::kAbiVersion is not
// an error here: the caller decides. Errors as LoadModule's first three.
sdk::Result<std::uint32_t> ReadAbiVersion(const std::filesystem::path& library);

// Which library implements installed module `module_name`: the single *.so
// in ROOT/modules/NAME/lib/ if that folder holds one, else
// `generic_module_path` (the generic module, whose hooks run bin/ scripts).
// Errors: InvalidArgument when lib/ holds several .so files (they are
// listed) or lib/ is not a folder; NotFound when the module has no library
// and `generic_module_path` is empty; IoError when lib/ cannot be read.
// Only the folder is examined; the file is checked by LoadModule.
sdk::Result<std::filesystem::path> ModuleLibraryPath(
    const Layout& layout, const std::string& module_name,
    const std::filesystem::path& generic_module_path);

}  // namespace hakit::loader
