#include "hakit/loader/loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cstring>
#include <exception>
#include <fstream>
#include <string_view>
#include <system_error>
#include <vector>

#include "hakit/sdk/export.h"

namespace hakit::loader {

namespace fs = std::filesystem;
using sdk::Result;
using sdk::Status;

namespace {

// Held through a shared_ptr rather than copied: copying a
// boost::dll::shared_library re-opens the file by path with the default
// (lazy) mode, which could pick up a different file if a package was
// reinstalled meanwhile. One handle, reference-counted, has neither problem.
using LibraryRef = std::shared_ptr<const boost::dll::shared_library>;

// Deletes the module object and only then lets go of its library: the
// destructor's code lives in the library. The library reference is released
// when the control block goes away, which is after this call returns.
struct LibraryKeepingDeleter {
  LibraryRef library;
  void operator()(sdk::Module* module) const { delete module; }
};

std::string StripPrefix(std::string text, std::string_view prefix) {
  if (!prefix.empty() && text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
  return text;
}

// dlopen maps a library's segments without comparing them with the file's
// size; a library cut short inside a segment (an interrupted copy, a full
// disk during install) then kills the whole daemon with SIGBUS when the
// loader touches the missing pages. So before dlopen, the program headers of
// a native ELF file are read and every loadable segment must lie within the
// file. Anything that is not a native ELF file is left to dlopen, whose own
// reasons ("invalid ELF header", "wrong ELF class") are good.
Status CheckSegmentsWithinFile(const fs::path& library, std::uintmax_t file_size) {
  std::ifstream in(library, std::ios::binary);
  ElfW(Ehdr) header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof(header))) return Status::Ok();
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 ||
      header.e_ident[EI_CLASS] != (sizeof(void*) == 8 ? ELFCLASS64 : ELFCLASS32) ||
      header.e_phentsize != sizeof(ElfW(Phdr))) {
    return Status::Ok();
  }
  const std::string prefix = "cannot load module library " + library.string() + ": ";
  const std::uintmax_t table_end =
      std::uintmax_t{header.e_phoff} + std::uintmax_t{header.e_phnum} * sizeof(ElfW(Phdr));
  if (table_end > file_size) {
    return Status::InvalidArgument(prefix + "truncated file: program headers end at byte " +
                                   std::to_string(table_end) + " but the file has " +
                                   std::to_string(file_size) + " bytes");
  }
  in.seekg(static_cast<std::streamoff>(header.e_phoff));
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    ElfW(Phdr) segment{};
    if (!in.read(reinterpret_cast<char*>(&segment), sizeof(segment))) {
      return Status::IoError(prefix + "cannot read its program headers");
    }
    if (segment.p_type != PT_LOAD) continue;
    const std::uintmax_t end = std::uintmax_t{segment.p_offset} + segment.p_filesz;
    if (end < segment.p_offset || end > file_size) {
      return Status::InvalidArgument(prefix + "truncated file: a loadable segment ends at byte " +
                                     std::to_string(end) + " but the file has " +
                                     std::to_string(file_size) + " bytes");
    }
  }
  return Status::Ok();
}

// Opens `library` (already absolute) with RTLD_NOW | RTLD_LOCAL.
Result<LibraryRef> OpenLibrary(const fs::path& library) {
  std::error_code ec;
  const fs::file_status st = fs::status(library, ec);
  if (st.type() == fs::file_type::not_found) {
    return Status::NotFound("module library not found: " + library.string());
  }
  if (ec) {
    return Status::IoError("cannot examine module library " + library.string() + ": " +
                           ec.message());
  }
  if (fs::is_directory(st)) {
    return Status::InvalidArgument("module library " + library.string() +
                                   " is a directory, not a shared library");
  }
  // A FIFO or a device would make dlopen block or read forever.
  if (!fs::is_regular_file(st)) {
    return Status::InvalidArgument("module library " + library.string() + " is not a regular file");
  }

  const std::uintmax_t file_size = fs::file_size(library, ec);
  if (ec) {
    return Status::IoError("cannot examine module library " + library.string() + ": " +
                           ec.message());
  }
  if (Status checked = CheckSegmentsWithinFile(library, file_size); !checked.ok()) return checked;

  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code load_ec;
  // Boost.DLL reports every dlopen failure as one generic error code; the
  // useful reason ("invalid ELF header", "undefined symbol: x") is only in
  // dlerror(), which is per thread and which Boost leaves set on failure.
  ::dlerror();
  lib->load(library, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, load_ec);
  if (load_ec || !lib->is_loaded()) {
    const char* reason = ::dlerror();
    std::string why =
        reason != nullptr ? StripPrefix(reason, library.string() + ": ") : load_ec.message();
    return Status::InvalidArgument("cannot load module library " + library.string() + ": " + why);
  }
  return LibraryRef(std::move(lib));
}

