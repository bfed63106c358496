// The Gateway API provider end to end, for `gatewayapi:v1` and `gatewayapi:v1beta1`: the real
// canaryd, kubesim with the published Gateway API CRDs (../shared/reference/crds/gatewayapi,
// installed with kubectl create, so kubesim prunes, defaults and validates what canaryd writes as
// a real API server would) and kubectl. The HTTPRoute is read at every step.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <thread>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

const char* const gateway = R"(apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: kubesim
spec:
  controllerName: kubesim.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway
  namespace: demo
spec:
  gatewayClassName: kubesim
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
)";

// Flagger's Gateway API e2e Canary (test/gatewayapi) in namespace demo, analysed every second.
std::string gateway_canary(const std::string& provider, const std::string& analysis,
                           const std::string& spec_extra = "") {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: podinfo\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider: \"" + provider + "\"\n" + spec_extra +
         "  targetRef:\n"
         "    apiVersion: apps/v1\n"
         "    kind: Deployment\n"
         "    name: podinfo\n"
         "  progressDeadlineSeconds: 60\n"
         "  service:\n"
         "    port: 9898\n"
         "    targetPort: 9898\n"
         "    hosts:\n"
         "    - www.example.com\n"
         "    gatewayRefs:\n"
         "    - name: gateway\n"
         "      namespace: demo\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: 5\n" + analysis;
}

struct weights {
  int primary = -1, canary = -1;
  bool mirrored = false;
  bool operator==(const weights&) const = default;
};

// As canaryd reads them back: the last rule with the canary backendRef; mirrored when a rule has
// a RequestMirror filter to podinfo-canary.
weights weights_of(const json::value& hr) {
  weights w;
  if (hr.is_null()) return w;
  boost::system::error_code ec;
  const auto* rules = hr.find_pointer("/spec/rules", ec);
  if (!rules || !rules->is_array()) return w;
  for (const auto& r : rules->as_array()) {
    int p = -1, c = -1;
    for (const auto& b : r.at("backendRefs").as_array()) {
      const auto name = str_at(b, {"name"});
      const int weight = static_cast<int>(b.at("weight").to_number<std::int64_t>());
      if (name == "podinfo-primary") p = weight;
      if (name == "podinfo-canary") c = weight;
    }
    if (c >= 0) w = weights{p, c, w.mirrored};
    if (const auto* f = r.as_object().if_contains("filters")) {
      for (const auto& filter : f->as_array()) {
        if (str_at(filter, {"type"}) == "RequestMirror" && str_at(filter, {"requestMirror", "backendRef", "name"}) == "podinfo-canary")
          w.mirrored = true;
      }
    }
  }
  return w;
}

json::value http_route(const kubesim_instance& sim, const std::string& version = "v1") {
  return get_json(sim, {"httproutes." + version + ".gateway.networking.k8s.io", "podinfo"});
}

weights route_weights(const kubesim_instance& sim) { return weights_of(http_route(sim)); }

bool follow_weights(const kubesim_instance& sim, const std::string& phase, std::chrono::milliseconds limit,
                    std::vector<int>& seen) {
  return eventually(
      [&] {
        weights w = route_weights(sim);
        if (w.canary >= 0 && (seen.empty() || seen.back() != w.canary)) seen.push_back(w.canary);
        return phase_of(sim, "podinfo") == phase;
      },
      limit);
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += std::to_string(x) + " ";
  return s;
}

// kubesim with the published Gateway API CRDs, a Gateway, podinfo, and canaryd.
struct gateway_cluster {
  kubesim_instance sim;
  daemon_run d;
  bool ready = false;
  explicit gateway_cluster(kubesim_options ko = {}) : sim(std::move(ko)) {
    setup_cluster(sim);
    if (!install_published_crds(sim, "gatewayapi")) return;
    sim.kubectl_ok({"apply", "-f", "-"}, gateway);
    std::vector<std::string> args{"-mesh-provider", "gatewayapi:v1"};
    if (!sim.prometheus_url().empty()) args.insert(args.end(), {"-metrics-server", sim.prometheus_url()});
    d = start_canaryd(sim, args);
    ready = true;
  }
};

}  // namespace

