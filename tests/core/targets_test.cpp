// The pure half of the DaemonSet, StatefulSet and Service target controllers (core/primary.hpp):
// the primaries and copies built from the target's JSON, readiness with Flagger's and
// Kubernetes' messages, and what is refused.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/primary.hpp"
#include "core/revision.hpp"
#include "core/wall_time.hpp"

using namespace canaryd::core;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

canary make_canary(const std::string& kind, const std::string& name, const std::string& last_transition = "") {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":")" + name + R"(","namespace":"demo","uid":"u-1"},
    "spec":{"progressDeadlineSeconds":60,"targetRef":{"apiVersion":"apps/v1","kind":")" + kind + R"(","name":")" + name +
                     R"("},"service":{"port":9898},"analysis":{"interval":"1s","threshold":2,"iterations":3}})";
  if (!last_transition.empty()) text += R"(,"status":{"phase":"Progressing","lastTransitionTime":")" + last_transition + R"("})";
  text += "}";
  auto d = decode_canary(text);
  REQUIRE(d.ok());
  return d.value;
}

const char* const daemonset = R"({"apiVersion":"apps/v1","kind":"DaemonSet",
  "metadata":{"name":"podinfo-ds","namespace":"demo","labels":{"app.kubernetes.io/name":"podinfo-ds"},
              "annotations":{"kustomize.toolkit.fluxcd.io/x":"y","a":"b"}},
  "spec":{"minReadySeconds":5,"revisionHistoryLimit":5,"updateStrategy":{"type":"RollingUpdate"},
          "selector":{"matchLabels":{"app.kubernetes.io/name":"podinfo-ds"}},
          "template":{"metadata":{"labels":{"app.kubernetes.io/name":"podinfo-ds"}},
                      "spec":{"nodeSelector":{"flagger.app/scale-to-zero":"true","disk":"ssd"},
                              "containers":[{"name":"c","image":"podinfo:1","envFrom":[{"configMapRef":{"name":"cfg"}}]}]}}}})";

const char* const statefulset = R"({"apiVersion":"apps/v1","kind":"StatefulSet",
  "metadata":{"name":"db","namespace":"demo","labels":{"app":"db"}},
  "spec":{"replicas":0,"serviceName":"db-headless","podManagementPolicy":"Parallel","minReadySeconds":2,
          "updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":0}},
          "persistentVolumeClaimRetentionPolicy":{"whenScaled":"Retain","whenDeleted":"Delete"},
          "selector":{"matchLabels":{"app":"db"}},
          "template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"c","image":"db:1"}]}},
          "volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"]}}]}})";

json::value parse(const std::string& s) { return json::parse(s); }

std::string ds_status(int generation, int observed, int desired, int updated, int available) {
  return R"({"metadata":{"name":"podinfo-ds","generation":)" + std::to_string(generation) +
         R"(},"status":{"observedGeneration":)" + std::to_string(observed) + R"(,"desiredNumberScheduled":)" +
         std::to_string(desired) + R"(,"updatedNumberScheduled":)" + std::to_string(updated) + R"(,"numberAvailable":)" +
         std::to_string(available) + "}}";
}

std::string sts_status(int replicas, int ready, int updated, const std::string& current, const std::string& update) {
  return R"({"metadata":{"name":"db","generation":2},"spec":{"replicas":)" + std::to_string(replicas) +
         R"(},"status":{"observedGeneration":2,"readyReplicas":)" + std::to_string(ready) + R"(,"updatedReplicas":)" +
         std::to_string(updated) + R"(,"currentRevision":")" + current + R"(","updateRevision":")" + update + R"("}})";
}

}  // namespace

