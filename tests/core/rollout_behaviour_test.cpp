// The rollout state machine beyond Flagger's own scheduler tests: every gate, metric verdicts,
// pacing and restarts on a manual clock, deletion, invalid specs, adoption from Flagger, and the
// [quirk]s we fix.
#include <doctest/doctest.h>

#include "core/message.hpp"
#include "tests/core/rollout_world.hpp"

using namespace canaryd::core;
using canaryd::test::fixture_canary_json;
using canaryd::test::must_decode;
using canaryd::test::world;
using namespace std::chrono_literals;

namespace {

void initialize(world& w) {
  w.tick();
  w.make_primary_ready();
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::initialized);
}

// Initialized -> new revision -> Progressing with the canary ready.
void start_run(world& w) {
  initialize(w);
  w.image = "quay.io/stefanprodan/podinfo:1.2.1";
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  w.make_canary_ready();
}

std::string with_hooks(const std::string& hooks, const std::string& analysis = R"("threshold": 2, "stepWeight": 10, "maxWeight": 50,)") {
  return fixture_canary_json(analysis + R"("webhooks": [)" + hooks + "],");
}

std::size_t count_event(const world& w, const std::string& message) {
  return static_cast<std::size_t>(std::count_if(w.events.begin(), w.events.end(), [&](const auto& e) { return e.message == message; }));
}

}  // namespace

