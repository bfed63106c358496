// Service targets behind Gateway API end to end (Flagger's ServiceController with the Gateway API
// router, flagger-behaviour.md §4 and §5): the real canaryd, kubesim with the published Gateway
// API CRDs and a real Prometheus, the real canary-loadtester and kubectl. The Canary's target is
// a Service; canaryd copies it to `<svc>-primary` and `<svc>-canary` and shifts the Gateway's
// traffic between the two backends with the HTTPRoute's weights, which the test measures in
// Prometheus by the pods that served it.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <thread>

#include "tests/e2e/harness.hpp"
#include "tests/support/prometheus.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// The Gateway the Canary's gatewayRefs name; kubesim's clients enter through it at 20/s.
const std::string gateway_yaml = R"(apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: kubesim
spec:
  controllerName: kubesim.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway
  namespace: demo
  annotations:
    kubesim.dev/rps: "20"
    kubesim.dev/hostname: www.example.com
spec:
  gatewayClassName: kubesim
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
)";

// A backend Deployment `name` (label app: <name>, two pods); `error_rate` is kubesim's share of
// answers that are 500s.
std::string backend_yaml(const std::string& name, const std::string& error_rate = "0") {
  return "apiVersion: apps/v1\n"
         "kind: Deployment\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "  namespace: demo\n"
         "spec:\n"
         "  replicas: 2\n"
         "  selector:\n"
         "    matchLabels:\n"
         "      app: " + name + "\n"
         "  template:\n"
         "    metadata:\n"
         "      labels:\n"
         "        app: " + name + "\n"
         "      annotations:\n"
         "        kubesim.dev/error-rate: \"" + error_rate + "\"\n"
         "    spec:\n"
         "      containers:\n"
         "      - name: podinfod\n"
         "        image: ghcr.io/stefanprodan/podinfo:6.0.0\n"
         "        ports:\n"
         "        - name: http\n"
         "          containerPort: 9898\n";
}

// The target: the user's Service, which selects the release to try.
const std::string target_service = R"(apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: demo
spec:
  selector:
    app: blue
  ports:
  - name: http
    port: 9898
    targetPort: http
)";

// Answers per second that were 5xx, over the namespace (a Service target's backends are someone
// else's workloads: the built-in queries, which match pods named after the target, see none).
const std::string errors_template = R"(apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: errors
  namespace: demo
spec:
  provider:
    type: prometheus
    address: PROMETHEUS
  query: |
    sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",status=~"5.*"}[{{ interval }}]))
    or on() vector(0)
)";

std::string service_canary(const std::string& provider, const std::string& gate_url) {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: podinfo\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider: " + provider + "\n"
         "  revertOnDeletion: true\n"
         "  targetRef:\n"
         "    apiVersion: v1\n"
         "    kind: Service\n"
         "    name: podinfo\n"
         "  service:\n"
         "    port: 9898\n"
         "    hosts:\n"
         "    - www.example.com\n"
         "    gatewayRefs:\n"
         "    - name: gateway\n"
         "      namespace: demo\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: 2\n"
         "    stepWeight: 25\n"
         "    maxWeight: 50\n"
         "    metrics:\n"
         "    - name: errors\n"
         "      templateRef:\n"
         "        name: errors\n"
         "      thresholdRange:\n"
         "        max: 0.5\n"
         "      interval: 3s\n"
         "    webhooks:\n"
         "    - name: approval\n"
         "      type: confirm-promotion\n"
         "      url: " + gate_url + "/gate/check\n";
}

struct weights {
  int primary = -1, canary = -1;
  bool operator==(const weights&) const = default;
};

// The HTTPRoute's weights of podinfo-primary and podinfo-canary (the weighted rule).
weights route_weights(const kubesim_instance& sim) {
  weights w;
  auto hr = get_json(sim, {"httproutes.v1.gateway.networking.k8s.io", "podinfo"});
  if (hr.is_null()) return w;
  boost::system::error_code ec;
  const auto* refs = hr.find_pointer("/spec/rules/0/backendRefs", ec);
  if (!refs || !refs->is_array()) return w;
  for (const auto& b : refs->as_array()) {
    const auto name = str_at(b, {"name"});
    const int weight = static_cast<int>(b.at("weight").to_number<std::int64_t>());
    if (name == "podinfo-primary") w.primary = weight;
    if (name == "podinfo-canary") w.canary = weight;
  }
  return w;
}

