// A rolling update of canaryd's own Deployment can replace a standby and a leader in turn.
// Real canaryd replicas run against kubesim with leader election; each is probed with the
// manifest's own readinessProbe, and the Deployment controller's rolling-update arithmetic
// (Kubernetes' pkg/controller/deployment/rolling.go: scale the new ReplicaSet up to
// replicas + maxSurge pods; scale old pods down while at least replicas - maxUnavailable are
// available, not-ready old pods first, never counting unavailable new pods) decides, from the
// probes' answers, which replica to start or stop next. Stopping is SIGTERM, as the kubelet does.
// The manifests are deploy/deployment.yaml and the chart's Deployment rendered with default and
// leader-election values (deploy/chart). The manifest before the fix (/readyz, which a standby
// never passes, with maxSurge 0 / maxUnavailable 1) is run too and must stall.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <fstream>
#include <thread>

#include "tests/core/yaml_to_json.hpp"
#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

struct strategy {
  int replicas = 1;
  int max_surge = 0;
  int max_unavailable = 0;
  // readinessProbe: an httpGet path, or an exec command (addressing localhost:8080).
  std::string http_path;
  std::vector<std::string> exec;
};

// An intOrString against `replicas`: a count, or a percentage rounded up (surge) or down
// (unavailable), as Kubernetes' ResolveFenceposts does.
int resolve(const json::value& v, int replicas, bool round_up) {
  if (v.is_int64()) return static_cast<int>(v.as_int64());
  std::string s(v.as_string());
  REQUIRE(s.ends_with("%"));
  double pct = std::stod(s.substr(0, s.size() - 1));
  double n = pct * replicas / 100.0;
  return static_cast<int>(round_up ? std::ceil(n) : std::floor(n));
}

strategy strategy_of(const json::value& deployment) {
  strategy s;
  const auto& spec = deployment.at("spec");
  s.replicas = static_cast<int>(spec.at("replicas").as_int64());
  const auto* st = spec.as_object().if_contains("strategy");
  REQUIRE_MESSAGE(st, "the Deployment must name its strategy");
  REQUIRE(st->at("type").as_string() == "RollingUpdate");
  const auto& ru = st->at("rollingUpdate");
  // Kubernetes' defaults are 25% each.
  s.max_surge = resolve(ru.as_object().contains("maxSurge") ? ru.at("maxSurge") : json::value("25%"), s.replicas, true);
  s.max_unavailable = resolve(ru.as_object().contains("maxUnavailable") ? ru.at("maxUnavailable") : json::value("25%"),
                              s.replicas, false);
  if (s.max_surge == 0 && s.max_unavailable == 0) s.max_unavailable = 1;
  const auto& probe = spec.at("template").at("spec").at("containers").at(0).at("readinessProbe");
  if (const auto* get = probe.as_object().if_contains("httpGet")) {
    s.http_path = std::string(get->at("path").as_string());
  } else {
    for (const auto& a : probe.at("exec").at("command").as_array()) s.exec.emplace_back(a.as_string());
  }
  return s;
}

json::value deployment_in(const std::filesystem::path& file) {
  for (const auto& text : yaml_file_to_json(file.string())) {
    auto v = json::parse(text);
    if (v.is_object() && v.as_object().contains("kind") && v.at("kind").as_string() == "Deployment") return v;
  }
  FAIL("no Deployment in " << file);
  return nullptr;
}

// Short leases so a takeover takes a second or two; Flagger's Lease name in kube-system.
const std::vector<std::string> election{"-enable-leader-election", "-leader-election-namespace=kube-system",
                                        "-leader-election-lease-duration=3s", "-leader-election-renew-deadline=2s",
                                        "-leader-election-retry-period=500ms"};

struct pod {
  daemon_run d;
  bool is_new = false;
  std::string name;
};

