// kubesim's reader of Gateway API HTTPRoutes, from plain JSON objects (no store, no io_context),
// against the specification (the HTTPRoute API reference carried by the published CRD):
// hostname, path, header, query and method matches, the precedence of matches across rules and
// routes, weights, mirrors, filters, invalid backends, attachment to Gateway listeners, and the
// Service parents of GAMMA.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>

#include <map>
#include <string>

#include "sim/world/gateway_api.hpp"
#include "sim/world/metrics.hpp"
#include "sim/world/traffic_model.hpp"

namespace json = boost::json;
using namespace kubesim::world;
namespace gw = kubesim::world::gateway_api;

namespace {

object_ptr make(json::value v) { return std::make_shared<const json::object>(std::move(v.as_object())); }
json::object parse_object(std::string_view text) { return json::parse(text).as_object(); }

object_ptr deployment(std::string name, std::string ns) {
  json::object o;
  o["metadata"] = json::object{{"name", name}, {"namespace", ns}};
  o["spec"] = json::object{{"template", json::object{{"metadata", json::object{{"annotations", json::object{}}}}}}};
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

object_ptr pod(std::string name, std::string ns, std::string_view labels, std::string rs) {
  json::object o;
  o["metadata"] = json::object{
      {"name", name},
      {"namespace", ns},
      {"labels", parse_object(labels)},
      {"ownerReferences", json::array{json::object{{"kind", "ReplicaSet"}, {"name", rs}, {"controller", true}}}}};
  o["status"] = json::object{{"phase", "Running"},
                             {"conditions", json::array{json::object{{"type", "Ready"}, {"status", "True"}}}}};
  return make(o);
}

object_ptr service(std::string name, std::string ns, std::string_view selector, std::string_view annotations = "{}") {
  json::object o;
  o["metadata"] = json::object{{"name", name}, {"namespace", ns}, {"annotations", parse_object(annotations)}};
  o["spec"] = json::object{{"selector", parse_object(selector)}, {"ports", json::array{json::object{{"port", 9898}}}}};
  return make(o);
}

object_ptr gateway(std::string name, std::string ns, std::string_view annotations, std::string_view spec) {
  json::object o;
  o["apiVersion"] = "gateway.networking.k8s.io/v1";
  o["kind"] = "Gateway";
  o["metadata"] = json::object{
      {"name", name}, {"namespace", ns}, {"uid", "gw-" + ns + "-" + name}, {"annotations", parse_object(annotations)}};
  o["spec"] = parse_object(spec);
  return make(o);
}

object_ptr route(std::string name, std::string ns, std::string_view spec, std::string created = "2024-01-01T00:00:00Z",
                 std::string version = "v1") {
  json::object o;
  o["apiVersion"] = "gateway.networking.k8s.io/" + version;
  o["kind"] = "HTTPRoute";
  o["metadata"] = json::object{{"name", name}, {"namespace", ns}, {"uid", "rt-" + ns + "-" + name}, {"creationTimestamp", created}};
  o["spec"] = parse_object(spec);
  return make(o);
}

constexpr std::string_view plain_gateway = R"({"gatewayClassName": "sim", "listeners": [
  {"name": "http", "protocol": "HTTP", "port": 80}]})";

// Flagger's objects for a canary `podinfo` in `test` (the apex Service silent), and a Gateway
// `public` in `test` whose clients send 20 requests/s for app.example.com.
cluster_objects fixture(std::string_view gateway_annotations = R"({"kubesim.dev/hostname": "app.example.com"})",
                        std::string_view gateway_spec = plain_gateway) {
  cluster_objects c;
  c.services = {service("podinfo", "test", R"({"app":"podinfo-primary"})", R"({"kubesim.dev/rps":"0"})"),
                service("podinfo-primary", "test", R"({"app":"podinfo-primary"})"),
                service("podinfo-canary", "test", R"({"app":"podinfo"})")};
  c.deployments = {deployment("podinfo-primary", "test"), deployment("podinfo", "test")};
  c.replica_sets = {replica_set("podinfo-primary-5d8f9c7b6", "test", "podinfo-primary"),
                    replica_set("podinfo-7c9b8d6f5", "test", "podinfo")};
  c.pods = {pod("podinfo-primary-5d8f9c7b6-abcde", "test", R"({"app":"podinfo-primary"})", "podinfo-primary-5d8f9c7b6"),
            pod("podinfo-primary-5d8f9c7b6-fghij", "test", R"({"app":"podinfo-primary"})", "podinfo-primary-5d8f9c7b6"),
            pod("podinfo-7c9b8d6f5-klmno", "test", R"({"app":"podinfo"})", "podinfo-7c9b8d6f5")};
  c.gateways = {gateway("public", "test", gateway_annotations, gateway_spec)};
  return c;
}