TEST_CASE("the primary DaemonSet: selector rewritten, no scale-to-zero key, Flagger's fields, configs renamed") {
  auto c = make_canary("DaemonSet", "podinfo-ds");
  primary_options o;
  o.selector_labels = {"app.kubernetes.io/name"};
  o.tracked_configs = {"configmap/cfg"};
  auto body = make_primary_daemonset(c, daemonset, o, "id-1");
  REQUIRE(body);
  auto p = parse(*body);
  CHECK(p.at_pointer("/kind") == "DaemonSet");
  CHECK(p.at_pointer("/metadata/name") == "podinfo-ds-primary");
  CHECK(p.at_pointer("/metadata/labels/app.kubernetes.io~1name") == "podinfo-ds-primary");
  CHECK(!p.at_pointer("/metadata/annotations").as_object().contains("kustomize.toolkit.fluxcd.io/x"));
  CHECK(p.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");
  CHECK(p.at_pointer("/spec/selector/matchLabels/app.kubernetes.io~1name") == "podinfo-ds-primary");
  CHECK(p.at_pointer("/spec/minReadySeconds") == 5);
  CHECK(p.at_pointer("/spec/updateStrategy/type") == "RollingUpdate");
  CHECK(!p.at_pointer("/spec").as_object().contains("replicas"));
  CHECK(p.at_pointer("/spec/template/metadata/annotations/flagger-id") == "id-1");
  CHECK(p.at_pointer("/spec/template/spec/nodeSelector") == json::object{{"disk", "ssd"}});
  CHECK(p.at_pointer("/spec/template/spec/containers/0/envFrom/0/configMapRef/name") == "cfg-primary");

  // Promotion: the template and Flagger's fields; metadata kept.
  std::string target2 = daemonset;
  target2.replace(target2.find("podinfo:1"), 9, "podinfo:2");
  auto promoted = promote_primary_daemonset(c, target2, *body, o, "id-2");
  REQUIRE(promoted);
  auto q = parse(*promoted);
  CHECK(q.at_pointer("/spec/template/spec/containers/0/image") == "podinfo:2");
  CHECK(q.at_pointer("/spec/template/metadata/annotations/flagger-id") == "id-2");
  CHECK(q.at_pointer("/spec/template/spec/nodeSelector") == json::object{{"disk", "ssd"}});
  CHECK(q.at_pointer("/metadata") == p.at_pointer("/metadata"));
  CHECK(primary_matches_target(workload_kind::daemonset, target2, *promoted, o));
  CHECK(!primary_matches_target(workload_kind::daemonset, daemonset, *promoted, o));

  // The hash ignores the scale-to-zero key; an empty nodeSelector is an absent one.
  revision_options ro;
  ro.daemonset = true;
  auto rev = [&](const std::string& node_selector) {
    return pod_template_revision(R"({"metadata":{"labels":{"a":"b"}},"spec":{)" + node_selector + R"("containers":[]}})", ro).value;
  };
  CHECK(rev(R"("nodeSelector":{"flagger.app/scale-to-zero":"true"},)") == rev(""));
  CHECK(rev(R"("nodeSelector":{},)") == rev(""));
  CHECK(rev(R"("nodeSelector":{"disk":"ssd"},)") != rev(""));
  CHECK(daemonset_scaled_to_zero(daemonset));
  CHECK(!daemonset_scaled_to_zero(*body));

  // The strategy check.
  CHECK(!daemonset_refusal(daemonset));
  std::string on_delete = daemonset;
  on_delete.replace(on_delete.find(R"("type":"RollingUpdate")"), 22, R"("type":"OnDelete")");
  CHECK(daemonset_refusal(on_delete) == std::optional<std::string>(
                                           "daemonset podinfo-ds.demo must have RollingUpdate strategy but have OnDelete"));
  CHECK(make_primary_daemonset(c, on_delete, o, "x").has_error());
  // The selector label error names the kind.
  primary_options none;
  none.selector_labels = {"app"};
  auto bad = make_primary_daemonset(c, daemonset, none, "x");
  REQUIRE(bad.has_error());
  CHECK(bad.error() == "daemonset podinfo-ds.demo spec.selector.matchLabels must contain one of [app]");
}

TEST_CASE("DaemonSet readiness: generation, updated and available pods, the Canary's deadline") {
  const wall_time now = *parse_rfc3339("2026-01-01T00:10:00Z");
  auto fresh = make_canary("DaemonSet", "podinfo-ds", "2026-01-01T00:09:30Z");
  auto stale = make_canary("DaemonSet", "podinfo-ds", "2026-01-01T00:08:00Z");
  auto r = [&](const canary& c, const std::string& s) {
    auto st = read_daemonset_status(s);
    return daemonset_canary_readiness(c, &st, now);
  };
  CHECK(r(fresh, ds_status(2, 1, 3, 3, 3)).message ==
        "podinfo-ds.demo not ready: waiting for rollout to finish: observed daemonset generation less than desired generation");
  CHECK(r(fresh, ds_status(1, 1, 3, 1, 1)).message ==
        "podinfo-ds.demo not ready: waiting for rollout to finish: 1 out of 3 new pods have been updated");
  CHECK(r(fresh, ds_status(1, 1, 3, 3, 2)).message ==
        "podinfo-ds.demo not ready: waiting for rollout to finish: 2 of 3 (readyThreshold 100%) updated pods are available");
  CHECK(r(fresh, ds_status(1, 1, 3, 3, 2)).value == readiness::state::waiting);
  CHECK(r(stale, ds_status(1, 1, 3, 3, 2)).value == readiness::state::failed);
  CHECK(r(stale, ds_status(1, 1, 3, 3, 2)).message == "podinfo-ds.demo not ready: exceeded its progressDeadlineSeconds: 60");
  CHECK(r(stale, ds_status(1, 1, 3, 3, 3)).is_ready());
  CHECK(r(fresh, ds_status(1, 1, 0, 0, 0)).is_ready());  // scaled to zero: nothing to wait for
  auto missing = daemonset_primary_readiness(fresh, nullptr, now);
  CHECK(missing.message ==
        "daemonset podinfo-ds-primary.demo get query error: daemonsets.apps \"podinfo-ds-primary\" not found");
}

TEST_CASE("the primary StatefulSet: its own serviceName and claims, immutable fields kept on promotion") {
  auto c = make_canary("StatefulSet", "db");
  primary_options o;
  auto body = make_primary_statefulset(c, statefulset, o, "id-1");
  REQUIRE(body);
  auto p = parse(*body);
  CHECK(p.at_pointer("/metadata/name") == "db-primary");
  CHECK(p.at_pointer("/spec/replicas") == 1);  // the target is at 0
  CHECK(p.at_pointer("/spec/serviceName") == "db-headless-primary");
  CHECK(p.at_pointer("/spec/selector/matchLabels/app") == "db-primary");
  CHECK(p.at_pointer("/spec/template/metadata/labels/app") == "db-primary");
  CHECK(p.at_pointer("/spec/podManagementPolicy") == "Parallel");
  CHECK(p.at_pointer("/spec/volumeClaimTemplates/0/metadata/name") == "data");
  CHECK(p.at_pointer("/spec/persistentVolumeClaimRetentionPolicy/whenDeleted") == "Delete");
  CHECK(p.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");

  std::string target2 = statefulset;
  target2.replace(target2.find("db:1"), 4, "db:2");
  target2.replace(target2.find(R"("replicas":0)"), 12, R"("replicas":3)");
  target2.replace(target2.find(R"("serviceName":"db-headless")"), 27, R"("serviceName":"other")");
  auto promoted = promote_primary_statefulset(c, target2, *body, o, "id-2");
  REQUIRE(promoted);
  auto q = parse(*promoted);
  CHECK(q.at_pointer("/spec/template/spec/containers/0/image") == "db:2");
  CHECK(q.at_pointer("/spec/replicas") == 3);
  CHECK(q.at_pointer("/spec/serviceName") == "db-headless-primary");
  CHECK(q.at_pointer("/spec/selector") == p.at_pointer("/spec/selector"));

  CHECK(!statefulset_refusal(statefulset));
  std::string partitioned = statefulset;
  partitioned.replace(partitioned.find(R"("partition":0)"), 13, R"("partition":2)");
  CHECK(statefulset_refusal(partitioned) ==
        std::optional<std::string>("statefulset db.demo has updateStrategy.rollingUpdate.partition 2: canaryd promotes "
                                   "whole StatefulSets, partitioned rollouts are not supported"));
  std::string on_delete = statefulset;
  const std::string rolling = R"("type":"RollingUpdate","rollingUpdate":{"partition":0})";
  on_delete.replace(on_delete.find(rolling), rolling.size(), R"("type":"OnDelete")");
  REQUIRE(statefulset_refusal(on_delete));
  CHECK(statefulset_refusal(on_delete)->starts_with("statefulset db.demo must have RollingUpdate strategy but have OnDelete"));
  CHECK(statefulset_service_name(statefulset) == "db-headless");

  // The governing Service copy selects the primary's pods and stays headless.
  const std::string headless = R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"db-headless","namespace":"demo",
      "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},
      "spec":{"clusterIP":"None","selector":{"app":"db"},"ports":[{"port":9898}]}})";
  auto g = make_primary_governing_service(c, headless, statefulset, {"app"}, "");
  REQUIRE(g.has_value());
  REQUIRE(g->has_value());
  auto gv = parse(**g);
  CHECK(gv.at_pointer("/metadata/name") == "db-headless-primary");
  CHECK(gv.at_pointer("/spec/clusterIP") == "None");
  CHECK(gv.at_pointer("/spec/selector/app") == "db-primary");
  CHECK(!gv.at_pointer("/metadata").as_object().contains("annotations"));
  auto again = make_primary_governing_service(c, headless, statefulset, {"app"}, **g);
  REQUIRE(again.has_value());
  CHECK(!again->has_value());
}

