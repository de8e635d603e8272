#include "hakit/daemon/module_replication.h"

// clang-format off: Boost 1.74 Asio uses std::exchange without including <utility>
#include <utility>
// clang-format on

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "hakit/replication/hot_zones.h"
#include "hakit/replication/interceptor.h"
#include "hakit/replication/receiver.h"
#include "hakit/replication/sender.h"
#include "hakit/replication/sync.h"

namespace hakit::daemon {

using sdk::Status;
using namespace std::chrono_literals;
namespace repl = hakit::replication;


namespace {

// Notes the hot zones as changed in the record (buffered); returns how many
// files had some.
std::size_t NoteHotZones(const repl::HotZones& hot, repl::DirtyMap& record) {
  const auto ranges = hot.HotRanges();
  for (const auto& [path, list] : ranges) {
    for (const auto& [off, len] : list) record.Note(repl::OpKind::kWrite, path, "", off, len);
  }
  return ranges.size();
}

}  // namespace

ModuleReplication::ModuleReplication(ReplicationSettings settings)
    : settings_(std::move(settings)) {
  for (std::size_t i = 0; i < settings_.dirs.size(); ++i) {
    dirty_.push_back(std::make_unique<repl::DirtyMap>(settings_.zone_size));
  }
  hot_.resize(settings_.dirs.size());
  complete_.assign(settings_.dirs.size(), 0);
  OpenLogs();
}

void ModuleReplication::OpenLogs() {
  if (settings_.clean_marker.empty()) return;
  const std::filesystem::path dir = std::filesystem::path(settings_.clean_marker).parent_path();
  bool hot_lost = false;
  for (std::size_t i = 0; i < settings_.dirs.size(); ++i) {
    const std::string n = std::to_string(i);
    if (Status s = dirty_[i]->Persist((dir / ("record-" + n + ".log")).string()); !s.ok()) {
      Log(sdk::LogLevel::kError, settings_.dirs[i] + ": " + s.message());
    }
    const std::string hot_path = (dir / ("hot-" + n + ".log")).string();
    auto hot = repl::HotZones::Open(hot_path);
    if (!hot.ok()) {
      // What it said is lost: this copy may differ anywhere from its last
      // peer's (compared by checksums), and a new log starts.
      Log(sdk::LogLevel::kError, settings_.dirs[i] + ": " + hot.status().message() +
                                     ": this copy will be compared by checksums");
      hot_lost = true;
      std::error_code ec;
      std::filesystem::rename(hot_path, hot_path + ".damaged", ec);
      hot = repl::HotZones::Open(hot_path);
      if (!hot.ok()) {
        Log(sdk::LogLevel::kError, settings_.dirs[i] + ": " + hot.status().message());
        continue;
      }
    }
    hot_[i] = std::move(*hot);
    // Writes in flight at a crash: the record may not have noted them yet.
    if (const std::size_t files = NoteHotZones(*hot_[i], *dirty_[i]); files > 0) {
      dirty_[i]->Flush();
      Log(sdk::LogLevel::kWarning,
          settings_.dirs[i] + ": " + std::to_string(files) +
              " file(s) had writes in flight when this node stopped (hot zones): they will "
              "be synchronised with the peer");
    }
  }
  if (hot_lost) {
    std::error_code ec;
    std::filesystem::remove(settings_.clean_marker, ec);
  }
}

void ModuleReplication::WriteMarker(const std::string& what) {
  if (settings_.clean_marker.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(settings_.clean_marker).parent_path(),
                                      ec);
  const std::string tmp = settings_.clean_marker + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << what << "\n";
  }
  // Durable before anything it describes happens.
  if (int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::filesystem::rename(tmp, settings_.clean_marker, ec);
  if (ec) Log(sdk::LogLevel::kError, "writing " + settings_.clean_marker + ": " + ec.message());
}

void ModuleReplication::CoolHotZones(std::size_t i) {
  if (!hot_[i]) return;
  if (Status s = repl::CoolHotZones(*mounts_[i], *hot_[i], *dirty_[i]); !s.ok()) {
    Log(sdk::LogLevel::kError, "cooling the hot zones of " + settings_.dirs[i] + ": " +
                                   s.message() + " (they stay hot)");
  }
}

ModuleReplication::~ModuleReplication() { Leave(); }

void ModuleReplication::Log(sdk::LogLevel level, const std::string& message) const {
  if (settings_.log) settings_.log(level, "replication: " + message);
}

void ModuleReplication::CleanupStaleMounts() {
  for (const auto& dir : settings_.dirs) {
    if (Status s = repl::Interceptor::CleanupStaleMount(dir); !s.ok()) {
      Log(sdk::LogLevel::kWarning, "cleaning a stale mount on " + dir + ": " + s.message());
    }
  }
}

void ModuleReplication::SetGeneration(std::uint64_t generation) {
  generation_ = generation;
  std::lock_guard lock(mu_);
  if (sender_) sender_->SetGeneration(generation, true);
  if (receiver_) receiver_->SetGeneration(generation, replica_clean_);
}

Status ModuleReplication::BecomePrimary(bool peer_expected) {
  Leave();  // a read-only mount, a receiver, or a primary left by a restart
  leaving_ = false;
  repl::SenderOptions o;
  o.module = settings_.module;
  o.node = settings_.node;
  o.config_hash = settings_.config_hash;
  o.key = settings_.key;
  o.generation = generation_;
  o.peer_address = settings_.peer_address;
  o.peer_port = settings_.port;
  o.mode =
      settings_.sync ? repl::SenderOptions::Mode::kApplied : repl::SenderOptions::Mode::kReceived;
  o.ack_timeout = settings_.timeout;
  auto manifests = std::make_unique<repl::ManifestCollector>();
  o.on_manifest = [m = manifests.get()](repl::ManifestChunk&& chunk) { m->Push(std::move(chunk)); };
  o.connect_timeout = std::clamp<std::chrono::milliseconds>(settings_.timeout, 200ms, 2s);
  o.on_peer_lost = [this](const repl::PeerLost& lost) {
    Log(sdk::LogLevel::kError, "peer lost: " + lost.reason + " (" +
                                   std::to_string(lost.unapplied.size()) +
                                   " operation(s) not known to be applied there)");
    // Not known to be applied there: the secondary may lack them.
    for (const auto& u : lost.unapplied) {
      if (u.dir_index < dirty_.size()) dirty_[u.dir_index]->Note(u.op);
    }
    for (auto& d : dirty_) d->Flush();
    if (settings_.on_peer_lost) settings_.on_peer_lost(lost.reason, lost.unapplied.size());
  };
  // Sent while not replicating: the secondary misses it.
  o.on_unreplicated = [this](std::uint8_t dir, const repl::Operation& op) {
    if (dir < dirty_.size()) dirty_[dir]->Note(op);
  };
  auto sender = std::make_unique<repl::ReplicationSender>(o);
  // A copy this node held complete as SECOND is the data the peer held when
  // they parted: what changes from now on is what the peer will miss.
  if (was_second_) {
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
      if (complete_[i]) {
        dirty_[i]->Reset(generation_);
      } else {
        dirty_[i]->Invalidate();
      }
    }
    was_second_ = false;
  }
  // Where this copy may differ from the peer's (it crashed as primary and
  // was not synchronised since) is where the peer must be synchronised.
  for (std::size_t i = 0; i < hot_.size(); ++i) {
    if (hot_[i] && NoteHotZones(*hot_[i], *dirty_[i]) > 0 && dirty_[i]->Flush().ok()) {
      hot_[i]->Clear();
    }
  }
  WriteMarker("primary");
  // The gates start dropping: nothing reaches the peer before the pair is
  // known to hold the same data (AfterConnect).
  std::vector<std::unique_ptr<repl::SyncGate>> gates;
  std::vector<std::unique_ptr<repl::Interceptor>> mounts;
  for (std::size_t i = 0; i < settings_.dirs.size(); ++i) {
    gates.push_back(std::make_unique<repl::SyncGate>(*sender, static_cast<std::uint8_t>(i)));
    repl::InterceptorOptions io;
    io.dir = settings_.dirs[i];
    io.mode = repl::InterceptorOptions::Mode::kPrimary;
    io.sink = gates.back().get();
    io.xattrs = settings_.xattrs;
    auto m = repl::Interceptor::Mount(io);
    if (!m.ok()) {
      for (auto& done : mounts) done->Unmount();
      return m.status().WithContext("mounting replicated dir " + io.dir);
    }
    gates.back()->set_root_fd((*m)->real_dir_fd());
    if (i < settings_.filters.size()) gates.back()->set_filter(&settings_.filters[i]);
    gates.back()->set_dirty(dirty_[i].get());
    gates.back()->set_hot(hot_[i].get());
    mounts.push_back(std::move(*m));
  }
  {
    std::lock_guard lock(mu_);
    sender_ = std::move(sender);
    manifests_ = std::move(manifests);
    gates_ = std::move(gates);
    mounts_ = std::move(mounts);
    role_ = Role::kPrimary;
    unreplicated_at_pairing_ = 0;
    sync_state_ = "none";
    progress_.reset();
  }
  cooler_ = std::thread([this] {
    std::unique_lock lock(cooler_mu_);
    while (!cooler_cv_.wait_for(lock, 1s, [this] { return leaving_.load(); })) {
      lock.unlock();
      for (std::size_t i = 0; i < hot_.size(); ++i) CoolHotZones(i);
      lock.lock();
    }
  });
  Log(sdk::LogLevel::kInfo,
      "primary: " + std::to_string(settings_.dirs.size()) + " replicated dir(s) mounted");
  if (!peer_expected) {
    Log(sdk::LogLevel::kWarning, "no peer to replicate to: running alone");
    return Status::Ok();
  }
  // The peer is (becoming) SECOND: its receiver starts with its steps. A
  // peer that does not come (it may wait for the operator) only delays this
  // start by the budget; the sender connects later when the pair forms
  // (PeerIsSecond).
  if (Status s = ConnectFor(std::clamp<std::chrono::milliseconds>(settings_.timeout, 500ms, 2s));
      !s.ok()) {
    Log(sdk::LogLevel::kWarning, "peer " + settings_.peer_address + ":" +
                                     std::to_string(settings_.port) +
                                     " not reachable, running alone: " + s.message());
  }
  return Status::Ok();
}

