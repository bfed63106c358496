// The Knative Service target controller (Flagger's KnativeController, flagger-behaviour.md §4;
// the rules are core/knative.hpp's): the primary is the revision the flagger.app/primary-revision
// annotation names, the canary the latest created revision. Nothing is copied or scaled: Knative
// runs every revision; initialization and promotion write the annotation (and, at
// initialization, spec.traffic) on the user's Knative Service. The Kubernetes router is Flagger's
// KubernetesNoopRouter (canary_runner.cpp) and the `knative` router sets the traffic
// (core/knative.cpp, mesh/object_router.cpp).
//
// Reads: watch caches of Knative Services and Revisions of its own, started when the first
// Knative Canary is observed (a cluster without Knative costs nothing until then; until they have
// listed, observe() reports the target as not yet readable). observe() makes no request. Writes
// retry on 409 Conflict with a fresh GET. A change of a Knative Service or of one of its
// Revisions (label serving.knative.dev/service) is reported through `changed`.
//
// Thread affinity: the io_context thread. stop() stops the caches (idempotent).
#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>

#include <cassert>
#include <exception>
#include <fmt/format.h>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/knative.hpp"
#include "daemon/target.hpp"
#include "k8s/api_error.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using core::workload_action;

constexpr int conflict_retries = 5;
constexpr std::chrono::seconds sync_wait{10};

const k8s::resource knative_services{"serving.knative.dev", "v1", "services", true};
const k8s::resource knative_revisions{"serving.knative.dev", "v1", "revisions", true};

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }
action_result error_text(std::string s) { return action_result(boost::system::in_place_error, std::move(s)); }

// The Knative Service a Revision belongs to (its serving.knative.dev/service label).
std::string revision_service(const k8s::object& o) {
  boost::system::error_code ec;
  json::value v = json::parse(o.json(), ec);
  if (ec || !v.is_object()) return {};
  const json::value* l = v.find_pointer("/metadata/labels/serving.knative.dev~1service", ec);
  return l && l->is_string() ? std::string(l->get_string()) : std::string();
}

using update_fn = std::function<core::service_result<std::optional<std::string>>(std::string_view)>;

class knative_target_controller final : public target_controller {
 public:
  knative_target_controller(cluster& k, const options& opts, knative_changed changed)
      : k_(k), opts_(opts), changed_(std::move(changed)) {}
  ~knative_target_controller() override { stop(); }

  void stop() override {
    for (auto& [cache, id] : subscriptions_) cache->unsubscribe(id);
    subscriptions_.clear();
    if (services_) services_->stop();
    if (revisions_) revisions_->stop();
  }

  void observe(const core::canary& c, core::observed_state& obs, core::wall_time now) const override {
    const std::string& ns = c.metadata.namespace_;
    const std::string& name = c.spec.target_ref.name;
    start();
    if (!services_->synced() || !revisions_->synced()) {
      obs.target_error = fmt::format("Knative Service {}.{} get query error: the Knative caches are not synced (are "
                                     "Knative Serving's CRDs installed?)",
                                     name, ns);
      return;
    }
    if (c.spec.autoscaler_ref) {  // refused at decoding too (verifyCanary)
      obs.target_error = "autoscalerRef is not supported with a Knative Service target";
      return;
    }
    const auto ksvc = services_->get(ns, name);
    if (!ksvc) {
      obs.target_error = fmt::format(
          "Knative Service {}.{} get query error: services.serving.knative.dev \"{}\" not found", name, ns, name);
      return;
    }
    const auto s = core::read_knative_service(ksvc->json());
    if (s.parse_error) {
      obs.target_error = fmt::format("Knative Service {}.{}: {}", name, ns, *s.parse_error);
      return;
    }
    if (s.latest_created.empty()) {
      obs.target_error = fmt::format("Knative Service {}.{} has no latest created revision yet", name, ns);
      return;
    }
    // HasTargetChanged: the latest created revision is the target's revision.
    obs.target_revision = s.latest_created;
    obs.target_scaled_to_zero = false;
    obs.canary = readiness_of(c, s.latest_created, now);
    if (s.primary_revision) {
      obs.primary = readiness_of(c, *s.primary_revision, now);
    } else {
      obs.primary = core::readiness::waiting(
          fmt::format("Knative Service {}.{} primary revision annotation not found", name, ns));
    }
  }

  asio::awaitable<action_result> apply(const core::canary& c, workload_action a) override {
    switch (a) {
      case workload_action::initialize_primary:
        // Flagger's Initialize writes only while the canary is new or initializing.
        if (c.status.phase != core::canary_phase::none && c.status.phase != core::canary_phase::initializing)
          co_return action_result();
        co_return co_await update(c, [&](std::string_view cur) { return core::knative_initialize_body(c, cur); });
      case workload_action::promote:
        co_return co_await update(c, [&](std::string_view cur) { return core::knative_promote_body(c, cur); });
      case workload_action::scale_to_zero:
      case workload_action::scale_from_zero:
      case workload_action::pause_target_scaler:
      case workload_action::resume_target_scaler:
      case workload_action::finalize_target: co_return action_result();  // Knative scales its revisions
      default:
        assert(false && "not a target controller action");
        co_return error_text(fmt::format("{} is not a target controller action", core::to_string(a)));
    }
  }

