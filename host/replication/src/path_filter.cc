#include "hakit/replication/path_filter.h"

namespace hakit::replication {

sdk::Status PathFilter::AddPath(std::string path) {
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.empty()) {
    return sdk::Status::InvalidArgument("<notreplicated path>: empty (the whole dir?)");
  }
  paths_.push_back(std::move(path));
  return sdk::Status::Ok();
}

sdk::Status PathFilter::AddRegex(const std::string& expression) {
  try {
    regexes_.emplace_back(expression, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    return sdk::Status::InvalidArgument("<notreplicated regexpath=\"" + expression +
                                        "\">: not a regular expression: " + e.what());
  }
  return sdk::Status::Ok();
}

bool PathFilter::Excluded(std::string_view path) const {
  for (const auto& p : paths_) {
    if (path.size() >= p.size() && path.compare(0, p.size(), p) == 0 &&
        (path.size() == p.size() || path[p.size()] == '/')) {
      return true;
    }
  }
  for (const auto& r : regexes_) {
    if (std::regex_search(path.begin(), path.end(), r)) return true;
  }
  return false;
}

}  // namespace hakit::replication
