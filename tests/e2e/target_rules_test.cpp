// The rules every target kind shares, end to end for DaemonSet, StatefulSet and Service targets
// (the Deployment's are in ownership_test.cpp and engine_test.cpp): the real canaryd against
// kubesim with kubectl.
//  - Ownership (docs/ownership.md): a target controlled by another Canary, or whose `-primary`
//    is controlled by something else, is refused and nothing is touched.
//  - An HPA autoscalerRef on a StatefulSet: `<hpa>-primary` scales the `-primary` StatefulSet.
//  - Config tracking on DaemonSets and StatefulSets: a ConfigMap or Secret change starts a run;
//    the `-primary` copies exist, the primary references them, and promotion updates them.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cctype>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// A workload of `kind` (DaemonSet or StatefulSet) named `name` with the label app: <name> (a
// StatefulSet with its headless governing Service); `container_extra` goes under the container
// (and may continue the pod spec), `spec_extra` into the top of its spec, `owner` (a controller
// ownerReference) into its metadata.
std::string workload_yaml(const std::string& kind, const std::string& name, const std::string& container_extra = {},
                          const std::string& spec_extra = {}, const std::string& owner = {}) {
  std::string s = "apiVersion: apps/v1\nkind: " + kind + "\nmetadata:\n  name: " + name + "\n  namespace: demo\n" + owner +
                  "spec:\n";
  if (kind == "StatefulSet") s += "  replicas: 2\n  serviceName: " + name + "-headless\n";
  s += spec_extra +
       "  selector:\n"
       "    matchLabels:\n"
       "      app: " + name + "\n"
       "  template:\n"
       "    metadata:\n"
       "      labels:\n"
       "        app: " + name + "\n"
       "    spec:\n"
       "      containers:\n"
       "      - name: app\n"
       "        image: ghcr.io/stefanprodan/podinfo:6.0.0\n"
       "        ports:\n"
       "        - name: http\n"
       "          containerPort: 9898\n" + container_extra;
  if (kind == "StatefulSet") {
    s += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "-headless\n  namespace: demo\nspec:\n"
         "  clusterIP: None\n  selector:\n    app: " + name + "\n  ports:\n  - name: http\n    port: 9898\n";
  }
  return s;
}

// A Service named `name` selecting app: <app>.
std::string service_yaml(const std::string& name, const std::string& app, const std::string& owner = {}) {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n  namespace: demo\n" + owner +
         "spec:\n  selector:\n    app: " + app + "\n  ports:\n  - name: http\n    port: 9898\n    targetPort: http\n";
}

std::string backend_yaml(const std::string& name) {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name +
         "\n  namespace: demo\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: " + name +
         "\n  template:\n    metadata:\n      labels:\n        app: " + name +
         "\n    spec:\n      containers:\n      - name: app\n        image: ghcr.io/stefanprodan/podinfo:6.0.0\n"
         "        ports:\n        - name: http\n          containerPort: 9898\n";
}

// A kubernetes-provider Canary: interval 1s, threshold 2, iterations 2.
std::string canary_for(const std::string& name, const std::string& kind, const std::string& target,
                       const std::string& spec_extra = {}, const std::string& service_name = {}) {
  const std::string api = kind == "Service" ? "v1" : "apps/v1";
  return "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: " + name +
         "\n  namespace: demo\nspec:\n  provider: kubernetes\n" + spec_extra + "  targetRef:\n    apiVersion: " + api +
         "\n    kind: " + kind + "\n    name: " + target +
         "\n  service:\n" + (service_name.empty() ? "" : "    name: " + service_name + "\n") +
         "    port: 9898\n  analysis:\n    interval: 1s\n    threshold: 2\n    iterations: 2\n";
}

// What of an object an intruder could change: spec, labels, annotations, owners, generation.
std::string fingerprint(const json::value& v) {
  if (v.is_null()) return "<missing>";
  json::object out;
  const auto& o = v.as_object();
  if (const auto* spec = o.if_contains("spec")) out["spec"] = *spec;
  if (const auto* meta = o.if_contains("metadata"); meta && meta->is_object()) {
    for (std::string_view k : {"labels", "annotations", "ownerReferences", "generation", "uid"}) {
      if (const auto* f = meta->as_object().if_contains(k)) out[k] = *f;
    }
  }
  return json::serialize(out);
}

