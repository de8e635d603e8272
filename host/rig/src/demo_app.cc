// hakit-demo-app: the sample application of `hakit demo` and the cluster
// tests. A TCP server that answers every connection with one line naming the
// node it runs on, and counts the requests it served.
//
//   hakit-demo-app --port 8080 --name node1 [--bind 0.0.0.0]
#include <utility>  // Boost 1.74 Asio uses std::exchange without including it

#include <boost/asio.hpp>
#include <cstdlib>
#include <iostream>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;

int main(int argc, char** argv) {
  std::string name = "unknown";
  std::string bind = "0.0.0.0";
  unsigned short port = 8080;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port") {
      port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    } else if (a == "--name") {
      name = argv[i + 1];
    } else if (a == "--bind") {
      bind = argv[i + 1];
    } else {
      std::cerr << "usage: hakit-demo-app --port PORT --name NAME [--bind ADDR]\n";
      return 2;
    }
  }
  try {
    asio::io_context io;
    tcp::acceptor acceptor(io);
    tcp::endpoint ep(asio::ip::make_address(bind), port);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
    std::cout << "hakit-demo-app serving on " << bind << ":" << port << " as " << name
              << std::endl;
    unsigned long served = 0;
    for (;;) {
      tcp::socket s(io);
      boost::system::error_code ec;
      acceptor.accept(s, ec);
      if (ec) continue;
      std::string reply = "hello from " + name + " #" + std::to_string(++served) + "\n";
      asio::write(s, asio::buffer(reply), ec);
    }
  } catch (const std::exception& e) {
    std::cerr << "hakit-demo-app: " << e.what() << "\n";
    return 1;
  }
}
