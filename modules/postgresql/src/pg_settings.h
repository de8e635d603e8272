// The PostgreSQL module's settings: <user><var> values of userconfig.xml,
// with their defaults, checked once when the module is created.
//
//   PGVERSION    major version                     default 15
//   PGBIN        pg_ctl and postgres               default /usr/lib/postgresql/PGVERSION/bin
//   PGDATA       data directory (replicated)       default /var/lib/postgresql/PGVERSION/main
//   PGPORT       TCP port                          default 5432
//   PGOSUSER     system user running postgres      default postgres
//   PGLISTEN     listen_addresses                  default *
//   PGSOCKETDIR  Unix socket directory             default /var/run/postgresql
//   PGCONFIG     postgresql.conf outside PGDATA    default none (PGDATA/postgresql.conf)
//   PGLOG        server log (pg_ctl -l)            default LOGDIR/postgresql.log
//
// PGUSER is deliberately not used: libpq reads it as the database role of
// every client the module's commands run.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

#include "hakit/modules/server_util.h"
#include "hakit/sdk/host_context.h"
#include "hakit/sdk/status.h"

namespace hakit::postgresql {

struct PgSettings {
  std::string version = "15";
  std::string bin_dir;
  std::string data_dir;
  int port = 5432;
  modules::SystemUser user;  // PGOSUSER, default postgres
  std::string listen = "*";
  std::string socket_dir = "/var/run/postgresql";
  std::string config_file;
  std::string log_file;

  std::string PgCtl() const { return bin_dir + "/pg_ctl"; }
  std::string Postgres() const { return bin_dir + "/postgres"; }
};

// Reads `vars` over the defaults and checks what can be checked on any node
// at any time: values well formed, binaries present and executable, the
// system user known. `userconfig` and `paths` only shape messages and
// defaults. Errors name userconfig.xml, the variable and what to fix.
sdk::Result<PgSettings> ParseSettings(const std::map<std::string, std::string>& vars,
                                      const std::string& userconfig,
                                      const sdk::ModulePaths& paths);

// What must hold before postgres starts on the primary: PGDATA exists, is a
// directory owned by PGOSUSER and closed to others (postgres refuses it
// otherwise, with a less helpful message), and initialised (PG_VERSION) by
// the configured major version.
sdk::Status CheckDataDir(const PgSettings& s);

}  // namespace hakit::postgresql
