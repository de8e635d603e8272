#include "hakit/modules/server_util.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <string_view>
#include <thread>

namespace hakit::modules {

using sdk::Result;
using sdk::Status;

Status RunOnPrimaryOnly(sdk::Hook hook, sdk::HostContext& host, const std::function<Status()>& start,
                        const std::function<Status()>& stop) {
  Status st;
  switch (hook) {
    case sdk::Hook::kStartPrim: st = start(); break;
    case sdk::Hook::kStopPrim: st = stop(); break;
    default: return Status::Ok();  // nothing runs on the secondary
  }
  if (!st.ok()) host.Log(sdk::LogLevel::kError, st.message());
  return st;
}

std::chrono::milliseconds HookBudget(const sdk::HookArgs& args,
                                     std::chrono::milliseconds fallback) {
  return args.timeout.count() > 0 ? args.timeout : fallback;
}

namespace {

std::string ReadLink(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

std::string VarOr(const std::map<std::string, std::string>& vars, const std::string& name,
                  const std::string& fallback) {
  auto it = vars.find(name);
  return it == vars.end() || it->second.empty() ? fallback : it->second;
}

Status BadVar(const std::string& userconfig, const std::string& var, const std::string& what) {
  return Status::InvalidArgument(userconfig + ": <var name=\"" + var + "\">: " + what);
}

Status ParsePort(const std::map<std::string, std::string>& vars, const std::string& var,
                 const std::string& fallback, const std::string& userconfig, int* port) {
  std::string text = VarOr(vars, var, fallback);
  char* end = nullptr;
  long p = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || p < 1 || p > 65535) {
    return BadVar(userconfig, var, "\"" + text + "\" is not a TCP port (1-65535)");
  }
  *port = static_cast<int>(p);
  return Status::Ok();
}

sdk::CheckerSpec ServerProcessChecker(const std::string& ident, const std::string& name,
                                      const std::string& argregex) {
  sdk::CheckerSpec c;
  c.kind = "process";
  c.ident = ident;
  c.params = {{"name", name}, {"argregex", argregex}, {"atleast", "1"}, {"atmax", "1"}};
  c.action = "restart";
  return c;
}

sdk::CheckerSpec ServerPortChecker(const std::string& ident, const std::string& addr, int port) {
  sdk::CheckerSpec c;
  c.kind = "tcp";
  c.ident = ident;
  c.params = {{"addr", addr}, {"port", std::to_string(port)}};
  c.action = "restart";
  return c;
}

std::string LocalAddress(const std::string& listen) {
  std::string first = listen.substr(0, listen.find(','));
  while (!first.empty() && first.front() == ' ') first.erase(0, 1);
  while (!first.empty() && first.back() == ' ') first.pop_back();
  if (first.empty() || first == "*" || first == "0.0.0.0" || first == "localhost") {
    return "127.0.0.1";
  }
  if (first == "::") return "::1";
  return first;
}

Result<SystemUser> LookupUser(const std::string& name) {
  std::vector<char> buf(16384);
  passwd pw;
  passwd* found = nullptr;
  int err = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    return Status::NotFound("system user \"" + name + "\" " +
                            (err != 0 ? std::string("cannot be looked up: ") + std::strerror(err)
                                      : std::string("does not exist on this node")));
  }
  return SystemUser{name, pw.pw_uid, pw.pw_gid};
}

std::vector<std::string> AsUser(const SystemUser& user, std::vector<std::string> argv) {
  if (::geteuid() == user.uid) return argv;
  std::vector<std::string> out = {"setpriv", "--reuid=" + std::to_string(user.uid),
                                  "--regid=" + std::to_string(user.gid), "--init-groups", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Status CheckExecutable(const std::string& path, const std::string& hint) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::NotFound(path + " is missing (" + hint + ")");
  if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) {
    return Status::InvalidArgument(path + " is not an executable file (" + hint + ")");
  }
  return Status::Ok();
}

Status CheckDataDirOwner(const std::string& dir, const std::string& var, const SystemUser& user,
                         bool private_mode) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    return Status::NotFound("data directory " + dir + " (" + var + "): " + std::strerror(err));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("data directory " + dir + " (" + var + ") is not a directory");
  }
  if (st.st_uid != user.uid) {
    return Status::InvalidArgument("data directory " + dir + " is owned by uid " +
                                   std::to_string(st.st_uid) + ", not by " + user.name + " (uid " +
                                   std::to_string(user.uid) + "): chown -R " + user.name + " " +
                                   dir);
  }
  if (private_mode && (st.st_mode & 027) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status::InvalidArgument("data directory " + dir + " has mode " + mode +
                                   "; the server needs 0700 or 0750: chmod 0700 " + dir);
  }
  return Status::Ok();
}

pid_t ServerPid(const std::string& pid_file, const std::string& comm,
                const std::string& data_dir) {
  std::ifstream in(pid_file);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream comm_file(proc + "/comm");
  std::string name;
  if (!(comm_file >> name) || name != comm) return 0;
  std::ifstream status(proc + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("State:", 0) == 0 && line.find('Z') != std::string::npos) return 0;
  }
  for (const char* ns : {"/ns/net", "/ns/mnt"}) {
    if (ReadLink(proc + ns) != ReadLink(std::string("/proc/self") + ns)) return 0;
  }
  char real[PATH_MAX];
  std::string dir = ::realpath(data_dir.c_str(), real) != nullptr ? real : data_dir;
  if (ReadLink(proc + "/cwd") != dir) return 0;
  return static_cast<pid_t>(pid);
}

bool WaitGone(pid_t pid, const std::string& pid_file, const std::string& comm,
              const std::string& data_dir, int wait_ms) {
  for (int waited = 0; ServerPid(pid_file, comm, data_dir) == pid; waited += 50) {
    if (waited >= wait_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::string TailFile(const std::string& path, std::size_t n) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : " | ") + l;
  return out;
}

std::string DescribeOutcome(const std::string& what, const sdk::CommandResult& r) {
  using O = sdk::CommandResult::Outcome;
  switch (r.outcome) {
    case O::kExited:
      return what + " exited with code " + std::to_string(r.exit_code) + " after " +
             std::to_string(r.duration.count()) + " ms";
    case O::kSignaled:
      return what + " was killed by signal " + std::to_string(r.signal);
    case O::kTimedOut:
      return what + " did not finish within its timeout and was killed";
    case O::kFailedToStart:
      return what + " could not be started: " + r.error;
  }
  return what + " failed";
}

std::string RegexQuote(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace hakit::modules
