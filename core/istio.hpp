#pragma once
// The pure half of the Istio router (Flagger's IstioRouter, flagger-behaviour.md §5): the
// VirtualService `<apex>` and the DestinationRules `<apex>-primary` and `<apex>-canary` built
// from the Canary, the routes read back from a VirtualService, and the write (if any) that brings
// an existing object to what the Canary wants. mesh/istio_router.cpp reads the objects from the
// caches and sends the writes.
//
// Flagger's behaviour, kept:
//   - hosts: service.hosts plus the apex name unless it (or "*") is listed; gateways:
//     service.gateways, or ["mesh"] when none; delegation: neither (and an error if the Canary
//     sets them);
//   - http[0]: service.match, rewrite (Istio fields), timeout, retries, corsPolicy, headers and
//     the weighted route [<apex>-primary, <apex>-canary]; with analysis.match (A/B), http[0]
//     matches analysis.match merged with service.match and http[1] routes service.match to the
//     primary; mirroring sets http[0].mirror (and mirrorPercentage from mirrorWeight);
//   - destination ports only with portDiscovery and a non-mesh first gateway, or delegation;
//   - a weight of 0 is omitted, as Go's omitempty writes it (a lone destination then takes 100);
//   - metadata: service.apex labels/annotations plus filterMetadata's two `disabled`
//     annotations; the Canary's controller ownerReference on created objects;
//   - reconcile compares specs ignoring route weights and mirrors; when they differ, the old spec
//     is kept in `flagger.kubernetes.io/original-configuration` (unless kubectl's
//     last-applied-configuration is there), which finalize restores.
// Differences: [quirk] Flagger's reconcile resets the weights of a VirtualService it updates to
// 100/0 although its comment says it keeps them; canaryd keeps the weights and mirror in force.
// [quirk] Flagger also overwrites original-configuration on each later spec change, losing the
// user's original; canaryd stores it once.
// Session affinity (flagger-behaviour.md §5): while the canary has weight, its destination sets
// the canary cookie (Max-Age = sessionAffinity.maxAge) and a route named "sticky-route" before
// the weighted one sends requests carrying it to the canary; with primaryCookieName the primary
// sets its cookie (Max-Age = the analysis interval) and "sticky-route-primary" keeps those on the
// primary (our name; Flagger's is not in the reference). At weight 0 the sticky route deletes the
// previous cookie (Max-Age=-1). Reconcile ignores the sticky routes and Set-Cookie headers.
//
// Thread affinity: none (pure). Errors: result values with Flagger's messages.
#include <optional>
#include <string>
#include <string_view>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "core/services.hpp"

namespace canaryd::core::istio {

inline constexpr std::string_view original_configuration_annotation = "flagger.kubernetes.io/original-configuration";
inline constexpr std::string_view api_version = "networking.istio.io/v1beta1";

// The VirtualService spec with `routes` in force (Reconcile uses 100/0; SetRoutes the new ones).
// Errors: delegation with hosts or gateways, or unparsable sub-objects.
// With sessionAffinity, SetRoutes' spec also has the sticky route(s) and Set-Cookie headers
// for `cookies` (getSessionAffinityRouteRules).
service_result<std::string> virtual_service_spec(const canary& c, const traffic_routes& routes,
                                                 const session_cookies& cookies = {});

// GetRoutes: the weights of the http route that has the canary destination, and whether it
// mirrors. Errors: Flagger's "VirtualService <apex>.<ns> does not contain routes for ..." or bad JSON.
service_result<traffic_routes> read_routes(const canary& c, std::string_view virtual_service_json);

// A missing VirtualService: the object to POST, routes 100/0.
service_result<std::string> virtual_service_create_body(const canary& c);
// An existing one: the PUT body that brings it to the Canary's spec and metadata while keeping
// the weights and mirror in force, or nullopt when nothing differs (an idle reconcile writes
// nothing).
service_result<std::optional<std::string>> virtual_service_reconcile_body(const canary& c, std::string_view existing_json);
// SetRoutes: the PUT body with `routes`, or nullopt when the object already has exactly that.
service_result<std::optional<std::string>> virtual_service_routes_body(const canary& c, std::string_view existing_json,
                                                                       const traffic_routes& routes,
                                                                       const session_cookies& cookies = {});
// Finalize: the PUT body restoring the spec from kubectl's last-applied-configuration or from
// the original-configuration annotation; nullopt when neither is there (Flagger logs and does
// nothing) or the spec already is that.
service_result<std::optional<std::string>> virtual_service_finalize_body(const canary& c, std::string_view existing_json);

// DestinationRule `host` (the primary or canary Service name) with service.trafficPolicy.
std::string destination_rule_create_body(const canary& c, std::string_view host);
service_result<std::optional<std::string>> destination_rule_update_body(const canary& c, std::string_view host,
                                                                        std::string_view existing_json);

}  // namespace canaryd::core::istio
