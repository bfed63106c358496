// kubesim's workload controllers seen through the real kubectl: apply, wait, rollout status,
// set image, and the readiness knobs (kubesim.dev/ready-after, kubesim.dev/ready: "false").
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

using canaryd::test::kubesim_instance;
using canaryd::test::kubesim_options;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

std::string deployment(std::string_view name, std::string_view annotations, std::string_view extra_spec = "") {
  std::ostringstream y;
  y << "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " << name << "\nspec:\n"
    << extra_spec << "  selector:\n    matchLabels:\n      app: " << name << "\n  template:\n    metadata:\n"
    << "      labels:\n        app: " << name << "\n      annotations:\n" << annotations
    << "    spec:\n      containers:\n      - name: app\n        image: ghcr.io/stefanprodan/podinfo:6.0.0\n";
  return y.str();
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

TEST_SUITE("sim") {

TEST_CASE("kubectl applies Flagger's podinfo Deployment, waits for Available, and rolls out a new image") {
  auto ref = canaryd::test::shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  kubesim_instance k;
  k.kubectl_ok({"apply", "-f", (*ref / "flagger" / "workloads" / "podinfo-deployment.yaml").string()});
  k.kubectl_ok({"wait", "--for=condition=Available", "deployment/podinfo", "--timeout=30s"});
  k.kubectl_ok({"rollout", "status", "deployment/podinfo", "--timeout=30s"});
  CHECK(k.kubectl_ok({"get", "deployment", "podinfo", "-o", "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}"}) == "1/1");
  CHECK(k.kubectl_ok({"get", "deployment", "podinfo", "-o",
                      "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}"}) == "NewReplicaSetAvailable");

  // Pods are named <deployment>-<pod-template-hash>-<5 chars>, as the traffic emulator expects.
  const std::string hash = k.kubectl_ok({"get", "rs", "-l", "app=podinfo", "-o", "jsonpath={.items[0].metadata.labels.pod-template-hash}"});
  const std::string pod = k.kubectl_ok({"get", "pods", "-l", "app=podinfo", "-o", "jsonpath={.items[*].metadata.name}"});
  CHECK(pod.rfind("podinfo-" + hash + "-", 0) == 0);
  CHECK(pod.size() == std::string("podinfo-").size() + hash.size() + 6);
  CHECK(k.kubectl_ok({"get", "pods", "-l", "app=podinfo", "-o", "jsonpath={.items[0].status.phase}"}) == "Running");

  k.kubectl_ok({"set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  k.kubectl_ok({"rollout", "status", "deployment/podinfo", "--timeout=30s"});
  CHECK(k.kubectl_ok({"get", "rs", "-l", "app=podinfo", "-o", "jsonpath={.items[*].spec.replicas}"}).find('0') != std::string::npos);
  CHECK(trim(k.kubectl_ok({"get", "rs", "-l", "app=podinfo", "--no-headers"})).find('\n') != std::string::npos);
  CHECK(k.kubectl_ok({"get", "deployment", "podinfo", "-o",
                      "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"}) == "2");
  CHECK(k.kubectl_ok({"get", "pods", "-l", "app=podinfo", "-o", "jsonpath={.items[*].spec.containers[0].image}"}) ==
        "ghcr.io/stefanprodan/podinfo:6.0.1");
  const std::string history = k.kubectl_ok({"rollout", "history", "deployment/podinfo"});
  CHECK(history.find("2 ") != std::string::npos);
}

TEST_CASE("kubectl sees a Deployment become ready only after kubesim.dev/ready-after") {
  kubesim_instance k;
  const auto start = steady::now();
  k.kubectl_ok({"apply", "-f", "-"}, deployment("slow", "        kubesim.dev/ready-after: 2s\n"));
  CHECK(k.kubectl_ok({"get", "deployment", "slow", "-o", "jsonpath={.status.readyReplicas}"}).empty());
  k.kubectl_ok({"wait", "--for=jsonpath={.status.readyReplicas}=1", "deployment/slow", "--timeout=30s"});
  const auto elapsed = steady::now() - start;
  CHECK(elapsed >= 2s);
  CHECK(elapsed < 15s);
  k.kubectl_ok({"rollout", "status", "deployment/slow", "--timeout=10s"});
}

TEST_CASE("a template marked kubesim.dev/ready: \"false\" never gets ready and exceeds its progress deadline") {
  kubesim_instance k;
  k.kubectl_ok({"apply", "-f", "-"},
               deployment("stuck", "        kubesim.dev/ready: \"false\"\n", "  progressDeadlineSeconds: 2\n"));
  auto rollout = k.kubectl({"rollout", "status", "deployment/stuck", "--timeout=30s"});
  CHECK(rollout.exit_code != 0);
  CHECK(rollout.err.find("exceeded its progress deadline") != std::string::npos);
  CHECK(k.kubectl_ok({"get", "deployment", "stuck", "-o",
                      "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}"}) == "ProgressDeadlineExceeded");
  CHECK(k.kubectl_ok({"get", "deployment", "stuck", "-o",
                      "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status}"}) == "False");
  CHECK(k.kubectl({"wait", "--for=condition=Available", "deployment/stuck", "--timeout=2s"}).exit_code != 0);
  CHECK(k.kubectl_ok({"get", "pods", "-l", "app=stuck", "-o", "jsonpath={.items[0].status.conditions[?(@.type==\"Ready\")].status}"}) ==
        "False");
}

TEST_CASE("a DaemonSet runs on every simulated node, and on none when its nodeSelector matches no node") {
  auto ref = canaryd::test::shared_reference();
  kubesim_instance k(kubesim_options{.extra_args = {"--nodes", "2", "--node-label", "zone=a"}});
  std::string ds;
  if (ref) {
    ds = read_file(*ref / "flagger" / "workloads" / "podinfo-daemonset.yaml");
  } else {
    ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: podinfo-ds\nspec:\n  selector:\n    matchLabels:\n"
         "      app.kubernetes.io/name: podinfo-ds\n  template:\n    metadata:\n      labels:\n"
         "        app.kubernetes.io/name: podinfo-ds\n    spec:\n      containers:\n      - name: podinfod\n"
         "        image: ghcr.io/stefanprodan/podinfo:6.0.0\n";
  }
  k.kubectl_ok({"apply", "-f", "-"}, ds);
  k.kubectl_ok({"rollout", "status", "daemonset/podinfo-ds", "--timeout=30s"});
  CHECK(k.kubectl_ok({"get", "ds", "podinfo-ds", "-o",
                      "jsonpath={.status.desiredNumberScheduled}/{.status.numberReady}/{.status.updatedNumberScheduled}"}) == "2/2/2");
  CHECK(k.kubectl_ok({"get", "pods", "-l", "app.kubernetes.io/name=podinfo-ds", "-o", "jsonpath={.items[*].spec.nodeName}"}).find("node-1") !=
        std::string::npos);

  k.kubectl_ok({"patch", "daemonset", "podinfo-ds", "--type", "merge", "-p",
                R"({"spec":{"template":{"spec":{"nodeSelector":{"zone":"a"}}}}})"});
  k.kubectl_ok({"rollout", "status", "daemonset/podinfo-ds", "--timeout=30s"});
  CHECK(k.kubectl_ok({"get", "ds", "podinfo-ds", "-o", "jsonpath={.status.desiredNumberScheduled}"}) == "2");

  k.kubectl_ok({"patch", "daemonset", "podinfo-ds", "--type", "merge", "-p",
                R"({"spec":{"template":{"spec":{"nodeSelector":{"zone":"nowhere"}}}}})"});
  k.kubectl_ok({"wait", "--for=jsonpath={.status.desiredNumberScheduled}=0", "daemonset/podinfo-ds", "--timeout=30s"});
  k.kubectl_ok({"wait", "--for=jsonpath={.status.currentNumberScheduled}=0", "daemonset/podinfo-ds", "--timeout=30s"});
  CHECK(k.kubectl_ok({"get", "pods", "-l", "app.kubernetes.io/name=podinfo-ds", "-o", "name"}).empty());
}

TEST_CASE("an HPA applied with kubectl reports its target's replicas") {
  auto ref = canaryd::test::shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  kubesim_instance k;
  k.kubectl_ok({"apply", "-f", (*ref / "flagger" / "workloads" / "podinfo-deployment.yaml").string()});
  k.kubectl_ok({"apply", "-f", (*ref / "flagger" / "workloads" / "podinfo-hpa.yaml").string()});
  k.kubectl_ok({"wait", "--for=jsonpath={.status.currentReplicas}=1", "hpa/podinfo", "--timeout=30s"});
  CHECK(k.kubectl_ok({"get", "hpa", "podinfo", "-o", "jsonpath={.status.desiredReplicas}"}) == "2");
}

}  // TEST_SUITE
