// Knative Service targets with provider `knative`, end to end: the real canaryd against kubesim
// (its Knative Serving: Service -> Configuration -> Revision -> Route, with the published Knative
// CRDs from ../shared/reference/crds/knative), kubectl and a real Prometheus. Modelled on
// Flagger's test/knative/test-canary.sh: Flagger's Knative Canary (provider knative, no
// spec.service) is initialized (the flagger.app/primary-revision annotation and spec.traffic), a
// new revision is promoted step by step with the weights read from the Knative Service and the
// analysis run on the Envoy families Flagger's knative observer queries, a revision answering
// errors and a never-ready revision are rolled back with the primary revision untouched, and
// revertOnDeletion removes the annotation.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <map>
#include <memory>
#include <sstream>

#include "tests/e2e/harness.hpp"
#include "tests/support/prometheus.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// Flagger's tutorial Knative Service (docs/gitbook/tutorials/knative-progressive-delivery.md);
// its clients send 40 requests per second (kubesim.dev/rps).
const char* const knative_service = R"(apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: podinfo
  namespace: demo
  annotations:
    kubesim.dev/rps: "40"
spec:
  template:
    spec:
      containers:
        - image: ghcr.io/stefanprodan/podinfo:6.0.0
          ports:
            - containerPort: 9898
              protocol: TCP
          command:
            - ./podinfo
            - --port=9898
            - --port-metrics=9797
            - --grpc-port=9999
            - --grpc-service-name=podinfo
            - --level=info
            - --random-delay=false
            - --random-error=false
)";

// Flagger's Knative Canary (the tutorial's, analysed every second), without spec.service.
std::string knative_canary(const std::string& spec_extra = "", const std::string& threshold = "10") {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: podinfo\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider: knative\n" + spec_extra +
         "  targetRef:\n"
         "    apiVersion: serving.knative.dev/v1\n"
         "    kind: Service\n"
         "    name: podinfo\n"
         "  progressDeadlineSeconds: 60\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: " + threshold + "\n"
         "    maxWeight: 50\n"
         "    stepWeight: 10\n"
         "    metrics:\n"
         "    - name: request-success-rate\n"
         "      thresholdRange:\n"
         "        min: 99\n"
         "      interval: 1m\n"
         "    - name: request-duration\n"
         "      thresholdRange:\n"
         "        max: 500\n"
         "      interval: 30s\n";
}

json::value ksvc(const kubesim_instance& sim) { return get_json(sim, {"services.serving.knative.dev", "podinfo"}); }

std::string primary_revision(const json::value& k) {
  return str_at(k, {"metadata", "annotations", "flagger.app/primary-revision"});
}

// spec.traffic as Flagger writes it (the latest revision's and the primary revision's percents),
// stored as Knative's defaulting webhook leaves it: the primary's entry says latestRevision false.
json::value traffic(int canary, const std::string& primary, int primary_weight) {
  return json::parse(R"([{"latestRevision":true,"percent":)" + std::to_string(canary) + R"(},{"revisionName":")" +
                     primary + R"(","latestRevision":false,"percent":)" + std::to_string(primary_weight) + "}]");
}

// canaryd's writes to the Knative Service, from kubesim's request log.
std::size_t ksvc_writes(const std::filesystem::path& log) {
  std::size_t n = 0;
  for (const auto& r : requests(log)) {
    const std::string_view method = r.at("method").as_string(), path = r.at("path").as_string();
    n += std::string_view(r.at("user_agent").as_string()).starts_with("canaryd") && (method == "PUT" || method == "PATCH") &&
         path == "/apis/serving.knative.dev/v1/namespaces/demo/services/podinfo";
  }
  return n;
}

json::value spec_traffic(const json::value& k) {
  boost::system::error_code ec;
  const auto* t = k.find_pointer("/spec/traffic", ec);
  return t ? *t : json::value();
}

// The percent Knative routes to revision `rev` (status.traffic, summed over its entries).
long long routed_percent(const json::value& k, const std::string& rev) {
  boost::system::error_code ec;
  const auto* t = k.find_pointer("/status/traffic", ec);
  long long sum = 0;
  if (!t || !t->is_array()) return -1;
  for (const auto& e : t->as_array())
    if (str_at(e, {"revisionName"}) == rev) sum += e.at("percent").to_number<long long>();
  return sum;
}

// Every spec.traffic the Knative Service goes through, as a kubectl watch delivers it (polling
// can miss a 1 s step): the latest revision's percent of each version.
class canary_weight_watch {
 public:
  explicit canary_weight_watch(const kubesim_instance& sim)
      : proc_(std::make_unique<child>(
            std::vector<std::string>{"kubectl", "--kubeconfig", sim.kubeconfig().string(), "-n", "demo", "get",
                                     "services.serving.knative.dev", "podinfo", "--watch", "-o",
                                     "jsonpath={.spec.traffic[0].latestRevision}|{.spec.traffic[0].percent}{\"\\n\"}"},
            std::map<std::string, std::string>{{"HOME", (sim.dir() / "home").string()},
                                               {"KUBECONFIG", sim.kubeconfig().string()}})) {}

