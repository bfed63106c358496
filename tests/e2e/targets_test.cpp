// Target kinds other than Deployment, end to end: the real canaryd against kubesim with
// kubectl. Modelled on Flagger's test/kubernetes/test-daemonset.sh (initialization objects, a
// promotion, a failing release rolled back with the primary untouched) for a DaemonSet (Flagger's
// own podinfo-daemonset.yaml, unchanged), a Service target and a StatefulSet with
// volumeClaimTemplates.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + " ";
  return s;
}

std::string reference_workload(const std::string& file) {
  auto ref = shared_reference();
  REQUIRE_MESSAGE(ref, "the shared Flagger reference is not available");
  return read_text(*ref / "flagger" / "workloads" / file);
}

// A kubernetes-provider Canary for any target kind: interval 1s, iterations 3.
std::string target_canary(const std::string& name, const std::string& api_version, const std::string& kind,
                          const std::string& target, const std::string& spec_extra = {},
                          const std::string& analysis_extra = {}, const std::string& threshold = "2") {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider: kubernetes\n" + spec_extra +
         "  targetRef:\n"
         "    apiVersion: " + api_version + "\n"
         "    kind: " + kind + "\n"
         "    name: " + target + "\n"
         "  service:\n"
         "    port: 9898\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: " + threshold + "\n"
         "    iterations: 3\n" + analysis_extra;
}

std::string image_at(const json::value& workload) {
  if (workload.is_null()) return {};
  boost::system::error_code ec;
  auto* c = workload.find_pointer("/spec/template/spec/containers/0/image", ec);
  return c && c->is_string() ? std::string(c->as_string()) : std::string();
}

bool has_node_selector(const json::value& workload, const std::string& key) {
  boost::system::error_code ec;
  auto* ns = workload.find_pointer("/spec/template/spec/nodeSelector", ec);
  return ns && ns->is_object() && ns->as_object().contains(key);
}

std::int64_t int_at(const json::value& v, const std::string& pointer) {
  boost::system::error_code ec;
  auto* p = v.find_pointer(pointer, ec);
  return p && p->is_number() ? p->to_number<std::int64_t>() : -1;
}

std::string owner_kind(const json::value& o) {
  boost::system::error_code ec;
  auto* refs = o.find_pointer("/metadata/ownerReferences/0/kind", ec);
  return refs && refs->is_string() ? std::string(refs->as_string()) : std::string();
}

// Requests per second served by the target's own pods (<target>-<5 letters>: a DaemonSet's, not
// the primary's <target>-primary-<5 letters>).
const std::string daemonset_traffic_template = R"yaml(apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: target-traffic
  namespace: demo
spec:
  provider:
    type: prometheus
    address: PROMETHEUS
  query: |
    sum(
      rate(
        http_request_duration_seconds_count{
          kubernetes_namespace="{{ namespace }}",
          kubernetes_pod_name=~"{{ target }}-[0-9a-z]{5}"
        }[{{ interval }}]
      )
    ) or on() vector(0)
)yaml";

}  // namespace