// What an exported Boost.DLL alias leads to.
struct Alias {
  enum class Kind { kMissing, kNotAnAlias, kFound };
  Kind kind = Kind::kMissing;
  const void* target = nullptr;  // the real function or object, when kFound
};

// Looks `name` up in `lib`. A Boost.DLL alias is a pointer-sized variable
// whose value is the address of the real function or object inside the same
// library. A symbol of the right name that is not one (say a C module's
// `const uint32_t hakit_abi_version = 1;`) is refused, not followed: reading
// it as a pointer over-reads it, and following that pointer would crash the
// daemon instead of refusing the module.
Alias FindAlias(const boost::dll::shared_library& lib, const char* name) {
  Alias alias;
  // The symbol's address only; nothing is read until its size is known.
  const void* slot = ::dlsym(lib.native(), name);
  if (slot == nullptr) return alias;
  alias.kind = Alias::Kind::kNotAnAlias;
  Dl_info slot_info{};
  void* symbol_entry = nullptr;  // a const ElfW(Sym)*
  if (::dladdr1(slot, &slot_info, &symbol_entry, RTLD_DL_SYMENT) == 0 || symbol_entry == nullptr ||
      static_cast<const ElfW(Sym)*>(symbol_entry)->st_size != sizeof(void*)) {
    return alias;
  }
  const void* target = *static_cast<const void* const*>(slot);
  Dl_info target_info{};
  if (::dladdr(target, &target_info) == 0 || target_info.dli_fbase != slot_info.dli_fbase) {
    return alias;
  }
  alias.kind = Alias::Kind::kFound;
  alias.target = target;
  return alias;
}

Status NotAnAlias(const fs::path& library, const char* name) {
  return Status::InvalidArgument("module " + library.string() + " exports " + name +
                                 " but not as a Boost.DLL alias (export it with "
                                 "HAKIT_MODULE_EXPORT)");
}

Result<std::uint32_t> ReadAbi(const boost::dll::shared_library& lib, const fs::path& library) {
  const Alias abi = FindAlias(lib, kAbiVersionSymbol);
  switch (abi.kind) {
    case Alias::Kind::kMissing:
      return Status::NotFound("not a hakit module: " + library.string() + " exports no " +
                              kAbiVersionSymbol);
    case Alias::Kind::kNotAnAlias:
      return NotAnAlias(library, kAbiVersionSymbol);
    case Alias::Kind::kFound:
      break;
  }
  return *static_cast<const std::uint32_t*>(abi.target);
}

// Absolute so that dlopen never searches its library path for a bare name
// and a later chdir cannot change what the path names. Not normalized: with
// symlinks, "a/../b" is not always "b".
fs::path Absolute(const fs::path& library) {
  std::error_code ec;
  fs::path absolute = fs::absolute(library, ec);
  return ec ? library : absolute;
}

}  // namespace

Result<std::uint32_t> ReadAbiVersion(const fs::path& library) {
  const fs::path path = Absolute(library);
  Result<LibraryRef> lib = OpenLibrary(path);
  if (!lib.ok()) return lib.status();
  return ReadAbi(**lib, path);
}

