// A factory that throws; HAKIT_MODULE_EXPORT turns it into a Status.
#include <stdexcept>

#include "hakit/sdk/export.h"

static hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>> MakeThrowingModule(
    const hakit::sdk::ModuleSettings& settings) {
  throw std::runtime_error("cannot reach the database on port 5432");
}

HAKIT_MODULE_EXPORT(MakeThrowingModule)
