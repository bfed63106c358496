// The `istio` provider (Flagger's IstioRouter, flagger-behaviour.md §5): the VirtualService
// `<apex>` and the DestinationRules `<apex>-primary` / `<apex>-canary`. What they should be is
// decided in core/istio.hpp; this file keeps watch caches of both kinds, reads from them, and
// sends the writes.
//
// The caches (networking.istio.io/v1beta1, the namespace of -namespace) start when the first
// Canary asks for the istio provider, so a cluster without Istio's CRDs costs nothing until
// then. Reads come from the caches; a write answered 409 re-reads that one object and decides
// again once (the cache can lag behind our own writes by milliseconds). An idle reconcile and a
// SetRoutes to the routes in force send nothing.
//
// Thread affinity: the io_context thread. Lifetime: stop() stops the caches; their run()
// coroutines hold them by shared_ptr, so they end safely after the router is gone.
#include <boost/asio/co_spawn.hpp>

#include <fmt/format.h>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/istio.hpp"
#include "k8s/log.hpp"
#include "mesh/router.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;

const k8s::resource virtual_services{"networking.istio.io", "v1beta1", "virtualservices", true};
const k8s::resource destination_rules{"networking.istio.io", "v1beta1", "destinationrules", true};

// How long a write waits for the caches' first list before it gives up for this tick.
constexpr std::chrono::seconds sync_wait{10};

action_result fail(std::string message) { return action_result(boost::system::in_place_error, std::move(message)); }

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

using update_fn = std::function<core::service_result<std::optional<std::string>>(std::string_view existing)>;

class istio_router final : public mesh_router {
 public:
  istio_router(cluster& k, const options& opts) : k_(k) {
    vs_ = start_cache(virtual_services, opts);
    dr_ = start_cache(destination_rules, opts);
  }
  ~istio_router() override { stop(); }

  void stop() override {
    vs_->stop();
    dr_->stop();
  }

  asio::awaitable<action_result> reconcile(const core::canary& c) override {
    if (!co_await synced()) co_return fail("reconcile failed: the Istio caches are not synced (are Istio's CRDs installed?)");
    // Flagger's order: the canary's DestinationRule, the primary's, then the VirtualService.
    for (const std::string& host : {c.canary_service_name(), c.primary_service_name()}) {
      auto r = co_await apply(c, *dr_, destination_rules, "DestinationRule", host,
                              core::istio::destination_rule_create_body(c, host),
                              [&](std::string_view cur) { return core::istio::destination_rule_update_body(c, host, cur); });
      if (!r) co_return fail("reconcileDestinationRule failed: " + r.error());
    }
    auto create = core::istio::virtual_service_create_body(c);
    if (!create) co_return fail("reconcileVirtualService failed: " + create.error());
    auto r = co_await apply(c, *vs_, virtual_services, "VirtualService", c.apex_service_name(), *create,
                            [&](std::string_view cur) { return core::istio::virtual_service_reconcile_body(c, cur); });
    if (!r) co_return fail("reconcileVirtualService failed: " + r.error());
    co_return action_result{};
  }

  void observe(const core::canary& c, core::observed_state& obs) const override {
    const std::string apex = c.apex_service_name();
    if (!vs_->synced()) {
      obs.routes.reset();
      obs.routes_error = fmt::format("VirtualService {}.{} get query error: the Istio caches are not synced", apex,
                                     c.metadata.namespace_);
      return;
    }
    auto vs = vs_->get(c.metadata.namespace_, apex);
    if (!vs) {
      obs.routes.reset();
      obs.routes_error = fmt::format("VirtualService {}.{} get query error virtualservices.networking.istio.io \"{}\" not found",
                                     apex, c.metadata.namespace_, apex);
      return;
    }
    auto r = core::istio::read_routes(c, vs->json());
    if (!r) {
      obs.routes.reset();
      obs.routes_error = r.error();
      return;
    }
    obs.routes = *r;
    obs.routes_error.clear();
  }

  asio::awaitable<action_result> set_routes(const core::canary& c, core::set_routes routes) override {
    if (!co_await synced()) co_return fail("the Istio caches are not synced");
    const std::string apex = c.apex_service_name();
    const std::string& ns = c.metadata.namespace_;
    auto existing = vs_->get(ns, apex);
    if (!existing) {
      co_return fail(fmt::format("VirtualService {}.{} get query error virtualservices.networking.istio.io \"{}\" not found",
                                 apex, ns, apex));
    }
    co_return co_await update(c, virtual_services, "VirtualService", apex, std::string(existing->json()),
                              [&](std::string_view cur) {
                                return core::istio::virtual_service_routes_body(c, cur, routes.routes, routes.cookies);
                              },
                              "update failed");
  }

