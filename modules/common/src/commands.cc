#include "hakit/module_util/commands.h"

namespace hakit::module_util {

std::string CommandOutcome(const sdk::CommandResult& r) {
  using O = sdk::CommandResult::Outcome;
  switch (r.outcome) {
    case O::kExited:
      return "exited with code " + std::to_string(r.exit_code);
    case O::kSignaled:
      return "was killed by signal " + std::to_string(r.signal);
    case O::kTimedOut:
      return "timed out after " + std::to_string(r.duration.count()) + " ms";
    case O::kFailedToStart:
      return "could not start: " + r.error;
  }
  return "failed";
}

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string PowerShellQuote(const std::string& text) {
  std::string q = "'";
  for (char c : text) {
    if (c == '\'') q += '\'';
    q += c;
  }
  return q + "'";
}

std::vector<std::string> PowerShellArgv(const std::string& powershell, const std::string& script) {
  return {powershell, "-NoProfile", "-NonInteractive", "-Command",
          "$ErrorActionPreference = 'Stop'; " + script};
}

}  // namespace hakit::module_util