TEST_CASE("StatefulSet readiness: updated, ready and revisions as Kubernetes reports them") {
  const wall_time now = *parse_rfc3339("2026-01-01T00:10:00Z");
  auto fresh = make_canary("StatefulSet", "db", "2026-01-01T00:09:30Z");
  auto stale = make_canary("StatefulSet", "db", "2026-01-01T00:08:00Z");
  auto r = [&](const canary& c, const std::string& s) {
    auto st = read_statefulset_status(s);
    return statefulset_canary_readiness(c, &st, now);
  };
  CHECK(r(fresh, sts_status(3, 3, 1, "db-a", "db-b")).message ==
        "db.demo not ready: waiting for rollout to finish: 1 out of 3 new pods have been updated");
  CHECK(r(fresh, sts_status(3, 2, 3, "db-b", "db-b")).message ==
        "db.demo not ready: waiting for rollout to finish: 2 of 3 (readyThreshold 100%) updated pods are ready");
  CHECK(r(fresh, sts_status(3, 3, 3, "db-a", "db-b")).message ==
        "db.demo not ready: waiting for statefulset rolling update to complete: 3 pods at revision db-b");
  CHECK(r(fresh, sts_status(3, 3, 3, "db-b", "db-b")).is_ready());
  CHECK(r(fresh, sts_status(0, 0, 0, "db-b", "db-b")).is_ready());
  CHECK(r(stale, sts_status(3, 2, 3, "db-b", "db-b")).message == "db.demo not ready: exceeded its progressDeadlineSeconds: 60");
}