bool probe_ready(const strategy& s, const pod& p) {
  const std::string base = "http://127.0.0.1:" + std::to_string(p.d.port);
  if (!s.http_path.empty()) {
    auto r = http_call("GET", base + s.http_path, {}, 2s);
    return r && r->status >= 200 && r->status < 400;  // the kubelet's httpGet success range
  }
  // The exec probe verbatim but for the port this replica listens on.
  std::vector<std::string> argv = s.exec;
  for (auto& a : argv)
    if (auto at = a.find("localhost:8080"); at != std::string::npos)
      a.replace(at, 14, "127.0.0.1:" + std::to_string(p.d.port));
  return run(argv, 10s).exit_code == 0;
}

struct outcome {
  bool completed = false;
  bool new_leader = false;  // a new replica leads (strict /readyz) once the old ones are gone
  std::vector<std::string> steps;
};

// Drives the rollout of two old replicas to two new ones; returns whether it completed.
outcome roll(const kubesim_instance& sim, const strategy& s, std::chrono::milliseconds stall_limit) {
  outcome out;
  std::vector<std::unique_ptr<pod>> pods;
  int started = 0;
  auto start = [&](bool is_new) {
    auto p = std::make_unique<pod>();
    p->d = start_canaryd(sim, election);
    p->is_new = is_new;
    p->name = (is_new ? "new-" : "old-") + std::to_string(++started);
    out.steps.push_back("start " + p->name);
    pods.push_back(std::move(p));
  };
  for (int i = 0; i < s.replicas; ++i) start(false);
  // The first replica leads before the update begins.
  REQUIRE(pods.front()->d.proc->wait_for_line("became the leader", 10s));

  auto last_progress = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - last_progress < stall_limit) {
    std::vector<bool> ready;
    for (const auto& p : pods) ready.push_back(probe_ready(s, *p));
    int total = static_cast<int>(pods.size()), new_count = 0, new_unavailable = 0, old_count = 0;
    for (std::size_t i = 0; i < pods.size(); ++i) {
      if (pods[i]->is_new) {
        ++new_count;
        new_unavailable += !ready[i];
      } else {
        ++old_count;
      }
    }
    if (old_count == 0 && new_count == s.replicas && new_unavailable == 0) {
      out.completed = true;
      out.new_leader = eventually(
          [&] {
            for (const auto& p : pods) {
              auto r = http_call("GET", "http://127.0.0.1:" + std::to_string(p->d.port) + "/readyz", {}, 2s);
              if (r && r->status == 200) return true;
            }
            return false;
          },
          10s);
      return out;
    }
    bool acted = false;
    // Scale the new ReplicaSet up.
    const int max_total = s.replicas + s.max_surge;
    if (new_count < s.replicas && total < max_total) {
      for (int n = std::min(max_total - total, s.replicas - new_count); n > 0; --n) start(true);
      acted = true;
    } else {
      // Scale the old ones down.
      const int min_available = s.replicas - s.max_unavailable;
      int max_scaled_down = total - min_available - new_unavailable;
      auto stop = [&](std::size_t i) {
        auto strict = http_call("GET", "http://127.0.0.1:" + std::to_string(pods[i]->d.port) + "/readyz", {}, 2s);
        const bool leader = strict && strict->status == 200;
        out.steps.push_back("stop " + pods[i]->name + (ready[i] ? " (ready" : " (not ready") +
                            (leader ? ", leader)" : ", standby)"));
        pods[i]->d.proc->signal(SIGTERM);
        pods[i]->d.proc->wait(10s);
        pods.erase(pods.begin() + static_cast<std::ptrdiff_t>(i));
        ready.erase(ready.begin() + static_cast<std::ptrdiff_t>(i));
        acted = true;
      };
      // cleanupUnhealthyReplicas: not-ready old pods first.
      for (std::size_t i = 0; i < pods.size() && max_scaled_down > 0;) {
        if (!pods[i]->is_new && !ready[i]) {
          stop(i);
          --max_scaled_down;
        } else {
          ++i;
        }
      }
      // scaleDownOldReplicaSetsForRollingUpdate: ready old pods while availability allows; the
      // newest first (the ReplicaSet controller deletes younger pods first).
      int avail = 0;
      for (bool r : ready) avail += r;
      int can = avail - min_available;
      for (std::size_t i = pods.size(); i-- > 0 && can > 0;) {
        if (!pods[i]->is_new && ready[i]) {
          stop(i);
          --can;
        }
      }
    }
    if (acted) last_progress = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(300ms);
  }
  return out;
}