struct condition {
  std::string status, reason, message;
};
condition promoted(const kubesim_instance& sim, const std::string& canary) {
  auto v = get_json(sim, {"canary", canary});
  condition c;
  if (v.is_null()) return c;
  boost::system::error_code ec;
  const auto* conds = v.find_pointer("/status/conditions", ec);
  if (!conds || !conds->is_array()) return c;
  for (const auto& x : conds->as_array()) {
    if (str_at(x, {"type"}) != "Promoted") continue;
    c = {str_at(x, {"status"}), str_at(x, {"reason"}), str_at(x, {"message"})};
  }
  return c;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string owner_kind(const json::value& o) {
  boost::system::error_code ec;
  auto* k = o.find_pointer("/metadata/ownerReferences/0/kind", ec);
  return k && k->is_string() ? std::string(k->as_string()) : std::string();
}

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

}  // namespace

TEST_CASE("DaemonSet, StatefulSet and Service targets of another Canary, or with a foreign -primary, are refused and touch nothing") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);

  // Three applications driven by their Canaries: a DaemonSet, a StatefulSet, a Service.
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("DaemonSet", "ds-app"));
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("StatefulSet", "sts-app"));
  sim.kubectl_ok({"apply", "-f", "-"}, backend_yaml("web-blue"));
  sim.kubectl_ok({"apply", "-f", "-"}, service_yaml("web", "web-blue"));
  sim.kubectl_ok({"apply", "-f", "-"}, canary_for("ds-app", "DaemonSet", "ds-app"));
  sim.kubectl_ok({"apply", "-f", "-"}, canary_for("sts-app", "StatefulSet", "sts-app"));
  sim.kubectl_ok({"apply", "-f", "-"}, canary_for("web", "Service", "web"));
  for (std::string c : {"ds-app", "sts-app", "web"})
    REQUIRE_MESSAGE(wait_phase(sim, c, "Initialized", 30s), c << ": " << dump(canary_events(sim, c)));

  // Three more whose `-primary` someone else controls (here a ConfigMap standing for any other
  // controller: a Helm release, another operator).
  sim.kubectl_ok({"-n", "demo", "create", "configmap", "legacy"});
  const std::string legacy_uid = str_at(get_json(sim, {"configmap", "legacy"}), {"metadata", "uid"});
  const std::string owner = "  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: legacy\n    uid: " +
                            legacy_uid + "\n    controller: true\n";
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("DaemonSet", "ds-other"));
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("DaemonSet", "ds-other-primary", {}, {}, owner));
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("StatefulSet", "sts-other"));
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("StatefulSet", "sts-other-primary", {}, {}, owner));
  sim.kubectl_ok({"apply", "-f", "-"}, service_yaml("web-other", "web-blue"));
  sim.kubectl_ok({"apply", "-f", "-"}, service_yaml("web-other-primary", "web-blue", owner));
  // A Service target's copies are named after it even when service.name names another apex (the
  // kubernetes provider routes nothing by that name): its foreign -canary copy.
  sim.kubectl_ok({"apply", "-f", "-"}, service_yaml("web-third", "web-blue"));
  sim.kubectl_ok({"apply", "-f", "-"}, service_yaml("web-third-canary", "web-blue", owner));

  // Everything the intruders could touch, object by object (one kubectl call for all).
  const std::vector<std::string> watched{
      "daemonset/ds-app",        "daemonset/ds-app-primary",  "daemonset/ds-other",        "daemonset/ds-other-primary",
      "statefulset/sts-app",     "statefulset/sts-app-primary", "statefulset/sts-other",   "statefulset/sts-other-primary",
      "service/ds-app",          "service/ds-app-primary",    "service/ds-app-canary",     "service/sts-app",
      "service/sts-app-primary", "service/sts-app-canary",    "service/web",               "service/web-primary",
      "service/web-canary",      "service/web-other",         "service/web-other-primary", "service/web-third",
      "service/web-third-canary"};
  // kind/name -> fingerprint, for every DaemonSet, StatefulSet and Service in the namespace.
  auto all_objects = [&] {
    std::map<std::string, std::string> s;
    auto list = get_json(sim, {"daemonsets,statefulsets,services"});
    REQUIRE(!list.is_null());
    for (const auto& item : list.at("items").as_array()) {
      std::string kind = str_at(item, {"kind"});
      for (auto& ch : kind) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      s[kind + "/" + str_at(item, {"metadata", "name"})] = fingerprint(item);
    }
    return s;
  };
  auto snapshot = [&] {
    auto objects = all_objects();
    std::map<std::string, std::string> s;
    for (const auto& key : watched) s[key] = objects.contains(key) ? objects[key] : "<missing>";
    return s;
  };
  // Let kubesim's controllers settle the status of what was just created (fingerprints leave
  // status out, but a DaemonSet's generation is stable only once applied).
  std::this_thread::sleep_for(1s);
  const auto before = snapshot();
  const auto before_all = all_objects();
  for (const auto& [key, value] : before) CHECK_MESSAGE(value != "<missing>", key << " missing before the intruders");

  struct intruder {
    std::string name, kind, target, owner_text, object_text, service_name = {};
  };
  const std::vector<intruder> intruders{
      {"ds-intruder", "DaemonSet", "ds-app-primary", "controlled by Canary ds-app", "ds-app-primary"},
      {"sts-intruder", "StatefulSet", "sts-app-primary", "controlled by Canary sts-app", "sts-app-primary"},
      {"web-intruder", "Service", "web-primary", "controlled by Canary web", "web-primary"},
      {"ds-other", "DaemonSet", "ds-other", "controlled by ConfigMap legacy", "DaemonSet ds-other-primary"},
      {"sts-other", "StatefulSet", "sts-other", "controlled by ConfigMap legacy", "StatefulSet sts-other-primary"},
      {"web-other", "Service", "web-other", "controlled by ConfigMap legacy", "Service web-other-primary"},
      {"web-third", "Service", "web-third", "controlled by ConfigMap legacy", "Service web-third-canary", "web-third-apex"},
  };
  for (const auto& i : intruders)
    sim.kubectl_ok({"apply", "-f", "-"}, canary_for(i.name, i.kind, i.target, "  revertOnDeletion: true\n", i.service_name));
  for (const auto& i : intruders) {
    CAPTURE(i.name);
    condition c;
    eventually(
        [&] {
          c = promoted(sim, i.name);
          return c.status == "False";
        },
        20s);
    INFO("events: " << dump(canary_events(sim, i.name)));
    CHECK(c.reason == "Refused");
    CHECK_MESSAGE(contains(c.message, i.owner_text), c.message);
    CHECK_MESSAGE(contains(c.message, i.object_text), c.message);
    CHECK(has_event(canary_events(sim, i.name), "Warning", i.owner_text));
  }
  // Several intervals: the refusals hold and nothing was created or changed.
  std::this_thread::sleep_for(3s);
  auto after = snapshot();
  for (const auto& [key, value] : before) CHECK_MESSAGE(after[key] == value, "while refused: " << key << " changed");
  // Only the objects that were there before: no primary, -primary or -canary of an intruder.
  const auto objects = all_objects();
  for (const auto& [key, _] : objects) CHECK_MESSAGE(before_all.contains(key), key << " was created");
  for (const auto& i : intruders) CHECK(phase_of(sim, i.name) == "");

  // Deleting them (revertOnDeletion) gives nothing "back" either.
  std::vector<std::string> del{"-n", "demo", "delete", "canary", "--wait=false"};
  for (const auto& i : intruders) del.push_back(i.name);
  sim.kubectl_ok(del);
  for (const auto& i : intruders)
    REQUIRE_MESSAGE(eventually([&] { return get_json(sim, {"canary", i.name}).is_null(); }, 20s), i.name << " not deleted");
  std::this_thread::sleep_for(2s);
  after = snapshot();
  for (const auto& [key, value] : before) CHECK_MESSAGE(after[key] == value, "after the deletions: " << key << " changed");
}

