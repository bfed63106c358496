// The Deployment target controller in-process against the real kubesim binary: caches and the
// API client on one io_context, the podinfo Deployment applied with kubectl, and every action
// of a run (initialize, scale to zero, new revision, scale from zero, promote, config tracking,
// finalize) checked on the objects kubesim holds.
#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <string>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"
#include "daemon/target.hpp"
#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"
#include "k8s/config.hpp"
#include "k8s/log.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace k8s = canaryd::k8s;
namespace core = canaryd::core;
using canaryd::test::kubesim_instance;
using namespace std::chrono_literals;

namespace {

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

template <class Pred>
asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = 20s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    co_await sleep_for(20ms);
  }
  co_return true;
}

json::value at(const k8s::object_ptr& o, std::initializer_list<std::string_view> path) {
  if (!o) return nullptr;
  json::value v = json::parse(o->json());
  const json::value* cur = &v;
  for (auto p : path) {
    if (cur->is_array()) {
      const auto i = std::stoul(std::string(p));
      if (i >= cur->as_array().size()) return nullptr;
      cur = &cur->as_array()[i];
    } else if (cur->is_object()) {
      cur = cur->as_object().if_contains(p);
      if (cur == nullptr) return nullptr;
    } else {
      return nullptr;
    }
  }
  return *cur;
}

core::canary podinfo_canary() {
  const std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"demo","uid":"0b1c2d3e-0000-4000-8000-000000000001"},
    "spec":{"provider":"kubernetes","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
            "progressDeadlineSeconds":60,"service":{"port":9898},
            "analysis":{"interval":"1s","threshold":2,"iterations":3}}})";
  auto d = core::decode_canary(text);
  REQUIRE(d.ok());
  return d.value;
}

struct world {
  const kubesim_instance* sim = nullptr;
  // results checked in the TEST_CASE frame
  std::vector<std::string> failures;
  void fail(std::string what) { failures.push_back(std::move(what)); }
};

#define EXPECT(cond, what)          \
  do {                              \
    if (!(cond)) w->fail(what);     \
  } while (0)

