// The `kubernetes` provider: no mesh, Blue/Green by the Services alone (Flagger's NopRouter,
// pkg/router/nop.go; flagger-behaviour.md §5).
//
// Flagger switches nothing by weights for this provider: SetRoutes, Reconcile and Finalize do
// nothing, and GetRoutes reports primary 0 / canary 100 while an analysis has iterations
// (status.iterations > 0), else primary 100 / canary 0. The apex Service keeps selecting the
// primary throughout; the canary's pods are reached through <svc>-canary, and the promotion
// copies the canary's template into the primary.
#include "mesh/router.hpp"

namespace canaryd {

namespace {

// Stateless; thread affinity: any.
class kubernetes_router final : public mesh_router {
 public:
  boost::asio::awaitable<action_result> reconcile(const core::canary&) override { co_return action_result{}; }

  void observe(const core::canary& c, core::observed_state& obs) const override {
    core::traffic_routes r;
    if (c.status.iterations > 0) {
      r.primary = 0;
      r.canary = 100;
    }
    obs.routes = r;
    obs.routes_error.clear();
  }

  boost::asio::awaitable<action_result> set_routes(const core::canary&, core::set_routes) override {
    co_return action_result{};
  }

  boost::asio::awaitable<action_result> finalize(const core::canary&) override { co_return action_result{}; }
};

}  // namespace

std::unique_ptr<mesh_router> make_mesh_router(std::string_view provider, router_context& k) {
  auto p = core::parse_provider(provider);
  if (!p || !core::has_router(*p)) return nullptr;
  if (p->family == core::router_family::kubernetes) return std::make_unique<kubernetes_router>();
  auto rules = core::make_route_provider(*p);
  if (!rules) return nullptr;
  return make_object_router(std::move(rules), k);
}

}  // namespace canaryd
