// Webhook gates end to end: the real canaryd, the real canary-loadtester and kubesim, with
// Flagger's manifests' webhook types pointing at the load tester's gate endpoints, as Flagger's
// tutorials wire them (flagger-behaviour.md §3.3, §7).
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <thread>

#include "tests/e2e/harness.hpp"

using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

const std::string podinfo_payload = R"({"name":"podinfo","namespace":"demo"})";

std::string hook(const std::string& name, const std::string& type, const std::string& url,
                 const std::string& metadata = {}) {
  std::string s = "    - name: " + name + "\n      type: " + type + "\n      url: " + url + "\n";
  if (!metadata.empty()) s += "      metadata:\n" + metadata;
  return s;
}

// Holds for `d` that the canary stays in `phase`.
bool stays(const kubesim_instance& sim, const std::string& phase, std::chrono::milliseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (phase_of(sim, "podinfo") != phase) return false;
    std::this_thread::sleep_for(200ms);
  }
  return true;
}

}  // namespace

TEST_CASE("a closed confirm-promotion gate holds the canary in WaitingPromotion; opening it promotes") {
  loadtester lt;
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo", "    webhooks:\n" + hook("approval", "confirm-promotion", lt.url() + "/gate/check")));
  release(sim, "6.0.1");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "WaitingPromotion", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(stays(sim, "WaitingPromotion", 3s));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement waiting for promotion approval approval"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");

  CHECK(lt.post("/gate/open", podinfo_payload).status == 202);
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
}

TEST_CASE("a closed confirm-rollout gate keeps a new revision Waiting, with the target not scaled up, until approved") {
  loadtester lt;
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo", "    webhooks:\n" + hook("rollout-gate", "confirm-rollout", lt.url() + "/gate/check")));
  release(sim, "6.0.2");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Waiting", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(stays(sim, "Waiting", 3s));
  CHECK(replicas_of(sim, "podinfo") == 0);
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement waiting for approval rollout-gate"), dump(evs));

  CHECK(lt.post("/gate/open", podinfo_payload).status == 202);
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.2");
}

TEST_CASE("opening the load tester's rollback gate during the analysis rolls back at once") {
  loadtester lt;
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  std::string c = canary_yaml("podinfo", "podinfo", "    webhooks:\n" + hook("rollback", "rollback", lt.url() + "/rollback/check"));
  c.replace(c.find("iterations: 3"), 13, "iterations: 60");  // a long analysis to interrupt
  init_podinfo(sim, c);
  release(sim, "6.0.3");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Progressing", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(stays(sim, "Progressing", 2s));  // the closed rollback gate changes nothing

  CHECK(lt.post("/rollback/open", podinfo_payload).status == 202);
  auto opened = std::chrono::steady_clock::now();
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Failed", 10s), dump(canary_events(sim, "podinfo")));
  MESSAGE("rollback gate opened -> Failed observed in "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - opened).count() << " ms");
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Rolling back podinfo.demo manual webhook invoked"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
}

TEST_CASE("a pre-rollout bash command that exits non-zero is a failed check, and the canary fails at the threshold") {
  loadtester lt;
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    webhooks:\n" + hook("smoke", "pre-rollout", lt.url() + "/",
                                                        "        type: bash\n        cmd: \"echo smoke test failed; exit 3\"\n")));
  release(sim, "6.0.4");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Failed", 30s), dump(canary_events(sim, "podinfo")));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement pre-rollout check smoke failed"), dump(evs));
  CHECK(has_event(evs, "Warning", "exit status 3"));
  CHECK(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 2"));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
}

TEST_CASE("hooks at a closed port or a server that never answers are reported, and the canary fails as Flagger's would") {
  // A listener that accepts connections and never answers: the hook is cut at its timeout.
  const int silent_port = free_port();
  child silent({"python3", "-c",
                "import socket,sys,time\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n"
                "conns=[]\n"
                "while True: conns.append(s.accept())\n",
                std::to_string(silent_port)});
  REQUIRE(silent.wait_for_line("listening", 10s));
  std::string name, url, expect;
  SUBCASE("a closed port") {
    name = "closed";
    url = "http://127.0.0.1:" + std::to_string(free_port()) + "/";
    expect = "connection failed";
  }
  SUBCASE("a server that never answers, cut at the hook's timeout") {
    name = "never";
    url = "http://127.0.0.1:" + std::to_string(silent_port) + "/";
    expect = "deadline exceeded";
  }
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo", "    webhooks:\n" + hook(name, "rollout", url) + "      timeout: 2s\n"));
  release(sim, "6.0.5");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Failed", 60s), dump(canary_events(sim, "podinfo")));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement external check " + name + " failed"), dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", expect), dump(evs));
  CHECK(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 2"));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
}

