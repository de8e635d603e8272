// CheckModuleReadiness(): what a parsed userconfig.xml still needs before it
// can run here. Works on the attributes as recorded during parsing, so that
// every finding points at the attribute an operator has to edit.
#include <string>
#include <string_view>
#include <vector>

#include "hakit/config/module_config.h"
#include "hakit/config/values.h"

namespace hakit::config {

namespace {

struct Hint {
  std::string_view element;
  std::string_view attribute;
  std::string_view hint;
};

constexpr Hint kPlaceholderHints[] = {
    {"virtual_addr", "addr",
     "set the virtual IP address clients connect to, e.g. 198.18.0.100; a host name is not "
     "accepted"},
    {"proc", "name", "set the name of the process to watch, as /proc/PID/comm shows it"},
    {"replicated", "dir", "set the absolute path of a directory to replicate"},
    {"to", "addr", "set the address the checker tests"},
    {"macro", "value", "set the macro's value"},
    {"var", "value", "set the value scripts receive"},
};

std::string PlaceholderHint(std::string_view element, std::string_view attribute) {
  for (const Hint& h : kPlaceholderHints) {
    if (h.element == element && h.attribute == attribute) return std::string(h.hint);
  }
  return "replace the template's placeholder with this module's value";
}

Problem MakeProblem(const ModuleConfig& config, const SourceAttribute& a, std::string message,
                    std::string hint) {
  Problem p;
  p.file = config.source_path;
  p.location = a.location;
  p.element = a.element;
  p.attribute = a.attribute;
  p.message = std::move(message);
  p.hint = std::move(hint);
  return p;
}

}  // namespace

std::vector<Problem> CheckModuleReadiness(const ModuleConfig& config) {
  std::vector<Problem> problems;
  for (const SourceAttribute& a : config.attributes) {
    // Names of variables and macros are legitimately ALL_CAPS.
    bool is_name = a.attribute == "name" && (a.element == "var" || a.element == "macro");
    // Judged as written: a macro holding a placeholder is reported once,
    // where it is defined, not at every use.
    if (!is_name && IsPlaceholder(a.raw)) {
      problems.push_back(MakeProblem(config, a,
                                     "\"" + a.raw + "\" is a placeholder left from the template",
                                     PlaceholderHint(a.element, a.attribute)));
      continue;
    }
    if (IsPlaceholder(a.value)) continue;  // reported where the macro is defined

    if (a.element == "replicated" && a.attribute == "dir") {
      if (IsWindowsPath(a.value)) {
        problems.push_back(MakeProblem(config, a, "\"" + a.value + "\" is a Windows path",
                                       "expected an absolute Linux path such as /var/lib/app"));
      } else if (a.value.empty() || a.value.front() != '/') {
        problems.push_back(MakeProblem(config, a, "\"" + a.value + "\" is a relative path",
                                       "expected an absolute path such as /var/lib/app"));
      }
    } else if ((a.element == "notreplicated" && a.attribute == "path") ||
               ((a.element == "custom" || a.element == "splitbrain") && a.attribute == "exec")) {
      if (IsWindowsPath(a.value)) {
        problems.push_back(MakeProblem(config, a, "\"" + a.value + "\" is a Windows path",
                                       "expected a Linux path, with / as separator"));
      }
    }
  }
  return problems;
}

}  // namespace hakit::config
