// The library's entry point: settings from <user><var>, the platform's
// service manager.
#include "hakit/sdk/export.h"
#include "hakit/sqlserver/sqlserver_module.h"

namespace {

hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>> MakeSqlServerModule(
    const hakit::sdk::ModuleSettings& settings) {
  using namespace hakit::sqlserver;
  auto s = ParseSettings(settings.vars, ThisPlatform());
  if (!s.ok()) return s.status().WithContext(settings.userconfig_path);
  auto services = MakeServiceManager(*s);
  return std::unique_ptr<hakit::sdk::Module>(
      std::make_unique<SqlServerModule>(*s, std::move(services), settings.paths.bin_dir));
}

}  // namespace

HAKIT_MODULE_EXPORT(MakeSqlServerModule)
