// What a module asks to be watched: its <errd><proc>, its <check> children
// and the CheckerSpecs its library declares, as one list of probes with the
// resource each one sets. Pure (no I/O): the daemon runs the probes.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "hakit/checkers/probes.h"
#include "hakit/checkers/rules.h"
#include "hakit/config/module_config.h"
#include "hakit/sdk/module.h"

namespace hakit::checkers {

enum class ProbeKind { kProc, kTcp, kPing, kIntf, kIp, kCustom };

struct WatchSpec {
  ProbeKind kind = ProbeKind::kProc;
  std::string resource;  // "proc.NAME", "tcp.IDENT", ...
  config::When when = config::When::kPrim;
  PlannedKind action = PlannedKind::kRestart;
  std::string handler;  // action == kHandler: bin/<handler>
  bool errd = false;    // from <errd>: `hakit errd off` disables it, else `hakit checker off`
  // proc
  ProcMatch match;
  int atleast = 1;
  std::optional<int> atmax;
  bool service = false;  // match.name... is a systemd unit (in `addr`)
  // tcp, ping, ip: address (ip: the address that must be here); tcp: port
  std::string addr;
  int port = 0;
  std::string ifname;  // intf
  // custom: program (relative to bin/ unless absolute) and its arguments
  std::string exec;
  std::vector<std::string> args;
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds timeout{5000};
};

// Every probe of the module, <errd> first, then <check>, then the library's.
// Errors (each naming the checker): a bad regular expression, an SDK kind or
// action hakit does not know, a missing parameter, a resource declared
// twice, an invalid resource name.
sdk::Result<std::vector<WatchSpec>> WatchSpecs(const config::ModuleConfig& config,
                                               const std::vector<sdk::CheckerSpec>& library);

// Blank-separated words ("-q  --fast" -> {"-q", "--fast"}).
std::vector<std::string> SplitWords(const std::string& text);

}  // namespace hakit::checkers
