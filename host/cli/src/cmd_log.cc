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
            // Options come first; the first other word starts the message,
            // which is logged verbatim even when it looks like an option:
            // scripts log "--- starting ---" or "-1 returned by ...".
            std::vector<std::string> options;
            std::size_t i = 0;
            for (; i < inv.args.size(); ++i) {
              const std::string& a = inv.args[i];
              if (a == "--") {
                ++i;
                break;
              }
              if (a == "-m" || a == "--module") {
                options.push_back(a);
                if (i + 1 < inv.args.size()) options.push_back(inv.args[++i]);
                continue;
              }
              if (a.rfind("--module=", 0) == 0 || a == "-h" || a == "--help") {
                options.push_back(a);
                continue;
              }
              break;
            }
            std::vector<std::string> words(inv.args.begin() + static_cast<std::ptrdiff_t>(i),
                                           inv.args.end());
            inv.args = std::move(options);
            po::options_description desc("options");
            std::string module;
            desc.add_options()("module,m", po::value(&module), "module (default: $SAFEMODULE)");
            po::variables_map vm;
            if (auto rc = ParseOptions(inv, name, "[-m MODULE] [--] MESSAGE...", desc, {}, &vm)) {
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
