// kubesim's simulated workload controllers, in process: a real store (make_store()) and the
// controllers on one io_context, driven in real time with short readiness delays.
#include "sim/world/controllers.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>

#include "sim/api/store.hpp"

namespace json = boost::json;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// A store, controllers and the io_context that runs them.
struct cluster {
  asio::io_context ioc;
  std::unique_ptr<kubesim::store> st = kubesim::make_store();
  std::unique_ptr<kubesim::world::controllers> ctl;
  const kubesim::resource_info* deployments = st->find("apps", "v1", "deployments");
  const kubesim::resource_info* replicasets = st->find("apps", "v1", "replicasets");
  const kubesim::resource_info* daemonsets = st->find("apps", "v1", "daemonsets");
  const kubesim::resource_info* statefulsets = st->find("apps", "v1", "statefulsets");
  const kubesim::resource_info* pods = st->find("", "v1", "pods");
  const kubesim::resource_info* hpas = st->find("autoscaling", "v2", "horizontalpodautoscalers");

  explicit cluster(kubesim::world::controller_options opts = {}) {
    REQUIRE(deployments != nullptr);
    REQUIRE(replicasets != nullptr);
    REQUIRE(daemonsets != nullptr);
    REQUIRE(statefulsets != nullptr);
    REQUIRE(pods != nullptr);
    REQUIRE(hpas != nullptr);
    opts.seed = 42;
    ctl = std::make_unique<kubesim::world::controllers>(ioc.get_executor(), *st, opts);
  }

  // Runs the io_context until `done` holds or `limit` passes; returns whether it holds.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    // Dropping the previous guard with no other work left stopped the io_context.
    if (ioc.stopped()) ioc.restart();
    auto guard = asio::make_work_guard(ioc);
    const auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
      if (done()) return true;
      ioc.run_for(5ms);
    }
    return done();
  }
  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }

  kubesim::object_ptr create(const kubesim::resource_info* r, std::string_view text, std::string_view ns = "default") {
    auto res = st->create(*r, ns, json::parse(text).as_object());
    if (!res) FAIL("create failed: " << res.error().message);
    return *res;
  }
  kubesim::object_ptr get(const kubesim::resource_info* r, std::string_view name, std::string_view ns = "default") {
    auto res = st->get(*r, ns, name);
    return res ? *res : nullptr;
  }
  void update(const kubesim::resource_info* r, json::object o) {
    const std::string name(o.at("metadata").at("name").as_string());
    auto res = st->update(*r, "default", name, std::move(o), false);
    if (!res) FAIL("update failed: " << res.error().message);
  }
  std::vector<kubesim::object_ptr> list(const kubesim::resource_info* r, std::string_view ns = "default") {
    auto res = st->list(*r, ns, kubesim::list_options{});
    REQUIRE(res.has_value());
    return res->items;
  }
};

std::string deployment(std::string_view name, int replicas, std::string_view annotations = "{}",
                       std::string_view extra_spec = "") {
  return std::string(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":")") + std::string(name) +
         R"("},"spec":{"replicas":)" + std::to_string(replicas) + std::string(extra_spec) +
         R"(,"selector":{"matchLabels":{"app":")" + std::string(name) +
         R"("}},"template":{"metadata":{"labels":{"app":")" + std::string(name) + R"("},"annotations":)" +
         std::string(annotations) +
         R"(},"spec":{"containers":[{"name":"app","image":"podinfo:6.0.0"}]}}}})";
}

const json::value* at(const kubesim::object_ptr& o, std::initializer_list<std::string_view> path) {
  if (!o) return nullptr;
  const json::value* cur = nullptr;
  const json::object* obj = o.get();
  for (auto p : path) {
    if (obj == nullptr) return nullptr;
    auto it = obj->find(p);
    if (it == obj->end()) return nullptr;
    cur = &it->value();
    obj = cur->if_object();
  }
  return cur;
}

std::int64_t num(const kubesim::object_ptr& o, std::initializer_list<std::string_view> path) {
  const json::value* v = at(o, path);
  return v != nullptr && v->is_int64() ? v->get_int64() : 0;
}

