// The istio provider end to end: Flagger's istio example Canary (shared/reference) with short
// intervals, the real canaryd, kubesim with Istio's CRDs and a real Prometheus that scrapes
// kubesim's emulated Istio telemetry. The VirtualService weights are read at every step.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <thread>

#include "tests/e2e/harness.hpp"
#include "tests/support/prometheus.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

void replace_once(std::string& text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "the example no longer contains: " << from);
  text.replace(at, from.size(), to);
}

// Flagger's examples/istio-canary.yaml in namespace demo, analysed every second, without its
// webhooks (they call a load tester inside Flagger's test cluster).
std::string istio_example() {
  auto ref = shared_reference();
  REQUIRE_MESSAGE(ref, "the shared Flagger reference is not available");
  std::string text = read_text(*ref / "flagger" / "examples" / "istio-canary.yaml");
  replace_once(text, "namespace: test", "namespace: demo");
  replace_once(text, "interval: 15s", "interval: 1s");
  text = text.substr(0, text.find("    webhooks:"));
  return text;
}

struct weights {
  int primary = -1, canary = -1;
  bool operator==(const weights&) const = default;
};

// The weights of http[0] of a VirtualService as read (-1 where absent).
weights weights_of(const json::value& vs) {
  weights w;
  if (vs.is_null()) return w;
  const json::value* http = vs.at_pointer("/spec").as_object().if_contains("http");
  if (!http || !http->is_array() || http->as_array().empty()) return w;
  for (const auto& d : http->as_array()[0].at("route").as_array()) {
    const auto host = str_at(d, {"destination", "host"});
    const auto* wv = d.as_object().if_contains("weight");
    const int value = wv ? static_cast<int>(wv->to_number<std::int64_t>()) : 0;
    if (host == "podinfo-primary") w.primary = value;
    if (host == "podinfo-canary") w.canary = value;
  }
  return w;
}

weights vs_weights(const kubesim_instance& sim) { return weights_of(get_json(sim, {"virtualservice", "podinfo"})); }

// Polls the VirtualService until the canary reaches `phase`, recording every distinct canary
// weight in the order seen.
bool follow_weights(const kubesim_instance& sim, const std::string& phase, std::chrono::milliseconds limit,
                    std::vector<int>& seen) {
  // The run counts as ended only after its phase was seen to be another: right after a release
  // the canary may still show the previous run's phase (Succeeded) until canaryd sees the
  // new revision, which under a sanitizer can take longer than one poll.
  bool left = false;
  return eventually(
      [&] {
        weights w = vs_weights(sim);
        if (w.canary >= 0 && (seen.empty() || seen.back() != w.canary)) seen.push_back(w.canary);
        const bool there = phase_of(sim, "podinfo") == phase;
        if (!there) left = true;
        return left && there;
      },
      limit);
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += std::to_string(x) + " ";
  return s;
}

// Releases a new revision of podinfo whose pods get `annotation: value` (kubesim's behaviour
// knobs), and expects its checks to fail with `halt_event` until the canary is rolled back to
// 100/0 at the example's threshold of 10, the primary still on 6.0.0. Returns the weights seen.
std::vector<int> expect_rollback(const kubesim_instance& sim, const std::string& annotation, const std::string& value,
                                 const std::string& halt_event) {
  sim.kubectl_ok({"-n", "demo", "patch", "deployment/podinfo", "--type", "merge", "-p",
                  R"({"spec":{"template":{"metadata":{"annotations":{")" + annotation + R"(":")" + value + R"("}}}}})"});
  std::vector<int> seen;
  bool failed = follow_weights(sim, "Failed", 120s, seen);
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "weights seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", halt_event), dump(evs));
  CHECK(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 10"));
  CHECK(vs_weights(sim) == weights{100, 0});
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  return seen;
}

