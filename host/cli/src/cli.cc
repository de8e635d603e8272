#include "hakit/cli/cli.h"

#include <cstring>
#include <iostream>

namespace hakit::cli {
namespace {

std::vector<Command> AllCommands() {
  std::vector<Command> all;
  for (auto group : {ControlCommands, ModuleCommands, HistoryCommands, LogCommands,
                     ClusterCommands, DemoCommands, ChecksCommands}) {
    for (auto& c : group()) all.push_back(std::move(c));
  }
  return all;
}

void PrintHelp(std::ostream& out, const std::vector<Command>& commands) {
  out << "hakit: high availability with synchronous replication and failover\n\n"
         "usage: hakit [--root DIR] COMMAND [ARGS] (hakit COMMAND --help for details)\n\n"
         "--root DIR  the node's state directory (default $HAKIT_ROOT, else /var/lib/hakit)\n\n"
         "commands:\n";
  for (const auto& c : commands) {
    out << "  " << c.name << std::string(c.name.size() < 18 ? 18 - c.name.size() : 1, ' ')
        << c.summary << "\n";
  }
  out << "\nexit codes: 0 ok, 1 failed, 2 usage error\n";
}

}  // namespace

int RunCli(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::filesystem::path root = Layout::DefaultRoot();
  // --root may come anywhere; it is taken out before the command sees its args.
  for (std::size_t i = 0; i < args.size();) {
    if (args[i] == "--root" || args[i].rfind("--root=", 0) == 0) {
      if (args[i] == "--root") {
        if (i + 1 >= args.size()) {
          std::cerr << "hakit: --root needs a directory\n";
          return kExitUsage;
        }
        root = args[i + 1];
        args.erase(args.begin() + i, args.begin() + i + 2);
      } else {
        root = args[i].substr(7);
        args.erase(args.begin() + i);
      }
      continue;
    }
    ++i;
  }
  std::vector<Command> commands = AllCommands();
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    PrintHelp(args.empty() ? std::cerr : std::cout, commands);
    return args.empty() ? kExitUsage : kExitOk;
  }
  // The longest command name matching the first words wins ("module check").
  const Command* best = nullptr;
  std::size_t best_words = 0;
  for (const auto& c : commands) {
    std::vector<std::string> words;
    std::size_t start = 0;
    while (start <= c.name.size()) {
      std::size_t sp = c.name.find(' ', start);
      words.push_back(c.name.substr(start, sp == std::string::npos ? sp : sp - start));
      if (sp == std::string::npos) break;
      start = sp + 1;
    }
    if (words.size() > args.size()) continue;
    bool match = true;
    for (std::size_t w = 0; w < words.size(); ++w) match = match && words[w] == args[w];
    if (match && words.size() > best_words) {
      best = &c;
      best_words = words.size();
    }
  }
  if (best == nullptr) {
    std::cerr << "hakit: unknown command '" << args[0] << "' (hakit --help lists them)\n";
    return kExitUsage;
  }
  Invocation inv{std::vector<std::string>(args.begin() + best_words, args.end()), Layout(root),
                 std::cout, std::cerr, argv[0]};
  try {
    return best->run(inv);
  } catch (const std::exception& e) {
    std::cerr << "hakit " << best->name << ": " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace hakit::cli
