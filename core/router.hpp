#pragma once
// A traffic provider's routing rules, pure (flagger-behaviour.md §5; how to add one:
// docs/providers.md). One implementation per provider, in one file per provider
// (core/istio.cpp, core/gatewayapi.cpp); each says
//   - which objects it owns for a Canary (kind and name, in Flagger's reconcile order) and which
//     of them carries the routes;
//   - the object to create when one is missing, and the write that brings an existing one (the
//     user's, taken over, or ours) to the Canary's spec while keeping the routes in force;
//   - the routes in force, read back from the routes object;
//   - the write that sets new routes (weights, mirror, session affinity cookies);
//   - the write finalize (revertOnDeletion) makes to restore what reconcile took over.
// Every write is a whole object for a PUT, computed from the object as read, or nullopt when
// the object already is what it should be: an idle reconcile and a SetRoutes to the routes in
// force write nothing. The watching, creating, updating and retrying is mesh/object_router.cpp,
// written once for all providers.
//
// Thread affinity: none (pure). Errors: result values with Flagger's messages.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/provider.hpp"
#include "core/rollout.hpp"
#include "core/services.hpp"

namespace canaryd::core {

// An API resource a provider writes (the k8s::resource of mesh/, without k8s/ in core/).
struct object_kind {
  std::string group;
  std::string version;
  std::string plural;
  std::string kind;
  bool namespaced = true;
  friend bool operator==(const object_kind&, const object_kind&) = default;
};

struct owned_object {
  object_kind kind;
  std::string name;          // in the Canary's namespace
  bool holds_routes = false;  // the one read back by observe and written by set_routes
};

// What finalize writes: the object to PUT (nullopt: nothing), and a warning to log when there is
// nothing to restore (Istio's "original configuration not found, unable to revert").
struct finalize_write {
  std::optional<std::string> body;
  std::string warning;
};

using write_result = service_result<std::optional<std::string>>;

class route_provider {
 public:
  virtual ~route_provider() = default;
  // For messages: "Istio", "Gateway API".
  virtual std::string_view display_name() const = 0;
  // Whether the objects live on the service mesh's cluster (-kubeconfig-service-mesh; Flagger's
  // router factory hands these routers its meshClient: Istio, Gateway API, SMI, Contour, Gloo,
  // Traefik, APISIX, Kuma, App Mesh) or on the main cluster, beside the workloads (Flagger's
  // kubeClient: the nginx and Skipper Ingresses; Knative's own client).
  virtual bool on_mesh_cluster() const { return true; }
  // Every kind objects() can name: the kinds the I/O side watches.
  virtual std::vector<object_kind> kinds() const = 0;
  // The objects for `c`, in reconcile order; exactly one holds the routes.
  virtual std::vector<owned_object> objects(const canary& c) const = 0;
  // Reconcile, object missing: the object to POST (routes 100/0). Errors: the Canary asks for
  // something the provider cannot express.
  virtual service_result<std::string> create_body(const canary& c, const owned_object& o) const = 0;
  // Reconcile, object present (ours, or the user's taken over): the PUT body, keeping the routes
  // in force; nullopt when nothing differs.
  virtual write_result reconcile_body(const canary& c, const owned_object& o, std::string_view existing) const = 0;
  // GetRoutes: the routes in force in the routes object.
  virtual service_result<traffic_routes> read_routes(const canary& c, std::string_view existing) const = 0;
  // SetRoutes on the routes object; nullopt when it already has exactly these routes.
  virtual write_result routes_body(const canary& c, std::string_view existing, const traffic_routes& routes,
                                   const session_cookies& cookies) const = 0;
  // Whether finalize (revertOnDeletion) restores anything; false: Flagger's Finalize is a no-op
  // for this provider, so finalize reads and writes nothing (a missing object is no error).
  virtual bool finalize_restores() const { return true; }
  // Finalize (revertOnDeletion) of one object.
  virtual service_result<finalize_write> finalize_body(const canary& c, const owned_object& o,
                                                       std::string_view existing) const = 0;
};

// Session affinity's Set-Cookie value, the same for every provider that has it (istio, Gateway
// API): "<name>=<value>; Max-Age=<max_age>" and the sessionAffinity attributes Flagger appends.
std::string set_cookie_value(const session_affinity& a, const std::string& cookie, long max_age);

// `body` (an object to POST) without metadata.ownerReferences: what a router creates on a mesh
// cluster other than the main one, where the Canary does not exist (Flagger's setOwnerRefs
// false). Errors: `body` is not a JSON object.
service_result<std::string> without_owner_references(std::string_view body);

// The rules for a provider with objects of its own; nullptr for `kubernetes` (the Services alone,
// mesh/kubernetes_router.cpp) and for providers without a router (refused: core/provider.hpp).
std::unique_ptr<route_provider> make_route_provider(const provider_name& p);

// Each provider's file defines its maker.
std::unique_ptr<route_provider> make_istio_provider();
std::unique_ptr<route_provider> make_gatewayapi_provider(std::string_view version);

}  // namespace canaryd::core
