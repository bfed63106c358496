// End to end: Gateway API traffic. The kubesim binary with --prometheus, the published Gateway API
// CRDs (../shared/reference/crds/gatewayapi, created with `kubectl create -f` as the HTTPRoute CRD
// is too large for client-side apply), a Gateway whose kubesim.dev/* annotations configure the
// simulated clients, and HTTPRoutes applied with the real kubectl under v1 and v1beta1. The
// Kubernetes/Gateway API observer's queries (http_request_duration_seconds by pod) run on the real
// Prometheus and must see the route's weights, header-marked requests reach only the canary,
// mirrored copies counted by the canary's pods, and sticky clients under Flagger's session affinity.
#include <doctest/doctest.h>

#include <unistd.h>

#include <boost/json/parse.hpp>

#include <filesystem>
#include <thread>

#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"
#include "tests/support/prometheus.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

std::filesystem::path crd_dir() { return source_root() / "../shared/reference/crds/gatewayapi"; }

const char* const workloads = R"(
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo-primary
spec:
  replicas: 2
  selector:
    matchLabels: {app: podinfo-primary}
  template:
    metadata:
      labels: {app: podinfo-primary}
      annotations:
        kubesim.dev/ready-after: 200ms
        kubesim.dev/latency-ms: "100"
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
  selector:
    matchLabels: {app: podinfo}
  template:
    metadata:
      labels: {app: podinfo}
      annotations:
        kubesim.dev/ready-after: 200ms
        kubesim.dev/error-rate: "0.5"
        kubesim.dev/latency-ms: "50"
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.1
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo
spec:
  selector: {app: podinfo-primary}
  ports: [{name: http, port: 9898, targetPort: 9898}]
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-primary
spec:
  selector: {app: podinfo-primary}
  ports: [{name: http, port: 9898, targetPort: 9898}]
---
apiVersion: v1
kind: Service
metadata:
  name: podinfo-canary
spec:
  selector: {app: podinfo}
  ports: [{name: http, port: 9898, targetPort: 9898}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: kubesim
spec:
  controllerName: kubesim.dev/gateway
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: public
  annotations:
    kubesim.dev/rps: "20"
    kubesim.dev/hostname: app.example.com
    kubesim.dev/header: "x-canary: insider"
    kubesim.dev/header-share: "0.25"
spec:
  gatewayClassName: kubesim
  listeners:
  - name: http
    protocol: HTTP
    port: 80
)";

// Flagger's HTTPRoute at canary weight 20 (v1beta1, as provider gatewayapi:v1beta1 writes it).
const char* const weighted_route = R"(
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata:
  name: podinfo
spec:
  parentRefs:
  - name: public
  hostnames: [app.example.com]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 80}
    - {name: podinfo-canary, port: 9898, weight: 20}
    unknownField: pruned
)";

// Flagger's A/B HTTPRoute (v1): the header-marked requests to the canary, the rest to the primary.
const char* const ab_route = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo
spec:
  parentRefs:
  - name: public
  hostnames: [app.example.com]
  rules:
  - matches:
    - headers:
      - {name: x-canary, type: Exact, value: insider}
    backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 0}
    - {name: podinfo-canary, port: 9898, weight: 100}
  - backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 100}
    - {name: podinfo-canary, port: 9898, weight: 0}
)";

// Blue/green mirroring: every request served by the primary, a copy to the canary.
const char* const mirror_route = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo
spec:
  parentRefs:
  - name: public
  hostnames: [app.example.com]
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: podinfo-canary, port: 9898}
    backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 100}
    - {name: podinfo-canary, port: 9898, weight: 0}
)";

// Flagger's session affinity at canary weight 10: the canary's responses set the cookie, and a
// Cookie-regex rule sends the clients that carry it to the canary.
const char* const affinity_route = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: podinfo
spec:
  parentRefs:
  - name: public
  hostnames: [app.example.com]
  rules:
  - matches:
    - headers:
      - {name: Cookie, type: RegularExpression, value: ".*flagger-cookie.*vtzyzmpwzd.*"}
    backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 0}
    - {name: podinfo-canary, port: 9898, weight: 100}
  - backendRefs:
    - {name: podinfo-primary, port: 9898, weight: 90}
    - name: podinfo-canary
      port: 9898
      weight: 10
      filters:
      - type: ResponseHeaderModifier
        responseHeaderModifier:
          add:
          - {name: Set-Cookie, value: "flagger-cookie=vtzyzmpwzd; Max-Age=86400"}
)";

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

