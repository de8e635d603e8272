// Declares the right ABI but exports no factory.
#include <cstdint>

#include "hakit/sdk/export.h"

namespace no_factory {
const std::uint32_t abi_version = hakit::sdk::kAbiVersion;
}  // namespace no_factory

BOOST_DLL_ALIAS(no_factory::abi_version, hakit_abi_version)