asio::awaitable<void> run(world* w) {
  auto ex = co_await asio::this_coro::executor;
  k8s::api_client_options co;
  co.timeout = 10s;
  auto client_r = k8s::api_client::create(ex, k8s::load_kubeconfig({w->sim->kubeconfig()}), co);
  REQUIRE_MESSAGE(client_r.has_value(), client_r.error().what());
  auto& client = **client_r;

  auto make_cache = [&](const k8s::resource& r) {
    k8s::watch_options wo;
    wo.res = r;
    wo.namespace_name = "demo";
    return std::make_unique<k8s::cache>(client, wo);
  };
  auto canaries = make_cache(canaryd::resources::canaries);  // not run: the controller never reads it
  auto deployments = make_cache(canaryd::resources::deployments);
  auto services = make_cache(canaryd::resources::services);
  auto configmaps = make_cache(canaryd::resources::configmaps);
  auto secrets = make_cache(canaryd::resources::secrets);
  auto hpas = make_cache(canaryd::resources::hpas);
  int running = 0;
  for (k8s::cache* c : {deployments.get(), configmaps.get(), secrets.get(), hpas.get()}) {
    ++running;
    asio::co_spawn(ex, c->run(), [&running](std::exception_ptr e) {
      --running;
      CHECK(!e);
    });
  }
  for (k8s::cache* c : {deployments.get(), configmaps.get(), secrets.get(), hpas.get()}) {
    REQUIRE(co_await c->wait_synced(10s));
  }
  auto metric_templates = make_cache(canaryd::resources::metric_templates);  // not run: unused here
  auto daemonsets = make_cache(canaryd::resources::daemonsets);              // not run: unused here
  auto statefulsets = make_cache(canaryd::resources::statefulsets);          // not run: unused here
  canaryd::cluster k{client,          *canaries, *deployments, *services,   *configmaps, *secrets, *hpas,
                     *metric_templates, *daemonsets, *statefulsets};
  canaryd::options opts;
  auto ctl = canaryd::make_deployment_controller(k, opts);
  core::canary c = podinfo_canary();  // status.lastAppliedSpec is set below
  auto observe = [&] {
    core::observed_state obs;
    ctl->observe(c, obs, std::chrono::system_clock::now());
    return obs;
  };

  // A missing target: Flagger's get-query error, nothing else read.
  {
    auto obs = observe();
    EXPECT(obs.target_error == "deployment podinfo.demo get query error: deployments.apps \"podinfo\" not found",
           "missing target error: " + obs.target_error);
    auto r = co_await ctl->apply(c, core::workload_action::initialize_primary);
    EXPECT(r.has_error() && r.error() == obs.target_error, "initialize without a target fails with the same error");
  }

  w->sim->kubectl_ok({"apply", "-f", (canaryd::test::source_root() / "deploy/examples/podinfo.yaml").string()});
  EXPECT(co_await eventually([&] { return deployments->get("demo", "podinfo") != nullptr; }), "podinfo in the cache");
  const std::string first_revision = observe().target_revision;
  EXPECT(first_revision.size() == 16, "target revision is a canaryd hash: " + first_revision);
  EXPECT(observe().target_error.empty(), "no target error: " + observe().target_error);
  EXPECT(observe().primary.value == core::readiness::state::waiting, "primary waiting before it exists");
  EXPECT(observe().primary.message ==
             "deployment podinfo-primary.demo get query error: deployments.apps \"podinfo-primary\" not found",
         "missing primary message: " + observe().primary.message);

  // initialize_primary -> podinfo-primary with rewritten labels, selector and owner.
  {
    auto r = co_await ctl->apply(c, core::workload_action::initialize_primary);
    EXPECT(r.has_value(), "initialize_primary: " + (r ? std::string() : r.error()));
  }
  EXPECT(co_await eventually([&] { return deployments->get("demo", "podinfo-primary") != nullptr; }), "primary created");
  {
    const auto p = deployments->get("demo", "podinfo-primary");
    EXPECT(at(p, {"metadata", "labels", "app"}) == "podinfo-primary", "primary object label");
    EXPECT(at(p, {"spec", "selector", "matchLabels"}) == (json::object{{"app", "podinfo-primary"}}), "primary selector");
    EXPECT(at(p, {"spec", "template", "metadata", "labels", "app"}) == "podinfo-primary", "primary pod label");
    EXPECT(at(p, {"spec", "replicas"}) == 2, "primary replicas from the target");
    EXPECT(at(p, {"spec", "progressDeadlineSeconds"}) == 60, "progress deadline copied");
    EXPECT(at(p, {"spec", "template", "spec", "containers", "0", "image"}) == "ghcr.io/stefanprodan/podinfo:6.0.0",
           "primary image");
    EXPECT(at(p, {"spec", "template", "metadata", "annotations", "flagger-id"}).is_string(), "flagger-id set");
    EXPECT(at(p, {"metadata", "ownerReferences", "0", "kind"}) == "Canary", "owner kind");
    EXPECT(at(p, {"metadata", "ownerReferences", "0", "uid"}) == "0b1c2d3e-0000-4000-8000-000000000001", "owner uid");
    EXPECT(at(p, {"metadata", "ownerReferences", "0", "controller"}) == true, "owner is the controller");
  }
  // A second initialize is a no-op (the primary exists).
  {
    auto r = co_await ctl->apply(c, core::workload_action::initialize_primary);
    EXPECT(r.has_value(), "second initialize_primary");
  }
  EXPECT(co_await eventually([&] { return observe().primary.is_ready(); }), "primary becomes ready: " + observe().primary.message);
  // Only adoption from Flagger consults the comparison: with no lastAppliedSpec, or one of our
  // hashes, it is not made. With a Flagger hash (not 16 hex digits) it is.
  EXPECT(!observe().primary_matches_target.has_value(), "no comparison without a Flagger lastAppliedSpec");
  c.status.last_applied_spec = first_revision;
  EXPECT(!observe().primary_matches_target.has_value(), "no comparison with our own lastAppliedSpec");
  c.status.last_applied_spec = "7d4f8c6b9";
  EXPECT(observe().primary_matches_target == true, "the new primary runs the target's template");

  // scale_to_zero
  {
    auto r = co_await ctl->apply(c, core::workload_action::scale_to_zero);
    EXPECT(r.has_value(), "scale_to_zero: " + (r ? std::string() : r.error()));
  }
  EXPECT(co_await eventually([&] { return observe().target_scaled_to_zero; }), "target scaled to zero");
  // observe() sees the controller's own write at once (it does not wait for the cache); the
  // cache reaches it when the watch event arrives.
  EXPECT(co_await eventually([&] { return at(deployments->get("demo", "podinfo"), {"spec", "replicas"}) == 0; }),
         "target replicas 0");
  EXPECT(observe().target_revision == first_revision, "scaling does not change the revision");

  // A new image: a new revision.
  w->sim->kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  EXPECT(co_await eventually([&] { return observe().target_revision != first_revision; }), "set image changes the revision");
  const std::string second_revision = observe().target_revision;
  EXPECT(observe().primary_matches_target == false, "the primary no longer runs the target's template");

  // scale_from_zero: no autoscaler, so the primary's replicas.
  {
    auto r = co_await ctl->apply(c, core::workload_action::scale_from_zero);
    EXPECT(r.has_value(), "scale_from_zero: " + (r ? std::string() : r.error()));
  }
  EXPECT(co_await eventually([&] { return at(deployments->get("demo", "podinfo"), {"spec", "replicas"}) == 2; }),
         "target scaled up to the primary's 2");
  EXPECT(co_await eventually([&] { return observe().canary.is_ready(); }), "canary becomes ready: " + observe().canary.message);
  EXPECT(!observe().target_scaled_to_zero, "target not at zero");

  // promote -> the primary runs the new image and matches the target again.
  {
    auto r = co_await ctl->apply(c, core::workload_action::promote);
    EXPECT(r.has_value(), "promote: " + (r ? std::string() : r.error()));
  }
  EXPECT(co_await eventually([&] {
           return at(deployments->get("demo", "podinfo-primary"), {"spec", "template", "spec", "containers", "0", "image"}) ==
                  "ghcr.io/stefanprodan/podinfo:6.0.1";
         }),
         "the primary runs the new image");
  EXPECT(at(deployments->get("demo", "podinfo-primary"), {"spec", "selector", "matchLabels", "app"}) == "podinfo-primary",
         "promote keeps the primary selector");
  EXPECT(co_await eventually([&] { return observe().primary.is_ready() && observe().primary_matches_target == true; }),
         "promoted primary ready and matching: " + observe().primary.message);

  // ConfigMap tracking: a referenced ConfigMap gets checksummed and a -primary copy on promote,
  // and the primary's reference is renamed.
  w->sim->kubectl_ok({"-n", "demo", "create", "configmap", "podinfo-config", "--from-literal=color=blue"});
  EXPECT(co_await eventually([&] { return configmaps->get("demo", "podinfo-config") != nullptr; }), "configmap cached");
  w->sim->kubectl_ok({"-n", "demo", "patch", "deployment", "podinfo", "--type=json", "-p",
                      R"([{"op":"add","path":"/spec/template/spec/containers/0/envFrom","value":[{"configMapRef":{"name":"podinfo-config"}}]}])"});
  EXPECT(co_await eventually([&] { return observe().tracked_configs.count("configmap/podinfo-config") == 1; }),
         "the configmap is tracked");
  const std::string checksum = observe().tracked_configs["configmap/podinfo-config"];
  EXPECT(checksum.size() == 16, "Flagger checksum: " + checksum);
  EXPECT(observe().target_revision != second_revision, "the envFrom changes the revision");
  {
    auto r = co_await ctl->apply(c, core::workload_action::promote);
    EXPECT(r.has_value(), "promote with config: " + (r ? std::string() : r.error()));
  }
  EXPECT(co_await eventually([&] { return configmaps->get("demo", "podinfo-config-primary") != nullptr; }),
         "podinfo-config-primary created");
  EXPECT(at(configmaps->get("demo", "podinfo-config-primary"), {"data", "color"}) == "blue", "config copy data");
  EXPECT(at(configmaps->get("demo", "podinfo-config-primary"), {"metadata", "ownerReferences", "0", "kind"}) == "Canary",
         "config copy owner");
  EXPECT(co_await eventually([&] {
           return at(deployments->get("demo", "podinfo-primary"),
                     {"spec", "template", "spec", "containers", "0", "envFrom", "0", "configMapRef", "name"}) ==
                  "podinfo-config-primary";
         }),
         "the primary references the -primary copy");
  // A changed ConfigMap: a new checksum, then promote updates the copy.
  w->sim->kubectl_ok({"-n", "demo", "patch", "configmap", "podinfo-config", "--type=merge", "-p", R"({"data":{"color":"green"}})"});
  EXPECT(co_await eventually([&] { return observe().tracked_configs["configmap/podinfo-config"] != checksum; }),
         "a config change changes the checksum");
  {
    auto r = co_await ctl->apply(c, core::workload_action::promote);
    EXPECT(r.has_value(), "promote after config change");
  }
  EXPECT(co_await eventually([&] {
           return at(configmaps->get("demo", "podinfo-config-primary"), {"data", "color"}) == "green";
         }),
         "the -primary copy follows the promoted config");

  // finalize_target (revertOnDeletion): the target gets the primary's replicas back.
  {
    auto r = co_await ctl->apply(c, core::workload_action::scale_to_zero);
    EXPECT(r.has_value(), "scale_to_zero again");
  }
  EXPECT(co_await eventually([&] { return observe().target_scaled_to_zero; }), "target at zero again");
  {
    auto r = co_await ctl->apply(c, core::workload_action::finalize_target);
    EXPECT(r.has_value(), "finalize_target: " + (r ? std::string() : r.error()));
  }
  EXPECT(co_await eventually([&] { return at(deployments->get("demo", "podinfo"), {"spec", "replicas"}) == 2; }),
         "finalize restores the target's replicas");

  // A missing mandatory config is Flagger's get-query error; a missing optional one is skipped.
  w->sim->kubectl_ok({"-n", "demo", "patch", "deployment", "podinfo", "--type=json", "-p",
                      R"([{"op":"add","path":"/spec/template/spec/containers/0/env","value":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"absent","key":"k","optional":true}}}]}])"});
  EXPECT(co_await eventually([&] {
           return at(deployments->get("demo", "podinfo"), {"spec", "template", "spec", "containers", "0", "env", "0", "name"}) == "X";
         }),
         "optional secret reference cached");
  EXPECT(observe().target_error.empty(), "a missing optional secret is no error: " + observe().target_error);
  EXPECT(observe().tracked_configs.size() == 1, "only the configmap is tracked");
  w->sim->kubectl_ok({"-n", "demo", "patch", "deployment", "podinfo", "--type=json", "-p",
                      R"([{"op":"replace","path":"/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/optional","value":false}])"});
  EXPECT(co_await eventually([&] {
           return observe().target_error == "secret absent.demo get query error: secrets \"absent\" not found";
         }),
         "a missing mandatory secret: " + observe().target_error);
  {
    auto r = co_await ctl->apply(c, core::workload_action::promote);
    EXPECT(r.has_error() && r.error() == "secret absent.demo get query error: secrets \"absent\" not found",
           "promote with a missing mandatory secret fails with the error");
  }
  w->sim->kubectl_ok({"-n", "demo", "patch", "deployment", "podinfo", "--type=json", "-p",
                      R"([{"op":"remove","path":"/spec/template/spec/containers/0/env"}])"});
  EXPECT(co_await eventually([&] { return observe().target_error.empty(); }), "error gone with the reference");

  // No autoscalerRef: the primary scaler needs nothing; pause/resume are no-ops.
  {
    auto r1 = co_await ctl->reconcile_primary_scaler(c, true);
    auto r2 = co_await ctl->apply(c, core::workload_action::pause_target_scaler);
    auto r3 = co_await ctl->apply(c, core::workload_action::resume_target_scaler);
    EXPECT(r1.has_value() && r2.has_value() && r3.has_value(), "scaler actions without autoscalerRef");
  }

  for (k8s::cache* cc : {deployments.get(), configmaps.get(), secrets.get(), hpas.get()}) cc->stop();
  co_await eventually([&] { return running == 0; }, 5s);
}