// The pods of each workload in namespace `ns`, as the HTTP observer selects them.
std::string canary_pods(const std::string& ns) {
  return "kubernetes_namespace=\"" + ns + "\",kubernetes_pod_name=~\"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"";
}
std::string primary_pods(const std::string& ns) {
  return "kubernetes_namespace=\"" + ns + "\",kubernetes_pod_name=~\"podinfo-primary-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"";
}

double rate_of(const std::string& prom, const std::string& sel, const std::string& window) {
  return prom_query(prom, "sum(rate(http_request_duration_seconds_count{" + sel + "}[" + window + "]))")[""];
}

// Waits until the routes' changes have been scraped, then lets `window` of steady traffic pass.
void settle(std::chrono::seconds window) { std::this_thread::sleep_for(window + 3s); }

}  // namespace

TEST_CASE("Gateway API through kubesim --prometheus: 80/20, header-marked A/B, mirroring and session affinity, within 5 %") {
  if (::access("/usr/bin/prometheus", X_OK) != 0) {
    MESSAGE("skipped: /usr/bin/prometheus is missing (scripts/setup installs it)");
    return;
  }
  if (!std::filesystem::exists(crd_dir() / "gateway.networking.k8s.io_httproutes.yaml")) {
    MESSAGE("skipped: the Gateway API CRDs are missing (" << crd_dir().string() << "; tests read ../shared/reference/ beside the source tree)");
    return;
  }
  kubesim_options o;
  o.prometheus = true;
  o.extra_args = {"--default-rps", "0"};  // only the annotated Gateway sends requests
  kubesim_instance ks(o);
  const auto& prom = ks.prometheus_url();
  REQUIRE_FALSE(prom.empty());

  for (auto kind : {"httproutes", "gateways", "gatewayclasses", "referencegrants"})
    ks.kubectl_ok({"create", "-f", (crd_dir() / ("gateway.networking.k8s.io_" + std::string(kind) + ".yaml")).string()});
  ks.kubectl_ok({"wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io",
                 "crd/gateways.gateway.networking.k8s.io", "crd/gatewayclasses.gateway.networking.k8s.io", "--timeout=30s"});
  // One namespace per route (its own Gateway, clients and workloads), so the four routes are
  // measured side by side in one window instead of one after the other (18 s each).
  const std::string weighted = "test", ab = "test-ab", mirror = "test-mirror", affinity = "test-affinity";
  // All of it in one kubectl apply and one wait (a kubectl process is ~1 s on a loaded machine).
  std::string all;
  for (const auto& ns : {weighted, ab, mirror, affinity}) {
    all += "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + ns + "\n---\n";
    std::string docs = workloads;
    for (std::size_t at = 0; (at = docs.find("\nmetadata:\n", at)) != std::string::npos;) {
      at += std::string("\nmetadata:\n").size();
      docs.insert(at, "  namespace: " + ns + "\n");
    }
    all += docs + "\n---\n";
  }
  for (const auto& ns : {weighted, ab, mirror, affinity})  // the GatewayClass is cluster-scoped
    all = replace_all(all, "  namespace: " + ns + "\n  name: kubesim\n", "  name: kubesim\n");
  ks.kubectl_ok({"apply", "-f", "-"}, all);
  ks.kubectl_ok({"wait", "-A", "--for=condition=Available", "deployments", "--all", "--timeout=60s"});

  // The API server's part: a v1beta1 HTTPRoute is read back as v1, pruned and defaulted.
  ks.kubectl_ok({"create", "-n", weighted, "-f", "-"}, weighted_route);
  auto stored = json::parse(ks.kubectl_ok({"get", "-n", weighted, "httproutes.v1.gateway.networking.k8s.io", "podinfo", "-o", "json"}));
  CHECK(stored.at("apiVersion") == "gateway.networking.k8s.io/v1");
  const auto& rule = stored.at_pointer("/spec/rules/0").as_object();
  CHECK_FALSE(rule.contains("unknownField"));
  CHECK(stored.at_pointer("/spec/parentRefs/0/group") == "gateway.networking.k8s.io");
  CHECK(stored.at_pointer("/spec/parentRefs/0/kind") == "Gateway");
  CHECK(stored.at_pointer("/spec/rules/0/backendRefs/0/kind") == "Service");
  CHECK(stored.at_pointer("/spec/rules/0/backendRefs/0/group") == "");
  auto bad = ks.kubectl({"apply", "-n", weighted, "-f", "-"},
                        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: bad}\n"
                        "spec:\n  rules:\n  - backendRefs: [{name: podinfo-canary, port: 9898, weight: -1}]\n");
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("spec.rules[0].backendRefs[0].weight") != std::string::npos);

  // A/B: the Gateway's clients mark 25 % of their requests with x-canary: insider; those, and
  // only those, reach the canary.
  ks.kubectl_ok({"apply", "-n", ab, "-f", "-"}, ab_route);
  // A rule without matches is defaulted to PathPrefix / (as is a match without a path).
  CHECK(ks.kubectl_ok({"get", "-n", ab, "httproute", "podinfo", "-o", "jsonpath={.spec.rules[1].matches[0].path}"}) ==
        R"({"type":"PathPrefix","value":"/"})");
  CHECK(ks.kubectl_ok({"get", "-n", ab, "httproute", "podinfo", "-o", "jsonpath={.spec.rules[0].matches[0].path.value}"}) == "/");
  // Mirroring: the primary serves everything; the canary's pods count a copy of every request.
  ks.kubectl_ok({"apply", "-n", mirror, "-f", "-"}, mirror_route);
  // Session affinity: clients that send 10 requests each and keep their cookies.
  ks.kubectl_ok({"annotate", "-n", affinity, "gateway", "public", "kubesim.dev/session-requests=10"});
  ks.kubectl_ok({"apply", "-n", affinity, "-f", "-"}, affinity_route);

  // Every route's canary pods in Prometheus, then 15 s of steady traffic for all four at once.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  for (const auto& ns : {weighted, ab, mirror, affinity}) {
    while (prom_query(prom, "count(http_request_duration_seconds_count{" + canary_pods(ns) + "})").empty()) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "no canary traffic in Prometheus after 30 s in " << ns);
      std::this_thread::sleep_for(500ms);
    }
  }
  settle(15s);

  // 80/20: 16 and 4 requests/s at the pods of each workload, as the HTTP observer reads them.
  double primary = rate_of(prom, primary_pods(weighted), "15s"), canary = rate_of(prom, canary_pods(weighted), "15s");
  MESSAGE("80/20: primary pods " << primary << "/s, canary pods " << canary << "/s");
  CHECK(primary == doctest::Approx(16).epsilon(0.05));
  CHECK(canary == doctest::Approx(4).epsilon(0.05));
  // Flagger's builtin request-success-rate and request-duration for gatewayapi:* (the HTTP observer).
  double success = prom_query(prom, "sum(rate(http_request_duration_seconds_count{" + canary_pods(weighted) +
                                        ",status!~\"5.*\"}[1m])) / "
                                    "sum(rate(http_request_duration_seconds_count{" + canary_pods(weighted) + "}[1m])) * 100")[""];
  MESSAGE("request-success-rate of the canary: " << success << " %");
  CHECK(success == doctest::Approx(50).epsilon(0.05));
  double p99 = prom_query(prom, "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{" + primary_pods(weighted) +
                                    "}[1m])) by (le))")[""];
  CHECK(p99 * 1000 == doctest::Approx(99.75).epsilon(0.01));
  // Nothing else sends: the backends and the apex Service are silent under --default-rps 0.
  CHECK(rate_of(prom, "kubernetes_namespace=\"" + weighted + "\"", "15s") == doctest::Approx(20).epsilon(0.05));

  primary = rate_of(prom, primary_pods(ab), "10s");
  canary = rate_of(prom, canary_pods(ab), "10s");
  MESSAGE("A/B: primary pods " << primary << "/s, canary pods " << canary << "/s");
  CHECK(canary == doctest::Approx(5).epsilon(0.05));
  CHECK(primary == doctest::Approx(15).epsilon(0.05));

  primary = rate_of(prom, primary_pods(mirror), "10s");
  canary = rate_of(prom, canary_pods(mirror), "10s");
  MESSAGE("mirror: primary pods " << primary << "/s, canary pods " << canary << "/s");
  CHECK(primary == doctest::Approx(20).epsilon(0.05));
  CHECK(canary == doctest::Approx(20).epsilon(0.05));

  // Request k of a session reaches the canary with probability 1 - 0.9^(k+1): 41.4 % of 20/s.
  primary = rate_of(prom, primary_pods(affinity), "10s");
  canary = rate_of(prom, canary_pods(affinity), "10s");
  MESSAGE("session affinity: primary pods " << primary << "/s, canary pods " << canary << "/s");
  CHECK(canary == doctest::Approx(8.276).epsilon(0.05));
  CHECK(primary == doctest::Approx(11.724).epsilon(0.05));
}
