// Exports a factory but no hakit_abi_version: not a hakit module.
#include "hakit/sdk/export.h"

namespace no_abi {

hakit::sdk::Status Create(const hakit::sdk::ModuleSettings& settings,
                          std::unique_ptr<hakit::sdk::Module>* out) noexcept {
  *out = std::make_unique<hakit::sdk::Module>();
  return hakit::sdk::Status::Ok();
}

}  // namespace no_abi

BOOST_DLL_ALIAS(no_abi::Create, hakit_create_module)
