// The traffic emulator on kubesim's real store, in process: the world follows object changes
// (workload annotations, VirtualServices applied after their CRD, deleted pods), and a real
// Prometheus child scraping the emulator's /metrics computes Flagger's builtin queries.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <filesystem>
#include <map>
#include <optional>

#include "k8s/http_client.hpp"
#include "sim/api/store.hpp"
#include "sim/world/emulator.hpp"
#include "sim/world/prometheus.hpp"
#include "sim/world/traffic.hpp"

namespace json = boost::json;
namespace asio = boost::asio;
namespace http = canaryd::http;
using namespace kubesim;
using namespace kubesim::world;
using namespace std::chrono_literals;

namespace {

json::object parse(std::string_view text) { return json::parse(text).as_object(); }

const char* const virtual_service_crd = R"({
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "virtualservices.networking.istio.io"},
  "spec": {"group": "networking.istio.io", "scope": "Namespaced",
    "names": {"kind": "VirtualService", "listKind": "VirtualServiceList", "plural": "virtualservices", "singular": "virtualservice"},
    "versions": [
      {"name": "v1", "served": true, "storage": false,
       "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}},
      {"name": "v1beta1", "served": true, "storage": true,
       "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})";

// A store with namespace `test` and Flagger's objects for canary `podinfo` (Istio provider):
// Services podinfo, podinfo-primary, podinfo-canary; Deployments podinfo-primary (2 ready
// pods, latency 100 ms) and podinfo (1 ready pod, error rate 0.5), each with its ReplicaSet.
struct cluster {
  std::unique_ptr<store> s = make_store();

  const resource_info& res(std::string_view group, std::string_view version, std::string_view resource) {
    const auto* r = s->find(group, version, resource);
    REQUIRE_MESSAGE(r, group << "/" << version << "/" << resource);
    return *r;
  }
  object_ptr create(std::string_view group, std::string_view version, std::string_view resource, std::string_view ns,
                    json::object o) {
    auto r = s->create(res(group, version, resource), ns, std::move(o));
    REQUIRE_MESSAGE(r, (r ? "" : r.error().message));
    return *r;
  }
  static json::array owner(const object_ptr& o) {
    return json::array{json::object{{"apiVersion", o->at("apiVersion")},
                                    {"kind", o->at("kind")},
                                    {"name", o->at("metadata").at("name")},
                                    {"uid", o->at("metadata").at("uid")},
                                    {"controller", true}}};
  }

  void workload(const std::string& name, const std::string& hash, int pods, std::string_view annotations) {
    auto d = parse(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{},
      "spec":{"replicas":1,"selector":{"matchLabels":{}},"template":{"metadata":{"labels":{}},
      "spec":{"containers":[{"name":"app","image":"podinfo:6.0.0"}]}}}})");
    d["metadata"].as_object()["name"] = name;
    d["spec"].as_object()["selector"].as_object()["matchLabels"] = json::object{{"app", name}};
    auto& tmeta = d["spec"].as_object()["template"].as_object()["metadata"].as_object();
    tmeta["labels"] = json::object{{"app", name}};
    tmeta["annotations"] = parse(annotations);
    auto dep = create("apps", "v1", "deployments", "test", d);

    auto rs = parse(R"({"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{},
      "spec":{"replicas":1,"selector":{"matchLabels":{}},"template":{"metadata":{"labels":{}},
      "spec":{"containers":[{"name":"app","image":"podinfo:6.0.0"}]}}}})");
    rs["metadata"].as_object()["name"] = name + "-" + hash;
    rs["metadata"].as_object()["ownerReferences"] = owner(dep);
    rs["spec"].as_object()["selector"].as_object()["matchLabels"] = json::object{{"app", name}};
    rs["spec"].as_object()["template"].as_object()["metadata"].as_object()["labels"] = json::object{{"app", name}};
    auto rso = create("apps", "v1", "replicasets", "test", rs);

    for (int i = 0; i < pods; ++i) {
      auto p = parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{},"spec":{"containers":[{"name":"app","image":"podinfo:6.0.0"}]}})");
      std::string pod_name = name + "-" + hash + "-" + std::string("abcde").substr(0, 4) + std::to_string(i);
      p["metadata"].as_object()["name"] = pod_name;
      p["metadata"].as_object()["labels"] = json::object{{"app", name}};
      p["metadata"].as_object()["ownerReferences"] = owner(rso);
      auto created = create("", "v1", "pods", "test", p);
      json::object st = *created;
      st["status"] = parse(R"({"phase":"Running","conditions":[{"type":"Ready","status":"True"}]})");
      auto u = s->update(res("", "v1", "pods"), "test", pod_name, st, true);
      REQUIRE_MESSAGE(u, (u ? "" : u.error().message));
    }
  }

  void service(const std::string& name, const std::string& app) {
    auto o = parse(R"({"apiVersion":"v1","kind":"Service","metadata":{},"spec":{"ports":[{"port":9898}]}})");
    o["metadata"].as_object()["name"] = name;
    o["spec"].as_object()["selector"] = json::object{{"app", app}};
    create("", "v1", "services", "test", o);
  }

  void virtual_service(std::string_view version, int primary, int canary) {
    auto o = parse(R"({"kind":"VirtualService","metadata":{"name":"podinfo"},
      "spec":{"hosts":["podinfo"],"http":[{"route":[{"destination":{"host":"podinfo-primary"}},{"destination":{"host":"podinfo-canary"}}]}]}})");
    auto& route = o["spec"].as_object()["http"].as_array()[0].as_object()["route"].as_array();
    route[0].as_object()["weight"] = primary;
    route[1].as_object()["weight"] = canary;
    o["apiVersion"] = "networking.istio.io/" + std::string(version);
    const auto& r = res("networking.istio.io", version, "virtualservices");
    if (auto existing = s->get(r, "test", "podinfo")) {
      json::object u = **existing;
      u["spec"] = o["spec"];
      REQUIRE(s->update(r, "test", "podinfo", u, false));
    } else {
      REQUIRE(s->create(r, "test", o));
    }
  }

  cluster() {
    create("", "v1", "namespaces", "", parse(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"test"}})"));
    service("podinfo", "podinfo-primary");
    service("podinfo-primary", "podinfo-primary");
    service("podinfo-canary", "podinfo");
    workload("podinfo-primary", "5d8f9c7b6", 2, R"({"kubesim.dev/latency-ms":"100"})");
    workload("podinfo", "7c9b8d6f5", 1, R"({"kubesim.dev/error-rate":"0.5","kubesim.dev/latency-ms":"20"})");
  }
};

