// The Kubernetes Service router (Flagger's KubernetesDefaultRouter): the apex, -primary and
// -canary ClusterIP Services. What the Services should be is decided in core/services.hpp; this
// file reads the target and the existing Services from the caches and sends the writes.
//
// An idle reconcile makes no request: a Service in the cache that already matches is left alone.
// The cache can lag behind our own writes by a few milliseconds, so a create answered 409
// AlreadyExists and an update answered 409 Conflict re-read that one Service from the API server
// and decide again once (the only reads that bypass the cache).
#include "mesh/router.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <optional>
#include <string>
#include <utility>

#include "core/services.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace {

action_result fail(std::string message) { return action_result(boost::system::in_place_error, std::move(message)); }

// The error text Go's client would print: the Status message when there is one.
std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

// Thread affinity: the io_context thread. Holds references to the app's cluster and options.
class kube_service_router final : public service_router {
 public:
  kube_service_router(cluster& k, const options& opts) : k_(k), opts_(opts) {}

  boost::asio::awaitable<action_result> initialize(const core::canary& c) override {
    auto t = target(c);
    if (!t) co_return fail(t.error());
    // Flagger's order: the canary Service first, then the primary.
    auto canary_svc = core::build_service(c, *t, core::service_role::canary);
    auto r = co_await reconcile_service(c, canary_svc);
    if (!r) co_return r;
    auto primary_svc = core::build_service(c, *t, core::service_role::primary);
    co_return co_await reconcile_service(c, primary_svc);
  }

  boost::asio::awaitable<action_result> reconcile(const core::canary& c) override {
    auto t = target(c);
    if (!t) co_return fail(t.error());
    auto apex = core::build_service(c, *t, core::service_role::apex);
    co_return co_await reconcile_service(c, apex);
  }

  boost::asio::awaitable<action_result> finalize(const core::canary& c) override {
    auto t = target(c);
    if (!t) co_return fail(t.error());
    const std::string name = c.apex_service_name();
    const std::string& ns = c.metadata.namespace_;
    auto existing = k_.services.get(ns, name);
    if (!existing) {
      co_return fail("service " + name + "." + ns + " get query error: services \"" + name + "\" not found");
    }
    std::string current(existing->json());
    for (int attempt = 0;; ++attempt) {
      auto body = core::apex_finalize_body(c, *t, current);
      if (!body) co_return fail(body.error());
      if (!*body) co_return action_result{};
      auto u = co_await k_.client.update(resources::services, ns, name, **body);
      if (u) {
        log::info("Service " + name + "." + ns + " selector restored", {{"canary", c.id()}});
        co_return action_result{};
      }
      if (u.error().code != k8s::api_errc::conflict || attempt > 0) {
        co_return fail("service " + name + " update error: " + api_text(u.error()));
      }
      auto fresh = co_await k_.client.get(resources::services, ns, name);
      if (!fresh) co_return fail("service " + name + "." + ns + " get query error: " + api_text(fresh.error()));
      current = std::string(fresh->json());
    }
  }

 private:
  // GetMetadata of the target, from the deployments cache.
  core::service_result<core::target_metadata> target(const core::canary& c) const {
    using result = core::service_result<core::target_metadata>;
    const std::string& kind = c.spec.target_ref.kind;
    const std::string& ns = c.metadata.namespace_;
    if (kind != "Deployment") {
      return result(boost::system::in_place_error,
                    "target kind " + kind + " is not supported by canaryd's Service router yet (Deployment only)");
    }
    auto d = k_.deployments.get(ns, c.spec.target_ref.name);
    if (!d) {
      return result(boost::system::in_place_error, "deployment " + c.target_id() + " get query error: deployments.apps \"" +
                                                       c.spec.target_ref.name + "\" not found");
    }
    return core::read_target_metadata(c, d->json(), opts_.selector_labels);
  }

  // Flagger's reconcileService: create when missing, else update only what differs.
  boost::asio::awaitable<action_result> reconcile_service(const core::canary& c, const core::desired_service& s) {
    const std::string& ns = c.metadata.namespace_;
    std::string current;
    if (auto existing = k_.services.get(ns, s.name)) {
      current = std::string(existing->json());
    } else {
      const std::string body = core::service_create_body(c, s);
      auto r = co_await k_.client.create(resources::services, ns, body);
      if (r) {
        // Flagger's log lines: "Service <name>.<ns> created", "Service <name> updated".
        log::info("Service " + s.name + "." + ns + " created", {{"canary", c.id()}});
        co_return action_result{};
      }
      if (r.error().code != k8s::api_errc::already_exists) {
        co_return fail("reconcileService failed: service " + s.name + "." + ns + " create error: " + api_text(r.error()));
      }
      auto fresh = co_await k_.client.get(resources::services, ns, s.name);
      if (!fresh) {
        co_return fail("reconcileService failed: service " + s.name + " get query error: " + api_text(fresh.error()));
      }
      current = std::string(fresh->json());
    }
    for (int attempt = 0;; ++attempt) {
      auto body = core::service_update_body(c, s, current);
      if (!body) co_return fail("reconcileService failed: " + body.error());
      if (!*body) co_return action_result{};
      auto u = co_await k_.client.update(resources::services, ns, s.name, **body);
      if (u) {
        log::info("Service " + s.name + " updated", {{"canary", c.id()}});
        co_return action_result{};
      }
      if (u.error().code != k8s::api_errc::conflict || attempt > 0) {
        co_return fail("reconcileService failed: service " + s.name + " update error: " + api_text(u.error()));
      }
      auto fresh = co_await k_.client.get(resources::services, ns, s.name);
      if (!fresh) {
        co_return fail("reconcileService failed: service " + s.name + " get query error: " + api_text(fresh.error()));
      }
      current = std::string(fresh->json());
    }
  }

  cluster& k_;
  const options& opts_;
};

}  // namespace

std::unique_ptr<service_router> make_service_router(cluster& k, const options& opts) {
  return std::make_unique<kube_service_router>(k, opts);
}

}  // namespace canaryd
