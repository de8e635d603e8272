#include "hakit/daemon/module_replication.h"

// clang-format off: Boost 1.74 Asio uses std::exchange without including <utility>
#include <utility>
// clang-format on

#include <algorithm>

#include "hakit/replication/interceptor.h"
#include "hakit/replication/receiver.h"
#include "hakit/replication/sender.h"

namespace hakit::daemon {

using sdk::Status;
using namespace std::chrono_literals;
namespace repl = hakit::replication;

namespace {

// The interceptor of dir `index` hands its changes to the one sender,
// tagged with its dir index.
class DirSink : public repl::OperationSink {
 public:
  DirSink(repl::ReplicationSender& sender, std::uint8_t index) : sender_(sender), index_(index) {}
  std::uint64_t Submit(repl::Operation op) override {
    return sender_.SubmitTo(index_, std::move(op));
  }
  Status Wait(std::uint64_t ticket) override { return sender_.Wait(ticket); }

 private:
  repl::ReplicationSender& sender_;
  std::uint8_t index_;
};

}  // namespace

ModuleReplication::ModuleReplication(ReplicationSettings settings)
    : settings_(std::move(settings)) {}

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
  if (receiver_) receiver_->SetGeneration(generation, true);
}

Status ModuleReplication::BecomePrimary(bool peer_expected) {
  Leave();  // a read-only mount, a receiver, or a primary left by a restart
  leaving_ = false;
  repl::SenderOptions o;
  o.module = settings_.module;
  o.node = settings_.node;
  o.config_hash = settings_.config_hash;
  o.generation = generation_;
  o.peer_address = settings_.peer_address;
  o.peer_port = settings_.port;
  o.mode =
      settings_.sync ? repl::SenderOptions::Mode::kApplied : repl::SenderOptions::Mode::kReceived;
  o.ack_timeout = settings_.timeout;
  o.connect_timeout = std::clamp<std::chrono::milliseconds>(settings_.timeout, 200ms, 2s);
  o.on_peer_lost = [this](const repl::PeerLost& lost) {
    Log(sdk::LogLevel::kError, "peer lost: " + lost.reason + " (" +
                                   std::to_string(lost.unapplied.size()) +
                                   " operation(s) not known to be applied there)");
    if (settings_.on_peer_lost) settings_.on_peer_lost(lost.reason, lost.unapplied.size());
  };
  auto sender = std::make_unique<repl::ReplicationSender>(o);
  std::vector<std::unique_ptr<repl::OperationSink>> sinks;
  std::vector<std::unique_ptr<repl::Interceptor>> mounts;
  for (std::size_t i = 0; i < settings_.dirs.size(); ++i) {
    sinks.push_back(std::make_unique<DirSink>(*sender, static_cast<std::uint8_t>(i)));
    repl::InterceptorOptions io;
    io.dir = settings_.dirs[i];
    io.mode = repl::InterceptorOptions::Mode::kPrimary;
    io.sink = sinks.back().get();
    io.xattrs = settings_.xattrs;
    auto m = repl::Interceptor::Mount(io);
    if (!m.ok()) {
      for (auto& done : mounts) done->Unmount();
      return m.status().WithContext("mounting replicated dir " + io.dir);
    }
    mounts.push_back(std::move(*m));
  }
  {
    std::lock_guard lock(mu_);
    sender_ = std::move(sender);
    sinks_ = std::move(sinks);
    mounts_ = std::move(mounts);
    role_ = Role::kPrimary;
  }
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
    last = sender->Connect();
    if (last.ok()) {
      Log(sdk::LogLevel::kInfo, "replicating to " + settings_.peer_address + ":" +
                                    std::to_string(settings_.port) +
                                    (settings_.sync ? " (synchronous)" : " (async=second)"));
      auto st = sender->Stats();
      if (st.ops_unreplicated > 0) {
        Log(sdk::LogLevel::kWarning,
            std::to_string(st.ops_unreplicated) +
                " change(s) made while not replicating are missing on the peer (no full "
                "synchronisation yet)");
      }
      return last;
    }
    if (std::chrono::steady_clock::now() + 100ms >= deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

bool ModuleReplication::SecondHoldsEverything() const {
  std::lock_guard lock(mu_);
  if (role_ != Role::kPrimary || !sender_) return false;
  return sender_->state() == repl::SenderState::kReplicating &&
         sender_->Stats().ops_unreplicated == 0;
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
  o.generation = generation_;
  o.root_fds = fds;
  o.idle_timeout = std::max<std::chrono::milliseconds>(settings_.timeout, 1s);
  o.on_session_start = [this](const std::string& peer, const repl::Hello& hello) {
    Log(sdk::LogLevel::kInfo, "primary " + hello.node + " (" + peer + ") connected");
  };
  o.on_session_end = [this](const std::string& reason) {
    Log(sdk::LogLevel::kWarning, "primary's session ended: " + reason);
  };
  o.on_apply_failed = [this](const Status& s) {
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
  std::vector<std::unique_ptr<repl::OperationSink>> sinks;
  Role role;
  {
    std::lock_guard lock(mu_);
    connector = std::move(connector_);
    role = role_;
    role_ = Role::kNone;
  }
  // The connector uses the sender: it ends (bounded by connect_timeout)
  // before the sender goes.
  if (connector.joinable()) connector.join();
  connector_done_ = true;
  {
    std::lock_guard lock(mu_);
    sender = std::move(sender_);
    receiver = std::move(receiver_);
    mounts = std::move(mounts_);
    sinks = std::move(sinks_);
  }
  if (role == Role::kNone && mounts.empty() && !sender && !receiver) return;
  // Primary: the application is down; the mounts go first (requests being
  // served finish), then the sender flushes and says BYE.
  // Secondary: the receiver applies what it received, then the mounts go
  // (their real_dir_fd()s stay valid until destroyed).
  if (receiver) receiver->Stop();
  for (auto& m : mounts) {
    if (Status s = m->Unmount(); !s.ok()) {
      Log(sdk::LogLevel::kError, "unmounting " + m->dir() + ": " + s.message());
    }
  }
  if (sender) sender->Stop();
  mounts.clear();
  sinks.clear();
  sender.reset();
  receiver.reset();
  Log(sdk::LogLevel::kInfo, "replicated dir(s) unmounted");
}

nlohmann::json ModuleReplication::StatusJson() const {
  std::lock_guard lock(mu_);
  nlohmann::json j = {{"dirs", settings_.dirs},
                      {"peer", settings_.peer_address + ":" + std::to_string(settings_.port)},
                      {"async", settings_.sync ? "none" : "second"}};
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
