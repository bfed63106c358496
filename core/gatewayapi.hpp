#pragma once
// The Gateway API provider (`gatewayapi:v1`, `gatewayapi:v1beta1`; Flagger's GatewayAPIRouter,
// flagger-behaviour.md §5): the HTTPRoute `<apex>` (gateway.networking.k8s.io), pure. Its
// route_provider (core/router.hpp) is make_gatewayapi_provider(); the functions here are the
// same rules, for tests.
//
// Flagger's behaviour, kept:
//   - parentRefs from service.gatewayRefs (required: "GatewayRefs must be specified when using
//     Gateway API as a provider."), hostnames from service.hosts;
//   - one rule: matches from service.match (uri exact/prefix/regex, method exact, headers and
//     queryParams exact/regex; anything else is refused), default a path prefix `/`; filters
//     RequestHeaderModifier / ResponseHeaderModifier (sorted by name), URLRewrite (authority,
//     uri with rewrite.type), RequestMirror per service.mirror, CORS from corsPolicy; timeouts
//     {request: timeout, backendRequest: backendTimeout}; backendRefs primary / canary (port
//     service.port) with their weights (0 written, not omitted);
//   - A/B (analysis.match): rule 0 matches analysis.match x service.match (headers and query
//     params of the analysis match replace the service's), rule 1 sends service.match to the
//     primary alone;
//   - Blue/Green mirroring (mirrored and analysis.iterations > 0): a RequestMirror filter to
//     `<apex>-canary` on the weighted rule;
//   - session affinity: while the canary has weight, its backendRef sets the canary cookie
//     (ResponseHeaderModifier Set-Cookie, the istio scheme) and a rule before the weighted one
//     sends requests whose Cookie header matches `.*<name>.*<value>.*` to the canary; with
//     primaryCookieName the primary's backendRef sets its cookie (Max-Age = the interval) and a
//     rule keeps those requests on the primary; at weight 0 the sticky rule matches the previous
//     cookie and deletes it (Max-Age=-1);
//   - reconcile ignores weights, sticky rules, backendRef filters and the B/G mirror filter;
//     foreign annotations (other controllers') are kept; finalize restores nothing (Flagger's
//     Finalize is a no-op: the HTTPRoute goes with the Canary through its ownerReference).
// Difference: Flagger walks Go maps for headers and query params (random order); here they are
// sorted by name, so the object is stable and an idle reconcile writes nothing.
//
// Thread affinity: none (pure). Errors: result values with Flagger's messages.
#include <optional>
#include <string>
#include <string_view>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "core/router.hpp"

namespace canaryd::core::gatewayapi {

// The HTTPRoute to create (routes 100/0); `version` is v1 or v1beta1.
service_result<std::string> http_route_create_body(const canary& c, std::string_view version);
// Reconcile of an existing one (ours or the user's): the PUT body keeping the routes in force, or
// nullopt when nothing differs.
write_result http_route_reconcile_body(const canary& c, std::string_view existing_json);
// GetRoutes: the weights of the last rule with the primary and canary backendRefs, and whether
// any rule mirrors to the canary. Errors: no such rule, bad JSON.
service_result<traffic_routes> read_routes(const canary& c, std::string_view existing_json);
// SetRoutes: the PUT body with `routes` (and the cookies' rules), or nullopt when in force.
write_result http_route_routes_body(const canary& c, std::string_view existing_json, const traffic_routes& routes,
                                    const session_cookies& cookies = {});

}  // namespace canaryd::core::gatewayapi
