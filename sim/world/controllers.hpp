#pragma once
// kubesim's simulated workload controllers: what kube-controller-manager and the kubelets do
// for the workloads canaryd touches, written through the store like any client.
//
//  - Deployments: a ReplicaSet per pod-template revision (<deploy>-<hash>, label
//    pod-template-hash, revision annotations, ownerReference), the new one scaled to
//    spec.replicas (default 1), the old ones scaled to 0 once the new one is fully available,
//    ReplicaSets beyond revisionHistoryLimit deleted; status observedGeneration, replicas,
//    updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas and the Available
//    (MinimumReplicasAvailable/Unavailable) and Progressing (NewReplicaSetCreated,
//    FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
//    DeploymentPaused) conditions, following k8s.io/kubernetes/pkg/controller/deployment.
//  - ReplicaSets: pods <rs>-<5 chars>, Running at once, Ready after the pod template's
//    annotation kubesim.dev/ready-after (a Go duration such as "2s" or "1500ms"; default
//    controller_options::ready_after) or never with kubesim.dev/ready: "false".
//  - DaemonSets: one pod per simulated node whose labels match spec.template.spec.nodeSelector
//    (a nodeSelector matching no node schedules 0), replaced when the template changes.
//  - StatefulSets: pods <name>-0..N-1 (OrderedReady: one after the other; Parallel: at once),
//    rolled from the highest ordinal down to rollingUpdate.partition (OnDelete: never),
//    currentRevision/updateRevision; a PersistentVolumeClaim <claim>-<name>-<ordinal> per
//    volumeClaimTemplate, made before its pod and bound at once to a PersistentVolume
//    pvc-<claim uid> (the pod's volume names it); claims are kept across scale-down unless
//    persistentVolumeClaimRetentionPolicy.whenScaled is Delete, and go with the StatefulSet only
//    when whenDeleted is Delete (an ownerReference). A pod created below the partition gets the
//    update revision too (Kubernetes would give it the current one).
//  - HorizontalPodAutoscalers (autoscaling/v2): status mirrors the scale target's replicas
//    (currentReplicas; desiredReplicas clamped to min/max). The target is never scaled.
// Simplifications, deliberate: a rollout swaps all pods at once (no maxSurge stepping);
// minReadySeconds is ignored (ready-after plays its part); no Events are recorded.
//
// Level-based: store changes only mark objects dirty (a de-duplicating work queue); each
// reconcile re-reads the store and converges. Readiness and progress deadlines are one timer
// queue, so idle workloads cost nothing.
//
// Thread affinity: the io_context thread of `ex` only; no locks. The store must outlive the
// controllers (the store keeps the change callback, which does nothing once the controllers
// are destroyed).
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sim/api/store.hpp"

namespace kubesim::world {

struct simulated_node {
  std::string name;                          // "node-0"
  std::map<std::string, std::string> labels;  // kubernetes.io/hostname=node-0, kubernetes.io/os=linux, ...
};

struct controller_options {
  int nodes = 3;
  // Labels added to every node; node_labels_by_node[i] to node i only.
  std::map<std::string, std::string> node_labels;
  std::map<int, std::map<std::string, std::string>> node_labels_by_node;
  // Readiness delay of a new pod when its template has no kubesim.dev/ready-after.
  std::chrono::milliseconds ready_after{500};
  // Seed for pod name suffixes (0: std::random_device).
  std::uint64_t seed = 0;
  // Wall clock for timestamps (creationTimestamp is the store's; conditions are ours).
  std::function<std::chrono::system_clock::time_point()> now;
};

// The nodes controller_options describes (names node-0..node-N-1 and their labels).
std::vector<simulated_node> make_nodes(const controller_options& opts);

class controllers {
 public:
  // Subscribes to the store and reconciles every existing workload. Does not block.
  controllers(boost::asio::any_io_executor ex, store& s, controller_options opts = {});
  ~controllers();
  controllers(const controllers&) = delete;
  controllers& operator=(const controllers&) = delete;

  // Fault injection: while paused nothing is reconciled (changes and timers are only noted);
  // resuming catches up on everything noted.
  void pause(bool paused);
  bool paused() const noexcept;

  const std::vector<simulated_node>& nodes() const noexcept;
  // Work items waiting (for tests and the admin endpoint).
  std::size_t pending() const noexcept;

  class impl;

 private:
  std::shared_ptr<impl> impl_;
};

// Parses a Go duration ("1h2m3.5s", "500ms", "0"); false if malformed or negative.
bool parse_go_duration(std::string_view s, std::chrono::nanoseconds& out) noexcept;

}  // namespace kubesim::world
