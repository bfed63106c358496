// The pure half of the Deployment controller: the -primary Deployment, config copies and HPA
// built from the target's JSON, Flagger's readiness messages, ScaleFromZero's replica choice and
// the adoption check.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/primary.hpp"
#include "core/wall_time.hpp"

using namespace canaryd::core;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

canary make_canary(bool hpa = false) {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"demo","uid":"u-123"},
    "spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},)";
  if (hpa) text += R"("autoscalerRef":{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","name":"podinfo"},)";
  text += R"("service":{"port":9898},"analysis":{"interval":"1s","threshold":2,"iterations":3}}})";
  auto d = decode_canary(text);
  REQUIRE(d.ok());
  return d.value;
}

const char* const target = R"({"apiVersion":"apps/v1","kind":"Deployment",
  "metadata":{"name":"podinfo","namespace":"demo","labels":{"app":"podinfo","team.io/owner":"x"},
              "annotations":{"kustomize.toolkit.fluxcd.io/reconcile":"disabled","team.io/note":"n"}},
  "spec":{"replicas":3,"progressDeadlineSeconds":60,"minReadySeconds":5,"revisionHistoryLimit":4,
          "strategy":{"type":"RollingUpdate"},
          "selector":{"matchLabels":{"app":"podinfo"}},
          "template":{"metadata":{"labels":{"app":"podinfo","version":"1"},
                                  "annotations":{"flagger-id":"old","kustomize.toolkit.fluxcd.io/x":"y","a":"b"}},
                      "spec":{"containers":[{"name":"c","image":"podinfo:1",
                                "env":[{"name":"E","valueFrom":{"configMapKeyRef":{"name":"cfg","key":"k"}}},
                                       {"name":"S","valueFrom":{"secretKeyRef":{"name":"untracked","key":"k"}}}],
                                "envFrom":[{"secretRef":{"name":"sec"}}]}],
                              "initContainers":[{"name":"i","image":"busybox","envFrom":[{"configMapRef":{"name":"cfg"}}]}],
                              "volumes":[{"name":"v1","configMap":{"name":"cfg"}},{"name":"v2","secret":{"secretName":"sec"}},
                                         {"name":"v3","projected":{"sources":[{"configMap":{"name":"cfg"}},{"secret":{"name":"sec"}}]}}],
                              "topologySpreadConstraints":[{"maxSkew":1,"labelSelector":{"matchLabels":{"app":"podinfo","other":"podinfo"}}}],
                              "affinity":{"podAntiAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,
                                 "podAffinityTerm":{"labelSelector":{"matchExpressions":[{"key":"app","operator":"In","values":["podinfo","x"]}]}}}]}}}}},
  "status":{"replicas":3}})";

primary_options tracked() {
  primary_options o;
  o.tracked_configs = {"configmap/cfg", "secret/sec"};
  return o;
}

json::value parse(const std::string& s) { return json::parse(s); }
json::value at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto p : path) {
    if (cur->is_array()) {
      cur = &cur->as_array().at(std::stoul(std::string(p)));
    } else {
      auto* f = cur->as_object().if_contains(p);
      if (f == nullptr) return nullptr;
      cur = f;
    }
  }
  return *cur;
}

std::string deployment_json_with(int spec_replicas, int generation, int observed, int replicas, int updated, int available,
                              const std::string& conditions = "[]") {
  return R"({"metadata":{"name":"podinfo","generation":)" + std::to_string(generation) + R"(},"spec":{"replicas":)" +
         std::to_string(spec_replicas) + R"(},"status":{"observedGeneration":)" + std::to_string(observed) +
         R"(,"replicas":)" + std::to_string(replicas) + R"(,"updatedReplicas":)" + std::to_string(updated) +
         R"(,"availableReplicas":)" + std::to_string(available) + R"(,"conditions":)" + conditions + "}}";
}

}  // namespace

