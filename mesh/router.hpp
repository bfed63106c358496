#pragma once
// A router: how canaryd points traffic at the primary and the canary for one provider
// (Flagger's router.KubernetesRouter and router.Interface). The Kubernetes router manages the
// apex, -primary and -canary Services for every provider; a mesh router (istio, ...) manages
// its provider's objects on top.
//
// Reads come from the caches (daemon/cluster.hpp); writes go through the API client.
// Thread affinity: the io_context thread. Errors: action_result values.
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"

namespace canaryd {

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
  // Shutdown: stops whatever the router runs in the background (its caches). Idempotent.
  virtual void stop() {}
};

std::unique_ptr<service_router> make_service_router(cluster& k, const options& opts);
// The router for a provider name ("kubernetes", "istio", ...); nullptr for one canaryd does not
// support yet (the runner reports it on the canary).
std::unique_ptr<mesh_router> make_mesh_router(std::string_view provider, cluster& k, const options& opts);
// The istio provider's router (mesh/istio_router.cpp); it starts its own watch caches.
std::unique_ptr<mesh_router> make_istio_router(cluster& k, const options& opts);

}  // namespace canaryd
