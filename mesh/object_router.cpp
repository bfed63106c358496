// The I/O half of every provider with objects of its own, written once: watch caches of the
// provider's kinds, reads from them, and the writes its pure rules (core/router.hpp) decide.
//
// The objects live on the service mesh's cluster when -kubeconfig-service-mesh names one (its
// own API client: router_context::client_for); created there on another API server, they carry
// no ownerReference, as Flagger's (no Canary exists there to own them).
//
// The caches (the namespace of -namespace) start when the first Canary asks for the provider,
// so a cluster without that provider's CRDs costs nothing until then. Reads come from the
// caches; a create answered 409 AlreadyExists updates the server's copy, and a write answered
// 409 Conflict re-reads that one object and decides again once (the cache can lag behind our
// own writes by milliseconds). An idle reconcile and a SetRoutes to the routes in force send
// nothing.
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
#include <utility>
#include <vector>

#include "k8s/log.hpp"
#include "mesh/router.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;

// How long a write waits for the caches' first list before it gives up for this tick.
constexpr std::chrono::seconds sync_wait{10};

action_result fail(std::string message) { return action_result(boost::system::in_place_error, std::move(message)); }

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

k8s::resource resource_of(const core::object_kind& k) { return k8s::resource{k.group, k.version, k.plural, k.namespaced}; }

using update_fn = std::function<core::write_result(std::string_view existing)>;

class object_router final : public mesh_router {
 public:
  object_router(std::unique_ptr<core::route_provider> rules, router_context& k)
      : rules_(std::move(rules)), k_(k), client_(k.client_for(*rules_)) {
    for (const auto& kind : rules_->kinds()) {
      caches_.push_back({kind, start_cache(resource_of(kind))});
      // Reported to whoever set mesh_object_changed (the runner), which wakes the Canaries that
      // would write the object. The context outlives the router; stop() unsubscribes.
      auto touch = [&k = k_, kind = kind.kind](const k8s::object_ptr& o) {
        if (k.mesh_object_changed) k.mesh_object_changed(kind, o->namespace_name(), o->name());
      };
      caches_.back().subscription =
          caches_.back().cache->subscribe({touch, [touch](const k8s::object_ptr&, const k8s::object_ptr& o) { touch(o); }, touch});
    }
  }
  ~object_router() override { stop(); }

  void stop() override {
    for (auto& c : caches_) {
      c.cache->unsubscribe(c.subscription);
      c.cache->stop();
    }
  }

  asio::awaitable<action_result> reconcile(const core::canary& c) override {
    if (!co_await synced()) {
      co_return fail(fmt::format("reconcile failed: the {} caches are not synced (are {}'s CRDs installed?)",
                                 rules_->display_name(), rules_->display_name()));
    }
    for (const auto& o : rules_->objects(c)) {
      auto r = co_await apply(c, o);
      if (!r) co_return fail(fmt::format("reconcile{} failed: {}", o.kind.kind, r.error()));
    }
    co_return action_result{};
  }

  asio::awaitable<bool> wait_synced() override {
    const bool ok = co_await synced();
    co_return ok;
  }

  std::vector<std::pair<std::string, k8s::object_ptr>> existing(const core::canary& c) const override {
    std::vector<std::pair<std::string, k8s::object_ptr>> out;
    for (const auto& o : rules_->objects(c)) {
      auto& cache = cache_of(o.kind);
      if (!cache.synced()) continue;
      if (auto obj = cache.get(c.metadata.namespace_, o.name)) out.emplace_back(o.kind.kind, std::move(obj));
    }
    return out;
  }

