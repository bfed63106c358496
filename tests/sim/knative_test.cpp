// kubesim's Knative Serving, through the real kubectl, with the published Knative CRDs
// (../shared/reference/crds/knative): Service -> Configuration -> Revision -> Deployment and
// private Service, the Route's status.traffic, the statuses Knative reports, revisions that never
// get ready, traffic naming a missing revision, and the Envoy families split by status.traffic.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

bool install_knative(const kubesim_instance& ks) {
  auto ref = shared_reference();
  const auto dir = ref ? *ref / "crds" / "knative" : std::filesystem::path();
  if (!ref || !std::filesystem::is_directory(dir)) {
    MESSAGE("skipped: the published Knative CRDs (../shared/reference/crds/knative) are not available");
    return false;
  }
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".yaml") ks.kubectl_ok({"create", "-f", e.path().string()});
  ks.kubectl_ok({"create", "namespace", "demo"});
  return true;
}

json::value get(const kubesim_instance& ks, const std::string& what, const std::string& name) {
  auto r = ks.kubectl({"-n", "demo", "get", what, name, "-o", "json"});
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out);
}

std::string at(const json::value& v, const char* pointer) {
  boost::system::error_code ec;
  const auto* p = v.find_pointer(pointer, ec);
  if (!p) return {};
  if (p->is_string()) return std::string(p->as_string());
  return json::serialize(*p);
}

std::string condition(const json::value& v, const std::string& type, const char* field = "status") {
  boost::system::error_code ec;
  const auto* conds = v.find_pointer("/status/conditions", ec);
  if (!conds || !conds->is_array()) return {};
  for (const auto& c : conds->as_array())
    if (c.at("type").as_string() == type) {
      const auto* f = c.as_object().if_contains(field);
      return f && f->is_string() ? std::string(f->as_string()) : std::string();
    }
  return {};
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// envoy_cluster_upstream_rq of one cluster, summed over codes (or one code).
double envoy_requests(const kubesim_instance& ks, const std::string& cluster, const std::string& code = "") {
  auto r = http_call("GET", ks.metrics_url());
  if (!r) return -1;
  std::istringstream in(r->body);
  double sum = 0;
  const std::string prefix = "envoy_cluster_upstream_rq{envoy_cluster_name=\"" + cluster + "\",envoy_response_code=\"";
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with(prefix)) continue;
    const auto quote = line.find('"', prefix.size());
    if (!code.empty() && line.substr(prefix.size(), quote - prefix.size()) != code) continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

const char* const ksvc = R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: podinfo
  namespace: demo
  annotations:
    kubesim.dev/rps: "100"
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/stefanprodan/podinfo:6.0.0
          ports:
            - containerPort: 9898
)";

void patch(const kubesim_instance& ks, const std::string& body) {
  ks.kubectl_ok({"-n", "demo", "patch", "services.serving.knative.dev/podinfo", "--type", "merge", "-p", body});
}

}  // namespace

