#pragma once
// KEDA ScaledObjects as Flagger drives them (pkg/canary/scaled_object_reconciler.go,
// flagger-behaviour.md §4 "KEDA ScaledObject"): the `<so>-primary` ScaledObject that scales
// `<target>-primary`, the rewriting of its trigger queries, and the paused-replicas annotation
// that pauses the target's ScaledObject between canary runs. Pure: JSON text in, JSON text out.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/primary.hpp"

namespace canaryd::core {

// KEDA's annotation: while present, KEDA keeps the scale target at this many replicas and
// removes the ScaledObject's HPA.
inline constexpr std::string_view keda_paused_replicas_annotation = "autoscaling.keda.sh/paused-replicas";

// A trigger query for the primary when autoscalerRef.primaryScalerQueries is not set: every
// `<target>-canary` and every other `<target>` becomes `<target>-primary` (Flagger replaces
// `<target>-canary` by a placeholder first so that it does not become `<target>-primary-canary`).
// Like Flagger's, a query that already names `<target>-primary` gets `<target>-primary-primary`:
// users with such queries set primaryScalerQueries.
std::string primary_scaler_query(std::string_view query, std::string_view target);

// The trigger queries of the primary, in the order of spec.triggers (nullopt: the trigger has no
// metadata.query): with primaryScalerQueries, a named trigger's query is replaced by the query of
// its name and every other query is kept; without, each query is primary_scaler_query()'d.
std::vector<std::optional<std::string>> primary_trigger_queries(const canary& c, std::string_view scaled_object_json);

// The keda.sh/v1alpha1 ScaledObject `<autoscalerRef.name>-primary` from the target's: the spec
// fields Flagger copies (pollingInterval, cooldownPeriod, idleReplicaCount, min/maxReplicaCount
// with primaryScalerReplicas' overrides, advanced, triggers with rewritten queries, fallback),
// scaleTargetRef `<target>-primary` (kind, apiVersion and envSourceContainerName kept), and
// advanced.horizontalPodAutoscalerConfig.name suffixed `-primary` when set.
// `existing_json` empty: a new object (labels and annotations of the target's minus Flux's
// toolkit keys, the paused-replicas annotation and kubectl's last-applied-configuration; the
// Canary's controller ownerReference). Otherwise an update of that object: its metadata, with
// labels and annotations filtered by `include_label_prefix` (Flagger's update does so).
text_result<std::string> make_primary_scaled_object(const canary& c, std::string_view scaled_object_json,
                                                    std::string_view existing_json,
                                                    const std::vector<std::string>& include_label_prefix);

// Whether the spec of the primary ScaledObject differs from the wanted one (Flagger compares
// the spec only).
bool primary_scaled_object_differs(std::string_view wanted_json, std::string_view existing_json);

// The value of the paused-replicas annotation of a ScaledObject, or nullopt when not paused.
std::optional<std::string> scaled_object_paused_replicas(std::string_view scaled_object_json);

}  // namespace canaryd::core
