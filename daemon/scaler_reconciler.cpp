#include "daemon/scaler_reconciler.hpp"

#include <fmt/format.h>

#include "core/primary.hpp"
#include "k8s/api_error.hpp"

namespace canaryd {

namespace {

constexpr int conflict_retries = 5;

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

template <class... Args>
action_result error(fmt::format_string<Args...> f, Args&&... args) {
  return action_result(boost::system::in_place_error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace

scaler_reconciler::scaler_reconciler(cluster& k, const options& opts) : k_(k), opts_(opts) {}

k8s::object_ptr scaler_reconciler::target_autoscaler(const core::canary& c) const {
  if (!c.spec.autoscaler_ref || c.spec.autoscaler_ref->kind != "HorizontalPodAutoscaler") return nullptr;
  return k_.hpas.get(c.metadata.namespace_, c.spec.autoscaler_ref->name);
}

boost::asio::awaitable<action_result> scaler_reconciler::reconcile_primary(const core::canary& c, bool init) {
  if (!c.spec.autoscaler_ref) co_return action_result();
  const auto& ref = *c.spec.autoscaler_ref;
  const std::string& ns = c.metadata.namespace_;
  if (ref.kind != "HorizontalPodAutoscaler") {
    co_return error("AutoscalerRef kind {} is not supported by canaryd yet (only HorizontalPodAutoscaler)", ref.kind);
  }
  const auto hpa = k_.hpas.get(ns, ref.name);
  if (!hpa) {
    co_return error("HorizontalPodAutoscaler {}.{} get query error: horizontalpodautoscalers.autoscaling \"{}\" not found",
                    ref.name, ns, ref.name);
  }
  const std::string primary_name = ref.name + "-primary";
  const auto existing = k_.hpas.get(ns, primary_name);
  if (!existing) {
    auto body = core::make_primary_hpa(c, hpa->json(), "");
    if (!body) co_return action_result(boost::system::in_place_error, body.error());
    auto r = co_await k_.client.create(resources::hpas, ns, *body);
    if (!r && !k8s::is_already_exists(r.error())) {
      co_return error("creating HorizontalPodAutoscaler {}.{} failed: {}", primary_name, ns, api_text(r.error()));
    }
    co_return action_result();
  }
  if (init) co_return action_result();
  std::string current(existing->json());
  for (int attempt = 0;; ++attempt) {
    auto body = core::make_primary_hpa(c, hpa->json(), current);
    if (!body) co_return action_result(boost::system::in_place_error, body.error());
    if (!core::primary_hpa_differs(*body, current)) co_return action_result();
    auto r = co_await k_.client.update(resources::hpas, ns, primary_name, *body);
    if (r) co_return action_result();
    if (!k8s::is_conflict(r.error()) || attempt >= conflict_retries) {
      co_return error("updating HorizontalPodAutoscaler {}.{} failed: {}", primary_name, ns, api_text(r.error()));
    }
    auto fresh = co_await k_.client.get(resources::hpas, ns, primary_name);
    if (!fresh) co_return error("updating HorizontalPodAutoscaler {}.{} failed: {}", primary_name, ns, api_text(fresh.error()));
    current = std::string(fresh->json());
  }
}

boost::asio::awaitable<action_result> scaler_reconciler::set_target_paused(const core::canary& c, bool paused) {
  // HPA: Flagger's Pause/Resume are no-ops (the target HPA keeps running; it does not scale a
  // workload up from 0). KEDA ScaledObject: the paused-replicas annotation.
  if (!c.spec.autoscaler_ref || c.spec.autoscaler_ref->kind != "ScaledObject") co_return action_result();
  static const k8s::resource scaled_objects{"keda.sh", "v1alpha1", "scaledobjects", true};
  const std::string patch = paused ? R"({"metadata":{"annotations":{"autoscaling.keda.sh/paused-replicas":"0"}}})"
                                   : R"({"metadata":{"annotations":{"autoscaling.keda.sh/paused-replicas":null}}})";
  const auto& name = c.spec.autoscaler_ref->name;
  auto r = co_await k_.client.patch(scaled_objects, c.metadata.namespace_, name, k8s::patch_type::merge, patch);
  if (!r) {
    co_return error("{} ScaledObject {}.{} failed: {}", paused ? "pausing" : "resuming", name, c.metadata.namespace_,
                    api_text(r.error()));
  }
  co_return action_result();
}

}  // namespace canaryd
