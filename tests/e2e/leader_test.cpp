// Leader election end to end: two real canaryd replicas against kubesim share the Lease
// flagger-leader-election. The standby is alive but not ready; it takes over a killed leader's
// rollout within the lease duration; a leader that was frozen past its lease never writes again
// (kubesim's request log says so) and exits 1.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <thread>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// Short durations so the test takes seconds: 3 s lease, 2 s renew deadline, 0.5 s retry.
const std::vector<std::string> election_flags{"-enable-leader-election",
                                              "-leader-election-namespace=demo",
                                              "-leader-election-lease-duration=3s",
                                              "-leader-election-renew-deadline=2s",
                                              "-leader-election-retry-period=500ms"};

int http_status(int port, const std::string& path) {
  auto r = http_call("GET", "http://127.0.0.1:" + std::to_string(port) + path, {}, 2s);
  return r ? r->status : 0;
}

// The identity a replica logged when it became the leader.
std::string leader_identity_of(daemon_run& d, std::chrono::milliseconds limit) {
  auto line = d.proc->wait_for_line("became the leader", limit);
  if (!line) return {};
  return std::string(json::parse(*line).at("identity").as_string());
}

// A canary that runs long enough to be interrupted: 20 iterations of 1 s.
std::string long_canary() {
  std::string c = canary_yaml("podinfo", "podinfo");
  c.replace(c.find("iterations: 3"), 13, "iterations: 20");
  c.replace(c.find("threshold: 2"), 12, "threshold: 5");
  return c;
}

}  // namespace

TEST_CASE("a standby is alive but not ready, and takes over a killed leader's rollout within the lease duration") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto a = start_canaryd(sim, election_flags);
  const std::string a_id = leader_identity_of(a, 10s);
  REQUIRE_MESSAGE(!a_id.empty(), "the first replica did not become the leader");
  auto b = start_canaryd(sim, election_flags);
  bool trying = false;
  for (const auto& l : b.proc->lines()) trying = trying || l.find("trying to acquire the lease") != std::string::npos;
  CHECK(trying);
  CHECK(http_status(a.port, "/readyz") == 200);
  CHECK(http_status(b.port, "/healthz") == 200);
  CHECK(http_status(b.port, "/readyz") == 503);
  auto lease = get_json(sim, {"lease", "flagger-leader-election"});
  CHECK(str_at(lease, {"spec", "holderIdentity"}) == a_id);

  init_podinfo(sim, long_canary());
  release(sim, "6.0.1");
  REQUIRE(wait_phase(sim, "podinfo", "Progressing", 30s));
  std::this_thread::sleep_for(2s);
  a.proc->signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const std::string b_id = leader_identity_of(b, 10s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed);
  REQUIRE_MESSAGE(!b_id.empty(), "the standby did not take over");
  MESSAGE("leader SIGKILLed -> standby leads after " << took.count() << " ms (lease 3 s, retry 0.5 s)");
  CHECK(took < 4500ms);
  CHECK(b_id != a_id);
  CHECK(eventually([&] { return http_status(b.port, "/readyz") == 200; }, 2s));

  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(has_event(canary_events(sim, "podinfo"), "Normal", "Advance podinfo.demo canary iteration 20/20"));
  lease = get_json(sim, {"lease", "flagger-leader-election"});
  CHECK(str_at(lease, {"spec", "holderIdentity"}) == b_id);
}

TEST_CASE("a leader frozen past its lease never writes again after it wakes, and exits 1") {
  temp_dir tmp;
  const auto request_log = tmp.path() / "requests.jsonl";
  kubesim_options ko;
  ko.extra_args = {"--request-log", request_log.string()};
  kubesim_instance sim(ko);
  setup_cluster(sim);
  auto a = start_canaryd(sim, election_flags);
  const std::string a_id = leader_identity_of(a, 10s);
  REQUIRE(!a_id.empty());
  auto b = start_canaryd(sim, election_flags);
  init_podinfo(sim, long_canary());
  release(sim, "6.0.1");
  REQUIRE(wait_phase(sim, "podinfo", "Progressing", 30s));
  std::this_thread::sleep_for(1500ms);

  // Freeze the leader mid-rollout, past its lease: its canary's timer comes due meanwhile.
  a.proc->signal(SIGSTOP);
  const std::string b_id = leader_identity_of(b, 10s);
  REQUIRE_MESSAGE(!b_id.empty(), "the standby did not take over from the frozen leader");
  std::this_thread::sleep_for(1s);
  const std::size_t before_wake = requests(request_log).size();
  a.proc->signal(SIGCONT);
  auto code = a.proc->wait(10s);
  REQUIRE_MESSAGE(code, "the woken former leader did not exit");
  CHECK(*code == 1);
  CHECK(a.proc->wait_for_line("leader election lost", 1s));

  // Nothing but reads from the former leader once it woke (its attempt to renew the Lease, which
  // the server refuses with 409 because the new leader's resourceVersion replaced it, is the
  // election itself, not a write to anything it manages).
  const std::string a_agent_suffix = "(" + a_id + ")";
  auto log = requests(request_log);
  int writes_after_wake = 0;
  for (std::size_t i = before_wake; i < log.size(); ++i) {
    const std::string ua(log[i].at("user_agent").as_string());
    const std::string method(log[i].at("method").as_string());
    const std::string path(log[i].at("path").as_string());
    if (ua.find(a_agent_suffix) != std::string::npos && method != "GET" && !path.starts_with("/apis/coordination.k8s.io/")) {
      ++writes_after_wake;
      MESSAGE("write from the former leader: " << json::serialize(log[i]));
    }
  }
  CHECK(writes_after_wake == 0);
  // The new leader finishes the rollout.
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
}