// Requests per second served by each backend Deployment (blue, green, red) over the last 4 s,
// through the Gateway (kubesim runs with --default-rps 0: nothing else sends requests).
std::map<std::string, double> served(const kubesim_instance& sim) {
  auto by_pod = prom_query(sim.prometheus_url(),
                           "sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_count{"
                           "kubernetes_namespace=\"demo\"}[4s]))",
                           "kubernetes_pod_name");
  std::map<std::string, double> out;
  for (const auto& [pod, rate] : by_pod) out[pod.substr(0, pod.find('-'))] += rate;
  return out;
}

double share_of(const std::map<std::string, double>& rates, const std::string& backend) {
  double total = 0;
  for (const auto& [_, r] : rates) total += r;
  auto it = rates.find(backend);
  return total > 0 && it != rates.end() ? it->second / total : 0;
}

std::string text(const std::map<std::string, double>& rates) {
  std::string s;
  for (const auto& [b, r] : rates) s += b + "=" + std::to_string(r) + "/s ";
  return s;
}

std::string selector_of(const kubesim_instance& sim, const std::string& svc) {
  return str_at(get_json(sim, {"service", svc}), {"spec", "selector", "app"});
}

// The rates once `pred` holds for them (re-queried for up to `limit`: a rate window needs a few
// scrapes after a routing change).
std::map<std::string, double> rates_when(const kubesim_instance& sim,
                                         const std::function<bool(const std::map<std::string, double>&)>& pred,
                                         std::chrono::milliseconds limit) {
  std::map<std::string, double> r;
  eventually(
      [&] {
        r = served(sim);
        return pred(r);
      },
      limit);
  return r;
}