void run_seconds(traffic_world& w, double seconds) {
  for (double t = 0; t < seconds - 1e-9; t += 0.25) w.tick(0.25);
}

}  // namespace

TEST_CASE("the traffic world follows the store: Services, then a VirtualService applied after its CRD") {
  cluster c;
  auto w = traffic_world::create(*c.s);
  run_seconds(*w, 10);
  // No VirtualService yet: each Service sends its own 20/s to the pods it selects.
  CHECK(w->counters().requests("destination", "test", "podinfo-primary") == 400);
  CHECK(w->counters().requests("destination", "test", "podinfo") == 200);
  CHECK(w->counters().requests("destination", "test", "podinfo", "500") == 100);

  c.create("apiextensions.k8s.io", "v1", "customresourcedefinitions", "", parse(virtual_service_crd));
  c.virtual_service("v1beta1", 80, 20);
  auto before_primary = w->counters().requests("destination", "test", "podinfo-primary");
  auto before_canary = w->counters().requests("destination", "test", "podinfo");
  auto rebuilds = w->plan_rebuilds();
  run_seconds(*w, 10);
  CHECK(w->plan_rebuilds() == rebuilds + 1);
  REQUIRE(w->plan().flows.size() == 1);
  CHECK(w->plan().flows[0].virtual_service == "test/podinfo");
  CHECK(w->counters().requests("destination", "test", "podinfo-primary") - before_primary == 160);
  CHECK(w->counters().requests("destination", "test", "podinfo") - before_canary == 40);

  SUBCASE("a weight change through another served version takes effect on the next tick") {
    c.virtual_service("v1", 50, 50);
    before_canary = w->counters().requests("destination", "test", "podinfo");
    run_seconds(*w, 10);
    CHECK(w->counters().requests("destination", "test", "podinfo") - before_canary == 100);
  }
  SUBCASE("the canary's behaviour follows its current pod template") {
    const auto& deps = c.res("apps", "v1", "deployments");
    json::object d = **c.s->get(deps, "test", "podinfo");
    d["spec"].as_object()["template"].as_object()["metadata"].as_object()["annotations"] =
        parse(R"({"kubesim.dev/error-rate":"0"})");
    REQUIRE(c.s->update(deps, "test", "podinfo", d, false));
    auto errors = w->counters().requests("destination", "test", "podinfo", "500");
    run_seconds(*w, 10);
    CHECK(w->counters().requests("destination", "test", "podinfo", "500") == errors);
    CHECK(w->plan().workloads.at("test/podinfo").error_rate == 0);
  }
  SUBCASE("a deleted pod's series leave /metrics and its share moves to the others") {
    auto text = w->metrics_text();
    CHECK(text.find("kubernetes_pod_name=\"podinfo-primary-5d8f9c7b6-abcd1\"") != std::string::npos);
    REQUIRE(c.s->remove(c.res("", "v1", "pods"), "test", "podinfo-primary-5d8f9c7b6-abcd1"));
    auto other = w->counters().pod_requests("test", "podinfo-primary-5d8f9c7b6-abcd0");
    run_seconds(*w, 10);
    text = w->metrics_text();
    CHECK(text.find("kubernetes_pod_name=\"podinfo-primary-5d8f9c7b6-abcd1\"") == std::string::npos);
    CHECK(w->counters().pod_requests("test", "podinfo-primary-5d8f9c7b6-abcd0") - other == 160);
  }
  auto text = w->metrics_text();
  CHECK(text.find("kubesim_objects ") != std::string::npos);
  CHECK(text.find("kubesim_resource_objects{group=\"apps\",resource=\"deployments\"} 2\n") != std::string::npos);
  CHECK(text.find("kubesim_traffic_flows 1\n") != std::string::npos);
}