std::string weighted(int primary, int canary, std::string_view extra_rule = "") {
  return R"({"parentRefs": [{"name": "public"}], "hostnames": ["app.example.com"], "rules": [)" + std::string(extra_rule) +
         R"({"backendRefs": [{"name": "podinfo-primary", "port": 9898, "weight": )" + std::to_string(primary) +
         R"(}, {"name": "podinfo-canary", "port": 9898, "weight": )" + std::to_string(canary) + "}]}]}";
}

std::map<std::string, double> rps_by_workload(const traffic_plan& p, bool mirrored = false) {
  std::map<std::string, double> out;
  for (const auto& f : p.flows)
    for (const auto& l : f.legs)
      if (l.mirrored == mirrored) out[l.workload] += l.rps;
  return out;
}

std::map<int, double> unrouted(const traffic_plan& p) {
  std::map<int, double> out;
  for (const auto& f : p.flows)
    for (const auto& u : f.unrouted) out[u.code] += u.rps;
  return out;
}

// The backend (or answer code, "=404") the requests with this path and headers reach, through the
// fixture's Gateway with `routes`.
std::string reached(const std::vector<object_ptr>& routes, std::string path,
                    canaryd::http::headers headers = {}, std::string host = "app.example.com") {
  cluster_objects c = fixture();
  c.http_routes = routes;
  gw::router r(c);
  simulated_request req;
  req.authority = host;
  auto parts = canaryd::http::split_target(path);
  req.path = parts.path;
  req.query = parts.query;
  req.headers = std::move(headers);
  auto d = r.through_gateway(*c.gateways.front(), req);
  std::string out;
  for (const auto& b : d.backends)
    if (!b.mirrored) out += (out.empty() ? "" : ",") + b.service;
  for (const auto& a : d.answered) out += (out.empty() ? "=" : ",=") + std::to_string(a.code);
  return out;
}

}  // namespace

TEST_CASE("hostnames: exact names ignore case and port; a wildcard label covers one or more labels") {
  CHECK(gw::hostname_covers("app.example.com", "app.example.com"));
  CHECK(gw::hostname_covers("app.example.com", "APP.example.com:8080"));
  CHECK_FALSE(gw::hostname_covers("app.example.com", "www.example.com"));
  CHECK(gw::hostname_covers("*.example.com", "test.example.com"));
  CHECK(gw::hostname_covers("*.example.com", "foo.test.example.com"));
  CHECK_FALSE(gw::hostname_covers("*.example.com", "example.com"));
  CHECK_FALSE(gw::hostname_covers("*.example.com", "test.example.net"));
}

TEST_CASE("path matches: Exact, element-wise PathPrefix, RegularExpression (full match); PathPrefix / by default") {
  std::vector<std::string> probs;
  struct row {
    std::string_view match, path;
    bool want;
  };
  for (const auto& r : std::initializer_list<row>{
           {R"({"type":"Exact","value":"/foo"})", "/foo", true},
           {R"({"type":"Exact","value":"/foo"})", "/foo/", false},
           {R"({"type":"Exact","value":"/foo"})", "/FOO", false},
           {R"({"type":"PathPrefix","value":"/abc"})", "/abc", true},
           {R"({"type":"PathPrefix","value":"/abc"})", "/abc/", true},
           {R"({"type":"PathPrefix","value":"/abc"})", "/abc/def", true},
           {R"({"type":"PathPrefix","value":"/abc"})", "/abcd", false},
           {R"({"type":"PathPrefix","value":"/abc/"})", "/abc", true},
           {R"({"type":"PathPrefix","value":"/"})", "/anything", true},
           {R"({"value":"/api"})", "/api/items", true},
           {R"({"type":"RegularExpression","value":"/v[0-9]+/.*"})", "/v2/items", true},
           {R"({"type":"RegularExpression","value":"/v[0-9]+"})", "/v2/items", false},
       }) {
    INFO(r.match << " vs " << r.path);
    auto m = parse_object(r.match);
    CHECK(gw::path_matches(&m, r.path, probs) == r.want);
  }
  CHECK(gw::path_matches(nullptr, "/x", probs));
  CHECK(probs.empty());
}