TEST_CASE("every event reaches the canary's event webhooks, or the -event-webhook flag's, with Flagger's payload") {
  webhook_receiver receiver;
  kubesim_instance sim;
  setup_cluster(sim);
  bool global = false;
  SUBCASE("a type: event webhook of the canary") {}
  SUBCASE("-event-webhook when the canary has none") { global = true; }
  auto d = start_canaryd(sim, global ? std::vector<std::string>{"-event-webhook", receiver.url() + "/events"}
                                     : std::vector<std::string>{});
  init_podinfo(sim, global ? canary_yaml("podinfo", "podinfo")
                           : canary_yaml("podinfo", "podinfo",
                                         "    webhooks:\n" + hook("notify", "event", receiver.url() + "/events",
                                                                 "        team: blue\n        eventType: overridden\n")));
  release(sim, "6.0.7");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 30s), dump(canary_events(sim, "podinfo")));
  std::vector<boost::json::value> got;
  const bool promoted_seen = eventually(
      [&] {
        got = receiver.received();
        for (const auto& p : got)
          if (str_at(p, {"body", "metadata", "eventMessage"}) == "Promotion completed! Scaling down podinfo.demo") return true;
        return false;
      },
      10s);
  REQUIRE_MESSAGE(promoted_seen, got.size() << " payloads received");
  bool revision_seen = false;
  for (const auto& p : got) {
    INFO(boost::json::serialize(p));
    CHECK(str_at(p, {"path"}) == "/events");
    CHECK(str_at(p, {"body", "name"}) == "podinfo");
    CHECK(str_at(p, {"body", "namespace"}) == "demo");
    const std::string type = str_at(p, {"body", "metadata", "eventType"});
    CHECK((type == "Normal" || type == "Warning"));
    const std::string ts = str_at(p, {"body", "metadata", "timestamp"});
    CHECK(ts.size() >= 13);
    CHECK(ts.find_first_not_of("0123456789") == std::string::npos);
    if (!global) CHECK(str_at(p, {"body", "metadata", "team"}) == "blue");
    if (str_at(p, {"body", "metadata", "eventMessage"}) == "New revision detected! Scaling up podinfo.demo") revision_seen = true;
  }
  CHECK(revision_seen);
}

TEST_CASE("a closed confirm-traffic-increase gate holds the istio weight; opening it lets the canary progress and promote") {
  loadtester lt;
  kubesim_instance sim;
  setup_cluster(sim);
  REQUIRE(install_published_crds(sim, "istio"));
  auto d = start_canaryd(sim);
  std::string c = canary_yaml("podinfo", "podinfo", "    maxWeight: 60\n    stepWeight: 20\n    webhooks:\n" +
                                                        hook("traffic-gate", "confirm-traffic-increase", lt.url() + "/gate/check"));
  c.replace(c.find("  provider: kubernetes\n"), 22, "  provider: istio\n");
  c.replace(c.find("    iterations: 3\n"), 18, "");
  init_podinfo(sim, c);
  release(sim, "6.0.8");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Progressing", 30s), dump(canary_events(sim, "podinfo")));
  auto weight = [&] { return std::stoi("0" + str_at(get_json(sim, {"canary", "podinfo"}), {"status", "canaryWeight"})); };
  // Held: the weight does not grow while the gate is closed.
  std::this_thread::sleep_for(1500ms);
  const int held = weight();
  CHECK(held < 60);
  std::this_thread::sleep_for(3s);
  CHECK(weight() == held);
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement waiting for traffic increase approval traffic-gate"), dump(evs));

  CHECK(lt.post("/gate/open", podinfo_payload).status == 202);
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 30s), dump(canary_events(sim, "podinfo")));
  CHECK(has_event(canary_events(sim, "podinfo"), "Normal", "Advance podinfo.demo canary weight 60"));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.8");
}
