#pragma once
// The routing half of kubesim's traffic emulator: from a snapshot of cluster objects (plain
// Boost.JSON, as stored) to a traffic plan that says, for every Service receiving simulated
// requests and every class of request it sends, which pods of which workloads answer and at
// what rate. Pure: no Asio, no clock, no store; the emulator (traffic.hpp) feeds it and the
// counters (metrics.hpp) consume its plan.
//
// kubesim is the test oracle for canaryd's routers, so this file reads the providers' routing
// objects from their documentation and shares no code with canaryd's mesh/:
//  - kubernetes: a Service's spec.selector picks the ready pods of its namespace; requests
//    are shared equally among them (kube-proxy's round robin).
//  - Istio: a VirtualService (networking.istio.io v1, v1beta1 or v1alpha3) whose hosts match the
//    Service: spec.http routes are tried in order; a route applies when it has no match or one
//    of its HTTPMatchRequests matches (all conditions of one entry must hold: uri, scheme,
//    method, authority, headers, withoutHeaders, queryParams, port, sourceLabels); its
//    destinations share the requests by weight; mirror/mirrorPercentage (and mirrors[]) send
//    copies that the mirror's workload also reports. A destination's subset narrows the pods
//    by a DestinationRule subset's labels when one is defined, and is ignored otherwise.
//  - Gateway API: HTTPRoutes (gateway_api.hpp) route the requests sent through a Gateway (its
//    clients are configured by the same annotations as a Service's, plus kubesim.dev/hostname)
//    and those sent to a Service that is an HTTPRoute's parent (GAMMA).
//  - Knative Serving: a Knative Service's clients (the same annotations, on the Knative Service)
//    enter through the gateway and are split by its status.traffic percents among the revisions'
//    pods (their <revision>-private Services); each share is counted in Envoy's families with
//    envoy_cluster_name "<ns>/<revision>". Private Services are backends.
// Each reader returns a provider-neutral routing_decision (routing.hpp) that the planner resolves
// to pods; clients that keep cookies (kubesim.dev/session-requests) are split into one flow per
// set of cookies they hold, by the expected share of a session's requests sent with it.
//
// The annotations read (documented in docs/kubesim.md) are named in `annotations` below.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "k8s/http.hpp"

