#pragma once
// A target controller: what canaryd does to the workload a Canary names in targetRef
// (Flagger's canary.Controller: Deployment, DaemonSet, Service; and StatefulSet). It reads the target, its
// primary and their configs from the caches, and acts through the API client.
//
// Thread affinity: the io_context thread. Errors: action_result values, never exceptions.
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <string_view>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "core/wall_time.hpp"
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"

namespace canaryd {

class target_controller {
 public:
  virtual ~target_controller() = default;

  // Fills the target part of `obs` from the caches, with no API request: target_error,
  // target_revision, tracked_configs, target_scaled_to_zero, canary, primary,
  // primary_matches_target.
  virtual void observe(const core::canary& c, core::observed_state& obs, core::wall_time now) const = 0;

  // initialize_primary, scale_to_zero, scale_from_zero, promote, pause_target_scaler,
  // resume_target_scaler, finalize_target. Other actions are the router's or the runner's
  // (asserted).
  virtual boost::asio::awaitable<action_result> apply(const core::canary& c, core::workload_action a) = 0;
  virtual boost::asio::awaitable<action_result> reconcile_primary_scaler(const core::canary& c, bool init) = 0;
  // Stops what the controller runs on its own (its caches: Knative Services and Revisions, KEDA
  // ScaledObjects), so that a graceful shutdown drains. Idempotent.
  virtual void stop() {}
};

// The controller for targetRef.kind Deployment.
std::unique_ptr<target_controller> make_deployment_controller(cluster& k, const options& opts);
// DaemonSet (Flagger's DaemonSetController) and StatefulSet (canaryd's own, docs/targets.md):
// daemon/workload_controller.cpp.
std::unique_ptr<target_controller> make_daemonset_controller(cluster& k, const options& opts);
std::unique_ptr<target_controller> make_statefulset_controller(cluster& k, const options& opts);
// Service targets (Flagger's ServiceController): <svc>-canary and <svc>-primary copies,
// promotion by copying the spec, no scaling or readiness (daemon/service_target_controller.cpp).
std::unique_ptr<target_controller> make_service_target_controller(cluster& k, const options& opts);
// Knative Service targets (Flagger's KnativeController; daemon/knative_target_controller.cpp):
// the flagger.app/primary-revision annotation, readiness from the Revisions. `changed` is called
// with (namespace, Knative Service name) when the Service or one of its Revisions changes.
using knative_changed = std::function<void(std::string_view ns, std::string_view name)>;
std::unique_ptr<target_controller> make_knative_controller(cluster& k, const options& opts, knative_changed changed);

}  // namespace canaryd