// Requests that are neither list nor watch: what an action costs.
std::uint64_t writes_and_gets(const k8s::api_client& c) {
  std::uint64_t n = 0;
  for (const auto& [key, count] : c.stats().requests) {
    if (key.first != "LIST" && key.first != "WATCH") n += count;
  }
  return n;
}

// An autoscalerRef: the primary HPA, its update on a change, ScaleFromZero from the HPA's
// minReplicas, and actions that find the cluster already as wanted cost no request.
asio::awaitable<void> run_hpa(world* w) {
  auto ex = co_await asio::this_coro::executor;
  k8s::api_client_options co;
  co.timeout = 10s;
  auto client_r = k8s::api_client::create(ex, k8s::load_kubeconfig({w->sim->kubeconfig()}), co);
  REQUIRE_MESSAGE(client_r.has_value(), client_r.error().what());
  auto& client = **client_r;
  auto make_cache = [&](const k8s::resource& r) {
    k8s::watch_options wo;
    wo.res = r;
    wo.namespace_name = "demo";
    return std::make_unique<k8s::cache>(client, wo);
  };
  auto canaries = make_cache(canaryd::resources::canaries);
  auto deployments = make_cache(canaryd::resources::deployments);
  auto services = make_cache(canaryd::resources::services);
  auto configmaps = make_cache(canaryd::resources::configmaps);
  auto secrets = make_cache(canaryd::resources::secrets);
  auto hpas = make_cache(canaryd::resources::hpas);
  int running = 0;
  for (k8s::cache* c : {deployments.get(), configmaps.get(), secrets.get(), hpas.get()}) {
    ++running;
    asio::co_spawn(ex, c->run(), [&running](std::exception_ptr e) {
      --running;
      CHECK(!e);
    });
  }
  for (k8s::cache* c : {deployments.get(), configmaps.get(), secrets.get(), hpas.get()}) {
    REQUIRE(co_await c->wait_synced(10s));
  }
  auto metric_templates = make_cache(canaryd::resources::metric_templates);  // not run: unused here
  auto daemonsets = make_cache(canaryd::resources::daemonsets);              // not run: unused here
  auto statefulsets = make_cache(canaryd::resources::statefulsets);          // not run: unused here
  canaryd::cluster k{client,          *canaries, *deployments, *services,   *configmaps, *secrets, *hpas,
                     *metric_templates, *daemonsets, *statefulsets};
  canaryd::options opts;
  auto ctl = canaryd::make_deployment_controller(k, opts);
  const std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"demo","uid":"0b1c2d3e-0000-4000-8000-000000000002"},
    "spec":{"provider":"kubernetes","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
            "autoscalerRef":{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","name":"podinfo"},
            "service":{"port":9898},"analysis":{"interval":"1s","threshold":2,"iterations":3}}})";
  auto decoded = core::decode_canary(text);
  REQUIRE(decoded.ok());
  const core::canary c = decoded.value;

  w->sim->kubectl_ok({"apply", "-f", (canaryd::test::source_root() / "deploy/examples/podinfo.yaml").string()});
  const std::string hpa = R"(apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: podinfo
  namespace: demo
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  minReplicas: 3
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 99}}
)";
  w->sim->kubectl_ok({"apply", "-f", "-"}, hpa);
  EXPECT(co_await eventually([&] { return deployments->get("demo", "podinfo") && hpas->get("demo", "podinfo"); }),
         "target and HPA cached");

  {
    auto r = co_await ctl->apply(c, core::workload_action::initialize_primary);
    EXPECT(r.has_value(), "initialize_primary: " + (r ? std::string() : r.error()));
    auto s = co_await ctl->reconcile_primary_scaler(c, true);
    EXPECT(s.has_value(), "reconcile_primary_scaler(init): " + (s ? std::string() : s.error()));
  }
  EXPECT(co_await eventually([&] { return hpas->get("demo", "podinfo-primary") != nullptr; }), "primary HPA created");
  {
    const auto p = hpas->get("demo", "podinfo-primary");
    EXPECT(at(p, {"spec", "scaleTargetRef", "name"}) == "podinfo-primary", "primary HPA targets the primary");
    EXPECT(at(p, {"spec", "maxReplicas"}) == 4, "primary HPA max");
    EXPECT(at(p, {"metadata", "ownerReferences", "0", "kind"}) == "Canary", "primary HPA owner");
  }
  // A change of the target HPA reaches the primary HPA only with init=false (Promoting).
  w->sim->kubectl_ok({"-n", "demo", "patch", "hpa", "podinfo", "--type=merge", "-p", R"({"spec":{"maxReplicas":6}})"});
  EXPECT(co_await eventually([&] { return at(hpas->get("demo", "podinfo"), {"spec", "maxReplicas"}) == 6; }),
         "HPA change cached");
  {
    auto s = co_await ctl->reconcile_primary_scaler(c, true);
    EXPECT(s.has_value(), "reconcile init again");
  }
  co_await sleep_for(200ms);
  EXPECT(at(hpas->get("demo", "podinfo-primary"), {"spec", "maxReplicas"}) == 4, "init=true leaves the primary HPA");
  {
    auto s = co_await ctl->reconcile_primary_scaler(c, false);
    EXPECT(s.has_value(), "reconcile_primary_scaler(update): " + (s ? std::string() : s.error()));
  }
  EXPECT(co_await eventually([&] { return at(hpas->get("demo", "podinfo-primary"), {"spec", "maxReplicas"}) == 6; }),
         "the primary HPA follows the target HPA");

  // Scale to zero, then from zero: with an autoscaler, the HPA's minReplicas (3 > 1).
  {
    auto r = co_await ctl->apply(c, core::workload_action::scale_to_zero);
    EXPECT(r.has_value(), "scale_to_zero");
  }
  EXPECT(co_await eventually([&] { return at(deployments->get("demo", "podinfo"), {"spec", "replicas"}) == 0; }),
         "target at zero");
  EXPECT(co_await eventually([&] { return hpas->get("demo", "podinfo-primary") != nullptr && deployments->get("demo", "podinfo-primary") != nullptr; }),
         "primary objects cached");

  // Idle: the same actions again, with the cluster already as wanted, cost no request.
  const auto before = writes_and_gets(client);
  {
    auto a = co_await ctl->apply(c, core::workload_action::initialize_primary);
    auto b = co_await ctl->apply(c, core::workload_action::scale_to_zero);
    auto s = co_await ctl->reconcile_primary_scaler(c, false);
    auto p = co_await ctl->apply(c, core::workload_action::pause_target_scaler);
    EXPECT(a.has_value() && b.has_value() && s.has_value() && p.has_value(), "idle actions succeed");
    core::observed_state obs;
    ctl->observe(c, obs, std::chrono::system_clock::now());
  }
  EXPECT(writes_and_gets(client) == before, "idle actions made " + std::to_string(writes_and_gets(client) - before) + " requests");

  {
    auto r = co_await ctl->apply(c, core::workload_action::scale_from_zero);
    EXPECT(r.has_value(), "scale_from_zero");
  }
  EXPECT(co_await eventually([&] { return at(deployments->get("demo", "podinfo"), {"spec", "replicas"}) == 3; }),
         "scale_from_zero uses the HPA's minReplicas");

  // A missing target HPA is Flagger's get-query error.
  w->sim->kubectl_ok({"-n", "demo", "delete", "hpa", "podinfo"});
  EXPECT(co_await eventually([&] { return hpas->get("demo", "podinfo") == nullptr; }), "HPA deletion cached");
  {
    auto s = co_await ctl->reconcile_primary_scaler(c, false);
    EXPECT(s.has_error() && s.error() == "HorizontalPodAutoscaler podinfo.demo get query error: "
                                         "horizontalpodautoscalers.autoscaling \"podinfo\" not found",
           "missing HPA error: " + (s ? std::string() : s.error()));
  }

  for (k8s::cache* cc : {deployments.get(), configmaps.get(), secrets.get(), hpas.get()}) cc->stop();
  co_await eventually([&] { return running == 0; }, 5s);
}

}  // namespace

TEST_CASE("the Deployment controller initializes, scales, promotes and tracks configs on kubesim") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  world w;
  w.sim = &sim;
  asio::io_context io;
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, run(&w), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(120s);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  if (failure) std::rethrow_exception(failure);
  for (const auto& f : w.failures) FAIL_CHECK(f);
  CHECK(w.failures.empty());
}

TEST_CASE("the Deployment controller keeps a primary HPA, scales from the HPA minimum and is free when idle") {
  canaryd::log::set_level(canaryd::log::level::warn);
  kubesim_instance sim;
  world w;
  w.sim = &sim;
  asio::io_context io;
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, run_hpa(&w), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(120s);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  if (failure) std::rethrow_exception(failure);
  for (const auto& f : w.failures) FAIL_CHECK(f);
  CHECK(w.failures.empty());
}
