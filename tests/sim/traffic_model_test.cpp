// The traffic emulator's routing decisions and counters, from plain JSON objects (no store, no
// io_context): which workloads and pods serve a Service's requests under the Kubernetes
// selector and under Istio VirtualServices, and that counters advance exactly with time.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cmath>
#include <map>
#include <string>

#include "sim/world/metrics.hpp"
#include "sim/world/traffic_model.hpp"

namespace json = boost::json;
using namespace kubesim::world;

namespace {

object_ptr make(json::value v) { return std::make_shared<const json::object>(std::move(v.as_object())); }

json::object parse_object(std::string_view text) { return json::parse(text).as_object(); }

object_ptr deployment(std::string name, std::string ns, std::string_view template_annotations = "{}") {
  json::object o;
  o["apiVersion"] = "apps/v1";
  o["kind"] = "Deployment";
  o["metadata"] = json::object{{"name", name}, {"namespace", ns}};
  o["spec"] = json::object{{"template", json::object{{"metadata", json::object{{"annotations", parse_object(template_annotations)}}}}}};
  return make(o);
}

object_ptr replica_set(std::string name, std::string ns, std::string deploy) {
  json::object o;
  o["metadata"] = json::object{
      {"name", name},
      {"namespace", ns},
      {"ownerReferences", json::array{json::object{{"kind", "Deployment"}, {"name", deploy}, {"controller", true}}}}};
  return make(o);
}

object_ptr pod(std::string name, std::string ns, std::string_view labels, std::string rs, bool ready = true) {
  json::object o;
  o["metadata"] = json::object{
      {"name", name},
      {"namespace", ns},
      {"labels", parse_object(labels)},
      {"ownerReferences", json::array{json::object{{"kind", "ReplicaSet"}, {"name", rs}, {"controller", true}}}}};
  o["status"] = json::object{
      {"phase", "Running"},
      {"conditions", json::array{json::object{{"type", "Ready"}, {"status", ready ? "True" : "False"}}}}};
  return make(o);
}

object_ptr service(std::string name, std::string ns, std::string_view selector, std::string_view annotations = "{}") {
  json::object o;
  o["metadata"] = json::object{{"name", name}, {"namespace", ns}, {"annotations", parse_object(annotations)}};
  o["spec"] = json::object{{"selector", parse_object(selector)}, {"ports", json::array{json::object{{"port", 9898}}}}};
  return make(o);
}

object_ptr virtual_service(std::string name, std::string ns, std::string_view spec, std::string created = "2024-01-01T00:00:00Z") {
  json::object o;
  o["apiVersion"] = "networking.istio.io/v1beta1";
  o["kind"] = "VirtualService";
  o["metadata"] = json::object{{"name", name}, {"namespace", ns}, {"uid", "uid-" + ns + "-" + name}, {"creationTimestamp", created}};
  o["spec"] = parse_object(spec);
  return make(o);
}

// Flagger's objects for a canary `podinfo` in `test`: the apex, -primary and -canary Services,
// Deployments podinfo-primary (2 pods) and podinfo (1 pod), the canary answering with errors.
cluster_objects flagger_fixture(std::string_view apex_annotations = "{}",
                                std::string_view canary_template = R"({"kubesim.dev/error-rate":"0.5"})") {
  cluster_objects c;
  c.services = {service("podinfo", "test", R"({"app":"podinfo-primary"})", apex_annotations),
                service("podinfo-primary", "test", R"({"app":"podinfo-primary"})"),
                service("podinfo-canary", "test", R"({"app":"podinfo"})")};
  c.deployments = {deployment("podinfo-primary", "test", R"({"kubesim.dev/latency-ms":"100"})"),
                   deployment("podinfo", "test", canary_template)};
  c.replica_sets = {replica_set("podinfo-primary-5d8f9c7b6", "test", "podinfo-primary"),
                    replica_set("podinfo-7c9b8d6f5", "test", "podinfo")};
  c.pods = {pod("podinfo-primary-5d8f9c7b6-abcde", "test", R"({"app":"podinfo-primary"})", "podinfo-primary-5d8f9c7b6"),
            pod("podinfo-primary-5d8f9c7b6-fghij", "test", R"({"app":"podinfo-primary"})", "podinfo-primary-5d8f9c7b6"),
            pod("podinfo-7c9b8d6f5-klmno", "test", R"({"app":"podinfo"})", "podinfo-7c9b8d6f5")};
  return c;
}

constexpr std::string_view weighted_80_20 = R"({
  "hosts": ["podinfo"],
  "http": [{"route": [
    {"destination": {"host": "podinfo-primary"}, "weight": 80},
    {"destination": {"host": "podinfo-canary"}, "weight": 20}]}]
})";

