// Exports hakit_abi_version as a plain integer instead of a Boost.DLL alias
// (a likely mistake in a hand-written C module). Following it as an alias
// would dereference address 1; the loader must refuse it instead.
#include <cstdint>

extern "C" __attribute__((visibility("default"))) const std::uint32_t hakit_abi_version = 1;
