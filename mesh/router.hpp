#pragma once
// A router: how canaryd points traffic at the primary and the canary for one provider
// (Flagger's router.KubernetesRouter and router.Interface). The Kubernetes router manages the
// apex, -primary and -canary Services for every provider; a mesh router manages its provider's
// objects on top: the `kubernetes` provider has none (mesh/kubernetes_router.cpp), every other
// provider's objects are driven by mesh/object_router.cpp from its pure rules in core/
// (core/router.hpp; docs/providers.md).
//
// mesh/ depends on core/ and k8s/ only: what it needs from the process comes in a
// router_context. Reads come from watch caches; writes go through the API client.
// Thread affinity: the io_context thread. Errors: action_result values.
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/canary.hpp"
#include "core/router.hpp"
#include "core/rollout.hpp"
#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"

namespace canaryd {

// The outcome of an action on the cluster: nothing, or a message for a Warning event and a log
// line (Flagger's recordEventWarningf("%v", err)). (The daemon declares the same alias.)
using action_result = boost::system::result<void, std::string>;

// What routers share with the rest of the process. The caches and clients are owned by the
// caller and outlive every router.
struct router_context {
  k8s::api_client& client;  // the main cluster: Services, workloads
  k8s::cache& deployments;  // the targets (service ports), by targetRef.kind
  k8s::cache& daemonsets;
  k8s::cache& statefulsets;
  k8s::cache& services;
  std::string watch_namespace;  // the provider caches watch only this namespace ("" = all)
  std::vector<std::string> selector_labels;
  // -kubeconfig-service-mesh: the cluster of the mesh objects (VirtualServices,
  // DestinationRules, HTTPRoutes: Flagger's meshClient); nullptr: the main cluster. Its own
  // client, so its own rate limit and deadlines; the object router's caches watch it.
  k8s::api_client* mesh_client = nullptr;
  // Whether created mesh objects carry the Canary's ownerReference: false when the mesh cluster
  // is another API server (Flagger's setOwnerRefs), where no Canary could own them.
  bool mesh_owner_references = true;

  // Where `rules` keeps its objects (core::route_provider::on_mesh_cluster()).
  k8s::api_client& client_for(const core::route_provider& rules) const {
    return rules.on_mesh_cluster() && mesh_client ? *mesh_client : client;
  }
  bool owner_references_for(const core::route_provider& rules) const {
    return !rules.on_mesh_cluster() || !mesh_client || mesh_owner_references;
  }

  // Ownership (docs/ownership.md): "" when `object` (of `kind`, e.g. "VirtualService") may be
  // written for the Canary, else why not. Asked right before a mesh object is updated, which
  // covers a first tick whose refusal check ran before the provider's caches had synced. Unset:
  // no check.
  std::function<std::string(const core::canary&, const std::string& kind, const k8s::object& object)> foreign_owner;

  // A provider's object (of `kind`, e.g. "VirtualService") was added, changed or deleted in its
  // cache: wakes the refused Canaries that would write it, so that a refusal under rule 4 is
  // looked at again when the object's owner changes, not only when the Canary does. Unset: nobody.
  std::function<void(const std::string& kind, std::string_view namespace_name, std::string_view name)>
      mesh_object_changed;
};

// The Kubernetes Services: initialize_services, reconcile_apex, finalize (revertOnDeletion).
class service_router {
 public:
  virtual ~service_router() = default;
  // <apex>-primary and <apex>-canary ClusterIP Services (kubeRouter.Initialize).
  virtual boost::asio::awaitable<action_result> initialize(const core::canary& c) = 0;
  // The apex Service, selecting the primary (kubeRouter.Reconcile).
  virtual boost::asio::awaitable<action_result> reconcile(const core::canary& c) = 0;
  // revertOnDeletion: the apex selects the target's own pods again.
  virtual boost::asio::awaitable<action_result> finalize(const core::canary& c) = 0;
};

// A provider's traffic router (reconcile_mesh, set_routes, get routes, finalize_routers).
class mesh_router {
 public:
  virtual ~mesh_router() = default;
  virtual boost::asio::awaitable<action_result> reconcile(const core::canary& c) = 0;
  // From the caches, no request: the routes in force, or routes_error.
  virtual void observe(const core::canary& c, core::observed_state& obs) const = 0;
  // The routes, and the session affinity cookies they carry (istio and Gateway API).
  virtual boost::asio::awaitable<action_result> set_routes(const core::canary& c, core::set_routes r) = 0;
  virtual boost::asio::awaitable<action_result> finalize(const core::canary& c) = 0;
  // The provider's objects for `c` that exist in its caches, with their kinds ("VirtualService",
  // "DestinationRule", "HTTPRoute"): what the ownership check reads before a tick writes anything.
  virtual std::vector<std::pair<std::string, k8s::object_ptr>> existing(const core::canary& c) const {
    (void)c;
    return {};
  }
  // The (kind, name) of every object the router would write for `c`, existing or not, in the
  // Canary's namespace: what a change reported through mesh_object_changed is matched against.
  virtual std::vector<std::pair<std::string, std::string>> object_names(const core::canary& c) const {
    (void)c;
    return {};
  }
  // Waits (at most 10 s) until the provider's caches have their first list, so that existing()
  // sees every object; false when they did not sync (e.g. the provider's CRDs are missing).
  virtual boost::asio::awaitable<bool> wait_synced() { co_return true; }
  // Shutdown: stops whatever the router runs in the background (its caches). Idempotent.
  virtual void stop() {}
};

std::unique_ptr<service_router> make_service_router(router_context& k);
// The router for a provider string ("kubernetes", "istio", "gatewayapi:v1", ...); nullptr for
// one canaryd has no router for (refused earlier, core/provider.hpp).
std::unique_ptr<mesh_router> make_mesh_router(std::string_view provider, router_context& k);
// The router for a provider with objects of its own (mesh/object_router.cpp); it starts watch
// caches of the provider's kinds.
std::unique_ptr<mesh_router> make_object_router(std::unique_ptr<core::route_provider> rules, router_context& k);

}  // namespace canaryd