// rps per workload over every flow of the plan (mirrored legs apart).
std::map<std::string, double> rps_by_workload(const traffic_plan& p, bool mirrored = false) {
  std::map<std::string, double> out;
  for (const auto& f : p.flows)
    for (const auto& l : f.legs)
      if (l.mirrored == mirrored) out[l.workload] += l.rps;
  return out;
}

const traffic_flow* find_flow(const traffic_plan& p, std::string_view service, std::string_view cls) {
  for (const auto& f : p.flows)
    if (f.service == service && f.request_class == cls) return &f;
  return nullptr;
}

}  // namespace

TEST_CASE("a Service's selector spreads its requests evenly over the ready pods, by workload") {
  cluster_objects c = flagger_fixture();
  // One more primary pod that is not ready, and one being deleted: neither gets traffic.
  c.pods.push_back(pod("podinfo-primary-5d8f9c7b6-zzzzz", "test", R"({"app":"podinfo-primary"})", "podinfo-primary-5d8f9c7b6", false));
  auto deleting = json::value(*pod("podinfo-primary-5d8f9c7b6-yyyyy", "test", R"({"app":"podinfo-primary"})", "podinfo-primary-5d8f9c7b6"));
  deleting.as_object()["metadata"].as_object()["deletionTimestamp"] = "2024-01-01T00:00:00Z";
  c.pods.push_back(make(deleting));

  auto plan = plan_traffic(c);
  CHECK(plan.problems.empty());
  // Without a VirtualService every Service with ready pods sends its own 20/s.
  REQUIRE(plan.flows.size() == 3);
  const auto* apex = find_flow(plan, "podinfo", "plain");
  REQUIRE(apex);
  CHECK(apex->rps == doctest::Approx(20));
  CHECK(apex->virtual_service.empty());
  REQUIRE(apex->legs.size() == 2);
  for (const auto& l : apex->legs) {
    CHECK(l.workload == "podinfo-primary");
    CHECK(l.rps == doctest::Approx(10));
    CHECK(l.service == "podinfo");
  }
  CHECK(apex->legs[0].pod == "podinfo-primary-5d8f9c7b6-abcde");
  auto by = rps_by_workload(plan);
  CHECK(by["podinfo-primary"] == doctest::Approx(40));  // apex and -primary both select it
  CHECK(by["podinfo"] == doctest::Approx(20));
  // Every pod counts for series retention, ready or not.
  CHECK(plan.pods.size() == 5);
  CHECK(plan.workloads.at("test/podinfo").error_rate == doctest::Approx(0.5));
  CHECK(plan.workloads.at("test/podinfo-primary").latency_ms == doctest::Approx(100));
}

