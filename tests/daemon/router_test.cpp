// The Kubernetes Service router and the `kubernetes` mesh router against the real kubesim
// binary: Services created with Flagger's selectors, idle reconciles that write nothing
// (counted by kubesim's /kubesim/stats), a user's apex Service taken over, and the apex selector
// restored on finalize.
//
// Each TEST_CASE starts its own kubesim and runs a fresh io_context; the test bodies are free
// coroutines whose state lives in the TEST_CASE frame.
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
#include "daemon/cluster.hpp"
#include "daemon/options.hpp"
#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"
#include "k8s/config.hpp"
#include "k8s/watch.hpp"
#include "mesh/router.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
namespace k8s = canaryd::k8s;
namespace core = canaryd::core;
using canaryd::test::kubesim_instance;
using namespace std::chrono_literals;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

template <class Pred>
asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    co_await sleep_for(5ms);
  }
  co_return true;
}

template <class Body>
void run_io(asio::io_context& io, Body body, std::chrono::seconds limit = 60s) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(limit);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  if (failure) std::rethrow_exception(failure);
}

const char* const podinfo_yaml = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports:
        - name: http
          containerPort: 9898
        - name: http-metrics
          containerPort: 9797
)";

const char* const canary_yaml = R"(apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: default
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 80
    targetPort: 9898
    portDiscovery: true
    apex:
      labels:
        team: web
  analysis:
    interval: 1s
    threshold: 2
    iterations: 3
)";

// A user's own Service named like the apex, created before the Canary.
const char* const user_service_yaml = R"(apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: default
  labels:
    owner: user
spec:
  type: ClusterIP
  selector:
    app: podinfo
  ports:
  - name: http
    port: 80
    targetPort: 9898
)";

// The world of one test: kubesim with the Flagger CRDs, podinfo and its Canary, a client, the
// caches the routers read, and the routers.
struct world {
  kubesim_instance sim;
  canaryd::options opts;