TEST_CASE("HTTPRouteMatch: header names ignore case, values do not; the first of equivalent names counts; query and method") {
  std::vector<std::string> probs;
  simulated_request req;
  req.path = "/api";
  req.query = {{"user", "alice"}, {"debug", "1"}};
  req.headers = {{"x-canary", "insider"}, {"cookie", "session=1; canary=abc123"}};
  struct row {
    std::string_view match;
    bool want;
  };
  for (const auto& r : std::initializer_list<row>{
           {R"({"headers":[{"name":"X-Canary","value":"insider"}]})", true},
           {R"({"headers":[{"name":"x-canary","value":"Insider"}]})", false},
           {R"({"headers":[{"name":"x-canary","type":"RegularExpression","value":"ins.*"}]})", true},
           {R"({"headers":[{"name":"x-canary","type":"RegularExpression","value":"ins"}]})", false},
           {R"({"headers":[{"name":"Cookie","type":"RegularExpression","value":".*canary.*abc123.*"}]})", true},
           {R"({"headers":[{"name":"x-other","value":"1"}]})", false},
           {R"({"headers":[{"name":"x-canary","value":"insider"},{"name":"X-CANARY","value":"nope"}]})", true},
           {R"({"queryParams":[{"name":"user","value":"alice"}]})", true},
           {R"({"queryParams":[{"name":"User","value":"alice"}]})", false},
           {R"({"queryParams":[{"name":"user","type":"RegularExpression","value":"a.*e"}]})", true},
           {R"({"method":"GET"})", true},
           {R"({"method":"POST"})", false},
           {R"({"path":{"type":"PathPrefix","value":"/api"},"headers":[{"name":"x-canary","value":"insider"}],"queryParams":[{"name":"debug","value":"1"}]})", true},
           {R"({"path":{"type":"PathPrefix","value":"/web"},"headers":[{"name":"x-canary","value":"insider"}]})", false},
       }) {
    INFO(r.match);
    CHECK(gw::route_match(parse_object(r.match), req, probs) == r.want);
  }
  CHECK(probs.empty());
}

