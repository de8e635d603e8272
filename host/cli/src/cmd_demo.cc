#include "hakit/cli/cli.h"

namespace hakit::cli {

std::vector<Command> DemoCommands() { return {}; }

}  // namespace hakit::cli