void setup_istio(const kubesim_instance& sim) {
  setup_cluster(sim);
  // Istio's published CRDs (kubesim prunes and validates what canaryd writes with them).
  REQUIRE(install_published_crds(sim, "istio"));
  auto ref = shared_reference();
  REQUIRE(ref);
  sim.kubectl_ok({"-n", "demo", "apply", "-f", (*ref / "flagger" / "workloads" / "podinfo-hpa.yaml").string()});
}

// kubesim with a real Prometheus and Istio's CRDs, and canaryd for the istio provider on it.
struct istio_cluster {
  kubesim_instance sim{with_prometheus()};
  daemon_run d;
  istio_cluster() {
    setup_istio(sim);
    d = start_canaryd(sim, {"-mesh-provider", "istio", "-metrics-server", sim.prometheus_url()});
  }
  static kubesim_options with_prometheus() {
    kubesim_options ko;
    ko.prometheus = true;
    return ko;
  }
};

}  // namespace

TEST_CASE("Flagger's istio example shifts the VirtualService weights step by step, promotes, and rolls back a failing release") {
  istio_cluster cluster;
  auto& sim = cluster.sim;
  auto& d = cluster.d;
  init_podinfo(sim, istio_example());

  // Initialization: DestinationRules with the example's trafficPolicy and the VirtualService
  // with its hosts and gateways, all traffic on the primary.
  for (std::string dr : {"podinfo-primary", "podinfo-canary"}) {
    auto v = get_json(sim, {"destinationrule", dr});
    REQUIRE_MESSAGE(!v.is_null(), "DestinationRule " << dr << " missing");
    CHECK(str_at(v, {"spec", "host"}) == dr);
    CHECK(str_at(v, {"spec", "trafficPolicy", "tls", "mode"}) == "DISABLE");
  }
  auto vs = get_json(sim, {"virtualservice", "podinfo"});
  REQUIRE(!vs.is_null());
  CHECK(vs.at_pointer("/spec/hosts") == json::parse(R"(["app.example.com","podinfo"])"));
  CHECK(vs.at_pointer("/spec/gateways") == json::parse(R"(["istio-system/public-gateway","mesh"])"));
  CHECK(vs_weights(sim) == weights{100, 0});
  CHECK(eventually([&] { return !get_json(sim, {"hpa", "podinfo-primary"}).is_null(); }, 10s));

  SUBCASE("a healthy release: stepWeight 5 up to maxWeight 50, then promotion to 100/0") {
    release(sim, "6.0.1");
    std::vector<int> seen;
    bool done = follow_weights(sim, "Succeeded", 120s, seen);
    auto evs = canary_events(sim, "podinfo");
    REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(evs));
    const std::vector<int> expected{0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 0};
    CHECK_MESSAGE(seen == expected, "weights seen: " << join(seen));
    CHECK(vs_weights(sim) == weights{100, 0});
    CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
    CHECK(has_event(evs, "Normal", "Advance podinfo.demo canary weight 50"));

    // A stepWeights ladder: exactly those weights, then promotion.
    sim.kubectl_ok({"-n", "demo", "patch", "canary", "podinfo", "--type", "merge", "-p",
                    R"({"spec":{"analysis":{"stepWeight":null,"stepWeights":[10,30,50]}}})"});
    REQUIRE(wait_phase(sim, "podinfo", "Succeeded", 10s));
    release(sim, "6.0.2");
    seen.clear();
    done = follow_weights(sim, "Succeeded", 120s, seen);
    // The first poll may still see the end of the previous run (0).
    if (!seen.empty() && seen.front() == 0) seen.erase(seen.begin());
    REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(canary_events(sim, "podinfo")));
    const std::vector<int> ladder{10, 30, 50, 0};
    CHECK_MESSAGE(seen == ladder, "weights seen: " << join(seen));
    CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.2");
  }

  SUBCASE("a release answering 30 % with 500 fails request-success-rate and rolls back to 100/0") {
    auto seen = expect_rollback(sim, "kubesim.dev/error-rate", "0.3", "Halt podinfo.demo advancement success rate");
    // It never got to maxWeight. (It does pass a few steps: the 1m rate window still holds the
    // error-free requests the target's pods served before initialization scaled them down.)
    for (int w : seen) CHECK(w < 50);
    MESSAGE("weights seen before the rollback: " << join(seen));
  }

  SUBCASE("a release answering in 800 ms fails request-duration and rolls back to 100/0") {
    expect_rollback(sim, "kubesim.dev/latency-ms", "800", "Halt podinfo.demo advancement request duration");
    CHECK(has_event(canary_events(sim, "podinfo"), "Warning", "> 500ms"));
  }

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("Flagger's A/B example sends only the matched requests to the canary during its iterations, then promotes") {
  istio_cluster cluster;
  auto& sim = cluster.sim;
  auto ref = shared_reference();
  REQUIRE(ref);
  std::string c = read_text(*ref / "flagger" / "examples" / "istio-abtest.yaml");
  replace_once(c, "namespace: test", "namespace: demo");
  replace_once(c, "interval: 15s", "interval: 1s");
  replace_once(c, "iterations: 10", "iterations: 15");
  c = c.substr(0, c.find("    webhooks:"));
  // kubesim: a quarter of the apex's requests carry Firefox's user agent, another quarter the
  // insider cookie; nothing else calls the canary.
  replace_once(c, "  service:\n", "  service:\n    apex:\n      annotations:\n"
                                    "        kubesim.dev/header: \"user-agent: Mozilla/5.0 Firefox/120.0\"\n"
                                    "        kubesim.dev/header-share: \"0.25\"\n"
                                    "        kubesim.dev/cookie: \"type=insider\"\n"
                                    "        kubesim.dev/cookie-share: \"0.25\"\n");
  init_podinfo(sim, c);

  release(sim, "6.0.1");
  REQUIRE(eventually([&] { return vs_weights(sim) == weights{0, 100}; }, 30s));
  auto vs = get_json(sim, {"virtualservice", "podinfo"});
  const auto& http = vs.at_pointer("/spec/http").as_array();
  REQUIRE(http.size() == 2);
  CHECK(http[0].at("match").as_array().size() == 2);
  CHECK(str_at(http[0].at("match").as_array()[0], {"headers", "cookie", "regex"}) == "^(.*?;)?(type=insider)(;.*)?$");
  CHECK(str_at(http[0].at("match").as_array()[1], {"headers", "user-agent", "regex"}) == ".*Firefox.*");
  CHECK(str_at(http[1].at("route").as_array()[0], {"destination", "host"}) == "podinfo-primary");

  // Seven seconds into the iterations, the canary serves the marked half of the apex's traffic.
  std::this_thread::sleep_for(7s);
  REQUIRE(phase_of(sim, "podinfo") == "Progressing");
  auto rates = prom_query(sim.prometheus_url(),
                          "sum by (destination_workload) (rate(istio_requests_total{reporter=\"destination\","
                          "destination_workload_namespace=\"demo\"}[5s]))",
                          "destination_workload");
  const double canary = rates["podinfo"], primary = rates["podinfo-primary"];
  MESSAGE("rate by workload during A/B: podinfo " << canary << "/s, podinfo-primary " << primary << "/s");
  REQUIRE(canary + primary > 0);
  CHECK(canary / (canary + primary) > 0.35);
  CHECK(canary / (canary + primary) < 0.65);

  std::vector<int> seen;
  bool done = follow_weights(sim, "Succeeded", 60s, seen);
  REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(canary_events(sim, "podinfo")));
  CHECK(vs_weights(sim) == weights{100, 0});
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(has_event(canary_events(sim, "podinfo"), "Normal", "Advance podinfo.demo canary iteration 15/15"));
}

