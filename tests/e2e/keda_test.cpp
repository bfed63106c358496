// KEDA ScaledObject autoscalers, end to end: the real canaryd against kubesim (its KEDA evaluating
// Prometheus triggers against a real Prometheus) with kubectl and KEDA's published CRD. Modelled on
// Flagger's test/keda/test-scaledobject.sh: the primary ScaledObject reconciled, the target's
// paused (paused-replicas) after initialization, unpaused and the canary scaled up on a new
// revision, the promotion, paused again after finalization; a failing release rolled back with the
// target paused at 0 and the primary and its ScaledObject untouched.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <csignal>
#include <thread>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// podinfo's ScaledObject: a Prometheus trigger whose query names the target (so that the
// primary's rewritten query names podinfo-primary) and evaluates to `value` whatever the traffic:
// absent() of a series that never exists is 1. With threshold 5, KEDA wants ceil(value / 5).
std::string scaled_object(const std::string& prometheus, int value, int max_replicas) {
  return "apiVersion: keda.sh/v1alpha1\n"
         "kind: ScaledObject\n"
         "metadata:\n"
         "  name: podinfo-so\n"
         "  namespace: demo\n"
         "spec:\n"
         "  scaleTargetRef:\n"
         "    name: podinfo\n"
         "  pollingInterval: 1\n"
         "  cooldownPeriod: 1\n"
         "  minReplicaCount: 1\n"
         "  maxReplicaCount: " + std::to_string(max_replicas) + "\n"
         "  advanced:\n"
         "    horizontalPodAutoscalerConfig:\n"
         "      name: podinfo-hpa\n"
         "  triggers:\n"
         "  - type: prometheus\n"
         "    name: requests\n"
         "    metadata:\n"
         "      serverAddress: " + prometheus + "\n"
         "      query: absent(kubesim_no_such_series{app=\"podinfo\"}) * " + std::to_string(value) + "\n"
         "      threshold: \"5\"\n";
}

const std::string autoscaler_ref =
    "  autoscalerRef:\n"
    "    apiVersion: keda.sh/v1alpha1\n"
    "    kind: ScaledObject\n"
    "    name: podinfo-so\n";

std::int64_t int_at(const json::value& v, const std::string& pointer) {
  boost::system::error_code ec;
  auto* p = v.find_pointer(pointer, ec);
  return p && p->is_number() ? p->to_number<std::int64_t>() : -1;
}

std::string text_at(const json::value& v, const std::string& pointer) {
  boost::system::error_code ec;
  auto* p = v.find_pointer(pointer, ec);
  return p && p->is_string() ? std::string(p->as_string()) : std::string();
}

bool has_annotation(const json::value& v, const std::string& key) {
  boost::system::error_code ec;
  auto* a = v.find_pointer("/metadata/annotations", ec);
  return a && a->is_object() && a->as_object().contains(key);
}

std::string condition(const json::value& v, const std::string& type) {
  boost::system::error_code ec;
  auto* conds = v.find_pointer("/status/conditions", ec);
  if (!conds || !conds->is_array()) return {};
  for (const auto& c : conds->as_array()) {
    if (c.is_object() && text_at(c, "/type") == type) return text_at(c, "/status");
  }
  return {};
}

bool exists(const kubesim_instance& sim, const std::vector<std::string>& what) { return !get_json(sim, what).is_null(); }

}  // namespace

