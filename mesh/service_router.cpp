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

#include <fmt/format.h>

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "core/primary.hpp"
#include "core/services.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace {

const k8s::resource services_resource{"", "v1", "services", true};

action_result fail(std::string message) { return action_result(boost::system::in_place_error, std::move(message)); }

// The error text Go's client would print: the Status message when there is one.
std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

// Thread affinity: the io_context thread. Holds a reference to the router context.
class kube_service_router final : public service_router {
 public:
  explicit kube_service_router(router_context& k) : k_(k) {}

  boost::asio::awaitable<action_result> initialize(const core::canary& c) override {
    auto t = target(c);
    if (!t.meta) co_return fail(t.meta.error());
    // Flagger's order: the canary Service first, then the primary.
    auto canary_svc = core::build_service(c, *t.meta, core::service_role::canary);
    auto r = co_await reconcile_service(c, canary_svc, t.version);
    if (!r) co_return r;
    auto primary_svc = core::build_service(c, *t.meta, core::service_role::primary);
    co_return co_await reconcile_service(c, primary_svc, t.version);
  }

  boost::asio::awaitable<action_result> reconcile(const core::canary& c) override {
    auto t = target(c);
    if (!t.meta) co_return fail(t.meta.error());
    auto apex = core::build_service(c, *t.meta, core::service_role::apex);
    co_return co_await reconcile_service(c, apex, t.version);
  }

  boost::asio::awaitable<action_result> finalize(const core::canary& c) override {
    auto view = target(c);
    if (!view.meta) co_return fail(view.meta.error());
    const auto& t = view.meta;
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
      auto u = co_await k_.client.update(services_resource, ns, name, **body);
      if (u) {
        log::info("Service " + name + "." + ns + " selector restored", {{"canary", c.id()}});
        co_return action_result{};
      }
      if (u.error().code != k8s::api_errc::conflict || attempt > 0) {
        co_return fail("service " + name + " update error: " + api_text(u.error()));
      }
      auto fresh = co_await k_.client.get(services_resource, ns, name);
      if (!fresh) co_return fail("service " + name + "." + ns + " get query error: " + api_text(fresh.error()));
      current = std::string(fresh->json());
    }
  }

 private:
  // The inputs of the desired Services, named: the Canary's spec (uid and metadata.generation,
  // which the API server bumps on every spec change) and the target's spec (the same). Every
  // tick reconciles the Services, and each of a release's ~6 ticks used to parse the target and
  // the three Services again to find them up to date (bench/README.md, "Profile"); the memos
  // below keep what was found per version, so a tick that changes nothing parses nothing.
  static std::string spec_version(const k8s::object& o) {
    if (o.generation() > 0) return fmt::format("{}/g{}", o.uid(), o.generation());
    return fmt::format("{}/r{}", o.uid(), o.resource_version());
  }
  static std::string canary_version(const core::canary& c) {
    if (c.metadata.generation > 0) return fmt::format("{}/g{}", c.metadata.uid, c.metadata.generation);
    return fmt::format("{}/r{}", c.metadata.uid, c.metadata.resource_version);
  }

  struct target_view {
    core::service_result<core::target_metadata> meta;
    std::string version;  // canary_version|spec_version of the target; empty when there is none
  };

  // GetMetadata of the target, from the cache of its kind.
  target_view target(const core::canary& c) {
    using result = core::service_result<core::target_metadata>;
    const std::string& kind = c.spec.target_ref.kind;
    const std::string& ns = c.metadata.namespace_;
    k8s::cache* cache = kind == "Deployment"    ? &k_.deployments
                        : kind == "DaemonSet"   ? &k_.daemonsets
                        : kind == "StatefulSet" ? &k_.statefulsets
                                                : nullptr;
    if (cache == nullptr) {
      return {result(boost::system::in_place_error,
                     "target kind " + kind + " is not supported by canaryd's Service router (Deployment, DaemonSet, StatefulSet)"),
              {}};
    }
    auto d = cache->get(ns, c.spec.target_ref.name);
    if (!d) {
      targets_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      const auto wk = kind == "DaemonSet"     ? core::workload_kind::daemonset
                      : kind == "StatefulSet" ? core::workload_kind::statefulset
                                              : core::workload_kind::deployment;
      return {result(boost::system::in_place_error, core::missing_workload_error(wk, c.spec.target_ref.name, ns)), {}};
    }
    std::string version = canary_version(c) + "|" + spec_version(*d);
    auto& memo = targets_[d->key()];
    if (memo.version != version) memo = target_view{core::read_target_metadata(c, d->json(), k_.selector_labels), version};
    return memo;
  }

  // Flagger's reconcileService: create when missing, else update only what differs.
  // `inputs` names what `s` was built from (target_view::version).
  boost::asio::awaitable<action_result> reconcile_service(const core::canary& c, const core::desired_service& s,
                                                          const std::string& inputs) {
    const std::string& ns = c.metadata.namespace_;
    const std::string key = k8s::object_key(ns, s.name);
    std::string current;
    std::string checked;  // what the memo records once the cached Service is found up to date
    if (auto existing = k_.services.get(ns, s.name)) {
      checked = fmt::format("{}|{}/r{}", inputs, existing->uid(), existing->resource_version());
      if (auto it = up_to_date_.find(key); it != up_to_date_.end() && it->second == checked) co_return action_result{};
      current = std::string(existing->json());
    } else {
      const std::string body = core::service_create_body(c, s);
      auto r = co_await k_.client.create(services_resource, ns, body);
      if (r) {
        // Flagger's log lines: "Service <name>.<ns> created", "Service <name> updated".
        log::info("Service " + s.name + "." + ns + " created", {{"canary", c.id()}});
        co_return action_result{};
      }
      if (r.error().code != k8s::api_errc::already_exists) {
        co_return fail("reconcileService failed: service " + s.name + "." + ns + " create error: " + api_text(r.error()));
      }
      auto fresh = co_await k_.client.get(services_resource, ns, s.name);
      if (!fresh) {
        co_return fail("reconcileService failed: service " + s.name + " get query error: " + api_text(fresh.error()));
      }
      current = std::string(fresh->json());
    }
    for (int attempt = 0;; ++attempt) {
      auto body = core::service_update_body(c, s, current);
      if (!body) co_return fail("reconcileService failed: " + body.error());
      if (!*body) {
        if (attempt == 0 && !checked.empty()) up_to_date_[key] = checked;
        co_return action_result{};
      }
      auto u = co_await k_.client.update(services_resource, ns, s.name, **body);
      if (u) {
        log::info("Service " + s.name + " updated", {{"canary", c.id()}});
        co_return action_result{};
      }
      if (u.error().code != k8s::api_errc::conflict || attempt > 0) {
        co_return fail("reconcileService failed: service " + s.name + " update error: " + api_text(u.error()));
      }
      auto fresh = co_await k_.client.get(services_resource, ns, s.name);
      if (!fresh) {
        co_return fail("reconcileService failed: service " + s.name + " get query error: " + api_text(fresh.error()));
      }
      current = std::string(fresh->json());
    }
  }

  router_context& k_;
  std::map<std::string, target_view, std::less<>> targets_;  // target key -> its metadata
  std::map<std::string, std::string, std::less<>> up_to_date_;  // Service key -> inputs found up to date
};

}  // namespace

std::unique_ptr<service_router> make_service_router(router_context& k) {
  return std::make_unique<kube_service_router>(k);
}

}  // namespace canaryd
