// Decisions cut short (issue 11): a SIGKILL, or a status write that fails, after the cluster
// actions of a step and before the status write that records it. The next decision reads the
// status of the step before and the cluster as the cut step left it, and must not take that
// mixture for something else. Found by tests/e2e/reliability_test.cpp under ASan: a rollback cut
// after it scaled the target to zero left a Progressing status over a target running no pods,
// which Flagger's readiness calls ready (0 of 0 available), and the restarted daemon promoted
// the never-ready release.
#include <doctest/doctest.h>

#include <algorithm>
#include <variant>

#include "tests/core/rollout_world.hpp"

using namespace canaryd::core;
using canaryd::test::fixture_canary_json;
using canaryd::test::must_decode;
using canaryd::test::world;
using namespace std::chrono_literals;

namespace {

// As tests/e2e/reliability_test.cpp's canaries: the kubernetes provider, Blue/Green over three
// iterations.
std::string blue_green_json() {
  return fixture_canary_json(R"("threshold": 2, "iterations": 3,)", R"("provider": "kubernetes",)");
}

int count_events(const world& w, const std::string& message) {
  return static_cast<int>(std::count_if(w.events.begin(), w.events.end(), [&](const auto& e) { return e.message == message; }));
}

int count_events_starting(const world& w, const std::string& prefix) {
  return static_cast<int>(
      std::count_if(w.events.begin(), w.events.end(), [&](const auto& e) { return e.message.starts_with(prefix); }));
}

bool has_action(const decision& d, workload_action a) {
  return std::any_of(d.steps.begin(), d.steps.end(), [&](const rollout_step& s) {
    const auto* x = std::get_if<workload_action>(&s);
    return x && *x == a;
  });
}

const write_status* first_write(const decision& d) {
  for (const auto& s : d.steps) {
    if (const auto* w = std::get_if<write_status>(&s)) return w;
  }
  return nullptr;
}

// Initialized, then a release whose pods never become ready, past its progress deadline: the
// next step is the rollback.
void never_ready_release(world& w) {
  w.tick();
  w.make_primary_ready();
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::initialized);
  w.image = "quay.io/stefanprodan/podinfo:1.2.1";
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  REQUIRE(w.target_replicas == 1);
  w.step();  // not ready yet: the step waits
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  REQUIRE(w.cd.status.iterations == 0);
  w.target_deadline_exceeded = true;
}

// The rollback step, cut after its cluster actions: the target is at zero replicas, the status
// still Progressing, no "Canary failed!" Event.
void cut_rollback(world& w) {
  w.now += w.cd.analysis_interval();
  const decision cut = w.tick_cut_before_write();
  REQUIRE(has_action(cut, workload_action::scale_to_zero));
  const auto* write = first_write(cut);
  REQUIRE(write != nullptr);
  REQUIRE(write->status.phase == canary_phase::failed);
  REQUIRE(w.target_replicas == 0);
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  REQUIRE(count_events(w, "Canary failed! Scaling down podinfo.default") == 0);
  // A Deployment at zero replicas has no rollout to exceed a deadline: it reads ready.
  w.target_deadline_exceeded = false;
}

}  // namespace

TEST_CASE("a rollback cut between scaling the target to zero and writing Failed never promotes the release after a restart") {
  world w(must_decode(blue_green_json()));
  never_ready_release(w);
  const std::string primary_before = w.primary_template;
  cut_rollback(w);

  w.restart(blue_green_json());
  // The restart's step finds a Progressing run over a target running no pods: no analysis on
  // it; the target is scaled up again and the step waits for it.
  auto d = w.step();
  CHECK(d.step_taken);
  CHECK(has_action(d, workload_action::scale_from_zero));
  CHECK(w.target_replicas == 1);
  CHECK(w.cd.status.phase == canary_phase::progressing);
  CHECK(w.cd.status.iterations == 0);
  CHECK(w.has_event("podinfo.default not ready: scaled to zero during the analysis, scaling it up again"));
  // Its pods do not become ready; the deadline passes again and the rollback completes.
  w.step();
  CHECK(w.cd.status.phase == canary_phase::progressing);
  w.target_deadline_exceeded = true;
  w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  for (int i = 0; i < 5; ++i) w.step();

  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.target_replicas == 0);
  CHECK_FALSE(w.did(workload_action::promote));
  CHECK(w.primary_template == primary_before);
  CHECK(count_events_starting(w, "Advance podinfo.default canary iteration") == 0);
  CHECK(count_events(w, "Canary failed! Scaling down podinfo.default") == 1);
}