TEST_CASE("the rps annotation sets, turns off, or (when malformed) reports and defaults the rate") {
  std::vector<std::string> problems;
  CHECK(service_rps(*service("a", "ns", R"({"x":"y"})", R"({"kubesim.dev/rps":"5.5"})"), 20, problems) == 5.5);
  CHECK(service_rps(*service("a", "ns", R"({"x":"y"})", R"({"kubesim.dev/rps":"0"})"), 20, problems) == 0);
  CHECK(service_rps(*service("a", "ns", R"({"x":"y"})"), 20, problems) == 20);
  CHECK(problems.empty());
  CHECK(service_rps(*service("a", "ns", R"({"x":"y"})", R"({"kubesim.dev/rps":"fast"})"), 20, problems) == 20);
  CHECK(service_rps(*service("a", "ns", R"({"x":"y"})", R"({"kubesim.dev/rps":"-1"})"), 20, problems) == 20);
  CHECK(problems.size() == 2);

  cluster_objects c = flagger_fixture(R"({"kubesim.dev/rps":"0"})");
  auto plan = plan_traffic(c);
  CHECK(find_flow(plan, "podinfo", "plain") == nullptr);
  CHECK(find_flow(plan, "podinfo-primary", "plain") != nullptr);

  // kubesim --default-rps 0: only annotated Services send.
  c = flagger_fixture(R"({"kubesim.dev/rps":"3"})");
  c.default_rps = 0;
  plan = plan_traffic(c);
  REQUIRE(plan.flows.size() == 1);
  CHECK(plan.flows[0].service == "podinfo");
  CHECK(plan.flows[0].rps == 3);
}

TEST_CASE("a Service without selector, or selecting no ready pod, sends nothing") {
  cluster_objects c;
  json::value no_selector = json::value(*service("ext", "test", "{}"));
  c.services = {make(no_selector), service("lonely", "test", R"({"app":"nobody"})")};
  c.pods = {pod("p-1-a", "test", R"({"app":"x"})", "p-1")};
  auto plan = plan_traffic(c);
  CHECK(plan.flows.empty());
  // The pod's ReplicaSet is unknown: the workload is named from its name, as Istio does.
  CHECK(plan.workloads.contains("test/p"));
}

TEST_CASE("an Istio VirtualService splits the host's requests by weight; its backends send nothing of their own") {
  cluster_objects c = flagger_fixture();
  c.virtual_services = {virtual_service("podinfo", "test", weighted_80_20)};
  auto plan = plan_traffic(c);
  CHECK(plan.problems.empty());
  REQUIRE(plan.flows.size() == 1);
  const auto& f = plan.flows[0];
  CHECK(f.service == "podinfo");
  CHECK(f.virtual_service == "test/podinfo");
  auto by = rps_by_workload(plan);
  CHECK(by["podinfo-primary"] == doctest::Approx(16));
  CHECK(by["podinfo"] == doctest::Approx(4));
  for (const auto& l : f.legs) CHECK(l.service == (l.workload == "podinfo" ? "podinfo-canary" : "podinfo-primary"));

  SUBCASE("an explicit rps on a backend still sends its own requests") {
    c.services[2] = service("podinfo-canary", "test", R"({"app":"podinfo"})", R"({"kubesim.dev/rps":"10"})");
    auto p2 = plan_traffic(c);
    CHECK(rps_by_workload(p2)["podinfo"] == doctest::Approx(14));
  }
  SUBCASE("the same object listed under two API versions is used once") {
    c.virtual_services.push_back(virtual_service("podinfo", "test", weighted_80_20));
    CHECK(rps_by_workload(plan_traffic(c))["podinfo"] == doctest::Approx(4));
  }
  SUBCASE("fully qualified hosts and destinations route the same") {
    c.virtual_services = {virtual_service("podinfo", "test", R"({
      "hosts": ["podinfo.test.svc.cluster.local"],
      "http": [{"route": [
        {"destination": {"host": "podinfo-primary.test.svc.cluster.local"}, "weight": 50},
        {"destination": {"host": "podinfo-canary.test"}, "weight": 50}]}]})")};
    auto by2 = rps_by_workload(plan_traffic(c));
    CHECK(by2["podinfo-primary"] == doctest::Approx(10));
    CHECK(by2["podinfo"] == doctest::Approx(10));
  }
  SUBCASE("of two VirtualServices claiming one host, the older wins") {
    c.virtual_services.push_back(virtual_service("older", "test", R"({
      "hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo-canary"}}]}]})",
                                                 "2023-01-01T00:00:00Z"));
    CHECK(rps_by_workload(plan_traffic(c))["podinfo"] == doctest::Approx(20));
  }
}

