#include "hakit/cluster/peer_table.h"

#include <algorithm>

namespace hakit::cluster {

bool PeerInfo::SameAnnouncement(const PeerInfo& o) const {
  const PeerView& a = view;
  const PeerView& b = o.view;
  return a.visible == b.visible && a.config_matches == b.config_matches && a.state == b.state &&
         a.handing_over == b.handing_over && a.busy == b.busy && a.data == b.data &&
         a.was_last_prim == b.was_last_prim && a.name == b.name && boot_id == o.boot_id &&
         generation == o.generation && peer_generation_seen == o.peer_generation_seen &&
         peer_generation_known == o.peer_generation_known && peer_in_sync == o.peer_in_sync &&
         config_hash == o.config_hash && resources == o.resources;
}

PeerTable::PeerTable(std::size_t networks, std::chrono::milliseconds timeout)
    : timeout_(timeout), networks_(networks) {}

void PeerTable::SetModule(const std::string& module, const ConfigHash& local_hash,
                          PeerEvents* events) {
  auto [it, inserted] = modules_.try_emplace(module);
  ModuleRecord& rec = it->second;
  if (inserted) rec.heard.resize(networks_.size());
  if (!inserted && rec.local_hash == local_hash) return;
  rec.local_hash = local_hash;
  if (!rec.have_info) return;
  bool matches = rec.info.config_hash == local_hash;
  if (matches == rec.info.view.config_matches) return;
  rec.info.view.config_matches = matches;
  if (rec.info.view.visible) events->changed.emplace_back(module, rec.info);
}

void PeerTable::RemoveModule(const std::string& module) { modules_.erase(module); }

const PeerTable::ModuleRecord* PeerTable::module(const std::string& name) const {
  auto it = modules_.find(name);
  return it == modules_.end() ? nullptr : &it->second;
}

void PeerTable::OnHeartbeat(std::size_t network, const Heartbeat& hb, TimePoint now,
                            PeerEvents* events) {
  if (network >= networks_.size()) return;
  NetworkRecord& net = networks_[network];
  net.heard = now;
  ++net.frames;
  if (!net.up) {
    net.up = true;
    events->networks.emplace_back(network, true);
  }

  if (hb.module.empty()) return;  // node-level frame: liveness of the network only
  auto it = modules_.find(hb.module);
  if (it == modules_.end()) return;
  ModuleRecord& rec = it->second;
  rec.heard[network] = now;
  rec.last_heard = now;

  const bool newer =
      !rec.have_info || hb.boot_id != rec.info.boot_id || hb.sequence > rec.info.sequence;
  const bool was_visible = rec.info.view.visible;
  if (!newer) {
    // A late copy of an announcement already taken from another network:
    // it still proves the peer alive.
    if (!was_visible) {
      rec.info.view.visible = true;
      events->changed.emplace_back(hb.module, rec.info);
    }
    if (!rec.info.view.config_matches) events->config_mismatch = true;
    return;
  }

  PeerInfo next;
  next.view.visible = true;
  next.view.config_matches = hb.config_hash == rec.local_hash;
  next.view.state = hb.state;
  next.view.handing_over = hb.handing_over;
  next.view.busy = hb.busy;
  next.view.data = hb.data;
  next.view.was_last_prim = hb.was_last_prim;
  next.view.name = hb.sender;
  next.boot_id = hb.boot_id;
  next.sequence = hb.sequence;
  next.generation = hb.generation;
  next.peer_generation_seen = hb.peer_generation_seen;
  next.peer_generation_known = hb.peer_generation_known;
  next.peer_in_sync = hb.peer_in_sync;
  next.config_hash = hb.config_hash;
  next.resources = hb.resources;

  const bool changed = !rec.have_info || !rec.info.SameAnnouncement(next);
  rec.info = std::move(next);
  rec.have_info = true;
  if (!rec.info.view.config_matches) events->config_mismatch = true;
  if (changed) events->changed.emplace_back(hb.module, rec.info);
}

void PeerTable::Expire(TimePoint now, PeerEvents* events) {
  for (std::size_t i = 0; i < networks_.size(); ++i) {
    NetworkRecord& net = networks_[i];
    if (net.up && net.heard && *net.heard + timeout_ <= now) {
      net.up = false;
      events->networks.emplace_back(i, false);
    }
  }
  for (auto& [name, rec] : modules_) {
    if (rec.info.view.visible && rec.last_heard && *rec.last_heard + timeout_ <= now) {
      rec.info.view.visible = false;
      events->lost.push_back(name);
    }
  }
}

std::optional<PeerTable::TimePoint> PeerTable::NextDeadline() const {
  std::optional<TimePoint> next;
  auto consider = [&](const std::optional<TimePoint>& heard) {
    if (!heard) return;
    TimePoint deadline = *heard + timeout_;
    if (!next || deadline < *next) next = deadline;
  };
  for (const auto& net : networks_) {
    if (net.up) consider(net.heard);
  }
  for (const auto& [name, rec] : modules_) {
    if (rec.info.view.visible) consider(rec.last_heard);
  }
  return next;
}

}  // namespace hakit::cluster
