// ModuleController: performs the mirror state machine's decisions for one
// module. Decide() (pure) says what to do; the controller runs the steps on a
// worker thread (hooks may block for minutes), shows the state, feeds the
// outcome back as an event, and replays what arrived meanwhile.
//
// Threading: every public method is called on the daemon's io_context thread.
// Steps run on one worker thread at a time per module, so hooks of one module
// never run concurrently. The seams below are called on that worker thread,
// except Publish/Record, which are called on the io_context thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "hakit/cluster/mirror_fsm.h"
#include "hakit/sdk/module.h"

namespace hakit::daemon {

// Runs one hook of the module (blocking). The controller decides force and
// timeout; the seam only calls the module.
class HookSeam {
 public:
  virtual ~HookSeam() = default;
  virtual sdk::Status RunHook(sdk::Hook hook, const sdk::HookArgs& args) = 0;
};

// Adds and removes the module's virtual IPs (blocking).
class VipSeam {
 public:
  virtual ~VipSeam() = default;
  virtual sdk::Status AddAll() = 0;
  virtual sdk::Status RemoveAll() = 0;
};

// The module's replicated directories (<rfs>), around the start and stop
// hooks (blocking). Absent for modules without <rfs>.
class ReplicationSeam {
 public:
  virtual ~ReplicationSeam() = default;
  // Before start_prim: this node's dirs become the primary's copy.
  // `peer_expected`: going straight to PRIM (a swap, a failback), so the
  // peer is or is becoming SECOND: connect to it before the application
  // starts (bounded). Otherwise (ALONE: a failover, a start before the peer
  // pairs, which waits for our steps to end) do not try; the connection is
  // made when ALONE turns PRIM (ModuleReplication::PeerIsSecond).
  virtual sdk::Status BecomePrimary(bool peer_expected) = 0;
  // Before start_second: read-only mounts, and the receiver applying the
  // primary's changes.
  virtual sdk::Status BecomeSecond() = 0;
  // After stop_prim / stop_second: stops replicating, unmounts.
  virtual void Leave() = 0;
};

// What the controller tells the rest of the daemon.
struct ControllerCallbacks {
  // The state (or a flag) others see changed: heartbeats, `hakit state`.
  std::function<void()> published;
  // One history event: kind, from, to, reason, details.
  std::function<void(const std::string& kind, const std::string& from, const std::string& to,
                      const std::string& reason, const nlohmann::json& details)>
      record;
  // One line for the module log.
  std::function<void(sdk::LogLevel, const std::string&)> log;
  // Persist what must survive a restart (state, data status, last prim).
  std::function<void(const cluster::Facts&)> persist;
};

struct ControllerTimeouts {
  std::chrono::milliseconds start{std::chrono::minutes(5)};
  std::chrono::milliseconds nice_stop{std::chrono::seconds(300)};
  std::chrono::milliseconds force_stop{std::chrono::seconds(300)};
  // How long a starting node waits for its peer before deciding alone.
  std::chrono::milliseconds peer_wait{std::chrono::seconds(30)};
};

class ModuleController {
 public:
  ModuleController(boost::asio::io_context& io, std::string module, cluster::Facts initial,
                   ControllerTimeouts timeouts, std::unique_ptr<HookSeam> hooks,
                   std::unique_ptr<VipSeam> vips, ControllerCallbacks callbacks,
                   ReplicationSeam* replication = nullptr);
  ~ModuleController();

  // Handles one event. Returns the refusal text for an operator command that
  // cannot be carried out (empty when accepted or when not a command).
  std::string Handle(const cluster::Event& event);

  // What the generations say of this node's data now that the peer is
  // heard (same, behind, ahead, diverged). Takes effect at the next decision.
  void SetData(cluster::DataStatus data);

  // A new view of the peer from heartbeats; raises kPeerChanged when it
  // differs in anything the state machine looks at.
  void UpdatePeer(const cluster::PeerView& view);
  // Every heartbeat network went silent. `peer_host_alive`: the peer's node
  // still answers on the network (its hakitd alone died), so this node must
  // not take over on its own.
  // `silent_for`: how long the peer had been silent when it was declared
  // lost (the detection time recorded with a failover).
  void PeerLost(bool peer_host_alive, std::chrono::milliseconds silent_for);

  // Failure detection (ModuleChecks): a resource whose action is wait is
  // down (`wait`) or no longer; the module stays in WAIT while it is, and
  // when it clears in WAIT the start-up wait runs again.
  void SetLocalWait(bool wait, const std::string& reason);
  // The witness's last answer, looked at when the peer is lost.
  void SetWitness(cluster::Witness witness) { facts_.witness = witness; }
  // `hakit failover on|off`.
  void SetFailover(bool on) { facts_.config.failover = on; }

  // Stops the module (for daemon shutdown) and calls `done` once STOP.
  void Shutdown(std::function<void()> done);

  const cluster::Facts& facts() const { return facts_; }
  const std::string& module() const { return module_; }
  // The reason of the last decision or refusal, shown by `hakit state`.
  const std::string& last_reason() const { return last_reason_; }
  // Why the module waits (WAIT), if it does.
  const std::string& wait_reason() const { return wait_reason_; }

 private:
  void Apply(const cluster::Decision& d, const cluster::Event& cause);
  void RunSteps(cluster::Decision d);
  sdk::Status RunStep(cluster::Step step, const cluster::Decision& d, cluster::State from);
  sdk::Status RunHookStep(cluster::Step step, const cluster::Decision& d, cluster::State from);
  sdk::Status RunStopHook(sdk::Hook hook, sdk::HookArgs args);
  void StepsFinished(cluster::Decision d, sdk::Status status, std::optional<cluster::Step> failed,
                     std::chrono::milliseconds took);
  void Settled();
  void SetWaitReason(cluster::State state, const std::string& reason);
  void ReplayDeferred();
  void ArmWaitTimer();
  void Log(sdk::LogLevel level, const std::string& message);

  boost::asio::io_context& io_;
  std::string module_;
  cluster::Facts facts_;
  ControllerTimeouts timeouts_;
  std::unique_ptr<HookSeam> hooks_;
  std::unique_ptr<VipSeam> vips_;
  ControllerCallbacks callbacks_;
  ReplicationSeam* replication_ = nullptr;  // not owned; null without <rfs>
  boost::asio::steady_timer wait_timer_;
  std::deque<cluster::Event> deferred_;
  std::thread worker_;
  std::string last_reason_;
  std::string wait_reason_;
  // A better explanation than the decision's, for the next WAIT.
  std::string wait_override_;
  std::function<void()> shutdown_done_;
  bool restart_after_ = false;
  int settle_depth_ = 0;
  bool data_changed_ = false;
  // The state before the running steps began (the shown state may move).
  cluster::State pre_steps_state_ = cluster::State::kStop;
  std::chrono::steady_clock::time_point peer_lost_at_{};
  std::chrono::milliseconds peer_silence_{0};
  // Set while the object is alive; the worker posts back only through it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace hakit::daemon
