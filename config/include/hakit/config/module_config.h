// userconfig.xml -> ModuleConfig.
//
// The file has SafeKit's shape (<safe><service>...</service></safe>); see
// docs/config.md for every element and attribute. Parsing is strict: an
// unknown element or attribute, a value of the wrong type or out of range is
// an error, reported once, with its position:
//
//   userconfig.xml:6:14: <heart> pulse: "abc" is not a time value (expected ...)
//
// and parsing stops there. What hakit understands but does not act on (for
// example <failover> rules) is kept and reported as a warning.
//
// A file can parse and still not be ready to run: SafeKit's templates ship
// placeholders (VIRTUAL_TO_BE_DEFINED, PROCESS_NAME) and Windows paths.
// CheckModuleReadiness() lists those.
//
// Every struct's `location` field is where its element starts (the '<');
// it is unknown (0:0) for a struct built by hand rather than parsed.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hakit/config/problem.h"
#include "hakit/sdk/status.h"

namespace hakit::config {

using std::chrono::milliseconds;

// <service mode>.
enum class ModuleMode {
  kMirror,  // "mirror": two nodes, replication, failover
  kFarm,    // "farm": N nodes, load balancing, no replication
};

// <service defaultprim>: which node becomes primary when both start.
enum class DefaultPrim {
  kNone,      // attribute absent: whichever node gets there first
  kAlone,     // "alone"
  kLastPrim,  // "lastprim": the node that was primary last
  kNode,      // any other value: that node's name (ServiceConfig::default_prim_node)
};

// <service boot>: what hakitd does with the module when the node boots.
enum class BootMode {
  kOff,   // "off": stays stopped
  kOn,    // "on": started
  kAuto,  // "auto": started if it was running when the node went down
};

// What a failing process monitor or checker does.
enum class Action {
  kRestart,    // "restart": stop and start the module on this node
  kStopStart,  // "stopstart": stop here (the peer takes over), then start again
  kStop,       // "stop": stop here and stay stopped
  kWait,       // "wait": stop the application and wait in WAIT until it recovers
  kNoAction,   // "noaction": only log
  kHandler,    // any other word: run the handler script bin/<handler>
};

// When a process monitor (<proc class>) or checker (when=) is active.
enum class When {
  kPre,     // "pre": before the application starts, in every state but STOP
  kPrim,    // "prim": on the primary (PRIM, ALONE) / farm: UP
  kSecond,  // "second": on the secondary
  kBoth,    // "both": on the primary and the secondary
};

// <service ...> attributes.
struct ServiceConfig {
  ModuleMode mode = ModuleMode::kMirror;          // required: no default in the file
  DefaultPrim default_prim = DefaultPrim::kNone;  // default: none
  std::string default_prim_node;                  // set when default_prim == kNode
  // Local restarts allowed per loop_interval before failing over. Default 3.
  int maxloop = 3;
  // Default 24 h; a plain number is in hours.
  milliseconds loop_interval = std::chrono::hours(24);
  // failover="on|off". Default on.
  bool failover = true;
  // boot="on|off|auto". Default auto.
  BootMode boot = BootMode::kAuto;
  SourceLocation location;
};

// <heartbeat name ident>: one heartbeat network.
struct HeartbeatConfig {
  // The <lan name> in cluster.xml whose addresses carry this heartbeat.
  // Default "default".
  std::string name = "default";
  // Free label; "flow" marks the network replication uses. Default empty.
  std::string ident;
  SourceLocation location;
};

// <heart pulse timeout>.
struct HeartConfig {
  // Interval between heartbeats. Default 700 ms; a plain number is in ms.
  milliseconds pulse{700};
  // Silence on every network after which the peer is lost. Default 30000 ms;
  // a plain number is in ms. Must be greater than pulse.
  milliseconds timeout{30000};
  // Empty (no <heartbeat> given): one heartbeat on every lan of cluster.xml.
  std::vector<HeartbeatConfig> heartbeats;
  SourceLocation location;
};

// <virtual_addr addr where check>.
struct VirtualAddrConfig {
  // An IPv4 or IPv6 literal (host names are refused), or a placeholder such
  // as VIRTUAL_TO_BE_DEFINED that CheckModuleReadiness() reports. Required.
  std::string addr;
  // From "addr/24"; -1 (default): the daemon takes the prefix of the local
  // subnet the address belongs to.
  int prefix_length = -1;
  // True when addr is a recognised placeholder, not an address yet.
  bool is_placeholder = false;
  // where="one_side_alias": on the primary only (mirror default);
  // where="alias": on every node running the module (farm default).
  bool one_side = true;
  // check="on|off": watch that the address stays configured. Default off.
  bool check = false;
  SourceLocation location;
};

// <interface check arpreroute name>.
struct VipInterfaceConfig {
  // Network interface to put the addresses on. Default empty: the one whose
  // subnet holds the address.
  std::string name;
  // check="on|off": watch the interface link. Default off.
  bool check = false;
  // arpreroute="on|off": send gratuitous ARP / unsolicited NA after adding
  // an address. Default off.
  bool arpreroute = false;
  std::vector<VirtualAddrConfig> addrs;
  SourceLocation location;
};

// <vip>, with or without SafeKit's <interface_list> and <real_interface>.
struct VipConfig {
  std::vector<VipInterfaceConfig> interfaces;  // default: none
  SourceLocation location;
};

// <proc name atleast atmax action class nameregex argregex service>.
struct ProcConfig {
  // Process name to count (as in /proc/PID/comm). Required unless nameregex
  // is given; may be a placeholder (PROCESS_NAME) that readiness reports.
  std::string name;
  // Regular expression (ECMAScript) on the name instead of name. Default empty.
  std::string nameregex;
  // Regular expression the command-line arguments must match. Default empty.
  std::string argregex;
  // Fewer matching processes than this is a failure. Default 1.
  int atleast = 1;
  // More than this is a failure. Default none ("none" or -1 in the file).
  std::optional<int> atmax;
  // Default restart.
  Action action = Action::kRestart;
  // The script name when action == kHandler. Default empty.
  std::string handler;
  // class=; default prim (mirror) or both (farm).
  When when = When::kPrim;
  // service="yes|no": name is a service (systemd unit) rather than a
  // process. Default no.
  bool service = false;
  SourceLocation location;
};

// <errd polltimer>.
struct ErrdConfig {
  // How often processes are counted. Default 30 s; a plain number is in s.
  milliseconds polltimer = std::chrono::seconds(30);
  std::vector<ProcConfig> procs;
  SourceLocation location;
};

// <notreplicated path | regexpath>: exactly one of the two.
struct NotReplicatedConfig {
  std::string path;       // relative to the replicated dir. Default empty.
  std::string regexpath;  // ECMAScript regex on the relative path. Default empty.
  SourceLocation location;
};

// <replicated dir mode>.
struct ReplicatedDirConfig {
  // Absolute directory. Required. A Windows path parses (the brief's file
  // has them) and is reported by CheckModuleReadiness().
  std::string dir;
  // mode="read_only" (default): local processes on the secondary cannot
  // write; "read_write": they can (their writes are overwritten).
  bool read_only = true;
  std::vector<NotReplicatedConfig> not_replicated;
  SourceLocation location;
};

// <rfs async acl nbrei ruzone_blocksize>.
struct RfsConfig {
  // async="second" (default): writes are acknowledged before the secondary
  // has them; "none": synchronous.
  bool async = true;
  // acl="on|off": replicate xattrs and ACLs too. Default off.
  bool acl = false;
  // Parallel streams during reintegration. Default 6, 1..64.
  int nbrei = 6;
  // ruzone_blocksize: the size, in bytes, of the zones in which the primary
  // notes what a secondary missed and compares both copies. A power of two,
  // 64 KiB..8 MiB. Default 64 KiB (tests/bench/run reintegration
  // --zone-size; figures in README.md).
  std::size_t zone_size = 64u << 10;
  std::vector<ReplicatedDirConfig> replicated;
  SourceLocation location;
};

// <var name value>: exported to every script.
struct UserVar {
  std::string name;   // required, [A-Za-z_][A-Za-z0-9_]*
  std::string value;  // default empty
  SourceLocation location;
};

// <user nicestoptimeout forcestoptimeout logging>. Without <user> the
// module's scripts are not run (SafeKit's rule).
struct UserConfig {
  // Budget of a stop script. Default 300 s; a plain number is in s.
  milliseconds nice_stop_timeout = std::chrono::seconds(300);
  // Budget of a stop script called with "force". Default 300 s.
  milliseconds force_stop_timeout = std::chrono::seconds(300);
  // logging="userlog" (default): scripts' output goes to the user log;
  // "none": discarded.
  bool log_output = true;
  std::vector<UserVar> vars;
  SourceLocation location;
};

// Kinds of <check> children.
enum class CheckerKind {
  kTcp,        // <tcp ident when action><to addr port interval timeout/></tcp>
  kPing,       // <ping ident when action><to addr interval timeout/></ping>
  kInterface,  // <intf ident when action><to name interval timeout/></intf>
  kIp,         // <ip ident when action><to addr interval timeout/></ip>
  kCustom,     // <custom ident when action exec arg interval timeout/>
};

// One checker. Fields not used by a kind keep their defaults.
struct CheckerConfig {
  CheckerKind kind = CheckerKind::kTcp;  // from the element name; always set by the parser
  std::string ident;                     // required, unique among checkers of its kind
  // Default: prim for tcp, ip and custom; pre for ping and intf.
  When when = When::kPrim;
  // Default: restart for tcp and custom, wait for ping and intf,
  // stopstart for ip.
  Action action = Action::kRestart;
  std::string handler;  // the script name when action == kHandler. Default empty
  // tcp, ping, ip: an IP address or a host name. Required for them.
  std::string addr;
  int port = 0;                // tcp: 1..65535, required
  std::string interface_name;  // intf: <to name>, required
  std::string exec;            // custom: program, relative to bin/ unless absolute; required
  std::string arg;             // custom: arguments. Default empty
  // Default 10 s; a plain number is in s.
  milliseconds interval = std::chrono::seconds(10);
  // Default 5 s; a plain number is in s. Must not exceed interval.
  milliseconds timeout = std::chrono::seconds(5);
  SourceLocation location;
};

// <splitbrain ident exec arg> (or with <to addr/> children): who may run
// the application when the two nodes cannot see each other.
struct SplitBrainConfig {
  std::string ident = "witness";  // default "witness"
  // "ping" (default): the side that reaches a witness address wins; any
  // other value is a program (relative to bin/) whose exit status decides.
  std::string exec = "ping";
  std::string arg;  // exec's arguments; for ping the witness addresses
  // exec="ping": the witnesses, from arg (blank or comma separated) and
  // <to addr/>. At least one. IP literals or host names.
  std::vector<std::string> witnesses;
  SourceLocation location;
};

// <check>.
struct CheckConfig {
  std::vector<CheckerConfig> checkers;
  std::optional<SplitBrainConfig> splitbrain;  // default: none
  SourceLocation location;
};

// <failover handle_time period>: timing of the built-in failure rules
// (docs/checkers.md).
struct FailoverTimingConfig {
  // A resource must stay down this long before its action applies. Default
  // 0 (the next evaluation); a plain number is in ms.
  milliseconds handle_time{0};
  // How often the rules are evaluated besides every resource change.
  // Default 1 s; a plain number is in ms; at least 100 ms.
  milliseconds period{1000};
};

// One attribute as written and as used, kept for diagnostics that come after
// parsing (CheckModuleReadiness()).
struct SourceAttribute {
  std::string element;    // "virtual_addr"
  std::string attribute;  // "addr"
  std::string raw;        // as written, before %MACRO% expansion
  std::string value;      // after expansion
  SourceLocation location;
};

// A parsed userconfig.xml.
struct ModuleConfig {
  // The path (or display name) the file was parsed from.
  std::string source_path;
  // The file's exact bytes. This is what the daemon hashes to compare
  // configs between nodes: any edit, even a comment, makes the hashes differ,
  // and the files must then be the same on both nodes.
  std::string raw_text;
  // <macro name value>, values expanded. Default none.
  std::map<std::string, std::string> macros;

