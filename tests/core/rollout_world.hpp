#pragma once
// Test helper: a tiny, pure stand-in for the cluster around one canary — a target Deployment (or
// Service/DaemonSet: the core does not care), its primary, tracked configs, a mesh router's
// routes, webhook receivers and a metrics server — that applies rollout decisions the way the
// daemon will, on a manual clock. Flagger's controller tests (pkg/controller/scheduler_*_test.go)
// call advanceCanary once per tick against fakes; world::step() is that tick.
#include <doctest/doctest.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/canary.hpp"
#include "core/revision.hpp"
#include "core/rollout.hpp"

namespace canaryd::test {

using namespace canaryd::core;

// Decodes a canary and fails the test if it does not decode cleanly.
inline canary must_decode(const std::string& json) {
  auto d = decode_canary(json);
  INFO(join_errors(d.errors));
  REQUIRE(d.ok());
  return d.value;
}

// Flagger's fixture canary (newDeploymentTestCanary): podinfo in "default", an HPA, service port
// 9898, threshold 10, stepWeight 10, maxWeight 50, two built-in metrics and a template metric.
inline std::string fixture_canary_json(const std::string& analysis_extra = "", const std::string& spec_extra = "",
                                       const std::string& target_kind = "Deployment") {
  const std::string api = target_kind == "Service" ? "v1" : "apps/v1";
  std::string analysis = analysis_extra.empty() ? R"("threshold": 10, "stepWeight": 10, "maxWeight": 50,)" : analysis_extra;
  return R"({"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": "default", "uid": "uid-1"},
    "spec": {)" + spec_extra + R"(
      "targetRef": {"apiVersion": ")" + api + R"(", "kind": ")" + target_kind + R"(", "name": "podinfo"},
      "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"},
      "service": {"port": 9898},
      "analysis": {"interval": "1m", )" + analysis + R"(
        "metrics": [
          {"name": "request-success-rate", "threshold": 99, "interval": "1m"},
          {"name": "request-duration", "thresholdRange": {"min": 0, "max": 500000}, "interval": "1m"},
          {"name": "custom", "thresholdRange": {"min": 0, "max": 100}, "interval": "1m",
           "templateRef": {"name": "envoy", "namespace": "default"}}]}}})";
}

struct webhook_call {
  std::string name;
  webhook_type type;
  canary_phase phase;
};

class world {
 public:
  canary cd;
  std::vector<field_error> errors;
  rollout_options options;  // Flagger's fixture routes with Istio
  revision_options revisions;

  // The target.
  std::string image = "quay.io/stefanprodan/podinfo:1.2.0";
  std::string pod_extra;  // more pod spec members, e.g. ,"serviceAccountName":"test"
  int target_replicas = 1;
  bool target_ready = false;
  bool target_deadline_exceeded = false;
  bool scalable = true;  // a Service target is never scaled (Flagger's no-op ScaleToZero)
  std::string target_error;
  std::string refusal;  // observed_state::refusal (ownership)

  // The primary.
  bool primary_exists = false;
  bool primary_ready = false;
  bool primary_failed = false;
  std::string primary_template;
  std::map<std::string, std::string> primary_configs;

  std::map<std::string, std::string> configs;  // tracked checksums
  traffic_routes routes;                       // the mesh router's state
  std::map<std::string, bool> hook_answers;    // webhook name -> success (default true)
  std::vector<webhook_call> calls;
  std::function<metric_observation(const metric_query&)> metric = [](const metric_query&) {
    return metric_observation{metric_observation::outcome::value, 100, ""};  // Flagger's fake Prometheus
  };

  std::vector<canary_event> events;
  std::vector<send_alert> alerts;
  std::vector<workload_action> actions;
  std::vector<traffic_routes> route_writes;
  int status_writes = 0;
  int rounds = 0;  // decide() calls in the last tick