TEST_CASE("the selector label is the first -selector-labels key in matchLabels, else Flagger's error") {
  auto l = selector_label(target, {"name", "app"});
  REQUIRE(l.has_value());
  CHECK(l->first == "app");
  CHECK(l->second == "podinfo");
  auto none = selector_label(target, {"name", "app.kubernetes.io/name"});
  REQUIRE(none.has_error());
  CHECK(none.error() == "deployment podinfo.demo spec.selector.matchLabels must contain one of [name app.kubernetes.io/name]");
  CHECK(selector_label("{not json", {"app"}).has_error());
}

TEST_CASE("include-label-prefix: empty copies nothing, * copies all, prefixes match starts") {
  CHECK_FALSE(include_by_prefix("app", {}));
  CHECK(include_by_prefix("app", {"*"}));
  CHECK(include_by_prefix("team.io/owner", {"x", "team.io"}));
  CHECK_FALSE(include_by_prefix("app", {"team.io"}));
}

TEST_CASE("the primary Deployment: template copied, selector and labels rewritten, configs renamed, owner set") {
  auto c = make_canary();
  auto r = make_primary_deployment(c, target, tracked(), "id-1");
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error()));
  auto d = parse(*r);
  CHECK(at(d, {"metadata", "name"}) == "podinfo-primary");
  CHECK(at(d, {"metadata", "namespace"}) == "demo");
  // default include prefix: only the selector label on the object
  CHECK(at(d, {"metadata", "labels"}) == json::object{{"app", "podinfo-primary"}});
  // object annotations on create: all but Flux's
  CHECK(at(d, {"metadata", "annotations"}) == json::object{{"team.io/note", "n"}});
  auto owner = at(d, {"metadata", "ownerReferences", "0"});
  CHECK(owner == json::object{{"apiVersion", "flagger.app/v1beta1"}, {"kind", "Canary"}, {"name", "podinfo"},
                              {"uid", "u-123"}, {"controller", true}, {"blockOwnerDeletion", true}});
  CHECK(at(d, {"spec", "replicas"}) == 3);
  CHECK(at(d, {"spec", "progressDeadlineSeconds"}) == 60);
  CHECK(at(d, {"spec", "minReadySeconds"}) == 5);
  CHECK(at(d, {"spec", "revisionHistoryLimit"}) == 4);
  CHECK(at(d, {"spec", "strategy", "type"}) == "RollingUpdate");
  CHECK(at(d, {"spec", "selector"}) == json::object{{"matchLabels", json::object{{"app", "podinfo-primary"}}}});
  CHECK(at(d, {"spec", "template", "metadata", "labels"}) == json::object{{"app", "podinfo-primary"}, {"version", "1"}});
  CHECK(at(d, {"spec", "template", "metadata", "annotations"}) == json::object{{"a", "b"}, {"flagger-id", "id-1"}});
  const auto spec = at(d, {"spec", "template", "spec"});
  CHECK(at(spec, {"containers", "0", "image"}) == "podinfo:1");
  CHECK(at(spec, {"containers", "0", "env", "0", "valueFrom", "configMapKeyRef", "name"}) == "cfg-primary");
  CHECK(at(spec, {"containers", "0", "env", "1", "valueFrom", "secretKeyRef", "name"}) == "untracked");
  CHECK(at(spec, {"containers", "0", "envFrom", "0", "secretRef", "name"}) == "sec-primary");
  CHECK(at(spec, {"initContainers", "0", "envFrom", "0", "configMapRef", "name"}) == "cfg-primary");
  CHECK(at(spec, {"volumes", "0", "configMap", "name"}) == "cfg-primary");
  CHECK(at(spec, {"volumes", "1", "secret", "secretName"}) == "sec-primary");
  CHECK(at(spec, {"volumes", "2", "projected", "sources", "0", "configMap", "name"}) == "cfg-primary");
  CHECK(at(spec, {"volumes", "2", "projected", "sources", "1", "secret", "name"}) == "sec-primary");
  CHECK(at(spec, {"topologySpreadConstraints", "0", "labelSelector", "matchLabels"}) ==
        json::object{{"app", "podinfo-primary"}, {"other", "podinfo"}});
  CHECK(at(spec, {"affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", "0", "podAffinityTerm",
                  "labelSelector", "matchExpressions", "0", "values"}) == json::array{"podinfo-primary", "x"});
  CHECK(at(d, {"status"}).is_null());
}

