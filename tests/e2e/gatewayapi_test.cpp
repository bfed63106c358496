// The Gateway API provider end to end, for `gatewayapi:v1` and `gatewayapi:v1beta1`: the real
// canaryd, kubesim with the published Gateway API CRDs (../shared/reference/crds/gatewayapi,
// installed with kubectl create, so kubesim prunes, defaults and validates what canaryd writes as
// a real API server would) and kubectl. The HTTPRoute is read at every step.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.hpp"
#include "tests/support/prometheus.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// The Gateway the Canary's gatewayRefs name. kubesim's simulated clients enter through it
// (kubesim.dev/rps) with the Canary's host; `annotations` adds more (A/B marks).
std::string gateway(const std::string& annotations = "") {
  return R"(apiVersion: gateway.networking.k8s.io/v1
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
  annotations:
    kubesim.dev/rps: "20"
    kubesim.dev/hostname: www.example.com
)" + annotations + R"(spec:
  gatewayClassName: kubesim
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
)";
}

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

// Every version of the HTTPRoute, as a kubectl watch delivers them (polling can miss a 1 s
// step on a loaded machine): one line per event, "<backendRef names>|<their weights>|<the
// RequestMirror filters' backends>", each list flattened over the rules in order. (kubectl's
// jsonpath printer prints nested `range`s for the first object of a watch only.)
class route_watch {
 public:
  explicit route_watch(const kubesim_instance& sim)
      : proc_(std::make_unique<child>(
            std::vector<std::string>{"kubectl", "--kubeconfig", sim.kubeconfig().string(), "-n", "demo", "get",
                                     "httproutes.v1.gateway.networking.k8s.io", "podinfo", "--watch", "-o",
                                     "jsonpath={.spec.rules[*].backendRefs[*].name}|{.spec.rules[*].backendRefs[*].weight}|"
                                     "{.spec.rules[*].filters[*].requestMirror.backendRef.name}{\"\\n\"}"},
            std::map<std::string, std::string>{{"HOME", (sim.dir() / "home").string()},
                                               {"KUBECONFIG", sim.kubeconfig().string()}})) {}

  // The states delivered since the last call, in order: the weighted rule's weights (the last
  // rule with the canary backendRef) and whether a rule mirrors to the canary.
  std::vector<weights> poll() {
    proc_->wait_for_line("\x01", 100ms);  // reads what has arrived
    std::vector<weights> out;
    const auto& lines = proc_->lines();
    for (; used_ < lines.size(); ++used_) {
      const std::string& line = lines[used_];
      const auto bar1 = line.find('|');
      const auto bar2 = bar1 == std::string::npos ? std::string::npos : line.find('|', bar1 + 1);
      if (bar2 == std::string::npos) continue;
      auto split = [](const std::string& text) {
        std::istringstream in(text);
        std::vector<std::string> v;
        for (std::string tok; in >> tok;) v.push_back(tok);
        return v;
      };
      const auto names = split(line.substr(0, bar1));
      const auto values = split(line.substr(bar1 + 1, bar2 - bar1 - 1));
      const auto mirrors = split(line.substr(bar2 + 1));
      weights w;
      int last_primary = -1;
      for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
        const int v = std::atoi(values[i].c_str());
        if (names[i] == "podinfo-primary") last_primary = v;
        if (names[i] == "podinfo-canary") {
          w.primary = last_primary;
          w.canary = v;
        }
      }
      for (const auto& m : mirrors) w.mirrored = w.mirrored || m == "podinfo-canary";
      if (w.canary >= 0) out.push_back(w);
    }
    return out;
  }

 private:
  std::unique_ptr<child> proc_;
  std::size_t used_ = 0;
};

// Follows the canary weight through the watch until the canary reaches `phase`.
bool follow_weights(const kubesim_instance& sim, route_watch& watch, const std::string& phase,
                    std::chrono::milliseconds limit, std::vector<int>& seen) {
  auto take = [&] {
    for (const auto& w : watch.poll())
      if (seen.empty() || seen.back() != w.canary) seen.push_back(w.canary);
  };
  // The run counts as ended only after its phase was seen to be another: right after a release
  // the canary may still show the previous run's phase until canaryd sees the new revision.
  bool left = false;
  bool done = eventually(
      [&] {
        take();
        const bool there = phase_of(sim, "podinfo") == phase;
        if (!there) left = true;
        return left && there;
      },
      limit);
  take();
  return done;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += std::to_string(x) + " ";
  return s;
}

// kubesim with the published Gateway API CRDs, a Gateway, podinfo, and canaryd.
// kubesim runs with --default-rps 0: only the Gateway's clients send requests (the apex
// Service's own clients would reach the primary through kube-proxy).
struct gateway_cluster {
  kubesim_instance sim;
  daemon_run d;
  bool ready = false;
  explicit gateway_cluster(bool prometheus = false, const std::string& gateway_annotations = "")
      : sim(options(prometheus)) {
    setup_cluster(sim);
    if (!install_published_crds(sim, "gatewayapi")) return;
    sim.kubectl_ok({"apply", "-f", "-"}, gateway(gateway_annotations));
    std::vector<std::string> args{"-mesh-provider", "gatewayapi:v1"};
    if (!sim.prometheus_url().empty()) args.insert(args.end(), {"-metrics-server", sim.prometheus_url()});
    d = start_canaryd(sim, args);
    ready = true;
  }
  static kubesim_options options(bool prometheus) {
    kubesim_options ko;
    ko.prometheus = prometheus;
    ko.extra_args = {"--default-rps", "0"};
    return ko;
  }
};

}  // namespace