TEST_CASE("A/B: requests carrying the annotated header or cookie take the matching route") {
  // Flagger's A/B routes: http[0] matches the canary's header or cookie, http[1] is the default.
  constexpr std::string_view ab = R"({
    "hosts": ["podinfo"],
    "http": [
      {"match": [{"headers": {"x-canary": {"exact": "insider"}}},
                 {"headers": {"cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}}],
       "route": [{"destination": {"host": "podinfo-primary"}, "weight": 0},
                 {"destination": {"host": "podinfo-canary"}, "weight": 100}]},
      {"route": [{"destination": {"host": "podinfo-primary"}, "weight": 100}]}]
  })";
  SUBCASE("a header share") {
    cluster_objects c = flagger_fixture(R"({"kubesim.dev/header":"X-Canary: insider","kubesim.dev/header-share":"0.3"})");
    c.virtual_services = {virtual_service("podinfo", "test", ab)};
    auto plan = plan_traffic(c);
    CHECK(plan.problems.empty());
    auto by = rps_by_workload(plan);
    CHECK(by["podinfo"] == doctest::Approx(6));
    CHECK(by["podinfo-primary"] == doctest::Approx(14));
    REQUIRE(find_flow(plan, "podinfo", "header"));
    CHECK(find_flow(plan, "podinfo", "header")->rps == doctest::Approx(6));
  }
  SUBCASE("a separate cookie share next to a header share") {
    cluster_objects c = flagger_fixture(
        R"({"kubesim.dev/cookie":"type=insider; session=1","kubesim.dev/cookie-share":"0.25",
            "kubesim.dev/header":"user-agent: Firefox","kubesim.dev/header-share":"0.1"})");
    c.virtual_services = {virtual_service("podinfo", "test", ab)};
    auto plan = plan_traffic(c);
    auto by = rps_by_workload(plan);
    CHECK(by["podinfo"] == doctest::Approx(5));  // only the cookie class matches
    CHECK(by["podinfo-primary"] == doctest::Approx(15));
    CHECK(find_flow(plan, "podinfo", "cookie"));
    CHECK(find_flow(plan, "podinfo", "header"));
    CHECK(find_flow(plan, "podinfo", "plain")->rps == doctest::Approx(13));
  }
  SUBCASE("a cookie without a share is sent with half the requests") {
    cluster_objects c = flagger_fixture(R"({"kubesim.dev/cookie":"type=insider"})");
    c.virtual_services = {virtual_service("podinfo", "test", ab)};
    CHECK(rps_by_workload(plan_traffic(c))["podinfo"] == doctest::Approx(10));
  }
}

TEST_CASE("mirroring copies a share of the requests to the mirror's pods, counted as mirrored legs") {
  cluster_objects c = flagger_fixture();
  c.virtual_services = {virtual_service("podinfo", "test", R"({
    "hosts": ["podinfo"],
    "http": [{"route": [{"destination": {"host": "podinfo-primary"}, "weight": 100},
                        {"destination": {"host": "podinfo-canary"}, "weight": 0}],
              "mirror": {"host": "podinfo-canary"}, "mirrorPercentage": {"value": 50.0}}]})")};
  auto plan = plan_traffic(c);
  CHECK(rps_by_workload(plan)["podinfo-primary"] == doctest::Approx(20));
  CHECK(rps_by_workload(plan).count("podinfo") == 0);
  CHECK(rps_by_workload(plan, true)["podinfo"] == doctest::Approx(10));

  SUBCASE("without a percentage every request is mirrored") {
    c.virtual_services = {virtual_service("podinfo", "test", R"({
      "hosts": ["podinfo"],
      "http": [{"route": [{"destination": {"host": "podinfo-primary"}}], "mirror": {"host": "podinfo-canary"}}]})")};
    CHECK(rps_by_workload(plan_traffic(c), true)["podinfo"] == doctest::Approx(20));
  }
}