TEST_CASE("a Knative Service gets its Configuration, Route and a Revision per template change, backed by a Deployment") {
  kubesim_options o;
  o.extra_args = {"--default-rps", "0"};
  kubesim_instance ks(o);
  if (!install_knative(ks)) return;
  ks.kubectl_ok({"apply", "-f", "-"}, ksvc);
  REQUIRE(eventually([&] { return condition(get(ks, "ksvc", "podinfo"), "Ready") == "True"; }, 10s));

  auto svc = get(ks, "ksvc", "podinfo");
  CHECK(at(svc, "/status/latestCreatedRevisionName") == "podinfo-00001");
  CHECK(at(svc, "/status/latestReadyRevisionName") == "podinfo-00001");
  CHECK(at(svc, "/status/traffic") == R"([{"latestRevision":true,"percent":100,"revisionName":"podinfo-00001"}])");
  CHECK(at(svc, "/status/url") == "http://podinfo.demo.example.com");
  CHECK(condition(svc, "ConfigurationsReady") == "True");
  CHECK(condition(svc, "RoutesReady") == "True");
  auto cfg = get(ks, "configurations.serving.knative.dev", "podinfo");
  CHECK(at(cfg, "/metadata/ownerReferences/0/kind") == "Service");
  CHECK(at(cfg, "/spec/template/spec/containers/0/image") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  auto rev = get(ks, "revisions.serving.knative.dev", "podinfo-00001");
  CHECK(at(rev, "/metadata/labels/serving.knative.dev~1configuration") == "podinfo");
  CHECK(at(rev, "/metadata/labels/serving.knative.dev~1configurationGeneration") == "1");
  CHECK(at(rev, "/metadata/labels/serving.knative.dev~1service") == "podinfo");
  CHECK(condition(rev, "Ready") == "True");
  auto deploy = get(ks, "deployment", "podinfo-00001-deployment");
  CHECK(at(deploy, "/spec/selector/matchLabels/serving.knative.dev~1revision") == "podinfo-00001");
  CHECK(at(deploy, "/spec/template/spec/containers/0/name") == "user-container");
  CHECK(at(deploy, "/metadata/ownerReferences/0/kind") == "Revision");
  CHECK(!get(ks, "service", "podinfo-00001-private").is_null());
  auto route = get(ks, "routes.serving.knative.dev", "podinfo");
  CHECK(at(route, "/spec/traffic") == R"([{"latestRevision":true,"percent":100}])");

  // A template change makes podinfo-00002; the latest revision takes the traffic once ready.
  patch(ks, R"({"spec":{"template":{"metadata":{"annotations":{"release":"2"}}}}})");
  CHECK(eventually([&] { return at(get(ks, "ksvc", "podinfo"), "/status/latestReadyRevisionName") == "podinfo-00002"; }, 10s));
  svc = get(ks, "ksvc", "podinfo");
  CHECK(at(svc, "/status/traffic") == R"([{"latestRevision":true,"percent":100,"revisionName":"podinfo-00002"}])");
  CHECK(at(get(ks, "revisions.serving.knative.dev", "podinfo-00002"), "/metadata/annotations/release") == "2");
  CHECK(!get(ks, "revisions.serving.knative.dev", "podinfo-00001").is_null());
  // A change of the Service's traffic alone makes no revision.
  patch(ks, R"({"spec":{"traffic":[{"latestRevision":true,"percent":0},{"revisionName":"podinfo-00001","percent":100}]}})");
  CHECK(eventually([&] {
    return at(get(ks, "ksvc", "podinfo"), "/status/traffic") ==
           R"([{"latestRevision":true,"percent":0,"revisionName":"podinfo-00002"},{"latestRevision":false,"percent":100,"revisionName":"podinfo-00001"}])";
  }, 10s));
  CHECK(get(ks, "revisions.serving.knative.dev", "podinfo-00003").is_null());
  // Knative's defaulting webhook spells out latestRevision on each entry, on the Service and on
  // the Route it copies the traffic to.
  const auto defaulted = R"([{"latestRevision":true,"percent":0},{"latestRevision":false,"percent":100,"revisionName":"podinfo-00001"}])";
  CHECK(at(get(ks, "ksvc", "podinfo"), "/spec/traffic") == defaulted);
  CHECK(eventually([&] { return at(get(ks, "routes.serving.knative.dev", "podinfo"), "/spec/traffic") == defaulted; }, 10s));

  // Deleting the Service takes the chain with it (ownerReferences).
  ks.kubectl_ok({"-n", "demo", "delete", "ksvc", "podinfo"});
  CHECK(eventually([&] { return get(ks, "deployment", "podinfo-00001-deployment").is_null(); }, 10s));
  CHECK(get(ks, "revisions.serving.knative.dev", "podinfo-00002").is_null());
  CHECK(get(ks, "routes.serving.knative.dev", "podinfo").is_null());
}

TEST_CASE("a revision that never gets ready fails at its progress deadline and traffic to a missing revision is refused") {
  kubesim_options o;
  o.extra_args = {"--default-rps", "0"};
  kubesim_instance ks(o);
  if (!install_knative(ks)) return;
  ks.kubectl_ok({"apply", "-f", "-"}, ksvc);
  REQUIRE(eventually([&] { return condition(get(ks, "ksvc", "podinfo"), "Ready") == "True"; }, 10s));
  patch(ks, R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/ready":"false","serving.knative.dev/progress-deadline":"1s"}}}}})");
  CHECK(eventually([&] { return condition(get(ks, "revisions.serving.knative.dev", "podinfo-00002"), "Ready") == "False"; }, 10s));
  auto rev = get(ks, "revisions.serving.knative.dev", "podinfo-00002");
  CHECK(condition(rev, "Ready", "reason") == "ProgressDeadlineExceeded");
  CHECK(at(get(ks, "deployment", "podinfo-00002-deployment"), "/spec/progressDeadlineSeconds") == "1");
  auto svc = get(ks, "ksvc", "podinfo");
  CHECK(at(svc, "/status/latestCreatedRevisionName") == "podinfo-00002");
  CHECK(at(svc, "/status/latestReadyRevisionName") == "podinfo-00001");
  CHECK(condition(svc, "ConfigurationsReady") == "False");
  CHECK(condition(get(ks, "configurations.serving.knative.dev", "podinfo"), "Ready", "reason") == "RevisionFailed");
  // latestRevision still resolves to the latest ready one.
  CHECK(at(svc, "/status/traffic") == R"([{"latestRevision":true,"percent":100,"revisionName":"podinfo-00001"}])");

  patch(ks, R"({"spec":{"traffic":[{"revisionName":"podinfo-00009","percent":100}]}})");
  CHECK(eventually([&] { return condition(get(ks, "routes.serving.knative.dev", "podinfo"), "Ready") == "False"; }, 10s));
  CHECK(condition(get(ks, "routes.serving.knative.dev", "podinfo"), "Ready", "reason") == "RevisionMissing");
  CHECK(at(get(ks, "ksvc", "podinfo"), "/status/traffic") ==
        R"([{"latestRevision":true,"percent":100,"revisionName":"podinfo-00001"}])");
}

TEST_CASE("a Knative Service's clients are split by status.traffic and counted per Envoy cluster") {
  kubesim_options o;
  o.extra_args = {"--default-rps", "0"};
  kubesim_instance ks(o);
  if (!install_knative(ks)) return;
  ks.kubectl_ok({"apply", "-f", "-"}, ksvc);
  REQUIRE(eventually([&] { return condition(get(ks, "ksvc", "podinfo"), "Ready") == "True"; }, 10s));
  patch(ks, R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/error-rate":"0.5"}}},)"
            R"("traffic":[{"latestRevision":true,"percent":25},{"revisionName":"podinfo-00001","percent":75}]}})");
  REQUIRE(eventually([&] {
    return at(get(ks, "ksvc", "podinfo"), "/status/traffic") ==
           R"([{"latestRevision":true,"percent":25,"revisionName":"podinfo-00002"},{"latestRevision":false,"percent":75,"revisionName":"podinfo-00001"}])";
  }, 10s));
  const double old1 = envoy_requests(ks, "demo/podinfo-00001");
  const double old2 = envoy_requests(ks, "demo/podinfo-00002");
  std::this_thread::sleep_for(3s);
  const double d1 = envoy_requests(ks, "demo/podinfo-00001") - old1;
  const double d2 = envoy_requests(ks, "demo/podinfo-00002") - old2;
  MESSAGE("requests in 3 s: podinfo-00001 " << d1 << ", podinfo-00002 " << d2);
  REQUIRE(d1 > 0);
  REQUIRE(d2 > 0);
  CHECK(d1 / (d1 + d2) == doctest::Approx(0.75).epsilon(0.05));
  // The new revision's pods answer every second request with 500.
  CHECK(envoy_requests(ks, "demo/podinfo-00002", "500") / envoy_requests(ks, "demo/podinfo-00002") ==
        doctest::Approx(0.5).epsilon(0.05));
  CHECK(envoy_requests(ks, "demo/podinfo-00001", "500") == 0);
  auto m = http_call("GET", ks.metrics_url());
  REQUIRE(m);
  CHECK(m->body.find("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"demo/podinfo-00002\",le=\"10\"}") !=
        std::string::npos);
}
