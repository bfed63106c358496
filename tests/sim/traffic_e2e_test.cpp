// End to end: the kubesim binary with --prometheus, driven by the real kubectl, scraped by the
// real Prometheus it starts. Objects are applied as a user would; the controllers make the
// pods; Flagger's builtin PromQL runs on Prometheus and must see the routing and behaviour the
// objects ask for.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <boost/json/parse.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"
#include "tests/support/prometheus.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

bool have_prometheus() { return ::access("/usr/bin/prometheus", X_OK) == 0; }

const char* const podinfo_manifests = R"(
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
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: podinfo
spec:
  hosts: [podinfo]
  gateways: [mesh]
  http:
  - route:
    - destination: {host: podinfo-primary}
      weight: 80
    - destination: {host: podinfo-canary}
      weight: 20
)";


std::string success_rate(const std::string& metric, const std::string& sel, const std::string& non5xx) {
  return "sum(rate(" + metric + "{" + sel + "," + non5xx + "}[1m])) / sum(rate(" + metric + "{" + sel + "}[1m])) * 100";
}

// The value of "dir" in kubesim's "prometheus starting" log line.
std::string prometheus_dir(const std::string& log) {
  auto p = log.find("\"msg\":\"prometheus starting\"");
  if (p == std::string::npos) return {};
  auto line = log.substr(p, log.find('\n', p) - p);
  return json_field(line, "dir");
}

}  // namespace

TEST_CASE("kubesim serves /metrics and names it in the ready line") {
  kubesim_instance ks;
  REQUIRE_FALSE(ks.metrics_url().empty());
  CHECK(ks.prometheus_url().empty());
  auto r = http_call("GET", ks.metrics_url());
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("# TYPE istio_requests_total counter") != std::string::npos);
  CHECK(r->body.find("kubesim_objects ") != std::string::npos);
}

