// Shared by the MariaDB tests: a data directory initialised once
// (mariadb-install-db) with database hakit, table hakit.t(i) and a user
// hakit@'%' without password (the tests' clients come from their own
// namespace), copied for each server.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "hakit/sdk/status.h"

namespace hakit::mariadbtest {

inline bool Installed() {
  return std::filesystem::exists("/usr/sbin/mariadbd") &&
         std::filesystem::exists("/usr/bin/mariadb-install-db");
}

// DIR/data, owned by mysql.
inline sdk::Status InstallDbTemplate(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir / "data", ec);
  if (ec) return sdk::Status::IoError("cannot create " + dir.string() + ": " + ec.message());
  std::ofstream(dir / "extra.sql")
      << "CREATE DATABASE hakit;\n"
         "CREATE TABLE hakit.t(i BIGINT PRIMARY KEY) ENGINE=InnoDB;\n"
         // CREATE USER is refused while bootstrapping: the grant row itself.
         "INSERT INTO mysql.global_priv(Host, User, Priv) VALUES ('%', 'hakit', "
         "'{\"access\":18446744073709551615,\"plugin\":\"mysql_native_password\","
         "\"authentication_string\":\"\"}');\n";
  const std::string log = (dir / "install.log").string();
  const std::string cmd = "chown -R mysql: " + dir.string() +
                          " && mariadb-install-db --no-defaults --user=mysql --datadir=" +
                          (dir / "data").string() +
                          " --skip-test-db --auth-root-authentication-method=socket --extra-file=" +
                          (dir / "extra.sql").string() + " >" + log + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    return sdk::Status::Failed("mariadb-install-db failed: " + s.str());
  }
  return sdk::Status::Ok();
}

// Copies the template's data into `target` (an existing directory), mysql's.
inline sdk::Status CopyTemplate(const std::filesystem::path& dir,
                                const std::filesystem::path& target) {
  const std::string cmd = "cp -a " + (dir / "data").string() + "/. " + target.string() +
                          " && chown mysql: " + target.string();
  if (std::system(cmd.c_str()) != 0) return sdk::Status::Failed("failed: " + cmd);
  return sdk::Status::Ok();
}

}  // namespace hakit::mariadbtest