TEST_CASE("decide asks for gate answers before deciding and the request carries the hooks and the payload phase") {
  world w(must_decode(with_hooks(R"({"name": "gate", "type": "confirm-rollout", "url": "http://gate/"})")));
  initialize(w);
  w.image = "v2";
  w.now += 1min;
  const observed_state obs = w.observe();
  decision d = decide(w.cd, {}, obs, w.options, {w.now, w.last_step});
  REQUIRE(d.need_webhooks);
  CHECK(d.need_webhooks->type == webhook_type::confirm_rollout);
  CHECK(d.need_webhooks->payload_phase == canary_phase::initialized);
  REQUIRE(d.need_webhooks->hooks.size() == 1);
  CHECK(d.need_webhooks->hooks[0].url == "http://gate/");
  CHECK(d.steps.empty());
  CHECK_FALSE(d.step_taken);
  CHECK_FALSE(d.wake_at);
  // Same inputs, same question: decide() is a function.
  decision again = decide(w.cd, {}, obs, w.options, {w.now, w.last_step});
  CHECK(again.need_webhooks->type == webhook_type::confirm_rollout);
}

TEST_CASE("a closed confirm-rollout gate holds the canary in Waiting until it opens") {
  world w(must_decode(with_hooks(R"({"name": "gate", "type": "confirm-rollout", "url": "http://gate/"})")));
  initialize(w);
  w.hook_answers["gate"] = false;
  w.image = "v2";
  w.step();
  CHECK(w.cd.status.phase == canary_phase::waiting);
  // Issue 11: the condition says which gate holds it (Flagger: "Waiting for approval.").
  CHECK(w.cd.status.conditions.at(0).reason == "Waiting");
  CHECK(w.cd.status.conditions.at(0).message == "Halt podinfo.default advancement waiting for approval gate");
  CHECK(w.has_event("Halt podinfo.default advancement waiting for approval gate"));
  CHECK(w.alerts.back().message == "Canary is waiting for approval.");
  CHECK(w.target_replicas == 0);  // not scaled up while waiting
  const int writes = w.status_writes;
  w.step();
  w.step();
  CHECK(w.cd.status.phase == canary_phase::waiting);
  CHECK(w.status_writes == writes);  // nothing new to write while the gate stays closed
  CHECK(count_event(w, "Halt podinfo.default advancement waiting for approval gate") == 1);
  w.hook_answers["gate"] = true;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::progressing);
  CHECK(w.has_event("Confirm-rollout check gate passed"));
  CHECK(w.has_event("New revision detected! Scaling up podinfo.default"));
  CHECK(w.target_replicas == 1);
}

TEST_CASE("a muted gate halts without an alert") {
  world w(must_decode(with_hooks(R"({"name": "gate", "type": "confirm-rollout", "url": "http://gate/", "muteAlert": true})")));
  initialize(w);
  const std::size_t alerts = w.alerts.size();
  w.hook_answers["gate"] = false;
  w.image = "v2";
  w.step();
  CHECK(w.cd.status.phase == canary_phase::waiting);
  CHECK(w.alerts.size() == alerts);
}

TEST_CASE("a closed confirm-traffic-increase gate keeps the weight and the analysis running") {
  world w(must_decode(with_hooks(R"({"name": "step-gate", "type": "confirm-traffic-increase", "url": "http://gate/"})")));
  start_run(w);
  w.step();  // 0 -> 10 (the gate is open)
  REQUIRE(w.current_routes().canary == 10);
  w.hook_answers["step-gate"] = false;
  w.step();
  w.step();
  CHECK(w.current_routes().canary == 10);
  CHECK(w.cd.status.phase == canary_phase::progressing);
  CHECK(count_event(w, "Halt podinfo.default advancement waiting for traffic increase approval step-gate") == 2);
  CHECK(w.alerts.back().message == "Canary traffic increase is waiting for approval.");
  w.hook_answers["step-gate"] = true;
  w.step();
  CHECK(w.current_routes().canary == 20);
}

TEST_CASE("a closed confirm-promotion gate parks the canary in WaitingPromotion until it opens") {
  world w(must_decode(with_hooks(R"({"name": "promote", "type": "confirm-promotion", "url": "http://gate/"})",
                                 R"("threshold": 2, "stepWeight": 50, "maxWeight": 50,)")));
  start_run(w);
  w.hook_answers["promote"] = false;
  w.step();  // 0 -> 50
  REQUIRE(w.current_routes().canary == 50);
  w.step();  // at maxWeight: the gate says no
  CHECK(w.cd.status.phase == canary_phase::waiting_promotion);
  CHECK(w.has_event("Halt podinfo.default advancement waiting for promotion approval promote"));
  // [quirk] kept: status weight 0 and iterations -1 while the routes stay at 50%.
  CHECK(w.cd.status.canary_weight == 0);
  CHECK(w.cd.status.iterations == -1);
  CHECK(w.current_routes().canary == 50);
  w.step();  // still closed: the analysis keeps running, no second Halt event
  CHECK(w.cd.status.phase == canary_phase::waiting_promotion);
  CHECK(count_event(w, "Halt podinfo.default advancement waiting for promotion approval promote") == 1);
  w.hook_answers["promote"] = true;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::promoting);
  CHECK(w.has_event("Confirm-promotion check promote passed"));
}

TEST_CASE("a rollback webhook that answers 2xx rolls the canary back") {
  world w(must_decode(with_hooks(R"({"name": "rb", "type": "rollback", "url": "http://gate/rollback/check"})")));
  start_run(w);
  w.hook_answers["rb"] = false;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::progressing);
  CHECK(w.has_event("Rollback hook rb not signaling a rollback"));
  w.hook_answers["rb"] = true;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.has_event("Rollback check rb passed"));
  CHECK(w.has_event("Rolling back podinfo.default manual webhook invoked"));
  CHECK(w.current_routes() == traffic_routes{100, 0, false});
}

TEST_CASE("failed pre-rollout checks count toward the threshold and roll back on the tick after") {
  world w(must_decode(with_hooks(R"({"name": "smoke", "type": "pre-rollout", "url": "http://tester/"})")));
  start_run(w);
  w.hook_answers["smoke"] = false;
  w.step();
  CHECK(w.cd.status.failed_checks == 1);
  CHECK(w.has_event("Halt podinfo.default advancement pre-rollout check smoke failed 403 Forbidden"));
  w.step();
  CHECK(w.cd.status.failed_checks == 2);
  CHECK(w.cd.status.phase == canary_phase::progressing);  // threshold 2 reached; checked before the next analysis
  w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.has_event("Rolling back podinfo.default failed checks threshold reached 2"));
  CHECK(w.alerts.back().message == "Failed checks threshold reached 2");
}

TEST_CASE("a failing rollout webhook halts the step and counts a failed check") {
  world w(must_decode(with_hooks(R"({"name": "load", "url": "http://tester/"})")));
  start_run(w);
  w.step();  // first step: pre-rollout path, no rollout hooks
  REQUIRE(w.current_routes().canary == 10);
  w.hook_answers["load"] = false;
  w.step();
  CHECK(w.current_routes().canary == 10);
  CHECK(w.cd.status.failed_checks == 1);
  CHECK(w.has_event("Halt podinfo.default advancement external check load failed 403 Forbidden"));
}

TEST_CASE("a post-rollout hook is called with the final phase after a rollback") {
  world w(must_decode(with_hooks(R"({"name": "notify", "type": "post-rollout", "url": "http://tester/"})")));
  start_run(w);
  w.target_deadline_exceeded = true;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.has_event(
      "Rolling back podinfo.default progress deadline exceeded podinfo.default not ready: progress deadline exceeded"));
  CHECK(w.alerts.back().message == "Progress deadline exceeded podinfo.default not ready: progress deadline exceeded");
  REQUIRE(!w.calls.empty());
  CHECK(w.calls.back().type == webhook_type::post_rollout);
  CHECK(w.calls.back().phase == canary_phase::failed);
  CHECK(w.has_event("Post-rollout check notify passed"));
}

TEST_CASE("a canary that is not ready yet waits without counting a failed check") {
  world w(must_decode(fixture_canary_json()));
  initialize(w);
  w.image = "v2";
  w.step();
  w.step();  // target not ready
  CHECK(w.cd.status.failed_checks == 0);
  CHECK(w.current_routes().canary == 0);
  CHECK(w.has_event("podinfo.default not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available"));
}

TEST_CASE("skipAnalysis still rolls back a canary past its progress deadline") {
  world w(must_decode(fixture_canary_json("", R"("skipAnalysis": true,)")));
  w.tick();
  w.image = "v2";
  w.step();
  w.target_deadline_exceeded = true;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.primary_template != w.pod_template());
}

TEST_CASE("the kubernetes provider runs Blue/Green with 10 iterations and says so") {
  world w(must_decode(fixture_canary_json(R"("threshold": 2, "stepWeight": 10, "match": [{"headers": {"x": {"exact": "1"}}}],)",
                                          R"("provider": "kubernetes",)")));
  start_run(w);
  w.step();  // pre-rollout path (iterations 0, routes 100/0), then iteration 1
  CHECK(w.has_event("A/B testing is not supported when using the kubernetes provider"));
  CHECK(w.has_event("Progressive traffic is not supported when using the kubernetes provider"));
  CHECK(w.has_event("Setting canaryAnalysis.iterations: 10"));
  CHECK(w.cd.status.iterations == 1);
  CHECK(w.has_event("Advance podinfo.default canary iteration 1/10"));
  CHECK(w.route_writes.empty());  // no traffic shifting with the kubernetes provider
  for (int i = 2; i <= 10; ++i) w.step();
  CHECK(w.cd.status.iterations == 10);
  CHECK(w.cd.status.phase == canary_phase::progressing);
  w.step();  // iterations == N: one more (no "route all traffic" with kubernetes)
  CHECK(w.cd.status.iterations == 11);
  CHECK_FALSE(w.has_event("Routing all traffic to canary"));
  w.step();
  CHECK(w.cd.status.phase == canary_phase::promoting);
  w.step();
  CHECK(w.cd.status.phase == canary_phase::finalising);  // no traffic shift to wait for
  w.step();
  CHECK(w.cd.status.phase == canary_phase::succeeded);
  CHECK(w.primary_template == w.pod_template());
  CHECK(w.target_replicas == 0);
}

TEST_CASE("metric verdicts use Flagger's thresholds and event texts") {
  canary c = must_decode(fixture_canary_json(
      R"("threshold": 2, "stepWeight": 10,)", "", "Deployment"));
  auto metric = [](std::string name, std::string interval, double threshold, std::optional<threshold_range> range,
                   std::string query, std::optional<cross_namespace_reference> tmpl) {
    canary_metric m;
    m.name = std::move(name);
    m.interval = std::move(interval);
    m.threshold = threshold;
    m.range = range;
    m.query = std::move(query);
    m.template_ref = std::move(tmpl);
    return m;
  };
  c.spec.analysis->metrics = {
      metric("request-success-rate", "", 0, threshold_range{99, std::nullopt}, "", std::nullopt),
      metric("request-duration", "30s", 0, threshold_range{std::nullopt, 500}, "", std::nullopt),
      metric("error-rate", "", 0, threshold_range{std::nullopt, 1}, "", cross_namespace_reference{"errors", ""}),
      metric("inline", "", 5, std::nullopt, "sum(x)", std::nullopt),
  };
  const auto queries = metric_queries(*c.spec.analysis);
  REQUIRE(queries.size() == 4);
  CHECK(queries[0] == metric_query{0, metric_query_kind::request_success_rate, "1m"});
  CHECK(queries[1] == metric_query{1, metric_query_kind::request_duration, "30s"});
  CHECK(queries[2] == metric_query{3, metric_query_kind::inline_query, "1m"});
  CHECK(queries[3] == metric_query{2, metric_query_kind::template_query, "1m"});  // templates come last

  using o = metric_observation::outcome;
  auto verdict = [&](std::vector<metric_observation> obs) {
    auto e = judge_metrics(c, "istio", queries, obs);
    return e ? e->message : std::string("pass");
  };
  const metric_observation ok_rate{o::value, 99.5, ""}, ok_ms{o::value, 120, ""}, ok_inline{o::value, 2, ""}, ok_tpl{o::value, 0.5, ""};
  CHECK(verdict({ok_rate, ok_ms, ok_inline, ok_tpl}) == "pass");
  CHECK(verdict({{o::value, 97.256, ""}, ok_ms, ok_inline, ok_tpl}) == "Halt podinfo.default advancement success rate 97.26% < 99%");
  CHECK(verdict({ok_rate, {o::value, 1500, ""}, ok_inline, ok_tpl}) == "Halt podinfo.default advancement request duration 1.5s > 500ms");
  CHECK(verdict({ok_rate, ok_ms, {o::value, 7.5, ""}, ok_tpl}) == "Halt podinfo.default advancement inline 7.50 > 5");
  CHECK(verdict({ok_rate, ok_ms, ok_inline, {o::value, 2.25, ""}}) == "Halt podinfo.default advancement error-rate 2.25 > 1");
  CHECK(verdict({{o::no_values, 0, "no values found"}, ok_ms, ok_inline, ok_tpl}) ==
        "Halt advancement no values found for istio metric request-success-rate probably podinfo.default is not receiving "
        "traffic: no values found");
  CHECK(verdict({ok_rate, {o::no_values, 0, ""}, ok_inline, ok_tpl}) ==
        "Halt advancement no values found for istio metric request-duration probably podinfo.default is not receiving traffic");
  CHECK(verdict({{o::query_failed, 0, "connection refused"}, ok_ms, ok_inline, ok_tpl}) == "Prometheus query failed: connection refused");
  CHECK(verdict({ok_rate, ok_ms, {o::no_values, 0, ""}, ok_tpl}) == "Halt advancement no values found for metric: inline");
  CHECK(verdict({ok_rate, ok_ms, {o::query_failed, 0, "bad"}, ok_tpl}) == "Prometheus query failed for inline: bad");
  CHECK(verdict({ok_rate, ok_ms, ok_inline, {o::no_values, 0, "empty"}}) == "Halt advancement no values found for custom metric: error-rate: empty");
  CHECK(verdict({ok_rate, ok_ms, ok_inline, {o::query_failed, 0, "timeout"}}) == "Metric query failed for error-rate: timeout");
  CHECK(verdict({ok_rate, ok_ms, ok_inline, {o::setup_failed, 0, "Metric template errors.default error: not found"}}) ==
        "Metric template errors.default error: not found");
  CHECK(verdict({ok_rate}) == "Prometheus query failed: no result");  // a missing answer is a failure
  // The first failure wins, in Flagger's order.
  CHECK(verdict({{o::value, 50, ""}, {o::value, 9000, ""}, ok_inline, ok_tpl}) ==
        "Halt podinfo.default advancement success rate 50.00% < 99%");
  // Deprecated thresholds: a minimum for the success rate, a maximum (ms) for the duration.
  c.spec.analysis->metrics[0].range.reset();
  c.spec.analysis->metrics[0].threshold = 99;
  c.spec.analysis->metrics[1].range.reset();
  c.spec.analysis->metrics[1].threshold = 500;
  CHECK(verdict({{o::value, 98, ""}, ok_ms, ok_inline, ok_tpl}) == "Halt podinfo.default advancement success rate 98.00% < 99%");
  CHECK(verdict({ok_rate, {o::value, 500.5, ""}, ok_inline, ok_tpl}) ==
        "Halt podinfo.default advancement request duration 500.5ms > 500ms");
}

TEST_CASE("built-in metric queries are written for the right observer") {
  canary c = must_decode(fixture_canary_json());
  CHECK(builtin_metrics_provider(c, "istio") == "istio");
  CHECK(builtin_metrics_provider(c, "crossover:smi") == "crossover");
  c.spec.provider = "kubernetes";
  CHECK(builtin_metrics_provider(c, "istio") == "kubernetes");
  CHECK(builtin_metrics_provider(c, "linkerd") == "linkerd");
  c.spec.target_ref.kind = "Service";
  CHECK(builtin_metrics_provider(c, "istio") == "kubernetes:service");
}

TEST_CASE("a failing metric halts the step, records Flagger's event and counts a failed check") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.step();  // pre-rollout path: no metrics yet
  REQUIRE(w.current_routes().canary == 10);
  w.metric = [](const metric_query& q) {
    return metric_observation{metric_observation::outcome::value, q.kind == metric_query_kind::request_success_rate ? 90.0 : 100.0, ""};
  };
  w.step();
  CHECK(w.current_routes().canary == 10);
  CHECK(w.cd.status.failed_checks == 1);
  CHECK(w.has_event("Halt podinfo.default advancement success rate 90.00% < 99%"));
  CHECK(w.events.back().severity == event_severity::warning);
}

// ---- pacing, restarts, reactions ------------------------------------------------------------

TEST_CASE("analysis steps are paced by the interval but a new revision starts at once") {
  world w(must_decode(fixture_canary_json()));
  initialize(w);
  w.image = "v2";
  w.now += 2s;  // a watch event two seconds after initialization
  auto d = w.tick();
  CHECK(w.cd.status.phase == canary_phase::progressing);  // not one interval later
  CHECK(d.step_taken);
  CHECK(d.wake_at == w.now + 1min);
  w.make_canary_ready();
  // Wakes from watch events (our own status write, the target's pods) before the interval.
  const wall_time t0 = *w.last_step;
  for (auto dt : {1s, 10s, 59s}) {
    w.now = t0 + dt;
    d = w.tick();
    CHECK_FALSE(d.step_taken);
    CHECK(w.current_routes().canary == 0);
    CHECK(d.wake_at == t0 + 1min);
  }
  w.now = *w.last_step + 1min;
  d = w.tick();
  CHECK(d.step_taken);
  CHECK(w.current_routes().canary == 10);
}

TEST_CASE("a restarted daemon waits only what is left of the interval and repeats no step") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.step();
  w.step();
  REQUIRE(w.current_routes().canary == 20);
  const wall_time stepped_at = w.now;
  // The daemon dies 20 s later and comes back: no memory of its last step.
  w.last_step.reset();
  w.now = stepped_at + 20s;
  auto d = w.tick();
  CHECK_FALSE(d.step_taken);
  CHECK(w.current_routes().canary == 20);
  CHECK(d.wake_at == stepped_at + 1min);  // status.lastTransitionTime + interval
  w.now = stepped_at + 1min;
  w.tick();
  CHECK(w.current_routes().canary == 30);
  // And the run goes on to the end without skipping a step.
  w.step();
  CHECK(w.current_routes().canary == 40);
  w.step();
  CHECK(w.current_routes().canary == 50);
  w.step();
  CHECK(w.cd.status.phase == canary_phase::promoting);
}

TEST_CASE("an idle canary asks to be woken only by changes") {
  world w(must_decode(fixture_canary_json()));
  initialize(w);
  for (int i = 0; i < 3; ++i) {
    auto d = w.step();
    CHECK_FALSE(d.wake_at);
    CHECK_FALSE(d.needs_input());
    for (const auto& s : d.steps) {
      // Only level-based reconciles, which cost nothing when the caches already match.
      CHECK((std::holds_alternative<workload_action>(s) || std::holds_alternative<reconcile_primary_scaler>(s)));
    }
  }
  CHECK(w.cd.status.phase == canary_phase::initialized);
}

TEST_CASE("a suspended canary does nothing but say so once per interval") {
  world w(must_decode(fixture_canary_json("", R"("suspend": true,)")));
  auto d = w.tick();
  CHECK(w.has_event("skipping canary run as object is suspended"));
  CHECK_FALSE(w.primary_exists);
  CHECK(w.cd.status.phase == canary_phase::initializing);  // the syncHandler's write still happens
  w.now += 5s;
  w.tick();
  CHECK(count_event(w, "skipping canary run as object is suspended") == 1);
  w.now = d.wake_at.value();
  w.tick();
  CHECK(count_event(w, "skipping canary run as object is suspended") == 2);
}

TEST_CASE("a missing target is reported and nothing is created") {
  world w(must_decode(fixture_canary_json()));
  w.target_error = "deployment podinfo.default get query error: deployments.apps \"podinfo\" not found";
  w.tick();
  CHECK(w.has_event("deployment podinfo.default get query error: deployments.apps \"podinfo\" not found"));
  CHECK(w.actions.empty());
  w.target_error.clear();
  w.step();
  CHECK(w.primary_exists);
}

// ---- invalid specs ---------------------------------------------------------------------------

TEST_CASE("an invalid canary gets Promoted=False naming the field, one Warning event and nothing else") {
  auto d = decode_canary(fixture_canary_json(R"("threshold": 2, "stepWeight": 10, "maxWeight": 150,)"));
  REQUIRE_FALSE(d.ok());
  world w(d.value);
  w.errors = d.errors;
  auto dec = w.tick();
  const auto* cond = w.cd.status.condition("Promoted");
  REQUIRE(cond);
  CHECK(cond->status == "False");
  CHECK(cond->reason == "InvalidSpec");
  CHECK(cond->message == "spec.analysis.maxWeight: must be at most 100, got 150");
  CHECK(w.has_event("spec.analysis.maxWeight: must be at most 100, got 150"));
  CHECK(w.events.back().severity == event_severity::warning);
  CHECK(w.actions.empty());
  CHECK_FALSE(w.primary_exists);
  CHECK_FALSE(dec.wake_at);
  const int writes = w.status_writes;
  w.step();
  w.step();
  CHECK(w.status_writes == writes);
  CHECK(w.events.size() == 1);
  // Fixed: the canary initializes and the condition follows its phase again.
  w.cd.spec.analysis->max_weight = 50;
  w.errors.clear();
  w.step();
  CHECK(w.cd.status.phase == canary_phase::initializing);
  CHECK(w.cd.status.condition("Promoted")->reason == "Initializing");
}

// ---- ownership refusals and run-time holds (issue 11) ----------------------------------------

TEST_CASE("a refused canary gets Promoted=False (Refused) with the owner named, one Warning event and touches nothing") {
  world w(must_decode(fixture_canary_json()));
  w.refusal = "refused: target Deployment podinfo.default is controlled by Canary other";
  auto dec = w.tick();
  const auto* cond = w.cd.status.condition("Promoted");
  REQUIRE(cond);
  CHECK(cond->status == "False");
  CHECK(cond->reason == "Refused");
  CHECK(cond->message == w.refusal);
  CHECK(w.has_event(w.refusal));
  CHECK(w.events.back().severity == event_severity::warning);
  CHECK(w.actions.empty());
  CHECK(w.route_writes.empty());
  CHECK_FALSE(w.primary_exists);
  CHECK_FALSE(dec.wake_at);
  const int writes = w.status_writes;
  w.step();
  w.step();
  CHECK(w.status_writes == writes);
  CHECK(w.events.size() == 1);  // not repeated every tick
  // The other owner is gone: the canary initializes and its condition follows its phase.
  w.refusal.clear();
  w.step();
  CHECK(w.cd.status.phase == canary_phase::initializing);
  CHECK(w.cd.status.condition("Promoted")->reason == "Initializing");
  CHECK(w.did(workload_action::initialize_primary));
}

TEST_CASE("deleting a refused canary reverts nothing: only its finalizer goes") {
  world w(must_decode(fixture_canary_json({}, R"("revertOnDeletion": true,)")));
  w.refusal = "refused: Service podinfo.default is already the apex Service of Canary other";
  w.tick();
  w.cd.metadata.finalizers = {"finalizer.flagger.app"};
  w.cd.metadata.deletion_timestamp = w.now;
  w.actions.clear();
  w.step();
  CHECK(w.actions == std::vector<workload_action>{workload_action::remove_finalizer});
  CHECK(w.route_writes.empty());
}

TEST_CASE("a canary that cannot go on says why in its Promoted condition, and the message returns once it goes on") {
  world w(must_decode(fixture_canary_json()));
  // A missing target: not "New Deployment detected, starting initialization."
  w.target_error = "deployment podinfo.default get query error: deployments.apps \"podinfo\" not found";
  w.tick();
  const auto* cond = w.cd.status.condition("Promoted");
  REQUIRE(cond);
  CHECK(cond->status == "Unknown");
  CHECK(cond->reason == "Initializing");
  CHECK(cond->message == w.target_error);
  CHECK(w.has_event(w.target_error));
  const int writes = w.status_writes;
  w.step();
  CHECK(w.status_writes == writes);  // the same reason is written once
  // The target appears; the primary is not ready yet: the condition says so.
  w.target_error.clear();
  w.step();
  CHECK(w.cd.status.condition("Promoted")->message.starts_with("podinfo-primary.default not ready"));
  w.make_primary_ready();
  w.step();
  CHECK(w.cd.status.phase == canary_phase::initialized);
  CHECK(w.cd.status.condition("Promoted")->message == "Deployment initialization completed.");
}

TEST_CASE("a failing rollout webhook and a failing metric hold the canary with the failure in the condition") {
  world w(must_decode(with_hooks(R"({"name": "smoke", "type": "rollout", "url": "http://smoke/"})")));
  start_run(w);
  w.step();  // the first step runs pre-rollout hooks only
  REQUIRE(w.current_routes().canary == 10);
  w.hook_answers["smoke"] = false;
  w.step();
  CHECK(w.cd.status.condition("Promoted")->message == "Halt podinfo.default advancement external check smoke failed 403 Forbidden");
  CHECK(w.cd.status.failed_checks == 1);
  // It goes on: the phase's message comes back.
  w.hook_answers["smoke"] = true;
  w.step();
  CHECK(w.current_routes().canary == 20);
  CHECK(w.cd.status.condition("Promoted")->message == "New revision detected, progressing canary analysis.");
}

TEST_CASE("a gate that does not answer says so instead of only waiting for approval") {
  world w(must_decode(with_hooks(R"({"name": "gate", "type": "confirm-rollout", "url": "http://gate/"})")));
  initialize(w);
  w.image = "v2";
  observed_state obs = w.observe();
  decision d = decide(w.cd, {}, obs, w.options, {w.now + 1min, w.last_step});
  REQUIRE(d.need_webhooks);
  obs.webhook_results[webhook_type::confirm_rollout] = {
      {"gate", false, "Post \"http://gate/\": context deadline exceeded", false}};
  d = decide(w.cd, {}, obs, w.options, {w.now + 1min, w.last_step});
  CHECK(d.phase == canary_phase::waiting);
  const std::string want = "Halt podinfo.default advancement waiting for approval gate: no answer: Post \"http://gate/\": "
                           "context deadline exceeded";
  bool event = false, status = false;
  for (const auto& s : d.steps) {
    if (auto* e = std::get_if<record_event>(&s); e && e->event.message == want) event = true;
    if (auto* ws = std::get_if<write_status>(&s); ws && ws->status.condition("Promoted")->message == want) status = true;
  }
  CHECK(event);
  CHECK(status);
}

TEST_CASE("condition and event messages are capped at 1 KiB on one line") {
  world w(must_decode(fixture_canary_json()));
  w.target_error = "line one\nline two " + std::string(5000, 'x');
  w.tick();
  const auto& message = w.cd.status.condition("Promoted")->message;
  CHECK(message.size() == max_message_bytes);
  CHECK(message.starts_with("line one line two xxx"));
  std::vector<field_error> many(3000, field_error{"spec.analysis.stepWeights[0]", "must be an integer, got 0.5"});
  world v(must_decode(fixture_canary_json()));
  v.errors = many;
  v.tick();
  CHECK(v.cd.status.condition("Promoted")->message.size() <= max_message_bytes);
  CHECK(v.events.back().message.size() <= max_message_bytes);
}

TEST_CASE("a running canary edited into an invalid one is frozen where it is") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.step();
  REQUIRE(w.current_routes().canary == 10);
  w.errors = {{"spec.analysis.interval", "invalid duration \"fast\""}};
  w.step();
  w.step();
  CHECK(w.current_routes().canary == 10);
  CHECK(w.cd.status.phase == canary_phase::progressing);
  CHECK(w.cd.status.condition("Promoted")->reason == "InvalidSpec");
  w.errors.clear();
  w.step();
  CHECK(w.cd.status.condition("Promoted")->reason == "Progressing");
  CHECK(w.current_routes().canary == 20);
}

// ---- deletion --------------------------------------------------------------------------------

TEST_CASE("revertOnDeletion adds the finalizer and deletion restores the target before removing it") {
  world w(must_decode(fixture_canary_json("", R"("revertOnDeletion": true,)")));
  initialize(w);
  CHECK(w.cd.has_finalizer());
  REQUIRE(w.target_replicas == 0);
  w.cd.metadata.deletion_timestamp = w.now;
  w.target_ready = false;
  // finalize_target gives the target its replicas; the decision waits until it is ready.
  w.tick();
  CHECK(w.cd.status.phase == canary_phase::terminating);
  CHECK(w.has_event("Terminating canary podinfo.default"));
  CHECK(w.did(workload_action::finalize_target));
  CHECK(w.did(workload_action::resume_target_scaler));
  CHECK(w.cd.has_finalizer());
  CHECK_FALSE(w.did(workload_action::finalize_routers));
  w.now += 1s;
  w.tick();
  CHECK(w.cd.has_finalizer());
  CHECK(count_event(w, "Terminating canary podinfo.default") == 1);
  w.make_canary_ready();
  w.now += 1s;
  auto d = w.tick();
  CHECK(w.did(workload_action::finalize_routers));
  CHECK(w.cd.status.phase == canary_phase::terminated);  // [quirk] fixed: Flagger never writes it
  CHECK(w.has_event("Terminated canary podinfo.default"));
  CHECK_FALSE(w.cd.has_finalizer());
  CHECK_FALSE(d.wake_at);
}

TEST_CASE("a canary deleted without revertOnDeletion is left to the garbage collector") {
  world w(must_decode(fixture_canary_json()));
  initialize(w);
  w.cd.metadata.deletion_timestamp = w.now;
  w.actions.clear();
  auto d = w.step();
  CHECK(d.steps.empty());
  CHECK_FALSE(d.wake_at);
}

TEST_CASE("turning revertOnDeletion off removes the finalizer") {
  world w(must_decode(fixture_canary_json("", R"("revertOnDeletion": true,)")));
  initialize(w);
  REQUIRE(w.cd.has_finalizer());
  w.cd.spec.revert_on_deletion = false;
  w.step();
  CHECK_FALSE(w.cd.has_finalizer());
}

// ---- revisions: adoption, manual rollback, Failed ----------------------------------------------

TEST_CASE("a canary Flagger promoted is adopted without a run when the primary runs the target") {
  world w(must_decode(fixture_canary_json()));
  w.primary_exists = true;
  w.primary_ready = true;
  w.primary_template = w.pod_template();
  w.target_replicas = 0;
  w.cd.status.phase = canary_phase::succeeded;
  w.cd.status.last_applied_spec = "5f7b8c9d4d";  // Flagger's hash
  w.cd.status.last_promoted_spec = "5f7b8c9d4d";
  w.cd.status.tracked_configs = std::map<std::string, std::string>{};
  w.cd.status.last_transition_time = w.now - 1h;
  w.tick();
  CHECK(w.cd.status.phase == canary_phase::succeeded);
  CHECK(w.cd.status.last_applied_spec == w.revision());
  CHECK(w.cd.status.last_promoted_spec == w.revision());
  CHECK(w.target_replicas == 0);
  CHECK_FALSE(w.did(workload_action::scale_from_zero));
  // A later change is a normal new revision.
  w.image = "v2";
  w.step();
  CHECK(w.cd.status.phase == canary_phase::progressing);
}

TEST_CASE("a canary Flagger left with a different primary runs the target as a new revision") {
  world w(must_decode(fixture_canary_json()));
  w.primary_exists = true;
  w.primary_ready = true;
  w.primary_template = "{\"old\":true}";
  w.cd.status.phase = canary_phase::succeeded;
  w.cd.status.last_applied_spec = "5f7b8c9d4d";
  w.cd.status.last_promoted_spec = "5f7b8c9d4d";
  w.tick();
  CHECK(w.cd.status.phase == canary_phase::progressing);
  CHECK(w.cd.status.last_applied_spec == w.revision());
}

TEST_CASE("reverting a failed release to the promoted revision starts no run, re-applying it does") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  const std::string v1 = w.cd.status.last_promoted_spec;
  w.target_deadline_exceeded = true;
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::failed);
  w.target_deadline_exceeded = false;
  const int writes = w.status_writes;
  w.step();
  w.step();
  CHECK(w.status_writes == writes);  // [quirk] fixed: no status write every tick while Failed
  // kubectl rollout undo: back to the promoted template.
  w.image = "quay.io/stefanprodan/podinfo:1.2.0";
  REQUIRE(w.revision() == v1);
  w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.cd.status.last_applied_spec == v1);
  CHECK(w.status_writes == writes + 1);
  CHECK_FALSE(w.did(workload_action::promote));
  // Retrying the failed release is a new run.
  w.image = "quay.io/stefanprodan/podinfo:1.2.1";
  w.step();
  CHECK(w.cd.status.phase == canary_phase::progressing);
}

TEST_CASE("the same failed revision is not retried until it changes") {
  world w(must_decode(fixture_canary_json()));
  start_run(w);
  w.target_deadline_exceeded = true;
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::failed);
  w.target_deadline_exceeded = false;
  for (int i = 0; i < 3; ++i) w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  w.image = "quay.io/stefanprodan/podinfo:1.2.2";
  w.step();
  CHECK(w.cd.status.phase == canary_phase::progressing);
}

TEST_CASE("a Promoting canary without canary weight finalises instead of waiting forever") {
  world w(must_decode(fixture_canary_json(R"("threshold": 2, "stepWeight": 50, "stepWeightPromotion": 20,)")));
  start_run(w);
  w.cd.status.phase = canary_phase::promoting;
  w.routes = {100, 0, false};
  w.step();
  CHECK(w.cd.status.phase == canary_phase::finalising);  // [quirk] fixed
}

// ---- status details --------------------------------------------------------------------------

TEST_CASE("conditions keep their transition time while their status does not change") {
  world w(must_decode(fixture_canary_json(R"("threshold": 2, "stepWeight": 50, "maxWeight": 50,)")));
  start_run(w);
  const auto progressing = *w.cd.status.condition("Promoted");
  CHECK(progressing.reason == "Progressing");
  CHECK(progressing.status == "Unknown");
  w.step();  // 0 -> 50
  w.step();  // promote
  const auto promoting = *w.cd.status.condition("Promoted");
  CHECK(promoting.reason == "Promoting");
  CHECK(promoting.message == "Canary analysis completed, starting primary rolling update.");
  CHECK(promoting.last_transition_time == progressing.last_transition_time);  // Unknown -> Unknown
  CHECK(promoting.last_update_time == w.now);
  w.step();
  w.step();
  const auto succeeded = *w.cd.status.condition("Promoted");
  CHECK(succeeded.status == "True");
  CHECK(succeeded.last_transition_time == w.now);
  CHECK(w.cd.status.last_transition_time == w.now);
}

TEST_CASE("alert fields describe the canary as Flagger's alerts do") {
  canary c = must_decode(fixture_canary_json(R"("threshold": 5, "stepWeights": [5, 10, 20],)"));
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"Target", "Deployment/podinfo.default"},
      {"Failed checks threshold", "5"},
      {"Progress deadline", "600s"},
      {"Traffic routing", "Weight steps: 5,10,20 max: 20"},
  };
  CHECK(alert_fields(c) == expected);
  canary bg = must_decode(fixture_canary_json(R"("iterations": 3,)"));
  CHECK(alert_fields(bg).back().second == "Blue/Green");
  canary ab = must_decode(fixture_canary_json(R"("iterations": 3, "match": [{"headers": {"x": {"exact": "1"}}}],)"));
  CHECK(alert_fields(ab).back().second == "A/B Testing");
  canary weights = must_decode(fixture_canary_json(R"("stepWeight": 5, "maxWeight": 30,)"));
  CHECK(alert_fields(weights).back().second == "Weight step: 5 max: 30");
}

TEST_CASE("config tracking off leaves trackedConfigs unset and ignores config changes") {
  world w(must_decode(fixture_canary_json()));
  w.options.config_tracking = false;
  w.configs = {{"configmap/a", "1111111111111111"}};
  initialize(w);
  CHECK_FALSE(w.cd.status.tracked_configs);
  w.configs["configmap/a"] = "2222222222222222";
  w.step();
  CHECK(w.cd.status.phase == canary_phase::initialized);
}
