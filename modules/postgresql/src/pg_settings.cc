#include "pg_settings.h"

#include <fstream>

namespace hakit::postgresql {
namespace {

using modules::BadVar;
using modules::VarOr;
using sdk::Result;
using sdk::Status;

}  // namespace

Result<PgSettings> ParseSettings(const std::map<std::string, std::string>& vars,
                                 const std::string& userconfig, const sdk::ModulePaths& paths) {
  PgSettings s;
  s.version = VarOr(vars, "PGVERSION", s.version);
  if (s.version.find_first_not_of("0123456789.") != std::string::npos || s.version[0] == '.') {
    return BadVar(userconfig, "PGVERSION", "\"" + s.version + "\" is not a version (e.g. 15)");
  }
  s.bin_dir = VarOr(vars, "PGBIN", "/usr/lib/postgresql/" + s.version + "/bin");
  s.data_dir = VarOr(vars, "PGDATA", "/var/lib/postgresql/" + s.version + "/main");
  const std::string os_user = VarOr(vars, "PGOSUSER", "postgres");
  s.listen = VarOr(vars, "PGLISTEN", s.listen);
  s.socket_dir = VarOr(vars, "PGSOCKETDIR", s.socket_dir);
  s.config_file = VarOr(vars, "PGCONFIG", "");
  s.log_file = VarOr(vars, "PGLOG", paths.log_dir + "/postgresql.log");

  for (auto [var, value] : {std::pair{"PGBIN", &s.bin_dir}, {"PGDATA", &s.data_dir},
                            {"PGSOCKETDIR", &s.socket_dir}, {"PGLOG", &s.log_file}}) {
    if (value->empty() || (*value)[0] != '/') {
      return BadVar(userconfig, var, "\"" + *value + "\" is not an absolute path");
    }
    while (value->size() > 1 && value->back() == '/') value->pop_back();
  }
  if (!s.config_file.empty() && s.config_file[0] != '/') {
    return BadVar(userconfig, "PGCONFIG", "\"" + s.config_file + "\" is not an absolute path");
  }
  // The values go into pg_ctl's -o, which a shell splits: keep quotes out.
  for (auto [var, value] : {std::pair{"PGDATA", &s.data_dir}, {"PGLISTEN", &s.listen},
                            {"PGSOCKETDIR", &s.socket_dir}, {"PGCONFIG", &s.config_file}}) {
    if (value->find_first_of("'\"\\\n") != std::string::npos) {
      return BadVar(userconfig, var, "quotes, backslashes and newlines are not allowed");
    }
  }
  if (Status st = modules::ParsePort(vars, "PGPORT", "5432", userconfig, &s.port); !st.ok()) {
    return st;
  }


  auto user = modules::LookupUser(os_user);
  if (!user.ok()) return BadVar(userconfig, "PGOSUSER", user.status().message());
  s.user = *user;

  const std::string hint = "install postgresql-" + s.version + ", or set PGBIN or PGVERSION in " +
                           userconfig;
  for (const std::string& exe : {s.PgCtl(), s.Postgres()}) {
    if (Status st = modules::CheckExecutable(exe, hint); !st.ok()) {
      return st.WithContext("PostgreSQL " + s.version);
    }
  }
  return s;
}

Status CheckDataDir(const PgSettings& s) {
  if (Status st = modules::CheckDataDirOwner(s.data_dir, "PGDATA", s.user); !st.ok()) return st;
  std::ifstream in(s.data_dir + "/PG_VERSION");
  std::string version;
  if (!(in >> version)) {
    return Status::NotFound("data directory " + s.data_dir +
                            " is not initialised (no PG_VERSION): run initdb -D " + s.data_dir +
                            " as " + s.user.name);
  }
  if (version != s.version) {
    return Status::InvalidArgument("data directory " + s.data_dir + " belongs to PostgreSQL " +
                                   version + ", the module is configured for " + s.version +
                                   " (PGVERSION)");
  }
  return Status::Ok();
}

}  // namespace hakit::postgresql