namespace {

const std::string statefulset_hpa = R"(apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: db
  namespace: demo
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: StatefulSet
    name: db
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 90
)";

}  // namespace

TEST_CASE("an HPA autoscalerRef on a StatefulSet: the primary HPA scales the -primary StatefulSet, through a promotion") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("StatefulSet", "db"));
  sim.kubectl_ok({"apply", "-f", "-"}, statefulset_hpa);
  sim.kubectl_ok({"apply", "-f", "-"},
                 canary_for("db", "StatefulSet", "db",
                            "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n"
                            "    name: db\n    primaryScalerReplicas:\n      minReplicas: 3\n      maxReplicas: 5\n"));
  REQUIRE_MESSAGE(wait_phase(sim, "db", "Initialized", 30s), dump(canary_events(sim, "db")));

  auto hpa = get_json(sim, {"hpa", "db-primary"});
  REQUIRE_MESSAGE(!hpa.is_null(), "no db-primary HPA; events:\n" << dump(canary_events(sim, "db")));
  CHECK(text_at(hpa, "/spec/scaleTargetRef/kind") == "StatefulSet");
  CHECK(text_at(hpa, "/spec/scaleTargetRef/apiVersion") == "apps/v1");
  CHECK(text_at(hpa, "/spec/scaleTargetRef/name") == "db-primary");
  CHECK(int_at(hpa, "/spec/minReplicas") == 3);
  CHECK(int_at(hpa, "/spec/maxReplicas") == 5);
  CHECK(int_at(hpa, "/spec/metrics/0/resource/target/averageUtilization") == 90);
  CHECK(owner_kind(hpa) == "Canary");
  // The target's own HPA still points at the target.
  CHECK(text_at(get_json(sim, {"hpa", "db"}), "/spec/scaleTargetRef/name") == "db");
  CHECK(!get_json(sim, {"statefulset", "db-primary"}).is_null());
  CHECK(eventually([&] { return int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 0; }, 10s));

  // A release: promoted; the primary HPA is kept and still scales the primary.
  sim.kubectl_ok({"-n", "demo", "set", "image", "statefulset/db", "app=ghcr.io/stefanprodan/podinfo:6.0.1"});
  REQUIRE_MESSAGE(wait_phase(sim, "db", "Succeeded", 45s), dump(canary_events(sim, "db")));
  auto primary = get_json(sim, {"statefulset", "db-primary"});
  CHECK(text_at(primary, "/spec/template/spec/containers/0/image") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  hpa = get_json(sim, {"hpa", "db-primary"});
  CHECK(text_at(hpa, "/spec/scaleTargetRef/name") == "db-primary");
  CHECK(int_at(hpa, "/spec/minReplicas") == 3);
  CHECK(eventually([&] { return int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 0; }, 10s));
}