TEST_CASE("the primary Deployment: include prefixes copy labels; replicas 0 becomes 1; no tracking keeps names") {
  auto c = make_canary();
  primary_options o;
  o.include_label_prefix = {"team.io"};
  std::string zero = target;
  zero.replace(zero.find(R"("replicas":3)"), 12, R"("replicas":0)");
  auto r = make_primary_deployment(c, zero, o, "id");
  REQUIRE(r.has_value());
  auto d = parse(*r);
  CHECK(at(d, {"metadata", "labels"}) == json::object{{"app", "podinfo-primary"}, {"team.io/owner", "x"}});
  CHECK(at(d, {"spec", "replicas"}) == 1);
  CHECK(at(d, {"spec", "template", "spec", "volumes", "0", "configMap", "name"}) == "cfg");
  CHECK(make_primary_deployment(c, R"({"metadata":{"name":"podinfo","namespace":"demo"},"spec":{}})", o, "id").error() ==
        "deployment podinfo.demo spec.selector.matchLabels must contain one of [app name app.kubernetes.io/name]");
  CHECK(make_primary_deployment(c, "[1,2]", o, "id").has_error());
}

TEST_CASE("promotion copies the template into the primary and keeps its selector and metadata") {
  auto c = make_canary();
  const std::string primary = R"({"apiVersion":"apps/v1","kind":"Deployment",
    "metadata":{"name":"podinfo-primary","namespace":"demo","resourceVersion":"42","uid":"p-1",
                "ownerReferences":[{"kind":"Canary","name":"podinfo"}]},
    "spec":{"replicas":2,"selector":{"matchLabels":{"app":"podinfo-primary"}},
            "template":{"metadata":{"labels":{"app":"podinfo-primary"}},"spec":{"containers":[{"name":"c","image":"podinfo:0"}]}}},
    "status":{"replicas":2}})";
  auto r = promote_primary_deployment(c, target, primary, tracked(), "id-2");
  REQUIRE(r.has_value());
  auto d = parse(*r);
  CHECK(at(d, {"metadata", "resourceVersion"}) == "42");
  CHECK(at(d, {"metadata", "uid"}) == "p-1");
  CHECK(at(d, {"metadata", "ownerReferences", "0", "kind"}) == "Canary");
  CHECK(at(d, {"metadata", "annotations"}).is_null());  // promote: include-prefix-filtered (none by default)
  CHECK(at(d, {"spec", "selector", "matchLabels", "app"}) == "podinfo-primary");
  CHECK(at(d, {"spec", "replicas"}) == 3);
  CHECK(at(d, {"spec", "template", "spec", "containers", "0", "image"}) == "podinfo:1");
  CHECK(at(d, {"spec", "template", "metadata", "annotations", "flagger-id"}) == "id-2");
  CHECK(at(d, {"spec", "template", "metadata", "labels", "app"}) == "podinfo-primary");
  CHECK(at(d, {"status"}).is_null());
  // with an autoscaler the primary keeps its replicas
  auto with_hpa = promote_primary_deployment(make_canary(true), target, primary, tracked(), "id-3");
  REQUIRE(with_hpa.has_value());
  CHECK(at(parse(*with_hpa), {"spec", "replicas"}) == 2);
  CHECK(primary_matches_target(target, *r, tracked()));
  CHECK_FALSE(primary_matches_target(target, primary, tracked()));
  CHECK_FALSE(primary_matches_target(target, "garbage", tracked()));
}

