#pragma once
// kubesim's KEDA (keda.sh/v1alpha1 ScaledObjects), written from KEDA's documentation (the
// ScaledObject specification, "Pause autoscaling", the Prometheus scaler) and the published CRD;
// it shares no code with canaryd. Active once the ScaledObject CRD is installed.
//
// For each ScaledObject, what the KEDA operator, its metrics server and the HPA controller do
// together:
//  - an autoscaling/v2 HorizontalPodAutoscaler `keda-hpa-<name>` (or
//    advanced.horizontalPodAutoscalerConfig.name) controlled by the ScaledObject: scaleTargetRef
//    of the ScaledObject's (apiVersion apps/v1, kind Deployment by default), minReplicas
//    max(minReplicaCount, 1) (default 0 -> 1), maxReplicas maxReplicaCount (default 100), one
//    External metric `s<i>-<type>` per trigger (AverageValue target = the trigger's threshold),
//    behavior from horizontalPodAutoscalerConfig.behavior;
//  - every pollingInterval (default 30 s) each `prometheus` trigger's query is sent to its
//    serverAddress (/api/v1/query); an empty answer is 0 (ignoreNullValues). The trigger is
//    active when the value exceeds activationThreshold (default 0). The target gets
//    ceil(value / threshold), the maximum over the triggers, clamped to [max(min,1), max]
//    (the HPA's AverageValue rule) while it runs; a target at 0 is scaled up only when a
//    trigger is active, and with minReplicaCount 0 a target is scaled to idleReplicaCount (or 0)
//    once no trigger has been active for cooldownPeriod (default 300 s). Other trigger types are
//    not evaluated (they do not move the target);
//  - the annotation autoscaling.keda.sh/paused-replicas: N pins the target at N replicas and
//    removes the HPA (status.pausedReplicaCount N, condition Paused True); removing it brings the
//    HPA back;
//  - status: scaleTargetKind, scaleTargetGVKR, hpaName, externalMetricNames, lastActiveTime,
//    originalReplicaCount, and the conditions Ready, Active, Fallback and Paused.
// Simplifications, deliberate: scaling is immediate (no HPA stabilization window or scaling
// policies), the HPA's own status is left to the HPA emulation (sim/world/controllers.hpp), and
// fallback is never active.
//
// Thread affinity: the io_context thread of `ex` only; no locks. The store must outlive it.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>

#include "sim/api/store.hpp"

namespace kubesim::world {

struct keda_options {
  // How often the loop looks for ScaledObjects due for a poll (their pollingInterval decides).
  std::chrono::milliseconds tick{200};
  // Deadline of one Prometheus query.
  std::chrono::milliseconds query_timeout{2000};
};

class keda_operator {
 public:
  virtual ~keda_operator() = default;
  // Stops the loop (idempotent); queries in flight end with their deadline.
  virtual void stop() = 0;
};

// Subscribes to the store and starts the poll loop. Does not block.
std::unique_ptr<keda_operator> start_keda(boost::asio::any_io_executor ex, store& s, keda_options opts = {});

}  // namespace kubesim::world
