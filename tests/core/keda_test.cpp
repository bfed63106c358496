// The pure half of the KEDA ScaledObject reconciler: the -primary ScaledObject built from the
// target's, the rewriting of its trigger queries with and without primaryScalerQueries (Flagger's
// scaled_object_reconciler_test.go cases among them), and the paused-replicas annotation.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/keda.hpp"

using namespace canaryd::core;
namespace json = boost::json;

namespace {

canary make_canary(const std::string& autoscaler_extra = {}) {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"demo","uid":"u-123"},
    "spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
            "autoscalerRef":{"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject","name":"podinfo-so")" +
                     autoscaler_extra + R"(},
            "service":{"port":9898},"analysis":{"interval":"1s","threshold":2,"iterations":3}}})";
  auto d = decode_canary(text);
  REQUIRE(d.ok());
  return d.value;
}

const char* const target_so = R"j({"apiVersion":"keda.sh/v1alpha1","kind":"ScaledObject",
  "metadata":{"name":"podinfo-so","namespace":"demo","labels":{"app":"podinfo"},
              "annotations":{"autoscaling.keda.sh/paused-replicas":"0","team.io/note":"n",
                             "kustomize.toolkit.fluxcd.io/reconcile":"disabled",
                             "kubectl.kubernetes.io/last-applied-configuration":"{}"}},
  "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
          "pollingInterval":1,"cooldownPeriod":5,"minReplicaCount":1,"maxReplicaCount":3,
          "advanced":{"horizontalPodAutoscalerConfig":{"name":"podinfo-hpa","behavior":{"scaleDown":{"stabilizationWindowSeconds":0}}}},
          "fallback":{"failureThreshold":3,"replicas":2},
          "triggers":[
            {"type":"prometheus","name":"requests","metadata":{"serverAddress":"http://prom:9090","threshold":"5",
              "query":"sum(rate(http_requests_total{deployment=\"podinfo\",canary=\"podinfo-canary\"}[1m]))"}},
            {"type":"cpu","metadata":{"value":"50"},"metricType":"Utilization"}]}})j";

json::value at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto p : path) {
    if (cur->is_object()) {
      const auto* n = cur->as_object().if_contains(p);
      if (n == nullptr) return nullptr;
      cur = n;
    } else if (cur->is_array()) {
      const auto i = static_cast<std::size_t>(std::stoul(std::string(p)));
      if (i >= cur->as_array().size()) return nullptr;
      cur = &cur->as_array()[i];
    } else {
      return nullptr;
    }
  }
  return *cur;
}

}  // namespace

TEST_CASE("a trigger query names the primary instead of the target and its canary, as Flagger rewrites it") {
  CHECK(primary_scaler_query(R"(sum(rate(http_requests_total{app="podinfo-canary"}[30s])))", "podinfo") ==
        R"(sum(rate(http_requests_total{app="podinfo-primary"}[30s])))");
  CHECK(primary_scaler_query(R"(sum(rate(http_requests_total{app="podinfo"}[30s])))", "podinfo") ==
        R"(sum(rate(http_requests_total{app="podinfo-primary"}[30s])))");
  // Both at once, and neither "-primary-canary" nor "-primary-primary" from the canary's name.
  CHECK(primary_scaler_query(R"(a{x="podinfo"} + b{y="podinfo-canary"} / c{z=~"podinfo-canary.*"})", "podinfo") ==
        R"(a{x="podinfo-primary"} + b{y="podinfo-primary"} / c{z=~"podinfo-primary.*"})");
  // Flagger's best effort: a name that already ends in -primary is suffixed again.
  CHECK(primary_scaler_query(R"(up{app="podinfo-primary"})", "podinfo") == R"(up{app="podinfo-primary-primary"})");
  // Nothing to rewrite.
  CHECK(primary_scaler_query(R"(vector(1))", "podinfo") == "vector(1)");
  CHECK(primary_scaler_query("", "podinfo") == "");
}

TEST_CASE("primaryScalerQueries replaces the query of each named trigger and leaves the others alone") {
  auto c = make_canary(R"j(,"primaryScalerQueries":{"requests":"sum(rate(http_requests_total{app=\"mine\"}[1m]))"})j");
  auto q = primary_trigger_queries(c, target_so);
  REQUIRE(q.size() == 2);
  CHECK(q[0] == std::optional<std::string>(R"(sum(rate(http_requests_total{app="mine"}[1m])))"));
  CHECK(!q[1]);  // the cpu trigger has no query

  // A name that matches no trigger rewrites nothing: the target's query is kept as it is.
  auto other = make_canary(R"j(,"primaryScalerQueries":{"nosuch":"vector(7)"})j");
  auto kept = primary_trigger_queries(other, target_so);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0] == std::optional<std::string>(R"j(sum(rate(http_requests_total{deployment="podinfo",canary="podinfo-canary"}[1m])))j"));
}