namespace {

struct prom_results {
  std::string url;
  int pid = -1;
  std::string failure;
  std::map<std::string, double> rps_by_workload;
  std::optional<double> canary_success_rate, primary_p99_ms, kubernetes_success_rate, primary_kubernetes_success_rate;
  bool stopped = false;
};

// The first sample of an instant query, by the value of `label` (or "" for a single one).
asio::awaitable<std::map<std::string, double>> query(http::client& client, std::string promql, std::string label) {
  http::request req;
  req.target = "/api/v1/query?query=" + http::percent_encode(promql);
  auto res = co_await client.send(std::move(req), 5s);
  std::map<std::string, double> out;
  if (!res || res->status != 200) co_return out;
  auto v = json::parse(res->body);
  for (const auto& sample : v.at("data").at("result").as_array()) {
    std::string key;
    if (!label.empty())
      if (const auto* l = sample.at("metric").as_object().if_contains(label)) key = std::string(l->as_string());
    out[key] = std::stod(std::string(sample.at("value").as_array()[1].as_string()));
  }
  co_return out;
}

std::string flagger_success_rate(std::string_view metric, std::string_view selector, std::string_view non5xx) {
  std::string sel(selector);
  return "sum(rate(" + std::string(metric) + "{" + sel + "," + std::string(non5xx) + "}[1m])) / sum(rate(" +
         std::string(metric) + "{" + sel + "}[1m])) * 100";
}

asio::awaitable<void> prometheus_scenario(traffic_emulator* em, prom_results* out) {
  auto ex = co_await asio::this_coro::executor;
  prometheus_options po;
  po.scrape_target = em->metrics_address();
  auto prom = co_await start_prometheus(ex, po);
  out->url = prom->url();
  out->pid = prom->pid();
  auto client = http::make_client(ex, *http::parse_origin(prom->url()));
  if (!client) throw std::runtime_error("no HTTP client: " + client.error().message());
  // Let 15 s of scrapes accumulate, then read rates over them.
  asio::steady_timer t(ex);
  t.expires_after(15s);
  co_await t.async_wait(asio::use_awaitable);
  out->rps_by_workload = co_await query(
      **client, "sum by (destination_workload) (rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"test\"}[15s]))",
      "destination_workload");
  // Flagger's builtin Istio queries (flagger-behaviour.md §6.1) for target podinfo in test.
  auto canary = co_await query(**client,
                               flagger_success_rate("istio_requests_total",
                                                    "reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo\"",
                                                    "response_code!~\"5.*\""),
                               "");
  if (canary.contains("")) out->canary_success_rate = canary[""];
  auto p99 = co_await query(**client,
                            "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\","
                            "destination_workload_namespace=\"test\",destination_workload=~\"podinfo-primary\"}[1m])) by (le))",
                            "");
  if (p99.contains("")) out->primary_p99_ms = p99[""];
  // The Kubernetes provider's query reads the app's own histogram by pod name.
  auto k8s = co_await query(**client,
                            flagger_success_rate("http_request_duration_seconds_count",
                                                 "kubernetes_namespace=\"test\",kubernetes_pod_name=~\"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"",
                                                 "status!~\"5.*\""),
                            "");
  if (k8s.contains("")) out->kubernetes_success_rate = k8s[""];
  auto k8s_primary = co_await query(
      **client,
      flagger_success_rate("http_request_duration_seconds_count",
                           "kubernetes_namespace=\"test\",kubernetes_pod_name=~\"podinfo-primary-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"",
                           "status!~\"5.*\""),
      "");
  if (k8s_primary.contains("")) out->primary_kubernetes_success_rate = k8s_primary[""];
  (*client)->shutdown();
  co_await prom->stop();
  out->stopped = !prom->running();
}

}  // namespace

