#include "hakit/cluster/heartbeat_service.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <exception>
#include <set>
#include <utility>

#include "hakit/cluster/heartbeat_key.h"
#include "hakit/common/log.h"

namespace hakit::cluster {

namespace asio = boost::asio;
using asio::ip::udp;
using sdk::Status;

namespace {

using Clock = PeerTable::Clock;

// Big enough for any frame we accept (kMaxFrameSize) plus slack, so that an
// oversized datagram arrives whole and is refused by its length rather than
// silently cut by the kernel into something that looks merely truncated.
constexpr std::size_t kReceiveBuffer = 2048;

std::string EndpointText(const udp::endpoint& ep) {
  std::string a = ep.address().to_string();
  if (ep.address().is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(ep.port());
}

std::int64_t AgeMs(const std::optional<Clock::time_point>& t, Clock::time_point now) {
  if (!t) return -1;
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - *t).count();
}

std::string ShortHash(const ConfigHash& h) {
  return HexEncode(std::span<const std::uint8_t>(h.data(), 8));
}

}  // namespace

Status HeartbeatConfig::Validate() const {
  auto name_ok = [](const std::string& n) { return !n.empty() && n.size() <= 255; };
  if (!name_ok(local_name))
    return Status::InvalidArgument("heartbeat: local node name must be 1..255 bytes");
  if (!name_ok(peer_name))
    return Status::InvalidArgument("heartbeat: peer node name must be 1..255 bytes");
  if (local_name == peer_name) {
    return Status::InvalidArgument("heartbeat: local and peer node are both named '" + local_name +
                                   "'");
  }
  if (networks.empty()) return Status::InvalidArgument("heartbeat: no network configured");
  std::set<std::string> lans;
  for (const auto& n : networks) {
    if (n.lan.empty()) return Status::InvalidArgument("heartbeat: a network has no name");
    if (!lans.insert(n.lan).second) {
      return Status::InvalidArgument("heartbeat: network '" + n.lan + "' is configured twice");
    }
    if (n.port == 0) return Status::InvalidArgument("heartbeat lan '" + n.lan + "': port is 0");
    boost::system::error_code ec1, ec2;
    auto local = asio::ip::make_address(n.local_address, ec1);
    auto peer = asio::ip::make_address(n.peer_address, ec2);
    if (ec1) {
      return Status::InvalidArgument("heartbeat lan '" + n.lan + "': local address '" +
                                     n.local_address + "' is not an IP address");
    }
    if (ec2) {
      return Status::InvalidArgument("heartbeat lan '" + n.lan + "': peer address '" +
                                     n.peer_address + "' is not an IP address");
    }
    if (local.is_v4() != peer.is_v4()) {
      return Status::InvalidArgument("heartbeat lan '" + n.lan + "': local address " +
                                     n.local_address + " and peer address " + n.peer_address +
                                     " are not of the same IP family");
    }
  }
  if (pulse.count() <= 0) return Status::InvalidArgument("heartbeat: pulse must be positive");
  if (timeout <= pulse) {
    return Status::InvalidArgument("heartbeat: timeout (" + std::to_string(timeout.count()) +
                                   " ms) must be longer than pulse (" +
                                   std::to_string(pulse.count()) + " ms)");
  }
  if (key.size() < kMinClusterKeySize) {
    return Status::InvalidArgument("heartbeat: cluster key is " + std::to_string(key.size()) +
                                   " bytes, at least " + std::to_string(kMinClusterKeySize) +
                                   " needed");
  }
  if (reject_report_interval.count() < 0) {
    return Status::InvalidArgument("heartbeat: reject_report_interval is negative");
  }
  return Status::Ok();
}

class HeartbeatService::Impl {
 public:
  Impl(asio::io_context& io, HeartbeatConfig config, HeartbeatListener* listener, Logger* logger)
      : io_(io),
        config_(std::move(config)),
        listener_(listener),
        logger_(logger),
        key_(config_.key),
        pulse_timer_(io),
        watchdog_(io),
        table_(config_.networks.size(), config_.timeout),
        guard_(config_.networks.size()) {
    // A fresh random boot id per process tells the peer we restarted, so our
    // sequence may start over without looking like a replay.
    while (boot_id_ == 0) {
      if (RAND_bytes(reinterpret_cast<unsigned char*>(&boot_id_), sizeof boot_id_) != 1) {
        boot_id_ = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()) | 1;
      }
    }
    for (std::size_t i = 0; i < config_.networks.size(); ++i) {
      nets_.push_back(std::make_unique<Net>(io, config_.networks[i], i));
    }
  }

