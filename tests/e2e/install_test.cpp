// Flagger's own install paths with only the image changed: the exact commands and arguments
// that Flagger's Helm chart and kustomize base render, run as the image runs them (`./flagger`
// and `./loadtester` in the image's working directory, the cluster from the environment), and
// their exec probes (`wget ... --spider http://localhost:8080/healthz`) run verbatim.
//
// The facts below were read from fluxcd/flagger (chart 1.44.0's charts/flagger/templates/
// deployment.yaml and values.yaml, charts/loadtester/templates/deployment.yaml and values.yaml,
// kustomize/base/flagger/deployment.yaml and the kustomize/kubernetes overlay); they are
// written out here because there is no helm binary to render the chart with.
//
// The probes address localhost:8080, so canaryd listens on 8080 as in a pod: these cases run
// one at a time (doctest runs a file's cases in order). tests/e2e/meson.build runs the test in a
// private network namespace where one can be made (then it runs beside the others), else alone.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "tests/core/yaml_to_json.hpp"
#include "tests/e2e/harness.hpp"

using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// charts/flagger/templates/deployment.yaml, default values.yaml: `command:` is
// ./flagger -log-level={{logLevel=info}} -metrics-server={{metricsServer}}
// -enable-config-tracking={{configTracking.enabled}} -slack-user={{slack.user}} (meshProvider,
// selectorLabels, namespace, slack.url, msteams.url, eventWebhook, ingressAnnotationsPrefix are
// empty by default and leave their flags out; leaderElection.enabled is false).
const std::vector<std::string> chart_default_command{"./flagger", "-log-level=info",
                                                     "-metrics-server=http://prometheus:9090",
                                                     "-enable-config-tracking=true", "-slack-user=flagger"};
// The same with leaderElection.enabled=true, replicaCount 2, in release namespace flagger-system,
// and meshProvider=kubernetes (the values most HA installs set).
const std::vector<std::string> chart_leader_command{"./flagger",
                                                    "-log-level=info",
                                                    "-mesh-provider=kubernetes",
                                                    "-metrics-server=http://prometheus:9090",
                                                    "-enable-config-tracking=true",
                                                    "-slack-user=flagger",
                                                    "-enable-leader-election=true",
                                                    "-leader-election-namespace=flagger-system"};
// The chart's livenessProbe and readinessProbe (identical).
const std::vector<std::string> chart_probe{"wget", "--quiet", "--tries=1", "--timeout=4", "--spider",
                                           "http://localhost:8080/healthz"};

// kustomize/base/flagger/deployment.yaml + kustomize/kubernetes: no `command` (the image's
// entrypoint runs), args from the base and the overlay's patch.
const std::vector<std::string> kustomize_args{"-log-level=info", "-include-label-prefix=app.kubernetes.io",
                                              "-mesh-provider=kubernetes",
                                              "-metrics-server=http://flagger-prometheus:9090"};
const std::vector<std::string> kustomize_probe{"wget", "--quiet", "--tries=1", "--timeout=2", "--spider",
                                               "http://localhost:8080/healthz"};

// charts/loadtester/templates/deployment.yaml with default values (logLevel info, cmd.timeout
// 1h, cmd.namespaceRegexp ""), and its probes (the chart's, identical to Flagger's).
const std::vector<std::string> loadtester_command{"./loadtester", "-port=8080", "-log-level=info", "-timeout=1h",
                                                  "-namespace-regexp="};

// The image's working directories (Containerfile: WORKDIR /home/flagger with ./flagger and
// ./loadtester; the loadtester stage's /home/app with ./loadtester), made of links to the build.
struct image_workdir {
  temp_dir dir;
  image_workdir() {
    std::filesystem::create_symlink(canaryd_path(), dir.path() / "flagger");
    std::filesystem::create_symlink(loadtester_path(), dir.path() / "loadtester");
  }
  // argv[0] relative to the working directory, as a container runtime resolves `./flagger`.
  std::vector<std::string> in_dir(const std::vector<std::string>& command) const {
    std::vector<std::string> argv{"sh", "-c", "cd \"$0\" && exec \"$@\"", dir.path().string()};
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
  }
};