TEST_CASE("the primary ScaledObject scales <target>-primary with the target's settings, rewritten queries and a -primary HPA name") {
  auto c = make_canary(R"(,"primaryScalerReplicas":{"minReplicas":2,"maxReplicas":5})");
  auto body = make_primary_scaled_object(c, target_so, "", {});
  REQUIRE(body.has_value());
  auto v = json::parse(*body);
  CHECK(at(v, {"apiVersion"}) == "keda.sh/v1alpha1");
  CHECK(at(v, {"kind"}) == "ScaledObject");
  CHECK(at(v, {"metadata", "name"}) == "podinfo-so-primary");
  CHECK(at(v, {"metadata", "namespace"}) == "demo");
  CHECK(at(v, {"metadata", "ownerReferences", "0", "kind"}) == "Canary");
  CHECK(at(v, {"metadata", "ownerReferences", "0", "uid"}) == "u-123");
  CHECK(at(v, {"metadata", "labels", "app"}) == "podinfo");
  // Not carried over: Flux's keys, kubectl's last-applied copy and the target's pause.
  CHECK(at(v, {"metadata", "annotations"}) == json::parse(R"({"team.io/note":"n"})"));
  CHECK(at(v, {"spec", "scaleTargetRef"}) == json::parse(R"({"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo-primary"})"));
  CHECK(at(v, {"spec", "pollingInterval"}) == 1);
  CHECK(at(v, {"spec", "cooldownPeriod"}) == 5);
  CHECK(at(v, {"spec", "minReplicaCount"}) == 2);  // primaryScalerReplicas
  CHECK(at(v, {"spec", "maxReplicaCount"}) == 5);
  CHECK(at(v, {"spec", "fallback", "replicas"}) == 2);
  CHECK(at(v, {"spec", "advanced", "horizontalPodAutoscalerConfig", "name"}) == "podinfo-hpa-primary");
  CHECK(at(v, {"spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds"}) == 0);
  CHECK(at(v, {"spec", "triggers", "0", "metadata", "query"}) ==
        R"(sum(rate(http_requests_total{deployment="podinfo-primary",canary="podinfo-primary"}[1m])))");
  CHECK(at(v, {"spec", "triggers", "0", "metadata", "serverAddress"}) == "http://prom:9090");
  CHECK(at(v, {"spec", "triggers", "0", "name"}) == "requests");
  CHECK(at(v, {"spec", "triggers", "1"}) == json::parse(R"({"type":"cpu","metadata":{"value":"50"},"metricType":"Utilization"})"));
  CHECK(!scaled_object_paused_replicas(*body));
}

TEST_CASE("without an HPA name the primary's advanced.horizontalPodAutoscalerConfig is empty and KEDA names the HPA") {
  const char* const plain = R"({"metadata":{"name":"podinfo-so"},
    "spec":{"scaleTargetRef":{"name":"podinfo"},"triggers":[{"type":"prometheus","metadata":{"query":"up{app=\"podinfo\"}"}}]}})";
  auto body = make_primary_scaled_object(make_canary(), plain, "", {});
  REQUIRE(body.has_value());
  auto v = json::parse(*body);
  CHECK(at(v, {"spec", "advanced"}) == json::parse(R"({"horizontalPodAutoscalerConfig":{}})"));
  CHECK(at(v, {"spec", "scaleTargetRef"}) == json::parse(R"({"name":"podinfo-primary"})"));
  CHECK(at(v, {"spec", "minReplicaCount"}).is_null());
  CHECK(at(v, {"spec", "triggers", "0", "metadata", "query"}) == R"(up{app="podinfo-primary"})");
  CHECK(at(v, {"metadata", "labels"}).is_null());
}

TEST_CASE("an update keeps the primary's identity, filters its metadata by prefix and differs on the spec only") {
  auto c = make_canary();
  auto created = make_primary_scaled_object(c, target_so, "", {});
  REQUIRE(created.has_value());
  json::value stored = json::parse(*created);
  stored.as_object()["metadata"].as_object()["resourceVersion"] = "42";
  stored.as_object()["metadata"].as_object()["labels"] = json::object{{"app", "podinfo"}, {"team.io/x", "y"}};
  stored.as_object()["status"] = json::parse(R"({"conditions":[{"type":"Ready","status":"True"}]})");
  const std::string existing = json::serialize(stored);
  CHECK(!primary_scaled_object_differs(*created, existing));

  std::string changed(target_so);
  changed.replace(changed.find(R"("maxReplicaCount":3)"), 19, R"("maxReplicaCount":9)");
  auto update = make_primary_scaled_object(c, changed, existing, {"team.io/"});
  REQUIRE(update.has_value());
  CHECK(primary_scaled_object_differs(*update, existing));
  auto v = json::parse(*update);
  CHECK(at(v, {"metadata", "resourceVersion"}) == "42");
  CHECK(at(v, {"metadata", "name"}) == "podinfo-so-primary");
  CHECK(at(v, {"metadata", "labels"}) == json::parse(R"({"team.io/x":"y"})"));
  CHECK(at(v, {"metadata", "annotations"}) == json::parse(R"({"team.io/note":"n"})"));
  CHECK(at(v, {"spec", "maxReplicaCount"}) == 9);
}

TEST_CASE("the paused-replicas annotation is read as KEDA writes it") {
  CHECK(scaled_object_paused_replicas(target_so) == std::optional<std::string>("0"));
  CHECK(!scaled_object_paused_replicas(R"({"metadata":{"annotations":{"other":"1"}}})"));
  CHECK(!scaled_object_paused_replicas(R"({"metadata":{}})"));
  CHECK(!scaled_object_paused_replicas("not json"));
}