TEST_CASE("config copies: -primary name, data kept, prefix-filtered labels, Canary controller plus other owners") {
  auto c = make_canary();
  const std::string cm = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","namespace":"demo",
     "labels":{"app":"podinfo"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","k":"v"},
     "ownerReferences":[{"apiVersion":"v1","kind":"Thing","name":"t","uid":"1","controller":true}],"resourceVersion":"5"},
     "data":{"a":"1"},"binaryData":{"b":"AA=="}})";
  auto r = make_primary_config(c, cm, primary_options{});
  REQUIRE(r.has_value());
  auto d = parse(*r);
  CHECK(at(d, {"kind"}) == "ConfigMap");
  CHECK(at(d, {"metadata", "name"}) == "cfg-primary");
  CHECK(at(d, {"metadata", "labels"}).is_null());
  CHECK(at(d, {"metadata", "annotations"}) == json::object{{"k", "v"}});
  CHECK(at(d, {"metadata", "resourceVersion"}).is_null());
  CHECK(at(d, {"metadata", "ownerReferences", "0", "kind"}) == "Canary");
  CHECK(at(d, {"metadata", "ownerReferences", "1", "kind"}) == "Thing");
  CHECK(at(d, {"metadata", "ownerReferences", "1", "controller"}) == false);
  CHECK(at(d, {"data"}) == json::object{{"a", "1"}});
  CHECK(at(d, {"binaryData"}) == json::object{{"b", "AA=="}});
  auto s = make_primary_config(c, R"({"kind":"Secret","metadata":{"name":"sec"},"type":"Opaque","data":{"x":"eA=="}})", {});
  REQUIRE(s.has_value());
  CHECK(at(parse(*s), {"type"}) == "Opaque");
  CHECK(at(parse(*s), {"metadata", "name"}) == "sec-primary");
}

TEST_CASE("readiness follows Flagger's isDeploymentReady, tick by tick") {
  const wall_time now = *parse_rfc3339("2026-01-01T00:10:00Z");
  struct row {
    std::string deployment;
    int threshold;
    readiness::state want;
    std::string message;
  };
  const std::string stuck = R"([{"type":"Progressing","status":"True","reason":"ReplicaSetUpdated"},
      {"type":"Available","status":"False","reason":"MinimumReplicasUnavailable","lastUpdateTime":"2026-01-01T00:00:00Z"}])";
  const std::string recent = R"([{"type":"Progressing","status":"True","reason":"ReplicaSetUpdated"},
      {"type":"Available","status":"False","reason":"MinimumReplicasUnavailable","lastUpdateTime":"2026-01-01T00:09:30Z"}])";
  const std::vector<row> rows{
      {deployment_json_with(2, 2, 1, 2, 2, 2), 100, readiness::state::waiting,
       "waiting for rollout to finish: observed deployment generation less than desired generation"},
      {deployment_json_with(2, 1, 1, 1, 1, 1), 100, readiness::state::waiting,
       "waiting for rollout to finish: 1 out of 2 new replicas have been updated"},
      {deployment_json_with(2, 1, 1, 3, 2, 2), 100, readiness::state::waiting,
       "waiting for rollout to finish: 1 old replicas are pending termination"},
      {deployment_json_with(2, 1, 1, 2, 2, 1), 100, readiness::state::waiting,
       "waiting for rollout to finish: 1 of 2 (readyThreshold 100%) updated replicas are available"},
      {deployment_json_with(2, 1, 1, 2, 2, 1), 50, readiness::state::ready, ""},
      {deployment_json_with(3, 1, 1, 3, 3, 1), 50, readiness::state::ready, ""},  // floor(3 * 0.5) = 1
      {deployment_json_with(2, 1, 1, 2, 2, 2), 100, readiness::state::ready, ""},
      {deployment_json_with(0, 1, 1, 0, 0, 0), 100, readiness::state::ready, ""},
      {deployment_json_with(2, 1, 1, 2, 2, 0, R"([{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded"}])"), 100,
       readiness::state::failed, "deployment \"podinfo\" exceeded its progress deadline"},
      {deployment_json_with(2, 1, 1, 2, 2, 0, stuck), 100, readiness::state::failed,
       "waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available"},
      {deployment_json_with(2, 1, 1, 2, 2, 0, recent), 100, readiness::state::waiting,
       "waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.deployment);
    auto got = deployment_readiness(r.deployment, 60, r.threshold, now);
    CHECK(got.value == r.want);
    CHECK(got.message == r.message);
  }
  CHECK(deployment_readiness("nope", 60, 100, now).value == readiness::state::waiting);
}