  std::vector<std::pair<std::string, std::string>> object_names(const core::canary& c) const override {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& o : rules_->objects(c)) out.emplace_back(o.kind.kind, o.name);
    return out;
  }

  void observe(const core::canary& c, core::observed_state& obs) const override {
    auto routes = routes_object(c);
    const std::string& ns = c.metadata.namespace_;
    auto& cache = cache_of(routes.kind);
    if (!cache.synced()) {
      obs.routes.reset();
      obs.routes_error = fmt::format("{} {}.{} get query error: the {} caches are not synced", routes.kind.kind, routes.name,
                                     ns, rules_->display_name());
      return;
    }
    auto obj = cache.get(ns, routes.name);
    if (!obj) {
      obs.routes.reset();
      obs.routes_error = not_found(routes, ns, "");
      return;
    }
    auto r = rules_->read_routes(c, obj->json());
    if (!r) {
      obs.routes.reset();
      obs.routes_error = r.error();
      return;
    }
    obs.routes = *r;
    obs.routes_error.clear();
  }

  asio::awaitable<action_result> set_routes(const core::canary& c, core::set_routes routes) override {
    if (!co_await synced()) co_return fail(fmt::format("the {} caches are not synced", rules_->display_name()));
    const auto target = routes_object(c);
    auto existing = cache_of(target.kind).get(c.metadata.namespace_, target.name);
    if (!existing) co_return fail(not_found(target, c.metadata.namespace_, ""));
    co_return co_await update(c, target, std::string(existing->json()),
                              [&](std::string_view cur) {
                                return rules_->routes_body(c, cur, routes.routes, routes.cookies);
                              },
                              "update failed");
  }

  asio::awaitable<action_result> finalize(const core::canary& c) override {
    if (!rules_->finalize_restores()) co_return action_result{};
    if (!co_await synced()) co_return fail(fmt::format("the {} caches are not synced", rules_->display_name()));
    const std::string& ns = c.metadata.namespace_;
    for (const auto& o : rules_->objects(c)) {
      auto existing = cache_of(o.kind).get(ns, o.name);
      if (!existing) {
        if (!o.holds_routes) continue;
        co_return fail(not_found(o, ns, ":"));
      }
      auto first = rules_->finalize_body(c, o, existing->json());
      if (!first) co_return fail(first.error());
      if (!first->body) {
        if (!first->warning.empty()) log::warn(first->warning, {{"canary", c.id()}});
        continue;
      }
      auto r = co_await update(c, o, std::string(existing->json()),
                               [&](std::string_view cur) -> core::write_result {
                                 auto w = rules_->finalize_body(c, o, cur);
                                 if (!w) return core::write_result(boost::system::in_place_error, w.error());
                                 return std::move(w->body);
                               },
                               "update error");
      if (!r) co_return r;
    }
    co_return action_result{};
  }

 private:
  struct kind_cache {
    core::object_kind kind;
    std::shared_ptr<k8s::cache> cache;
    std::uint64_t subscription = 0;
  };

  std::shared_ptr<k8s::cache> start_cache(const k8s::resource& r) {
    k8s::watch_options wo;
    wo.res = r;
    wo.namespace_name = k_.watch_namespace;
    auto cache = std::make_shared<k8s::cache>(client_, wo);
    // The cache is a parameter, not a capture: a coroutine lambda's captures die with the
    // temporary closure, its parameters live in the coroutine frame.
    auto keep_running = [](std::shared_ptr<k8s::cache> c) -> asio::awaitable<void> { co_await c->run(); };
    asio::co_spawn(client_.get_executor(), keep_running(cache), [what = r.plural](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error(fmt::format("internal error in the {} cache: {}", what, ex.what()));
      }
    });
    return cache;
  }

  k8s::cache& cache_of(const core::object_kind& kind) const {
    for (const auto& c : caches_)
      if (c.kind == kind) return *c.cache;
    // objects() named a kind kinds() did not list: a bug in the provider's rules.
    std::terminate();
  }

  core::owned_object routes_object(const core::canary& c) const {
    for (auto& o : rules_->objects(c))
      if (o.holds_routes) return o;
    std::terminate();  // every provider has one (core/router.hpp)
  }

  static std::string not_found(const core::owned_object& o, const std::string& ns, std::string_view colon) {
    return fmt::format("{} {}.{} get query error{} {}.{} \"{}\" not found", o.kind.kind, o.name, ns, colon, o.kind.plural,
                       o.kind.group, o.name);
  }

  // Named results: GCC 12 traps (ud2) on `co_return co_await` of wait_synced here.
  asio::awaitable<bool> synced() {
    bool all = true;
    for (auto& c : caches_) {
      const bool ok = co_await c.cache->wait_synced(sync_wait);
      all = all && ok;
    }
    co_return all;
  }

  // Creates the object when the cache has none (a 409 AlreadyExists falls through to an update
  // of the server's copy), else updates it when it differs.
  asio::awaitable<boost::system::result<void, std::string>> apply(const core::canary& c, const core::owned_object& o) {
    const std::string& ns = c.metadata.namespace_;
    const k8s::resource res = resource_of(o.kind);
    std::string current;
    if (auto existing = cache_of(o.kind).get(ns, o.name)) {
      current = std::string(existing->json());
    } else {
      auto body = rules_->create_body(c, o);
      if (body && !k_.owner_references_for(*rules_)) body = core::without_owner_references(*body);
      if (!body) co_return fail(body.error());
      auto r = co_await client_.create(res, ns, *body);
      if (r) {
        log::info(fmt::format("{} {}.{} created", o.kind.kind, o.name, ns), {{"canary", c.id()}});
        co_return boost::system::result<void, std::string>{};
      }
      if (r.error().code != k8s::api_errc::already_exists) {
        co_return fail(fmt::format("{} {}.{} create error: {}", o.kind.kind, o.name, ns, api_text(r.error())));
      }
      auto fresh = co_await client_.get(res, ns, o.name);
      if (!fresh) co_return fail(fmt::format("{} {}.{} get query error: {}", o.kind.kind, o.name, ns, api_text(fresh.error())));
      current = std::string(fresh->json());
    }
    co_return co_await update(c, o, std::move(current),
                              [&](std::string_view cur) { return rules_->reconcile_body(c, o, cur); }, "update error");
  }

  asio::awaitable<action_result> update(const core::canary& c, const core::owned_object& o, std::string current,
                                        const update_fn& update_body, std::string_view what) {
    const std::string& ns = c.metadata.namespace_;
    const k8s::resource res = resource_of(o.kind);
    for (int attempt = 0;; ++attempt) {
      auto body = update_body(current);
      if (!body) co_return fail(body.error());
      if (!*body) co_return action_result{};
      if (k_.foreign_owner) {
        if (auto parsed = k8s::object::parse(current)) {
          if (auto why = k_.foreign_owner(c, o.kind.kind, *parsed); !why.empty()) co_return fail(why);
        }
      }
      auto u = co_await client_.update(res, ns, o.name, **body);
      if (u) {
        log::info(fmt::format("{} {}.{} updated", o.kind.kind, o.name, ns), {{"canary", c.id()}});
        co_return action_result{};
      }
      if (u.error().code != k8s::api_errc::conflict || attempt > 0) {
        co_return fail(fmt::format("{} {}.{} {}: {}", o.kind.kind, o.name, ns, what, api_text(u.error())));
      }
      auto fresh = co_await client_.get(res, ns, o.name);
      if (!fresh) co_return fail(fmt::format("{} {}.{} get query error: {}", o.kind.kind, o.name, ns, api_text(fresh.error())));
      current = std::string(fresh->json());
    }
  }

  std::unique_ptr<core::route_provider> rules_;
  router_context& k_;
  k8s::api_client& client_;  // the mesh cluster's, or the main one (router_context::client_for)
  std::vector<kind_cache> caches_;
};

}  // namespace

std::unique_ptr<mesh_router> make_object_router(std::unique_ptr<core::route_provider> rules, router_context& k) {
  return std::make_unique<object_router>(std::move(rules), k);
}

}  // namespace canaryd
