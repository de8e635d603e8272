// Where something is in a config file, and a finding about it.
//
// Parse errors travel as a sdk::Status whose message is already formatted
// ("FILE:LINE:COL: <element> attribute: what is wrong (expected ...)"); the
// same shape is used for warnings and for readiness problems, which do not
// stop anything and so are returned as values.
#pragma once

#include <string>

namespace hakit::config {

// A position in a config file. Lines and columns count from 1; columns count
// characters (UTF-8 code points), not bytes, so that they match an editor.
struct SourceLocation {
  int line = 0;    // 0: unknown
  int column = 0;  // 0: unknown

  bool known() const { return line > 0; }
  // "12:7", or "?" when unknown.
  std::string ToString() const;
};

// A warning (parse went on) or a readiness problem (the module cannot run
// until it is fixed).
struct Problem {
  std::string file;         // the file's display name (usually the path given)
  SourceLocation location;  // of the attribute when there is one, else of the element
  std::string element;      // element name without brackets, e.g. "virtual_addr"
  std::string attribute;    // empty when the problem is about the element as a whole
  std::string message;      // what is wrong
  std::string hint;         // what to do about it; may be empty

  // "FILE:LINE:COL: <element> attribute: message (hint)".
  std::string ToString() const;
};

}  // namespace hakit::config