void scenario(const std::string& provider) {
  CAPTURE(provider);
  kubesim_options ko;
  ko.prometheus = true;
  ko.extra_args = {"--default-rps", "0"};
  kubesim_instance sim(ko);
  setup_cluster(sim);
  if (!install_published_crds(sim, "gatewayapi")) return;
  loadtester lt;
  sim.kubectl_ok({"apply", "-f", "-"}, gateway_yaml);
  for (std::string b : {"blue", "green"}) sim.kubectl_ok({"apply", "-f", "-"}, backend_yaml(b));
  sim.kubectl_ok({"apply", "-f", "-"}, backend_yaml("red", "1"));
  sim.kubectl_ok({"apply", "-f", "-"}, target_service);
  std::string tmpl = errors_template;
  tmpl.replace(tmpl.find("PROMETHEUS"), 10, sim.prometheus_url());
  sim.kubectl_ok({"apply", "-f", "-"}, tmpl);
  auto d = start_canaryd(sim, {"-mesh-provider", "gatewayapi:v1", "-metrics-server", sim.prometheus_url()});
  sim.kubectl_ok({"apply", "-f", "-"}, service_canary(provider, lt.url()));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo") << "; events:\n" << dump(canary_events(sim, "podinfo")));

  // Initialization: the copies of the target, the HTTPRoute between them, all on the primary.
  for (std::string svc : {"podinfo-primary", "podinfo-canary"}) CHECK(selector_of(sim, svc) == "blue");
  auto hr = get_json(sim, {"httproutes.v1.gateway.networking.k8s.io", "podinfo"});
  REQUIRE(!hr.is_null());
  CHECK(hr.at_pointer("/spec/parentRefs/0/name") == "gateway");
  CHECK(hr.at_pointer("/spec/hostnames") == json::parse(R"(["www.example.com"])"));
  CHECK(hr.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");
  CHECK(route_weights(sim) == weights{100, 0});
  // The target Service itself is the user's: canaryd neither owns nor rewrites it.
  auto target = get_json(sim, {"service", "podinfo"});
  CHECK(selector_of(sim, "podinfo") == "blue");
  CHECK(target.as_object().at("metadata").as_object().if_contains("ownerReferences") == nullptr);
  auto rates = rates_when(sim, [](const auto& r) { return share_of(r, "blue") > 0.99; }, 20s);
  MESSAGE("initialized: " << text(rates));
  CHECK(share_of(rates, "blue") > 0.99);

  // A release: the target now selects green. The canary takes 25 %, then 50 %, and is held there
  // by the closed confirm-promotion gate while the Gateway's traffic splits between the backends.
  sim.kubectl_ok({"-n", "demo", "patch", "service", "podinfo", "--type", "merge", "-p", R"({"spec":{"selector":{"app":"green"}}})"});
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "WaitingPromotion", 40s), dump(canary_events(sim, "podinfo")));
  CHECK(route_weights(sim) == weights{50, 50});
  CHECK(selector_of(sim, "podinfo-canary") == "green");
  CHECK(selector_of(sim, "podinfo-primary") == "blue");
  rates = rates_when(sim, [](const auto& r) { return share_of(r, "blue") < 0.6 && share_of(r, "green") > 0.4; }, 20s);
  MESSAGE("held at 50/50: " << text(rates));
  CHECK(share_of(rates, "green") > 0.4);
  CHECK(share_of(rates, "green") < 0.6);
  CHECK(share_of(rates, "blue") > 0.4);
  CHECK(phase_of(sim, "podinfo") == "WaitingPromotion");
  CHECK(route_weights(sim) == weights{50, 50});
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Advance podinfo.demo canary weight 25"), dump(evs));
  CHECK_MESSAGE(has_event(evs, "Normal", "Advance podinfo.demo canary weight 50"), dump(evs));

  // Approved: promotion copies the target's spec into podinfo-primary; all traffic to green.
  CHECK(lt.post("/gate/open", R"({"name":"podinfo","namespace":"demo"})").status == 202);
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(route_weights(sim) == weights{100, 0});
  CHECK(selector_of(sim, "podinfo-primary") == "green");
  evs = canary_events(sim, "podinfo");
  CHECK(has_event(evs, "Normal", "Copying podinfo.demo template spec to podinfo-primary.demo"));
  rates = rates_when(sim, [](const auto& r) { return share_of(r, "green") > 0.99; }, 20s);
  MESSAGE("promoted: " << text(rates));
  CHECK(share_of(rates, "green") > 0.99);

  // A failing release: red answers every request with a 500. Its 25 % of the traffic fails the
  // errors metric twice and the canary is rolled back; the primary keeps green.
  sim.kubectl_ok({"-n", "demo", "patch", "service", "podinfo", "--type", "merge", "-p", R"({"spec":{"selector":{"app":"red"}}})"});
  std::vector<std::string> seen;
  bool failed = wait_phase(sim, "podinfo", "Failed", 40s, &seen);
  evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, dump(evs));
  CHECK(std::find(seen.begin(), seen.end(), "Progressing") != seen.end());
  CHECK_MESSAGE(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 2"), dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "Canary failed! Scaling down podinfo.demo"), dump(evs));
  CHECK(route_weights(sim) == weights{100, 0});
  CHECK(selector_of(sim, "podinfo-primary") == "green");
  CHECK(selector_of(sim, "podinfo-canary") == "red");
  rates = rates_when(sim, [](const auto& r) { return share_of(r, "green") > 0.99; }, 20s);
  MESSAGE("rolled back: " << text(rates));
  CHECK(share_of(rates, "green") > 0.99);
  CHECK(share_of(rates, "red") < 0.01);

  // Finalize (revertOnDeletion): the Canary goes; its copies and the HTTPRoute go with it (owned
  // by it); the target Service is left as the user wrote it last.
  sim.kubectl_ok({"-n", "demo", "delete", "canary", "podinfo", "--wait=false"});
  REQUIRE_MESSAGE(eventually([&] { return get_json(sim, {"canary", "podinfo"}).is_null(); }, 30s),
                  dump(canary_events(sim, "podinfo")));
  CHECK(selector_of(sim, "podinfo") == "red");
  CHECK(eventually(
      [&] {
        return get_json(sim, {"httproutes.v1.gateway.networking.k8s.io", "podinfo"}).is_null() &&
               get_json(sim, {"service", "podinfo-primary"}).is_null() && get_json(sim, {"service", "podinfo-canary"}).is_null();
      },
      10s));

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

}  // namespace