TEST_CASE("with --prometheus, Istio 80/20 weights and a 0.5 error rate show in Prometheus's rates within 5 %") {
  if (!have_prometheus()) {
    MESSAGE("skipped: /usr/bin/prometheus is missing (scripts/setup installs it)");
    return;
  }
  kubesim_options o;
  o.prometheus = true;
  kubesim_instance ks(o);
  REQUIRE_FALSE(ks.prometheus_url().empty());
  const auto& prom = ks.prometheus_url();
  // The first scrape landed before the ready line.
  CHECK(prom_query(prom, "up")[""] == 1);

  // Istio's published CRDs, created (the DestinationRule CRD is larger than apply's annotation).
  auto ref = shared_reference();
  REQUIRE_MESSAGE(ref, "the published Istio CRDs (../shared/reference/crds/istio) are not available");
  for (const char* crd : {"virtualservices", "destinationrules", "gateways"}) {
    const auto file = (*ref / "crds" / "istio" / (std::string(crd) + ".networking.istio.io.yaml")).string();
    ks.kubectl_ok({"create", "-f", file});
    ks.kubectl_ok({"wait", "--for=condition=Established", "-f", file, "--timeout=30s"});
  }
  ks.kubectl_ok({"create", "namespace", "test"});
  ks.kubectl_ok({"apply", "-n", "test", "-f", "-"}, podinfo_manifests);
  ks.kubectl_ok({"wait", "-n", "test", "--for=condition=Available", "deployment/podinfo", "deployment/podinfo-primary",
                 "--timeout=60s"});

  // Wait for the first scrape with both workloads, then for 15 s of steady traffic after it.
  const std::string by_workload =
      "sum by (destination_workload) (rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"test\"}[15s]))";
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (prom_query(prom, "count(istio_requests_total{reporter=\"destination\",destination_workload=\"podinfo\"})").empty()) {
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "no canary traffic in Prometheus after 30 s");
    std::this_thread::sleep_for(500ms);
  }
  std::this_thread::sleep_for(17s);

  auto rates = prom_query(prom, by_workload, "destination_workload");
  double primary = rates["podinfo-primary"], canary = rates["podinfo"];
  MESSAGE("rate by workload: podinfo-primary " << primary << "/s, podinfo " << canary << "/s");
  CHECK(primary == doctest::Approx(16).epsilon(0.05));
  CHECK(canary == doctest::Approx(4).epsilon(0.05));
  CHECK(primary / (primary + canary) == doctest::Approx(0.8).epsilon(0.05));
  CHECK(rates.size() == 2);  // the backends send nothing of their own

  // Flagger's builtin Istio request-success-rate and request-duration for target podinfo.
  auto istio_sel = std::string("reporter=\"destination\",destination_workload_namespace=\"test\",destination_workload=~\"podinfo\"");
  double canary_success = prom_query(prom, success_rate("istio_requests_total", istio_sel, "response_code!~\"5.*\""))[""];
  MESSAGE("istio request-success-rate for podinfo: " << canary_success << " %");
  CHECK(canary_success == doctest::Approx(50).epsilon(0.05));
  double p99 = prom_query(prom, "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{" + istio_sel +
                                    "}[1m])) by (le))")[""];
  MESSAGE("istio request-duration P99 for podinfo: " << p99 << " ms");
  CHECK(p99 >= 49.5);  // all at 50 ms: the (40, 50] bucket
  CHECK(p99 <= 50);

  // The Kubernetes provider's query (flagger-behaviour.md §6.1) selects the canary's pods by
  // name: <target>-<hash>-<suffix> matches podinfo's pods and not podinfo-primary's.
  auto pod_sel = std::string("kubernetes_namespace=\"test\",kubernetes_pod_name=~\"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"");
  double k8s_success = prom_query(prom, success_rate("http_request_duration_seconds_count", pod_sel, "status!~\"5.*\""))[""];
  MESSAGE("kubernetes request-success-rate for podinfo: " << k8s_success << " %");
  CHECK(k8s_success == doctest::Approx(50).epsilon(0.05));
  auto primary_sel = std::string("kubernetes_namespace=\"test\",kubernetes_pod_name=~\"podinfo-primary-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"");
  CHECK(prom_query(prom, success_rate("http_request_duration_seconds_count", primary_sel, "status!~\"5.*\""))[""] ==
        doctest::Approx(100));
  double k8s_p99 = prom_query(prom, "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{" + primary_sel +
                                        "}[1m])) by (le))")[""];
  CHECK(k8s_p99 * 1000 == doctest::Approx(99.75).epsilon(0.01));

  // The pods in the series are the pods the controllers created.
  auto pods = prom_query(prom, "sum by (kubernetes_pod_name) (http_request_duration_seconds_count{kubernetes_namespace=\"test\"})",
                         "kubernetes_pod_name");
  auto listed = ks.kubectl_ok({"get", "pods", "-n", "test", "-o", "jsonpath={.items[*].metadata.name}"});
  CHECK(pods.size() == 3);
  for (const auto& [name, _] : pods) CHECK(listed.find(name) != std::string::npos);

  SUBCASE("a weight change reaches Prometheus's rates") {
    ks.kubectl_ok({"patch", "-n", "test", "virtualservice", "podinfo", "--type", "json", "-p",
                   R"([{"op":"replace","path":"/spec/http/0/route/0/weight","value":50},)"
                   R"({"op":"replace","path":"/spec/http/0/route/1/weight","value":50}])"});
    std::this_thread::sleep_for(12s);
    auto after = prom_query(prom,
                            "sum by (destination_workload) (rate(istio_requests_total{reporter=\"destination\","
                            "destination_workload_namespace=\"test\"}[10s]))",
                            "destination_workload");
    MESSAGE("after 50/50: podinfo-primary " << after["podinfo-primary"] << "/s, podinfo " << after["podinfo"] << "/s");
    CHECK(after["podinfo"] == doctest::Approx(10).epsilon(0.05));
    CHECK(after["podinfo-primary"] == doctest::Approx(10).epsilon(0.05));
  }
}

TEST_CASE("kubesim stops its Prometheus: SIGTERM removes its directory, and a killed kubesim takes it along") {
  if (!have_prometheus()) {
    MESSAGE("skipped: /usr/bin/prometheus is missing (scripts/setup installs it)");
    return;
  }
  kubesim_options o;
  o.prometheus = true;
  {
    kubesim_instance ks(o);
    auto dir = prometheus_dir(ks.log());
    INFO("kubesim log:\n" << ks.log());
    REQUIRE_FALSE(dir.empty());
    CHECK(std::filesystem::exists(std::filesystem::path(dir) / "prometheus.yml"));
    ks.process().signal(SIGTERM);
    auto code = ks.process().wait(15s);
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK_FALSE(std::filesystem::exists(dir));
    CHECK_FALSE(http_call("GET", ks.prometheus_url() + "/-/ready", {}, 1s));
  }
  {
    kubesim_instance ks(o);
    auto url = ks.prometheus_url();
    REQUIRE(http_call("GET", url + "/-/ready"));
    ks.process().signal(SIGKILL);
    ks.process().wait(5s);
    auto deadline = std::chrono::steady_clock::now() + 15s;
    bool gone = false;
    while (std::chrono::steady_clock::now() < deadline && !gone) {
      gone = !http_call("GET", url + "/-/ready", {}, 1s);
      if (!gone) std::this_thread::sleep_for(200ms);
    }
    CHECK_MESSAGE(gone, "Prometheus still answers after kubesim was killed");
    // The kernel stopped it; nobody was left to remove its directory.
    auto dir = prometheus_dir(ks.log());
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
}
