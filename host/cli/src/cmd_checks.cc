// Failure detection commands: resources, errd and checkers on/off, automatic
// failover on/off, the restart counter. Carried out by hakitd; each is
// recorded in the node's history (a custom checker's `set` only in the log).
#include <cstdlib>

#include "hakit/cli/options.h"

namespace hakit::cli {
namespace {

// -m MODULE, defaulting to $SAFEMODULE so that module scripts and custom
// checkers need not repeat it.
void AddModule(po::options_description& desc, std::string* module) {
  const char* env = std::getenv("SAFEMODULE");
  auto v = po::value(module);
  if (env != nullptr && *env != '\0') {
    v->default_value(env);
  } else {
    v->required();
  }
  desc.add_options()("module,m", v, "module name (default $SAFEMODULE)");
}

int Set(Invocation& inv) {
  po::options_description desc("options");
  std::string module, resource, value;
  AddModule(desc, &module);
  desc.add_options()("resource,r", po::value(&resource)->required(),
                     "resource name, e.g. custom.app")(
      "value,v", po::value(&value)->required(), "up or down");
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "set", "-r RESOURCE -v up|down [-m MODULE]", desc, {}, &vm)) {
    return *rc;
  }
  // A custom checker (started by hakitd with HAKIT_CHECKER_PIDFILE) reports
  // its resource; anyone else is the operator.
  const bool by_checker = std::getenv("HAKIT_CHECKER_PIDFILE") != nullptr;
  control::Request req{"set", module,
                       {{"resource", resource}, {"value", value},
                        {"by", by_checker ? "custom" : "operator"}}};
  return SendToDaemon(inv, req);
}

// errd, checker, failover: on|off.
Command Switch(const std::string& name, const std::string& summary) {
  return {name, summary, [name](Invocation& inv) {
            po::options_description desc("options");
            std::string module, word;
            AddModule(desc, &module);
            desc.add_options()("switch", po::value(&word)->required(), "on or off");
            po::positional_options_description pos;
            pos.add("switch", 1);
            po::variables_map vm;
            if (auto rc = ParseOptions(inv, name, "on|off [-m MODULE]", desc, pos, &vm)) return *rc;
            if (word != "on" && word != "off") {
              inv.err << "hakit " << name << ": expected on or off, not \"" << word << "\"\n";
              return kExitUsage;
            }
            return SendToDaemon(inv, {name, module, {{"on", word == "on"}}});
          }};
}

int ResetLoop(Invocation& inv) {
  po::options_description desc("options");
  std::string module;
  AddModule(desc, &module);
  po::variables_map vm;
  if (auto rc = ParseOptions(inv, "resetloop", "[-m MODULE]", desc, {}, &vm)) return *rc;
  return SendToDaemon(inv, {"resetloop", module, {}});
}

}  // namespace

std::vector<Command> ChecksCommands() {
  return {
      {"set", "set a resource up or down (custom checkers, tests)", Set},
      Switch("errd", "errd on|off: process monitoring of a module"),
      Switch("checker", "checker on|off: a module's checkers (tcp, ping, custom, ...)"),
      Switch("failover", "failover on|off: automatic failover of a module (persisted)"),
      {"resetloop", "restart the restart counter (maxloop) of a module", ResetLoop},
  };
}

}  // namespace hakit::cli