TEST_CASE("precedence: hostname, Exact path, longest prefix, method, header and query counts, then age, name and rule order") {
  auto backend = [](std::string_view svc) {
    return R"({"backendRefs":[{"name":")" + std::string(svc) + R"(","port":9898}]})";
  };
  auto rule = [](std::string_view matches, std::string_view svc) {
    return R"({"matches":)" + std::string(matches) + R"(,"backendRefs":[{"name":")" + std::string(svc) + R"(","port":9898}]})";
  };
  auto spec = [](std::string_view hostnames, std::string rules) {
    return R"({"parentRefs":[{"name":"public"}],"hostnames":)" + std::string(hostnames) + R"(,"rules":[)" + rules + "]}";
  };
  const std::string any = R"(["app.example.com"])";

  SUBCASE("a route for the exact hostname beats a wildcard route and a route without hostnames, whatever their age") {
    auto routes = std::vector<object_ptr>{
        route("catchall", "test", spec("[]", backend("podinfo")), "2020-01-01T00:00:00Z"),
        route("wild", "test", spec(R"(["*.example.com"])", backend("podinfo-primary")), "2021-01-01T00:00:00Z"),
        route("exact", "test", spec(any, backend("podinfo-canary")), "2022-01-01T00:00:00Z")};
    CHECK(reached(routes, "/") == "podinfo-canary");
    CHECK(reached(routes, "/", {}, "www.example.com") == "podinfo-primary");
    CHECK(reached(routes, "/", {}, "other.org") == "podinfo");
  }
  SUBCASE("across rules of several routes: Exact, then the longest prefix, then method, headers, query params") {
    auto routes = std::vector<object_ptr>{
        route("a", "test",
              spec(any, rule(R"([{"path":{"type":"PathPrefix","value":"/"}}])", "podinfo") + "," +
                            rule(R"([{"path":{"type":"PathPrefix","value":"/api"}}])", "podinfo-primary")),
              "2020-01-01T00:00:00Z"),
        route("b", "test",
              spec(any, rule(R"([{"path":{"type":"Exact","value":"/api/v1"}}])", "podinfo-canary") + "," +
                            rule(R"([{"path":{"type":"PathPrefix","value":"/api"},"headers":[{"name":"x-canary","value":"1"}]}])",
                                 "podinfo-canary") + "," +
                            rule(R"([{"path":{"type":"PathPrefix","value":"/api/items"},"method":"GET"}])", "podinfo-canary")),
              "2023-01-01T00:00:00Z")};
    CHECK(reached(routes, "/") == "podinfo");
    CHECK(reached(routes, "/api/v1") == "podinfo-canary");          // Exact beats every prefix
    CHECK(reached(routes, "/api/v2") == "podinfo-primary");         // /api beats /
    CHECK(reached(routes, "/api/v2", {{"x-canary", "1"}}) == "podinfo-canary");  // a header match beats none
    CHECK(reached(routes, "/api/items/3") == "podinfo-canary");     // /api/items beats /api
  }
  SUBCASE("a method match beats header matches; more headers beat fewer; more query params beat fewer") {
    auto routes = std::vector<object_ptr>{route(
        "r", "test",
        spec(any, rule(R"([{"headers":[{"name":"a","value":"1"},{"name":"b","value":"1"}]}])", "podinfo") + "," +
                      rule(R"([{"method":"GET"}])", "podinfo-canary") + "," +
                      rule(R"([{"headers":[{"name":"a","value":"1"}],"queryParams":[{"name":"q","value":"1"}]}])",
                           "podinfo-primary")))};
    CHECK(reached(routes, "/", {{"a", "1"}, {"b", "1"}}) == "podinfo-canary");
    auto no_method = std::vector<object_ptr>{route(
        "r", "test",
        spec(any, rule(R"([{"headers":[{"name":"a","value":"1"}]}])", "podinfo-primary") + "," +
                      rule(R"([{"headers":[{"name":"a","value":"1"},{"name":"b","value":"1"}]}])", "podinfo") + "," +
                      rule(R"([{"headers":[{"name":"a","value":"1"}],"queryParams":[{"name":"q","value":"1"}]}])",
                           "podinfo-canary")))};
    CHECK(reached(no_method, "/", {{"a", "1"}, {"b", "1"}}) == "podinfo");
    CHECK(reached(no_method, "/?q=1", {{"a", "1"}}) == "podinfo-canary");
    CHECK(reached(no_method, "/", {{"a", "1"}}) == "podinfo-primary");
  }
  SUBCASE("ties: the oldest route, then <namespace>/<name>, then the first rule") {
    auto older = std::vector<object_ptr>{route("z", "test", spec(any, backend("podinfo-canary")), "2020-01-01T00:00:00Z"),
                                         route("a", "test", spec(any, backend("podinfo-primary")), "2021-01-01T00:00:00Z")};
    CHECK(reached(older, "/") == "podinfo-canary");
    auto by_name = std::vector<object_ptr>{route("z", "test", spec(any, backend("podinfo-canary"))),
                                           route("a", "test", spec(any, backend("podinfo-primary")))};
    CHECK(reached(by_name, "/") == "podinfo-primary");
    auto by_rule = std::vector<object_ptr>{
        route("r", "test", spec(any, rule(R"([{"path":{"value":"/"}}])", "podinfo") + "," + backend("podinfo-canary")))};
    CHECK(reached(by_rule, "/") == "podinfo");
  }
  SUBCASE("a RegularExpression path ranks between Exact and PathPrefix (kubesim's implementation-specific choice)") {
    auto routes = std::vector<object_ptr>{route(
        "r", "test",
        spec(any, rule(R"([{"path":{"type":"PathPrefix","value":"/api/items"}}])", "podinfo") + "," +
                      rule(R"([{"path":{"type":"RegularExpression","value":"/api/.*"}}])", "podinfo-canary") + "," +
                      rule(R"([{"path":{"type":"Exact","value":"/api/items"}}])", "podinfo-primary")))};
    CHECK(reached(routes, "/api/items/1") == "podinfo-canary");
    CHECK(reached(routes, "/api/items") == "podinfo-primary");
  }
  SUBCASE("no rule matches: 404") {
    auto routes = std::vector<object_ptr>{route("r", "test", spec(any, rule(R"([{"path":{"value":"/api"}}])", "podinfo")))};
    CHECK(reached(routes, "/web") == "=404");
    CHECK(reached(routes, "/api", {}, "other.org") == "=404");
    CHECK(reached({}, "/") == "=404");
  }
}