TEST_CASE("a KEDA ScaledObject: primary copy with rewritten queries, target paused and resumed around a promotion") {
  kubesim_options ko;
  ko.prometheus = true;
  kubesim_instance sim(ko);
  REQUIRE(!sim.prometheus_url().empty());
  setup_cluster(sim);
  if (!install_published_crds(sim, "keda")) return;
  auto d = start_canaryd(sim);

  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, podinfo_yaml());
  sim.kubectl_ok({"apply", "-f", "-"}, scaled_object(sim.prometheus_url(), 12, 4));
  // kubesim's KEDA: its HPA, and the target at ceil(12 / 5) = 3 replicas.
  CHECK(eventually([&] { return exists(sim, {"hpa", "podinfo-hpa"}); }, 10s));
  CHECK(text_at(get_json(sim, {"hpa", "podinfo-hpa"}), "/metadata/ownerReferences/0/kind") == "ScaledObject");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 3; }, 15s));
  CHECK(eventually([&] { return condition(get_json(sim, {"scaledobject", "podinfo-so"}), "Active") == "True"; }, 10s));

  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("podinfo", "podinfo", {}, autoscaler_ref));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo") << "; events:\n" << dump(canary_events(sim, "podinfo")));

  // The primary ScaledObject: owned by the Canary, scaling podinfo-primary, the query rewritten,
  // the HPA name suffixed.
  auto primary_so = get_json(sim, {"scaledobject", "podinfo-so-primary"});
  REQUIRE(!primary_so.is_null());
  CHECK(text_at(primary_so, "/metadata/ownerReferences/0/kind") == "Canary");
  CHECK(text_at(primary_so, "/spec/scaleTargetRef/name") == "podinfo-primary");
  CHECK(text_at(primary_so, "/spec/triggers/0/metadata/query") == "absent(kubesim_no_such_series{app=\"podinfo-primary\"}) * 12");
  CHECK(text_at(primary_so, "/spec/triggers/0/metadata/serverAddress") == sim.prometheus_url());
  CHECK(text_at(primary_so, "/spec/advanced/horizontalPodAutoscalerConfig/name") == "podinfo-hpa-primary");
  CHECK(int_at(primary_so, "/spec/maxReplicaCount") == 4);
  CHECK(!has_annotation(primary_so, "autoscaling.keda.sh/paused-replicas"));
  // The target's is paused at 0: its HPA gone, the target at 0, the primary scaled by its own.
  CHECK(text_at(get_json(sim, {"scaledobject", "podinfo-so"}), "/metadata/annotations/autoscaling.keda.sh~1paused-replicas") == "0");
  CHECK(eventually([&] { return condition(get_json(sim, {"scaledobject", "podinfo-so"}), "Paused") == "True"; }, 10s));
  CHECK(eventually([&] { return !exists(sim, {"hpa", "podinfo-hpa"}); }, 10s));
  CHECK(eventually([&] { return exists(sim, {"hpa", "podinfo-hpa-primary"}); }, 10s));
  CHECK(text_at(get_json(sim, {"hpa", "podinfo-hpa-primary"}), "/spec/scaleTargetRef/name") == "podinfo-primary");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  CHECK(eventually([&] { return replicas_of(sim, "podinfo-primary") == 3; }, 15s));

  // A change to the target's ScaledObject reaches the primary at the next promotion only
  // (Flagger reconciles it with init=false in Promoting): ceil(22 / 5) = 5 replicas then.
  sim.kubectl_ok({"apply", "-f", "-"}, scaled_object(sim.prometheus_url(), 22, 6));
  std::this_thread::sleep_for(2s);
  CHECK(int_at(get_json(sim, {"scaledobject", "podinfo-so-primary"}), "/spec/maxReplicaCount") == 4);
  CHECK(replicas_of(sim, "podinfo") == 0);  // still paused

  // A new revision: resumed, the canary scaled up (by canaryd, then by KEDA to ceil(22 / 5) = 5),
  // analysed, promoted, and the target's ScaledObject paused again.
  release(sim, "6.0.1");
  bool saw_resumed = false;
  std::int64_t most_target_replicas = 0;
  std::vector<std::string> phases;
  const auto deadline = std::chrono::steady_clock::now() + 45s;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string phase = phase_of(sim, "podinfo");
    if (phases.empty() || phases.back() != phase) phases.push_back(phase);
    if (phase == "Succeeded" || phase == "Failed") break;
    if (!has_annotation(get_json(sim, {"scaledobject", "podinfo-so"}), "autoscaling.keda.sh/paused-replicas")) saw_resumed = true;
    most_target_replicas = std::max(most_target_replicas, replicas_of(sim, "podinfo"));
    std::this_thread::sleep_for(100ms);
  }
  std::string seen;
  for (const auto& p : phases) seen += p + " ";
  REQUIRE_MESSAGE(phase_of(sim, "podinfo") == "Succeeded", "phases " << seen << "; events:\n" << dump(canary_events(sim, "podinfo")));
  CHECK(saw_resumed);
  CHECK(most_target_replicas == 5);
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");

  // Promotion carried the target's ScaledObject to the primary; replicas follow its trigger.
  primary_so = get_json(sim, {"scaledobject", "podinfo-so-primary"});
  CHECK(int_at(primary_so, "/spec/maxReplicaCount") == 6);
  CHECK(text_at(primary_so, "/spec/triggers/0/metadata/query") == "absent(kubesim_no_such_series{app=\"podinfo-primary\"}) * 22");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo-primary") == 5; }, 15s));
  // Finalization paused the target's ScaledObject again and scaled the target to zero.
  CHECK(text_at(get_json(sim, {"scaledobject", "podinfo-so"}), "/metadata/annotations/autoscaling.keda.sh~1paused-replicas") == "0");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  CHECK(eventually([&] { return !exists(sim, {"hpa", "podinfo-hpa"}); }, 10s));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Promotion completed!"), dump(evs));

  // SIGTERM drains: the ScaledObject cache stops with everything else, no drain deadline.
  d.proc->signal(SIGTERM);
  CHECK(d.proc->wait(10s) == std::optional<int>(0));
  bool deadline_passed = false;
  for (const auto& line : d.proc->lines()) deadline_passed = deadline_passed || line.find("drain deadline passed") != std::string::npos;
  while (auto line = d.proc->read_line(1s)) deadline_passed = deadline_passed || line->find("drain deadline passed") != std::string::npos;
  CHECK(!deadline_passed);
}

