// hakitd: parses its arguments and runs the daemon library.
#include <iostream>

#include <boost/program_options.hpp>

#include "hakit/daemon/daemon.h"

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  hakit::daemon::DaemonOptions options;
  std::string root;
  po::options_description desc("usage: hakitd [--root DIR] [--node NAME]");
  desc.add_options()("help,h", "show this help")(
      "root", po::value(&root), "the node's state directory (default $HAKIT_ROOT or /var/lib/hakit)")(
      "node", po::value(&options.node), "this node's name in cluster.xml (default: by address)")(
      "generic-module", po::value<std::string>(), "path of generic.so (default: beside hakitd)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "hakitd: " << e.what() << "\n" << desc;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  options.root = root.empty() ? hakit::Layout::DefaultRoot() : std::filesystem::path(root);
  if (vm.count("generic-module")) options.generic_module = vm["generic-module"].as<std::string>();
  return hakit::daemon::RunDaemon(options);
}
