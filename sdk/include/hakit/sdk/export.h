// Exporting a module library's entry points.
//
// A module library writes, once, in one .cc file:
//
//   #include "hakit/sdk/export.h"
//   static hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>>
//   MakeMyModule(const hakit::sdk::ModuleSettings& settings) { ... }
//   HAKIT_MODULE_EXPORT(MakeMyModule)
//
// This exports two symbols through BOOST_DLL_ALIAS:
//   hakit_abi_version    a const std::uint32_t, the SDK ABI the library was
//                        built against; the loader reads it before anything
//                        else and refuses a mismatch;
//   hakit_create_module  the factory, wrapped so that no exception crosses
//                        the library boundary.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include <boost/dll/alias.hpp>

#include "hakit/sdk/module.h"

namespace hakit::sdk {

// The exported factory's type. Never throws; on success stores the new
// module in *out.
using CreateModuleFn = Status(const ModuleSettings& settings, std::unique_ptr<Module>* out);

namespace internal {

template <typename Factory>
Status GuardedCreate(Factory factory, const ModuleSettings& settings,
                     std::unique_ptr<Module>* out) noexcept {
  try {
    Result<std::unique_ptr<Module>> made = factory(settings);
    if (!made.ok()) return made.status();
    if (!*made) return Status::Failed("module factory returned no object");
    *out = std::move(*made);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Failed(std::string("module factory threw: ") + e.what());
  } catch (...) {
    return Status::Failed("module factory threw a non-standard exception");
  }
}

}  // namespace internal
}  // namespace hakit::sdk

#define HAKIT_MODULE_EXPORT(FACTORY)                                                     \
  namespace hakit_module_entry {                                                         \
  ::hakit::sdk::Status Create(const ::hakit::sdk::ModuleSettings& settings,              \
                              std::unique_ptr<::hakit::sdk::Module>* out) noexcept {     \
    return ::hakit::sdk::internal::GuardedCreate(&FACTORY, settings, out);               \
  }                                                                                      \
  const std::uint32_t abi_version = ::hakit::sdk::kAbiVersion;                           \
  }                                                                                      \
  BOOST_DLL_ALIAS(hakit_module_entry::Create, hakit_create_module)                       \
  BOOST_DLL_ALIAS(hakit_module_entry::abi_version, hakit_abi_version)
