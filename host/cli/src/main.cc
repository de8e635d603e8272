#include "hakit/cli/cli.h"

int main(int argc, char** argv) { return hakit::cli::RunCli(argc, argv); }
