// Shared by the PostgreSQL cluster test and the pgbench benchmark: the
// Debian server binaries and a data directory initialised once, which every
// node (and the local baseline) starts from as a copy.
#pragma once

#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hakit/sdk/status.h"

namespace hakit::pgtest {

inline constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";

// initdb -D DIR/pgdata as user postgres (trust authentication), made small
// and open to the test network 198.18.0.0/24, where clients come through
// the VIP. DIR is created and given to postgres.
inline sdk::Status InitDbTemplate(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return sdk::Status::IoError("cannot create " + dir.string() + ": " + ec.message());
  const std::string data = (dir / "pgdata").string();
  const std::string log = (dir / "initdb.log").string();
  const std::string cmd = "chown postgres: " + dir.string() +
                          " && setpriv --reuid=postgres --regid=postgres --init-groups " +
                          kPgBin + "/initdb -D " + data +
                          " -A trust -U postgres --no-sync >" + log + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    return sdk::Status::Failed("initdb failed: " + s.str());
  }
  std::ofstream(data + "/postgresql.conf", std::ios::app)
      << "shared_buffers = 64MB\nmax_connections = 30\n";
  std::ofstream(data + "/pg_hba.conf", std::ios::app) << "host all all 198.18.0.0/24 trust\n";
  return sdk::Status::Ok();
}

// Copies the template's pgdata into `target` (an existing directory, owned
// by postgres and closed to others afterwards, as PostgreSQL requires).
inline sdk::Status CopyTemplate(const std::filesystem::path& dir,
                                const std::filesystem::path& target) {
  const std::string cmd = "cp -a " + (dir / "pgdata").string() + "/. " + target.string() +
                          " && chown postgres: " + target.string() + " && chmod 0700 " +
                          target.string();
  if (std::system(cmd.c_str()) != 0) return sdk::Status::Failed("failed: " + cmd);
  return sdk::Status::Ok();
}

// The System V segments the postmasters of `data_dirs` made (line 7 of
// postmaster.pid: key and id). A postmaster killed with SIGKILL (a power cut)
// leaves its small segment behind; read them before the dirs go.
struct ShmSegment {
  key_t key;
  int id;
};
inline std::vector<ShmSegment> PostmasterSegments(
    const std::vector<std::filesystem::path>& data_dirs) {
  std::vector<ShmSegment> out;
  for (const auto& dir : data_dirs) {
    std::ifstream in(dir / "postmaster.pid");
    std::string line;
    for (int i = 0; i < 7 && std::getline(in, line); ++i) {
    }
    std::istringstream fields(line);
    long key = 0;
    int id = -1;
    if (fields >> key >> id && id >= 0) out.push_back({static_cast<key_t>(key), id});
  }
  return out;
}

// Removes those of `segments` that still exist unchanged and unattached.
inline void RemoveUnattached(const std::vector<ShmSegment>& segments) {
  for (const auto& s : segments) {
    shmid_ds ds;
    if (::shmctl(s.id, IPC_STAT, &ds) == 0 && ds.shm_perm.__key == s.key && ds.shm_nattch == 0) {
      ::shmctl(s.id, IPC_RMID, nullptr);
    }
  }
}

}  // namespace hakit::pgtest