TEST_CASE("attachment: parentRefs name the Gateway (and listener); allowedRoutes admit the route's namespace") {
  auto attached = [](std::string_view gateway_spec, std::string_view parent, std::string ns = "test",
                     std::vector<object_ptr> namespaces = {}) {
    cluster_objects c = fixture(R"({"kubesim.dev/hostname": "app.example.com"})", gateway_spec);
    c.http_routes = {route("r", ns,
                           R"({"parentRefs":[)" + std::string(parent) +
                               R"(],"rules":[{"backendRefs":[{"name":"podinfo-canary","namespace":"test","port":9898}]}]})")};
    c.namespaces = std::move(namespaces);
    c.reference_grants = {make(json::parse(R"({"metadata":{"name":"g","namespace":"test","uid":"g1"},
      "spec":{"from":[{"group":"gateway.networking.k8s.io","kind":"HTTPRoute","namespace":"other"}],"to":[{"group":"","kind":"Service"}]}})"))};
    gw::router r(c);
    simulated_request req;
    req.authority = "app.example.com";
    auto d = r.through_gateway(*c.gateways.front(), req);
    return !d.backends.empty();
  };
  CHECK(attached(plain_gateway, R"({"name":"public"})"));
  CHECK(attached(plain_gateway, R"({"name":"public","namespace":"test","group":"gateway.networking.k8s.io","kind":"Gateway"})"));
  CHECK_FALSE(attached(plain_gateway, R"({"name":"private"})"));
  CHECK(attached(plain_gateway, R"({"name":"public","sectionName":"http"})"));
  CHECK_FALSE(attached(plain_gateway, R"({"name":"public","sectionName":"https"})"));
  CHECK(attached(plain_gateway, R"({"name":"public","port":80})"));
  CHECK_FALSE(attached(plain_gateway, R"({"name":"public","port":8080})"));
  // From another namespace: Same (the default) refuses, All admits, a Selector admits by labels.
  CHECK_FALSE(attached(plain_gateway, R"({"name":"public","namespace":"test"})", "other"));
  constexpr std::string_view all = R"({"listeners":[{"name":"http","protocol":"HTTP","port":80,"allowedRoutes":{"namespaces":{"from":"All"}}}]})";
  CHECK(attached(all, R"({"name":"public","namespace":"test"})", "other"));
  constexpr std::string_view sel = R"({"listeners":[{"name":"http","protocol":"HTTP","port":80,"allowedRoutes":{"namespaces":{"from":"Selector","selector":{"matchLabels":{"shared":"yes"}}}}}]})";
  auto ns = [](std::string_view labels) {
    return make(json::parse(R"({"metadata":{"name":"other","labels":)" + std::string(labels) + "}}"));
  };
  CHECK(attached(sel, R"({"name":"public","namespace":"test"})", "other", {ns(R"({"shared":"yes"})")}));
  CHECK_FALSE(attached(sel, R"({"name":"public","namespace":"test"})", "other", {ns(R"({"shared":"no"})")}));
  // A listener for another kind of route, or another protocol, takes no HTTPRoute.
  CHECK_FALSE(attached(R"({"listeners":[{"name":"http","protocol":"HTTP","port":80,"allowedRoutes":{"kinds":[{"kind":"GRPCRoute"}]}}]})",
                       R"({"name":"public"})"));
  CHECK_FALSE(attached(R"({"listeners":[{"name":"tcp","protocol":"TCP","port":80}]})", R"({"name":"public"})"));
  // The listener's hostname must cover the host.
  CHECK(attached(R"({"listeners":[{"name":"http","protocol":"HTTP","port":80,"hostname":"*.example.com"}]})", R"({"name":"public"})"));
  CHECK_FALSE(attached(R"({"listeners":[{"name":"http","protocol":"HTTP","port":80,"hostname":"*.example.org"}]})", R"({"name":"public"})"));
}

TEST_CASE("through a Gateway, backendRef weights split the requests; backends send nothing of their own") {
  cluster_objects c = fixture();
  c.http_routes = {route("podinfo", "test", weighted(80, 20))};
  auto p = plan_traffic(c);
  auto by = rps_by_workload(p);
  CHECK(by["podinfo-primary"] == doctest::Approx(16));
  CHECK(by["podinfo"] == doctest::Approx(4));
  CHECK(by.size() == 2);
  REQUIRE(p.flows.size() == 1);
  CHECK(p.flows[0].entry == "Gateway");
  CHECK(p.flows[0].service == "public");
  CHECK(p.flows[0].router == "HTTPRoute test/podinfo");
  CHECK(p.flows[0].legs.size() == 3);  // two primary pods, one canary pod
  CHECK(p.problems.empty());

  SUBCASE("the same route listed under v1 and v1beta1 is used once") {
    c.http_routes.push_back(route("podinfo", "test", weighted(80, 20), "2024-01-01T00:00:00Z", "v1beta1"));
    CHECK(rps_by_workload(plan_traffic(c))["podinfo"] == doctest::Approx(4));
  }
  SUBCASE("weights default to 1; weight 0 takes nothing; all 0 answers 500") {
    c.http_routes = {route("podinfo", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"backendRefs":[
      {"name":"podinfo-primary","port":9898},{"name":"podinfo-canary","port":9898}]}]})")};
    CHECK(rps_by_workload(plan_traffic(c))["podinfo"] == doctest::Approx(10));
    c.http_routes = {route("podinfo", "test", weighted(100, 0))};
    auto p100 = plan_traffic(c);
    CHECK(rps_by_workload(p100)["podinfo-primary"] == doctest::Approx(20));
    CHECK(rps_by_workload(p100).count("podinfo") == 0);
    c.http_routes = {route("podinfo", "test", weighted(0, 0))};
    CHECK(unrouted(plan_traffic(c))[500] == doctest::Approx(20));
  }
  SUBCASE("the rate, path and source come from the Gateway's annotations; kubesim.dev/rps 0 silences it") {
    c.gateways = {gateway("public", "test", R"({"kubesim.dev/hostname":"app.example.com","kubesim.dev/rps":"50","kubesim.dev/path":"/api?x=1"})",
                          plain_gateway)};
    auto q = plan_traffic(c);
    CHECK(rps_by_workload(q)["podinfo"] == doctest::Approx(10));
    REQUIRE(q.flows.size() == 1);
    CHECK(q.flows[0].path == "/api");
    c.gateways = {gateway("public", "test", R"({"kubesim.dev/rps":"0"})", plain_gateway)};
    CHECK(plan_traffic(c).flows.empty());
  }
  SUBCASE("without kubesim.dev/hostname the clients use the attached route's first hostname") {
    c.gateways = {gateway("public", "test", "{}", plain_gateway)};
    CHECK(rps_by_workload(plan_traffic(c))["podinfo"] == doctest::Approx(4));
  }
  SUBCASE("with --default-rps 0 an unannotated Gateway sends nothing") {
    c.default_rps = 0;
    CHECK(plan_traffic(c).flows.empty());
  }
}