TEST_CASE("requests no route takes, or whose destination has no ready pod, reach no workload") {
  cluster_objects c = flagger_fixture();
  c.virtual_services = {virtual_service("podinfo", "test", R"({
    "hosts": ["podinfo"],
    "http": [{"match": [{"uri": {"prefix": "/api"}}], "route": [{"destination": {"host": "podinfo-primary"}}]}]})")};
  auto plan = plan_traffic(c);
  const auto* f = find_flow(plan, "podinfo", "plain");
  REQUIRE(f);
  CHECK(f->legs.empty());
  REQUIRE(f->unrouted.size() == 1);
  CHECK(f->unrouted[0].code == 404);
  CHECK(f->unrouted[0].rps == doctest::Approx(20));

  c.virtual_services = {virtual_service("podinfo", "test", R"({
    "hosts": ["podinfo"],
    "http": [{"route": [{"destination": {"host": "podinfo-primary"}, "weight": 90},
                        {"destination": {"host": "nowhere"}, "weight": 10}]}]})")};
  plan = plan_traffic(c);
  f = find_flow(plan, "podinfo", "plain");
  REQUIRE(f);
  REQUIRE(f->unrouted.size() == 1);
  CHECK(f->unrouted[0].code == 503);
  CHECK(f->unrouted[0].rps == doctest::Approx(2));
  CHECK(rps_by_workload(plan)["podinfo-primary"] == doctest::Approx(18));
}

TEST_CASE("a destination subset narrows the pods by its DestinationRule's labels, and is ignored without one") {
  cluster_objects c;
  c.services = {service("reviews", "shop", R"({"app":"reviews"})")};
  c.deployments = {deployment("reviews-v1", "shop"), deployment("reviews-v2", "shop")};
  c.replica_sets = {replica_set("reviews-v1-aaa", "shop", "reviews-v1"), replica_set("reviews-v2-bbb", "shop", "reviews-v2")};
  c.pods = {pod("reviews-v1-aaa-1", "shop", R"({"app":"reviews","version":"v1"})", "reviews-v1-aaa"),
            pod("reviews-v2-bbb-1", "shop", R"({"app":"reviews","version":"v2"})", "reviews-v2-bbb")};
  c.virtual_services = {virtual_service("reviews", "shop", R"({
    "hosts": ["reviews"],
    "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}, "weight": 75},
                        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 25}]}]})")};
  auto by = rps_by_workload(plan_traffic(c));
  CHECK(by["reviews-v1"] == doctest::Approx(10));  // subsets ignored: the Service's pods share
  CHECK(by["reviews-v2"] == doctest::Approx(10));

  json::object dr;
  dr["metadata"] = json::object{{"name", "reviews"}, {"namespace", "shop"}, {"uid", "dr-1"}};
  dr["spec"] = parse_object(R"({"host": "reviews", "subsets": [
    {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]})");
  c.destination_rules = {make(dr)};
  by = rps_by_workload(plan_traffic(c));
  CHECK(by["reviews-v1"] == doctest::Approx(5));
  CHECK(by["reviews-v2"] == doctest::Approx(15));
}