std::string dump(const outcome& o) {
  std::string s;
  for (const auto& step : o.steps) s += step + "; ";
  return s;
}

void rolls_through(const json::value& deployment) {
  auto s = strategy_of(deployment);
  CAPTURE(s.replicas);
  CAPTURE(s.max_surge);
  CAPTURE(s.max_unavailable);
  CAPTURE(s.http_path);
  kubesim_instance sim;
  setup_cluster(sim);
  auto o = roll(sim, s, 12s);
  INFO("steps: " << dump(o));
  CHECK(o.completed);
  // A new replica holds Flagger's Lease and drives canaries.
  CHECK(o.new_leader);
  auto holder = sim.kubectl_ok({"-n", "kube-system", "get", "lease", "flagger-leader-election", "-o",
                                "jsonpath={.spec.holderIdentity}"});
  CHECK(!holder.empty());
  MESSAGE("rollout: " << dump(o));
  // Both old replicas went, the standby first and the leader after it.
  CHECK(std::count(o.steps.begin(), o.steps.end(), "stop old-2 (ready, standby)") == 1);
  CHECK(std::count(o.steps.begin(), o.steps.end(), "stop old-1 (ready, leader)") == 1);
}

}  // namespace

TEST_CASE("deploy/deployment.yaml: a rolling update replaces the standby and the leader in turn") {
  rolls_through(deployment_in(source_root() / "deploy" / "deployment.yaml"));
}

TEST_CASE("the chart's Deployment (leader election, 2 replicas): a rolling update replaces the standby and the leader") {
  temp_dir dir;
  auto r = run({"python3", (source_root() / "scripts" / "render-chart").string(), (source_root() / "deploy" / "chart").string(),
                "--set", "leaderElection.enabled=true", "--set", "leaderElection.replicaCount=2", "--namespace",
                "flagger-system"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  auto rendered = dir.path() / "rendered.yaml";
  std::ofstream(rendered) << r.out;
  auto d = deployment_in(rendered);
  // The chart's probe is an exec of wget, as Flagger's: the test runs it.
  CHECK(d.at_pointer("/spec/template/spec/containers/0/readinessProbe/exec/command/0").as_string() == "wget");
  rolls_through(d);
}

TEST_CASE("the manifest before the fix (readiness on /readyz, maxSurge 0, maxUnavailable 1) stalls the update") {
  json::value old = deployment_in(source_root() / "deploy" / "deployment.yaml");
  auto& spec = old.at("spec").as_object();
  spec["strategy"] = json::parse(R"({"type":"RollingUpdate","rollingUpdate":{"maxSurge":0,"maxUnavailable":1}})");
  spec["template"].as_object()["spec"].as_object()["containers"].as_array()[0].as_object()["readinessProbe"] =
      json::parse(R"({"httpGet":{"path":"/readyz","port":"http"}})");
  auto s = strategy_of(old);
  kubesim_instance sim;
  setup_cluster(sim);
  auto o = roll(sim, s, 6s);
  INFO("steps: " << dump(o));
  CHECK_FALSE(o.completed);
  // The standby went first (not ready), its replacement is a standby too, and the leader stays.
  REQUIRE(o.steps.size() >= 3);
  CHECK(o.steps[2] == "stop old-2 (not ready, standby)");
  CHECK(o.steps.back() == "start new-3");
}