bool port_8080_free() {
  auto r = http_call("GET", "http://127.0.0.1:8080/", {}, 1s);
  return !r;
}

// Runs `command` (the pod's command or entrypoint + args) against kubesim, with KUBECONFIG as a
// pod's in-cluster configuration would be; waits for its caches, then runs `probe` verbatim.
void run_as_pod(const kubesim_instance& sim, const std::vector<std::string>& command, const std::vector<std::string>& probe) {
  REQUIRE_MESSAGE(port_8080_free(), "something already listens on 127.0.0.1:8080");
  image_workdir wd;
  child pod(wd.in_dir(command), {{"KUBECONFIG", sim.kubeconfig().string()}});
  auto synced = pod.wait_for_line("caches synced", 20s);
  REQUIRE_MESSAGE(synced, "canaryd did not start with Flagger's arguments; last line: "
                              << (pod.lines().empty() ? pod.stderr_text() : pod.lines().back()));
  auto p = run(probe, 10s);
  INFO("probe stdout: " << p.out << " stderr: " << p.err);
  CHECK(p.exit_code == 0);
  // The flags were taken, not just tolerated: the start line names the cluster and the port.
  bool listening = false;
  for (const auto& l : pod.lines()) {
    if (l.find("\"listen\":\"0.0.0.0:8080\"") == std::string::npos) continue;
    listening = true;
    // zap's keys in zap's order, with the short caller (directory/file:line).
    CHECK(l.starts_with("{\"level\":\"info\",\"ts\":\""));
    CHECK(l.find("\",\"caller\":\"daemon/app.cpp:") != std::string::npos);
    CHECK(l.find("\",\"msg\":\"canaryd starting\"") > l.find("\"caller\""));
  }
  CHECK(listening);
  pod.signal(SIGTERM);
  auto code = pod.wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}

}  // namespace

TEST_CASE("Flagger's Helm chart command with its default values starts canaryd as ./flagger, and its wget probes pass") {
  kubesim_instance sim;
  setup_cluster(sim);
  run_as_pod(sim, chart_default_command, chart_probe);
}

TEST_CASE("Flagger's Helm chart command with leader election takes Flagger's Lease in the release namespace") {
  kubesim_instance sim;
  setup_cluster(sim);
  sim.kubectl_ok({"create", "namespace", "flagger-system"});
  REQUIRE(port_8080_free());
  image_workdir wd;
  child pod(wd.in_dir(chart_leader_command), {{"KUBECONFIG", sim.kubeconfig().string()}});
  REQUIRE_MESSAGE(pod.wait_for_line("became the leader", 30s), pod.stderr_text());
  auto lease = sim.kubectl_ok({"-n", "flagger-system", "get", "lease", "flagger-leader-election", "-o",
                               "jsonpath={.spec.holderIdentity}"});
  CHECK(!lease.empty());
  auto p = run(chart_probe, 10s);
  CHECK(p.exit_code == 0);
}

TEST_CASE("Flagger's kustomize args start canaryd from the image's entrypoint, and its wget probes pass") {
  kubesim_instance sim;
  setup_cluster(sim);
  std::vector<std::string> command{"./flagger"};  // the image's ENTRYPOINT
  command.insert(command.end(), kustomize_args.begin(), kustomize_args.end());
  run_as_pod(sim, command, kustomize_probe);
}