TEST_CASE("A/B through a Gateway: header- and cookie-marked requests take their rule, the rest the primary") {
  // Flagger's A/B HTTPRoute: rule[0] = the analysis match (a header, or a Cookie regex) to the
  // canary; rule[1] the primary.
  constexpr std::string_view ab = R"({"parentRefs":[{"name":"public"}],"hostnames":["app.example.com"],"rules":[
    {"matches":[{"path":{"type":"PathPrefix","value":"/"},"headers":[{"name":"x-canary","type":"Exact","value":"insider"}]},
                {"path":{"type":"PathPrefix","value":"/"},"headers":[{"name":"Cookie","type":"RegularExpression","value":"^(.*?;)?(canary=always)(;.*)?$"}]}],
     "backendRefs":[{"name":"podinfo-primary","port":9898,"weight":0},{"name":"podinfo-canary","port":9898,"weight":100}]},
    {"matches":[{"path":{"type":"PathPrefix","value":"/"}}],
     "backendRefs":[{"name":"podinfo-primary","port":9898,"weight":100},{"name":"podinfo-canary","port":9898,"weight":0}]}]})";
  SUBCASE("a header share") {
    cluster_objects c = fixture(R"({"kubesim.dev/hostname":"app.example.com","kubesim.dev/header":"x-canary: insider","kubesim.dev/header-share":"0.25"})");
    c.http_routes = {route("podinfo", "test", ab)};
    auto by = rps_by_workload(plan_traffic(c));
    CHECK(by["podinfo"] == doctest::Approx(5));
    CHECK(by["podinfo-primary"] == doctest::Approx(15));
  }
  SUBCASE("a cookie share") {
    cluster_objects c = fixture(R"({"kubesim.dev/hostname":"app.example.com","kubesim.dev/cookie":"canary=always","kubesim.dev/header-share":"0.1"})");
    c.http_routes = {route("podinfo", "test", ab)};
    auto by = rps_by_workload(plan_traffic(c));
    CHECK(by["podinfo"] == doctest::Approx(2));
    CHECK(by["podinfo-primary"] == doctest::Approx(18));
  }
}