Status ModuleReplication::ConnectFor(std::chrono::milliseconds budget) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  Status last = Status::Failed("not attempted");
  while (!leaving_) {
    repl::ReplicationSender* sender = nullptr;
    {
      std::lock_guard lock(mu_);
      if (role_ != Role::kPrimary || !sender_) return Status::Failed("not primary");
      sender = sender_.get();
    }
    // The sender stays alive: only Leave() destroys it, after joining the
    // connector and on the thread that calls ConnectFor synchronously.
    // Until the pair is known to hold the same data, changes are dropped
    // rather than sent to a copy that may lack what they apply to.
    // A synchronisation of a lost session ends at its next step (the sender
    // is not replicating); it must be gone before the gates start anew.
    if (syncer_.joinable()) syncer_.join();
    for (std::size_t i = 0; i < mounts_.size(); ++i) {
      mounts_[i]->RunExclusive([&] { gates_[i]->BeginSync(); });
    }
    // From the session's start (the sender counts it) until AfterConnect()
    // says whether a synchronisation runs, `hakit state` must not show the
    // last session's outcome as this one's.
    std::string before;
    {
      std::lock_guard lock(mu_);
      before = sync_state_;
      sync_state_ = "pairing";
    }
    last = sender->Connect();
    if (!last.ok()) {
      std::lock_guard lock(mu_);
      sync_state_ = before;
    }
    if (last.ok()) {
      Log(sdk::LogLevel::kInfo, "replicating to " + settings_.peer_address + ":" +
                                    std::to_string(settings_.port) +
                                    (settings_.sync ? " (synchronous)" : " (async=second)"));
      AfterConnect();
      return last;
    }
    if (std::chrono::steady_clock::now() + 100ms >= deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

void ModuleReplication::AfterConnect() {
  auto st = sender_->Stats();
  const bool same_data = st.peer_generation == generation_ && st.peer_consistent &&
                         !st.peer_suspect && st.ops_unreplicated == unreplicated_at_pairing_;
  std::vector<std::size_t> behind;
  bool targeted = st.peer_consistent;
  for (std::size_t i = 0; i < mounts_.size(); ++i) {
    mounts_[i]->RunExclusive([&] {
      if (same_data && gates_[i]->dropped() == 0) {
        gates_[i]->Pass();
        dirty_[i]->Reset(generation_);
      } else {
        behind.push_back(i);
        // The record says what the peer lacks only if it holds the data it
        // started from, and did not crash since.
        targeted = targeted && dirty_[i]->valid() &&
                   dirty_[i]->base_generation() == st.peer_generation;
      }
    });
  }
  // A peer that crashed as primary names zones it may hold differently:
  // they travel even when nothing changed here.
  if (targeted && !behind.empty() && !st.peer_suspect) {
    // The record says nothing changed since the secondary last held our data
    // (it only missed a generation change): it holds it still.
    std::vector<std::size_t> still;
    for (std::size_t i : behind) {
      mounts_[i]->RunExclusive([&] {
        if (dirty_[i]->entries() == 0) {
          gates_[i]->Pass();
          dirty_[i]->Reset(generation_);
        } else {
          still.push_back(i);
        }
      });
    }
    if (still.size() < behind.size()) {
      Log(sdk::LogLevel::kInfo, std::to_string(behind.size() - still.size()) +
                                    " dir(s) unchanged since the secondary last held them: "
                                    "nothing to send");
    }
    behind = std::move(still);
  }
  if (behind.empty()) {
    std::lock_guard lock(mu_);
    sync_state_ = "none";
    unreplicated_at_pairing_ = st.ops_unreplicated;
    return;
  }
  std::string why = st.peer_suspect ? "the peer had writes in flight when it stopped as primary"
                    : st.peer_generation != generation_
                        ? "the peer's data generation " + std::to_string(st.peer_generation) +
                              " is not ours (" + std::to_string(generation_.load()) + ")"
                        : "changes were made while not replicating";
  Log(sdk::LogLevel::kWarning,
      "the secondary may lack changes (" + why + "): synchronisation of " +
          std::to_string(behind.size()) + " dir(s) " +
          (targeted ? "from the record of what changed"
                    : "by checksums of both trees (no usable record of what changed)") +
          ", while the application runs");
  syncing_ = true;
  {
    std::lock_guard lock(mu_);
    sync_state_ = "running";
    progress_ = std::make_shared<repl::SyncProgress>();
  }
  syncer_ = std::thread([this, behind, targeted]() { RunSync(behind, targeted); });
}

void ModuleReplication::RunSync(std::vector<std::size_t> dirs, bool targeted) {
  std::shared_ptr<repl::SyncProgress> progress;
  {
    std::lock_guard lock(mu_);
    progress = progress_;
  }
  const auto started = std::chrono::steady_clock::now();
  const std::uint64_t session = sender_->Stats().sessions;
  if (settings_.on_sync) {
    settings_.on_sync("sync_start", {{"dirs", dirs.size()},
                                     {"peer", settings_.peer_address},
                                     {"method", targeted ? "record" : "checksums"}});
  }
  // Up to nbrei dirs are synchronised at once, each walk a stream of its own
  // over the one connection; the first failure stops the others at their
  // next step.
  std::mutex result_mu;
  Status result = Status::Ok();
  std::atomic<bool> failed{false};
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t k = next++; k < dirs.size() && !failed; k = next++) {
      const std::size_t i = dirs[k];
      repl::TreeSyncOptions o;
      o.mount = mounts_[i].get();
      o.gate = gates_[i].get();
      o.sender = sender_.get();
      o.manifests = manifests_.get();
      o.dir_index = static_cast<std::uint8_t>(i);
      if (i < settings_.filters.size()) o.filter = &settings_.filters[i];
      if (targeted) o.dirty = dirty_[i].get();
      o.record = dirty_[i].get();
      o.zone_size = settings_.zone_size;
      o.generation = generation_;
      o.stop = [this, session, &failed] {
        return failed || leaving_ || sender_->Stats().sessions != session;
      };
      o.log = [this, dir = settings_.dirs[i]](const std::string& m) {
        Log(sdk::LogLevel::kInfo, "synchronising " + dir + ": " + m);
      };
      o.log("started");
      if (Status s = repl::RunTreeSync(o, progress.get()); !s.ok()) {
        std::lock_guard lock(result_mu);
        if (!failed) result = s.WithContext("synchronising " + settings_.dirs[i]);
        failed = true;
      } else {
        o.log("done");
      }
    }
  };
  const std::size_t streams =
      std::clamp<std::size_t>(static_cast<std::size_t>(settings_.streams), 1, dirs.size());
  std::vector<std::thread> pool;
  for (std::size_t n = 1; n < streams; ++n) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  nlohmann::json details = {{"method", targeted ? "record" : "checksums"},
                            {"streams", streams},
                            {"duration_ms", ms},
                            {"entries", progress->entries.load()},
                            {"bytes_compared", progress->bytes_compared.load()},
                            {"bytes_sent", progress->bytes_sent.load()},
                            {"passes", progress->passes.load()}};
  {
    std::lock_guard lock(mu_);
    if (result.ok()) {
      unreplicated_at_pairing_ = sender_->Stats().ops_unreplicated;
      sync_state_ = "done";
    } else {
      sync_state_ = "failed: " + result.message();
    }
  }
  if (result.ok()) {
    Log(sdk::LogLevel::kInfo, "full synchronisation done in " + std::to_string(ms) + " ms: " +
                                  std::to_string(progress->bytes_sent.load()) + " of " +
                                  std::to_string(progress->bytes_compared.load()) +
                                  " bytes compared were sent");
  } else {
    details["error"] = result.message();
    Log(sdk::LogLevel::kError, "full synchronisation failed: " + result.message() +
                                   " (the secondary stays incomplete; it is retried when the "
                                   "pair forms again)");
  }
  if (settings_.on_sync) settings_.on_sync(result.ok() ? "sync_end" : "sync_failed", details);
  syncing_ = false;
}

