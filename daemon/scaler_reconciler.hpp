#pragma once
// The autoscaler of a workload target (Flagger's ScalerReconciler, flagger-behaviour.md §4):
// the `<autoscaler>-primary` copy that scales `<target>-primary`, and pausing/resuming the
// target's own autoscaler around a canary run. Shared by the Deployment and StatefulSet
// controllers.
//
//  - HorizontalPodAutoscaler (autoscaling/v2): `<hpa>-primary` copies min, max, metrics and
//    behavior (hpa_reconciler.go). Pause and resume are no-ops, as in Flagger: the target HPA
//    keeps running, and an HPA does not scale a workload up from 0.
//
// Reads: the caches in `cluster`. Updates retry on 409 Conflict with a fresh GET (at most 5).
// Thread affinity: the io_context thread. Errors: action_result values.
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>

#include "core/canary.hpp"
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"

namespace canaryd {

class scaler_reconciler {
 public:
  scaler_reconciler(cluster& k, const options& opts);

  // ReconcilePrimaryScaler: creates the primary autoscaler when missing; unless `init`, updates
  // it when it differs from what the target's autoscaler asks for. Nothing without autoscalerRef.
  boost::asio::awaitable<action_result> reconcile_primary(const core::canary& c, bool init);

  // PauseTargetScaler / ResumeTargetScaler.
  boost::asio::awaitable<action_result> set_target_paused(const core::canary& c, bool paused);

  // The target's autoscaler as cached (for ScaleFromZero's minimum), or null.
  k8s::object_ptr target_autoscaler(const core::canary& c) const;

 private:
  cluster& k_;
  const options& opts_;
};

}  // namespace canaryd
