#include "daemon/scaler_reconciler.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <exception>
#include <fmt/format.h>

#include "core/keda.hpp"
#include "core/primary.hpp"
#include "k8s/api_error.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;

constexpr int conflict_retries = 5;
// How long an action waits for the ScaledObject cache's first list before it gives up for this tick.
constexpr std::chrono::seconds sync_wait{10};

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

template <class... Args>
action_result error(fmt::format_string<Args...> f, Args&&... args) {
  return action_result(boost::system::in_place_error, fmt::format(f, std::forward<Args>(args)...));
}

// "<Kind> <name>" of the controller of an object when it is not the Canary `c`; empty when the
// object has no controller or `c` is it.
std::string foreign_controller(const core::canary& c, std::string_view object_json) {
  boost::system::error_code ec;
  json::value v = json::parse(object_json, ec);
  if (ec) return {};
  const json::value* refs = v.find_pointer("/metadata/ownerReferences", ec);
  if (refs == nullptr || !refs->is_array()) return {};
  for (const auto& r : refs->as_array()) {
    if (!r.is_object()) continue;
    const auto* controller = r.as_object().if_contains("controller");
    if (controller == nullptr || !controller->is_bool() || !controller->as_bool()) continue;
    auto text = [&](std::string_view k) {
      const auto* f = r.as_object().if_contains(k);
      return f && f->is_string() ? std::string(f->as_string()) : std::string();
    };
    if (text("kind") == "Canary" && text("uid") == c.metadata.uid) return {};
    return fmt::format("{} {}", text("kind"), text("name"));
  }
  return {};
}

}  // namespace

scaler_reconciler::scaler_reconciler(cluster& k, const options& opts) : k_(k), opts_(opts) {}

scaler_reconciler::~scaler_reconciler() { stop(); }

void scaler_reconciler::stop() {
  if (scaled_objects_) scaled_objects_->stop();
}

std::optional<std::string> scaler_reconciler::refusal(const core::canary& c, std::string_view target_kind) {
  if (!c.spec.autoscaler_ref) return std::nullopt;
  const auto& ref = *c.spec.autoscaler_ref;
  if (target_kind == "DaemonSet") {
    return fmt::format("autoscalerRef {} {}.{} cannot scale a DaemonSet: DaemonSet targets take no autoscaler", ref.kind,
                       ref.name, c.metadata.namespace_);
  }
  if (ref.kind != "HorizontalPodAutoscaler" && ref.kind != "ScaledObject") {
    return fmt::format("autoscalerRef kind {} is not supported (HorizontalPodAutoscaler or ScaledObject)", ref.kind);
  }
  return std::nullopt;
}

k8s::cache& scaler_reconciler::scaled_objects() {
  if (scaled_objects_) return *scaled_objects_;
  k8s::watch_options wo;
  wo.res = resources::scaled_objects;
  wo.namespace_name = opts_.namespace_;
  scaled_objects_ = std::make_shared<k8s::cache>(k_.client, wo);
  // The cache is a parameter, not a capture: a coroutine lambda's captures die with the
  // temporary closure, its parameters live in the coroutine frame.
  auto keep_running = [](std::shared_ptr<k8s::cache> c) -> asio::awaitable<void> { co_await c->run(); };
  asio::co_spawn(k_.client.get_executor(), keep_running(scaled_objects_), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error(fmt::format("internal error in the scaledobjects cache: {}", ex.what()));
    }
  });
  return *scaled_objects_;
}

asio::awaitable<bool> scaler_reconciler::scaled_objects_synced() {
  co_return co_await scaled_objects().wait_synced(sync_wait);
}

k8s::object_ptr scaler_reconciler::target_autoscaler(const core::canary& c) const {
  if (!c.spec.autoscaler_ref) return nullptr;
  const auto& ref = *c.spec.autoscaler_ref;
  if (ref.kind == "HorizontalPodAutoscaler") return k_.hpas.get(c.metadata.namespace_, ref.name);
  if (ref.kind == "ScaledObject" && scaled_objects_) return scaled_objects_->get(c.metadata.namespace_, ref.name);
  return nullptr;
}

asio::awaitable<action_result> scaler_reconciler::reconcile_primary(const core::canary& c, bool init) {
  if (!c.spec.autoscaler_ref) co_return action_result();
  if (c.spec.autoscaler_ref->kind == "HorizontalPodAutoscaler") co_return co_await reconcile_primary_hpa(c, init);
  if (c.spec.autoscaler_ref->kind == "ScaledObject") co_return co_await reconcile_primary_scaled_object(c, init);
  co_return error("autoscalerRef kind {} is not supported (HorizontalPodAutoscaler or ScaledObject)", c.spec.autoscaler_ref->kind);
}

