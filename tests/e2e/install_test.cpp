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
// one at a time (doctest runs a file's cases in order) and the test is not parallel with others
// that could take that port (every other test uses free_port()).
#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <thread>

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
  for (const auto& l : pod.lines()) listening = listening || l.find("\"listen\":\"0.0.0.0:8080\"") != std::string::npos;
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