  wall_time now = *parse_rfc3339("2024-05-01T10:00:00Z");
  std::optional<wall_time> last_step;
  decision last;

  explicit world(canary c) : cd(std::move(c)) {}

  std::string pod_template() const {
    return R"({"metadata":{"labels":{"app":"podinfo"}},"spec":{"containers":[{"name":"podinfo","image":")" + image +
           R"(","ports":[{"name":"http","containerPort":9898}]}])" + pod_extra + "}}";
  }
  std::string revision() const {
    auto r = pod_template_revision(pod_template(), revisions);
    REQUIRE(r.ok());
    return r.value;
  }

  bool uses_kubernetes_router() const {
    return (cd.spec.provider.empty() ? options.mesh_provider : cd.spec.provider) == "kubernetes";
  }

  traffic_routes current_routes() const {
    // The kubernetes provider's NopRouter derives routes from status.iterations.
    if (uses_kubernetes_router()) return cd.status.iterations > 0 ? traffic_routes{0, 100, false} : traffic_routes{100, 0, false};
    return routes;
  }

  observed_state observe() const {
    observed_state o;
    o.target_error = target_error;
    o.refusal = refusal;
    o.target_revision = revision();
    o.tracked_configs = configs;
    o.target_scaled_to_zero = target_replicas == 0;
    if (target_deadline_exceeded) {
      o.canary = readiness::failed("podinfo.default not ready: progress deadline exceeded");
    } else if (target_replicas == 0 || target_ready) {
      o.canary = readiness::ready();
    } else {
      o.canary = readiness::waiting(
          "podinfo.default not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available");
    }
    if (!primary_exists) {
      // The edge reports Flagger's text for a primary it has just created.
      o.primary = readiness::waiting(
          "podinfo-primary.default not ready: waiting for rollout to finish: 0 out of 1 new replicas have been updated");
    } else if (primary_failed) {
      o.primary = readiness::failed("podinfo-primary.default not ready: progress deadline exceeded");
    } else if (primary_ready) {
      o.primary = readiness::ready();
    } else {
      o.primary = readiness::waiting(
          "podinfo-primary.default not ready: waiting for rollout to finish: 0 out of 1 new replicas have been updated");
    }
    o.primary_matches_target = primary_exists && primary_template == pod_template();
    o.routes = current_routes();
    return o;
  }

  void make_primary_ready() { primary_ready = true; }
  void make_canary_ready() { target_ready = true; }

  // One wake of the canary's coroutine at `now`.
  decision tick() {
    observed_state obs = observe();
    for (rounds = 1; rounds <= 10; ++rounds) {
      decision d = decide(cd, errors, obs, options, {now, last_step});
      if (d.need_webhooks) {
        CHECK(d.steps.empty());
        obs.webhook_results[d.need_webhooks->type] = call_hooks(*d.need_webhooks);
        continue;
      }
      if (d.need_metrics) {
        CHECK(d.steps.empty());
        std::vector<metric_observation> answers;
        for (const auto& q : d.need_metrics->queries) answers.push_back(metric(q));
        obs.metric_results = answers;
        continue;
      }
      apply(d);
      if (d.step_taken) last_step = now;
      last = d;
      return d;
    }
    FAIL("decide() kept asking for input");
    return {};
  }

  // A tick whose daemon dies (SIGKILL) or whose status write fails after the cluster actions
  // before that write were applied: those actions happen, the write and everything after it do
  // not, and neither do the reports before it (the daemon delivers reports only after the write
  // they follow landed). Returns the decision that was cut short.
  decision tick_cut_before_write() {
    observed_state obs = observe();
    for (rounds = 1; rounds <= 10; ++rounds) {
      decision d = decide(cd, errors, obs, options, {now, last_step});
      if (d.need_webhooks) {
        obs.webhook_results[d.need_webhooks->type] = call_hooks(*d.need_webhooks);
        continue;
      }
      if (d.need_metrics) {
        std::vector<metric_observation> answers;
        for (const auto& q : d.need_metrics->queries) answers.push_back(metric(q));
        obs.metric_results = answers;
        continue;
      }
      decision cut;
      for (const auto& s : d.steps) {
        if (std::holds_alternative<write_status>(s)) break;
        if (std::holds_alternative<record_event>(s) || std::holds_alternative<send_alert>(s) ||
            std::holds_alternative<call_webhooks>(s))
          continue;
        cut.steps.push_back(s);
      }
      apply(cut);
      return d;
    }
    FAIL("decide() kept asking for input");
    return {};
  }

  // What a restarted daemon reads: the status as written to the API server and decoded again
  // from the canary's JSON (`canary_json`, without a status), and no memory of the last step.
  void restart(const std::string& canary_json) {
    std::string json = canary_json;
    json.insert(json.size() - 1, R"(,"status": )" + encode_status(cd.status));
    const auto finalizers = cd.metadata.finalizers;
    cd = must_decode(json);
    cd.metadata.finalizers = finalizers;
    last_step.reset();
  }

  // The next interval's tick, as Flagger's ticker would run it.
  decision step() {
    now += cd.analysis_interval();
    return tick();
  }

  std::vector<std::string> event_messages() const {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.message);
    return out;
  }
  bool has_event(const std::string& message) const {
    for (const auto& e : events) {
      if (e.message == message) return true;
    }
    return false;
  }
  bool did(workload_action a) const {
    for (auto x : actions) {
      if (x == a) return true;
    }
    return false;
  }

 private:
  std::vector<webhook_outcome> call_hooks(const webhook_request& r) {
    std::vector<webhook_outcome> out;
    for (const auto& hook : r.hooks) {
      const bool ok = hook_answers.count(hook.name) ? hook_answers.at(hook.name) : true;
      calls.push_back({hook.name, r.type, r.payload_phase});
      out.push_back({hook.name, ok, ok ? "" : "403 Forbidden"});
      if (ok == r.stop_at_first_success) break;
    }
    return out;
  }

  void apply(const decision& d) {
    for (const auto& s : d.steps) {
      if (auto a = std::get_if<workload_action>(&s)) {
        actions.push_back(*a);
        switch (*a) {
          case workload_action::initialize_primary:
            if (!primary_exists) {
              primary_exists = true;
              primary_ready = false;
              primary_template = pod_template();
              primary_configs = configs;
            }
            break;
          case workload_action::promote:
            primary_template = pod_template();
            primary_configs = configs;
            break;
          case workload_action::scale_to_zero:
            if (scalable) target_replicas = 0;
            break;
          case workload_action::scale_from_zero:
            if (scalable && target_replicas == 0) target_ready = false;
            target_replicas = 1;
            break;
          case workload_action::finalize_target: target_replicas = 1; break;
          case workload_action::add_finalizer: cd.metadata.finalizers.push_back(std::string(canary_finalizer)); break;
          case workload_action::remove_finalizer: cd.metadata.finalizers.clear(); break;
          default: break;
        }
      } else if (auto r = std::get_if<set_routes>(&s)) {
        route_writes.push_back(r->routes);
        if (!uses_kubernetes_router()) routes = r->routes;
      } else if (auto w = std::get_if<write_status>(&s)) {
        cd.status = w->status;
        ++status_writes;
      } else if (auto e = std::get_if<record_event>(&s)) {
        events.push_back(e->event);
      } else if (auto al = std::get_if<send_alert>(&s)) {
        alerts.push_back(*al);
      } else if (auto c = std::get_if<call_webhooks>(&s)) {
        webhook_request r{c->type, c->payload_phase, c->hooks, false};
        auto outcomes = call_hooks(r);
        for (const auto& ev : webhook_outcome_events(cd, c->type, c->payload_phase, outcomes)) events.push_back(ev);
      }
    }
  }
};

}  // namespace canaryd::test