  asio::awaitable<action_result> reconcile_primary_scaler(const core::canary&, bool) override {
    co_return action_result();  // no autoscalerRef with a Knative target
  }

 private:
  core::readiness readiness_of(const core::canary& c, const std::string& revision, core::wall_time now) const {
    const auto r = revisions_->get(c.metadata.namespace_, revision);
    if (!r) return core::knative_revision_readiness(c, revision, nullptr, now);
    const auto state = core::read_knative_revision(r->json());
    return core::knative_revision_readiness(c, revision, &state, now);
  }

  // Starts the caches on first use.
  void start() const {
    if (services_) return;
    services_ = start_cache(knative_services, false);
    revisions_ = start_cache(knative_revisions, true);
  }

  std::shared_ptr<k8s::cache> start_cache(const k8s::resource& r, bool revisions) const {
    k8s::watch_options wo;
    wo.res = r;
    wo.namespace_name = opts_.namespace_;
    auto cache = std::make_shared<k8s::cache>(k_.client, wo);
    auto notify = [this, revisions, alive = std::weak_ptr<int>(alive_)](const k8s::object_ptr& o) {
      if (alive.expired() || !o || !changed_) return;
      if (!revisions) {
        changed_(o->namespace_name(), o->name());
        return;
      }
      if (auto svc = revision_service(*o); !svc.empty()) changed_(o->namespace_name(), svc);
    };
    k8s::cache_handlers h;
    h.on_add = notify;
    h.on_update = [notify](const k8s::object_ptr&, const k8s::object_ptr& now) { notify(now); };
    h.on_delete = notify;
    subscriptions_.emplace_back(cache, cache->subscribe(std::move(h)));
    // The first Knative Canary found the caches empty: look again once they have listed.
    cache->on_synced([this, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired() || !changed_ || !services_) return;
      for (const auto& o : services_->list()) changed_(o->namespace_name(), o->name());
    });
    // The cache is a parameter, not a capture: a coroutine lambda's captures die with the
    // temporary closure, its parameters live in the coroutine frame.
    auto keep_running = [](std::shared_ptr<k8s::cache> c) -> asio::awaitable<void> { co_await c->run(); };
    asio::co_spawn(k_.client.get_executor(), keep_running(cache), [what = r.plural](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error(fmt::format("internal error in the Knative {} cache: {}", what, ex.what()));
      }
    });
    return cache;
  }

  // PUTs the Knative Service as `body` computes it from the current copy (nothing when it says
  // nullopt), re-reading on 409 Conflict.
  asio::awaitable<action_result> update(const core::canary& c, const update_fn& body) {
    const std::string& ns = c.metadata.namespace_;
    const std::string& name = c.spec.target_ref.name;
    start();
    const bool synced = co_await services_->wait_synced(sync_wait);
    if (!synced) co_return error_text(fmt::format("Knative Service {}.{} get query error: the Knative caches are not synced", name, ns));
    auto cached = services_->get(ns, name);
    if (!cached) {
      co_return error_text(
          fmt::format("Knative Service {}.{} get query error: services.serving.knative.dev \"{}\" not found", name, ns, name));
    }
    std::string current(cached->json());
    for (int attempt = 0;; ++attempt) {
      auto b = body(current);
      if (!b) co_return error_text(b.error());
      if (!*b) co_return action_result();
      auto r = co_await k_.client.update(knative_services, ns, name, **b);
      if (r) {
        log::info(fmt::format("Knative Service {}.{} updated", name, ns), {{"canary", c.id()}});
        co_return action_result();
      }
      if (!k8s::is_conflict(r.error()) || attempt >= conflict_retries) {
        co_return error_text(fmt::format("Knative Service {}.{} update query error {}", name, ns, api_text(r.error())));
      }
      auto fresh = co_await k_.client.get(knative_services, ns, name);
      if (!fresh) co_return error_text(fmt::format("Knative Service {}.{} get query error: {}", name, ns, api_text(fresh.error())));
      current = std::string(fresh->json());
    }
  }

  cluster& k_;
  const options& opts_;
  knative_changed changed_;
  mutable std::shared_ptr<k8s::cache> services_, revisions_;
  mutable std::vector<std::pair<std::shared_ptr<k8s::cache>, std::uint64_t>> subscriptions_;
  // Expires with the controller: callbacks the caches still hold check it before using `this`.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace

std::unique_ptr<target_controller> make_knative_controller(cluster& k, const options& opts, knative_changed changed) {
  return std::make_unique<knative_target_controller>(k, opts, std::move(changed));
}

}  // namespace canaryd
