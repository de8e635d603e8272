// A factory that refuses its settings with an error.
#include "hakit/sdk/export.h"

static hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>> MakeFailingModule(
    const hakit::sdk::ModuleSettings& settings) {
  return hakit::sdk::Status::InvalidArgument("PGDATA is not set in " + settings.userconfig_path);
}

HAKIT_MODULE_EXPORT(MakeFailingModule)
