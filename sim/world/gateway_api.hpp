#pragma once
// kubesim's reader of Gateway API routing (gateway.networking.k8s.io v1 and v1beta1), written from
// the specification (the HTTPRoute, Gateway and ReferenceGrant API reference, as the descriptions
// of the published CRDs carry it); it shares no code with canaryd's routers, whose oracle it is.
//
// Entry points:
//  - a Gateway: simulated clients send requests to one of its HTTP/HTTPS listeners with a Host
//    header; the listener is the one whose hostname matches the host best (exact, then the
//    longest wildcard, then none). HTTPRoutes attach through parentRefs (group
//    gateway.networking.k8s.io, kind Gateway, namespace defaulting to the route's, optional
//    sectionName and port) when the listener's allowedRoutes admit the route's namespace
//    (Same by default, All, or a Selector on the namespace's labels) and kind;
//  - a Service (GAMMA): HTTPRoutes whose parentRef is the core Service route the requests its
//    clients send to it (hostnames are not considered).
// Among attached routes whose hostnames cover the host, the rule is chosen by the spec's
// precedence: the route's most specific matching hostname (non-wildcard characters, then
// characters), then the match with an Exact path, then a RegularExpression path (the spec leaves
// its rank to the implementation; kubesim ranks it between Exact and PathPrefix, as Envoy-based
// gateways do), then the longest PathPrefix, a method, most headers, most query params; then the
// oldest route, its "<namespace>/<name>", and the first rule in list order. No match: 404.
//
// A rule's filters apply in order: RequestRedirect answers with its statusCode (302 by default);
// URLRewrite path (ReplaceFullPath, ReplacePrefixMatch) changes the path the backend sees;
// RequestHeaderModifier changes the request the backends see; ResponseHeaderModifier's
// Set-Cookie (set or add) sets (or, with Max-Age <= 0, deletes) a cookie on the client;
// RequestMirror (percent or fraction, all by default) sends copies to its backend, whose pods
// count them; an ExtensionRef cannot be resolved here and is answered 500, as the spec asks.
// backendRefs share the requests by weight (default 1); a backendRef to another namespace needs a
// ReferenceGrant there; an invalid backendRef (not a core Service, not granted, no such Service)
// answers its share with 500, a Service without ready pods with 503; no backendRefs or all
// weights 0: 500. backendRef filters apply to that backend's share only.
#include <boost/json/object.hpp>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sim/world/routing.hpp"
#include "sim/world/traffic_model.hpp"

namespace kubesim::world::gateway_api {

inline constexpr std::string_view group = "gateway.networking.k8s.io";

// Annotation on a Gateway: the Host header of the requests its simulated clients send.
inline constexpr std::string_view hostname_annotation = "kubesim.dev/hostname";

class router {
 public:
  // Reads the Gateway API objects of `objs` (which must outlive the router).
  explicit router(const cluster_objects& objs);

  // Whether some HTTPRoute has Service <ns>/<name> as parent.
  bool routes_service(std::string_view ns, std::string_view name) const;

  // Requests entering `gateway` (a Gateway object of `objs`) with `req.authority` as Host.
  routing_decision through_gateway(const boost::json::object& gateway, const simulated_request& req) const;

  // Requests addressed to Service <ns>/<name>, or nullopt when no HTTPRoute has it as parent.
  std::optional<routing_decision> for_service(std::string_view ns, std::string_view name,
                                              const simulated_request& req) const;

  // The Host header a Gateway's clients send: its kubesim.dev/hostname annotation, else the first
  // listener's non-wildcard hostname, else the first hostname of the oldest HTTPRoute attached to
  // it, else "<gateway>.<namespace>".
  std::string client_host(const boost::json::object& gateway) const;

  // Gateways (deduplicated), oldest first.
  const std::vector<const boost::json::object*>& gateways() const { return gateways_; }

  // "<ns>/<name>" of the Services HTTPRoutes send to (backendRefs and mirrors) without being
  // their parent: Flagger's <svc>-primary and <svc>-canary. Clients call the parent, so these
  // send no requests of their own unless annotated.
  const std::set<std::string>& backends() const { return backends_; }

  // Problems found while indexing (logged by the emulator).
  const std::vector<std::string>& problems() const { return problems_; }

  struct route_info {
    const boost::json::object* obj = nullptr;
    std::string ns, name, created;
  };

 private:
  routing_decision decide(const std::vector<const route_info*>& routes, const std::string& host,
                          const boost::json::object* listener, const simulated_request& req) const;

  std::vector<route_info> routes_;  // oldest first, then by "<ns>/<name>"
  std::vector<const boost::json::object*> gateways_;
  std::vector<const boost::json::object*> grants_;
  std::unordered_map<std::string, const boost::json::object*> namespaces_;  // by name
  std::set<std::string> backends_;
  std::set<std::string> service_parents_;  // "<ns>/<name>"
  std::vector<std::string> problems_;
};

// --- Pieces exposed for unit tests --------------------------------------------------------------

// Whether a Gateway API hostname (possibly "*.suffix", which covers one or more labels) covers
// `host` (no port).
bool hostname_covers(std::string_view pattern, std::string_view host);

// Whether an HTTPPathMatch (type Exact, PathPrefix (element-wise) or RegularExpression; defaults
// PathPrefix "/") matches `path`.
bool path_matches(const boost::json::object* path_match, std::string_view path, std::vector<std::string>& problems);

// Whether one HTTPRouteMatch (path, headers, queryParams, method) matches the request.
bool route_match(const boost::json::object& match, const simulated_request& req, std::vector<std::string>& problems);

}  // namespace kubesim::world::gateway_api
