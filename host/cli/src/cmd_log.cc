// Logs: reading a module log, and appending to it from scripts.
#include <fstream>
#include <iostream>
#include <deque>
#include <cstdlib>

#include "hakit/cli/options.h"
#include "hakit/common/log.h"

namespace hakit::cli {
namespace {

// printi/printw/printe: SafeKit scripts call "$SAFE/safekit" printi "msg".
// The module comes from SAFEMODULE (set by hakit for every script) or -m.
Command Print(const std::string& name, LogLevel level) {
  return {name, std::string("append a message to the module log (from scripts: SAFEMODULE)"),
          [name, level](Invocation& inv) {
            po::options_description desc("options");
            std::string module;
            std::vector<std::string> words;
            desc.add_options()("module,m", po::value(&module), "module (default: $SAFEMODULE)")(
                "message", po::value(&words)->multitoken(), "the message");
            po::positional_options_description pos;
            pos.add("message", -1);
            po::variables_map vm;
            if (auto rc = ParseOptions(inv, name, "[-m MODULE] MESSAGE...", desc, pos, &vm)) {
              return *rc;
            }
            if (module.empty()) {
              if (const char* env = std::getenv("SAFEMODULE")) module = env;
            }
            if (module.empty()) {
              inv.err << "hakit " << name
                      << ": no module: give -m MODULE or call it from a module script "
                         "(SAFEMODULE unset)\n";
              return kExitUsage;
            }
            std::string message;
            for (const auto& w : words) message += (message.empty() ? "" : " ") + w;
            if (!AppendLogLine(inv.layout.ModuleLog(module), level, message)) {
              inv.err << "hakit " << name << ": cannot write "
                      << inv.layout.ModuleLog(module).string() << "\n";
              return kExitFailed;
            }
            return kExitOk;
          }};
}

int ShowLog(Invocation& inv) {
  po::options_description desc("options");
  std::string module;
  int lines = 50;
  bool user = false;
  desc.add_options()("module,m", po::value(&module)->required(), "module name")(
      "lines,n", po::value(&lines), "last N lines (default 50; 0: all)")(
      "user,u", po::bool_switch(&user), "the user log (scripts' output) instead");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "log", "-m MODULE [-n N] [-u]", desc, {}, &vm)) return *rc;
  auto path = user ? inv.layout.UserLog(module) : inv.layout.ModuleLog(module);
  std::ifstream in(path);
  if (!in) {
    inv.err << "hakit log: no log for module " << module << " at " << path.string() << "\n";
    return kExitFailed;
  }
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(line);
    if (lines > 0 && static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  for (const auto& l : tail) inv.out << l << "\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> LogCommands() {
  return {
      {"log", "show a module's log (-u: its scripts' output)", ShowLog},
      Print("printi", LogLevel::kInfo),
      Print("printw", LogLevel::kWarning),
      Print("printe", LogLevel::kError),
  };
}

}  // namespace hakit::cli