  ~Impl() {
    Stop();
    // The key protects the whole cluster; do not leave it in freed memory.
    if (!config_.key.empty()) OPENSSL_cleanse(config_.key.data(), config_.key.size());
  }

  Status Start() {
    if (started_ || !*alive_) {
      return Status::InvalidArgument("heartbeat service already started or stopped");
    }
    Status s = config_.Validate();
    if (!s.ok()) return s;
    for (auto& n : nets_) {
      auto local = asio::ip::make_address(n->cfg.local_address);
      n->peer = udp::endpoint(asio::ip::make_address(n->cfg.peer_address), n->cfg.port);
      udp::endpoint ep(local, n->cfg.port);
      boost::system::error_code ec;
      n->socket.open(ep.protocol(), ec);
      if (!ec) n->socket.bind(ep, ec);
      if (ec) {
        for (auto& m : nets_) {
          boost::system::error_code ignored;
          m->socket.close(ignored);
        }
        return Status::IoError("heartbeat lan '" + n->cfg.lan + "': cannot bind UDP " +
                               EndpointText(ep) + ": " + ec.message() +
                               " (is the address configured on this node? is another hakitd "
                               "running?)");
      }
    }
    started_ = true;
    for (auto& n : nets_) StartReceive(*n);
    SendAll();
    SchedulePulse();
    Log(LogLevel::kInfo, "heartbeat started: " + config_.local_name + " -> " + config_.peer_name +
                             " on " + std::to_string(nets_.size()) + " network(s), pulse " +
                             std::to_string(config_.pulse.count()) + " ms, timeout " +
                             std::to_string(config_.timeout.count()) + " ms, key id " +
                             key_.IdHex());
    return Status::Ok();
  }

  void Stop() {
    if (!*alive_) return;
    *alive_ = false;
    boost::system::error_code ignored;
    for (auto& n : nets_) {
      n->socket.close(ignored);
      n->retry.cancel();
    }
    pulse_timer_.cancel();
    watchdog_.cancel();
    if (started_) Log(LogLevel::kInfo, "heartbeat stopped");
  }

  Status SetLocal(const std::string& module, const LocalInfo& info) {
    if (module.empty()) return Status::InvalidArgument("heartbeat: empty module name");
    // Encode once now so that a module whose frame cannot be built is refused
    // here, where the daemon can report it, rather than dropped at each pulse.
    auto trial = Encode(MakeFrame(module, info), key_);
    if (!trial.ok()) return trial.status();

    PeerEvents ev;
    table_.SetModule(module, info.config_hash, &ev);
    if (!ev.empty()) {
      // Posted, not called: the daemon is inside SetLocal and should not be
      // re-entered from it.
      asio::post(io_, [this, alive = alive_, ev = std::move(ev)] {
        if (*alive) Guarded("dispatch", [&] { Dispatch(ev); });
      });
    }
    auto [it, inserted] = locals_.try_emplace(module);
    bool changed = inserted || !(it->second.info == info);
    it->second.info = info;
    if (changed && started_ && *alive_) SendModule(module, it->second);
    return Status::Ok();
  }

  void RemoveModule(const std::string& module) {
    locals_.erase(module);
    table_.RemoveModule(module);
  }