  asio::awaitable<action_result> finalize(const core::canary& c) override {
    if (!co_await synced()) co_return fail("the Istio caches are not synced");
    const std::string apex = c.apex_service_name();
    const std::string& ns = c.metadata.namespace_;
    auto existing = vs_->get(ns, apex);
    if (!existing) {
      co_return fail(fmt::format("VirtualService {}.{} get query error: virtualservices.networking.istio.io \"{}\" not found",
                                 apex, ns, apex));
    }
    auto body = core::istio::virtual_service_finalize_body(c, existing->json());
    if (!body) co_return fail(body.error());
    if (!*body) {
      log::warn(fmt::format("VirtualService {}.{} original configuration not found, unable to revert", apex, ns),
                {{"canary", c.id()}});
      co_return action_result{};
    }
    co_return co_await update(c, virtual_services, "VirtualService", apex, std::string(existing->json()),
                              [&](std::string_view cur) { return core::istio::virtual_service_finalize_body(c, cur); },
                              "update error");
  }

 private:
  std::shared_ptr<k8s::cache> start_cache(const k8s::resource& r, const options& opts) {
    k8s::watch_options wo;
    wo.res = r;
    wo.namespace_name = opts.namespace_;
    auto cache = std::make_shared<k8s::cache>(k_.client, wo);
    // The cache is a parameter, not a capture: a coroutine lambda's captures die with the
    // temporary closure, its parameters live in the coroutine frame.
    auto keep_running = [](std::shared_ptr<k8s::cache> c) -> asio::awaitable<void> { co_await c->run(); };
    asio::co_spawn(k_.client.get_executor(), keep_running(cache),
                   [what = r.plural](std::exception_ptr e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       log::error(fmt::format("internal error in the {} cache: {}", what, ex.what()));
                     }
                   });
    return cache;
  }

  // Named results: GCC 12 traps (ud2) on `co_return co_await` of wait_synced here.
  asio::awaitable<bool> synced() {
    const bool vs_synced = co_await vs_->wait_synced(sync_wait);
    const bool dr_synced = co_await dr_->wait_synced(sync_wait);
    co_return vs_synced && dr_synced;
  }

  // Creates the object when the cache has none (a 409 AlreadyExists falls through to an update
  // of the server's copy), else updates it when it differs.
  asio::awaitable<boost::system::result<void, std::string>> apply(const core::canary& c, k8s::cache& cache,
                                                                    const k8s::resource& res, std::string_view kind,
                                                                    const std::string& name, const std::string& create_body,
                                                                    const update_fn& update_body) {
    const std::string& ns = c.metadata.namespace_;
    std::string current;
    if (auto existing = cache.get(ns, name)) {
      current = std::string(existing->json());
    } else {
      auto r = co_await k_.client.create(res, ns, create_body);
      if (r) {
        log::info(fmt::format("{} {}.{} created", kind, name, ns), {{"canary", c.id()}});
        co_return boost::system::result<void, std::string>{};
      }
      if (r.error().code != k8s::api_errc::already_exists) {
        co_return fail(fmt::format("{} {}.{} create error: {}", kind, name, ns, api_text(r.error())));
      }
      auto fresh = co_await k_.client.get(res, ns, name);
      if (!fresh) co_return fail(fmt::format("{} {}.{} get query error: {}", kind, name, ns, api_text(fresh.error())));
      current = std::string(fresh->json());
    }
    co_return co_await update(c, res, kind, name, std::move(current), update_body, "update error");
  }

  asio::awaitable<action_result> update(const core::canary& c, const k8s::resource& res, std::string_view kind,
                                        const std::string& name, std::string current, const update_fn& update_body,
                                        std::string_view what) {
    const std::string& ns = c.metadata.namespace_;
    for (int attempt = 0;; ++attempt) {
      auto body = update_body(current);
      if (!body) co_return fail(body.error());
      if (!*body) co_return action_result{};
      auto u = co_await k_.client.update(res, ns, name, **body);
      if (u) {
        log::info(fmt::format("{} {}.{} updated", kind, name, ns), {{"canary", c.id()}});
        co_return action_result{};
      }
      if (u.error().code != k8s::api_errc::conflict || attempt > 0) {
        co_return fail(fmt::format("{} {}.{} {}: {}", kind, name, ns, what, api_text(u.error())));
      }
      auto fresh = co_await k_.client.get(res, ns, name);
      if (!fresh) co_return fail(fmt::format("{} {}.{} get query error: {}", kind, name, ns, api_text(fresh.error())));
      current = std::string(fresh->json());
    }
  }

  cluster& k_;
  std::shared_ptr<k8s::cache> vs_, dr_;
};

}  // namespace

std::unique_ptr<mesh_router> make_istio_router(cluster& k, const options& opts) {
  return std::make_unique<istio_router>(k, opts);
}

}  // namespace canaryd
