// Ownership end to end (issue 11, docs/ownership.md): the real canaryd against kubesim with
// kubectl. A Canary that would touch another application's objects is refused (Promoted=False
// naming the other Canary, a Warning Event) and touches nothing, also once it is deleted; and a
// canary that cannot go on at run time says why in its Promoted condition.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/e2e/harness.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

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

using snapshot = std::map<std::string, std::string>;

// The podinfo application's objects, object by object.
snapshot podinfo_objects(const kubesim_instance& sim) {
  snapshot s;
  for (std::string d : {"podinfo", "podinfo-primary"}) s["deployment/" + d] = fingerprint(get_json(sim, {"deployment", d}));
  for (std::string svc : {"podinfo", "podinfo-primary", "podinfo-canary"})
    s["service/" + svc] = fingerprint(get_json(sim, {"service", svc}));
  return s;
}

void check_unchanged(const snapshot& before, const snapshot& after, const char* when) {
  for (const auto& [key, value] : before) {
    auto it = after.find(key);
    REQUIRE(it != after.end());
    CHECK_MESSAGE(it->second == value, when << ": " << key << " changed\nbefore: " << value << "\nafter:  " << it->second);
  }
}

std::int64_t ready_replicas(const kubesim_instance& sim, const std::string& deployment) {
  auto v = get_json(sim, {"deployment", deployment});
  if (v.is_null()) return -1;
  boost::system::error_code ec;
  const auto* r = v.find_pointer("/status/readyReplicas", ec);
  return r && r->is_int64() ? r->as_int64() : 0;
}

// The Promoted condition of a canary once `pred` holds for it (or the last one seen).
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

condition wait_condition(const kubesim_instance& sim, const std::string& canary,
                         const std::function<bool(const condition&)>& pred, std::chrono::milliseconds limit = 20s) {
  condition c;
  eventually(
      [&] {
        c = promoted(sim, canary);
        return pred(c);
      },
      limit);
  return c;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Deletes a canary and waits until it is gone (its finalizer work done).
void delete_canary(const kubesim_instance& sim, const std::string& name) {
  sim.kubectl_ok({"-n", "demo", "delete", "canary", name, "--wait=false"});
  REQUIRE_MESSAGE(eventually([&] { return get_json(sim, {"canary", name}).is_null(); }, 20s),
                  "canary " << name << " was not deleted; events:\n" << dump(canary_events(sim, name)));
}

// A second application with its own Deployment.
std::string other_app_yaml(const std::string& name) {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name + "\n  namespace: demo\n  labels:\n    app: " +
         name + "\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: " + name +
         "\n  template:\n    metadata:\n      labels:\n        app: " + name +
         "\n    spec:\n      containers:\n      - name: app\n        image: ghcr.io/stefanprodan/podinfo:6.0.0\n"
         "        ports:\n        - name: http\n          containerPort: 9898\n";
}

}  // namespace

TEST_CASE("a Canary targeting another canary's primary is refused and touches nothing, also once deleted") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);
  REQUIRE(eventually([&] { return ready_replicas(sim, "podinfo-primary") >= 1 && replicas_of(sim, "podinfo") == 0; }, 20s));
  const snapshot before = podinfo_objects(sim);

  // revertOnDeletion: deleting it must not give anything "back" either.
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("intruder", "podinfo-primary", {}, "  revertOnDeletion: true\n"));
  const condition c = wait_condition(sim, "intruder", [](const condition& c) { return c.status == "False"; });
  INFO("events: " << dump(canary_events(sim, "intruder")));
  CHECK(c.reason == "Refused");
  CHECK_MESSAGE(contains(c.message, "Canary podinfo"), c.message);
  CHECK_MESSAGE(contains(c.message, "podinfo-primary"), c.message);
  CHECK(has_event(canary_events(sim, "intruder"), "Warning", "controlled by Canary podinfo"));
  // Several analysis intervals: the refusal holds and nothing was created or changed.
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(1s);
    CHECK(ready_replicas(sim, "podinfo-primary") >= 1);
  }
  CHECK(get_json(sim, {"deployment", "podinfo-primary-primary"}).is_null());
  CHECK(get_json(sim, {"service", "podinfo-primary-primary"}).is_null());
  CHECK(get_json(sim, {"service", "podinfo-primary-canary"}).is_null());
  check_unchanged(before, podinfo_objects(sim), "while refused");

  delete_canary(sim, "intruder");
  std::this_thread::sleep_for(3s);
  check_unchanged(before, podinfo_objects(sim), "after deleting the intruder");
  CHECK(ready_replicas(sim, "podinfo-primary") >= 1);

  // The owner goes on as before.
  release(sim, "6.0.1");
  CHECK_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 45s), dump(canary_events(sim, "podinfo")));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
}