TEST_CASE("Service copies: no cluster IPs or node ports copied, the copy's own kept, nothing written when up to date") {
  auto c = make_canary("Service", "podinfo");
  primary_options o;
  o.include_label_prefix = {"team"};
  const std::string target = R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"podinfo","namespace":"demo","uid":"t",
      "resourceVersion":"7","labels":{"team":"blue","other":"x"},
      "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","note":"n"}},
      "spec":{"type":"NodePort","clusterIP":"10.0.0.1","clusterIPs":["10.0.0.1"],"selector":{"app":"blue"},
              "ports":[{"port":9898,"protocol":"TCP","nodePort":30001}]}})";
  auto created = make_service_copy(c, target, "podinfo-canary", "", o, false);
  REQUIRE(created.has_value());
  REQUIRE(created->has_value());
  auto v = parse(**created);
  CHECK(v.at_pointer("/metadata/name") == "podinfo-canary");
  CHECK(!v.at_pointer("/metadata").as_object().contains("uid"));
  CHECK(v.at_pointer("/metadata/labels") == json::object{{"team", "blue"}, {"other", "x"}});
  CHECK(v.at_pointer("/metadata/annotations") == json::object{{"note", "n"}});
  CHECK(v.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");
  CHECK(!v.at_pointer("/spec").as_object().contains("clusterIP"));
  CHECK(!v.at_pointer("/spec/ports/0").as_object().contains("nodePort"));
  CHECK(v.at_pointer("/spec/selector/app") == "blue");

  // As stored by the API server: its own IP and node port.
  json::value stored = v;
  stored.as_object()["metadata"].as_object()["resourceVersion"] = "9";
  stored.as_object()["spec"].as_object()["clusterIP"] = "10.0.0.2";
  stored.as_object()["spec"].as_object()["clusterIPs"] = json::array{"10.0.0.2"};
  stored.as_object()["spec"].as_object()["ports"].as_array()[0].as_object()["nodePort"] = 30002;
  auto same = make_service_copy(c, target, "podinfo-canary", json::serialize(stored), o, false);
  REQUIRE(same.has_value());
  CHECK(!same->has_value());

  std::string target2 = target;
  target2.replace(target2.find(R"("app":"blue")"), 12, R"("app":"green")");
  auto updated = make_service_copy(c, target2, "podinfo-canary", json::serialize(stored), o, false);
  REQUIRE(updated.has_value());
  REQUIRE(updated->has_value());
  auto u = parse(**updated);
  CHECK(u.at_pointer("/spec/selector/app") == "green");
  CHECK(u.at_pointer("/spec/clusterIP") == "10.0.0.2");
  CHECK(u.at_pointer("/spec/ports/0/nodePort") == 30002);
  CHECK(u.at_pointer("/metadata/resourceVersion") == "9");

  // Promotion filters labels and annotations by prefix.
  auto promoted = make_service_copy(c, target2, "podinfo-primary", json::serialize(stored), o, true);
  REQUIRE(promoted.has_value());
  REQUIRE(promoted->has_value());
  auto pv = parse(**promoted);
  CHECK(pv.at_pointer("/metadata/labels") == json::object{{"team", "blue"}});
  CHECK(!pv.at_pointer("/metadata").as_object().contains("annotations"));
  CHECK(pv.at_pointer("/spec/selector/app") == "green");
}