TEST_CASE("Flagger's podinfo DaemonSet: initialized, promoted on Prometheus-checked traffic, a failing release rolled back") {
  kubesim_options ko;
  ko.prometheus = true;
  kubesim_instance sim(ko);
  REQUIRE(!sim.prometheus_url().empty());
  setup_cluster(sim);
  std::string tmpl = daemonset_traffic_template;
  tmpl.replace(tmpl.find("PROMETHEUS"), 10, sim.prometheus_url());
  sim.kubectl_ok({"apply", "-f", "-"}, tmpl);
  auto d = start_canaryd(sim, {"-metrics-server", sim.prometheus_url()});

  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, reference_workload("podinfo-daemonset.yaml"));
  // The analysis passes only once the target's own pods serve requests (Prometheus has their
  // series): until then each check fails, so the threshold leaves room for the first scrapes.
  sim.kubectl_ok({"apply", "-f", "-"},
                 target_canary("podinfo-ds", "apps/v1", "DaemonSet", "podinfo-ds", "  progressDeadlineSeconds: 8\n",
                               "    metrics:\n"
                               "    - name: target-traffic\n"
                               "      templateRef:\n"
                               "        name: target-traffic\n"
                               "      thresholdRange:\n"
                               "        min: 1\n"
                               "      interval: 10s\n",
                               "15"));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo-ds", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo-ds") << "; events:\n" << dump(canary_events(sim, "podinfo-ds")));

  // Initialization: the primary DaemonSet on every node, the Services, the target scaled to
  // zero by the nodeSelector.
  auto primary = get_json(sim, {"daemonset", "podinfo-ds-primary"});
  REQUIRE(!primary.is_null());
  CHECK(str_at(primary, {"spec", "selector", "matchLabels", "app.kubernetes.io/name"}) == "podinfo-ds-primary");
  CHECK(str_at(primary, {"spec", "template", "metadata", "labels", "app.kubernetes.io/name"}) == "podinfo-ds-primary");
  CHECK(str_at(primary, {"spec", "template", "metadata", "annotations", "flagger-id"}) != "");
  CHECK(owner_kind(primary) == "Canary");
  CHECK(image_at(primary) == "ghcr.io/stefanprodan/podinfo:6.0.0");
  CHECK(eventually([&] { return int_at(get_json(sim, {"daemonset", "podinfo-ds-primary"}), "/status/numberReady") == 3; }, 10s));
  CHECK(!has_node_selector(primary, "flagger.app/scale-to-zero"));
  for (std::string svc : {"podinfo-ds", "podinfo-ds-primary", "podinfo-ds-canary"})
    CHECK_MESSAGE(!get_json(sim, {"service", svc}).is_null(), "service " << svc << " missing");
  CHECK(str_at(get_json(sim, {"service", "podinfo-ds"}), {"spec", "selector", "app.kubernetes.io/name"}) == "podinfo-ds-primary");
  CHECK(eventually(
      [&] {
        auto t = get_json(sim, {"daemonset", "podinfo-ds"});
        return has_node_selector(t, "flagger.app/scale-to-zero") && int_at(t, "/status/desiredNumberScheduled") == 0 &&
               int_at(t, "/status/currentNumberScheduled") == 0;
      },
      10s));
  auto evs = canary_events(sim, "podinfo-ds");
  CHECK_MESSAGE(has_event(evs, "Normal", "Initialization done! podinfo-ds.demo"), dump(evs));

  // A new image: the target comes back on every node, its pods serve the -canary Service's
  // traffic, the checks pass, the primary gets the image, the target goes back to zero.
  sim.kubectl_ok({"-n", "demo", "set", "image", "daemonset/podinfo-ds", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  std::vector<std::string> seen;
  bool promoted = wait_phase(sim, "podinfo-ds", "Succeeded", 45s, &seen);
  evs = canary_events(sim, "podinfo-ds");
  REQUIRE_MESSAGE(promoted, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK(std::find(seen.begin(), seen.end(), "Progressing") != seen.end());
  CHECK(has_event(evs, "Normal", "New revision detected! Scaling up podinfo-ds.demo"));
  CHECK(has_event(evs, "Normal", "Advance podinfo-ds.demo canary iteration 3/3"));
  CHECK(has_event(evs, "Normal", "Copying podinfo-ds.demo template spec to podinfo-ds-primary.demo"));
  CHECK(has_event(evs, "Normal", "Promotion completed! Scaling down podinfo-ds.demo"));
  primary = get_json(sim, {"daemonset", "podinfo-ds-primary"});
  CHECK(image_at(primary) == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(!has_node_selector(primary, "flagger.app/scale-to-zero"));
  CHECK(eventually([&] { return has_node_selector(get_json(sim, {"daemonset", "podinfo-ds"}), "flagger.app/scale-to-zero"); }, 10s));
  CHECK(eventually([&] { return int_at(get_json(sim, {"daemonset", "podinfo-ds-primary"}), "/status/updatedNumberScheduled") == 3; }, 10s));
  auto c = get_json(sim, {"canary", "podinfo-ds"});
  CHECK(str_at(c, {"status", "lastPromotedSpec"}) == str_at(c, {"status", "lastAppliedSpec"}));

  // A release whose pods never become ready: the readiness deadline (the Canary's
  // progressDeadlineSeconds from its lastTransitionTime) fails it; the primary is not touched.
  const auto primary_generation = int_at(primary, "/metadata/generation");
  const std::string patch =
      R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/ready":"false"}},)"
      R"("spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:6.0.2"}]}}}})";
  sim.kubectl_ok({"-n", "demo", "patch", "daemonset", "podinfo-ds", "--type", "strategic", "-p", patch});
  seen.clear();
  bool failed = wait_phase(sim, "podinfo-ds", "Failed", 45s, &seen);
  evs = canary_events(sim, "podinfo-ds");
  REQUIRE_MESSAGE(failed, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "exceeded its progressDeadlineSeconds: 8"), dump(evs));
  CHECK(has_event(evs, "Warning", "Canary failed! Scaling down podinfo-ds.demo"));
  primary = get_json(sim, {"daemonset", "podinfo-ds-primary"});
  CHECK(image_at(primary) == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(int_at(primary, "/metadata/generation") == primary_generation);
  CHECK(int_at(primary, "/status/numberReady") == 3);
  CHECK(eventually(
      [&] {
        auto t = get_json(sim, {"daemonset", "podinfo-ds"});
        return has_node_selector(t, "flagger.app/scale-to-zero") && int_at(t, "/status/currentNumberScheduled") == 0;
      },
      10s));

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("revertOnDeletion: a deleted DaemonSet Canary gives the target its nodes back before the finalizer goes") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, reference_workload("podinfo-daemonset.yaml"));
  sim.kubectl_ok({"apply", "-f", "-"},
                 target_canary("podinfo-ds", "apps/v1", "DaemonSet", "podinfo-ds", "  revertOnDeletion: true\n"));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo-ds", "Initialized", 30s), dump(canary_events(sim, "podinfo-ds")));
  CHECK(eventually([&] { return has_node_selector(get_json(sim, {"daemonset", "podinfo-ds"}), "flagger.app/scale-to-zero"); }, 10s));

  sim.kubectl_ok({"-n", "demo", "delete", "canary", "podinfo-ds", "--wait=false"});
  CHECK_MESSAGE(eventually([&] { return get_json(sim, {"canary", "podinfo-ds"}).is_null(); }, 30s),
                dump(canary_events(sim, "podinfo-ds")));
  auto target = get_json(sim, {"daemonset", "podinfo-ds"});
  CHECK(!has_node_selector(target, "flagger.app/scale-to-zero"));
  CHECK(int_at(target, "/status/numberReady") == 3);
  CHECK(d.proc->wait_for_line("Terminated canary podinfo-ds.demo", 1s));
  // The primary goes with the Canary (its ownerReference).
  CHECK(eventually([&] { return get_json(sim, {"daemonset", "podinfo-ds-primary"}).is_null(); }, 10s));
}

TEST_CASE("a DaemonSet with the OnDelete strategy is refused before anything is created") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  std::string ds = reference_workload("podinfo-daemonset.yaml");
  ds.replace(ds.find("  minReadySeconds: 5\n"), 20, "  minReadySeconds: 5\n  updateStrategy:\n    type: OnDelete\n");
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, ds);
  sim.kubectl_ok({"apply", "-f", "-"}, target_canary("podinfo-ds", "apps/v1", "DaemonSet", "podinfo-ds"));
  bool warned = eventually(
      [&] {
        return has_event(canary_events(sim, "podinfo-ds"), "Warning",
                         "daemonset podinfo-ds.demo must have RollingUpdate strategy but have OnDelete");
      },
      20s);
  CHECK_MESSAGE(warned, dump(canary_events(sim, "podinfo-ds")));
  CHECK(get_json(sim, {"daemonset", "podinfo-ds-primary"}).is_null());
  for (std::string svc : {"podinfo-ds", "podinfo-ds-primary", "podinfo-ds-canary"})
    CHECK_MESSAGE(get_json(sim, {"service", svc}).is_null(), "service " << svc << " was created");
  CHECK(!has_node_selector(get_json(sim, {"daemonset", "podinfo-ds"}), "flagger.app/scale-to-zero"));
}

