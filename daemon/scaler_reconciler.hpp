#pragma once
// The autoscaler of a workload target (Flagger's ScalerReconciler, flagger-behaviour.md §4):
// the `<autoscaler>-primary` copy that scales `<target>-primary`, and pausing/resuming the
// target's own autoscaler around a canary run. Shared by the Deployment and StatefulSet
// controllers.
//
//  - HorizontalPodAutoscaler (autoscaling/v2): `<hpa>-primary` copies min, max, metrics and
//    behavior (hpa_reconciler.go). Pause and resume are no-ops, as in Flagger: the target HPA
//    keeps running, and an HPA does not scale a workload up from 0.
//  - KEDA ScaledObject (keda.sh/v1alpha1, scaled_object_reconciler.go): `<so>-primary` built
//    by core/keda.hpp; pause sets the target's `autoscaling.keda.sh/paused-replicas: "0"`,
//    resume removes it. ScaledObjects are read from a watch cache of keda.sh started when the
//    first Canary with a ScaledObject asks, so a cluster without KEDA costs nothing.
//
// canaryd touches only what it owns: a `<so>-primary` controlled by something other than this
// Canary is refused, never updated.
// Reads: the caches. Writes are skipped when the cache already shows the wanted state; updates
// retry on 409 Conflict with a fresh GET (at most 5).
// Thread affinity: the io_context thread. Errors: action_result values. Lifetime: the
// destructor stops the ScaledObject cache; its run() coroutine holds it by shared_ptr.
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>

#include "core/canary.hpp"
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"

namespace canaryd {

namespace resources {
inline const k8s::resource scaled_objects{"keda.sh", "v1alpha1", "scaledobjects", true};
}  // namespace resources

class scaler_reconciler {
 public:
  scaler_reconciler(cluster& k, const options& opts);
  ~scaler_reconciler();
  scaler_reconciler(const scaler_reconciler&) = delete;
  scaler_reconciler& operator=(const scaler_reconciler&) = delete;

  // Why this canary's autoscalerRef cannot drive a target of `target_kind` ("Deployment",
  // "StatefulSet", "DaemonSet"), or nullopt. Checked before anything is created.
  static std::optional<std::string> refusal(const core::canary& c, std::string_view target_kind);

  // ReconcilePrimaryScaler: creates the primary autoscaler when missing; unless `init`, updates
  // it when it differs from what the target's autoscaler asks for. Nothing without autoscalerRef.
  boost::asio::awaitable<action_result> reconcile_primary(const core::canary& c, bool init);

  // PauseTargetScaler / ResumeTargetScaler.
  boost::asio::awaitable<action_result> set_target_paused(const core::canary& c, bool paused);

  // The target's autoscaler as cached (for ScaleFromZero's minimum), or null.
  k8s::object_ptr target_autoscaler(const core::canary& c) const;

  // Stops the ScaledObject cache (idempotent; the destructor does it too).
  void stop();

 private:
  boost::asio::awaitable<action_result> reconcile_primary_hpa(const core::canary& c, bool init);
  boost::asio::awaitable<action_result> reconcile_primary_scaled_object(const core::canary& c, bool init);
  // The ScaledObject cache, started on first use; null until then.
  k8s::cache& scaled_objects();
  boost::asio::awaitable<bool> scaled_objects_synced();

  cluster& k_;
  const options& opts_;
  std::shared_ptr<k8s::cache> scaled_objects_;
};

}  // namespace canaryd