TEST_CASE("RequestMirror copies its share to the mirror's pods, counted as mirrored legs; the primary keeps all") {
  cluster_objects c = fixture();
  c.http_routes = {route("podinfo", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{
    "filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"podinfo-canary","port":9898},"percent":50}}],
    "backendRefs":[{"name":"podinfo-primary","port":9898}]}]})")};
  auto p = plan_traffic(c);
  CHECK(rps_by_workload(p)["podinfo-primary"] == doctest::Approx(20));
  CHECK(rps_by_workload(p, true)["podinfo"] == doctest::Approx(10));
  SUBCASE("a fraction, and the default of every request") {
    c.http_routes = {route("podinfo", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{
      "filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"podinfo-canary","port":9898},"fraction":{"numerator":1,"denominator":4}}}],
      "backendRefs":[{"name":"podinfo-primary","port":9898}]}]})")};
    CHECK(rps_by_workload(plan_traffic(c), true)["podinfo"] == doctest::Approx(5));
    c.http_routes = {route("podinfo", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{
      "filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"podinfo-canary","port":9898}}}],
      "backendRefs":[{"name":"podinfo-primary","port":9898}]}]})")};
    CHECK(rps_by_workload(plan_traffic(c), true)["podinfo"] == doctest::Approx(20));
  }
  SUBCASE("mirrored requests are counted by the mirror's pods in the app's histogram") {
    traffic_counters counters;
    counters.retain(p);
    counters.advance(p, 10);
    CHECK(counters.pod_requests("test", "podinfo-7c9b8d6f5-klmno") == 100);
    CHECK(counters.pod_requests("test", "podinfo-primary-5d8f9c7b6-abcde") == 100);
  }
}

TEST_CASE("filters: redirects and unresolvable filters answer; rewrites change the app's path; Set-Cookie reaches the client") {
  auto one_rule = [](std::string_view filters, std::string_view backend_filters = "[]") {
    return R"({"parentRefs":[{"name":"public"}],"rules":[{"filters":)" + std::string(filters) +
           R"(,"backendRefs":[{"name":"podinfo-canary","port":9898,"filters":)" + std::string(backend_filters) + "}]}]}";
  };
  cluster_objects c = fixture(R"({"kubesim.dev/hostname":"app.example.com","kubesim.dev/path":"/api/items"})");
  SUBCASE("RequestRedirect: 302 by default, or its statusCode") {
    c.http_routes = {route("r", "test", one_rule(R"([{"type":"RequestRedirect","requestRedirect":{"scheme":"https"}}])"))};
    CHECK(unrouted(plan_traffic(c))[302] == doctest::Approx(20));
    c.http_routes = {route("r", "test", one_rule(R"([{"type":"RequestRedirect","requestRedirect":{"statusCode":301}}])"))};
    CHECK(unrouted(plan_traffic(c))[301] == doctest::Approx(20));
  }
  SUBCASE("ExtensionRef cannot be resolved: 500") {
    c.http_routes = {route("r", "test", one_rule(R"([{"type":"ExtensionRef","extensionRef":{"group":"x","kind":"y","name":"z"}}])"))};
    auto p = plan_traffic(c);
    CHECK(unrouted(p)[500] == doctest::Approx(20));
    CHECK_FALSE(p.problems.empty());
  }
  SUBCASE("URLRewrite: ReplacePrefixMatch and ReplaceFullPath set the path the pods report") {
    c.http_routes = {route("r", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"matches":[{"path":{"value":"/api"}}],
      "filters":[{"type":"URLRewrite","urlRewrite":{"path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/v2"}}}],
      "backendRefs":[{"name":"podinfo-canary","port":9898}]}]})")};
    c.services[1] = service("podinfo-primary", "test", R"({"app":"podinfo-primary"})", R"({"kubesim.dev/rps":"0"})");
    auto p = plan_traffic(c);
    REQUIRE(p.flows.size() == 1);
    REQUIRE(p.flows[0].legs.size() == 1);
    CHECK(p.flows[0].legs[0].path == "/v2/items");
    traffic_counters counters;
    counters.retain(p);
    counters.advance(p, 1);
    std::string text;
    counters.render(text);
    CHECK(text.find(R"(path="/v2/items")") != std::string::npos);
    c.http_routes = {route("r", "test", one_rule(R"([{"type":"URLRewrite","urlRewrite":{"path":{"type":"ReplaceFullPath","replaceFullPath":"/"}}}])"))};
    CHECK(plan_traffic(c).flows[0].legs[0].path == "/");
  }
  SUBCASE("ResponseHeaderModifier Set-Cookie on a backend: set with Max-Age > 0, deleted with Max-Age <= 0") {
    c.http_routes = {route("r", "test", one_rule("[]", R"([{"type":"ResponseHeaderModifier","responseHeaderModifier":{"add":[
      {"name":"Set-Cookie","value":"flagger-cookie=abc; Max-Age=86400"}]}}])")),
                     route("s", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"matches":[{"path":{"value":"/old"}}],
      "filters":[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"set":[{"name":"set-cookie","value":"flagger-cookie=old; Max-Age=-1"}]}}],
      "backendRefs":[{"name":"podinfo-primary","port":9898}]}]})")};
    gw::router r(c);
    simulated_request req;
    req.authority = "app.example.com";
    auto d = r.through_gateway(*c.gateways.front(), req);
    REQUIRE(d.backends.size() == 1);
    CHECK(d.backends[0].set_cookies == std::vector<std::string>{"flagger-cookie=abc"});
    req.path = "/old";
    d = r.through_gateway(*c.gateways.front(), req);
    REQUIRE(d.backends.size() == 1);
    CHECK(d.backends[0].delete_cookies == std::vector<std::string>{"flagger-cookie=old"});
  }
}