bool ModuleReplication::SecondHoldsEverything() const {
  std::lock_guard lock(mu_);
  if (role_ != Role::kPrimary || !sender_ || syncing_) return false;
  if (sender_->state() != repl::SenderState::kReplicating) return false;
  if (sender_->Stats().ops_unreplicated != unreplicated_at_pairing_) return false;
  for (const auto& g : gates_) {
    if (!g->passing()) return false;
  }
  return true;
}

void ModuleReplication::PeerIsSecond() {
  std::lock_guard lock(mu_);
  if (role_ != Role::kPrimary || !sender_ || leaving_) return;
  auto state = sender_->state();
  if (state != repl::SenderState::kIdle && state != repl::SenderState::kLost) return;
  if (!connector_done_) return;
  if (connector_.joinable()) connector_.join();  // finished already
  connector_done_ = false;
  connector_ = std::thread([this]() {
    if (Status s = ConnectFor(std::clamp<std::chrono::milliseconds>(settings_.timeout, 1s, 10s));
        !s.ok()) {
      Log(sdk::LogLevel::kWarning, "cannot reach the secondary, running alone: " + s.message());
    }
    connector_done_ = true;
  });
}

Status ModuleReplication::BecomeSecond() {
  Leave();
  leaving_ = false;
  // This node's data follows another primary from now on: its own record of
  // what a secondary missed no longer means anything.
  for (auto& d : dirty_) d->Invalidate();
  // Did the last session here end cleanly as SECOND, or as primary (with its
  // hot-zone log)? The marker goes, so that a crash from now on is seen at
  // the next start.
  if (!settings_.clean_marker.empty()) {
    std::string what;
    std::ifstream(settings_.clean_marker) >> what;
    std::error_code ec;
    std::filesystem::remove(settings_.clean_marker, ec);
    replica_clean_ = what == "clean" || what == "primary";
  }
  if (full_sync_requested_.exchange(false)) {
    replica_clean_ = false;
    Log(sdk::LogLevel::kInfo, "full synchronisation asked by the operator: this copy is "
                              "announced incomplete, the primary compares both trees");
  }
  auto suspect = std::make_shared<std::vector<repl::HotZones::Ranges>>();
  bool any_suspect = false;
  for (std::size_t i = 0; i < settings_.dirs.size(); ++i) {
    suspect->push_back(hot_[i] ? hot_[i]->HotRanges() : repl::HotZones::Ranges{});
    any_suspect = any_suspect || !suspect->back().empty();
    complete_[i] = replica_clean_ && suspect->back().empty();
  }
  if (any_suspect && replica_clean_) {
    Log(sdk::LogLevel::kWarning,
        "this copy had writes in flight when it stopped as primary: the primary will send "
        "those zones again");
  }
  suspect_pending_ = any_suspect;
  was_second_ = true;
  std::vector<std::unique_ptr<repl::Interceptor>> mounts;
  std::vector<int> fds;
  for (const auto& dir : settings_.dirs) {
    repl::InterceptorOptions io;
    io.dir = dir;
    io.mode = repl::InterceptorOptions::Mode::kReadOnly;
    io.xattrs = settings_.xattrs;
    auto m = repl::Interceptor::Mount(io);
    if (!m.ok()) {
      for (auto& done : mounts) done->Unmount();
      return m.status().WithContext("mounting replicated dir " + dir + " read-only");
    }
    fds.push_back((*m)->real_dir_fd());
    mounts.push_back(std::move(*m));
  }
  repl::ReceiverOptions o;
  o.listen_address = settings_.local_address;
  o.port = settings_.port;
  o.module = settings_.module;
  o.node = settings_.node;
  o.config_hash = settings_.config_hash;
  o.key = settings_.key;
  o.generation = generation_;
  o.consistent = replica_clean_;
  o.root_fds = fds;
  o.has_suspect = [this] { return suspect_pending_.load(); };
  o.suspect = [suspect](std::uint8_t dir, const std::string& path) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> none;
    if (dir >= suspect->size()) return none;
    auto it = (*suspect)[dir].find(path);
    return it == (*suspect)[dir].end() ? none : it->second;
  };
  o.idle_timeout = std::max<std::chrono::milliseconds>(settings_.timeout, 1s);
  o.on_session_start = [this](const std::string& peer, const repl::Hello& hello) {
    Log(sdk::LogLevel::kInfo, "primary " + hello.node + " (" + peer + ") connected");
  };
  o.on_session_end = [this](const std::string& reason) {
    Log(sdk::LogLevel::kWarning, "primary's session ended: " + reason);
  };
  // What a synchronisation replaces or removes here is listed (a copy that
  // diverged, after a split brain, keeps at least the names of what it
  // loses). The applier thread runs all three callbacks.
  auto replaced = std::make_shared<std::map<std::uint8_t, std::set<std::string>>>();
  o.on_sync_begin = [this, replaced](std::uint8_t dir) {
    if (dir < complete_.size()) complete_[dir] = 0;
    (*replaced)[dir].clear();
    Log(sdk::LogLevel::kWarning, "the primary synchronises " + settings_.dirs.at(dir) +
                                     ": this copy is incomplete until it ends");
  };
  o.before_apply = [replaced](std::uint64_t, const repl::Operation& op) {
    if (replaced->empty()) return;
    switch (op.kind) {
      case repl::OpKind::kWrite:
      case repl::OpKind::kCreate:
      case repl::OpKind::kTruncate:
      case repl::OpKind::kRemoveTree:
      case repl::OpKind::kSymlink:
      case repl::OpKind::kMknod:
      case repl::OpKind::kMkdir:
      case repl::OpKind::kUnlink:
      case repl::OpKind::kRmdir:
        for (auto& [dir, paths] : *replaced) {
          if (paths.size() < 100000) paths.insert(op.path);
        }
        break;
      default:
        break;
    }
  };
  o.on_sync_end = [this, replaced](std::uint8_t dir, std::uint64_t generation) {
    replica_clean_ = true;
    if (dir < complete_.size()) complete_[dir] = 1;
    // Identical to the primary's now: nothing here is suspect any more.
    if (dir < hot_.size() && hot_[dir]) hot_[dir]->Clear();
    bool pending = false;
    for (const auto& h : hot_) pending = pending || (h && !h->empty());
    suspect_pending_ = pending;
    std::set<std::string> paths = std::move((*replaced)[dir]);
    replaced->erase(dir);
    std::string note;
    if (!paths.empty() && !settings_.clean_marker.empty()) {
      // Beside the marker: var/modules/MODULE/synchronised-<time>-<dir>.txt
      auto when = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
      std::filesystem::path list = std::filesystem::path(settings_.clean_marker).parent_path() /
                                   ("synchronised-" + std::to_string(when) + "-" +
                                    std::to_string(dir) + ".txt");
      std::ofstream out(list);
      for (const auto& p : paths) out << p << "\n";
      note = ": " + std::to_string(paths.size()) +
             " entries of this copy were replaced, created or removed, listed in " + list.string();
      if (settings_.on_sync) {
        settings_.on_sync("sync_received", {{"dir", settings_.dirs.at(dir)},
                                            {"entries", paths.size()},
                                            {"list", list.string()}});
      }
    }
    Log(sdk::LogLevel::kInfo, "synchronisation of " + settings_.dirs.at(dir) +
                                  " complete (primary's generation " + std::to_string(generation) +
                                  ")" + note);
  };
  o.on_apply_failed = [this](const Status& s) {
    std::fill(complete_.begin(), complete_.end(), 0);
    Log(sdk::LogLevel::kError, "applying the primary's change failed: " + s.message() +
                                   " (this copy is no longer identical)");
  };
  auto receiver = std::make_unique<repl::ReplicationReceiver>(o);
  if (Status s = receiver->Start(); !s.ok()) {
    for (auto& done : mounts) done->Unmount();
    return s.WithContext("replication receiver on " + settings_.local_address + ":" +
                         std::to_string(settings_.port));
  }
  {
    std::lock_guard lock(mu_);
    mounts_ = std::move(mounts);
    receiver_ = std::move(receiver);
    role_ = Role::kSecond;
  }
  Log(sdk::LogLevel::kInfo, "secondary: " + std::to_string(settings_.dirs.size()) +
                                " replicated dir(s) mounted read-only, receiving on " +
                                settings_.local_address + ":" + std::to_string(settings_.port));
  return Status::Ok();
}