std::string text(const kubesim::object_ptr& o, std::initializer_list<std::string_view> path) {
  const json::value* v = at(o, path);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// status.conditions[type] as {status, reason}.
std::pair<std::string, std::string> condition(const kubesim::object_ptr& o, std::string_view type) {
  const json::value* conds = at(o, {"status", "conditions"});
  if (conds == nullptr || !conds->is_array()) return {};
  for (const auto& c : conds->get_array()) {
    const auto& co = c.as_object();
    if (co.at("type").as_string() == type)
      return {std::string(co.at("status").as_string()), std::string(co.at("reason").as_string())};
  }
  return {};
}

bool owned_by(const kubesim::object_ptr& o, const kubesim::object_ptr& owner) {
  const json::value* refs = at(o, {"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array()) return false;
  for (const auto& r : refs->get_array())
    if (r.at("uid") == *at(owner, {"metadata", "uid"}) && r.at("controller") == true) return true;
  return false;
}

bool pod_ready(const kubesim::object_ptr& p) {
  const json::value* conds = at(p, {"status", "conditions"});
  if (conds == nullptr) return false;
  for (const auto& c : conds->get_array())
    if (c.at("type") == "Ready") return c.at("status") == "True";
  return false;
}

std::vector<kubesim::object_ptr> pods_of(cluster& c, const kubesim::object_ptr& owner) {
  std::vector<kubesim::object_ptr> out;
  for (const auto& p : c.list(c.pods))
    if (owned_by(p, owner)) out.push_back(p);
  return out;
}

// Everything of the workload kinds, for failure messages.
std::string dump(cluster& c) {
  std::string out;
  for (const auto* r : {c.deployments, c.replicasets, c.daemonsets, c.statefulsets, c.hpas, c.pods})
    for (const auto& o : c.list(r)) out += json::serialize(*o) + "\n";
  return out;
}

bool is_safe(std::string_view s) {
  return !s.empty() && s.find_first_not_of("bcdfghjklmnpqrstvwxz2456789") == std::string_view::npos;
}

}  // namespace

TEST_SUITE("sim") {

TEST_CASE("Go durations parse like time.ParseDuration") {
  using kubesim::world::parse_go_duration;
  std::chrono::nanoseconds d{};
  CHECK(parse_go_duration("500ms", d));
  CHECK(d == 500ms);
  CHECK(parse_go_duration("1.5s", d));
  CHECK(d == 1500ms);
  CHECK(parse_go_duration("1m30s", d));
  CHECK(d == 90s);
  CHECK(parse_go_duration("2h", d));
  CHECK(d == 7200s);
  CHECK(parse_go_duration("0", d));
  CHECK(d == 0ns);
  CHECK(parse_go_duration("250us", d));
  CHECK(d == 250us);
  for (const char* bad : {"", "5", "abc", "1x", "-1s", ".s", "ms"}) {
    INFO(std::string(bad));
    CHECK_FALSE(parse_go_duration(bad, d));
  }
}

TEST_CASE("a Deployment gets a ReplicaSet and pods, and goes ready after kubesim.dev/ready-after") {
  cluster c;
  const auto start = steady::now();
  auto d = c.create(c.deployments, deployment("podinfo", 2, R"({"kubesim.dev/ready-after":"400ms"})"));

  // The ReplicaSet and its pods appear at once, running but not ready.
  kubesim::object_ptr rs;
  REQUIRE(c.run_until([&] {
    for (const auto& r : c.list(c.replicasets))
      if (owned_by(r, d)) rs = r;
    return rs && pods_of(c, rs).size() == 2;
  }));
  const std::string rs_name = text(rs, {"metadata", "name"});
  const std::string hash = text(rs, {"metadata", "labels", "pod-template-hash"});
  CHECK(rs_name == "podinfo-" + hash);
  CHECK(is_safe(hash));
  CHECK(hash.size() >= 8);
  CHECK(text(rs, {"metadata", "annotations", "deployment.kubernetes.io/revision"}) == "1");
  CHECK(text(rs, {"spec", "selector", "matchLabels", "pod-template-hash"}) == hash);
  for (const auto& p : pods_of(c, rs)) {
    const std::string pn = text(p, {"metadata", "name"});
    CHECK(pn.rfind(rs_name + "-", 0) == 0);
    CHECK(pn.size() == rs_name.size() + 6);
    CHECK(is_safe(pn.substr(rs_name.size() + 1)));
    CHECK(text(p, {"metadata", "labels", "pod-template-hash"}) == hash);
    CHECK(text(p, {"metadata", "labels", "app"}) == "podinfo");
    CHECK(text(p, {"status", "phase"}) == "Running");
    CHECK_FALSE(text(p, {"spec", "nodeName"}).empty());
    CHECK_FALSE(text(p, {"status", "podIP"}).empty());
  }

  REQUIRE(c.run_until([&] {
    d = c.get(c.deployments, "podinfo");
    return num(d, {"status", "updatedReplicas"}) == 2;
  }));
  CHECK(num(d, {"status", "observedGeneration"}) == 1);
  CHECK(num(d, {"status", "readyReplicas"}) == 0);
  CHECK(num(d, {"status", "unavailableReplicas"}) == 2);
  CHECK(condition(d, "Available") == std::pair<std::string, std::string>{"False", "MinimumReplicasUnavailable"});
  CHECK(condition(d, "Progressing").first == "True");
  CHECK(text(d, {"metadata", "annotations", "deployment.kubernetes.io/revision"}) == "1");

  REQUIRE(c.run_until([&] {
    d = c.get(c.deployments, "podinfo");
    return num(d, {"status", "availableReplicas"}) == 2;
  }));
  CHECK(steady::now() - start >= 400ms);
  CHECK(num(d, {"status", "replicas"}) == 2);
  CHECK(num(d, {"status", "readyReplicas"}) == 2);
  CHECK(at(d, {"status", "unavailableReplicas"}) == nullptr);
  REQUIRE(c.run_until([&] {
    d = c.get(c.deployments, "podinfo");
    return condition(d, "Progressing").second == "NewReplicaSetAvailable";
  }));
  CHECK(condition(d, "Available") == std::pair<std::string, std::string>{"True", "MinimumReplicasAvailable"});
  for (const auto& p : pods_of(c, c.get(c.replicasets, rs_name))) CHECK(pod_ready(p));
}

TEST_CASE("a new template rolls out a new ReplicaSet and scales the old one to zero once it is ready") {
  cluster c;
  auto d = c.create(c.deployments, deployment("app", 1, R"({"kubesim.dev/ready-after":"0s"})"));
  REQUIRE(c.run_until([&] {
    d = c.get(c.deployments, "app");
    return condition(d, "Progressing").second == "NewReplicaSetAvailable";
  }));
  std::string old_rs;
  for (const auto& r : c.list(c.replicasets)) old_rs = text(r, {"metadata", "name"});

  json::object changed = *d;
  changed["spec"].as_object()["template"].as_object()["metadata"].as_object()["annotations"] =
      json::object{{"kubesim.dev/ready-after", "300ms"}};
  changed["spec"].as_object()["template"].as_object()["spec"].as_object()["containers"].as_array()[0].as_object()["image"] =
      "podinfo:6.0.1";
  c.update(c.deployments, std::move(changed));

  kubesim::object_ptr new_rs;
  REQUIRE(c.run_until([&] {
    for (const auto& r : c.list(c.replicasets))
      if (text(r, {"metadata", "name"}) != old_rs) new_rs = r;
    return new_rs != nullptr;
  }));
  CHECK(text(new_rs, {"metadata", "annotations", "deployment.kubernetes.io/revision"}) == "2");
  // While the new pods are not ready, the old ReplicaSet keeps serving.
  c.run_for(100ms);
  CHECK(num(c.get(c.replicasets, old_rs), {"spec", "replicas"}) == 1);
  d = c.get(c.deployments, "app");
  CHECK(num(d, {"status", "observedGeneration"}) == 2);
  CHECK(condition(d, "Progressing").second != "NewReplicaSetAvailable");

  REQUIRE(c.run_until([&] {
    d = c.get(c.deployments, "app");
    return condition(d, "Progressing").second == "NewReplicaSetAvailable" && num(d, {"status", "replicas"}) == 1;
  }));
  CHECK(num(c.get(c.replicasets, old_rs), {"spec", "replicas"}) == 0);
  CHECK(pods_of(c, c.get(c.replicasets, old_rs)).empty());
  CHECK(num(d, {"status", "updatedReplicas"}) == 1);
  CHECK(text(d, {"metadata", "annotations", "deployment.kubernetes.io/revision"}) == "2");
  auto pods = c.list(c.pods);
  REQUIRE(pods.size() == 1);
  CHECK(at(pods[0], {"spec", "containers"})->as_array()[0].at("image") == "podinfo:6.0.1");
}

TEST_CASE("a template that is never ready times out with ProgressDeadlineExceeded") {
  cluster c;
  auto d = c.create(c.deployments, deployment("stuck", 1, R"({"kubesim.dev/ready":"false"})", R"(,"progressDeadlineSeconds":1)"));
  REQUIRE(c.run_until(
      [&] {
        d = c.get(c.deployments, "stuck");
        return condition(d, "Progressing").second == "ProgressDeadlineExceeded";
      },
      6s));
  CHECK(condition(d, "Progressing").first == "False");
  CHECK(num(d, {"status", "readyReplicas"}) == 0);
  CHECK(num(d, {"status", "updatedReplicas"}) == 1);
  CHECK(condition(d, "Available").first == "False");
  for (const auto& p : c.list(c.pods)) CHECK_FALSE(pod_ready(p));
}

TEST_CASE("scaling a Deployment to zero removes its pods and keeps it Available") {
  cluster c;
  auto d = c.create(c.deployments, deployment("zero", 3, R"({"kubesim.dev/ready-after":"0s"})"));
  REQUIRE(c.run_until([&] { return num(c.get(c.deployments, "zero"), {"status", "readyReplicas"}) == 3; }));
  json::object scaled = *c.get(c.deployments, "zero");
  scaled["spec"].as_object()["replicas"] = 0;
  c.update(c.deployments, std::move(scaled));
  REQUIRE(c.run_until([&] {
    d = c.get(c.deployments, "zero");
    return c.list(c.pods).empty() && at(d, {"status", "replicas"}) == nullptr;
  }));
  CHECK(condition(d, "Available") == std::pair<std::string, std::string>{"True", "MinimumReplicasAvailable"});
  CHECK(condition(d, "Progressing").second == "NewReplicaSetAvailable");
  for (const auto& r : c.list(c.replicasets)) CHECK(num(r, {"spec", "replicas"}) == 0);
}

TEST_CASE("a deleted pod is replaced by its ReplicaSet") {
  cluster c;
  c.create(c.deployments, deployment("heal", 2, R"({"kubesim.dev/ready-after":"0s"})"));
  REQUIRE(c.run_until([&] { return c.list(c.pods).size() == 2; }));
  const std::string victim = text(c.list(c.pods).front(), {"metadata", "name"});
  REQUIRE(c.st->remove(*c.pods, "default", victim).has_value());
  REQUIRE(c.run_until([&] {
    auto ps = c.list(c.pods);
    return ps.size() == 2 && std::none_of(ps.begin(), ps.end(), [&](const auto& p) {
             return text(p, {"metadata", "name"}) == victim;
           });
  }));
}

TEST_CASE("DaemonSets schedule one pod per matching node, and none when the nodeSelector matches nothing") {
  kubesim::world::controller_options opts;
  opts.node_labels_by_node[1] = {{"zone", "b"}};
  cluster c(opts);
  REQUIRE(c.ctl->nodes().size() == 3);
  CHECK(c.ctl->nodes()[1].labels.at("zone") == "b");
  CHECK(c.ctl->nodes()[0].labels.at("kubernetes.io/hostname") == "node-0");

  auto ds_text = [](std::string_view name, std::string_view node_selector) {
    return std::string(R"({"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":")") + std::string(name) +
           R"("},"spec":{"selector":{"matchLabels":{"app":")" + std::string(name) +
           R"("}},"template":{"metadata":{"labels":{"app":")" + std::string(name) +
           R"("},"annotations":{"kubesim.dev/ready-after":"100ms"}},"spec":{"nodeSelector":)" + std::string(node_selector) +
           R"(,"containers":[{"name":"app","image":"podinfo"}]}}}})";
  };
  auto all = c.create(c.daemonsets, ds_text("all", R"({"kubernetes.io/os":"linux"})"));
  auto zone_b = c.create(c.daemonsets, ds_text("zone-b", R"({"zone":"b"})"));
  auto none = c.create(c.daemonsets, ds_text("none", R"({"disktype":"ssd"})"));
  REQUIRE(c.run_until([&] {
    return num(c.get(c.daemonsets, "all"), {"status", "numberReady"}) == 3 &&
           num(c.get(c.daemonsets, "zone-b"), {"status", "numberReady"}) == 1 &&
           at(c.get(c.daemonsets, "none"), {"status", "desiredNumberScheduled"}) != nullptr;
  }));
  auto ds = c.get(c.daemonsets, "all");
  CHECK(num(ds, {"status", "desiredNumberScheduled"}) == 3);
  CHECK(num(ds, {"status", "currentNumberScheduled"}) == 3);
  CHECK(num(ds, {"status", "updatedNumberScheduled"}) == 3);
  CHECK(num(ds, {"status", "numberAvailable"}) == 3);
  CHECK(num(ds, {"status", "observedGeneration"}) == 1);
  std::set<std::string> nodes;
  for (const auto& p : pods_of(c, all)) nodes.insert(text(p, {"spec", "nodeName"}));
  CHECK(nodes == std::set<std::string>{"node-0", "node-1", "node-2"});
  auto b_pods = pods_of(c, zone_b);
  REQUIRE(b_pods.size() == 1);
  CHECK(text(b_pods[0], {"spec", "nodeName"}) == "node-1");
  auto n = c.get(c.daemonsets, "none");
  CHECK(num(n, {"status", "desiredNumberScheduled"}) == 0);
  CHECK(num(n, {"status", "currentNumberScheduled"}) == 0);
  CHECK(num(n, {"status", "numberReady"}) == 0);
  CHECK(pods_of(c, none).empty());

  // A template change replaces the pods.
  INFO(dump(c));
  json::object changed = *c.get(c.daemonsets, "zone-b");
  changed["spec"].as_object()["template"].as_object()["spec"].as_object()["containers"].as_array()[0].as_object()["image"] = "podinfo:2";
  c.update(c.daemonsets, std::move(changed));
  REQUIRE(c.run_until([&] {
    auto d = c.get(c.daemonsets, "zone-b");
    auto ps = pods_of(c, zone_b);
    return num(d, {"status", "observedGeneration"}) == 2 && num(d, {"status", "updatedNumberScheduled"}) == 1 &&
           num(d, {"status", "numberReady"}) == 1 && ps.size() == 1 &&
           at(ps[0], {"spec", "containers"})->as_array()[0].at("image") == "podinfo:2";
  }));
}

TEST_CASE("StatefulSets create ordinal pods in order and report revisions") {
  cluster c;
  auto ss = c.create(c.statefulsets, R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web"},
    "spec":{"replicas":3,"serviceName":"web","selector":{"matchLabels":{"app":"web"}},
      "template":{"metadata":{"labels":{"app":"web"},"annotations":{"kubesim.dev/ready-after":"100ms"}},
                  "spec":{"containers":[{"name":"nginx","image":"nginx:1"}]}}}})");
  // OrderedReady: web-1 only once web-0 is ready.
  REQUIRE(c.run_until([&] { return c.get(c.pods, "web-0") != nullptr; }));
  CHECK(c.get(c.pods, "web-1") == nullptr);
  REQUIRE(c.run_until([&] { return num(c.get(c.statefulsets, "web"), {"status", "readyReplicas"}) == 3; }));
  ss = c.get(c.statefulsets, "web");
  CHECK(num(ss, {"status", "replicas"}) == 3);
  CHECK(num(ss, {"status", "currentReplicas"}) == 3);
  CHECK(num(ss, {"status", "updatedReplicas"}) == 3);
  CHECK(num(ss, {"status", "availableReplicas"}) == 3);
  const std::string rev = text(ss, {"status", "updateRevision"});
  CHECK(rev.rfind("web-", 0) == 0);
  CHECK(text(ss, {"status", "currentRevision"}) == rev);
  CHECK(text(c.get(c.pods, "web-2"), {"metadata", "labels", "statefulset.kubernetes.io/pod-name"}) == "web-2");

  // An update rolls the pods to the new revision.
  INFO(dump(c));
  json::object changed = *ss;
  changed["spec"].as_object()["template"].as_object()["spec"].as_object()["containers"].as_array()[0].as_object()["image"] = "nginx:2";
  c.update(c.statefulsets, std::move(changed));
  REQUIRE(c.run_until(
      [&] {
        auto s = c.get(c.statefulsets, "web");
        return text(s, {"status", "currentRevision"}) == text(s, {"status", "updateRevision"}) &&
               text(s, {"status", "updateRevision"}) != rev && num(s, {"status", "readyReplicas"}) == 3;
      },
      8s));
  for (const char* p : {"web-0", "web-1", "web-2"})
    CHECK(at(c.get(c.pods, p), {"spec", "containers"})->as_array()[0].at("image") == "nginx:2");

  // Scale down removes the highest ordinals.
  json::object smaller = *c.get(c.statefulsets, "web");
  smaller["spec"].as_object()["replicas"] = 1;
  c.update(c.statefulsets, std::move(smaller));
  REQUIRE(c.run_until([&] { return num(c.get(c.statefulsets, "web"), {"status", "replicas"}) == 1; }));
  CHECK(c.get(c.pods, "web-0") != nullptr);
  CHECK(c.get(c.pods, "web-1") == nullptr);
}

TEST_CASE("an HPA mirrors its target's replicas within min and max") {
  cluster c;
  c.create(c.deployments, deployment("podinfo", 1, R"({"kubesim.dev/ready-after":"0s"})"));
  c.create(c.hpas, R"({"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"podinfo"},
    "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},"minReplicas":2,"maxReplicas":4}})");
  REQUIRE(c.run_until([&] {
    auto h = c.get(c.hpas, "podinfo");
    return num(h, {"status", "currentReplicas"}) == 1 && num(h, {"status", "desiredReplicas"}) == 2;
  }));
  CHECK(condition(c.get(c.hpas, "podinfo"), "ScalingLimited") == std::pair<std::string, std::string>{"True", "TooFewReplicas"});

  json::object scaled = *c.get(c.deployments, "podinfo");
  scaled["spec"].as_object()["replicas"] = 3;
  c.update(c.deployments, std::move(scaled));
  REQUIRE(c.run_until([&] {
    auto h = c.get(c.hpas, "podinfo");
    return num(h, {"status", "currentReplicas"}) == 3 && num(h, {"status", "desiredReplicas"}) == 3;
  }));
  CHECK(condition(c.get(c.hpas, "podinfo"), "ScalingLimited").first == "False");

  c.create(c.hpas, R"({"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"orphan"},
    "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"missing"},"maxReplicas":2}})");
  REQUIRE(c.run_until([&] { return condition(c.get(c.hpas, "orphan"), "AbleToScale").first == "False"; }));
  CHECK(condition(c.get(c.hpas, "orphan"), "AbleToScale").second == "FailedGetScale");
}

TEST_CASE("paused controllers do nothing, then catch up") {
  cluster c;
  c.ctl->pause(true);
  CHECK(c.ctl->paused());
  c.create(c.deployments, deployment("later", 1, R"({"kubesim.dev/ready-after":"0s"})"));
  c.run_for(200ms);
  CHECK(c.list(c.replicasets).empty());
  CHECK(c.list(c.pods).empty());
  CHECK(c.ctl->pending() >= 1);
  c.ctl->pause(false);
  INFO(dump(c));
  REQUIRE(c.run_until([&] { return num(c.get(c.deployments, "later"), {"status", "availableReplicas"}) == 1; }));
}

TEST_CASE("deleting a Deployment takes its ReplicaSets and pods with it") {
  cluster c;
  c.create(c.deployments, deployment("gone", 2, R"({"kubesim.dev/ready-after":"0s"})"));
  REQUIRE(c.run_until([&] { return c.list(c.pods).size() == 2; }));
  REQUIRE(c.st->remove(*c.deployments, "default", "gone").has_value());
  REQUIRE(c.run_until([&] { return c.list(c.pods).empty() && c.list(c.replicasets).empty(); }));
  c.run_for(100ms);
  CHECK(c.list(c.pods).empty());
}

TEST_CASE("a thousand Deployments converge quickly") {
  cluster c;
  const int n = 1000;
  const auto start = steady::now();
  for (int i = 0; i < n; ++i) {
    c.create(c.deployments, deployment("d" + std::to_string(i), 1, R"({"kubesim.dev/ready-after":"0s"})"));
  }
  const auto created = steady::now();
  auto all_ready = [&] {
    auto ds = c.list(c.deployments);
    return std::all_of(ds.begin(), ds.end(),
                       [](const auto& d) { return condition(d, "Progressing").second == "NewReplicaSetAvailable"; });
  };
  REQUIRE(c.run_until(all_ready, 60s));
  const auto done = steady::now();
  MESSAGE("created " << n << " deployments in " << std::chrono::duration_cast<std::chrono::milliseconds>(created - start).count()
                     << " ms, converged in " << std::chrono::duration_cast<std::chrono::milliseconds>(done - created).count()
                     << " ms; objects in store: " << c.st->object_count());
  CHECK(c.list(c.pods).size() == static_cast<std::size_t>(n));
  CHECK(c.run_until([&] { return c.ctl->pending() == 0; }));
}

}  // TEST_SUITE