TEST_CASE("a real Prometheus scraping the emulator sees the VirtualService weights and error share") {
  if (::access("/usr/bin/prometheus", X_OK) != 0) {
    MESSAGE("skipped: /usr/bin/prometheus is missing (scripts/setup installs it)");
    return;
  }
  cluster c;
  c.create("apiextensions.k8s.io", "v1", "customresourcedefinitions", "", parse(virtual_service_crd));
  c.virtual_service("v1beta1", 80, 20);
  asio::io_context ioc;
  auto em = start_traffic_emulator(ioc.get_executor(), *c.s);
  prom_results r;
  asio::co_spawn(ioc, prometheus_scenario(em.get(), &r), [&](std::exception_ptr e) {
    if (e) try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        r.failure = ex.what();
      }
    em->stop();
  });
  ioc.run_for(120s);
  REQUIRE_MESSAGE(r.failure.empty(), r.failure);
  INFO("prometheus at " << r.url);
  double primary = r.rps_by_workload["podinfo-primary"], canary = r.rps_by_workload["podinfo"];
  MESSAGE("prometheus: primary " << primary << "/s, canary " << canary << "/s, canary success "
                                 << r.canary_success_rate.value_or(-1) << "%, primary p99 " << r.primary_p99_ms.value_or(-1)
                                 << " ms, kubernetes success " << r.kubernetes_success_rate.value_or(-1) << "%");
  CHECK(primary == doctest::Approx(16).epsilon(0.05));
  CHECK(canary == doctest::Approx(4).epsilon(0.05));
  CHECK(primary / (primary + canary) == doctest::Approx(0.8).epsilon(0.05));
  REQUIRE(r.canary_success_rate);
  CHECK(*r.canary_success_rate == doctest::Approx(50).epsilon(0.05));
  REQUIRE(r.primary_p99_ms);
  CHECK(*r.primary_p99_ms >= 99);
  CHECK(*r.primary_p99_ms <= 100);
  REQUIRE(r.kubernetes_success_rate);
  CHECK(*r.kubernetes_success_rate == doctest::Approx(50).epsilon(0.05));
  REQUIRE(r.primary_kubernetes_success_rate);
  CHECK(*r.primary_kubernetes_success_rate == doctest::Approx(100));
  CHECK(r.stopped);
  CHECK(::kill(r.pid, 0) != 0);  // reaped and gone
}

TEST_CASE("a Prometheus that cannot start is a clear startup error") {
  asio::io_context ioc;
  std::string failure;
  auto attempt = [&](prometheus_options po) {
    failure.clear();
    asio::co_spawn(ioc, start_prometheus(ioc.get_executor(), po), [&](std::exception_ptr e, std::unique_ptr<prometheus_child>) {
      if (e) try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          failure = ex.what();
        }
    });
    ioc.restart();
    ioc.run_for(30s);
  };
  prometheus_options po;
  po.scrape_target = "127.0.0.1:9";
  po.binary = "/nonexistent/prometheus";
  attempt(po);
  CHECK(failure.find("/nonexistent/prometheus is not an executable") != std::string::npos);
  po.binary = "/bin/false";
  attempt(po);
  CHECK(failure.find("exited before it was ready (exit code 1)") != std::string::npos);
  if (::access("/usr/bin/prometheus", X_OK) == 0) {
    // A target that never answers: `up` stays 0 until the deadline.
    po.binary = "/usr/bin/prometheus";
    po.ready_timeout = 4s;
    attempt(po);
    CHECK(failure.find("was not ready (no successful scrape of 127.0.0.1:9) within 4s") != std::string::npos);
  }
  CHECK(prometheus_config(po).find("targets: [\"127.0.0.1:9\"]") != std::string::npos);
}

TEST_CASE("with no traffic to emulate the plan is not rebuilt until a Service asks for traffic") {
  cluster c;
  auto w = traffic_world::create(*c.s, 0);  // kubesim --default-rps 0, as bench/ runs it
  run_seconds(*w, 2);
  CHECK(w->plan_rebuilds() == 0);
  CHECK(w->plan().flows.empty());
  // A Service annotated with 0 requests/s, as bench/ makes them, changes nothing.
  json::object quiet = parse(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"quiet","namespace":"test",
    "annotations":{"kubesim.dev/rps":"0"}},"spec":{"selector":{"app":"podinfo"},"ports":[{"port":9898}]}})");
  c.create("", "v1", "services", "test", quiet);
  run_seconds(*w, 2);
  CHECK(w->plan_rebuilds() == 0);
  // An annotated Service: the next tick rebuilds and the Service sends its 7/s.
  json::object svc = parse(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"loud","namespace":"test",
    "annotations":{"kubesim.dev/rps":"7"}},"spec":{"selector":{"app":"podinfo"},"ports":[{"port":9898}]}})");
  c.create("", "v1", "services", "test", svc);
  run_seconds(*w, 10);
  CHECK(w->plan_rebuilds() == 1);
  CHECK_FALSE(w->plan().flows.empty());
  CHECK(w->counters().requests("destination", "test", "podinfo") > 0);
}
