#pragma once
// The Canary of flagger.app/v1beta1: every field of Flagger's CRD (shared/reference/flagger/crd.yaml),
// decoded from the JSON the API server sends, with Flagger's defaults (as accessors, so the
// decoded value still says what the user wrote) and its validation, stricter where Flagger would
// silently misbehave. Sub-objects that routers copy verbatim (service.trafficPolicy, match,
// headers, corsPolicy, retries, rewrite, mirror and analysis.match) are also kept as canonical
// JSON text in the `*_json` members, so a router can emit exactly what the user wrote.
//
// Pure: no I/O, no clock. Decoding never throws and never stops at the first error.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/field_error.hpp"
#include "core/wall_time.hpp"

namespace canaryd::core {

enum class canary_phase {
  none,  // "" (a Canary nobody has initialized yet)
  initializing,
  initialized,
  waiting,
  progressing,
  waiting_promotion,
  promoting,
  finalising,
  succeeded,
  failed,
  terminating,
  terminated,
};
std::string_view to_string(canary_phase p);  // "", "Initializing", ..., "WaitingPromotion", ...
std::optional<canary_phase> parse_phase(std::string_view text);

enum class webhook_type {
  rollout,  // also "" in the spec
  confirm_rollout,
  pre_rollout,
  confirm_promotion,
  post_rollout,
  event,
  rollback,
  confirm_traffic_increase,
};
std::string_view to_string(webhook_type t);                        // "rollout", "confirm-rollout", ...
std::optional<webhook_type> parse_webhook_type(std::string_view text);  // "" is rollout

// Canary.DeploymentStrategy(): A/B needs match and iterations; iterations alone is Blue/Green.
enum class deployment_strategy { canary, blue_green, ab_testing };
std::string_view to_string(deployment_strategy s);  // "canary", "blue-green", "ab-testing"

struct object_metadata {
  std::string name;
  std::string namespace_;
  std::string uid;
  std::string resource_version;
  std::int64_t generation = 0;
  std::optional<wall_time> deletion_timestamp;
  std::vector<std::string> finalizers;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

// targetRef, ingressRef, routeRef: {apiVersion, kind, name}.
struct local_object_reference {
  std::string api_version;
  std::string kind;
  std::string name;
};

// upstreamRef (Gloo): may name another namespace.
struct upstream_reference {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string namespace_;
};

struct scaler_replicas {
  std::optional<int> min_replicas;
  std::optional<int> max_replicas;
};

struct autoscaler_reference {
  std::string api_version;
  std::string kind;  // HorizontalPodAutoscaler or ScaledObject
  std::string name;
  std::map<std::string, std::string> primary_scaler_queries;  // KEDA trigger name -> query
  std::optional<scaler_replicas> primary_scaler_replicas;
};

struct custom_metadata {
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct unmanaged_metadata {
  std::vector<std::string> labels;
  std::vector<std::string> annotations;
};

// x-kubernetes-int-or-string (service.targetPort).
struct int_or_string {
  bool is_string = false;
  int int_value = 0;
  std::string string_value;
};

// Istio StringMatch: exactly one of the members is normally set (suffix only in analysis.match).
struct string_match {
  std::string exact;
  std::string prefix;
  std::string suffix;
  std::string regex;
};

// Istio HTTPMatchRequest as the CRD allows it, for service.match and analysis.match.
struct http_match_request {
  std::string name;
  std::optional<string_match> uri;
  std::optional<string_match> scheme;
  std::optional<string_match> method;
  std::optional<string_match> authority;
  std::map<std::string, string_match> headers;
  std::map<std::string, string_match> query_params;
  std::map<std::string, string_match> without_headers;
  std::optional<int> port;
  std::map<std::string, std::string> source_labels;
  std::vector<std::string> gateways;
  bool ignore_uri_case = false;
  std::string source_namespace;
};

struct http_retry {
  std::optional<int> attempts;
  std::string per_try_timeout;
  std::string retry_on;
};

struct http_rewrite {
  std::string uri;
  std::string authority;
  std::string type;  // ReplaceFullPath (default) or ReplacePrefixMatch
};

struct header_operations {
  std::map<std::string, std::string> set;
  std::map<std::string, std::string> add;
  std::vector<std::string> remove;
};

struct headers_policy {
  header_operations request;
  header_operations response;
};

struct cors_policy {
  std::vector<std::string> allow_origin;
  std::vector<string_match> allow_origins;
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  std::string max_age;
  std::optional<bool> allow_credentials;
};

// Gateway API BackendObjectReference.
struct backend_object_reference {
  std::string group;
  std::string kind = "Service";
  std::string name;
  std::string namespace_;
  std::optional<int> port;
};

struct mirror_fraction {
  int numerator = 0;
  std::optional<int> denominator;
};

// Gateway API HTTPRequestMirrorFilter (service.mirror[]).
struct request_mirror {
  backend_object_reference backend_ref;
  std::optional<int> percent;
  std::optional<mirror_fraction> fraction;
};

// Gateway API ParentReference (service.gatewayRefs[]).
struct parent_reference {
  std::string group = "gateway.networking.k8s.io";
  std::string kind = "Gateway";
  std::string namespace_;
  std::string name;
  std::string section_name;
  std::optional<int> port;
};

struct canary_service {
  std::string name;  // apex service name; "" means targetRef.name
  int port = 0;
  std::string port_name;  // "" means "http"
  std::optional<int_or_string> target_port;
  std::string app_protocol;
  std::string traffic_distribution;  // PreferClose, PreferSameZone, PreferSameNode
  bool port_discovery = false;
  bool headless = false;
  std::string timeout;
  std::string backend_timeout;
  std::string mesh_name;
  std::vector<std::string> backends;
  std::vector<std::string> hosts;
  bool delegation = false;
  std::vector<std::string> gateways;
  std::vector<parent_reference> gateway_refs;