TEST_CASE("blue/green with mirroring: mirrored first, then all traffic to the canary for one iteration, then promotion") {
  istio_cluster cluster;
  auto& sim = cluster.sim;
  std::string c = istio_example();
  replace_once(c, "    maxWeight: 50\n    stepWeight: 5\n", "    iterations: 5\n    mirror: true\n    mirrorWeight: 100\n");
  init_podinfo(sim, c);

  release(sim, "6.0.1");
  // Distinct (primary, canary, mirrored) states of the VirtualService, in order.
  std::vector<std::string> states;
  bool done = eventually(
      [&] {
        auto vs = get_json(sim, {"virtualservice", "podinfo"});
        if (!vs.is_null()) {
          weights w = weights_of(vs);  // the same read as the mirror: two reads could straddle a write
          const auto& r0 = vs.at_pointer("/spec/http/0").as_object();
          std::string st = std::to_string(w.primary) + "/" + std::to_string(w.canary) + (r0.contains("mirror") ? " mirrored" : "");
          if (states.empty() || states.back() != st) states.push_back(st);
        }
        return phase_of(sim, "podinfo") == "Succeeded";
      },
      90s);
  std::string text;
  for (const auto& st : states) text += "[" + st + "] ";
  REQUIRE_MESSAGE(done, "states: " << text << "\nevents:\n" << dump(canary_events(sim, "podinfo")));
  const std::vector<std::string> expected{"100/0", "100/0 mirrored", "0/100", "100/0"};
  CHECK_MESSAGE(states == expected, "states: " << text);
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Stop traffic mirroring and route all traffic to canary"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
}

