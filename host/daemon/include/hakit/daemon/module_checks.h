// ModuleChecks: failure detection for one module as the daemon runs it.
//
// It turns the module's <errd><proc>, <check> children and the checkers its
// library declares (ModuleDescription::checkers) into named resources
// (checkers/resource.h), runs their probes on their intervals while their
// class is active in the module's state, evaluates the rules
// (checkers/rules.h) every period and on every change, and asks the
// controller for the planned action (kLocalFailure), keeping the restart
// policy's counters. Each action is logged and recorded in the history with
// its cause.
//
// After every transition the resources that are not "wait" resources go
// back to init: a failure acted upon is judged again only from fresh probes.
//
// Threading: every method on the daemon's io_context thread. Custom
// checkers and handler scripts run on their own threads, which post back.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "hakit/checkers/resource.h"
#include "hakit/cluster/mirror_fsm.h"
#include "hakit/sdk/status.h"

namespace hakit::daemon {

struct ModuleRuntime;

struct ChecksCallbacks {
  // One history event (kind, from, to, reason, details).
  std::function<void(const std::string&, const std::string&, const std::string&,
                     const std::string&, const nlohmann::json&)>
      record;
  // A resource changed state: the heartbeats should carry it.
  std::function<void()> changed;
};

class ModuleChecks {
 public:
  // `m` (its config, description, context and controller) outlives this.
  // `operator_file`: where `hakit failover|errd|checker on|off` persist.
  ModuleChecks(boost::asio::io_context& io, ModuleRuntime& m, std::filesystem::path operator_file,
               ChecksCallbacks callbacks);
  ~ModuleChecks();
  ModuleChecks(const ModuleChecks&) = delete;
  ModuleChecks& operator=(const ModuleChecks&) = delete;

  // Declares the resources, applies the persisted operator settings and arms
  // the timers. An invalid checker (bad regex, unknown SDK kind) is an error
  // naming it.
  sdk::Status Start();
  // Stops every probe and custom checker (waits for their threads).
  void Stop();

  // The controller published: its state or busy flag may have changed.
  void OnModuleChanged();

  // `hakit set -r RES -v up|down` (set_by "operator", or "custom" from a
  // custom checker: the same command).
  sdk::Status SetResource(const std::string& name, checkers::ResourceState state,
                          const std::string& set_by);
  void SetErrd(bool on);
  void SetCheckers(bool on);
  void SetFailover(bool on);
  // `hakit resetloop` and every operator command: the restart counter restarts.
  void ResetLoops();
  // A failover this node took part in (for the flapping guard).
  void NoteFailover();

  // Whether a <splitbrain> witness is configured.
  bool HasWitness() const;
  // Consults the witness now; `done` gets the answer on the io thread.
  void ConsultWitness(std::function<void(cluster::Witness)> done);

  // The peer's resources, from its heartbeats.
  void SetPeerResources(std::vector<std::pair<std::string, checkers::ResourceState>> resources);
  // This node's resources for the heartbeats (name, state).
  std::vector<std::pair<std::string, checkers::ResourceState>> LocalResources() const;

  // For `hakit state -v` / --json: resources with state, age, action, class;
  // counters; switches.
  nlohmann::json StatusJson() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace hakit::daemon