TEST_CASE("canary and primary readiness name the workload; a missing one gives Flagger's get-query error") {
  auto c = make_canary();
  const wall_time now{};
  auto p = primary_readiness(c, "", now);
  CHECK(p.value == readiness::state::waiting);
  CHECK(p.message == "deployment podinfo-primary.demo get query error: deployments.apps \"podinfo-primary\" not found");
  auto t = canary_readiness(c, deployment_json_with(1, 1, 1, 1, 0, 0), now);
  CHECK(t.message == "podinfo.demo not ready: waiting for rollout to finish: 0 out of 1 new replicas have been updated");
  auto pr = primary_readiness(c, deployment_json_with(1, 1, 1, 1, 1, 0), now);
  CHECK(pr.message == "podinfo-primary.demo not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available");
  CHECK(primary_readiness(c, deployment_json_with(1, 1, 1, 1, 1, 1), now).is_ready());
}

TEST_CASE("ScaleFromZero takes the target's replicas, else the primary's, else HPA min > 1, else 1") {
  const std::string t0 = R"({"spec":{"replicas":0}})", t3 = R"({"spec":{"replicas":3}})";
  const std::string p2 = R"({"spec":{"replicas":2}})", hpa4 = R"({"spec":{"minReplicas":4}})",
                    hpa1 = R"({"spec":{"minReplicas":1}})";
  CHECK(scale_from_zero_replicas(t3, p2, false, "") == 3);
  CHECK(scale_from_zero_replicas(t0, p2, false, "") == 2);
  CHECK(scale_from_zero_replicas(t0, p2, true, hpa4) == 4);
  CHECK(scale_from_zero_replicas(t0, p2, true, hpa1) == 1);
  CHECK(scale_from_zero_replicas(t0, "", false, "") == 1);
  CHECK(deployment_replicas(t3) == 3);
  CHECK_FALSE(deployment_replicas("{}").has_value());
}

TEST_CASE("the primary HPA points at the primary Deployment and is updated only on a difference") {
  auto c = make_canary(true);
  const std::string hpa = R"({"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler",
    "metadata":{"name":"podinfo","namespace":"demo","labels":{"a":"b","x.toolkit.fluxcd.io/y":"z"}},
    "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},"minReplicas":2,"maxReplicas":4,
            "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":99}}}]}})";
  auto r = make_primary_hpa(c, hpa, "");
  REQUIRE(r.has_value());
  auto d = parse(*r);
  CHECK(at(d, {"metadata", "name"}) == "podinfo-primary");
  CHECK(at(d, {"metadata", "labels"}) == json::object{{"a", "b"}});
  CHECK(at(d, {"metadata", "ownerReferences", "0", "uid"}) == "u-123");
  CHECK(at(d, {"spec", "scaleTargetRef", "name"}) == "podinfo-primary");
  CHECK(at(d, {"spec", "minReplicas"}) == 2);
  CHECK(at(d, {"spec", "metrics", "0", "resource", "name"}) == "cpu");
  CHECK_FALSE(primary_hpa_differs(*r, *r));
  std::string changed = hpa;
  changed.replace(changed.find("\"maxReplicas\":4"), 15, "\"maxReplicas\":5");
  auto r2 = make_primary_hpa(c, changed, *r);
  REQUIRE(r2.has_value());
  CHECK(primary_hpa_differs(*r2, *r));
  CHECK(at(parse(*r2), {"metadata", "ownerReferences", "0", "uid"}) == "u-123");  // kept from the existing one
  CHECK(make_primary_hpa(make_canary(false), hpa, "").has_error());
}