asio::awaitable<action_result> scaler_reconciler::reconcile_primary_hpa(const core::canary& c, bool init) {
  const auto& ref = *c.spec.autoscaler_ref;
  const std::string& ns = c.metadata.namespace_;
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

asio::awaitable<action_result> scaler_reconciler::reconcile_primary_scaled_object(const core::canary& c, bool init) {
  const auto& ref = *c.spec.autoscaler_ref;
  const std::string& ns = c.metadata.namespace_;
  if (!co_await scaled_objects_synced()) {
    co_return error("Keda ScaledObject {}.{} get query error: the keda.sh ScaledObject cache is not synced (is KEDA's CRD installed?)",
                    ref.name, ns);
  }
  const auto target = scaled_objects().get(ns, ref.name);
  if (!target) {
    co_return error("Keda ScaledObject {}.{} get query error: scaledobjects.keda.sh \"{}\" not found", ref.name, ns, ref.name);
  }
  const std::string primary_name = ref.name + "-primary";
  const auto existing = scaled_objects().get(ns, primary_name);
  if (!existing) {
    auto body = core::make_primary_scaled_object(c, target->json(), "", opts_.include_label_prefix);
    if (!body) co_return action_result(boost::system::in_place_error, body.error());
    auto r = co_await k_.client.create(resources::scaled_objects, ns, *body);
    if (!r && !k8s::is_already_exists(r.error())) {
      co_return error("creating Keda ScaledObject {}.{} failed: {}", primary_name, ns, api_text(r.error()));
    }
    if (r) log::info(fmt::format("Keda ScaledObject {}.{} created", primary_name, ns), {{"canary", c.id()}});
    co_return action_result();
  }
  if (auto owner = foreign_controller(c, existing->json()); !owner.empty()) {
    co_return error("refused: ScaledObject {}.{} is controlled by {}, not by Canary {}", primary_name, ns, owner, c.metadata.name);
  }
  if (init) co_return action_result();
  std::string current(existing->json());
  for (int attempt = 0;; ++attempt) {
    auto body = core::make_primary_scaled_object(c, target->json(), current, opts_.include_label_prefix);
    if (!body) co_return action_result(boost::system::in_place_error, body.error());
    if (!core::primary_scaled_object_differs(*body, current)) co_return action_result();
    auto r = co_await k_.client.update(resources::scaled_objects, ns, primary_name, *body);
    if (r) co_return action_result();
    if (!k8s::is_conflict(r.error()) || attempt >= conflict_retries) {
      co_return error("updating ScaledObject {}.{} failed: {}", primary_name, ns, api_text(r.error()));
    }
    auto fresh = co_await k_.client.get(resources::scaled_objects, ns, primary_name);
    if (!fresh) co_return error("updating ScaledObject {}.{} failed: {}", primary_name, ns, api_text(fresh.error()));
    current = std::string(fresh->json());
  }
}

asio::awaitable<action_result> scaler_reconciler::set_target_paused(const core::canary& c, bool paused) {
  // HPA: Flagger's Pause/Resume are no-ops (the target HPA keeps running; it does not scale a
  // workload up from 0).
  if (!c.spec.autoscaler_ref || c.spec.autoscaler_ref->kind != "ScaledObject") co_return action_result();
  const auto& name = c.spec.autoscaler_ref->name;
  const std::string& ns = c.metadata.namespace_;
  if (!co_await scaled_objects_synced()) {
    co_return error("Keda ScaledObject {}.{} get query error: the keda.sh ScaledObject cache is not synced (is KEDA's CRD installed?)",
                    name, ns);
  }
  const auto target = scaled_objects().get(ns, name);
  if (!target) co_return error("Keda ScaledObject {}.{} get query error: scaledobjects.keda.sh \"{}\" not found", name, ns, name);
  const auto current = core::scaled_object_paused_replicas(target->json());
  if (paused ? current == std::optional<std::string>("0") : !current) co_return action_result();
  const std::string patch = fmt::format(R"({{"metadata":{{"annotations":{{"{}":{}}}}}}})", core::keda_paused_replicas_annotation,
                                        paused ? R"("0")" : "null");
  auto r = co_await k_.client.patch(resources::scaled_objects, ns, name, k8s::patch_type::merge, patch);
  if (!r) co_return error("{} ScaledObject {}.{} failed: {}", paused ? "pausing" : "resuming", name, ns, api_text(r.error()));
  co_return action_result();
}

}  // namespace canaryd