TEST_CASE("Gateway API: the HTTPRoute's weights follow stepWeight to maxWeight, then a stepWeights ladder, then promotion") {
  for (std::string version : {"v1", "v1beta1"}) {
    CAPTURE(version);
    gateway_cluster cluster;
    if (!cluster.ready) return;
    auto& sim = cluster.sim;
    init_podinfo(sim, gateway_canary("gatewayapi:" + version, "    maxWeight: 50\n    stepWeight: 10\n"));

    // Initialization: the HTTPRoute with the Canary's parentRefs and hostnames, all on the primary.
    auto hr = http_route(sim, version);
    REQUIRE(!hr.is_null());
    CHECK(hr.at_pointer("/spec/parentRefs/0/name") == "gateway");
    CHECK(hr.at_pointer("/spec/parentRefs/0/namespace") == "demo");
    CHECK(hr.at_pointer("/spec/hostnames") == json::parse(R"(["www.example.com"])"));
    CHECK(hr.at_pointer("/spec/rules/0/matches") == json::parse(R"([{"path":{"type":"PathPrefix","value":"/"}}])"));
    CHECK(hr.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");
    CHECK(route_weights(sim) == weights{100, 0, false});
    const auto rv = str_at(http_route(sim), {"metadata", "resourceVersion"});

    release(sim, "6.0.1");
    std::vector<int> seen;
    bool done = follow_weights(sim, "Succeeded", 60s, seen);
    auto evs = canary_events(sim, "podinfo");
    REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(evs));
    const std::vector<int> expected{0, 10, 20, 30, 40, 50, 0};
    CHECK_MESSAGE(seen == expected, "weights seen: " << join(seen));
    CHECK(route_weights(sim) == weights{100, 0, false});
    CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
    CHECK(has_event(evs, "Normal", "Advance podinfo.demo canary weight 50"));
    CHECK(str_at(http_route(sim), {"metadata", "resourceVersion"}) != rv);

    // A stepWeights ladder: exactly those weights, then promotion.
    sim.kubectl_ok({"-n", "demo", "patch", "canary", "podinfo", "--type", "merge", "-p",
                    R"({"spec":{"analysis":{"stepWeight":null,"stepWeights":[5,25,60]}}})"});
    REQUIRE(wait_phase(sim, "podinfo", "Succeeded", 10s));
    release(sim, "6.0.2");
    seen.clear();
    done = follow_weights(sim, "Succeeded", 60s, seen);
    if (!seen.empty() && seen.front() == 0) seen.erase(seen.begin());
    REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(canary_events(sim, "podinfo")));
    const std::vector<int> ladder{5, 25, 60, 0};
    CHECK_MESSAGE(seen == ladder, "weights seen: " << join(seen));
    CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.2");

    // Idle once promoted: the HTTPRoute is not written again.
    const auto settled = str_at(http_route(sim), {"metadata", "resourceVersion"});
    std::this_thread::sleep_for(3s);
    CHECK(str_at(http_route(sim), {"metadata", "resourceVersion"}) == settled);
  }
}

TEST_CASE("Gateway API A/B: the header and cookie matches go to the canary during the iterations, the rest to the primary") {
  gateway_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1",
                                   "    iterations: 8\n"
                                   "    match:\n"
                                   "    - headers:\n"
                                   "        x-canary:\n"
                                   "          exact: insider\n"
                                   "    - headers:\n"
                                   "        cookie:\n"
                                   "          regex: \"^(.*?;)?(canary=always)(;.*)?$\"\n"));
  release(sim, "6.0.1");
  REQUIRE(eventually([&] { return route_weights(sim) == weights{0, 100, false}; }, 30s));
  auto hr = http_route(sim);
  const auto& rules = hr.at_pointer("/spec/rules").as_array();
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].at("matches") == json::parse(R"([
      {"path":{"type":"PathPrefix","value":"/"},"headers":[{"name":"x-canary","type":"Exact","value":"insider"}]},
      {"path":{"type":"PathPrefix","value":"/"},"headers":[{"name":"cookie","type":"RegularExpression","value":"^(.*?;)?(canary=always)(;.*)?$"}]}])"));
  CHECK(rules[1].at("matches") == json::parse(R"([{"path":{"type":"PathPrefix","value":"/"}}])"));
  REQUIRE(rules[1].at("backendRefs").as_array().size() == 1);
  CHECK(str_at(rules[1].at("backendRefs").as_array()[0], {"name"}) == "podinfo-primary");

  std::vector<int> seen;
  bool done = follow_weights(sim, "Succeeded", 60s, seen);
  REQUIRE_MESSAGE(done, "weights seen: " << join(seen) << "\nevents:\n" << dump(canary_events(sim, "podinfo")));
  CHECK(route_weights(sim) == weights{100, 0, false});
  CHECK(has_event(canary_events(sim, "podinfo"), "Normal", "Advance podinfo.demo canary iteration 8/8"));
}