TEST_CASE("a rollback whose Failed write gets a 5xx is retried from the API server's Progressing status without promoting") {
  // The daemon's retry after a failed write: the same process (last_step kept), the Canary
  // re-read from the API server (the status before the cut step), 100 ms later.
  world w(must_decode(fixture_canary_json()));
  never_ready_release(w);
  const std::string primary_before = w.primary_template;
  cut_rollback(w);
  w.routes = {100, 0, false};

  w.now += 100ms;
  auto d = w.tick();
  CHECK(d.step_taken);
  CHECK(has_action(d, workload_action::resume_target_scaler));  // the HPA (autoscalerRef) first, as a new revision does
  CHECK(has_action(d, workload_action::scale_from_zero));
  CHECK(w.target_replicas == 1);
  CHECK(w.current_routes().canary == 0);
  CHECK(w.cd.status.canary_weight == 0);

  w.target_deadline_exceeded = true;
  for (int i = 0; i < 4; ++i) w.step();
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK_FALSE(w.did(workload_action::promote));
  CHECK(w.primary_template == primary_before);
  CHECK(count_events_starting(w, "Advance podinfo.default canary weight") == 0);
  CHECK(count_events(w, "Canary failed! Scaling down podinfo.default") == 1);
}

TEST_CASE("a release made after a cut rollback is analysed on running pods before it is promoted") {
  world w(must_decode(blue_green_json()));
  never_ready_release(w);
  cut_rollback(w);
  w.restart(blue_green_json());

  // A fixed release arrives while canaryd is down: the restart starts the analysis over ...
  w.image = "quay.io/stefanprodan/podinfo:1.2.2";
  w.step();
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  REQUIRE(w.cd.status.last_applied_spec == w.revision());
  CHECK(w.has_event("New revision detected! Restarting analysis for podinfo.default"));
  // ... on a target still at zero replicas, which is scaled up before any iteration.
  CHECK(w.target_replicas == 0);
  w.step();
  CHECK(w.target_replicas == 1);
  CHECK(w.cd.status.iterations == 0);
  w.step();  // its pods are still starting
  CHECK(w.cd.status.iterations == 0);
  w.make_canary_ready();
  for (int i = 0; i < 8 && w.cd.status.phase != canary_phase::succeeded; ++i) w.step();
  CHECK(w.cd.status.phase == canary_phase::succeeded);
  CHECK(w.primary_template == w.pod_template());
  CHECK(count_events(w, "Advance podinfo.default canary iteration 1/3") == 1);
  CHECK(count_events(w, "Advance podinfo.default canary iteration 3/3") == 1);
}

TEST_CASE("a Finalising step cut after scaling the target to zero completes the promotion after a restart") {
  // Finalising scales the target to zero before it writes Succeeded: zero replicas there are the
  // step half done, not a target to scale up again.
  world w(must_decode(blue_green_json()));
  w.tick();
  w.make_primary_ready();
  w.step();
  w.image = "quay.io/stefanprodan/podinfo:1.2.1";
  w.step();
  w.make_canary_ready();
  for (int i = 0; i < 10 && w.cd.status.phase != canary_phase::finalising; ++i) w.step();
  REQUIRE(w.cd.status.phase == canary_phase::finalising);
  w.now += w.cd.analysis_interval();
  w.tick_cut_before_write();
  REQUIRE(w.target_replicas == 0);
  REQUIRE(w.cd.status.phase == canary_phase::finalising);

  w.restart(blue_green_json());
  auto d = w.step();
  CHECK_FALSE(has_action(d, workload_action::scale_from_zero));
  CHECK(w.cd.status.phase == canary_phase::succeeded);
  CHECK(w.target_replicas == 0);
  CHECK(count_events(w, "Promotion completed! Scaling down podinfo.default") == 1);
}

TEST_CASE("a rollback at the failed-checks threshold cut after scaling the target to zero is completed without scaling it up") {
  world w(must_decode(blue_green_json()));
  w.tick();
  w.make_primary_ready();
  w.step();
  w.image = "quay.io/stefanprodan/podinfo:1.2.1";
  w.step();
  w.make_canary_ready();
  // The custom metric fails every step: two failed checks reach the threshold (2).
  w.metric = [](const metric_query& q) {
    return metric_observation{metric_observation::outcome::value, q.kind == metric_query_kind::template_query ? 500.0 : 100.0, ""};
  };
  for (int i = 0; i < 6 && w.cd.status.failed_checks < 2; ++i) w.step();
  REQUIRE(w.cd.status.failed_checks == 2);
  REQUIRE(w.cd.status.phase == canary_phase::progressing);
  const std::string primary_before = w.primary_template;
  cut_rollback(w);

  w.restart(blue_green_json());
  auto d = w.step();
  CHECK_FALSE(has_action(d, workload_action::scale_from_zero));
  CHECK(w.cd.status.phase == canary_phase::failed);
  CHECK(w.target_replicas == 0);
  CHECK_FALSE(w.did(workload_action::promote));
  CHECK(w.primary_template == primary_before);
  CHECK(count_events(w, "Canary failed! Scaling down podinfo.default") == 1);
}
