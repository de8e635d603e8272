// The checkers' probes: each answers "is it up?" once. Scheduling, retries
// and what a failure means live in the daemon (module_checks) and the rules,
// not here (keepalived's split between check_api and each checker).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <utility>
#include <boost/asio/io_context.hpp>

#include "hakit/sdk/status.h"

namespace hakit::checkers {

// What <proc> matches in /proc.
struct ProcMatch {
  std::string name;       // equal to /proc/PID/comm (compared on its 15 characters)
  std::string nameregex;  // ECMAScript, searched in comm (instead of name)
  std::string argregex;   // ECMAScript, searched in the arguments after argv[0]
};

// How many processes of `proc_root` (a /proc) match. Zombies do not count
// (they no longer run). A bad regex is InvalidArgument; an unreadable
// proc_root IoError. Processes that vanish during the scan are skipped.
sdk::Result<int> CountProcesses(const ProcMatch& match,
                                const std::filesystem::path& proc_root = "/proc");

// Whether the systemd unit is active (`systemctl is-active --quiet UNIT`).
// Unsupported where systemd does not run (no /run/systemd/system).
sdk::Result<bool> ServiceActive(const std::string& unit, std::chrono::milliseconds timeout);

// Called once, on the io_context thread: up, and why not when down.
using ProbeDone = std::function<void(bool up, const std::string& why)>;

// Connects to addr:port (an IP literal or a host name, resolved each time)
// within `timeout`; up when the connection is accepted. The socket is closed
// at once.
void ProbeTcp(boost::asio::io_context& io, const std::string& addr, int port,
              std::chrono::milliseconds timeout, ProbeDone done);

// One ICMP echo (IPv4, raw socket: needs CAP_NET_RAW) to addr; up when the
// matching reply arrives within `timeout`.
void ProbePing(boost::asio::io_context& io, const std::string& addr,
               std::chrono::milliseconds timeout, ProbeDone done);

// Several ICMP echoes at once; up when any address answers (the witness
// rule: one reachable witness is enough).
void ProbeAnyPing(boost::asio::io_context& io, const std::vector<std::string>& addrs,
                  std::chrono::milliseconds timeout, ProbeDone done);

}  // namespace hakit::checkers