  std::vector<http_match_request> match;
  std::optional<http_retry> retries;
  std::optional<http_rewrite> rewrite;
  std::vector<request_mirror> mirror;
  std::optional<headers_policy> headers;
  std::optional<cors_policy> cors;  // corsPolicy

  // Canonical JSON of the members above as written ("" when absent), and of trafficPolicy,
  // which is only ever copied verbatim (into Istio DestinationRules).
  std::string match_json;
  std::string retries_json;
  std::string rewrite_json;
  std::string mirror_json;
  std::string headers_json;
  std::string cors_policy_json;
  std::string traffic_policy_json;

  std::optional<custom_metadata> apex;
  std::optional<custom_metadata> primary;
  std::optional<custom_metadata> canary;
  std::optional<unmanaged_metadata> unmanaged;
};

struct threshold_range {
  std::optional<double> min;
  std::optional<double> max;
};

// templateRef / providerRef: a name and an optional namespace (default: the canary's).
struct cross_namespace_reference {
  std::string name;
  std::string namespace_;
};

struct canary_metric {
  std::string name;
  std::string interval;  // as written; effective_interval() applies the "1m" default
  double threshold = 0;  // deprecated: a minimum for request-success-rate, a maximum otherwise
  std::optional<threshold_range> range;  // thresholdRange
  std::string query;                     // deprecated inline PromQL
  std::optional<cross_namespace_reference> template_ref;
  std::map<std::string, std::string> template_variables;

  // The interval Flagger queries with: "1m" when none is set. [quirk] Flagger defaults it only for
  // built-in and inline metrics, so a templateRef metric without one renders {{ interval }} as ""
  // and time-window providers fail; fixed here: every metric gets "1m".
  std::string effective_interval() const { return interval.empty() ? "1m" : interval; }
  bool is_builtin() const { return name == "request-success-rate" || name == "request-duration"; }
};

struct canary_alert {
  std::string name;
  std::string severity;  // "", info, warn, error
  cross_namespace_reference provider_ref;
};

struct canary_webhook {
  std::string name;
  webhook_type type = webhook_type::rollout;
  std::string url;
  std::string timeout;  // as written; effective_timeout() applies Flagger's default
  int retries = 0;
  bool mute_alert = false;
  bool disable_tls = false;
  std::map<std::string, std::string> metadata;

