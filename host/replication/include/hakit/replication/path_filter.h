// PathFilter: the <notreplicated> entries of one replicated dir. A path
// (relative to the dir) is excluded when it is, or lies below, one of the
// listed paths, or when one of the regular expressions (ECMAScript) matches
// part of it. Excluded entries are neither replicated nor compared by the
// full synchronisation; the secondary keeps whatever it has there.
#pragma once

#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::replication {

class PathFilter {
 public:
  // InvalidArgument naming the bad expression.
  sdk::Status AddPath(std::string path);
  sdk::Status AddRegex(const std::string& expression);
  bool empty() const { return paths_.empty() && regexes_.empty(); }
  bool Excluded(std::string_view path) const;

 private:
  std::vector<std::string> paths_;
  std::vector<std::regex> regexes_;
};

}  // namespace hakit::replication