TEST_CASE("HTTPMatchRequest conditions: uri, method, port, headers, withoutHeaders, queryParams, source") {
  std::vector<std::string> problems;
  simulated_request r;
  r.path = "/API/v1/items";
  r.query = {{"user", "alice"}, {"debug", ""}};
  r.headers = {{"x-canary", "insider"}, {"cookie", "a=1;type=insider"}};
  r.authority = "podinfo.test:9898";
  r.port = 9898;
  auto m = [&](std::string_view text) { return http_match(parse_object(text), r, problems); };
  CHECK(m(R"({"uri": {"prefix": "/API"}})"));
  CHECK_FALSE(m(R"({"uri": {"prefix": "/api"}})"));
  CHECK(m(R"({"uri": {"prefix": "/api"}, "ignoreUriCase": true})"));
  CHECK(m(R"({"uri": {"exact": "/API/v1/items"}})"));
  CHECK(m(R"({"uri": {"regex": "/API/v[0-9]+/.*"}})"));
  CHECK_FALSE(m(R"({"uri": {"regex": "v1"}})"));  // RE2 full match, not search
  CHECK(m(R"({"method": {"exact": "GET"}, "scheme": {"exact": "http"}, "port": 9898})"));
  CHECK_FALSE(m(R"({"port": 80})"));
  CHECK(m(R"({"authority": {"prefix": "podinfo"}})"));
  CHECK(m(R"({"headers": {"x-canary": {"exact": "insider"}, "cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}})"));
  CHECK_FALSE(m(R"({"headers": {"x-canary": {"exact": "Insider"}}})"));
  CHECK(m(R"({"headers": {"x-canary": {}}})"));             // presence
  CHECK_FALSE(m(R"({"headers": {"x-missing": {}}})"));
  CHECK_FALSE(m(R"({"headers": {"x-missing": {"regex": ".*"}}})"));
  CHECK_FALSE(m(R"({"withoutHeaders": {"x-canary": {"prefix": "ins"}}})"));
  CHECK(m(R"({"withoutHeaders": {"x-missing": {}}})"));
  CHECK(m(R"({"queryParams": {"user": {"exact": "alice"}, "debug": {"exact": ""}}})"));
  CHECK_FALSE(m(R"({"queryParams": {"user": {"regex": "bob"}}})"));
  CHECK_FALSE(m(R"({"queryParams": {"absent": {"exact": ""}}})"));
  CHECK_FALSE(m(R"({"sourceLabels": {"app": "loadtester"}})"));
  CHECK(m(R"({"gateways": ["mesh"]})"));
  CHECK(problems.empty());
  CHECK_FALSE(m(R"({"uri": {"regex": "(unclosed"}})"));
  CHECK(problems.size() == 1);
}

TEST_CASE("host names are qualified relative to the VirtualService's namespace; wildcards cover suffixes") {
  CHECK(qualify_host("podinfo", "test") == "podinfo.test.svc.cluster.local");
  CHECK(qualify_host("podinfo.other", "test") == "podinfo.other.svc.cluster.local");
  CHECK(qualify_host("podinfo.other.svc", "test") == "podinfo.other.svc.cluster.local");
  CHECK(qualify_host("app.example.com", "test") == "app.example.com");
  CHECK(host_covers("*", "a.b.svc.cluster.local"));
  CHECK(host_covers("*.test.svc.cluster.local", "a.test.svc.cluster.local"));
  CHECK_FALSE(host_covers("*.test.svc.cluster.local", "a.prod.svc.cluster.local"));
}

TEST_CASE("request classes: shares, paths and malformed annotations") {
  std::vector<std::string> problems;
  auto classes = request_classes(*service("s", "ns", R"({"a":"b"})",
                                          R"({"kubesim.dev/path":"/api/x?user=alice","kubesim.dev/header":"x-a: 1\nX-B: two words\nbroken",
                                              "kubesim.dev/header-share":"0.4"})"),
                                 problems);
  REQUIRE(classes.size() == 2);
  CHECK(classes[0].name == "plain");
  CHECK(classes[0].share == doctest::Approx(0.6));
  CHECK(classes[0].request.path == "/api/x");
  REQUIRE(classes[0].request.query.size() == 1);
  CHECK(classes[1].name == "header");
  REQUIRE(classes[1].request.headers.size() == 2);
  CHECK(classes[1].request.headers[1].name == "x-b");
  CHECK(classes[1].request.headers[1].value == "two words");
  REQUIRE(problems.size() == 1);  // the "broken" line
  problems.clear();
  classes = request_classes(*service("s", "ns", R"({"a":"b"})",
                                     R"({"kubesim.dev/header":"x: 1","kubesim.dev/header-share":"0.8",
                                         "kubesim.dev/cookie":"c=1","kubesim.dev/cookie-share":"0.7"})"),
                            problems);
  REQUIRE(classes.size() == 2);  // no plain class left: shares scaled to sum to 1
  CHECK(classes[0].share + classes[1].share == doctest::Approx(1));
  CHECK(problems.size() == 1);
  problems.clear();
  request_classes(*service("s", "ns", R"({"a":"b"})", R"({"kubesim.dev/header-share":"2","kubesim.dev/path":"nope"})"), problems);
  CHECK(problems.size() == 2);
}

