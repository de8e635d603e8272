#include "hakit/common/layout.h"

#include <cstdlib>

namespace hakit {

std::filesystem::path Layout::DefaultRoot() {
  if (const char* env = std::getenv("HAKIT_ROOT"); env != nullptr && *env != '\0') return env;
  return "/var/lib/hakit";
}

}  // namespace hakit