void ModuleReplication::Leave() {
  leaving_ = true;
  std::thread connector;
  std::unique_ptr<repl::ReplicationSender> sender;
  std::unique_ptr<repl::ReplicationReceiver> receiver;
  std::vector<std::unique_ptr<repl::Interceptor>> mounts;
  std::vector<std::unique_ptr<repl::SyncGate>> gates;
  std::unique_ptr<repl::ManifestCollector> manifests;
  Role role;
  {
    std::lock_guard lock(mu_);
    connector = std::move(connector_);
    role = role_;
    role_ = Role::kNone;
  }
  // The connector and the synchronisation use the sender and the mounts:
  // they end (bounded by connect_timeout and one step) before those go.
  if (connector.joinable()) connector.join();
  connector_done_ = true;
  {
    std::lock_guard lock(cooler_mu_);
    cooler_cv_.notify_all();
  }
  if (cooler_.joinable()) cooler_.join();
  if (syncer_.joinable()) syncer_.join();
  syncing_ = false;
  {
    std::lock_guard lock(mu_);
    sender = std::move(sender_);
    receiver = std::move(receiver_);
    mounts = std::move(mounts_);
    gates = std::move(gates_);
    manifests = std::move(manifests_);
  }
  if (role == Role::kNone && mounts.empty() && !sender && !receiver) return;
  // Primary: the application is down; the mounts go first (requests being
  // served finish), then the sender flushes and says BYE.
  // Secondary: the receiver applies what it received, then the mounts go
  // (their real_dir_fd()s stay valid until destroyed).
  if (receiver) {
    receiver->Stop();
    // Everything received is applied: flushed, this copy survives a crash of
    // this node as it is now, which the marker says to the next primary.
    if (receiver->Stats().state != repl::ReceiverState::kFailed &&
        !settings_.clean_marker.empty()) {
      for (auto& m : mounts) ::syncfs(m->real_dir_fd());
      WriteMarker("clean");
    }
  }
  for (auto& m : mounts) {
    if (Status s = m->Unmount(); !s.ok()) {
      Log(sdk::LogLevel::kError, "unmounting " + m->dir() + ": " + s.message());
    }
  }
  if (sender) sender->Stop();
  if (role == Role::kPrimary) {
    // Stopped cleanly: every change is applied, flushed here and sent or
    // noted; nothing stays hot.
    for (std::size_t i = 0; i < mounts.size() && i < hot_.size(); ++i) {
      if (!hot_[i]) continue;
      if (Status s = repl::CoolHotZones(*mounts[i], *hot_[i], *dirty_[i]); !s.ok()) {
        Log(sdk::LogLevel::kError, "cooling the hot zones of " + settings_.dirs[i] + ": " +
                                       s.message() + " (they stay hot)");
      }
    }
  }
  mounts.clear();
  gates.clear();
  sender.reset();
  manifests.reset();
  receiver.reset();
  Log(sdk::LogLevel::kInfo, "replicated dir(s) unmounted");
}