TEST_CASE("workload behaviour annotations are parsed, and bad values reported and defaulted") {
  std::vector<std::string> problems;
  auto good = parse_object(R"({"kubesim.dev/error-rate":"0.25","kubesim.dev/latency-ms":"250","kubesim.dev/error-code":"503"})");
  auto b = parse_behaviour(&good, problems);
  CHECK(b.error_rate == 0.25);
  CHECK(b.latency_ms == 250);
  CHECK(b.error_code == 503);
  CHECK(problems.empty());
  auto bad = parse_object(R"({"kubesim.dev/error-rate":"1.5","kubesim.dev/latency-ms":"slow","kubesim.dev/error-code":"42"})");
  b = parse_behaviour(&bad, problems);
  CHECK(b.error_rate == 0);
  CHECK(b.latency_ms == default_latency_ms);
  CHECK(b.error_code == 500);
  CHECK(problems.size() == 3);
}

TEST_CASE("counters advance exactly: weights and error shares hold to the request") {
  cluster_objects c = flagger_fixture();
  c.virtual_services = {virtual_service("podinfo", "test", weighted_80_20)};
  auto plan = plan_traffic(c);
  traffic_counters counters;
  for (int i = 0; i < 240; ++i) counters.advance(plan, 0.25);  // one minute
  CHECK(counters.requests("destination", "test", "podinfo-primary") == 960);
  CHECK(counters.requests("destination", "test", "podinfo") == 240);
  CHECK(counters.requests("destination", "test", "podinfo", "500") == 120);
  CHECK(counters.requests("destination", "test", "podinfo", "200") == 120);
  CHECK(counters.requests("source", "test", "podinfo") == 240);
  CHECK(counters.requests_total() == 1200);
  // The app's own histogram, per pod: the two primary pods share evenly.
  CHECK(counters.pod_requests("test", "podinfo-primary-5d8f9c7b6-abcde") == 480);
  CHECK(counters.pod_requests("test", "podinfo-primary-5d8f9c7b6-fghij") == 480);
  CHECK(counters.pod_requests("test", "podinfo-7c9b8d6f5-klmno", "500") == 120);

  SUBCASE("odd rates and uneven ticks still add up") {
    traffic_counters odd;
    cluster_objects c2 = flagger_fixture(R"({"kubesim.dev/rps":"7"})", R"({"kubesim.dev/error-rate":"0.1"})");
    c2.virtual_services = {virtual_service("podinfo", "test", R"({
      "hosts": ["podinfo"],
      "http": [{"route": [{"destination": {"host": "podinfo-primary"}, "weight": 67},
                          {"destination": {"host": "podinfo-canary"}, "weight": 33}]}]})")};
    auto p2 = plan_traffic(c2);
    for (int i = 0; i < 300; ++i) odd.advance(p2, i % 3 == 0 ? 0.3 : 0.2);  // 70 s in uneven steps
    auto total = odd.requests("destination", "test", "podinfo-primary") + odd.requests("destination", "test", "podinfo");
    CHECK(total >= 487);  // 490 less at most one partial request per leg
    CHECK(total <= 490);
    CHECK(std::abs(static_cast<double>(odd.requests("destination", "test", "podinfo")) - 161.7) <= 1);
    CHECK(std::abs(static_cast<double>(odd.requests("destination", "test", "podinfo", "500")) - 16.17) <= 1);
  }
}