  const PeerInfo* Peer(const std::string& module) const {
    const auto* rec = table_.module(module);
    if (!rec || !rec->have_info) return nullptr;
    return &rec->info;
  }

  HeartbeatSnapshot Snapshot() const {
    auto now = Clock::now();
    HeartbeatSnapshot snap;
    snap.local_name = config_.local_name;
    snap.peer_name = config_.peer_name;
    snap.boot_id = boot_id_;
    snap.sequence = sequence_;
    snap.pulse = config_.pulse;
    snap.timeout = config_.timeout;
    for (std::size_t i = 0; i < nets_.size(); ++i) {
      const Net& n = *nets_[i];
      const auto& rec = table_.networks()[i];
      HeartbeatSnapshot::Network s;
      s.lan = n.cfg.lan;
      s.local_address = n.cfg.local_address;
      s.peer_address = n.cfg.peer_address;
      s.port = n.cfg.port;
      s.up = rec.up;
      s.last_heard_age_ms = AgeMs(rec.heard, now);
      s.frames_sent = n.sent;
      s.frames_received = rec.frames;
      s.frames_rejected = n.rejected;
      s.send_error = n.send_error;
      s.muted = n.muted;
      snap.networks.push_back(std::move(s));
    }
    for (const auto& [name, local] : locals_) {
      HeartbeatSnapshot::Module m;
      m.module = name;
      m.local = local.info;
      m.rejects = local.rejects;
      if (const auto* rec = table_.module(name)) {
        m.peer_known = rec->have_info;
        m.peer_visible = rec->info.view.visible;
        m.peer_state = rec->info.view.state;
        m.peer_sequence = rec->info.sequence;
        m.peer_generation = rec->info.generation;
        m.config_matches = !rec->have_info || rec->info.view.config_matches;
        m.last_heard_age_ms = AgeMs(rec->last_heard, now);
        for (const auto& h : rec->heard) m.network_age_ms.push_back(AgeMs(h, now));
      }
      snap.modules.push_back(std::move(m));
    }
    snap.rejects_by_reason = rejects_by_reason_;
    return snap;
  }

  void MuteNetworkForTest(const std::string& lan, bool muted) {
    for (auto& n : nets_) {
      if (n->cfg.lan == lan) n->muted = muted;
    }
  }

  std::uint64_t boot_id() const { return boot_id_; }

 private:
  struct Net {
    Net(asio::io_context& io, HeartbeatNetwork c, std::size_t i)
        : cfg(std::move(c)), index(i), socket(io), retry(io) {}
    HeartbeatNetwork cfg;
    std::size_t index;
    udp::socket socket;
    asio::steady_timer retry;  // re-arms the receive after an error
    udp::endpoint peer;
    udp::endpoint from;
    std::array<std::uint8_t, kReceiveBuffer> buf{};
    bool muted = false;
    std::uint64_t sent = 0;
    std::uint64_t rejected = 0;
    std::string send_error;
  };

  struct Local {
    LocalInfo info;
    std::uint64_t rejects = 0;
  };