TEST_CASE("StatefulSet claims: one bound PVC per template and ordinal, kept or deleted by the retention policy") {
  cluster c;
  const auto* pvcs = c.st->find("", "v1", "persistentvolumeclaims");
  const auto* pvs = c.st->find("", "v1", "persistentvolumes");
  REQUIRE(pvcs != nullptr);
  REQUIRE(pvs != nullptr);
  const std::string manifest = R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},
    "spec":{"replicas":2,"serviceName":"db","podManagementPolicy":"Parallel","selector":{"matchLabels":{"app":"db"}},
      "persistentVolumeClaimRetentionPolicy":{"whenScaled":"Retain","whenDeleted":"Retain"},
      "template":{"metadata":{"labels":{"app":"db"},"annotations":{"kubesim.dev/ready-after":"50ms"}},
                  "spec":{"containers":[{"name":"db","image":"db:1"}]}},
      "volumeClaimTemplates":[{"metadata":{"name":"data"},
        "spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"2Gi"}}}}]}})";
  c.create(c.statefulsets, manifest);
  REQUIRE(c.run_until([&] { return num(c.get(c.statefulsets, "db"), {"status", "readyReplicas"}) == 2; }));
  for (const char* n : {"data-db-0", "data-db-1"}) {
    auto pvc = c.get(pvcs, n);
    REQUIRE(pvc != nullptr);
    CHECK(text(pvc, {"status", "phase"}) == "Bound");
    CHECK(text(pvc, {"status", "capacity", "storage"}) == "2Gi");
    CHECK(text(pvc, {"metadata", "labels", "app"}) == "db");
    const std::string volume = text(pvc, {"spec", "volumeName"});
    auto pv = c.get(pvs, volume, "");
    REQUIRE(pv != nullptr);
    CHECK(text(pv, {"spec", "claimRef", "name"}) == n);
    CHECK(text(pv, {"status", "phase"}) == "Bound");
  }
  // The pod mounts its own claim.
  auto pod = c.get(c.pods, "db-1");
  REQUIRE(pod != nullptr);
  bool mounted = false;
  for (const auto& v : at(pod, {"spec", "volumes"})->as_array())
    if (v.at("name") == "data" && v.at("persistentVolumeClaim").at("claimName") == "data-db-1") mounted = true;
  CHECK(mounted);

  // whenScaled Retain: scaled to zero, the claims stay (and are used again).
  const std::string uid0 = text(c.get(pvcs, "data-db-0"), {"metadata", "uid"});
  json::object zero = *c.get(c.statefulsets, "db");
  zero["spec"].as_object()["replicas"] = 0;
  c.update(c.statefulsets, std::move(zero));
  REQUIRE(c.run_until([&] { return c.get(c.pods, "db-0") == nullptr && c.get(c.pods, "db-1") == nullptr; }));
  CHECK(c.get(pvcs, "data-db-1") != nullptr);
  json::object back = *c.get(c.statefulsets, "db");
  back["spec"].as_object()["replicas"] = 2;
  c.update(c.statefulsets, std::move(back));
  REQUIRE(c.run_until([&] { return num(c.get(c.statefulsets, "db"), {"status", "readyReplicas"}) == 2; }));
  CHECK(text(c.get(pvcs, "data-db-0"), {"metadata", "uid"}) == uid0);

  // whenScaled Delete: scaling down removes the claims of the removed ordinals.
  json::object del = *c.get(c.statefulsets, "db");
  del["spec"].as_object()["persistentVolumeClaimRetentionPolicy"].as_object()["whenScaled"] = "Delete";
  del["spec"].as_object()["replicas"] = 1;
  c.update(c.statefulsets, std::move(del));
  REQUIRE(c.run_until([&] { return c.get(pvcs, "data-db-1") == nullptr; }));
  CHECK(c.get(pvcs, "data-db-0") != nullptr);
}

TEST_CASE("a StatefulSet partition keeps the lower ordinals on the old revision") {
  cluster c;
  c.create(c.statefulsets, R"({"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"web"},
    "spec":{"replicas":3,"serviceName":"web","podManagementPolicy":"Parallel","selector":{"matchLabels":{"app":"web"}},
      "updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}},
      "template":{"metadata":{"labels":{"app":"web"},"annotations":{"kubesim.dev/ready-after":"50ms"}},
                  "spec":{"containers":[{"name":"nginx","image":"nginx:1"}]}}}})");
  REQUIRE(c.run_until([&] { return num(c.get(c.statefulsets, "web"), {"status", "readyReplicas"}) == 3; }));
  json::object changed = *c.get(c.statefulsets, "web");
  changed["spec"].as_object()["template"].as_object()["spec"].as_object()["containers"].as_array()[0].as_object()["image"] = "nginx:2";
  c.update(c.statefulsets, std::move(changed));
  auto image = [&](const char* p) { return at(c.get(c.pods, p), {"spec", "containers"})->as_array()[0].at("image"); };
  REQUIRE(c.run_until([&] {
    auto p = c.get(c.pods, "web-2");
    auto s = c.get(c.statefulsets, "web");
    return p != nullptr && image("web-2") == "nginx:2" && num(s, {"status", "readyReplicas"}) == 3;
  }));
  c.run_for(300ms);
  CHECK(image("web-0") == "nginx:1");
  CHECK(image("web-1") == "nginx:1");
  auto s = c.get(c.statefulsets, "web");
  CHECK(num(s, {"status", "updatedReplicas"}) == 1);
  CHECK(text(s, {"status", "currentRevision"}) != text(s, {"status", "updateRevision"}));
}