TEST_CASE("session affinity: the canary's cookie is set and made sticky while it has weight, and deleted after promotion") {
  istio_cluster cluster;
  auto& sim = cluster.sim;
  std::string c = istio_example();
  replace_once(c, "    maxWeight: 50\n    stepWeight: 5\n",
               "    maxWeight: 30\n    stepWeight: 10\n    sessionAffinity:\n      cookieName: flagger-cookie\n      maxAge: 21600\n");
  init_podinfo(sim, c);

  release(sim, "6.0.1");
  REQUIRE(eventually([&] { return vs_weights(sim).canary > 0; }, 30s));
  std::string cookie;
  REQUIRE(eventually(
      [&] {
        cookie = str_at(get_json(sim, {"canary", "podinfo"}), {"status", "sessionAffinityCookie"});
        return !cookie.empty();
      },
      10s));
  CHECK(cookie.rfind("flagger-cookie=", 0) == 0);
  CHECK(cookie.size() == std::string("flagger-cookie=").size() + 10);
  const std::string value = cookie.substr(cookie.find('=') + 1);
  auto vs = get_json(sim, {"virtualservice", "podinfo"});
  const auto& http = vs.at_pointer("/spec/http").as_array();
  REQUIRE(http.size() == 2);
  CHECK(str_at(http[0], {"name"}) == "sticky-route");
  CHECK(str_at(http[0].at("match").as_array()[0], {"headers", "Cookie", "regex"}) == ".*flagger-cookie.*" + value + ".*");
  bool set_cookie = false;
  for (const auto& dest : http[1].at("route").as_array()) {
    if (str_at(dest, {"destination", "host"}) != "podinfo-canary") continue;
    set_cookie = str_at(dest, {"headers", "response", "add", "Set-Cookie"}) == cookie + "; Max-Age=21600";
  }
  CHECK_MESSAGE(set_cookie, json::serialize(vs));

  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  auto status = get_json(sim, {"canary", "podinfo"});
  CHECK(str_at(status, {"status", "sessionAffinityCookie"}).empty());
  CHECK(str_at(status, {"status", "previousSessionAffinityCookie"}) == cookie);
  vs = get_json(sim, {"virtualservice", "podinfo"});
  CHECK(str_at(vs.at_pointer("/spec/http/0"), {"headers", "response", "add", "Set-Cookie"}) == cookie + "; Max-Age=-1");
  CHECK(vs_weights(sim) == weights{100, 0});
}