TEST_CASE("a Canary whose service.name is another canary's apex Service is refused; the other app is untouched") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);
  sim.kubectl_ok({"apply", "-f", "-"}, other_app_yaml("other"));
  REQUIRE(eventually([&] { return ready_replicas(sim, "other") == 2; }, 20s));
  const snapshot before = podinfo_objects(sim);
  const std::string other_before = fingerprint(get_json(sim, {"deployment", "other"}));

  const std::string thief = R"(apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: thief
  namespace: demo
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: other
  service:
    name: podinfo
    port: 9898
  analysis:
    interval: 1s
    threshold: 2
    iterations: 3
)";
  sim.kubectl_ok({"apply", "-f", "-"}, thief);
  const condition c = wait_condition(sim, "thief", [](const condition& c) { return c.status == "False"; });
  INFO("events: " << dump(canary_events(sim, "thief")));
  CHECK(c.reason == "Refused");
  CHECK_MESSAGE(contains(c.message, "Canary podinfo"), c.message);
  CHECK(has_event(canary_events(sim, "thief"), "Warning", "Canary podinfo"));
  std::this_thread::sleep_for(3s);
  check_unchanged(before, podinfo_objects(sim), "while refused");
  // Nothing of its own target was touched either: not scaled, no primary.
  CHECK(fingerprint(get_json(sim, {"deployment", "other"})) == other_before);
  CHECK(get_json(sim, {"deployment", "other-primary"}).is_null());

  delete_canary(sim, "thief");
  std::this_thread::sleep_for(2s);
  check_unchanged(before, podinfo_objects(sim), "after deleting the thief");
  CHECK(fingerprint(get_json(sim, {"deployment", "other"})) == other_before);
}

TEST_CASE("a second Canary on the same target is refused, the first keeps driving it; deleting the second changes nothing") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);
  const snapshot before = podinfo_objects(sim);

  // A different apex Service name, so only the target is shared.
  sim.kubectl_ok({"apply", "-f", "-"},
                 "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: twin\n  namespace: demo\nspec:\n"
                 "  provider: kubernetes\n  revertOnDeletion: true\n  targetRef:\n    apiVersion: apps/v1\n"
                 "    kind: Deployment\n    name: podinfo\n  service:\n    name: twin\n    port: 9898\n"
                 "  analysis:\n    interval: 1s\n    threshold: 2\n    iterations: 3\n");
  const condition c = wait_condition(sim, "twin", [](const condition& c) { return c.status == "False"; });
  INFO("events: " << dump(canary_events(sim, "twin")));
  CHECK(c.reason == "Refused");
  CHECK_MESSAGE(contains(c.message, "already the target of Canary podinfo"), c.message);
  CHECK(has_event(canary_events(sim, "twin"), "Warning", "already the target of Canary podinfo"));
  std::this_thread::sleep_for(3s);
  check_unchanged(before, podinfo_objects(sim), "while refused");
  for (std::string svc : {"twin", "twin-primary", "twin-canary"}) CHECK(get_json(sim, {"service", svc}).is_null());

  // The first canary still drives the target alone.
  release(sim, "6.0.2");
  CHECK_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 45s), dump(canary_events(sim, "podinfo")));
  CHECK(promoted(sim, "twin").reason == "Refused");
  const snapshot promoted_state = podinfo_objects(sim);
  delete_canary(sim, "twin");
  std::this_thread::sleep_for(2s);
  check_unchanged(promoted_state, podinfo_objects(sim), "after deleting the twin");
}

TEST_CASE("run-time failures put the reason into the Promoted condition; alert failures become Warning Events") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);

  // A missing target: the condition names it (not "New Deployment detected, starting initialization.").
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("ghost", "nowhere"));
  condition c = wait_condition(sim, "ghost", [](const condition& c) { return contains(c.message, "nowhere"); });
  CHECK_MESSAGE(contains(c.message, "deployment nowhere.demo get query error"), c.message);
  CHECK(has_event(canary_events(sim, "ghost"), "Warning", "deployment nowhere.demo get query error"));

  // A confirm-rollout gate nobody answers (a closed port), and an alert to a missing AlertProvider.
  const int closed = free_port();
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    alerts:\n    - name: on-call\n      severity: info\n      providerRef:\n"
                                "        name: missing-provider\n"
                                "    webhooks:\n    - name: gate\n      type: confirm-rollout\n      url: http://127.0.0.1:" +
                                    std::to_string(closed) + "/gate/check\n      timeout: 1s\n"));
  CHECK_MESSAGE(eventually(
                    [&] {
                      return has_event(canary_events(sim, "podinfo"), "Warning",
                                       "Alert to AlertProvider missing-provider.demo");
                    },
                    10s),
                dump(canary_events(sim, "podinfo")));
  release(sim, "6.0.3");
  c = wait_condition(sim, "podinfo", [](const condition& c) { return contains(c.message, "no answer"); });
  INFO("events: " << dump(canary_events(sim, "podinfo")));
  CHECK(phase_of(sim, "podinfo") == "Waiting");
  CHECK_MESSAGE(contains(c.message, "waiting for approval gate: no answer"), c.message);
  CHECK_MESSAGE(contains(c.message, "127.0.0.1:" + std::to_string(closed)), c.message);
  CHECK(has_event(canary_events(sim, "podinfo"), "Warning", "waiting for approval gate: no answer"));
}