void ModuleReplication::RequestFullSync() {
  full_sync_requested_ = true;
  replica_clean_ = false;
  if (!settings_.clean_marker.empty()) {
    std::error_code ec;
    std::filesystem::remove(settings_.clean_marker, ec);
  }
}

nlohmann::json ModuleReplication::StatusJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json j = {{"dirs", settings_.dirs},
                      {"peer", settings_.peer_address + ":" + std::to_string(settings_.port)},
                      {"async", settings_.sync ? "none" : "second"}};
  // Extents with writes in flight, or not yet known to be on both disks:
  // what a crash of this node now would make the peer send again.
  std::size_t hot = 0;
  for (const auto& h : hot_) hot += h ? h->size() : 0;
  j["hot_extents"] = hot;
  switch (role_) {
    case Role::kNone:
      j["role"] = "none";
      break;
    case Role::kPrimary: {
      j["role"] = "primary";
      if (sender_) {
        auto s = sender_->Stats();
        j["state"] = repl::SenderStateName(s.state);
        j["ops_submitted"] = s.ops_submitted;
        j["ops_unreplicated"] = s.ops_unreplicated;
        j["in_flight_ops"] = s.in_flight_ops;
        j["acked_received"] = s.acked_received;
        j["acked_applied"] = s.acked_applied;
        j["sessions"] = s.sessions;
        j["peers_lost"] = s.peers_lost;
        j["last_error"] = s.last_error;
      }
      j["sync"] = {{"state", sync_state_}};
      if (progress_) {
        j["sync"]["passes"] = progress_->passes.load();
        j["sync"]["entries"] = progress_->entries.load();
        j["sync"]["bytes_compared"] = progress_->bytes_compared.load();
        j["sync"]["bytes_sent"] = progress_->bytes_sent.load();
        // Every dir's pass under way: done of total, the rate, the time left.
        j["sync"]["method"] = progress_->by_record ? "record" : "checksums";
        j["sync"]["bytes_total"] = progress_->bytes_total.load();
        j["sync"]["bytes_done"] = progress_->bytes_done.load();
        j["sync"]["rate_bps"] = static_cast<std::uint64_t>(progress_->rate());
        if (auto eta = progress_->eta_seconds(); eta && sync_state_ == "running") {
          j["sync"]["eta_s"] = *eta;
        }
      }
      break;
    }
    case Role::kSecond: {
      j["role"] = "secondary";
      if (receiver_) {
        auto s = receiver_->Stats();
        j["state"] = repl::ReceiverStateName(s.state);
        j["ops_received"] = s.ops_received;
        j["ops_applied"] = s.ops_applied;
        j["backlog_ops"] = s.backlog_ops;
        j["last_error"] = s.last_error;
      }
      break;
    }
  }
  return j;
}

}  // namespace hakit::daemon