  // Runs `body`, logging instead of propagating any exception: nothing may
  // escape an Asio handler (it would unwind through io_context::run and take
  // the daemon down for what is at worst one lost heartbeat).
  template <typename F>
  void Guarded(const char* what, F&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      Log(LogLevel::kError,
          std::string("heartbeat: ") + what + ": unexpected exception: " + e.what());
    } catch (...) {
      Log(LogLevel::kError, std::string("heartbeat: ") + what + ": unexpected exception");
    }
  }

  void Log(LogLevel level, const std::string& message) {
    if (logger_) logger_->Log(level, message);
  }

  Heartbeat MakeFrame(const std::string& module, const LocalInfo& info) const {
    Heartbeat hb;
    hb.boot_id = boot_id_;
    hb.sequence = sequence_ + 1;
    hb.sender = config_.local_name;
    hb.module = module;
    hb.state = info.state;
    hb.busy = info.busy;
    hb.handing_over = info.handing_over;
    hb.was_last_prim = info.was_last_prim;
    hb.data = info.data;
    hb.config_hash = info.config_hash;
    hb.generation = info.generation;
    hb.peer_generation_seen = info.peer_generation_seen;
    hb.peer_generation_known = info.peer_generation_known;
    hb.peer_in_sync = info.peer_in_sync;
    hb.resources = info.resources;
    return hb;
  }

  void StartReceive(Net& n) {
    n.socket.async_receive_from(
        asio::buffer(n.buf), n.from,
        [this, alive = alive_, &n](const boost::system::error_code& ec, std::size_t len) {
          if (!*alive || ec == asio::error::operation_aborted) return;
          Guarded("receive", [&] {
            if (ec) {
              // Unexpected on UDP; retry after a pulse rather than spinning.
              Log(LogLevel::kWarning,
                  "heartbeat lan '" + n.cfg.lan + "': receive failed: " + ec.message());
              n.retry.expires_after(config_.pulse);
              n.retry.async_wait([this, alive, &n](const boost::system::error_code& ec2) {
                if (*alive && !ec2) Guarded("receive", [&] { StartReceive(n); });
              });
              return;
            }
            HandleFrame(n, len);
          });
          // Outside the guard above, so that one bad frame never stops
          // the receive loop of its network.
          if (!ec && *alive) Guarded("receive", [&] { StartReceive(n); });
        });
  }

  void HandleFrame(Net& n, std::size_t len) {
    if (n.muted) return;
    const std::string from = EndpointText(n.from);
    DecodeError why = DecodeError::kNone;
    auto decoded = Decode(std::span<const std::uint8_t>(n.buf.data(), len), key_, &why);
    if (!decoded.ok()) {
      Reject(n, DecodeErrorName(why), decoded.status().message(), from, nullptr);
      return;
    }
    const Heartbeat& hb = *decoded;
    if (hb.sender == config_.local_name) {
      Reject(n, "own frame",
             "received this node's own heartbeat: does peer address " + n.cfg.peer_address +
                 " belong to this node?",
             from, nullptr);
      return;
    }
    if (hb.sender != config_.peer_name) {
      Reject(n, "unexpected sender",
             "heartbeat from node '" + hb.sender + "', but the peer is '" + config_.peer_name +
                 "' (a third node with the same cluster key?)",
             from, nullptr);
      return;
    }
    Status fresh = guard_.Accept(hb, n.index);
    if (!fresh.ok()) {
      Reject(n, "replay", fresh.message(), from, &hb.module);
      return;
    }

    const PeerTable::ModuleRecord* before = table_.module(hb.module);
    const bool was_visible = before && before->info.view.visible;
    const std::uint64_t old_boot = before ? before->info.boot_id : 0;

    PeerEvents ev;
    table_.OnHeartbeat(n.index, hb, Clock::now(), &ev);

    // The peer just appeared (started, restarted, or came back from a
    // partition): answer at once instead of at our next pulse, so that it
    // learns our state in one round trip (start-up election, reintegration).
    const PeerTable::ModuleRecord* after = table_.module(hb.module);
    if (after && after->info.view.visible && (!was_visible || after->info.boot_id != old_boot)) {
      auto local = locals_.find(hb.module);
      if (local != locals_.end()) SendModule(hb.module, local->second);
    }
    if (ev.config_mismatch) {
      auto it = locals_.find(hb.module);
      if (it != locals_.end()) ++it->second.rejects;
      Report("config mismatch:" + hb.module,
             "module '" + hb.module + "': the peer's configuration differs (hash " +
                 ShortHash(hb.config_hash) + ", ours " + ShortHash(LocalHash(hb.module)) +
                 "): not pairing until both nodes run the same configuration",
             from);
    }
    ArmWatchdog();
    Dispatch(ev);
  }

  ConfigHash LocalHash(const std::string& module) const {
    auto it = locals_.find(module);
    return it == locals_.end() ? ConfigHash{} : it->second.info.config_hash;
  }

  // Counts a refused frame and reports it (rate-limited).
  void Reject(Net& n, const std::string& kind, const std::string& message, const std::string& from,
              const std::string* module) {
    ++n.rejected;
    ++rejects_by_reason_[kind];
    if (module) {
      auto it = locals_.find(*module);
      if (it != locals_.end()) ++it->second.rejects;
    }
    Report(kind, "lan '" + n.cfg.lan + "': " + message, from);
  }

  // Once per `key` per reject_report_interval: a peer with the wrong key
  // sends one bad frame per pulse, and one line per 10 s says it all.
  void Report(const std::string& key, const std::string& message, const std::string& from) {
    auto now = Clock::now();
    auto it = last_report_.find(key);
    if (it != last_report_.end() && now - it->second < config_.reject_report_interval) return;
    last_report_[key] = now;
    Log(LogLevel::kWarning, "heartbeat refused from " + from + ": " + message);
    if (listener_) Guarded("OnRejected", [&] { listener_->OnRejected(message, from); });
  }

  void Dispatch(const PeerEvents& ev) {
    for (const auto& [index, up] : ev.networks) {
      if (!*alive_) return;
      const std::string& lan = nets_[index]->cfg.lan;
      Log(up ? LogLevel::kInfo : LogLevel::kWarning,
          "heartbeat lan '" + lan + "' " +
              (up ? "up: peer heard"
                  : "down: peer silent for " + std::to_string(config_.timeout.count()) + " ms"));
      if (listener_) Guarded("OnNetworkStatus", [&] { listener_->OnNetworkStatus(lan, up); });
    }
    for (const auto& module : ev.lost) {
      if (!*alive_) return;
      Log(LogLevel::kWarning, "heartbeat: peer " + config_.peer_name + " lost for module '" +
                                  module + "': every network silent for " +
                                  std::to_string(config_.timeout.count()) + " ms");
      if (listener_) Guarded("OnPeerLost", [&] { listener_->OnPeerLost(module); });
    }
    for (const auto& [module, info] : ev.changed) {
      if (!*alive_) return;
      Log(LogLevel::kInfo, "heartbeat: peer " + info.view.name + " module '" + module + "': " +
                               StateName(info.view.state) + (info.view.busy ? " busy" : "") +
                               (info.view.handing_over ? " handing over" : "") +
                               (info.view.config_matches ? "" : " CONFIG MISMATCH") +
                               " generation " + std::to_string(info.generation));
      if (listener_) Guarded("OnPeerChanged", [&] { listener_->OnPeerChanged(module, info); });
    }
  }

  // Keeps the watchdog armed at the earliest deadline. Frames only push
  // deadlines later, so the timer is re-armed only when something newly
  // became live with an earlier deadline than the one it waits for; when it
  // fires early (deadlines moved), Expire finds nothing and it re-arms.
  void ArmWatchdog() {
    auto next = table_.NextDeadline();
    if (!next) return;
    if (watchdog_at_ && *watchdog_at_ <= *next) return;
    watchdog_at_ = *next;
    watchdog_.expires_at(*next);
    watchdog_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
      if (!*alive || ec == asio::error::operation_aborted) return;
      Guarded("watchdog", [&] {
        watchdog_at_.reset();
        PeerEvents ev;
        table_.Expire(Clock::now(), &ev);
        ArmWatchdog();
        Dispatch(ev);
      });
    });
  }

  void SchedulePulse() {
    pulse_timer_.expires_after(config_.pulse);
    pulse_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
      if (!*alive || ec) return;
      Guarded("pulse", [&] { SendAll(); });
      // Rescheduled even if sending threw: the pulse must not stop.
      if (*alive) Guarded("pulse", [&] { SchedulePulse(); });
    });
  }

  void SendAll() {
    if (locals_.empty()) {
      // Nothing registered yet: a node-level frame keeps the networks watched.
      Local node;
      SendModule("", node);
      return;
    }
    for (auto& [name, local] : locals_) SendModule(name, local);
  }

  void SendModule(const std::string& module, Local& local) {
    auto bytes = Encode(MakeFrame(module, local.info), key_);
    if (!bytes.ok()) {
      // SetLocal refused such frames already; only a bug gets here.
      Log(LogLevel::kError,
          "heartbeat: cannot encode module '" + module + "': " + bytes.status().message());
      return;
    }
    ++sequence_;
    auto frame = std::make_shared<std::vector<std::uint8_t>>(std::move(bytes).value());
    for (auto& np : nets_) {
      Net& n = *np;
      if (n.muted) continue;
      n.socket.async_send_to(
          asio::buffer(*frame), n.peer,
          [this, alive = alive_, frame, &n](const boost::system::error_code& ec, std::size_t) {
            if (!*alive || ec == asio::error::operation_aborted) return;
            Guarded("send", [&] { OnSent(n, ec); });
          });
    }
  }

  void OnSent(Net& n, const boost::system::error_code& ec) {
    if (ec) {
      // Log on change only: a down interface fails every pulse.
      if (n.send_error != ec.message()) {
        Log(LogLevel::kWarning, "heartbeat lan '" + n.cfg.lan + "': cannot send to " +
                                    EndpointText(n.peer) + ": " + ec.message());
      }
      n.send_error = ec.message();
      return;
    }
    if (!n.send_error.empty()) {
      Log(LogLevel::kInfo, "heartbeat lan '" + n.cfg.lan + "': sending again");
      n.send_error.clear();
    }
    ++n.sent;
  }

  asio::io_context& io_;
  HeartbeatConfig config_;
  HeartbeatListener* listener_;
  Logger* logger_;
  ClusterKey key_;
  std::uint64_t boot_id_ = 0;
  std::uint64_t sequence_ = 0;  // last sequence sent; shared by all modules
  // Handlers hold a copy; false once stopped or destroyed, so that a handler
  // completing later (operation_aborted after close) never touches *this.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool started_ = false;
  std::vector<std::unique_ptr<Net>> nets_;
  asio::steady_timer pulse_timer_;
  asio::steady_timer watchdog_;
  std::optional<Clock::time_point> watchdog_at_;
  PeerTable table_;
  ReplayGuard guard_;
  std::map<std::string, Local> locals_;
  std::map<std::string, Clock::time_point> last_report_;
  std::map<std::string, std::uint64_t> rejects_by_reason_;
};

HeartbeatService::HeartbeatService(asio::io_context& io, HeartbeatConfig config,
                                   HeartbeatListener* listener, Logger* logger)
    : impl_(std::make_unique<Impl>(io, std::move(config), listener, logger)) {}

HeartbeatService::~HeartbeatService() = default;

Status HeartbeatService::Start() { return impl_->Start(); }
void HeartbeatService::Stop() { impl_->Stop(); }
Status HeartbeatService::SetLocal(const std::string& module, const LocalInfo& info) {
  return impl_->SetLocal(module, info);
}
void HeartbeatService::RemoveModule(const std::string& module) { impl_->RemoveModule(module); }
const PeerInfo* HeartbeatService::Peer(const std::string& module) const {
  return impl_->Peer(module);
}
HeartbeatSnapshot HeartbeatService::Snapshot() const { return impl_->Snapshot(); }
void HeartbeatService::MuteNetworkForTest(const std::string& lan, bool muted) {
  impl_->MuteNetworkForTest(lan, muted);
}
std::uint64_t HeartbeatService::boot_id() const { return impl_->boot_id(); }

}  // namespace hakit::cluster
