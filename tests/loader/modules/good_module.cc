// A well-behaved module: records every call into the file named by the
// HOOK_LOG var so that the test can see what ran, including the destructor
// (which must run while the library is still loaded).
#include <fstream>
#include <string>

#include "hakit/sdk/export.h"

namespace {

class GoodModule : public hakit::sdk::Module {
 public:
  explicit GoodModule(const hakit::sdk::ModuleSettings& settings)
      : name_(settings.name),
        log_path_(Var(settings, "HOOK_LOG")),
        replicated_dir_(Var(settings, "REPLICATED_DIR")) {
    Record("create " + name_);
  }
  ~GoodModule() override { Record("destroy " + name_); }

  hakit::sdk::Status Describe(hakit::sdk::ModuleDescription* out) override {
    hakit::sdk::ReplicatedDirSpec dir;
    dir.path = replicated_dir_.empty() ? "/var/lib/test_module_good/data" : replicated_dir_;
    dir.not_replicated = {"tmp"};
    out->replicated_dirs.push_back(dir);
    Record("describe");
    return hakit::sdk::Status::Ok();
  }

  hakit::sdk::Status RunHook(hakit::sdk::Hook hook, const hakit::sdk::HookArgs& args,
                             hakit::sdk::HostContext& host) override {
    Record(std::string(hakit::sdk::HookName(hook)) + " " + args.current_state + " " +
           args.next_state + " " + args.action + (args.force ? " force" : ""));
    return hakit::sdk::Status::Ok();
  }

 private:
  static std::string Var(const hakit::sdk::ModuleSettings& settings, const std::string& key) {
    auto it = settings.vars.find(key);
    return it == settings.vars.end() ? std::string() : it->second;
  }

  void Record(const std::string& line) {
    if (log_path_.empty()) return;
    std::ofstream(log_path_, std::ios::app) << line << '\n';
  }

  std::string name_;
  std::string log_path_;
  std::string replicated_dir_;
};

hakit::sdk::Result<std::unique_ptr<hakit::sdk::Module>> MakeGoodModule(
    const hakit::sdk::ModuleSettings& settings) {
  return std::unique_ptr<hakit::sdk::Module>(std::make_unique<GoodModule>(settings));
}

}  // namespace

HAKIT_MODULE_EXPORT(MakeGoodModule)
