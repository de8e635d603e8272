#include "hakit/cli/options.h"

#include <ostream>

namespace hakit::cli {

std::optional<int> ParseOptions(Invocation& inv, const std::string& command,
                                const std::string& usage, po::options_description& desc,
                                const po::positional_options_description& positional,
                                po::variables_map* vm) {
  desc.add_options()("help,h", "show this help");
  auto usage_error = [&](const po::error& e) {
    inv.err << "hakit " << command << ": " << e.what() << "\nusage: hakit " << command << " "
            << usage << "\n";
    return kExitUsage;
  };
  try {
    po::store(po::command_line_parser(inv.args).options(desc).positional(positional).run(), *vm);
  } catch (const po::error& e) {
    return usage_error(e);
  }
  // --help before notify(): notify() checks required options, and
  // `hakit start --help` must print the help, not "--module is required".
  if (vm->count("help")) {
    inv.out << "usage: hakit " << command << " " << usage << "\n\n" << desc;
    return kExitOk;
  }
  try {
    po::notify(*vm);
  } catch (const po::error& e) {
    return usage_error(e);
  }
  return std::nullopt;
}

}  // namespace hakit::cli