Result<LoadedModule> LoadModule(const fs::path& library, const sdk::ModuleSettings& settings) {
  const fs::path path = Absolute(library);
  Result<LibraryRef> opened = OpenLibrary(path);
  if (!opened.ok()) return opened.status();
  // Declared before anything the library makes, so that on every early
  // return those objects are destroyed while the library is still loaded.
  const LibraryRef lib = std::move(*opened);

  // The ABI comes first: with another ABI, even the factory's signature may
  // differ, so nothing else is resolved or called.
  Result<std::uint32_t> abi = ReadAbi(*lib, path);
  if (!abi.ok()) return abi.status();
  if (*abi != sdk::kAbiVersion) {
    return Status::AbiMismatch("module " + path.string() + " was built for SDK ABI " +
                               std::to_string(*abi) + ", this hakitd speaks ABI " +
                               std::to_string(sdk::kAbiVersion));
  }

  const Alias factory = FindAlias(*lib, kCreateModuleSymbol);
  switch (factory.kind) {
    case Alias::Kind::kMissing:
      return Status::NotFound("module " + path.string() + " exports " + kAbiVersionSymbol +
                              " but no " + kCreateModuleSymbol +
                              " factory (export it with HAKIT_MODULE_EXPORT)");
    case Alias::Kind::kNotAnAlias:
      return NotAnAlias(path, kCreateModuleSymbol);
    case Alias::Kind::kFound:
      break;
  }
  auto* create = reinterpret_cast<sdk::CreateModuleFn*>(const_cast<void*>(factory.target));

  const std::string context =
      "module " + path.string() + " failed to create '" + settings.name + "'";
  std::unique_ptr<sdk::Module> made;
  Status status;
  // HAKIT_MODULE_EXPORT's wrapper never throws; a factory exported by hand
  // might, and an exception must not take the daemon down.
  try {
    status = create(settings, &made);
  } catch (const std::exception& e) {
    return Status::Failed(context + ": factory threw: " + e.what());
  } catch (...) {
    return Status::Failed(context + ": factory threw a non-standard exception");
  }
  if (!status.ok()) return Status::Failed(context + ": " + status.message());
  if (made == nullptr) return Status::Failed(context + ": factory returned no object");

  std::shared_ptr<sdk::Module> module(made.release(), LibraryKeepingDeleter{lib});
  return LoadedModule(std::move(module), path, *abi);
}

Result<fs::path> ModuleLibraryPath(const Layout& layout, const std::string& module_name,
                                   const fs::path& generic_module_path) {
  // The name becomes a path component; refuse anything that would step
  // outside ROOT/modules.
  if (module_name.empty() || module_name == "." || module_name == ".." ||
      module_name.find('/') != std::string::npos) {
    return Status::InvalidArgument("invalid module name '" + module_name + "'");
  }
  const fs::path lib_dir = layout.ModuleLib(module_name);

  std::error_code ec;
  const fs::file_status st = fs::status(lib_dir, ec);
  std::vector<fs::path> libraries;
  if (st.type() != fs::file_type::not_found) {
    if (ec) {
      return Status::IoError("cannot examine " + lib_dir.string() + ": " + ec.message());
    }
    if (!fs::is_directory(st)) {
      return Status::InvalidArgument("module " + module_name + ": " + lib_dir.string() +
                                     " is not a folder");
    }
    fs::directory_iterator it(lib_dir, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::error_code entry_ec;
      // is_regular_file follows symlinks: a lib/NAME.so -> NAME.so.1.2 link
      // counts, a dangling one does not.
      if (it->path().extension() == ".so" && it->is_regular_file(entry_ec)) {
        libraries.push_back(it->path());
      }
    }
    if (ec) return Status::IoError("cannot list " + lib_dir.string() + ": " + ec.message());
  }

  if (libraries.size() == 1) return libraries.front();
  if (libraries.size() > 1) {
    std::sort(libraries.begin(), libraries.end());
    std::string names;
    for (const fs::path& p : libraries) {
      names += (names.empty() ? "" : ", ") + p.filename().string();
    }
    return Status::InvalidArgument("module " + module_name + ": " + lib_dir.string() + " holds " +
                                   std::to_string(libraries.size()) + " shared libraries (" +
                                   names + "); a module ships exactly one");
  }
  if (generic_module_path.empty()) {
    return Status::NotFound("module " + module_name + " has no library in " + lib_dir.string() +
                            " and no generic module library is configured");
  }
  return generic_module_path;
}

}  // namespace hakit::loader