TEST_CASE("the exposition carries Flagger's labels and histograms whose p99 sits at the configured latency") {
  cluster_objects c = flagger_fixture();
  c.virtual_services = {virtual_service("podinfo", "test", weighted_80_20)};
  auto plan = plan_traffic(c);
  traffic_counters counters;
  counters.advance(plan, 10);
  std::string text;
  counters.render(text);
  CHECK(text.find("# TYPE istio_requests_total counter") != std::string::npos);
  CHECK(text.find("istio_requests_total{reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace=\"unknown\","
                  "destination_workload=\"podinfo\",destination_workload_namespace=\"test\","
                  "destination_service=\"podinfo-canary.test.svc.cluster.local\",destination_service_name=\"podinfo-canary\","
                  "destination_service_namespace=\"test\",request_protocol=\"http\",response_code=\"500\",response_flags=\"-\"} 20\n") !=
        std::string::npos);
  // Primary latency 100 ms: everything at or below le=100, nothing at or below le=75.
  CHECK(text.find("destination_workload=\"podinfo-primary\",destination_workload_namespace=\"test\","
                  "destination_service=\"podinfo-primary.test.svc.cluster.local\",destination_service_name=\"podinfo-primary\","
                  "destination_service_namespace=\"test\",request_protocol=\"http\",response_code=\"200\",response_flags=\"-\",le=\"100\"} 160\n") !=
        std::string::npos);
  CHECK(text.find("response_code=\"200\",response_flags=\"-\",le=\"75\"} 0\n") != std::string::npos);
  CHECK(text.find("http_request_duration_seconds_count{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-7c9b8d6f5-klmno\","
                  "method=\"GET\",path=\"/\",status=\"500\"} 20\n") != std::string::npos);
  CHECK(text.find("http_request_duration_seconds_bucket{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-primary-5d8f9c7b6-abcde\","
                  "method=\"GET\",path=\"/\",status=\"200\",le=\"0.1\"} 80\n") != std::string::npos);
  CHECK(text.find("http_request_duration_seconds_sum{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-primary-5d8f9c7b6-abcde\","
                  "method=\"GET\",path=\"/\",status=\"200\"} 8\n") != std::string::npos);

  // histogram_quantile(0.99) over the cumulative buckets, as Prometheus computes it.
  auto p99 = [](const histogram& h) {
    double rank = 0.99 * static_cast<double>(h.count);
    std::uint64_t cum = 0;
    double lower = 0;
    for (std::size_t i = 0; i < latency_buckets_ms.size(); ++i) {
      if (static_cast<double>(cum + h.buckets[i]) >= rank)
        return lower + (latency_buckets_ms[i] - lower) * (rank - static_cast<double>(cum)) / static_cast<double>(h.buckets[i]);
      cum += h.buckets[i];
      lower = latency_buckets_ms[i];
    }
    return lower;
  };
  for (double mean : {3.0, 10.0, 37.0, 100.0, 120.0, 500.0, 999.0}) {
    histogram h;
    h.observe(mean, 1000, 1.0);
    CHECK(h.sum == doctest::Approx(mean * 1000));
    double q = p99(h);
    CHECK(q >= mean * 0.99);
    CHECK(q <= mean * 1.5);
  }
}

TEST_CASE("series of deleted pods and workloads leave the exposition") {
  cluster_objects c = flagger_fixture();
  auto plan = plan_traffic(c);
  traffic_counters counters;
  counters.advance(plan, 5);
  CHECK(counters.pod_requests("test", "podinfo-7c9b8d6f5-klmno") == 100);
  c.pods.pop_back();
  c.deployments.pop_back();
  c.replica_sets.pop_back();
  auto later = plan_traffic(c);
  counters.retain(later);
  counters.advance(later, 5);
  CHECK(counters.pod_requests("test", "podinfo-7c9b8d6f5-klmno") == 0);
  CHECK(counters.requests("destination", "test", "podinfo") == 0);
  CHECK(counters.pod_requests("test", "podinfo-primary-5d8f9c7b6-abcde") == 200);
  std::string text;
  counters.render(text);
  CHECK(text.find("klmno") == std::string::npos);
}
