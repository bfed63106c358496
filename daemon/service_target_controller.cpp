// The Service target controller (Flagger's ServiceController, flagger-behaviour.md §4; the
// Kubernetes router is then Flagger's KubernetesNoopRouter, see canary_runner.cpp): the
// `<svc>-canary` copy of the target Service kept in step with it, the `<svc>-primary` copy made
// once and rewritten by promotion. No scaling, no readiness, no config tracking: the Services'
// backends are someone else's workloads. Used between two backends with an edge provider
// (Gateway API, ...) or the kubernetes provider.
//
// Reads: only the caches (observe() makes no request); a write happens only when the cached copy
// differs from what it should be. Updates retry on 409 Conflict with a fresh GET.
#include <boost/json.hpp>

#include <cassert>
#include <fmt/format.h>
#include <map>
#include <string>

#include "core/primary.hpp"
#include "core/provider.hpp"
#include "core/revision.hpp"
#include "daemon/target.hpp"
#include "k8s/api_error.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using core::workload_action;

constexpr int conflict_retries = 5;

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }
action_result error_text(std::string s) { return action_result(boost::system::in_place_error, std::move(s)); }

std::string missing_service(std::string_view name, std::string_view ns) {
  return fmt::format("service {}.{} get query error: services \"{}\" not found", name, ns, name);
}

// The target's revision: a hash of its spec (Flagger's hash of svc.Spec).
std::string spec_revision(std::string_view svc_json, bool& ok) {
  boost::system::error_code ec;
  json::value v = json::parse(svc_json, ec);
  ok = false;
  if (ec || !v.is_object()) return {};
  const auto* spec = v.as_object().if_contains("spec");
  if (spec == nullptr) return {};
  auto r = core::pod_template_revision(json::serialize(*spec));
  ok = r.ok();
  return r.value;
}

class service_target_controller final : public target_controller {
 public:
  service_target_controller(cluster& k, const options& opts) : k_(k), opts_(opts) {}

  void observe(const core::canary& c, core::observed_state& obs, core::wall_time) const override {
    const std::string& ns = c.metadata.namespace_;
    const auto target = k_.services.get(ns, c.spec.target_ref.name);
    if (!target) {
      revisions_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      obs.target_error = missing_service(c.spec.target_ref.name, ns);
      return;
    }
    if (auto why = core::service_target_name_error(c, core::effective_provider(c, opts_.mesh_provider)); !why.empty()) {
      obs.target_error = std::move(why);
      return;
    }
    if (c.spec.autoscaler_ref) {
      obs.target_error = fmt::format("autoscalerRef {} {}.{} cannot scale a Service: Service targets take no autoscaler",
                                     c.spec.autoscaler_ref->kind, c.spec.autoscaler_ref->name, ns);
      return;
    }
    auto& memo = revisions_[target->key()];
    const std::string version = fmt::format("{}/r{}", target->uid(), target->resource_version());
    if (memo.first != version) {
      bool ok = false;
      std::string rev = spec_revision(target->json(), ok);
      memo = {version, ok ? rev : std::string()};
    }
    if (memo.second.empty()) {
      obs.target_error = fmt::format("service {}.{} has no readable spec", c.spec.target_ref.name, ns);
      return;
    }
    obs.target_revision = memo.second;
    // Flagger's ServiceController: always ready, never scaled.
    obs.canary = core::readiness::ready();
    obs.primary = core::readiness::ready();
    obs.target_scaled_to_zero = false;
  }

  asio::awaitable<action_result> apply(const core::canary& c, workload_action a) override {
    switch (a) {
      case workload_action::initialize_primary: co_return co_await initialize(c);
      case workload_action::promote: co_return co_await write_copy(c, c.primary_workload_name(), true);
      case workload_action::scale_to_zero:
      case workload_action::scale_from_zero:
      case workload_action::pause_target_scaler:
      case workload_action::resume_target_scaler:
      case workload_action::finalize_target: co_return action_result();
      default:
        assert(false && "not a target controller action");
        co_return error_text(fmt::format("{} is not a target controller action", core::to_string(a)));
    }
  }

  asio::awaitable<action_result> reconcile_primary_scaler(const core::canary&, bool) override {
    co_return action_result();  // observe() refuses an autoscalerRef
  }

 private:
  core::primary_options copy_options() const {
    core::primary_options o;
    o.selector_labels = opts_.selector_labels;
    o.include_label_prefix = opts_.include_label_prefix;
    return o;
  }

  // Flagger's Initialize: the -canary copy follows the target on every tick, the -primary copy is
  // created once.
  asio::awaitable<action_result> initialize(const core::canary& c) {
    auto r = co_await write_copy(c, c.spec.target_ref.name + "-canary", false);
    if (!r) co_return r;
    if (k_.services.get(c.metadata.namespace_, c.primary_workload_name())) co_return action_result();
    co_return co_await write_copy(c, c.primary_workload_name(), false);
  }

  // Creates or updates the copy `name` of the target (see core::make_service_copy).
  asio::awaitable<action_result> write_copy(const core::canary& c, const std::string& name, bool promotion) {
    const std::string& ns = c.metadata.namespace_;
    const auto target = k_.services.get(ns, c.spec.target_ref.name);
    if (!target) co_return error_text(missing_service(c.spec.target_ref.name, ns));
    const auto existing = k_.services.get(ns, name);
    if (!existing) {
      auto body = core::make_service_copy(c, target->json(), name, "", copy_options(), promotion);
      if (!body) co_return error_text(body.error());
      auto r = co_await k_.client.create(resources::services, ns, **body);
      if (r || k8s::is_already_exists(r.error())) co_return action_result();
      co_return error_text(fmt::format("creating service {}.{} query error: {}", name, ns, api_text(r.error())));
    }
    std::string current(existing->json());
    for (int attempt = 0;; ++attempt) {
      auto body = core::make_service_copy(c, target->json(), name, current, copy_options(), promotion);
      if (!body) co_return error_text(body.error());
      if (!*body) co_return action_result();
      auto r = co_await k_.client.update(resources::services, ns, name, **body);
      if (r) co_return action_result();
      const bool retry = k8s::is_conflict(r.error()) && attempt < conflict_retries;
      if (!retry) {
        co_return error_text(promotion ? fmt::format("updating service {}.{} spec failed: {}", name, ns, api_text(r.error()))
                                       : fmt::format("updating service {}.{} failed: {}", name, ns, api_text(r.error())));
      }
      auto fresh = co_await k_.client.get(resources::services, ns, name);
      if (!fresh) co_return error_text(fmt::format("service {}.{} get query error: {}", name, ns, api_text(fresh.error())));
      current = std::string(fresh->json());
    }
  }

  cluster& k_;
  const options& opts_;
  // target key -> (uid/resourceVersion, spec revision or "" when unreadable)
  mutable std::map<std::string, std::pair<std::string, std::string>, std::less<>> revisions_;
};

}  // namespace

std::unique_ptr<target_controller> make_service_target_controller(cluster& k, const options& opts) {
  return std::make_unique<service_target_controller>(k, opts);
}

}  // namespace canaryd