  // 10s when unset or shorter than two characters (as Flagger's CallWebhook).
  std::chrono::milliseconds effective_timeout() const;
};

struct session_affinity {
  std::string cookie_name;
  std::string primary_cookie_name;
  std::string domain;
  bool http_only = false;
  int max_age = 86400;
  bool partitioned = false;
  std::string path;
  std::string same_site;  // Strict, Lax, None
  bool secure = false;
};

struct canary_analysis {
  std::string interval;  // as written; canary::analysis_interval() applies the default
  int iterations = 0;
  int threshold = 0;
  int max_weight = 0;
  int step_weight = 0;
  std::vector<int> step_weights;
  int step_weight_promotion = 0;
  bool mirror = false;
  int mirror_weight = 0;
  std::optional<int> primary_ready_threshold;
  std::optional<int> canary_ready_threshold;
  std::vector<http_match_request> match;
  std::string match_json;  // canonical JSON of match as written ("" when absent)
  std::vector<canary_metric> metrics;
  std::vector<canary_alert> alerts;
  std::vector<canary_webhook> webhooks;
  std::optional<session_affinity> affinity;  // sessionAffinity
};

struct canary_spec {
  std::string provider;  // "" means the -mesh-provider flag
  std::string metrics_server;
  std::optional<int> progress_deadline_seconds;
  local_object_reference target_ref;
  std::optional<autoscaler_reference> autoscaler_ref;
  std::optional<local_object_reference> ingress_ref;
  std::optional<local_object_reference> route_ref;
  std::optional<upstream_reference> upstream_ref;
  canary_service service;
  bool skip_analysis = false;
  bool revert_on_deletion = false;
  bool suspend = false;
  std::optional<canary_analysis> analysis;
};

struct canary_condition {
  std::string type;
  std::string status;  // True, False, Unknown
  std::optional<wall_time> last_update_time;
  std::optional<wall_time> last_transition_time;
  std::string reason;
  std::string message;
  friend bool operator==(const canary_condition&, const canary_condition&) = default;
};

struct canary_status {
  canary_phase phase = canary_phase::none;
  int failed_checks = 0;
  int canary_weight = 0;
  int iterations = 0;
  std::optional<std::map<std::string, std::string>> tracked_configs;  // "configmap/x" -> checksum
  std::string last_applied_spec;
  std::string last_promoted_spec;
  std::optional<wall_time> last_transition_time;
  std::string session_affinity_cookie;
  std::string primary_session_affinity_cookie;
  std::string previous_session_affinity_cookie;
  std::vector<canary_condition> conditions;

  const canary_condition* condition(std::string_view type) const;
  friend bool operator==(const canary_status&, const canary_status&) = default;
};

// The finalizer Flagger adds when revertOnDeletion is set.
inline constexpr std::string_view canary_finalizer = "finalizer.flagger.app";

struct canary {
  std::string api_version;
  std::string kind;
  object_metadata metadata;
  canary_spec spec;
  canary_status status;

  // "<name>.<namespace>": how Flagger names a canary in events, logs and alerts.
  std::string id() const { return metadata.name + "." + metadata.namespace_; }
  // "<target>.<namespace>".
  std::string target_id() const { return spec.target_ref.name + "." + metadata.namespace_; }

  // GetServiceNames: apex = service.name or targetRef.name; <apex>-primary; <apex>-canary.
  std::string apex_service_name() const;
  std::string primary_service_name() const { return apex_service_name() + "-primary"; }
  std::string canary_service_name() const { return apex_service_name() + "-canary"; }
  // Workloads (and their HPAs) are always named after the target.
  std::string primary_workload_name() const { return spec.target_ref.name + "-primary"; }

  // Flagger's accessors with their defaults:
  // analysis interval: 60s when unset. [quirk] Flagger also uses 60s for an unparsable interval
  // and clamps anything below 10s up to 10s; we reject an unparsable interval in validation and
  // accept down to 1s (fast tests), which docs/ states.
  std::chrono::milliseconds analysis_interval() const;
  int analysis_threshold() const;          // threshold, 1 when <= 0
  int progress_deadline_seconds() const;   // 600 when unset
  int primary_ready_threshold() const;     // 100 when unset
  int canary_ready_threshold() const;      // 100 when unset
  bool skip_analysis() const;              // also true when there is no analysis
  std::string port_name() const;           // "http" when unset
  deployment_strategy strategy() const;
  bool is_knative_target() const;          // kind Service, apiVersion serving.knative.dev/*
  bool has_finalizer() const;              // finalizer.flagger.app present
  const canary_analysis& analysis_or_empty() const;
};

struct decode_options {
  // -no-cross-namespace-refs: reject templateRef, providerRef and upstreamRef namespaces other
  // than the canary's.
  bool no_cross_namespace_refs = false;
};

// Decodes a Canary object (the JSON of a GET or a watch event) and validates it: errors name the
// field ("spec.analysis.maxWeight: must be at most 100, got 150"). A canary with errors must not
// be acted on; the daemon reports them through rollout::decide (condition Promoted=False and a
// Warning event) and goes on with every other canary.
decoded<canary> decode_canary(std::string_view json, const decode_options& options = {});

// Validation alone (decode_canary already runs it).
std::vector<field_error> validate(const canary& c, const decode_options& options = {});

// The status as JSON for the status subresource, with Flagger's field names and omissions.
std::string encode_status(const canary_status& status);

// Flagger's providers (the CRD's enum for spec.provider).
bool is_known_provider(std::string_view provider);

}  // namespace canaryd::core
