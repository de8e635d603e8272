// module check / module list: configuration checks that need no daemon.
#include <filesystem>
#include <iostream>

#include "hakit/cli/options.h"
#include "hakit/config/module_config.h"

namespace hakit::cli {
namespace {

// `hakit module check FILE|DIR`: parses the configuration, then lists what
// must be filled in before the module can run here. Exit 0 only when ready.
int Check(Invocation& inv) {
  po::options_description desc("options");
  std::string target;
  desc.add_options()("path", po::value(&target)->required(),
                     "a userconfig.xml, or a module directory holding conf/userconfig.xml");
  po::positional_options_description pos;
  pos.add("path", 1);
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module check", "FILE|DIR", desc, pos, &vm)) return *rc;
  std::filesystem::path file = target;
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) file = file / "conf" / "userconfig.xml";
  auto cfg = config::ParseUserConfig(file.string());
  if (!cfg.ok()) {
    inv.err << cfg.status().message() << "\n";
    return kExitFailed;
  }
  for (const auto& w : cfg->warnings) inv.err << "warning: " << w.ToString() << "\n";
  std::vector<config::Problem> problems = config::CheckModuleReadiness(*cfg);
  if (problems.empty()) {
    inv.out << file.string() << ": ok, ready to run\n";
    return kExitOk;
  }
  inv.out << file.string() << ": " << problems.size()
          << " value(s) to fill in before this module can run here:\n";
  for (const auto& p : problems) inv.out << "  " << p.ToString() << "\n";
  return kExitFailed;
}

int List(Invocation& inv) {
  po::options_description desc("options");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "module list", "", desc, {}, &vm)) return *rc;
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(inv.layout.ModulesDir(), ec)) {
    if (e.is_directory()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (const auto& n : names) inv.out << n << "\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> ModuleCommands() {
  return {
      {"module check", "check a module's configuration; list what must be filled in", Check},
      {"module list", "list the modules installed on this node", List},
  };
}

}  // namespace hakit::cli