TEST_CASE("invalid backends answer 500, Services without ready pods 503; other namespaces need a ReferenceGrant") {
  cluster_objects c = fixture();
  SUBCASE("a missing Service: its share answers 500") {
    c.http_routes = {route("r", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"backendRefs":[
      {"name":"podinfo-primary","port":9898},{"name":"nothere","port":9898}]}]})")};
    auto p = plan_traffic(c);
    CHECK(unrouted(p)[500] == doctest::Approx(10));
    CHECK(rps_by_workload(p)["podinfo-primary"] == doctest::Approx(10));
  }
  SUBCASE("a backendRef of another kind: 500") {
    c.http_routes = {route("r", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"backendRefs":[
      {"group":"example.com","kind":"Bucket","name":"podinfo-primary"}]}]})")};
    CHECK(unrouted(plan_traffic(c))[500] == doctest::Approx(20));
  }
  SUBCASE("no ready pods: 503") {
    c.services.push_back(service("empty", "test", R"({"app":"none"})"));
    c.http_routes = {route("r", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"backendRefs":[{"name":"empty","port":80}]}]})")};
    CHECK(unrouted(plan_traffic(c))[503] == doctest::Approx(20));
  }
  SUBCASE("another namespace without a ReferenceGrant: 500; with one: routed") {
    c.services.push_back(service("shared", "backends", R"({"app":"podinfo"})"));
    c.pods.push_back(pod("shared-6d5f-xk2p9", "backends", R"({"app":"podinfo"})", "shared-6d5f"));
    c.http_routes = {route("r", "test", R"({"parentRefs":[{"name":"public"}],"rules":[{"backendRefs":[
      {"name":"shared","namespace":"backends","port":80}]}]})")};
    CHECK(unrouted(plan_traffic(c))[500] == doctest::Approx(20));
    c.reference_grants = {make(json::parse(R"({"metadata":{"name":"g","namespace":"backends","uid":"g1"},
      "spec":{"from":[{"group":"gateway.networking.k8s.io","kind":"HTTPRoute","namespace":"test"}],"to":[{"group":"","kind":"Service","name":"shared"}]}})"))};
    auto p = plan_traffic(c);
    CHECK(unrouted(p).empty());
    CHECK(rps_by_workload(p)["shared"] == doctest::Approx(20));
  }
}

TEST_CASE("GAMMA: an HTTPRoute whose parent is a Service routes the requests its clients send to it") {
  cluster_objects c = fixture();
  c.gateways.clear();
  c.services[0] = service("podinfo", "test", R"({"app":"podinfo-primary"})");
  c.http_routes = {route("podinfo", "test", R"({"parentRefs":[{"group":"","kind":"Service","name":"podinfo","port":9898}],"rules":[
    {"backendRefs":[{"name":"podinfo-primary","port":9898,"weight":90},{"name":"podinfo-canary","port":9898,"weight":10}]}]})")};
  auto p = plan_traffic(c);
  auto by = rps_by_workload(p);
  CHECK(by["podinfo-primary"] == doctest::Approx(18));
  CHECK(by["podinfo"] == doctest::Approx(2));
  REQUIRE(p.flows.size() == 1);
  CHECK(p.flows[0].service == "podinfo");
  CHECK(p.flows[0].entry == "Service");
}
