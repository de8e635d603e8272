// The mirror state machine as a regression table: one line per rule,
//
//   LOCAL ; PEER ; EVENT ; EXPECTED
//
// LOCAL  states (A|B|* for several) then flags: busy>TARGET, data=up|stale|unk|div
//        (default up), last, ho (handing over), failover=off, defprim=X,
//        name=X (default n1).
// PEER   "none" (not visible), or states (A|B|*, * also includes none) then
//        flags: busy, ho, mismatch (config differs), data=..., last.
//        The peer is n2.
//        Flags written once after the last alternative ("STOP|WAIT busy")
//        apply to all of them; "SECOND busy|SECOND ho" gives each its own.
// EVENT  one or several (a|b): start stop restart stopstart swap prim second
//        changed lost expired done failed:STEP failure:ACTION prim:force.
// EXPECTED  nochange | defer | refused | NEXT (a state, or = for the local
//        one) followed by the exact step list, then #kind, +ho, +again,
//        +diverged/+uptodate (set_data), and 'text' that the reason must contain.
//
// Every combination a line expands to is one case; the whole table runs in
// milliseconds, like a scheduler's regression suite.
#include <gtest/gtest.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "fsm_test_util.h"
#include "hakit/cluster/mirror_fsm.h"

namespace hakit::cluster {
namespace {

using testing::Describe;
using testing::StepsToString;

// clang-format off
const char* const kTable[] = {
  // ---- start ----------------------------------------------------------------
  "STOP ; * ; start ; WAIT prestart #state_change",
  "STOP data=stale ; none ; start ; WAIT prestart",
  "WAIT|SECOND ; * ; start ; nochange",
  "ALONE|PRIM ; none|STOP|WAIT|SECOND ; start ; nochange",

  // ---- stop -----------------------------------------------------------------
  "STOP ; * ; stop ; nochange 'already stopped'",
  "WAIT ; * ; stop ; STOP poststop #state_change",
  "ALONE|PRIM ; * ; stop ; STOP stop_prim remove_vip stop_both poststop #state_change",
  "SECOND ; * ; stop ; STOP stop_second stop_both poststop #state_change",
  "SECOND ho ; SECOND|PRIM ; stop ; STOP stop_second stop_both poststop",

  // ---- anything while busy waits, except the steps' outcome ------------------
  "* busy>STOP ; * ; start|stop|restart|stopstart|swap|prim|second|changed|lost|expired|failure:restart ; defer",
  "WAIT busy>ALONE ; WAIT|SECOND ; changed|lost|stop ; defer",

  // ---- steps done -----------------------------------------------------------
  "STOP busy>WAIT ; none|WAIT ; done ; WAIT",
  "WAIT busy>ALONE ; none ; done ; ALONE",
  "WAIT busy>SECOND ; ALONE ; done ; SECOND",
  "ALONE busy>STOP ; none|SECOND ; done ; STOP",
  "ALONE busy>ALONE ; none ; done ; ALONE",
  "PRIM busy>SECOND ho ; SECOND ; done ; SECOND +ho",
  "SECOND busy>PRIM ; SECOND ho ; done ; PRIM",
  "* ; none|STOP ; done ; nochange",

  // ---- steps failed: never half-started, always STOP ----------------------------
  "WAIT busy>ALONE ; none ; failed:start_prim ; STOP stop_prim remove_vip stop_both poststop #script_failure 'start_prim failed: module stopped, the peer may take over'",
  "WAIT busy>ALONE ; none ; failed:add_vip|failed:start_both ; STOP stop_prim remove_vip stop_both poststop #script_failure",
  "STOP busy>ALONE ; none ; failed:prestart|failed:start_both|failed:start_prim ; STOP stop_prim remove_vip stop_both poststop #script_failure",
  "WAIT busy>SECOND ; ALONE|PRIM ; failed:start_second|failed:start_both ; STOP stop_second stop_both poststop #script_failure",
  "STOP busy>WAIT ; none|WAIT ; failed:prestart ; STOP poststop #script_failure",
  "SECOND busy>ALONE ; none|STOP ; failed:start_prim|failed:add_vip ; STOP stop_prim remove_vip stop_second stop_both poststop #script_failure",
  "SECOND busy>ALONE ; none ; failed:stop_second ; STOP stop_both poststop",
  "PRIM busy>SECOND ho ; SECOND ; failed:start_second ; STOP stop_prim remove_vip stop_second stop_both poststop #script_failure",
  "ALONE|PRIM busy>ALONE ; none|SECOND ; failed:start_prim ; STOP stop_prim remove_vip stop_both poststop",
  "SECOND busy>SECOND ; PRIM ; failed:start_second ; STOP stop_second stop_both poststop",
  // Failures while stopping: resume after the failed step (the controller
  // tried it by force already), so repeated failures always end.
  "ALONE|PRIM busy>STOP ; none ; failed:stop_prim ; STOP remove_vip stop_both poststop #script_failure",
  "ALONE|PRIM busy>STOP ; none ; failed:remove_vip ; STOP stop_both poststop",
  "ALONE busy>STOP ; none ; failed:stop_both ; STOP poststop",
  "ALONE busy>STOP ; none ; failed:poststop ; STOP #script_failure",
  "ALONE busy>STOP ; none ; failed: ; STOP #script_failure 'a step failed'",
  "SECOND busy>STOP ; PRIM ; failed:stop_second ; STOP stop_both poststop",
  "WAIT busy>STOP ; none ; failed:poststop ; STOP",
  "ALONE busy>WAIT ; ALONE ; failed:stop_prim ; STOP remove_vip stop_both poststop",
  // A failure during the cleanup of a failure: the state no longer says the
  // primary role was involved, the failed step does.
  "WAIT busy>STOP ; none ; failed:stop_prim ; STOP remove_vip stop_both poststop",
  "SECOND busy>STOP ; none ; failed:stop_prim ; STOP remove_vip stop_second stop_both poststop",
  "WAIT busy>STOP ; none ; failed:remove_vip ; STOP stop_both poststop",
  "SECOND busy>STOP ; none ; failed:remove_vip ; STOP stop_second stop_both poststop",
  "* ; none|PRIM ; failed:start_prim ; nochange",

  // ---- start-up wait expired ----------------------------------------------------
  "WAIT ; none ; expired ; ALONE start_both add_vip start_prim #state_change 'wait expired'",
  // A fresh node starts alone, as SafeKit lets it.
  "WAIT data=unk ; none ; expired ; ALONE start_both add_vip start_prim",
  "WAIT data=stale ; none|STOP ; expired ; nochange 'data may be stale: the peer was primary after this node; start the module there, or run hakit prim --force to trust this copy'",
  "WAIT ; STOP ; expired ; ALONE start_both add_vip start_prim",
  "WAIT data=unk ; STOP data=stale|STOP data=unk ; expired ; ALONE start_both add_vip start_prim",
  "WAIT data=unk ; STOP data=up ; expired ; nochange 'holds up-to-date data'",
  "WAIT ; ALONE|PRIM ; expired ; SECOND start_both start_second",
  "WAIT ; STOP|WAIT|ALONE|PRIM|SECOND mismatch ; expired|changed ; nochange 'different configuration'",
  "WAIT ; STOP|WAIT|ALONE|PRIM|SECOND busy ; expired|changed ; nochange 'in transition'",
  "WAIT ; SECOND ; expired|changed ; nochange 'SECOND without a primary'",
  "STOP|ALONE|PRIM|SECOND ; none|STOP|SECOND ; expired ; nochange",

  // ---- WAIT: pairing --------------------------------------------------------
  "WAIT ; ALONE|PRIM ; changed ; SECOND start_both start_second #state_change",
  "WAIT data=stale|WAIT data=unk ; ALONE|PRIM ; changed ; SECOND start_both start_second",
  "WAIT ; ALONE|PRIM data=stale ; changed ; SECOND start_both start_second",
  "WAIT ; none|STOP ; changed|lost ; nochange",

  // ---- WAIT: election between two waiting nodes ----------------------------------
  "WAIT ; WAIT ; changed|expired ; ALONE start_both add_vip start_prim 'elected primary over n2 (its name sorts first)'",
  "WAIT name=n3 ; WAIT ; changed|expired ; nochange 'n2 is to be primary'",
  "WAIT data=unk ; WAIT data=unk ; changed ; ALONE start_both add_vip start_prim",
  "WAIT data=unk ; WAIT ; changed ; nochange 'n2 is to be primary (its data is up to date)'",
  "WAIT data=stale ; WAIT ; changed ; nochange 'n2 is to be primary'",
  "WAIT name=n3 ; WAIT data=unk|WAIT data=stale ; changed ; ALONE start_both add_vip start_prim 'its data is up to date'",
  "WAIT data=stale ; WAIT data=stale|WAIT data=unk ; changed|expired ; nochange 'cannot tell which node holds the newest data'",
  "WAIT data=unk ; WAIT data=stale ; changed|expired ; nochange 'cannot tell'",
  "WAIT defprim=n2 ; WAIT ; changed ; nochange 'defaultprim'",
  "WAIT name=n3 defprim=n3 ; WAIT last ; changed ; ALONE start_both add_vip start_prim 'defaultprim names it'",
  "WAIT defprim=n2 data=up ; WAIT data=unk ; changed ; ALONE start_both add_vip start_prim",
  "WAIT ; WAIT last ; changed ; nochange 'last primary'",
  "WAIT defprim=lastprim ; WAIT last ; changed ; nochange",
  "WAIT name=n3 last defprim=lastprim ; WAIT ; changed ; ALONE start_both add_vip start_prim 'last primary'",
  "WAIT name=n3 last ; WAIT ; changed ; ALONE start_both add_vip start_prim",

  // ---- primary: pairing, peer leaving ---------------------------------------------
  "ALONE ; SECOND ; changed ; PRIM #state_change",
  "ALONE ; SECOND ho ; changed ; PRIM",
  "ALONE ; SECOND busy|SECOND mismatch ; changed ; nochange",
  "ALONE ; none|STOP|WAIT ; changed ; nochange",
  "ALONE ; STOP|WAIT busy ; changed ; nochange",
  "PRIM ; STOP|WAIT ; changed ; ALONE #state_change 'no secondary'",
  "PRIM ; STOP|WAIT busy ; changed ; ALONE",
  "PRIM ; none|SECOND ; changed ; nochange",

  // ---- split brain: both primary, both stop the application ---------------------
  "ALONE|PRIM ; ALONE|PRIM ; changed|lost|start|restart|swap|prim|second|stopstart|expired|failure:restart|failure:failover ; WAIT stop_prim remove_vip stop_both #split_brain +diverged 'split brain: n1 and n2 are both primary'",
  "ALONE|PRIM ; ALONE busy|PRIM busy|ALONE mismatch|PRIM mismatch|ALONE ho|PRIM ho ; changed ; WAIT stop_prim remove_vip stop_both #split_brain +diverged 'run hakit prim --force on the node whose data to keep'",

  // ---- failback to defaultprim ------------------------------------------------------
  "PRIM defprim=n2 ; SECOND ; changed ; SECOND stop_prim remove_vip start_second #swap +ho 'defaultprim=n2: failback'",
  "PRIM defprim=n2 ; SECOND busy|SECOND ho|SECOND mismatch|SECOND data=stale ; changed ; nochange",
  "PRIM defprim=n1|PRIM defprim=alone|PRIM defprim=lastprim ; SECOND ; changed ; nochange",
  "ALONE defprim=n2 ; SECOND ; changed ; PRIM",

  // ---- SECOND: primary gone or stopped ---------------------------------------------
  "SECOND ; ALONE|PRIM|none ; changed ; nochange",
  "SECOND ; STOP ; changed ; ALONE stop_second add_vip start_prim #failover 'primary n2 stopped: failover'",
  "SECOND ; WAIT ; changed ; ALONE stop_second add_vip start_prim #failover",
  "SECOND data=unk ; STOP|WAIT ; changed ; ALONE stop_second add_vip start_prim #failover",
  "SECOND failover=off ; STOP|WAIT ; changed ; WAIT stop_second stop_both #state_change 'failover=off'",
  "SECOND data=stale ; STOP|WAIT ; changed ; WAIT stop_second stop_both 'not synchronised'",
  "SECOND ; STOP|WAIT busy ; changed ; nochange",
  "SECOND ; STOP mismatch ; changed ; ALONE stop_second add_vip start_prim #failover",

  // ---- swap, taking-over side ---------------------------------------------------------
  "SECOND ; SECOND ho ; changed ; PRIM stop_second add_vip start_prim #swap 'swap: taking over from n2'",
  "SECOND failover=off|SECOND data=stale ; SECOND ho ; changed ; PRIM stop_second add_vip start_prim #swap",
  "SECOND ; SECOND ho busy ; changed ; nochange",
  // Two SECONDs and no primary: the election picks who moves.
  "SECOND ; SECOND ; changed ; ALONE stop_second add_vip start_prim #failover",
  "SECOND name=n3 ; SECOND ; changed ; nochange",
  // ---- swap, handing-over side after its steps --------------------------------------
  "SECOND ho ; SECOND ; changed ; nochange 'waiting for n2 to take over'",
  "SECOND ho ; SECOND busy ; changed ; nochange",
  "SECOND ho ; ALONE|PRIM ; changed ; SECOND #swap 'swap complete'",
  "SECOND ho ; STOP ; changed ; ALONE stop_second add_vip start_prim #failover",

  // ---- peer lost ----------------------------------------------------------------------
  "PRIM ; none ; lost ; ALONE #peer_lost",
  "ALONE|WAIT|STOP ; none ; lost ; nochange",
  "SECOND ; none ; lost ; ALONE stop_second add_vip start_prim #failover 'peer n2 lost: failover'",
  "SECOND ho|SECOND data=unk ; none ; lost ; ALONE stop_second add_vip start_prim #failover",
  "SECOND failover=off ; none ; lost ; WAIT stop_second stop_both #peer_lost 'peer n2 lost, failover=off'",
  "SECOND data=stale ; none ; lost ; WAIT stop_second stop_both #peer_lost",
  // The peer came back before a deferred kPeerLost was replayed.
  "SECOND ; PRIM ; lost ; nochange",
  "PRIM ; SECOND ; lost ; nochange",

  // ---- restart ---------------------------------------------------------------------------
  "ALONE|PRIM ; none|SECOND|STOP|WAIT ; restart ; = stop_prim start_prim #restart",
  "SECOND ; PRIM|none ; restart ; = stop_second start_second #restart",
  "SECOND ho ; SECOND ; restart ; = stop_second start_second #restart +ho",
  "STOP|WAIT ; * ; restart ; refused 'restart refused'",

  // ---- stopstart ---------------------------------------------------------------------
  "ALONE|PRIM ; none|SECOND|STOP|WAIT ; stopstart ; STOP stop_prim remove_vip stop_both poststop #stopstart +again",
  "SECOND ; none|ALONE|PRIM ; stopstart ; STOP stop_second stop_both poststop #stopstart +again",
  "WAIT ; * ; stopstart ; STOP poststop #stopstart +again",
  "STOP ; * ; stopstart ; refused",

  // ---- swap, operator side --------------------------------------------------------------
  "PRIM ; SECOND ; swap ; SECOND stop_prim remove_vip start_second #swap +ho 'handing over to n2'",
  "PRIM ; none ; swap ; refused 'peer is not visible'",
  "PRIM ; STOP|WAIT ; swap ; refused 'peer is not SECOND'",
  "PRIM ; SECOND busy|SECOND ho ; swap ; refused 'in transition'",
  "PRIM ; SECOND mismatch ; swap ; refused 'different configuration'",
  "PRIM ; SECOND data=stale ; swap ; refused 'not synchronised'",
  "ALONE ; SECOND|none|STOP|WAIT ; swap ; refused 'not PRIM'",
  "SECOND ; PRIM|ALONE ; swap ; refused 'run it on the primary node (n2)'",
  "STOP|WAIT ; * ; swap ; refused",

  // ---- hakit prim ---------------------------------------------------------------------
  "STOP ; none|STOP|WAIT|SECOND ; prim ; ALONE prestart start_both add_vip start_prim #state_change +uptodate",
  "WAIT ; none|STOP|WAIT|SECOND ; prim ; ALONE start_both add_vip start_prim +uptodate",
  // Stale or diverged data serves only on the operator's --force: the copy
  // becomes the reference and what the peer holds beyond it is lost.
  "WAIT|STOP data=stale ; none|WAIT|STOP ; prim ; refused 'data is stale'",
  "WAIT data=stale ; none|WAIT ; prim ; refused 'hakit prim --force makes this copy the reference'",
  "SECOND data=stale ; none|STOP|WAIT ; prim ; refused 'data is stale'",
  "WAIT data=stale ; none|WAIT ; prim:force ; ALONE start_both add_vip start_prim +uptodate 'data was stale'",
  "SECOND data=stale ; none|STOP|WAIT ; prim:force ; ALONE stop_second add_vip start_prim +uptodate",
  "WAIT data=div ; WAIT data=div ; prim ; refused '(both ran ALONE); hakit prim --force on the node whose data to keep'",
  "WAIT data=div ; none ; prim ; refused 'diverged'",
  "WAIT data=div ; WAIT data=div ; prim:force ; ALONE start_both add_vip start_prim +uptodate 'prim --force'",
  "WAIT data=div ; none ; prim:force ; ALONE start_both add_vip start_prim +uptodate",
  "WAIT data=up ; none|WAIT ; prim|prim:force ; ALONE start_both add_vip start_prim +uptodate",
  "WAIT data=unk ; none|WAIT ; prim|prim:force ; ALONE start_both add_vip start_prim +uptodate",
  "WAIT ; STOP mismatch|WAIT mismatch ; prim ; ALONE start_both add_vip start_prim +uptodate",
  "SECOND ; none|STOP|WAIT ; prim ; ALONE stop_second add_vip start_prim +uptodate",
  "STOP|WAIT|SECOND ; ALONE|PRIM ; prim ; refused 'peer n2 is primary: stop it first or use swap'",
  "STOP|WAIT|SECOND ; ALONE|PRIM mismatch ; prim ; refused 'is primary'",
  "STOP|WAIT ; STOP|WAIT|SECOND busy ; prim ; refused 'in transition'",
  "ALONE|PRIM ; none|SECOND ; prim ; nochange 'already primary'",

  // ---- hakit second -------------------------------------------------------------------
  "STOP ; ALONE|PRIM ; second ; SECOND prestart start_both start_second #state_change",
  "WAIT ; ALONE|PRIM ; second ; SECOND start_both start_second",
  "STOP ; none|STOP|WAIT|SECOND ; second ; WAIT prestart",
  "STOP ; ALONE mismatch|PRIM busy ; second ; WAIT prestart",
  "WAIT ; none|STOP|WAIT ; second ; nochange 'waiting for a primary peer'",
  "ALONE|PRIM ; none|SECOND|STOP ; second ; refused 'use swap or stop'",
  "SECOND ; PRIM ; second ; nochange",

  // ---- local failure (checkers) ----------------------------------------------------------
  "ALONE|PRIM ; none ; failure:restart ; = stop_prim start_prim #restart 'local failure: restart'",
  "SECOND ; PRIM ; failure:restart ; = stop_second start_second #restart",
  "ALONE|PRIM ; none ; failure:stopstart ; STOP stop_prim remove_vip stop_both poststop #stopstart +again",
  "SECOND ; PRIM ; failure:stopstart ; STOP stop_second stop_both poststop #stopstart +again",
  "PRIM ; SECOND ; failure:failover ; SECOND stop_prim remove_vip start_second #failover +ho 'handing over to n2'",
  "PRIM failover=off ; SECOND ; failure:failover ; = stop_prim start_prim #restart 'failover=off'",
  "PRIM ; SECOND busy|SECOND data=stale ; failure:failover ; = stop_prim start_prim #restart 'failover impossible'",
  "ALONE ; none|STOP|WAIT|SECOND ; failure:failover ; = stop_prim start_prim #restart",
  "SECOND ; PRIM ; failure:failover ; = stop_second start_second #restart",
  "ALONE|PRIM ; none|SECOND ; failure:stop ; STOP stop_prim remove_vip stop_both poststop #local_failure",
  "SECOND ; PRIM ; failure:stop ; STOP stop_second stop_both poststop #local_failure",
  "STOP|WAIT ; * ; failure:restart|failure:stop|failure:failover|failure:stopstart ; nochange 'not running'",
  "PRIM ; SECOND ; failure:bogus ; nochange 'unknown action'",

  // ---- STOP ignores the cluster --------------------------------------------------------
  "STOP ; * ; changed|lost|expired ; nochange",
};
// clang-format on

// ---- The little language above ---------------------------------------------------------

// Splits on `sep` outside 'quoted text'.
std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (char c : s) {
    if (c == '\'') quoted = !quoted;
    if (c == sep && !quoted) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

// Whitespace-separated tokens; 'quoted text' is one token (without quotes).
std::vector<std::string> Tokens(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ' ') {
      ++i;
    } else if (s[i] == '\'') {
      size_t end = s.find('\'', i + 1);
      out.push_back("'" + s.substr(i + 1, end - i - 1));
      i = end + 1;
    } else {
      size_t end = s.find(' ', i);
      if (end == std::string::npos) end = s.size();
      out.push_back(s.substr(i, end - i));
      i = end;
    }
  }
  return out;
}

State MustParseState(const std::string& s) {
  std::optional<State> st = ParseState(s);
  if (!st) throw std::runtime_error("bad state '" + s + "'");
  return *st;
}

DataStatus ParseData(const std::string& s) {
  if (s == "up") return DataStatus::kUpToDate;
  if (s == "stale") return DataStatus::kStale;
  if (s == "div") return DataStatus::kDiverged;
  if (s == "unk") return DataStatus::kUnknown;
  throw std::runtime_error("bad data '" + s + "'");
}

// Applies "key=value" or "flag" tokens of a local spec.
void ApplyLocalFlag(Facts& f, const std::string& t) {
  if (t.rfind("busy>", 0) == 0) {
    f.busy = true;
    f.target = MustParseState(t.substr(5));
  } else if (t.rfind("data=", 0) == 0) {
    f.data = ParseData(t.substr(5));
  } else if (t == "last") {
    f.was_last_prim = true;
  } else if (t == "ho") {
    f.handing_over = true;
  } else if (t == "failover=off") {
    f.config.failover = false;
  } else if (t.rfind("defprim=", 0) == 0) {
    f.config.default_prim = t.substr(8);
  } else if (t.rfind("name=", 0) == 0) {
    f.config.local_name = t.substr(5);
  } else {
    throw std::runtime_error("bad local flag '" + t + "'");
  }
}

void ApplyPeerFlag(PeerView& p, const std::string& t) {
  if (t == "busy") {
    p.busy = true;
  } else if (t == "ho") {
    p.handing_over = true;
  } else if (t == "mismatch") {
    p.config_matches = false;
  } else if (t.rfind("data=", 0) == 0) {
    p.data = ParseData(t.substr(5));
  } else if (t == "last") {
    p.was_last_prim = true;
  } else {
    throw std::runtime_error("bad peer flag '" + t + "'");
  }
}

// "A|B|C flag flag" -> one spec per alternative. An alternative may carry its
// own flags ("SECOND busy|SECOND ho"): flags after the last '|' apply to the
// last alternative only when other alternatives have flags of their own;
// otherwise to all of them.
struct Spec {
  std::string state;  // a state name, "none" or "*"
  std::vector<std::string> flags;
};

std::vector<Spec> ParseAlternatives(const std::string& text) {
  std::vector<Spec> specs;
  for (const std::string& alt : Split(text, '|')) {
    std::vector<std::string> t = Tokens(Trim(alt));
    if (t.empty()) throw std::runtime_error("empty alternative in '" + text + "'");
    specs.push_back(Spec{t[0], {t.begin() + 1, t.end()}});
  }
  // "A|B flags": the flags written once at the end belong to every state.
  bool own_flags = false;
  for (size_t i = 0; i + 1 < specs.size(); ++i) own_flags |= !specs[i].flags.empty();
  if (!own_flags) {
    for (Spec& s : specs) s.flags = specs.back().flags;
  }
  return specs;
}

struct Expect {
  enum Kind { kNoChange, kDefer, kRefused, kChange } kind = kChange;
  std::optional<State> next;  // nullopt: same as the local state
  std::vector<Step> steps;
  std::optional<std::string> history_kind;
  bool handing_over = false;
  bool restart_after = false;
  std::optional<DataStatus> set_data;
  std::vector<std::string> reason_has;
};

std::optional<Step> StepByName(const std::string& s) {
  for (Step st :
       {Step::kPrestart, Step::kStartBoth, Step::kStartPrim, Step::kStartSecond, Step::kStopPrim,
        Step::kStopSecond, Step::kStopBoth, Step::kPoststop, Step::kAddVip, Step::kRemoveVip}) {
    if (s == StepName(st)) return st;
  }
  return std::nullopt;
}

Expect ParseExpect(const std::string& text) {
  Expect e;
  std::vector<std::string> t = Tokens(Trim(text));
  if (t.empty()) throw std::runtime_error("empty expectation");
  if (t[0] == "nochange") {
    e.kind = Expect::kNoChange;
  } else if (t[0] == "defer") {
    e.kind = Expect::kDefer;
  } else if (t[0] == "refused") {
    e.kind = Expect::kRefused;
  } else if (t[0] != "=") {
    e.next = MustParseState(t[0]);
  }
  for (size_t i = 1; i < t.size(); ++i) {
    const std::string& x = t[i];
    if (x[0] == '#') {
      e.history_kind = x.substr(1);
    } else if (x == "+ho") {
      e.handing_over = true;
    } else if (x == "+again") {
      e.restart_after = true;
    } else if (x == "+diverged") {
      e.set_data = DataStatus::kDiverged;
    } else if (x == "+uptodate") {
      e.set_data = DataStatus::kUpToDate;
    } else if (x[0] == '\'') {
      e.reason_has.push_back(x.substr(1));
    } else if (std::optional<Step> st = StepByName(x)) {
      e.steps.push_back(*st);
    } else {
      throw std::runtime_error("bad expectation token '" + x + "'");
    }
  }
  return e;
}

Event ParseEvent(const std::string& text) {
  std::string name = Trim(text);
  std::string detail;
  if (size_t colon = name.find(':'); colon != std::string::npos) {
    detail = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  static const std::pair<const char*, EventKind> kNames[] = {
      {"start", EventKind::kStart},         {"stop", EventKind::kStop},
      {"restart", EventKind::kRestart},     {"stopstart", EventKind::kStopStart},
      {"swap", EventKind::kSwap},           {"prim", EventKind::kForcePrim},
      {"second", EventKind::kForceSecond},  {"changed", EventKind::kPeerChanged},
      {"lost", EventKind::kPeerLost},       {"expired", EventKind::kWaitExpired},
      {"done", EventKind::kStepsDone},      {"failed", EventKind::kStepsFailed},
      {"failure", EventKind::kLocalFailure}};
  for (const auto& [n, k] : kNames) {
    if (name == n) return Event{k, detail};
  }
  throw std::runtime_error("bad event '" + name + "'");
}

struct Case {
  std::string line;
  Facts facts;
  Event event;
  Expect expect;
};

std::vector<Case> ExpandLine(const std::string& line) {
  std::vector<std::string> parts = Split(line, ';');
  if (parts.size() != 4) throw std::runtime_error("expected 4 fields: " + line);
  Expect expect = ParseExpect(parts[3]);
  std::vector<Case> out;
  for (const Spec& local : ParseAlternatives(parts[0])) {
    std::vector<State> local_states;
    if (local.state == "*") {
      local_states.assign(std::begin(testing::kStates), std::end(testing::kStates));
    } else {
      local_states.push_back(MustParseState(local.state));
    }
    for (State ls : local_states) {
      for (const Spec& peer : ParseAlternatives(parts[1])) {
        std::vector<std::optional<State>> peer_states;
        if (peer.state == "*") {
          peer_states.push_back(std::nullopt);
          for (State s : testing::kStates) peer_states.push_back(s);
        } else if (peer.state == "none") {
          peer_states.push_back(std::nullopt);
        } else {
          peer_states.push_back(MustParseState(peer.state));
        }
        for (const std::optional<State>& ps : peer_states) {
          for (const std::string& ev : Split(parts[2], '|')) {
            Case c{line, {}, ParseEvent(ev), expect};
            Facts& f = c.facts;
            f.state = ls;
            f.target = ls;
            f.data = DataStatus::kUpToDate;
            f.config.local_name = "n1";
            for (const std::string& flag : local.flags) ApplyLocalFlag(f, flag);
            f.peer.name = "n2";
            f.peer.data = DataStatus::kUpToDate;
            if (ps) {
              f.peer.visible = true;
              f.peer.state = *ps;
              for (const std::string& flag : peer.flags) ApplyPeerFlag(f.peer, flag);
            }
            out.push_back(std::move(c));
          }
        }
      }
    }
  }
  return out;
}

std::vector<Case> AllCases() {
  std::vector<Case> all;
  for (const char* line : kTable) {
    std::vector<Case> cases = ExpandLine(line);
    all.insert(all.end(), cases.begin(), cases.end());
  }
  return all;
}

// Returns what is wrong with the decision, or "" when it is as expected.
std::string Check(const Case& c, const Decision& d) {
  std::ostringstream err;
  const Expect& e = c.expect;
  switch (e.kind) {
    case Expect::kDefer:
      if (!d.defer || !d.no_change) err << "expected defer; ";
      break;
    case Expect::kRefused:
      if (d.refused.empty() || !d.no_change) err << "expected refused; ";
      break;
    case Expect::kNoChange:
      if (!d.no_change || d.defer || !d.refused.empty()) err << "expected nochange; ";
      break;
    case Expect::kChange: {
      if (d.no_change) {
        err << "expected a change; ";
        break;
      }
      State next = e.next.value_or(c.facts.state);
      if (d.next != next) err << "next " << StateName(d.next) << " != " << StateName(next) << "; ";
      if (d.steps != e.steps) {
        err << "steps [" << StepsToString(d.steps) << "] != [" << StepsToString(e.steps) << "]; ";
      }
      if (e.history_kind && d.history_kind != *e.history_kind) {
        err << "kind " << d.history_kind << " != " << *e.history_kind << "; ";
      }
      if (d.handing_over != e.handing_over) err << "handing_over " << d.handing_over << "; ";
      if (d.restart_after != e.restart_after) err << "restart_after " << d.restart_after << "; ";
      if (d.set_data != e.set_data) err << "set_data differs; ";
      break;
    }
  }
  for (const std::string& text : e.reason_has) {
    if (d.reason.find(text) == std::string::npos) err << "reason lacks '" << text << "'; ";
  }
  return err.str();
}

TEST(MirrorFsmTable, EveryCase) {
  std::vector<Case> cases = AllCases();
  // The table is meant to be broad: keep it so.
  EXPECT_GE(cases.size(), 600u);
  int failures = 0;
  for (const Case& c : cases) {
    Decision d = Decide(c.facts, c.event);
    std::string problem = Check(c, d);
    if (!problem.empty()) {
      ++failures;
      ADD_FAILURE() << "line: " << c.line << "\n  facts: " << Describe(c.facts)
                    << "\n  event: " << testing::EventName(c.event.kind) << ":" << c.event.detail
                    << "\n  got:   " << Describe(d) << "\n  wrong: " << problem;
    }
  }
  std::printf("%zu table cases, %d failures\n", cases.size(), failures);
}

// The refusal names the exact command that overrides it, module included;
// the reasons that send the operator to `hakit prim` name it the same way.
TEST(MirrorFsmTable, PrimRefusalNamesTheCommandThatOverridesIt) {
  Facts f;
  f.state = State::kWait;
  f.config.module = "demo";
  f.config.local_name = "n1";
  f.peer.name = "n2";
  f.data = DataStatus::kStale;
  Decision d = Decide(f, {EventKind::kForcePrim, ""});
  EXPECT_TRUE(d.no_change);
  EXPECT_NE(d.refused.find("hakit prim --force -m demo"), std::string::npos) << d.refused;
  EXPECT_EQ(PrimCommand(f), "hakit prim --force -m demo");
  d = Decide(f, {EventKind::kForcePrim, "force"});
  EXPECT_FALSE(d.no_change) << d.reason;
  EXPECT_EQ(d.next, State::kAlone);
  f.data = DataStatus::kDiverged;
  d = Decide(f, {EventKind::kWaitExpired, ""});
  EXPECT_NE(d.reason.find("run hakit prim --force -m demo on the node whose data to keep"),
            std::string::npos)
      << d.reason;
  f.data = DataStatus::kUpToDate;
  EXPECT_EQ(PrimCommand(f), "hakit prim -m demo");
  d = Decide(f, {EventKind::kForcePrim, ""});
  EXPECT_FALSE(d.no_change) << d.refused;
}

TEST(MirrorFsmTable, Names) {
  for (State s : testing::kStates) {
    EXPECT_EQ(ParseState(StateName(s)), s);
  }
  EXPECT_EQ(ParseState("prim"), State::kPrim);
  EXPECT_EQ(ParseState("Second"), State::kSecond);
  EXPECT_EQ(ParseState("PRIMARY"), std::nullopt);
  EXPECT_EQ(ParseState(""), std::nullopt);
  EXPECT_EQ(StateExitCode(State::kStop), 0);
  EXPECT_EQ(StateExitCode(State::kWait), 1);
  EXPECT_EQ(StateExitCode(State::kAlone), 2);
  EXPECT_EQ(StateExitCode(State::kPrim), 3);
  EXPECT_EQ(StateExitCode(State::kSecond), 4);
  EXPECT_STREQ(StepName(Step::kStartPrim), "start_prim");
  EXPECT_STREQ(StepName(Step::kRemoveVip), "remove_vip");
  EXPECT_STREQ(StepName(Step::kPoststop), "poststop");
}

// The language itself: a line that cannot parse must fail loudly, not pass
// with no cases.
TEST(MirrorFsmTable, ParserRejectsTypos) {
  EXPECT_THROW(ExpandLine("STOPP ; none ; start ; WAIT"), std::runtime_error);
  EXPECT_THROW(ExpandLine("STOP ; none ; begin ; WAIT"), std::runtime_error);
  EXPECT_THROW(ExpandLine("STOP ; none ; start ; WAIT prestrat"), std::runtime_error);
  EXPECT_THROW(ExpandLine("STOP ; none ; start"), std::runtime_error);
  EXPECT_EQ(ExpandLine("ALONE|PRIM ; * ; stop|start ; nochange").size(), 24u);
}

}  // namespace
}  // namespace hakit::cluster