namespace kubesim::world {

namespace annotations {
// On a Service.
inline constexpr std::string_view rps = "kubesim.dev/rps";
inline constexpr std::string_view path = "kubesim.dev/path";
inline constexpr std::string_view header = "kubesim.dev/header";
inline constexpr std::string_view header_share = "kubesim.dev/header-share";
inline constexpr std::string_view cookie = "kubesim.dev/cookie";
inline constexpr std::string_view cookie_share = "kubesim.dev/cookie-share";
inline constexpr std::string_view source_workload = "kubesim.dev/source-workload";
// On a Service or Gateway: requests per simulated client, which keeps the cookies responses set.
inline constexpr std::string_view session_requests = "kubesim.dev/session-requests";
// On a workload's pod template.
inline constexpr std::string_view error_rate = "kubesim.dev/error-rate";
inline constexpr std::string_view error_code = "kubesim.dev/error-code";
inline constexpr std::string_view latency_ms = "kubesim.dev/latency-ms";
}  // namespace annotations

inline constexpr double default_rps = 20.0;
inline constexpr double default_latency_ms = 10.0;
inline constexpr int default_error_code = 500;
// Share of requests that carry the header/cookie when the annotation names one but no share.
inline constexpr double default_marked_share = 0.5;

using object_ptr = std::shared_ptr<const boost::json::object>;

// The objects the router reads, all namespaces, as stored.
struct cluster_objects {
  std::vector<object_ptr> services;
  std::vector<object_ptr> pods;
  std::vector<object_ptr> replica_sets;
  std::vector<object_ptr> deployments;
  std::vector<object_ptr> stateful_sets;
  std::vector<object_ptr> daemon_sets;
  std::vector<object_ptr> virtual_services;   // any served version; duplicates (same uid) ignored
  std::vector<object_ptr> destination_rules;
  // Gateway API (gateway.networking.k8s.io v1 and v1beta1; duplicates by uid ignored).
  std::vector<object_ptr> gateways;
  std::vector<object_ptr> http_routes;
  std::vector<object_ptr> reference_grants;
  std::vector<object_ptr> namespaces;  // for Gateway listeners' allowedRoutes selectors
  // Knative Services (serving.knative.dev/v1): their clients go through status.traffic.
  std::vector<object_ptr> knative_services;
  // Rate of a Service without the rps annotation (kubesim --default-rps; 0: only annotated
  // Services send requests, which keeps /metrics small for clusters of thousands of Services).
  double default_rps = world::default_rps;
};

// One simulated HTTP request, as the routing rules see it.
struct simulated_request {
  std::string method = "GET";
  std::string scheme = "http";
  std::string authority;  // "<service>.<namespace>:<port>", as Flagger's load tester calls it
  std::string path = "/"; // without the query
  std::vector<std::pair<std::string, std::string>> query;
  canaryd::http::headers headers;  // names in lower case
  int port = 80;
};

// How a workload answers (from its current pod template's annotations).
struct workload_behaviour {
  double error_rate = 0;              // 0..1
  double latency_ms = default_latency_ms;
  int error_code = default_error_code;
};

// One pod receiving a share of one flow.
struct traffic_leg {
  double rps = 0;
  bool mirrored = false;
  std::string service;      // the destination Service (destination_service_name)
  std::string service_namespace;
  std::string pod;
  std::string namespace_;   // the pod's namespace
  std::string workload;     // destination_workload: Deployment, StatefulSet, DaemonSet, ... name
  std::string workload_key; // "<namespace>/<workload>"
  workload_behaviour behaviour;
  std::string key;          // unique within the plan and stable across plans: the counters' state
  std::string path;         // the path the pod sees when a route rewrote it (the app's `path` label); empty: the flow's
  std::string envoy_cluster; // Knative: "<ns>/<revision>" (envoy_cluster_upstream_rq*); empty: none
};

// Requests that reach no pod: the source proxy answers them (404 no route, 503 no healthy
// upstream, or a VirtualService's redirect/directResponse).
struct unrouted_share {
  double rps = 0;
  int code = 0;
  std::string key;  // as traffic_leg::key
};

// One class of request sent to one Service, or through one Gateway (entry "Gateway").
struct traffic_flow {
  std::string namespace_;
  std::string service;           // the Service (or Gateway) the clients address
  std::string entry = "Service"; // "Service" or "Gateway"
  std::string request_class;     // "plain", "header", "cookie" or "marked" (header and cookie)
  std::string source_workload;   // "unknown" unless annotated
  std::string path = "/";        // the request path (the app's `path` label)
  double rps = 0;
  std::string virtual_service;   // "<ns>/<name>" that routed it, empty for the Service selector
  std::string router;            // the routing object that decided: "HTTPRoute <ns>/<name>", "VirtualService <ns>/<name>"
  std::vector<traffic_leg> legs;
  std::vector<unrouted_share> unrouted;
};

struct traffic_plan {
  std::vector<traffic_flow> flows;
  // "<ns>/<workload>" of every existing pod's workload (whether or not it receives traffic).
  std::map<std::string, workload_behaviour> workloads;
  // "<ns>/<pod>" of every existing pod, to drop the series of deleted ones.
  std::vector<std::string> pods;
  // Bad annotations or routing objects, one sentence each (logged by the emulator).
  std::vector<std::string> problems;
};

traffic_plan plan_traffic(const cluster_objects& objects);

// --- Pieces exposed for unit tests -------------------------------------------------------------

// The classes of request a Service sends, with their shares of its rate (summing to 1 when
// the rate is positive). Problems with the annotations are appended to `problems`.
struct request_class {
  std::string name;
  double share = 1;
  simulated_request request;
};
std::vector<request_class> request_classes(const boost::json::object& service,
                                           std::vector<std::string>& problems);

// The requests-per-second annotation: default 20/s; negative or unparsable values are problems
// and give the default.
double service_rps(const boost::json::object& service, double fallback, std::vector<std::string>& problems);

// Istio's StringMatch (exact, prefix, regex with RE2 full-match semantics; an empty match only
// asks for presence). `value` is null when the header or parameter is absent.
bool string_match(const boost::json::value& match, const std::string* value, std::vector<std::string>& problems);

// One HTTPMatchRequest against a request sent by a source without labels.
bool http_match(const boost::json::object& match, const simulated_request& req, std::vector<std::string>& problems);

// Istio host names to fully qualified ones: "a" -> "a.<ns>.svc.cluster.local",
// "a.b" -> "a.b.svc.cluster.local", "a.b.svc" -> "a.b.svc.cluster.local"; others unchanged.
std::string qualify_host(std::string_view host, std::string_view ns);
// Whether a VirtualService host (qualified, possibly "*" or "*.suffix") covers `fqdn`.
bool host_covers(std::string_view vs_host, std::string_view fqdn);

bool pod_ready(const boost::json::object& pod);
workload_behaviour parse_behaviour(const boost::json::object* annotations, std::vector<std::string>& problems);

}  // namespace kubesim::world
