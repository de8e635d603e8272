// Calls a function nothing defines. A MODULE library links anyway; loading it
// lazily would succeed and crash at the first hook, so the loader's RTLD_NOW
// must refuse it at load time.
#include "hakit/sdk/export.h"

extern "C" int hakit_test_symbol_nobody_defines();

namespace {

class UnresolvedModule : public hakit::sdk::Module {
 public:
  hakit::sdk::Status RunHook(hakit::sdk::Hook hook, const hakit::sdk::HookArgs& args,
                             hakit::sdk::HostContext& host) override {
    return hakit_test_symbol_nobody_defines() == 0 ? hakit::sdk::Status::Ok()
                                                   : hakit::sdk::Status::Failed("no");
  }
};

hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>> MakeUnresolvedModule(
    const hakit::sdk::ModuleSettings& settings) {
  return std::unique_ptr<hakit::sdk::Module>(std::make_unique<UnresolvedModule>());
}

}  // namespace

HAKIT_MODULE_EXPORT(MakeUnresolvedModule)