TEST_CASE("a Service target behind gatewayapi:v1: weights measured in Prometheus, promotion, a failing release rolled back, finalize") {
  scenario("gatewayapi:v1");
}

TEST_CASE("-mesh-provider gatewayapi:v1beta1:service routes a Service target; a service.name other than the target's is refused") {
  kubesim_options ko;
  ko.extra_args = {"--default-rps", "0"};
  kubesim_instance sim(ko);
  setup_cluster(sim);
  if (!install_published_crds(sim, "gatewayapi")) return;
  sim.kubectl_ok({"apply", "-f", "-"}, gateway_yaml);
  for (std::string b : {"blue", "green"}) sim.kubectl_ok({"apply", "-f", "-"}, backend_yaml(b));
  sim.kubectl_ok({"apply", "-f", "-"}, target_service);
  std::string other = target_service;
  other.replace(other.find("name: podinfo"), 13, "name: other");
  sim.kubectl_ok({"apply", "-f", "-"}, other);
  // Flagger's factory matches gatewayapi by prefix: this is the v1beta1 router. (The CRD's enum
  // admits no `:service` string in spec.provider, so it can come only from the flag.)
  auto d = start_canaryd(sim, {"-mesh-provider", "gatewayapi:v1beta1:service"});
  auto canary = [](const std::string& name, const std::string& target, const std::string& service_name) {
    return "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: " + name +
           "\n  namespace: demo\nspec:\n  targetRef:\n    apiVersion: v1\n    kind: Service\n    name: " + target +
           "\n  service:\n" + service_name +
           "    port: 9898\n    hosts:\n    - www.example.com\n    gatewayRefs:\n    - name: gateway\n"
           "      namespace: demo\n  analysis:\n    interval: 1s\n    threshold: 2\n    stepWeight: 50\n"
           "    maxWeight: 50\n";
  };
  sim.kubectl_ok({"apply", "-f", "-"}, canary("podinfo", "podinfo", ""));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(!get_json(sim, {"httproutes.v1beta1.gateway.networking.k8s.io", "podinfo"}).is_null());
  CHECK(route_weights(sim) == weights{100, 0});
  sim.kubectl_ok({"-n", "demo", "patch", "service", "podinfo", "--type", "merge", "-p", R"({"spec":{"selector":{"app":"green"}}})"});
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 30s), dump(canary_events(sim, "podinfo")));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Advance podinfo.demo canary weight 50"), dump(evs));
  CHECK(selector_of(sim, "podinfo-primary") == "green");
  CHECK(route_weights(sim) == weights{100, 0});

  // service.name "web": the router would send traffic to web-primary and web-canary, which no one
  // makes. Refused before anything is created.
  sim.kubectl_ok({"apply", "-f", "-"}, canary("misnamed", "other", "    name: web\n"));
  const std::string why =
      "spec.service.name web is not the target Service other: the copies of a Service target are other-primary and "
      "other-canary, while the gatewayapi:v1beta1:service router would send traffic to web-primary and web-canary; "
      "leave spec.service.name empty or set it to other";
  CHECK_MESSAGE(eventually([&] { return has_event(canary_events(sim, "misnamed"), "Warning", why); }, 20s),
                dump(canary_events(sim, "misnamed")));
  std::this_thread::sleep_for(2s);
  for (std::string svc : {"other-primary", "other-canary", "web", "web-primary", "web-canary"})
    CHECK_MESSAGE(get_json(sim, {"service", svc}).is_null(), "service " << svc << " was created");
  CHECK(get_json(sim, {"httproutes.v1.gateway.networking.k8s.io", "web"}).is_null());
  CHECK(selector_of(sim, "other") == "blue");
}