TEST_CASE("Gateway API blue/green with mirroring: mirrored, then all traffic to the canary, then promotion") {
  gateway_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1beta1", "    iterations: 5\n    mirror: true\n"));
  release(sim, "6.0.1");
  std::vector<std::string> states;
  bool done = eventually(
      [&] {
        weights w = route_weights(sim);
        if (w.canary >= 0) {
          std::string st = std::to_string(w.primary) + "/" + std::to_string(w.canary) + (w.mirrored ? " mirrored" : "");
          if (states.empty() || states.back() != st) states.push_back(st);
        }
        return phase_of(sim, "podinfo") == "Succeeded";
      },
      60s);
  std::string text;
  for (const auto& st : states) text += "[" + st + "] ";
  REQUIRE_MESSAGE(done, "states: " << text << "\nevents:\n" << dump(canary_events(sim, "podinfo")));
  const std::vector<std::string> expected{"100/0", "100/0 mirrored", "0/100", "100/0"};
  CHECK_MESSAGE(states == expected, "states: " << text);
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Stop traffic mirroring and route all traffic to canary"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
}

TEST_CASE("Gateway API session affinity: the canary's cookie is set and made sticky while it has weight, then deleted") {
  gateway_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1",
                                   "    maxWeight: 30\n    stepWeight: 10\n"
                                   "    sessionAffinity:\n      cookieName: flagger-cookie\n      maxAge: 21600\n"));
  release(sim, "6.0.1");
  REQUIRE(eventually([&] { return route_weights(sim).canary > 0; }, 30s));
  std::string cookie;
  REQUIRE(eventually(
      [&] {
        cookie = str_at(get_json(sim, {"canary", "podinfo"}), {"status", "sessionAffinityCookie"});
        return !cookie.empty();
      },
      10s));
  CHECK(cookie.rfind("flagger-cookie=", 0) == 0);
  const std::string value = cookie.substr(cookie.find('=') + 1);
  json::value hr;
  const json::array* rules = nullptr;
  // The sticky rule and the weighted rule's Set-Cookie (the same write; re-read until both show).
  REQUIRE(eventually(
      [&] {
        hr = http_route(sim);
        rules = &hr.at_pointer("/spec/rules").as_array();
        return rules->size() == 2 &&
               str_at(rules->at(0).at("matches").as_array()[0].at("headers").as_array()[0], {"value"}) ==
                   ".*flagger-cookie.*" + value + ".*";
      },
      10s));
  CHECK(str_at(rules->at(0).at("backendRefs").as_array()[1], {"name"}) == "podinfo-canary");
  CHECK(rules->at(0).at_pointer("/backendRefs/1/weight") == 100);
  bool set_cookie = false;
  for (const auto& b : rules->at(1).at("backendRefs").as_array()) {
    if (str_at(b, {"name"}) != "podinfo-canary") continue;
    set_cookie = b.at_pointer("/filters/0/responseHeaderModifier/add/0/value") == json::value(cookie + "; Max-Age=21600");
  }
  CHECK_MESSAGE(set_cookie, json::serialize(hr));

  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  auto status = get_json(sim, {"canary", "podinfo"});
  CHECK(str_at(status, {"status", "sessionAffinityCookie"}).empty());
  CHECK(str_at(status, {"status", "previousSessionAffinityCookie"}) == cookie);
  hr = http_route(sim);
  CHECK(hr.at_pointer("/spec/rules/0/filters/0/responseHeaderModifier/add/0/value") == json::value(cookie + "; Max-Age=-1"));
  CHECK(route_weights(sim) == weights{100, 0, false});
}

TEST_CASE("Gateway API revertOnDeletion: the apex Service selects the target again and the target is scaled back up") {
  gateway_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1", "    maxWeight: 50\n    stepWeight: 10\n", "  revertOnDeletion: true\n"));
  REQUIRE(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  CHECK(str_at(get_json(sim, {"service", "podinfo"}), {"spec", "selector", "app"}) == "podinfo-primary");
  const auto before = http_route(sim);
  REQUIRE(!before.is_null());

  sim.kubectl_ok({"-n", "demo", "delete", "canary", "podinfo", "--wait=false"});
  REQUIRE_MESSAGE(eventually([&] { return get_json(sim, {"canary", "podinfo"}).is_null(); }, 30s),
                  dump(canary_events(sim, "podinfo")));
  CHECK(str_at(get_json(sim, {"service", "podinfo"}), {"spec", "selector", "app"}) == "podinfo");
  CHECK(replicas_of(sim, "podinfo") > 0);
  // Flagger's Gateway API Finalize restores nothing: the HTTPRoute, owned by the Canary, goes
  // with it (kubesim's garbage collector).
  CHECK(eventually([&] { return http_route(sim).is_null(); }, 10s));
}