namespace {

// A Deployment `name` (label app: <name>) running podinfo.
std::string backend_yaml(const std::string& name) {
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
         "    spec:\n"
         "      containers:\n"
         "      - name: podinfod\n"
         "        image: ghcr.io/stefanprodan/podinfo:6.0.0\n"
         "        ports:\n"
         "        - name: http\n"
         "          containerPort: 9898\n";
}

const std::string podinfo_service = R"yaml(apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: demo
  labels:
    team: blue
spec:
  selector:
    app: blue
  ports:
  - name: http
    port: 9898
    targetPort: http
)yaml";

}  // namespace

TEST_CASE("a Service target: -canary and -primary copies, promotion copies the spec, a failing release rolled back") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  for (std::string b : {"blue", "green", "red"}) sim.kubectl_ok({"apply", "-f", "-"}, backend_yaml(b));
  sim.kubectl_ok({"apply", "-f", "-"}, podinfo_service);
  sim.kubectl_ok({"apply", "-f", "-"}, target_canary("podinfo", "v1", "Service", "podinfo"));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo") << "; events:\n" << dump(canary_events(sim, "podinfo")));

  // Initialization: two copies of the target; the target itself, and every workload, untouched.
  for (std::string svc : {"podinfo-canary", "podinfo-primary"}) {
    auto s = get_json(sim, {"service", svc});
    REQUIRE_MESSAGE(!s.is_null(), "service " << svc << " missing");
    CHECK(str_at(s, {"spec", "selector", "app"}) == "blue");
    CHECK(str_at(s, {"metadata", "labels", "team"}) == "blue");
    CHECK(owner_kind(s) == "Canary");
    CHECK(str_at(s, {"spec", "clusterIP"}) != str_at(get_json(sim, {"service", "podinfo"}), {"spec", "clusterIP"}));
  }
  auto target = get_json(sim, {"service", "podinfo"});
  CHECK(str_at(target, {"spec", "selector", "app"}) == "blue");
  CHECK(owner_kind(target) == "");
  CHECK(get_json(sim, {"deployment", "podinfo-primary"}).is_null());
  CHECK(get_json(sim, {"deployment", "blue-primary"}).is_null());
  CHECK(get_json(sim, {"deployment", "blue"}).at_pointer("/spec/replicas").to_number<int>() == 2);

  // A release: the target Service now selects green. The -canary copy follows at once, the
  // primary after the analysis.
  sim.kubectl_ok({"-n", "demo", "patch", "service", "podinfo", "--type", "merge", "-p", R"({"spec":{"selector":{"app":"green"}}})"});
  CHECK(eventually([&] { return str_at(get_json(sim, {"service", "podinfo-canary"}), {"spec", "selector", "app"}) == "green"; }, 10s));
  std::vector<std::string> seen;
  bool promoted = wait_phase(sim, "podinfo", "Succeeded", 40s, &seen);
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(promoted, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK(std::find(seen.begin(), seen.end(), "Progressing") != seen.end());
  CHECK(has_event(evs, "Normal", "Advance podinfo.demo canary iteration 3/3"));
  CHECK(has_event(evs, "Normal", "Copying podinfo.demo template spec to podinfo-primary.demo"));
  auto primary = get_json(sim, {"service", "podinfo-primary"});
  CHECK(str_at(primary, {"spec", "selector", "app"}) == "green");
  CHECK(owner_kind(primary) == "Canary");
  CHECK(get_json(sim, {"deployment", "green"}).at_pointer("/spec/replicas").to_number<int>() == 2);

  // A failing release: a rollout gate that never answers fails every check; the primary keeps
  // selecting green.
  sim.kubectl_ok({"-n", "demo", "patch", "canary", "podinfo", "--type", "merge", "-p",
                  R"({"spec":{"analysis":{"webhooks":[{"name":"gate","type":"rollout","url":"http://127.0.0.1:)" +
                      std::to_string(free_port()) + R"(/gate","timeout":"1s"}]}}})"});
  sim.kubectl_ok({"-n", "demo", "patch", "service", "podinfo", "--type", "merge", "-p", R"({"spec":{"selector":{"app":"red"}}})"});
  seen.clear();
  bool failed = wait_phase(sim, "podinfo", "Failed", 40s, &seen);
  evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK(has_event(evs, "Warning", "Canary failed! Scaling down podinfo.demo"));
  CHECK(str_at(get_json(sim, {"service", "podinfo-primary"}), {"spec", "selector", "app"}) == "green");
  CHECK(str_at(get_json(sim, {"service", "podinfo-canary"}), {"spec", "selector", "app"}) == "red");
  CHECK(str_at(get_json(sim, {"service", "podinfo"}), {"spec", "selector", "app"}) == "red");

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

