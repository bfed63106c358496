#pragma once
// The pure half of the target controllers (flagger-behaviour.md §3.7, §4; docs/targets.md): the
// `<target>-primary` Deployment, DaemonSet and StatefulSet and the `-primary` ConfigMap/Secret
// copies built from the target's JSON, a Service target's copies, readiness as Flagger's
// isDeploymentReady/isDaemonSetReady and Kubernetes' StatefulSet rollout status report it, what
// is refused, and the adoption check. The daemon (daemon/deployment_controller.cpp,
// workload_controller.cpp, service_target_controller.cpp) reads the inputs from its caches and
// writes the outputs through the API client.
//
// Thread affinity: none (pure). Errors: result values with Flagger's message text; bad JSON is
// an error, never a crash.
#include <boost/system/result.hpp>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "core/wall_time.hpp"

namespace canaryd::core {

template <class T>
using text_result = boost::system::result<T, std::string>;

// The workload kinds with a `-primary` copy (targetRef.kind).
enum class workload_kind { deployment, daemonset, statefulset };

struct primary_options {
  std::vector<std::string> selector_labels{"app", "name", "app.kubernetes.io/name"};  // -selector-labels
  std::vector<std::string> include_label_prefix;                                      // -include-label-prefix ("*" = all)
  // Keys ("configmap/<name>", "secret/<name>") of the configs that have -primary copies: their
  // references in the primary's pod spec are renamed to <name>-primary.
  std::set<std::string> tracked_configs;
};

// The first of `selector_labels` present in the workload's spec.selector.matchLabels and its
// value; else Flagger's "<kind> <name>.<ns> spec.selector.matchLabels must contain one of
// [app name ...]" (<kind> the object's kind in lower case, "deployment" when it has none).
text_result<std::pair<std::string, std::string>> selector_label(std::string_view deployment_json,
                                                                const std::vector<std::string>& selector_labels);
// The same with the kind named in the error given ("daemonset"; empty: as above).
text_result<std::pair<std::string, std::string>> selector_label(std::string_view workload_json,
                                                                const std::vector<std::string>& selector_labels,
                                                                std::string_view kind_word);

// includeLabelsByPrefix: true when `key` starts with one of the prefixes ("*" matches all).
bool include_by_prefix(std::string_view key, const std::vector<std::string>& prefixes);

// The ownerReference Flagger puts on every primary object: flagger.app/v1beta1 Canary, the
// canary's name and uid, controller and blockOwnerDeletion true (JSON object text).
std::string canary_owner_reference(const canary& c);

// The <target>-primary Deployment to create from the target (Flagger's createPrimaryDeployment):
// template copied (labels with the selector label set to <value>-primary, annotations minus
// toolkit.fluxcd.io keys plus flagger-id: `flagger_id`), pod spec with tracked config references
// and anti-affinity/topology selectors renamed, selector {<label>: <value>-primary}, object
// labels include-prefix-filtered plus the selector label, annotations minus toolkit keys,
// progressDeadlineSeconds/minReadySeconds/revisionHistoryLimit/strategy copied, replicas = the
// target's if > 0 else 1, and the controller ownerReference.
text_result<std::string> make_primary_deployment(const canary& c, std::string_view target_json,
                                                 const primary_options& o, std::string_view flagger_id);

// The primary after a promotion (Flagger's Promote): `primary_json` (the current primary, its
// metadata and selector kept) with the target's template (transformed as above, a new
// flagger-id), the copied spec fields, object labels/annotations include-prefix-filtered (plus the
// selector label) and, only without autoscalerRef, the target's replicas. Suitable for an update
// (it keeps metadata.resourceVersion).
text_result<std::string> promote_primary_deployment(const canary& c, std::string_view target_json,
                                                    std::string_view primary_json, const primary_options& o,
                                                    std::string_view flagger_id);

// The -primary copy of a tracked ConfigMap or Secret (`kind` "ConfigMap" or "Secret"): data,
// binaryData and type copied, labels include-prefix-filtered, annotations minus toolkit keys and
// kubectl's last-applied-configuration, the Canary's controller ownerReference plus the source's
// other (non-Flagger) ownerReferences with controller=false.
text_result<std::string> make_primary_config(const canary& c, std::string_view config_json,
                                             const primary_options& o);

// isDeploymentReady of a Deployment object, with Flagger's messages (without the "<name>.<ns>
// not ready: " prefix): observedGeneration behind -> waiting; condition Progressing with reason
// ProgressDeadlineExceeded -> failed `deployment "<name>" exceeded its progress deadline`; fewer
// updated than desired, old replicas left, or fewer available than floor(updated × threshold%)
// -> waiting, or failed when condition Available=False/MinimumReplicasUnavailable was last
// updated more than `progress_deadline_seconds` before `now`.
readiness deployment_readiness(std::string_view deployment_json, int progress_deadline_seconds, int ready_threshold,
                               wall_time now);

// What deployment_readiness reads of a Deployment, parsed once per object version (the daemon
// keeps it per resourceVersion: a tick then decides readiness without parsing JSON).
struct deployment_status {
  std::optional<std::string> parse_error;  // not a JSON object: waiting with this message
  std::string name;
  long long generation = 0, observed_generation = 0;
  bool progress_deadline_exceeded = false;  // condition Progressing, reason ProgressDeadlineExceeded
  bool has_progressing = false;
  // Condition Available=False/MinimumReplicasUnavailable (under a Progressing condition): its
  // lastUpdateTime, when readable.
  std::optional<wall_time> unavailable_since;
  std::optional<long long> desired;
  long long updated = 0, replicas = 0, available = 0;
};
deployment_status read_deployment_status(std::string_view deployment_json);
readiness deployment_readiness(const deployment_status& d, int progress_deadline_seconds, int ready_threshold,
                               wall_time now);

// IsCanaryReady / IsPrimaryReady: deployment_readiness with the canary's thresholds and the
// "<name>.<ns> not ready: " prefix; a missing object (`json` empty) is waiting with Flagger's
// get-query error.
readiness canary_readiness(const canary& c, std::string_view target_json, wall_time now);
readiness primary_readiness(const canary& c, std::string_view primary_json, wall_time now);
// The same from a parsed status; nullptr is a missing object.
readiness canary_readiness(const canary& c, const deployment_status* target, wall_time now);
readiness primary_readiness(const canary& c, const deployment_status* primary, wall_time now);

// Flagger's get-query error for a missing Deployment:
// `deployment <name>.<ns> get query error: deployments.apps "<name>" not found`.
std::string missing_deployment_error(std::string_view name, std::string_view ns);

// Whether the primary runs the target's template: the target's template after the primary
// transformations and the primary's, both without the flagger-id annotation, have the same
// pod_template_revision. Errors (bad JSON, no selector label) give false.
bool primary_matches_target(std::string_view target_json, std::string_view primary_json, const primary_options& o);

// spec.replicas of a Deployment (nullopt when unset or not a number).
std::optional<long long> deployment_replicas(std::string_view deployment_json);

// ScaleFromZero's replica count: the target's replicas if > 0; with no autoscaler, the
// primary's (when > 0); the autoscaler's minimum if > 1 (an HPA's minReplicas, a KEDA
// ScaledObject's minReplicaCount); else 1. Empty JSON = object absent.
long long scale_from_zero_replicas(std::string_view target_json, std::string_view primary_json, bool has_autoscaler,
                                   std::string_view autoscaler_json);

// The autoscaling/v2 HPA `<hpa>-primary` from the target HPA (Flagger's hpa_reconciler):
// scaleTargetRef to the primary Deployment, min/max (with primaryScalerReplicas overrides),
// metrics and behavior copied, labels/annotations minus toolkit keys, the controller
// ownerReference. With `existing_json` (the current primary HPA) the result keeps its metadata
// (resourceVersion) for an update.
text_result<std::string> make_primary_hpa(const canary& c, std::string_view hpa_json, std::string_view existing_json);

// Whether the primary HPA differs from what make_primary_hpa would write (min, max, metrics,
// behavior, labels, annotations): Flagger updates it only then.
bool primary_hpa_differs(std::string_view wanted_json, std::string_view existing_json);

// ---- DaemonSet targets (flagger-behaviour.md §4, Flagger's DaemonSetController) -----------------

// The nodeSelector key Flagger scales a DaemonSet to zero with (value "true").
inline constexpr std::string_view daemonset_scale_to_zero_key = "flagger.app/scale-to-zero";

// Flagger's get-query error for a missing workload of `kind`:
// `daemonset <name>.<ns> get query error: daemonsets.apps "<name>" not found`.
std::string missing_workload_error(workload_kind kind, std::string_view name, std::string_view ns);

// The <target>-primary DaemonSet (createPrimaryDaemonSet): refused unless updateStrategy.type is
// RollingUpdate (or unset), with Flagger's message; template as for a Deployment but without
// the anti-affinity renaming and without the scale-to-zero nodeSelector key; minReadySeconds,
// revisionHistoryLimit and updateStrategy copied; object labels include-prefix-filtered plus the
// selector label, annotations minus toolkit keys; the controller ownerReference.
text_result<std::string> make_primary_daemonset(const canary& c, std::string_view target_json,
                                                const primary_options& o, std::string_view flagger_id);

// The primary DaemonSet after a promotion (Flagger's DaemonSet Promote): `primary_json` with
// the target's template (as above, a new flagger-id) and minReadySeconds, revisionHistoryLimit,
// updateStrategy; metadata kept, as Flagger keeps it.
text_result<std::string> promote_primary_daemonset(const canary& c, std::string_view target_json,
                                                   std::string_view primary_json, const primary_options& o,
                                                   std::string_view flagger_id);

// Whether the DaemonSet's pod template carries the scale-to-zero nodeSelector key.
bool daemonset_scaled_to_zero(std::string_view daemonset_json);

// What DaemonSet readiness reads, parsed once per object version.
struct daemonset_status {
  std::optional<std::string> parse_error;
  long long generation = 0, observed_generation = 0;
  long long desired = 0, updated = 0, available = 0;
};
daemonset_status read_daemonset_status(std::string_view daemonset_json);

// Flagger's isDaemonSetReady with a ready threshold: observedGeneration behind -> waiting;
// ready when updatedNumberScheduled >= desiredNumberScheduled and numberAvailable >=
// int(desired x threshold%); otherwise failed `exceeded its progressDeadlineSeconds: N` once the
// canary's status.lastTransitionTime is more than the progress deadline before `now`, else
// waiting with kubectl's rollout-status wording.
readiness daemonset_readiness(const daemonset_status& d, const canary& c, int ready_threshold, wall_time now);
// IsCanaryReady / IsPrimaryReady of a DaemonSet target: "<name>.<ns> not ready: " prefixed;
// nullptr is a missing object (waiting with the get-query error).
readiness daemonset_canary_readiness(const canary& c, const daemonset_status* target, wall_time now);
readiness daemonset_primary_readiness(const canary& c, const daemonset_status* primary, wall_time now);

// Whether the primary runs the target's template (adoption from Flagger), for `kind`.
bool primary_matches_target(workload_kind kind, std::string_view target_json, std::string_view primary_json,
                            const primary_options& o);

// Why a DaemonSet cannot be progressed (Flagger's createPrimaryDaemonSet check, made before
// anything is created): `daemonset <name>.<ns> must have RollingUpdate strategy but have <type>`;
// nullopt when it can.
std::optional<std::string> daemonset_refusal(std::string_view daemonset_json);

// ---- StatefulSet targets (canaryd's own; docs/targets.md) -----------------------------------------

// Why a StatefulSet cannot be progressed, with a message naming the field; nullopt when it can.
// Refused: updateStrategy OnDelete (a promotion would never roll the primary's pods) and a
// rollingUpdate.partition above 0 (canaryd promotes whole StatefulSets).
std::optional<std::string> statefulset_refusal(std::string_view statefulset_json);

// spec.serviceName of a StatefulSet ("" when unset).
std::string statefulset_service_name(std::string_view statefulset_json);

// The <target>-primary StatefulSet: replicas = the target's if > 0 else 1; selector and pod
// labels with the selector label's value + "-primary"; serviceName `<serviceName>-primary` (the
// primary's own headless Service, so its pods get their own DNS names); podManagementPolicy and
// volumeClaimTemplates copied (the primary's claims are its own:
// <claim>-<target>-primary-<ordinal>); minReadySeconds, revisionHistoryLimit, updateStrategy and
// persistentVolumeClaimRetentionPolicy copied; template as for a Deployment; object labels
// include-prefix-filtered plus the selector label, annotations minus toolkit keys; the controller
// ownerReference.
text_result<std::string> make_primary_statefulset(const canary& c, std::string_view target_json,
                                                  const primary_options& o, std::string_view flagger_id);

// The primary StatefulSet after a promotion: `primary_json` with the target's template (a new
// flagger-id), the copied spec fields and, without autoscalerRef, the target's replicas. The
// fields Kubernetes does not let a StatefulSet change (selector, serviceName,
// volumeClaimTemplates, podManagementPolicy) are kept.
text_result<std::string> promote_primary_statefulset(const canary& c, std::string_view target_json,
                                                     std::string_view primary_json, const primary_options& o,
                                                     std::string_view flagger_id);

// What StatefulSet readiness reads, parsed once per object version.
struct statefulset_status {
  std::optional<std::string> parse_error;
  long long generation = 0, observed_generation = 0;
  long long replicas = 1;  // spec.replicas
  long long ready = 0, updated = 0;
  std::string current_revision, update_revision;
};
statefulset_status read_statefulset_status(std::string_view statefulset_json);

// Readiness as Kubernetes reports a StatefulSet rollout (kubectl rollout status), with a ready
// threshold: observedGeneration behind -> waiting; readyReplicas below int(replicas x
// threshold%), updatedReplicas below replicas, or currentRevision != updateRevision -> waiting,
// or failed `exceeded its progressDeadlineSeconds: N` once the canary's lastTransitionTime is
// more than the progress deadline before `now` (a StatefulSet has no progress condition).
readiness statefulset_readiness(const statefulset_status& s, const canary& c, int ready_threshold, wall_time now);
readiness statefulset_canary_readiness(const canary& c, const statefulset_status* target, wall_time now);
readiness statefulset_primary_readiness(const canary& c, const statefulset_status* primary, wall_time now);

// The primary's governing Service `<serviceName>-primary`: a copy of the target's governing
// Service (`governing_json`) whose selector picks the primary's pods (the selector label's value
// + "-primary"), kubectl's last-applied annotation dropped, the controller ownerReference.
// With `existing_json` (the current copy): nullopt when it is up to date, else the update body
// (its metadata and cluster IPs kept).
text_result<std::optional<std::string>> make_primary_governing_service(const canary& c, std::string_view governing_json,
                                                                       std::string_view target_json,
                                                                       const std::vector<std::string>& selector_labels,
                                                                       std::string_view existing_json);

// ---- Service targets (Flagger's ServiceController, flagger-behaviour.md §4) --------------------------

// A copy of the target Service (`svc_json`) named `name` (Flagger's buildService):
//  - `existing_json` empty: the body to create, with the target's labels and annotations (minus
//    kubectl's last-applied-configuration), the controller ownerReference, the spec copied
//    without cluster IPs (except "None") and node ports, which the API server allocates;
//  - else: the update of `existing_json` (its metadata, cluster IPs and node ports kept), or
//    nullopt when it is up to date (spec, labels, annotations, ownerReferences).
// `promotion`: Flagger's Promote, labels and annotations include-prefix-filtered.
// Why a Service target cannot be routed by `provider` (the effective provider string), or "".
// Flagger's ServiceController names the copies after the target (`<target>-primary`,
// `<target>-canary`), while every router but `kubernetes` sends traffic to `<apex>-primary` and
// `<apex>-canary` (apex = spec.service.name, else the target): with a service.name other than
// the target's, Flagger writes routes to Services nobody creates. canaryd refuses that Canary.
std::string service_target_name_error(const canary& c, std::string_view provider);

text_result<std::optional<std::string>> make_service_copy(const canary& c, std::string_view svc_json, std::string_view name,
                                                          std::string_view existing_json, const primary_options& o,
                                                          bool promotion);

}  // namespace canaryd::core