  // The canary weights seen so far, consecutive repeats folded.
  const std::vector<int>& poll() {
    proc_->wait_for_line("\x01", 100ms);
    const auto& lines = proc_->lines();
    for (; used_ < lines.size(); ++used_) {
      const auto bar = lines[used_].find('|');
      if (bar == std::string::npos || lines[used_].substr(0, bar) != "true") continue;
      const int w = std::atoi(lines[used_].c_str() + bar + 1);
      if (seen_.empty() || seen_.back() != w) seen_.push_back(w);
    }
    return seen_;
  }

 private:
  std::unique_ptr<child> proc_;
  std::size_t used_ = 0;
  std::vector<int> seen_;
};

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += std::to_string(x) + " ";
  return s;
}

double prom_value(const std::string& prom, const std::string& promql) {
  auto r = prom_query(prom, promql);
  return r.empty() ? -1 : r.begin()->second;
}

// kubesim with Prometheus and the published Knative CRDs (only the Knative Service's clients
// send requests), Flagger's Knative Service ready at podinfo-00001, and canaryd.
struct knative_cluster {
  temp_dir tmp;
  std::filesystem::path request_log = tmp.path() / "requests.jsonl";
  kubesim_instance sim;
  daemon_run d;
  bool ready = false;
  knative_cluster() : sim(options(request_log)) {
    setup_cluster(sim);
    if (!install_published_crds(sim, "knative")) return;
    sim.kubectl_ok({"apply", "-f", "-"}, knative_service);
    sim.kubectl_ok({"-n", "demo", "wait", "--for=condition=Ready", "services.serving.knative.dev/podinfo", "--timeout=30s"});
    d = start_canaryd(sim, {"-metrics-server", sim.prometheus_url()});
    ready = true;
  }
  static kubesim_options options(const std::filesystem::path& request_log) {
    kubesim_options ko;
    ko.prometheus = true;
    ko.extra_args = {"--default-rps", "0", "--request-log", request_log.string()};
    return ko;
  }
};

// Applies the Canary and waits for Initialized; checks what initialization wrote.
void initialize(const kubesim_instance& sim, const std::string& canary) {
  sim.kubectl_ok({"apply", "-f", "-"}, canary);
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s), dump(canary_events(sim, "podinfo")));
  const auto k = ksvc(sim);
  CHECK(primary_revision(k) == "podinfo-00001");
  CHECK(spec_traffic(k) == traffic(0, "podinfo-00001", 100));
  CHECK(str_at(get_json(sim, {"canary", "podinfo"}), {"status", "lastAppliedSpec"}) == "podinfo-00001");
  // Knative routes between revisions: no -primary workload, no generated Services.
  CHECK(get_json(sim, {"deployment", "podinfo-primary"}).is_null());
  for (std::string svc : {"podinfo", "podinfo-primary", "podinfo-canary"})
    CHECK_MESSAGE(get_json(sim, {"service", svc}).is_null(), "service " << svc << " was created");
}

// A new revision of the template (an annotation of the revision template, and `extra` ones).
void new_revision(const kubesim_instance& sim, const std::string& extra_annotations = "") {
  sim.kubectl_ok({"-n", "demo", "patch", "services.serving.knative.dev/podinfo", "--type", "merge", "-p",
                  R"({"spec":{"template":{"metadata":{"annotations":{"release":"2")" + extra_annotations + "}}}}}"});
}

}  // namespace