TEST_CASE("primaryScalerQueries gives the primary its own trigger query") {
  kubesim_options ko;
  ko.prometheus = true;
  kubesim_instance sim(ko);
  REQUIRE(!sim.prometheus_url().empty());
  setup_cluster(sim);
  if (!install_published_crds(sim, "keda")) return;
  auto d = start_canaryd(sim);

  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, podinfo_yaml());
  sim.kubectl_ok({"apply", "-f", "-"}, scaled_object(sim.prometheus_url(), 12, 4));
  sim.kubectl_ok({"apply", "-f", "-"},
                 canary_yaml("podinfo", "podinfo", {},
                             autoscaler_ref + "    primaryScalerQueries:\n      requests: vector(7)\n"));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo") << "; events:\n" << dump(canary_events(sim, "podinfo")));
  auto primary_so = get_json(sim, {"scaledobject", "podinfo-so-primary"});
  CHECK(text_at(primary_so, "/spec/triggers/0/metadata/query") == "vector(7)");
  // ceil(7 / 5) = 2 for the primary.
  CHECK(eventually([&] { return replicas_of(sim, "podinfo-primary") == 2; }, 15s));
}

TEST_CASE("a KEDA ScaledObject canary whose release fails is rolled back: the target paused at 0, the primary and its ScaledObject untouched") {
  kubesim_options ko;
  ko.prometheus = true;
  kubesim_instance sim(ko);
  REQUIRE(!sim.prometheus_url().empty());
  setup_cluster(sim);
  if (!install_published_crds(sim, "keda")) return;
  auto d = start_canaryd(sim);

  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, podinfo_yaml());
  sim.kubectl_ok({"apply", "-f", "-"}, scaled_object(sim.prometheus_url(), 12, 4));
  // The release fails on a rollout gate nothing listens on: every analysis check fails
  // (connection refused), so threshold 2 rolls it back after two intervals.
  const std::string gate = "    webhooks:\n"
                           "    - name: gate\n"
                           "      type: rollout\n"
                           "      url: http://127.0.0.1:" + std::to_string(free_port()) + "/gate\n"
                           "      timeout: 1s\n";
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("podinfo", "podinfo", gate, autoscaler_ref));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo") << "; events:\n" << dump(canary_events(sim, "podinfo")));
  // Settled: the primary scaled by its ScaledObject to ceil(12 / 5) = 3, the target paused at 0.
  REQUIRE(eventually([&] { return replicas_of(sim, "podinfo-primary") == 3; }, 15s));
  REQUIRE(eventually([&] { return exists(sim, {"hpa", "podinfo-hpa-primary"}); }, 10s));
  REQUIRE(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  const auto primary_before = get_json(sim, {"deployment", "podinfo-primary"});
  const auto primary_so_before = get_json(sim, {"scaledobject", "podinfo-so-primary"});
  const auto target_so_before = get_json(sim, {"scaledobject", "podinfo-so"});
  REQUIRE(!primary_so_before.is_null());

  // A new revision: the target's ScaledObject resumed and the canary scaled up, then every check
  // fails and the release is rolled back.
  release(sim, "6.0.1");
  bool saw_resumed = false;
  std::int64_t most_target_replicas = 0;
  std::vector<std::string> phases;
  const auto deadline = std::chrono::steady_clock::now() + 40s;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string phase = phase_of(sim, "podinfo");
    if (phases.empty() || phases.back() != phase) phases.push_back(phase);
    if (phase == "Succeeded" || phase == "Failed") break;
    if (!has_annotation(get_json(sim, {"scaledobject", "podinfo-so"}), "autoscaling.keda.sh/paused-replicas")) saw_resumed = true;
    most_target_replicas = std::max(most_target_replicas, replicas_of(sim, "podinfo"));
    std::this_thread::sleep_for(100ms);
  }
  std::string seen;
  for (const auto& p : phases) seen += p + " ";
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(phase_of(sim, "podinfo") == "Failed", "phases " << seen << "; events:\n" << dump(evs));
  CHECK_MESSAGE(std::find(phases.begin(), phases.end(), "Progressing") != phases.end(), "phases " << seen);
  CHECK(saw_resumed);
  CHECK(most_target_replicas >= 1);
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement external check gate failed"), dump(evs));
  // canaryd reports a step's Events once its status write landed, so they may trail the phase.
  CHECK_MESSAGE(eventually(
                    [&] {
                      evs = canary_events(sim, "podinfo");
                      return has_event(evs, "Warning", "Canary failed! Scaling down podinfo.demo");
                    },
                    5s),
                dump(evs));
  CHECK(lacks_event(evs, "Normal", "Promotion completed!"));

  // The rollback paused the target's ScaledObject again (only the annotation changed: its spec is
  // the user's) and scaled the target to zero; KEDA removed its HPA.
  auto target_so = get_json(sim, {"scaledobject", "podinfo-so"});
  CHECK(text_at(target_so, "/metadata/annotations/autoscaling.keda.sh~1paused-replicas") == "0");
  CHECK(json::serialize(target_so.at("spec")) == json::serialize(target_so_before.at("spec")));
  CHECK(eventually([&] { return condition(get_json(sim, {"scaledobject", "podinfo-so"}), "Paused") == "True"; }, 10s));
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  CHECK(eventually([&] { return !exists(sim, {"hpa", "podinfo-hpa"}); }, 10s));

  // The primary was never touched: same spec and generation, still the old image at 3 replicas,
  // all served; its ScaledObject the same object (spec, generation, metadata) scaling it.
  auto primary = get_json(sim, {"deployment", "podinfo-primary"});
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  CHECK(json::serialize(primary.at("spec")) == json::serialize(primary_before.at("spec")));
  CHECK(int_at(primary, "/metadata/generation") == int_at(primary_before, "/metadata/generation"));
  CHECK(int_at(primary, "/spec/replicas") == 3);
  CHECK(int_at(primary, "/status/readyReplicas") == 3);
  CHECK(int_at(primary, "/status/availableReplicas") == 3);
  auto primary_so = get_json(sim, {"scaledobject", "podinfo-so-primary"});
  CHECK(json::serialize(primary_so.at("spec")) == json::serialize(primary_so_before.at("spec")));
  CHECK(int_at(primary_so, "/metadata/generation") == int_at(primary_so_before, "/metadata/generation"));
  CHECK(text_at(primary_so, "/metadata/uid") == text_at(primary_so_before, "/metadata/uid"));
  CHECK(!has_annotation(primary_so, "autoscaling.keda.sh/paused-replicas"));
  CHECK(text_at(get_json(sim, {"hpa", "podinfo-hpa-primary"}), "/spec/scaleTargetRef/name") == "podinfo-primary");
}