TEST_CASE("Flagger's load tester chart command starts ./loadtester, its wget probes pass, and it runs hey") {
  REQUIRE(port_8080_free());
  image_workdir wd;
  child pod(wd.in_dir(loadtester_command));
  std::optional<std::string> started;
  for (int i = 0; i < 50 && !started; ++i) {
    std::this_thread::sleep_for(100ms);
    if (http_call("GET", "http://127.0.0.1:8080/healthz", {}, 1s)) started = "yes";
  }
  REQUIRE_MESSAGE(started, "./loadtester did not answer on 8080: " << pod.stderr_text());
  auto p = run(chart_probe, 10s);
  CHECK(p.exit_code == 0);
  // A load test as Flagger's docs write them (a bash task, the loadtester chart's image has hey).
  auto r = http_call("POST", "http://127.0.0.1:8080/",
                     R"({"name":"podinfo","namespace":"demo","phase":"Progressing",)"
                     R"("metadata":{"type":"bash","cmd":"hey -z 1s -q 5 -c 1 http://localhost:8080/healthz",)"
                     R"("returnCmdOutput":"true"}})",
                     20s);
  REQUIRE(r);
  INFO(r->body);
  CHECK(r->status == 200);
  CHECK(r->body.find("Status code distribution") != std::string::npos);
}

// ---- canaryd's own chart (deploy/chart), rendered by scripts/render-chart -----------------------