TEST_CASE("Knative: a new revision is promoted through spec.traffic steps analysed on Envoy's metrics, and revertOnDeletion removes the annotation") {
  knative_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  initialize(sim, knative_canary("  revertOnDeletion: true\n"));
  canary_weight_watch watch(sim);
  // Initialization writes the annotation and spec.traffic once. Knative's webhook stores the
  // primary's entry with latestRevision: false spelled out; taking that for a change would write
  // the same traffic again (as canaryd did before it compared in the defaulted form).
  const auto writes_before = ksvc_writes(cluster.request_log);
  CHECK(writes_before == 1);

  new_revision(sim);
  bool done = eventually(
      [&] {
        watch.poll();
        return phase_of(sim, "podinfo") == "Succeeded";
      },
      50s);
  const auto seen = watch.poll();
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(evs));
  MESSAGE("canary weights seen: " << join(seen));
  // stepWeight 10 up to maxWeight 50, then back to 0 after promotion.
  CHECK(seen == std::vector<int>{0, 10, 20, 30, 40, 50, 0});
  CHECK(has_event(evs, "Normal", "New revision detected! Scaling up podinfo.demo"));
  CHECK(has_event(evs, "Normal", "Copying podinfo.demo template spec to podinfo-primary.demo"));
  CHECK(has_event(evs, "Normal", "Promotion completed! Scaling down podinfo.demo"));
  // One write per change: five weights, the annotation moved, the traffic back to 0.
  const auto writes = ksvc_writes(cluster.request_log) - writes_before;
  MESSAGE("canaryd's writes to the Knative Service during the rollout: " << writes);
  CHECK(writes == 7);

  // Promotion moved the annotation; all traffic is on the new revision, as Knative reports it.
  const auto k = ksvc(sim);
  CHECK(primary_revision(k) == "podinfo-00002");
  CHECK(spec_traffic(k) == traffic(0, "podinfo-00002", 100));
  CHECK(eventually([&] { return routed_percent(ksvc(sim), "podinfo-00002") == 100; }, 5s));
  CHECK(str_at(get_json(sim, {"canary", "podinfo"}), {"status", "lastPromotedSpec"}) == "podinfo-00002");

  // The analysis read what Prometheus scraped from kubesim's gateway: the new revision was served.
  const std::string prom = sim.prometheus_url();
  CHECK(prom_value(prom, R"(sum(envoy_cluster_upstream_rq{envoy_cluster_name="demo/podinfo-00002"}))") > 0);
  CHECK(prom_value(prom, R"(sum(envoy_cluster_upstream_rq{envoy_cluster_name="demo/podinfo-00002",envoy_response_code!~"5.*"}))") > 0);

  // revertOnDeletion: Flagger's Finalize removes the annotation; the Knative Service stays.
  sim.kubectl_ok({"-n", "demo", "delete", "canary", "podinfo", "--wait=false"});
  CHECK(eventually([&] { return get_json(sim, {"canary", "podinfo"}).is_null(); }, 20s));
  const auto after = ksvc(sim);
  REQUIRE(!after.is_null());
  CHECK(primary_revision(after) == "");
  CHECK(spec_traffic(after) == traffic(0, "podinfo-00002", 100));
}

TEST_CASE("Knative: a revision that never becomes ready is rolled back with the primary revision untouched") {
  knative_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  initialize(sim, knative_canary());
  // Its pods never get ready; Knative gives up after the revision's progress deadline.
  new_revision(sim, R"(,"kubesim.dev/ready":"false","serving.knative.dev/progress-deadline":"3s")");
  CHECK(eventually([&] { return str_at(ksvc(sim), {"status", "latestCreatedRevisionName"}) == "podinfo-00002"; }, 10s));
  bool failed = wait_phase(sim, "podinfo", "Failed", 40s);
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "Knative Revision podinfo-00002.demo is not ready"), dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "ProgressDeadlineExceeded"), dump(evs));

  const auto k = ksvc(sim);
  CHECK(primary_revision(k) == "podinfo-00001");
  CHECK(spec_traffic(k) == traffic(0, "podinfo-00001", 100));
  CHECK(routed_percent(k, "podinfo-00001") == 100);
  const auto rev = get_json(sim, {"revisions.serving.knative.dev", "podinfo-00002"});
  std::string reason;
  boost::system::error_code ec;
  if (const auto* conds = rev.find_pointer("/status/conditions", ec); conds && conds->is_array())
    for (const auto& c : conds->as_array())
      if (str_at(c, {"type"}) == "Ready") reason = str_at(c, {"reason"});
  CHECK(reason == "ProgressDeadlineExceeded");
  // The primary revision kept serving every request.
  const std::string prom = sim.prometheus_url();
  CHECK(prom_value(prom, R"(sum(envoy_cluster_upstream_rq{envoy_cluster_name="demo/podinfo-00001"}))") > 0);
  CHECK(prom_value(prom, R"(sum(envoy_cluster_upstream_rq{envoy_cluster_name="demo/podinfo-00002"}))") < 0);
}

TEST_CASE("Knative: a revision answering errors fails request-success-rate on Envoy's metrics and is rolled back") {
  knative_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  initialize(sim, knative_canary("", "3"));
  canary_weight_watch watch(sim);
  // The new revision's pods answer 30 % of the requests with 500 (kubesim's knob).
  new_revision(sim, R"(,"kubesim.dev/error-rate":"0.3")");
  bool failed = eventually(
      [&] {
        watch.poll();
        return phase_of(sim, "podinfo") == "Failed";
      },
      50s);
  const auto seen = watch.poll();
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "weights seen: " << join(seen) << "\nevents:\n" << dump(evs));
  MESSAGE("canary weights seen: " << join(seen));
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement success rate"), dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 3"), dump(evs));
  for (int w : seen) CHECK(w < 50);
  const auto k = ksvc(sim);
  CHECK(primary_revision(k) == "podinfo-00001");
  CHECK(spec_traffic(k) == traffic(0, "podinfo-00001", 100));
  // Prometheus saw the new revision's errors through its Envoy cluster.
  const std::string prom = sim.prometheus_url();
  CHECK(prom_value(prom, R"(sum(envoy_cluster_upstream_rq{envoy_cluster_name="demo/podinfo-00002",envoy_response_code=~"5.*"}))") > 0);
}