namespace {

// The HTTPRoute's weights follow stepWeight to maxWeight, then a stepWeights ladder, then
// promotion, with the provider `gatewayapi:<version>`.
void weights_scenario(const std::string& version) {
  {
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

    route_watch watch(sim);
    release(sim, "6.0.1");
    std::vector<int> seen;
    bool done = follow_weights(sim, watch, "Succeeded", 60s, seen);
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
    watch.poll();  // the end of the previous run
    release(sim, "6.0.2");
    seen.clear();
    done = follow_weights(sim, watch, "Succeeded", 60s, seen);
    // An event of the previous run's end may arrive after the drain above.
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

}  // namespace

TEST_CASE("gatewayapi:v1: the HTTPRoute's weights follow stepWeight to maxWeight, then a stepWeights ladder, then promotion") {
  weights_scenario("v1");
}

TEST_CASE("gatewayapi:v1beta1: the HTTPRoute's weights follow stepWeight to maxWeight, then a stepWeights ladder, then promotion") {
  weights_scenario("v1beta1");
}

TEST_CASE("Gateway API A/B: only the header- and cookie-marked requests reach the canary during the iterations") {
  // kubesim: a quarter of the Gateway's requests carry the header, another quarter the cookie.
  gateway_cluster cluster(true,
                          "    kubesim.dev/header: \"x-canary: insider\"\n"
                          "    kubesim.dev/header-share: \"0.25\"\n"
                          "    kubesim.dev/cookie: \"canary=always\"\n"
                          "    kubesim.dev/cookie-share: \"0.25\"\n");
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1",
                                   "    iterations: 15\n"
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

  // Seven seconds into the iterations, the canary serves the marked half of the Gateway's
  // requests (the HTTP observer's family, by pod).
  std::this_thread::sleep_for(7s);
  REQUIRE(phase_of(sim, "podinfo") == "Progressing");
  auto rates = prom_query(sim.prometheus_url(),
                          "sum by (kubernetes_pod_name) (rate(http_request_duration_seconds_count{"
                          "kubernetes_namespace=\"demo\"}[5s]))",
                          "kubernetes_pod_name");
  double canary = 0, primary = 0;
  for (const auto& [pod, rate] : rates) (pod.rfind("podinfo-primary-", 0) == 0 ? primary : canary) += rate;
  MESSAGE("rate during A/B: canary " << canary << "/s, primary " << primary << "/s");
  REQUIRE(canary + primary > 0);
  CHECK(canary / (canary + primary) > 0.35);
  CHECK(canary / (canary + primary) < 0.65);

  REQUIRE(wait_phase(sim, "podinfo", "Succeeded", 60s));
  CHECK(route_weights(sim) == weights{100, 0, false});
  CHECK(has_event(canary_events(sim, "podinfo"), "Normal", "Advance podinfo.demo canary iteration 15/15"));
}

TEST_CASE("Gateway API blue/green with mirroring: mirrored, then all traffic to the canary, then promotion") {
  gateway_cluster cluster;
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1beta1", "    iterations: 5\n    mirror: true\n"));
  route_watch watch(sim);
  release(sim, "6.0.1");
  // Distinct (primary, canary, mirrored) states of the HTTPRoute, in order.
  std::vector<std::string> states;
  auto take = [&] {
    for (const auto& w : watch.poll()) {
      std::string st = std::to_string(w.primary) + "/" + std::to_string(w.canary) + (w.mirrored ? " mirrored" : "");
      if (states.empty() || states.back() != st) states.push_back(st);
    }
  };
  bool done = eventually(
      [&] {
        take();
        return phase_of(sim, "podinfo") == "Succeeded";
      },
      60s);
  take();
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
  // The user's own apex Service, taken over (one canaryd created would go with the Canary).
  sim.kubectl_ok({"apply", "-f", "-"}, R"(apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: demo
spec:
  selector:
    app: podinfo
  ports:
  - name: http
    port: 9898
    targetPort: http
)");
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

TEST_CASE("Gateway API: a release with errors fails request-success-rate, measured through the HTTP observer, and rolls back") {
  gateway_cluster cluster(true);
  if (!cluster.ready) return;
  auto& sim = cluster.sim;
  init_podinfo(sim, gateway_canary("gatewayapi:v1",
                                   "    maxWeight: 50\n    stepWeight: 10\n"
                                   "    metrics:\n"
                                   "    - name: request-success-rate\n"
                                   "      thresholdRange:\n"
                                   "        min: 99\n"
                                   "      interval: 30s\n"));
  route_watch watch(sim);
  // The new revision's pods answer 30 % of the requests with 500 (kubesim's knob).
  sim.kubectl_ok({"-n", "demo", "patch", "deployment/podinfo", "--type", "merge", "-p",
                  R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/error-rate":"0.3"}}}}})"});
  std::vector<int> seen;
  bool failed = follow_weights(sim, watch, "Failed", 60s, seen);
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "weights seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement success rate"), dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 5"), dump(evs));
  for (int w : seen) CHECK(w < 50);
  MESSAGE("weights seen before the rollback: " << join(seen));
  CHECK(route_weights(sim) == weights{100, 0, false});
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
}