  explicit world(bool user_apex) {
    sim.kubectl_ok({"apply", "-f", (canaryd::test::source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
    sim.kubectl_ok({"apply", "-f", "-"}, podinfo_yaml);
    if (user_apex) sim.kubectl_ok({"apply", "-f", "-"}, user_service_yaml);
    sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml);
  }
};

struct outcome {
  std::string failure;  // the first check that failed, "" if all passed
};

#define EXPECT(cond)                                                \
  do {                                                              \
    if (!(cond)) {                                                  \
      if (out->failure.empty()) out->failure = "failed: " #cond;    \
      co_return;                                                    \
    }                                                               \
  } while (0)

std::int64_t writes(const json::value& stats) {
  std::int64_t n = 0;
  const auto& by_verb = stats.at("by_verb").as_object();
  for (const char* verb : {"create", "update", "patch", "delete", "deletecollection"}) {
    if (auto* v = by_verb.if_contains(verb)) n += v->to_number<std::int64_t>();
  }
  return n;
}

asio::awaitable<std::int64_t> write_count(k8s::api_client& c) {
  auto r = co_await c.request("GET", "/kubesim/stats");
  if (!r) co_return -1;
  co_return writes(json::parse(r->body));
}

json::value service_json(k8s::cache& services, const char* name) {
  auto o = services.get("default", name);
  return o ? o->to_value() : json::value();
}

std::string selector_of(const json::value& svc, const char* key) {
  if (!svc.is_object()) return "<missing>";
  const auto* sel = svc.as_object().at("spec").as_object().if_contains("selector");
  if (!sel || !sel->as_object().contains(key)) return "<none>";
  return std::string(sel->as_object().at(key).as_string());
}

// One scenario: initialize, reconcile, idle reconcile, the mesh router, then finalize.
asio::awaitable<void> scenario(world* w, bool user_apex, outcome* out) {
  auto ex = co_await asio::this_coro::executor;
  k8s::api_client_options co;
  co.timeout = 10s;
  auto created = k8s::api_client::create(ex, k8s::load_kubeconfig({w->sim.kubeconfig()}), co);
  EXPECT(created.has_value());
  auto& client = **created;

  auto make_cache = [&](const k8s::resource& r) {
    k8s::watch_options wo;
    wo.res = r;
    return std::make_unique<k8s::cache>(client, wo);
  };
  auto canaries = make_cache(canaryd::resources::canaries);
  auto deployments = make_cache(canaryd::resources::deployments);
  auto services = make_cache(canaryd::resources::services);
  auto configmaps = make_cache(canaryd::resources::configmaps);
  auto secrets = make_cache(canaryd::resources::secrets);
  auto hpas = make_cache(canaryd::resources::hpas);
  int running = 0;
  for (auto* c : {canaries.get(), deployments.get(), services.get()}) {
    ++running;
    asio::co_spawn(ex, c->run(), [&running](std::exception_ptr) { --running; });
  }
  EXPECT(co_await canaries->wait_synced(10s));
  EXPECT(co_await deployments->wait_synced(10s));
  EXPECT(co_await services->wait_synced(10s));
  auto metric_templates = make_cache(canaryd::resources::metric_templates);  // not run: unused here

  auto canary_obj = canaries->get("default", "podinfo");
  EXPECT(canary_obj != nullptr);
  auto decoded = core::decode_canary(canary_obj->json());
  EXPECT(decoded.ok());
  const core::canary c = decoded.value;

  auto daemonsets = make_cache(canaryd::resources::daemonsets);              // not run: unused here
  auto statefulsets = make_cache(canaryd::resources::statefulsets);          // not run: unused here
  canaryd::router_context rk{client, *deployments, *daemonsets, *statefulsets, *services, w->opts.namespace_, w->opts.selector_labels, nullptr, true, {}, {}};
  auto router = canaryd::make_service_router(rk);
  auto before = co_await write_count(client);
  EXPECT(before >= 0);

  // Initialize + reconcile: three Services (or two created and the user's apex taken over).
  auto init = co_await router->initialize(c);
  EXPECT(init.has_value());
  auto rec = co_await router->reconcile(c);
  EXPECT(rec.has_value());
  auto after_init = co_await write_count(client);
  EXPECT(after_init - before == 3);  // 2 creates + (1 create | 1 update)

  EXPECT(co_await eventually([&] {
    return selector_of(service_json(*services, "podinfo"), "app") == "podinfo-primary" &&
           services->get("default", "podinfo-primary") && services->get("default", "podinfo-canary");
  }));
  auto apex = service_json(*services, "podinfo");
  auto primary = service_json(*services, "podinfo-primary");
  auto canary_svc = service_json(*services, "podinfo-canary");
  EXPECT(selector_of(primary, "app") == "podinfo-primary");
  EXPECT(selector_of(canary_svc, "app") == "podinfo");
  // Ports: http 80 -> 9898 and the discovered http-metrics 9797.
  const auto& ports = canary_svc.at("spec").at("ports").as_array();
  EXPECT(ports.size() == 2);
  EXPECT(ports[0].at("name") == "http" && ports[0].at("port") == 80 && ports[0].at("targetPort") == 9898);
  EXPECT(ports[1].at("name") == "http-metrics" && ports[1].at("port") == 9797);
  EXPECT(canary_svc.at("metadata").at("annotations").at("kustomize.toolkit.fluxcd.io/reconcile") == "disabled");
  EXPECT(canary_svc.at("metadata").at("ownerReferences").at(0).at("uid") == json::value(c.metadata.uid));
  if (user_apex) {
    // Taken over: the user's labels stay, no ownerReference is added, the clusterIP is kept.
    EXPECT(apex.at("metadata").at("labels").at("owner") == "user");
    EXPECT(!apex.at("metadata").as_object().contains("ownerReferences"));
  } else {
    EXPECT(apex.at("metadata").at("labels").at("team") == "web");
    EXPECT(apex.at("metadata").at("labels").at("app") == "podinfo");
  }

  // Idle: the caches have caught up, so another pass makes no request at all.
  auto idle_before = co_await write_count(client);
  for (int i = 0; i < 3; ++i) {
    EXPECT((co_await router->initialize(c)).has_value());
    EXPECT((co_await router->reconcile(c)).has_value());
  }
  EXPECT(co_await write_count(client) == idle_before);

  // The kubernetes provider: no weights; routes as Flagger's NopRouter reports them.
  auto mesh = canaryd::make_mesh_router("kubernetes", rk);
  EXPECT(mesh != nullptr);
  EXPECT(canaryd::make_mesh_router("linkerd", rk) == nullptr);
  EXPECT((co_await mesh->reconcile(c)).has_value());
  const core::traffic_routes all_canary{0, 100, false};
  const core::set_routes to_canary{all_canary, {}};  // named: GCC 12 double-destroys braced temporaries in co_await
  EXPECT((co_await mesh->set_routes(c, to_canary)).has_value());
  core::observed_state obs;
  mesh->observe(c, obs);
  EXPECT(obs.routes && *obs.routes == (core::traffic_routes{100, 0, false}));
  core::canary iterating = c;
  iterating.status.iterations = 2;
  mesh->observe(iterating, obs);
  EXPECT(obs.routes && *obs.routes == (core::traffic_routes{0, 100, false}));
  EXPECT(co_await write_count(client) == idle_before);  // the mesh router wrote nothing
  EXPECT(selector_of(service_json(*services, "podinfo"), "app") == "podinfo-primary");

  // Finalize: a user's apex selects the target's pods again; an owned apex is left to the GC.
  auto fin = co_await router->finalize(c);
  EXPECT(fin.has_value());
  EXPECT((co_await mesh->finalize(c)).has_value());
  if (user_apex) {
    EXPECT(co_await eventually([&] { return selector_of(service_json(*services, "podinfo"), "app") == "podinfo"; }));
    EXPECT(co_await write_count(client) == idle_before + 1);
    auto again = co_await router->finalize(c);  // already restored: no write
    EXPECT(again.has_value());
    EXPECT(co_await write_count(client) == idle_before + 1);
  } else {
    EXPECT(co_await write_count(client) == idle_before);
    EXPECT(selector_of(service_json(*services, "podinfo"), "app") == "podinfo-primary");
  }

  for (auto* cache : {canaries.get(), deployments.get(), services.get()}) cache->stop();
  co_await eventually([&] { return running == 0; });
}

asio::awaitable<void> error_scenario(kubesim_instance* sim, canaryd::options* opts, outcome* out) {
  auto ex = co_await asio::this_coro::executor;
  auto created = k8s::api_client::create(ex, k8s::load_kubeconfig({sim->kubeconfig()}));
  EXPECT(created.has_value());
  auto& client = **created;
  auto make_cache = [&](const k8s::resource& r) {
    k8s::watch_options wo;
    wo.res = r;
    return std::make_unique<k8s::cache>(client, wo);
  };
  auto canaries = make_cache(canaryd::resources::canaries);
  auto deployments = make_cache(canaryd::resources::deployments);
  auto services = make_cache(canaryd::resources::services);
  auto configmaps = make_cache(canaryd::resources::configmaps);
  auto secrets = make_cache(canaryd::resources::secrets);
  auto hpas = make_cache(canaryd::resources::hpas);
  int running = 0;
  for (auto* c : {deployments.get(), services.get()}) {
    ++running;
    asio::co_spawn(ex, c->run(), [&running](std::exception_ptr) { --running; });
  }
  EXPECT(co_await deployments->wait_synced(10s));
  EXPECT(co_await services->wait_synced(10s));
  auto metric_templates = make_cache(canaryd::resources::metric_templates);  // not run: unused here
  auto daemonsets = make_cache(canaryd::resources::daemonsets);              // not run: unused here
  auto statefulsets = make_cache(canaryd::resources::statefulsets);          // not run: unused here
  canaryd::router_context rk{client, *deployments, *daemonsets, *statefulsets, *services, opts->namespace_, opts->selector_labels, nullptr, true, {}, {}};
  auto router = canaryd::make_service_router(rk);
  auto decoded = core::decode_canary(R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"default","uid":"u"},
    "spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},"service":{"port":80},
      "analysis":{"interval":"1s","threshold":2,"iterations":3}}})");
  EXPECT(decoded.ok());
  auto missing = co_await router->initialize(decoded.value);
  EXPECT(missing.has_error());
  EXPECT(missing.error() == "deployment podinfo.default get query error: deployments.apps \"podinfo\" not found");

  const char* unlabelled = R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"podinfo","namespace":"default"},
    "spec":{"selector":{"matchLabels":{"tier":"web"}},"template":{"metadata":{"labels":{"tier":"web"}},
    "spec":{"containers":[{"name":"c","image":"x"}]}}}})";
  const std::string body = unlabelled;
  EXPECT((co_await client.create(canaryd::resources::deployments, "default", body)).has_value());
  EXPECT(co_await eventually([&] { return deployments->get("default", "podinfo") != nullptr; }));
  auto before = co_await write_count(client);
  auto bad = co_await router->reconcile(decoded.value);
  EXPECT(bad.has_error());
  EXPECT(bad.error() ==
         "deployment podinfo.default spec.selector.matchLabels must contain one of [app name app.kubernetes.io/name]");
  auto fin = co_await router->finalize(decoded.value);
  EXPECT(fin.has_error());
  EXPECT(co_await write_count(client) == before);
  for (auto* cache : {deployments.get(), services.get()}) cache->stop();
  co_await eventually([&] { return running == 0; });
}

}  // namespace

TEST_CASE("initialize and reconcile create the apex, primary and canary Services and an idle pass writes nothing") {
  world w(false);
  asio::io_context io;
  outcome out;
  run_io(io, scenario(&w, false, &out));
  CHECK_MESSAGE(out.failure.empty(), out.failure);
}

TEST_CASE("a user's apex Service is taken over and finalize points it back at the target's pods") {
  world w(true);
  asio::io_context io;
  outcome out;
  run_io(io, scenario(&w, true, &out));
  CHECK_MESSAGE(out.failure.empty(), out.failure);
}

TEST_CASE("a missing target or a target without a selector label is a clear error, not a write") {
  kubesim_instance sim;
  sim.kubectl_ok({"apply", "-f", (canaryd::test::source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
  asio::io_context io;
  outcome out_storage;
  outcome* out = &out_storage;
  canaryd::options opts;
  run_io(io, error_scenario(&sim, &opts, out));
  CHECK_MESSAGE(out->failure.empty(), out->failure);
}