TEST_CASE("config tracking on DaemonSet and StatefulSet targets: a ConfigMap or Secret change starts a run that promotes the -primary copies") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  // Each workload reads a ConfigMap through envFrom and a Secret through a volume.
  for (std::string app : {"ds-cfg", "sts-cfg"}) {
    sim.kubectl_ok({"-n", "demo", "create", "configmap", app + "-config", "--from-literal=color=blue"});
    sim.kubectl_ok({"-n", "demo", "create", "secret", "generic", app + "-secret", "--from-literal=token=one"});
  }
  auto refs = [](const std::string& app) {
    return "        envFrom:\n        - configMapRef:\n            name: " + app +
           "-config\n        volumeMounts:\n        - name: secret\n          mountPath: /secret\n"
           "      volumes:\n      - name: secret\n        secret:\n          secretName: " + app + "-secret\n";
  };
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("DaemonSet", "ds-cfg", refs("ds-cfg")));
  sim.kubectl_ok({"apply", "-f", "-"}, workload_yaml("StatefulSet", "sts-cfg", refs("sts-cfg")));
  sim.kubectl_ok({"apply", "-f", "-"}, canary_for("ds-cfg", "DaemonSet", "ds-cfg"));
  sim.kubectl_ok({"apply", "-f", "-"}, canary_for("sts-cfg", "StatefulSet", "sts-cfg"));

  const std::vector<std::pair<std::string, std::string>> apps{{"ds-cfg", "daemonset"}, {"sts-cfg", "statefulset"}};
  for (const auto& [app, kind] : apps) {
    CAPTURE(app);
    REQUIRE_MESSAGE(wait_phase(sim, app, "Initialized", 30s), dump(canary_events(sim, app)));
    // The -primary copies, owned by the Canary, referenced by the primary (the target keeps its own).
    auto cm = get_json(sim, {"configmap", app + "-config-primary"});
    REQUIRE_MESSAGE(!cm.is_null(), "no " << app << "-config-primary");
    CHECK(str_at(cm, {"data", "color"}) == "blue");
    CHECK(owner_kind(cm) == "Canary");
    auto secret = get_json(sim, {"secret", app + "-secret-primary"});
    REQUIRE_MESSAGE(!secret.is_null(), "no " << app << "-secret-primary");
    CHECK(str_at(secret, {"data", "token"}) == "b25l");  // "one"
    CHECK(owner_kind(secret) == "Canary");
    auto primary = get_json(sim, {kind, app + "-primary"});
    CHECK(text_at(primary, "/spec/template/spec/containers/0/envFrom/0/configMapRef/name") == app + "-config-primary");
    CHECK(text_at(primary, "/spec/template/spec/volumes/0/secret/secretName") == app + "-secret-primary");
    auto target = get_json(sim, {kind, app});
    CHECK(text_at(target, "/spec/template/spec/containers/0/envFrom/0/configMapRef/name") == app + "-config");
    CHECK(text_at(target, "/spec/template/spec/volumes/0/secret/secretName") == app + "-secret");
  }

  // The DaemonSet's ConfigMap and the StatefulSet's Secret change: each starts a run (the
  // workloads' templates are unchanged) that promotes the new data into the -primary copy.
  sim.kubectl_ok({"-n", "demo", "patch", "configmap", "ds-cfg-config", "--type", "merge", "-p", R"({"data":{"color":"green"}})"});
  sim.kubectl_ok({"-n", "demo", "patch", "secret", "sts-cfg-secret", "--type", "merge", "-p", R"({"stringData":{"token":"two"}})"});
  // Both run at once: follow both phases in one loop.
  std::map<std::string, std::vector<std::string>> seen;
  eventually(
      [&] {
        bool done = true;
        for (const auto& [app, _] : apps) {
          auto& s = seen[app];
          const std::string p = phase_of(sim, app);
          if (s.empty() || s.back() != p) s.push_back(p);
          done = done && p == "Succeeded";
        }
        return done;
      },
      45s);
  for (const auto& [app, kind] : apps) {
    CAPTURE(app);
    auto evs = canary_events(sim, app);
    REQUIRE_MESSAGE(phase_of(sim, app) == "Succeeded", dump(evs));
    CHECK(std::find(seen[app].begin(), seen[app].end(), "Progressing") != seen[app].end());
    CHECK_MESSAGE(has_event(evs, "Normal", "New revision detected! Scaling up " + app + ".demo"), dump(evs));
    CHECK_MESSAGE(has_event(evs, "Normal", "Promotion completed! Scaling down " + app + ".demo"), dump(evs));
  }
  CHECK(str_at(get_json(sim, {"configmap", "ds-cfg-config-primary"}), {"data", "color"}) == "green");
  CHECK(str_at(get_json(sim, {"secret", "sts-cfg-secret-primary"}), {"data", "token"}) == "dHdv");  // "two"
  // The other copies kept their data, and the primaries still reference the copies.
  CHECK(str_at(get_json(sim, {"secret", "ds-cfg-secret-primary"}), {"data", "token"}) == "b25l");
  CHECK(str_at(get_json(sim, {"configmap", "sts-cfg-config-primary"}), {"data", "color"}) == "blue");
  for (const auto& [app, kind] : apps) {
    auto primary = get_json(sim, {kind, app + "-primary"});
    CHECK(text_at(primary, "/spec/template/spec/containers/0/envFrom/0/configMapRef/name") == app + "-config-primary");
    CHECK(text_at(primary, "/spec/template/spec/volumes/0/secret/secretName") == app + "-secret-primary");
  }
}