  ServiceConfig service;
  HeartConfig heart;
  // <farm><lan name/></farm> (farm modules only): the cluster.xml lans the
  // farm runs on. Default empty: every lan.
  std::vector<std::string> farm_lans;
  VipConfig vip;
  ErrdConfig errd;
  RfsConfig rfs;
  std::optional<UserConfig> user;  // absent: scripts are not run
  CheckConfig check;
  // <failover> rules, kept verbatim; hakit does not run them (a warning
  // says so). Absent when there is no <failover>.
  std::optional<std::string> failover_rules;
  FailoverTimingConfig failover;

  // Things understood and accepted but not acted upon.
  std::vector<Problem> warnings;
  // Every attribute of the file in document order.
  std::vector<SourceAttribute> attributes;
};

struct ParseOptions {
  // Looked up for %NAME% after <macro>s and before the process environment;
  // lets the daemon define SAFE, SAFEMODULE, ... for the file.
  std::map<std::string, std::string> variables;
  // Whether %NAME% may come from the process environment. Default true.
  bool use_environment = true;
};

// Reads and parses a userconfig.xml. A missing or unreadable file is
// kNotFound / kIoError; a bad file is kInvalidArgument with the message
// described above.
sdk::Result<ModuleConfig> ParseUserConfig(const std::string& path,
                                          const ParseOptions& options = {});

// The same from memory; `display_name` stands for the file in messages.
sdk::Result<ModuleConfig> ParseUserConfigString(std::string_view text, std::string display_name,
                                                const ParseOptions& options = {});

// What must be filled in before the module can run on this Linux node:
// placeholders left from a template, Windows paths, relative paths. Empty
// when the module is ready. Each problem has its position and a hint.
std::vector<Problem> CheckModuleReadiness(const ModuleConfig& config);

// <user><var>s and <macro>s as one map (a var wins over a macro of the same
// name): the variables scripts and ModuleSettings::vars receive.
std::map<std::string, std::string> ScriptVariables(const ModuleConfig& config);

// The words used in the file, for messages and `hakit` output.
const char* ToString(ModuleMode mode);
const char* ToString(DefaultPrim prim);
const char* ToString(BootMode boot);
const char* ToString(Action action);  // kHandler: "handler"
const char* ToString(When when);
const char* ToString(CheckerKind kind);  // the element name: "tcp", "intf", ...

}  // namespace hakit::config
