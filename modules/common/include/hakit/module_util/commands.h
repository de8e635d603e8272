// Helpers the application modules share for the commands they run through
// the HostContext (modules see the SDK only, not host/scripts).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "hakit/sdk/host_context.h"

namespace hakit::module_util {

// How a command ended, for messages: "exited with code 3", "was killed by
// signal 9", "timed out after 5000 ms", "could not start: <why>".
std::string CommandOutcome(const sdk::CommandResult& result);

// argv joined with spaces, for messages (not for a shell).
std::string JoinArgv(const std::vector<std::string>& argv);

// A single-quoted PowerShell string literal: 'it''s'.
std::string PowerShellQuote(const std::string& text);

// {powershell, -NoProfile, -NonInteractive, -Command,
//  "$ErrorActionPreference = 'Stop'; " + script}: a failing cmdlet makes
// powershell.exe exit non-zero.
std::vector<std::string> PowerShellArgv(const std::string& powershell, const std::string& script);

}  // namespace hakit::module_util