// An Istio cluster whose VirtualService podinfo belongs to another controller (a ConfigMap
// stands in for, say, an Argo CD Application: an owner that exists, so no garbage collector
// removes it), with canaryd running and the podinfo target ready.
void foreign_virtual_service(kubesim_instance& sim) {
  setup_cluster(sim);
  REQUIRE(install_published_crds(sim, "istio"));
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, podinfo_yaml());
  REQUIRE(eventually([&] { return ready_replicas(sim, "podinfo") >= 1; }, 20s));
  sim.kubectl_ok({"-n", "demo", "create", "configmap", "other-controller"});
  const std::string owner_uid = str_at(get_json(sim, {"configmap", "other-controller"}), {"metadata", "uid"});
  REQUIRE(!owner_uid.empty());
  sim.kubectl_ok({"apply", "-f", "-"}, R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: podinfo
  namespace: demo
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: other-controller
    uid: )" + owner_uid + R"(
    controller: true
spec:
  hosts:
  - podinfo
  http:
  - route:
    - destination:
        host: someone-else
)");
}

void apply_istio_canary(kubesim_instance& sim) {
  sim.kubectl_ok({"apply", "-f", "-"}, R"(apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: demo
spec:
  provider: istio
  revertOnDeletion: true
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 1s
    threshold: 2
    iterations: 3
)");
}

TEST_CASE("a mesh object controlled by something else is refused like a foreign -primary Service; nothing is touched") {
  kubesim_instance sim;
  foreign_virtual_service(sim);
  auto d = start_canaryd(sim, {"-mesh-provider", "istio"});
  const std::string vs_before = fingerprint(get_json(sim, {"virtualservice", "podinfo"}));
  const std::string target_before = fingerprint(get_json(sim, {"deployment", "podinfo"}));
  REQUIRE(vs_before != "<missing>");

  apply_istio_canary(sim);
  const condition c = wait_condition(sim, "podinfo", [](const condition& c) { return c.status == "False"; });
  INFO("events: " << dump(canary_events(sim, "podinfo")));
  CHECK(c.reason == "Refused");
  CHECK_MESSAGE(contains(c.message, "VirtualService podinfo.demo is controlled by ConfigMap other-controller"), c.message);
  CHECK(has_event(canary_events(sim, "podinfo"), "Warning", "VirtualService podinfo.demo is controlled by ConfigMap"));
  std::this_thread::sleep_for(3s);
  // Nothing created, scaled or re-pointed.
  CHECK(fingerprint(get_json(sim, {"virtualservice", "podinfo"})) == vs_before);
  CHECK(fingerprint(get_json(sim, {"deployment", "podinfo"})) == target_before);
  CHECK(get_json(sim, {"deployment", "podinfo-primary"}).is_null());
  for (std::string svc : {"podinfo-primary", "podinfo-canary"}) CHECK(get_json(sim, {"service", svc}).is_null());
  for (std::string dr : {"podinfo-primary", "podinfo-canary"}) CHECK(get_json(sim, {"destinationrule", dr}).is_null());

  // Deleting it (revertOnDeletion) reverts nothing either.
  delete_canary(sim, "podinfo");
  std::this_thread::sleep_for(2s);
  CHECK(fingerprint(get_json(sim, {"virtualservice", "podinfo"})) == vs_before);
  CHECK(fingerprint(get_json(sim, {"deployment", "podinfo"})) == target_before);
}

TEST_CASE("a refused mesh object whose owner lets go of it is taken over without touching the Canary") {
  kubesim_instance sim;
  foreign_virtual_service(sim);
  auto d = start_canaryd(sim, {"-mesh-provider", "istio"});
  apply_istio_canary(sim);
  const condition refused = wait_condition(sim, "podinfo", [](const condition& c) { return c.reason == "Refused"; });
  CHECK_MESSAGE(contains(refused.message, "VirtualService podinfo.demo is controlled by ConfigMap other-controller"),
                refused.message);
  std::this_thread::sleep_for(2s);  // a refused canary is idle: no timer would tick it again
  CHECK(get_json(sim, {"deployment", "podinfo-primary"}).is_null());

  // The other controller releases the VirtualService; only the VirtualService changes, so only
  // its watch event can wake the Canary (before, it stayed refused until the Canary, its target
  // or canaryd changed).
  sim.kubectl_ok({"-n", "demo", "patch", "virtualservice", "podinfo", "--type=json", "-p",
                  R"([{"op":"remove","path":"/metadata/ownerReferences"}])"});
  CHECK(wait_phase(sim, "podinfo", "Initialized", 30s));
  const auto vs = get_json(sim, {"virtualservice", "podinfo"});
  const std::string routes = json::serialize(vs.at("spec").at("http"));
  INFO("routes: " << routes);
  CHECK(contains(routes, "\"host\":\"podinfo-primary\""));
  CHECK_FALSE(contains(routes, "someone-else"));
  CHECK(ready_replicas(sim, "podinfo-primary") >= 1);
}
