// Resources: what each checker concludes, by name.
//
// Every checker (errd process count, tcp, ping, interface, ip, custom,
// split-brain witness) sets one named resource to init, up or down:
//
//   proc.NAME  tcp.IDENT  ping.IDENT  intf.IDENT  ip.ADDR  custom.IDENT
//   splitbrain.IDENT
//
// A resource remembers when its state last changed (its age); the rules
// (rules.h) look only at names, states and ages. The table is a plain value:
// it reads no clock, every call is given `now`, so tests drive it with any
// time they like.
//
// Threading: not thread-safe; the daemon uses it on its io_context thread.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hakit::checkers {

using Clock = std::chrono::steady_clock;

// The values travel in heartbeats (one byte): never renumber.
enum class ResourceState {
  kInit = 0,  // not known yet (checker not run since the module's last transition)
  kUp = 1,
  kDown = 2,
};

// "init", "up", "down".
const char* ResourceStateName(ResourceState state);
// The same words, case-insensitive; nullopt for anything else.
std::optional<ResourceState> ParseResourceState(std::string_view word);

// Whether `name` is a resource name hakit knows: one of the prefixes above,
// a dot, and a non-empty identifier without blanks.
bool IsResourceName(std::string_view name);

// The resources a heartbeat carries: those down first, then in the given
// order, as many as fit in `budget` bytes (a name's length plus 2 each; at
// most 255, names of at most 255 bytes), so that a heartbeat stays one
// datagram however many checkers a module has.
std::vector<std::pair<std::string, ResourceState>> ForHeartbeat(
    std::vector<std::pair<std::string, ResourceState>> resources, std::size_t budget);

struct ResourceEntry {
  std::string name;
  ResourceState state = ResourceState::kInit;
  Clock::time_point since{};  // when `state` was entered
  // Who set it last: "errd", "checker", "operator", "witness", ...
  std::string set_by;
};

class ResourceTable {
 public:
  // Declares a resource (state init). Declaring it again keeps its state.
  void Declare(const std::string& name, Clock::time_point now);
  // Sets a declared resource; returns true when its state changed (the age
  // restarts only then). An undeclared name returns false and changes nothing.
  bool Set(const std::string& name, ResourceState state, Clock::time_point now,
           const std::string& set_by);
  // Back to init, for every resource `keep` does not hold (after a module
  // transition, so that a failure already acted upon is not acted upon twice).
  template <typename Keep>
  void ResetUnless(Keep keep, Clock::time_point now) {
    for (auto& [name, e] : entries_) {
      if (keep(e) || e.state == ResourceState::kInit) continue;
      e.state = ResourceState::kInit;
      e.since = now;
      e.set_by = "reset";
    }
  }
  const ResourceEntry* Find(const std::string& name) const;
  bool Has(const std::string& name) const { return entries_.count(name) != 0; }
  // Every resource, sorted by name.
  std::vector<ResourceEntry> All() const;
  // How long `e` has been in its state at `now` (never negative).
  static std::chrono::milliseconds Age(const ResourceEntry& e, Clock::time_point now);

 private:
  std::map<std::string, ResourceEntry> entries_;
};

}  // namespace hakit::checkers