TEST_CASE("a Service target with a service.name other than its own is refused for every router but kubernetes") {
  auto c = make_canary("Service", "podinfo");
  CHECK(service_target_name_error(c, "gatewayapi:v1") == "");
  c.spec.service.name = "podinfo";
  CHECK(service_target_name_error(c, "gatewayapi:v1") == "");
  c.spec.service.name = "web";
  CHECK(service_target_name_error(c, "kubernetes") == "");
  CHECK(service_target_name_error(c, "gatewayapi:v1") ==
        "spec.service.name web is not the target Service podinfo: the copies of a Service target are podinfo-primary and "
        "podinfo-canary, while the gatewayapi:v1 router would send traffic to web-primary and web-canary; leave "
        "spec.service.name empty or set it to podinfo");
  CHECK(service_target_name_error(c, "istio").find("the istio router would send traffic to web-primary") != std::string::npos);
}

TEST_CASE("missing targets get Flagger's get-query errors") {
  CHECK(missing_workload_error(workload_kind::daemonset, "ds", "demo") ==
        "daemonset ds.demo get query error: daemonsets.apps \"ds\" not found");
  CHECK(missing_workload_error(workload_kind::statefulset, "db", "demo") ==
        "statefulset db.demo get query error: statefulsets.apps \"db\" not found");
  CHECK(missing_workload_error(workload_kind::deployment, "d", "demo") == missing_deployment_error("d", "demo"));
}
