#include "hakit/checkers/resource.h"

#include <algorithm>
#include <cctype>

#include "hakit/checkers/loop_counter.h"

namespace hakit::checkers {

const char* ResourceStateName(ResourceState state) {
  switch (state) {
    case ResourceState::kInit: return "init";
    case ResourceState::kUp: return "up";
    case ResourceState::kDown: return "down";
  }
  return "?";
}

std::optional<ResourceState> ParseResourceState(std::string_view word) {
  std::string w(word);
  std::transform(w.begin(), w.end(), w.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (auto s : {ResourceState::kInit, ResourceState::kUp, ResourceState::kDown}) {
    if (w == ResourceStateName(s)) return s;
  }
  return std::nullopt;
}

bool IsResourceName(std::string_view name) {
  static constexpr std::string_view kPrefixes[] = {"proc.", "tcp.",    "ping.",      "intf.",
                                                   "ip.",   "custom.", "splitbrain."};
  for (std::string_view p : kPrefixes) {
    if (name.size() > p.size() && name.substr(0, p.size()) == p) {
      return std::none_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isspace(c) || std::iscntrl(c);
      });
    }
  }
  return false;
}

std::vector<std::pair<std::string, ResourceState>> ForHeartbeat(
    std::vector<std::pair<std::string, ResourceState>> resources, std::size_t budget) {
  std::stable_partition(resources.begin(), resources.end(),
                        [](const auto& r) { return r.second == ResourceState::kDown; });
  std::vector<std::pair<std::string, ResourceState>> out;
  for (auto& r : resources) {
    if (r.first.size() > 255 || r.first.size() + 2 > budget || out.size() == 255) continue;
    budget -= r.first.size() + 2;
    out.push_back(std::move(r));
  }
  return out;
}

void ResourceTable::Declare(const std::string& name, Clock::time_point now) {
  if (entries_.count(name)) return;
  entries_[name] = ResourceEntry{name, ResourceState::kInit, now, "declared"};
}

bool ResourceTable::Set(const std::string& name, ResourceState state, Clock::time_point now,
                        const std::string& set_by) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return false;
  it->second.set_by = set_by;
  if (it->second.state == state) return false;
  it->second.state = state;
  it->second.since = now;
  return true;
}

const ResourceEntry* ResourceTable::Find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<ResourceEntry> ResourceTable::All() const {
  std::vector<ResourceEntry> out;
  for (const auto& [name, e] : entries_) out.push_back(e);
  return out;
}

std::chrono::milliseconds ResourceTable::Age(const ResourceEntry& e, Clock::time_point now) {
  if (now <= e.since) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - e.since);
}

void LoopCounter::Record(Clock::time_point now) { times_.push_back(now); }

int LoopCounter::Count(Clock::time_point now) {
  while (!times_.empty() && now - times_.front() >= window_) times_.pop_front();
  return static_cast<int>(times_.size());
}

}  // namespace hakit::checkers