namespace {

// Every key of Flagger 1.44's charts/flagger/values.yaml (dotted paths to leaves or to the maps
// users fill in), written down from the chart: a Flagger values file may set any of them.
// Checked again against the stored copies of fluxcd/flagger that could be read whole (values.yaml
// of chart 1.32.0, the 1.41.0 values.yaml's head, the chart README's parameter table): every key
// they have is here, plus the three the README documents beyond values.yaml (threadiness,
// slack.proxyUrl, msteams.proxyUrl) and the pre-1.x istio.kubeconfig.* that older values files
// still carry.
const std::vector<std::string> flagger_value_keys{
    "threadiness", "slack.proxyUrl", "msteams.proxyUrl",
    "image.repository", "image.tag", "image.pullPolicy", "image.pullSecret", "logLevel", "podAnnotations",
    "podPriorityClassName", "metricsServer", "serviceMonitor.enabled", "serviceMonitor.honorLabels",
    "serviceMonitor.namespace", "serviceMonitor.labels", "meshProvider", "namespace", "selectorLabels",
    "includeLabelPrefix", "configTracking.enabled", "ingressAnnotationsPrefix", "ingressClass",
    "securityContext.enabled", "securityContext.context", "eventWebhook", "clusterName", "slack.user", "slack.channel",
    "slack.url", "slack.proxy", "msteams.url", "podMonitor.enabled", "podMonitor.namespace", "podMonitor.interval",
    "podMonitor.additionalLabels", "podMonitor.honorLabels", "env", "leaderElection.enabled",
    "leaderElection.replicaCount", "serviceAccount.create", "serviceAccount.name", "serviceAccount.annotations",
    "rbac.create", "rbac.pspEnabled", "crd.create", "linkerdAuthPolicy.create", "linkerdAuthPolicy.namespace",
    "nameOverride", "fullnameOverride", "resources.limits", "resources.requests", "nodeSelector", "tolerations",
    "affinity", "prometheus.install", "prometheus.image", "prometheus.pullSecret", "prometheus.retention",
    "prometheus.securityContext.enabled", "prometheus.securityContext.context", "kubeconfigQPS", "kubeconfigBurst",
    "controlplane.kubeconfig.secretName", "controlplane.kubeconfig.key", "istio.kubeconfig.secretName",
    "istio.kubeconfig.key", "podDisruptionBudget.enabled", "podDisruptionBudget.minAvailable", "podLabels",
    "noCrossNamespaceRefs", "additionalVolumes"};

std::string render_chart(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{"python3", (source_root() / "scripts" / "render-chart").string(),
                                (source_root() / "deploy" / "chart").string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = run(argv);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return r.out;
}

std::vector<boost::json::value> docs_of(const std::string& yaml) {
  std::vector<boost::json::value> out;
  for (const auto& text : canaryd::test::yaml_to_json(yaml)) {
    auto v = boost::json::parse(text);
    if (v.is_object()) out.push_back(std::move(v));
  }
  return out;
}

const boost::json::value& doc_of_kind(const std::vector<boost::json::value>& docs, std::string_view kind) {
  for (const auto& d : docs)
    if (d.at("kind").as_string() == kind) return d;
  FAIL("no " << kind);
  static boost::json::value none;
  return none;
}

std::vector<std::string> strings_at(const boost::json::value& v, std::string_view pointer) {
  std::vector<std::string> out;
  for (const auto& a : v.at_pointer(pointer).as_array()) out.emplace_back(a.as_string());
  return out;
}

// Applies what kubesim serves (it has no Prometheus Operator CRDs) and returns the kinds applied.
std::set<std::string> apply_docs(const kubesim_instance& sim, const std::vector<boost::json::value>& docs) {
  std::set<std::string> kinds;
  for (const auto& d : docs) {
    std::string kind(d.at("kind").as_string());
    if (kind == "ServiceMonitor" || kind == "PodMonitor") continue;
    sim.kubectl_ok({"apply", "-f", "-"}, boost::json::serialize(d));
    kinds.insert(kind);
  }
  return kinds;
}

}  // namespace

TEST_CASE("deploy/chart declares every key of Flagger's chart values") {
  std::set<std::string> declared;
  auto values = docs_of(read_text(source_root() / "deploy" / "chart" / "values.yaml"));
  REQUIRE(values.size() == 1);
  std::function<void(const std::string&, const boost::json::value&)> walk = [&](const std::string& path,
                                                                               const boost::json::value& v) {
    if (!path.empty()) declared.insert(path);
    if (v.is_object())
      for (const auto& [k, child] : v.as_object()) walk(path.empty() ? std::string(k) : path + "." + std::string(k), child);
  };
  walk("", values[0]);
  for (const auto& k : flagger_value_keys) {
    CAPTURE(k);
    CHECK(declared.count(k) == 1);
  }
  // --strict refuses a key Flagger's chart does not have.
  temp_dir dir;
  std::ofstream(dir.path() / "bad.yaml") << "slack:\n  webhook: https://example\n";
  auto r = run({"python3", (source_root() / "scripts" / "render-chart").string(),
                (source_root() / "deploy" / "chart").string(), "--strict", "-f", (dir.path() / "bad.yaml").string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("slack.webhook") != std::string::npos);
}

TEST_CASE("the keys Flagger's chart README documents beyond its values.yaml render as its flags") {
  auto docs = docs_of(render_chart({"--strict", "--set", "threadiness=4", "--set", "slack.proxyUrl=http://proxy:3128",
                                    "--set", "msteams.proxyUrl=http://proxy:3129"}));
  auto command = strings_at(doc_of_kind(docs, "Deployment"), "/spec/template/spec/containers/0/command");
  for (auto want : {"-threadiness=4", "-slack-proxy-url=http://proxy:3128", "-msteams-proxy-url=http://proxy:3129"})
    CHECK(std::count(command.begin(), command.end(), want) == 1);
  // values.yaml's own slack.proxy wins over the README's name when both are set.
  docs = docs_of(render_chart({"--set", "slack.proxy=http://a:1", "--set", "slack.proxyUrl=http://b:2"}));
  command = strings_at(doc_of_kind(docs, "Deployment"), "/spec/template/spec/containers/0/command");
  CHECK(std::count(command.begin(), command.end(), "-slack-proxy-url=http://a:1") == 1);
  CHECK(std::count(command.begin(), command.end(), "-slack-proxy-url=http://b:2") == 0);
}

// Every (apiGroup, resource, verb) a ClusterRole grants.
std::set<std::string> grants_of(const boost::json::value& role) {
  std::set<std::string> out;
  for (const auto& rule : role.at("rules").as_array())
    for (const auto& g : rule.at("apiGroups").as_array())
      for (const auto& r : rule.at("resources").as_array())
        for (const auto& v : rule.at("verbs").as_array())
          out.insert(std::string(g.as_string()) + "/" + std::string(r.as_string()) + ":" + std::string(v.as_string()));
  return out;
}

TEST_CASE("deploy/chart's ClusterRole grants exactly what deploy/rbac/rbac.yaml grants") {
  // Two copies of one list: a kind added to one and not the other leaves chart users (or
  // kubectl users) without permission for a target, provider or metric provider canaryd has.
  std::ifstream in(source_root() / "deploy" / "rbac" / "rbac.yaml");
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto plain = grants_of(doc_of_kind(docs_of(yaml), "ClusterRole"));
  auto chart = grants_of(doc_of_kind(docs_of(render_chart({})), "ClusterRole"));
  CHECK(plain == chart);
  for (auto want : {"apps/statefulsets:update", "apps/statefulsets/scale:update", "gateway.networking.k8s.io/httproutes:create",
                    "keda.sh/scaledobjects:patch", "serving.knative.dev/services:patch", "metrics.keptn.sh/analyses:create",
                    "external.metrics.k8s.io/*:get"})
    CHECK_MESSAGE(chart.count(want) == 1, want);
}

TEST_CASE("deploy/chart with default values renders Flagger's default command, applies, and runs with its probes") {
  auto docs = docs_of(render_chart({"--namespace", "flagger-system"}));
  const auto& dep = doc_of_kind(docs, "Deployment");
  CHECK(dep.at_pointer("/metadata/name").as_string() == "flagger");
  CHECK(strings_at(dep, "/spec/template/spec/containers/0/command") == chart_default_command);
  CHECK(strings_at(dep, "/spec/template/spec/containers/0/livenessProbe/exec/command") == chart_probe);
  CHECK(dep.at_pointer("/spec/strategy/type").as_string() == "Recreate");
  kubesim_instance sim;
  setup_cluster(sim);
  sim.kubectl_ok({"create", "namespace", "flagger-system"});
  auto kinds = apply_docs(sim, docs);
  CHECK(kinds == std::set<std::string>{"ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"});
  run_as_pod(sim, strings_at(dep, "/spec/template/spec/containers/0/command"),
             strings_at(dep, "/spec/template/spec/containers/0/readinessProbe/exec/command"));
}

TEST_CASE("a Flagger user's values.yaml (Slack, leader election, ServiceMonitor) renders canaryd's chart unchanged and runs") {
  auto docs = docs_of(render_chart({"--strict", "-f",
                                    (source_root() / "deploy" / "chart" / "tests" / "flagger-user-values.yaml").string(),
                                    "--namespace", "istio-system"}));
  const auto& dep = doc_of_kind(docs, "Deployment");
  auto command = strings_at(dep, "/spec/template/spec/containers/0/command");
  for (auto want : {"-mesh-provider=istio", "-slack-url=https://hooks.slack.com/services/T000/B000/XXXX",
                    "-slack-channel=deployments", "-enable-leader-election=true",
                    "-leader-election-namespace=istio-system", "-cluster-name=prod-eu-1", "-kubeconfig-qps=150"})
    CHECK(std::count(command.begin(), command.end(), want) == 1);
  CHECK(dep.at_pointer("/spec/replicas").as_int64() == 2);
  CHECK(dep.at_pointer("/spec/strategy/rollingUpdate/maxUnavailable").as_int64() == 0);
  CHECK(dep.at_pointer("/spec/template/spec/nodeSelector/kubernetes.io~1os").as_string() == "linux");
  CHECK(dep.at_pointer("/spec/template/spec/tolerations/0/key").as_string() == "dedicated");
  CHECK(dep.at_pointer("/spec/template/metadata/labels/team").as_string() == "platform");
  const auto& sm = doc_of_kind(docs, "ServiceMonitor");
  CHECK(sm.at_pointer("/metadata/labels/release").as_string() == "kube-prometheus-stack");
  CHECK(sm.at_pointer("/spec/endpoints/0/port").as_string() == "http");
  CHECK(doc_of_kind(docs, "PodDisruptionBudget").at_pointer("/spec/minAvailable").as_int64() == 1);
  CHECK(doc_of_kind(docs, "Role").at_pointer("/metadata/namespace").as_string() == "istio-system");

  kubesim_instance sim;
  setup_cluster(sim);
  sim.kubectl_ok({"create", "namespace", "istio-system"});
  auto kinds = apply_docs(sim, docs);
  CHECK(kinds.count("PodDisruptionBudget") == 1);
  // The rendered command, as the pod runs it; its -slack-url is overridden by SLACK_URL from the
  // Secret in a pod, which the environment stands for here.
  REQUIRE(port_8080_free());
  image_workdir wd;
  child pod(wd.in_dir(command), {{"KUBECONFIG", sim.kubeconfig().string()}, {"SLACK_URL", "http://127.0.0.1:9/slack"}});
  REQUIRE_MESSAGE(pod.wait_for_line("became the leader", 30s), pod.stderr_text());
  auto probe = run(strings_at(dep, "/spec/template/spec/containers/0/readinessProbe/exec/command"), 10s);
  CHECK(probe.exit_code == 0);
  CHECK(!sim.kubectl_ok({"-n", "istio-system", "get", "lease", "flagger-leader-election", "-o",
                         "jsonpath={.spec.holderIdentity}"})
             .empty());
}

namespace {

// Every key of Flagger's charts/loadtester (its values.yaml and the parameter table of its
// README), as dotted paths: a Flagger load tester values file may set any of them.
const std::vector<std::string> loadtester_value_keys{
    "replicaCount", "image.repository", "image.tag", "image.pullPolicy", "image.pullSecret", "podAnnotations",
    "podLabels", "podPriorityClassName", "logLevel", "cmd.timeout", "cmd.namespaceRegexp", "nameOverride",
    "fullnameOverride", "service.type", "service.port", "resources.requests", "nodeSelector", "tolerations", "affinity",
    "rbac.create", "rbac.scope", "rbac.rules", "serviceAccountName", "volumeMounts", "volumes", "env",
    "securityContext.enabled", "securityContext.context", "podDisruptionBudget.enabled",
    "podDisruptionBudget.minAvailable", "appmesh.enabled", "appmesh.backends", "istio.enabled", "istio.host",
    "istio.gateway.enabled", "istio.tls.enabled", "istio.tls.httpsRedirect"};

std::string render_loadtester(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{"python3", (source_root() / "scripts" / "render-chart").string(),
                                (source_root() / "deploy" / "loadtester-chart").string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto r = run(argv);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  return r.out;
}

}  // namespace

TEST_CASE("deploy/loadtester-chart declares every key of Flagger's load tester chart, and its PDB is Flagger's") {
  std::set<std::string> declared;
  auto values = docs_of(read_text(source_root() / "deploy" / "loadtester-chart" / "values.yaml"));
  REQUIRE(values.size() == 1);
  std::function<void(const std::string&, const boost::json::value&)> walk = [&](const std::string& path,
                                                                               const boost::json::value& v) {
    if (!path.empty()) declared.insert(path);
    if (v.is_object())
      for (const auto& [k, child] : v.as_object()) walk(path.empty() ? std::string(k) : path + "." + std::string(k), child);
  };
  walk("", values[0]);
  for (const auto& k : loadtester_value_keys) {
    CAPTURE(k);
    CHECK(declared.count(k) == 1);
  }
  // No PDB by default; podDisruptionBudget.enabled makes one with minAvailable (and nothing else
  // of the values map) in its spec, selecting the pods by app.kubernetes.io/name, as Flagger's.
  auto plain = docs_of(render_loadtester({"--strict"}));
  CHECK(std::none_of(plain.begin(), plain.end(), [](const auto& d) { return d.at("kind") == "PodDisruptionBudget"; }));
  auto docs = docs_of(render_loadtester({"--strict", "--namespace", "demo", "--set", "podDisruptionBudget.enabled=true",
                                         "--set", "podDisruptionBudget.minAvailable=2"}));
  const auto& pdb = doc_of_kind(docs, "PodDisruptionBudget");
  CHECK(pdb.at("spec").as_object().size() == 2);
  CHECK(pdb.at_pointer("/spec/minAvailable").as_int64() == 2);
  CHECK(pdb.at_pointer("/spec/selector/matchLabels/app.kubernetes.io~1name").as_string() == "loadtester");
  // The mesh annotations Flagger's chart puts on the pods, beside the user's podAnnotations.
  const auto& dep = doc_of_kind(docs, "Deployment");
  CHECK(dep.at_pointer("/spec/template/metadata/annotations/appmesh.k8s.aws~1ports").as_string() == "444");
  CHECK(dep.at_pointer("/spec/template/metadata/annotations/openservicemesh.io~1inbound-port-exclusion-list")
            .as_string() == "80, 8080");
  CHECK(dep.at_pointer("/spec/template/metadata/annotations/prometheus.io~1scrape").as_string() == "true");
  kubesim_instance sim;
  setup_cluster(sim);
  CHECK(apply_docs(sim, docs) == std::set<std::string>{"Deployment", "Service", "PodDisruptionBudget"});
}

TEST_CASE("deploy/loadtester-chart renders Flagger's loadtester command and probes, and applies") {
  auto r = run({"python3", (source_root() / "scripts" / "render-chart").string(),
                (source_root() / "deploy" / "loadtester-chart").string(), "--namespace", "demo", "--release", "flagger"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto docs = docs_of(r.out);
  const auto& dep = doc_of_kind(docs, "Deployment");
  CHECK(strings_at(dep, "/spec/template/spec/containers/0/command") == loadtester_command);
  CHECK(strings_at(dep, "/spec/template/spec/containers/0/readinessProbe/exec/command") == chart_probe);
  CHECK(doc_of_kind(docs, "Service").at_pointer("/spec/ports/0/port").as_int64() == 80);
  kubesim_instance sim;
  setup_cluster(sim);
  CHECK(apply_docs(sim, docs) == std::set<std::string>{"Deployment", "Service"});
}

TEST_CASE("the chart's controlplane.kubeconfig becomes -kubeconfig-service-mesh: the same cluster and another both run") {
  auto docs = docs_of(render_chart({"--set", "controlplane.kubeconfig.secretName=mesh-kubeconfig"}));
  auto command = strings_at(doc_of_kind(docs, "Deployment"), "/spec/template/spec/containers/0/command");
  CHECK(std::count(command.begin(), command.end(), "-kubeconfig-service-mesh=/tmp/controlplane/kubeconfig") == 1);

  kubesim_instance sim;
  setup_cluster(sim);
  auto same = start_canaryd(sim, {"-kubeconfig-service-mesh", sim.kubeconfig().string()});
  CHECK(same.proc->running());

  // Another cluster is the mesh's (tests/e2e/multicluster_test.cpp runs a canary across two);
  // its objects are created there without ownerReferences.
  kubesim_instance other;
  auto two = start_canaryd(sim, {"-kubeconfig-service-mesh", other.kubeconfig().string()});
  bool logged = false;
  for (const auto& l : two.proc->lines()) {
    if (l.find("service mesh objects are on their own cluster") == std::string::npos) continue;
    logged = true;
    CHECK(l.find(other.api_url()) != std::string::npos);
    CHECK(l.find("not set (another API server)") != std::string::npos);
  }
  CHECK(logged);
  CHECK(two.proc->running());
}
