// Claims SDK ABI 999. The factory leaves a marker file behind if it is ever
// called: the loader must refuse the module before that.
#include <cstdint>
#include <fstream>

#include "hakit/sdk/export.h"

namespace abi999 {

hakit::sdk::Status Create(const hakit::sdk::ModuleSettings& settings,
                          std::unique_ptr<hakit::sdk::Module>* out) noexcept {
  auto it = settings.vars.find("MARKER");
  if (it != settings.vars.end()) std::ofstream(it->second) << "factory called\n";
  *out = std::make_unique<hakit::sdk::Module>();
  return hakit::sdk::Status::Ok();
}

const std::uint32_t abi_version = 999;

}  // namespace abi999

BOOST_DLL_ALIAS(abi999::Create, hakit_create_module)
BOOST_DLL_ALIAS(abi999::abi_version, hakit_abi_version)
