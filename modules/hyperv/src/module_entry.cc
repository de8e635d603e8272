// The library's entry point: settings from <user><var>, the hypervisor
// backend HYPERVISOR names.
#include "hakit/hyperv/vm_module.h"
#include "hakit/sdk/export.h"

namespace {

hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>> MakeVmModule(
    const hakit::sdk::ModuleSettings& settings) {
  using namespace hakit::hyperv;
#ifdef _WIN32
  const bool windows = true;
#else
  const bool windows = false;
#endif
  auto s = ParseVmSettings(settings.vars, windows);
  if (!s.ok()) return s.status().WithContext(settings.userconfig_path);
  auto hypervisor = MakeHypervisor(*s, settings.paths.var_dir);
  return std::unique_ptr<hakit::sdk::Module>(std::make_unique<VmModule>(*s, std::move(hypervisor)));
}

}  // namespace

HAKIT_MODULE_EXPORT(MakeVmModule)
