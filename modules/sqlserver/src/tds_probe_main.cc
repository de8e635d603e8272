// hakit-tds-probe ADDR PORT [TIMEOUT_MS]: the SQL Server module's custom
// checker. Exit 0 when ADDR:PORT answers a TDS PRELOGIN as SQL Server does,
// 1 (with the reason on stderr) otherwise, 2 for bad arguments.
#include <iostream>
#include <string>

#include "hakit/sqlserver/tds_prelogin.h"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: hakit-tds-probe ADDR PORT [TIMEOUT_MS]\n";
    return 2;
  }
  long port = 0, timeout = 5000;
  try {
    port = std::stol(argv[2]);
    if (argc == 4) timeout = std::stol(argv[3]);
  } catch (const std::exception&) {
    port = 0;
  }
  if (port < 1 || port > 65535 || timeout < 1) {
    std::cerr << "hakit-tds-probe: bad port or timeout\n";
    return 2;
  }
  auto r = hakit::sqlserver::ProbeTds(argv[1], static_cast<std::uint16_t>(port),
                                      std::chrono::milliseconds(timeout));
  if (!r.ok()) {
    std::cerr << r.status().message() << "\n";
    return 1;
  }
  std::cout << "SQL Server " << r->ToString() << "\n";
  return 0;
}