namespace {

const std::string statefulset_yaml = R"yaml(apiVersion: v1
kind: Service
metadata:
  name: db-headless
  namespace: demo
spec:
  clusterIP: None
  selector:
    app: db
  ports:
  - name: http
    port: 9898
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: demo
spec:
  serviceName: db-headless
  replicas: 2
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports:
        - name: http
          containerPort: 9898
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
)yaml";

std::string uid_of(const json::value& o) { return str_at(o, {"metadata", "uid"}); }

bool bound(const json::value& pvc) {
  return str_at(pvc, {"status", "phase"}) == "Bound" && !str_at(pvc, {"spec", "volumeName"}).empty();
}

}  // namespace

TEST_CASE("a StatefulSet with volumeClaimTemplates: a primary with its own claims and Service, a resumed promotion, a rollback") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  sim.kubectl_ok({"apply", "-f", "-"}, statefulset_yaml);
  // The target's own claims exist once its pods have run.
  REQUIRE(eventually([&] { return bound(get_json(sim, {"pvc", "data-db-1"})); }, 15s));
  const std::string claim0 = uid_of(get_json(sim, {"pvc", "data-db-0"}));
  const std::string claim1 = uid_of(get_json(sim, {"pvc", "data-db-1"}));
  // Six iterations: a window of a few seconds in which to kill canaryd mid-analysis.
  std::string canary = target_canary("db", "apps/v1", "StatefulSet", "db", "  progressDeadlineSeconds: 8\n");
  canary.replace(canary.find("iterations: 3"), 13, "iterations: 6");
  sim.kubectl_ok({"apply", "-f", "-"}, canary);
  REQUIRE_MESSAGE(wait_phase(sim, "db", "Initialized", 30s),
                  "phase " << phase_of(sim, "db") << "; events:\n" << dump(canary_events(sim, "db")));

  // Initialization: the primary with its own governing Service and claims; the target at zero
  // with its claims kept.
  auto primary = get_json(sim, {"statefulset", "db-primary"});
  REQUIRE(!primary.is_null());
  CHECK(str_at(primary, {"spec", "serviceName"}) == "db-headless-primary");
  CHECK(str_at(primary, {"spec", "selector", "matchLabels", "app"}) == "db-primary");
  CHECK(int_at(primary, "/spec/replicas") == 2);
  CHECK(primary.at_pointer("/spec/volumeClaimTemplates/0/metadata/name").as_string() == "data");
  CHECK(owner_kind(primary) == "Canary");
  auto governing = get_json(sim, {"service", "db-headless-primary"});
  REQUIRE(!governing.is_null());
  CHECK(str_at(governing, {"spec", "clusterIP"}) == "None");
  CHECK(str_at(governing, {"spec", "selector", "app"}) == "db-primary");
  CHECK(owner_kind(governing) == "Canary");
  for (std::string pvc : {"data-db-primary-0", "data-db-primary-1"})
    CHECK_MESSAGE(eventually([&] { return bound(get_json(sim, {"pvc", pvc})); }, 10s), "claim " << pvc << " not bound");
  CHECK(eventually([&] { return int_at(get_json(sim, {"statefulset", "db-primary"}), "/status/readyReplicas") == 2; }, 10s));
  CHECK(eventually([&] { return replicas_of(sim, "db") == 0 || int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 0; }, 10s));
  CHECK(eventually([&] { return get_json(sim, {"pod", "db-0"}).is_null(); }, 10s));
  CHECK(uid_of(get_json(sim, {"pvc", "data-db-0"})) == claim0);
  CHECK(uid_of(get_json(sim, {"pvc", "data-db-1"})) == claim1);

  // A release; canaryd is killed in the middle of the analysis and a new one finishes it.
  sim.kubectl_ok({"-n", "demo", "set", "image", "statefulset/db", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  bool mid_run = eventually(
      [&] {
        auto c = get_json(sim, {"canary", "db"});
        return str_at(c, {"status", "phase"}) == "Progressing" && int_at(c, "/status/iterations") >= 2;
      },
      30s);
  REQUIRE_MESSAGE(mid_run, "events:\n" << dump(canary_events(sim, "db")));
  // The target came back on its own claims.
  CHECK(int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 2);
  CHECK(uid_of(get_json(sim, {"pvc", "data-db-0"})) == claim0);
  const auto killed_at = int_at(get_json(sim, {"canary", "db"}), "/status/iterations");
  d.proc->signal(SIGKILL);
  d.proc->wait(5s);
  d = start_canaryd(sim);
  // The new canaryd resumes the analysis where it was: the iterations never go back.
  std::vector<std::string> seen;
  std::int64_t lowest = killed_at;
  bool promoted = eventually(
      [&] {
        auto c = get_json(sim, {"canary", "db"});
        const std::string p = str_at(c, {"status", "phase"});
        if (!p.empty() && (seen.empty() || seen.back() != p)) seen.push_back(p);
        if (p == "Progressing") lowest = std::min(lowest, int_at(c, "/status/iterations"));
        return p == "Succeeded";
      },
      40s);
  auto evs = canary_events(sim, "db");
  REQUIRE_MESSAGE(promoted, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK(lowest >= killed_at);
  CHECK(has_event(evs, "Normal", "Advance db.demo canary iteration 6/6"));
  CHECK(has_event(evs, "Normal", "Copying db.demo template spec to db-primary.demo"));
  primary = get_json(sim, {"statefulset", "db-primary"});
  CHECK(image_at(primary) == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(eventually([&] { return int_at(get_json(sim, {"statefulset", "db-primary"}), "/status/updatedReplicas") == 2; }, 10s));
  CHECK(eventually([&] { return int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 0; }, 10s));
  CHECK(uid_of(get_json(sim, {"pvc", "data-db-0"})) == claim0);
  CHECK(uid_of(get_json(sim, {"pvc", "data-db-1"})) == claim1);

  // A release whose pods never become ready: rolled back at the Canary's deadline.
  const auto primary_generation = int_at(primary, "/metadata/generation");
  const std::string patch =
      R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/ready":"false"}},)"
      R"("spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:6.0.2"}]}}}})";
  sim.kubectl_ok({"-n", "demo", "patch", "statefulset", "db", "--type", "strategic", "-p", patch});
  seen.clear();
  bool failed = wait_phase(sim, "db", "Failed", 40s, &seen);
  evs = canary_events(sim, "db");
  REQUIRE_MESSAGE(failed, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "exceeded its progressDeadlineSeconds: 8"), dump(evs));
  primary = get_json(sim, {"statefulset", "db-primary"});
  CHECK(image_at(primary) == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(int_at(primary, "/metadata/generation") == primary_generation);
  CHECK(eventually([&] { return int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 0; }, 10s));
  CHECK(uid_of(get_json(sim, {"pvc", "data-db-0"})) == claim0);
}

TEST_CASE("a StatefulSet with a partition is refused before anything is created, naming the field") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  std::string sts = statefulset_yaml;
  sts.replace(sts.find("  serviceName: db-headless\n"), 26,
              "  serviceName: db-headless\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      partition: 1\n");
  sim.kubectl_ok({"apply", "-f", "-"}, sts);
  sim.kubectl_ok({"apply", "-f", "-"}, target_canary("db", "apps/v1", "StatefulSet", "db"));
  bool warned = eventually(
      [&] {
        return has_event(canary_events(sim, "db"), "Warning",
                         "statefulset db.demo has updateStrategy.rollingUpdate.partition 1: canaryd promotes whole "
                         "StatefulSets");
      },
      20s);
  CHECK_MESSAGE(warned, dump(canary_events(sim, "db")));
  CHECK(get_json(sim, {"statefulset", "db-primary"}).is_null());
  for (std::string svc : {"db", "db-primary", "db-canary", "db-headless-primary"})
    CHECK_MESSAGE(get_json(sim, {"service", svc}).is_null(), "service " << svc << " was created");
  CHECK(int_at(get_json(sim, {"statefulset", "db"}), "/spec/replicas") == 2);
}
