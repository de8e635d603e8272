// Option parsing shared by the commands (Boost.Program_options), with
// --help on every command and usage errors reported once, exit code 2.
#pragma once

#include <optional>
#include <string>

#include <boost/program_options.hpp>

#include "hakit/cli/cli.h"
#include "hakit/control/protocol.h"

namespace hakit::cli {

namespace po = boost::program_options;

// Parses inv.args against `desc` (+ --help) and `positional`. Returns the
// exit code to leave with (help printed: 0, bad usage: 2) or nullopt to go on.
std::optional<int> ParseOptions(Invocation& inv, const std::string& command,
                                const std::string& usage, po::options_description& desc,
                                const po::positional_options_description& positional,
                                po::variables_map* vm);

// Sends one request to the node's hakitd and prints its reply (stdout,
// stderr); returns the CLI exit code. `reply`, if given, receives it.
int SendToDaemon(Invocation& inv, const control::Request& req,
                 control::Response* reply = nullptr);

}  // namespace hakit::cli
