// The Gateway API provider's rules (core/gatewayapi.hpp), as pure tables: the HTTPRoute Flagger's
// GatewayAPIRouter writes, the routes read back, A/B, Blue/Green mirroring, session affinity,
// take-over and the router design's view of it (core/router.hpp).
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/gatewayapi.hpp"
#include "core/provider.hpp"
#include "core/router.hpp"

using namespace canaryd::core;
namespace json = boost::json;

namespace {

// Flagger's Gateway API e2e Canary (test/gatewayapi), in JSON, with `service_extra` and the
// analysis swapped in.
canary make_canary(const std::string& analysis = R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10})",
                   const std::string& service_extra = "") {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"test","uid":"u-1"},
    "spec":{"provider":"gatewayapi:v1","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
      "service":{"port":9898,"targetPort":9898,"hosts":["www.example.com"],)" +
                     service_extra + R"(
        "gatewayRefs":[{"name":"gateway","namespace":"istio-ingress"}]},
      )" + analysis + "}}";
  auto d = decode_canary(text);
  REQUIRE_MESSAGE(d.ok(), join_errors(d.errors));
  return d.value;
}

json::value backend(const std::string& name, int weight) {
  return json::object{{"group", ""}, {"kind", "Service"}, {"name", name}, {"port", 9898}, {"weight", weight}};
}

const json::value default_match = json::parse(R"([{"path":{"type":"PathPrefix","value":"/"}}])");

json::value created(const canary& c, const char* version = "v1") {
  auto body = gatewayapi::http_route_create_body(c, version);
  REQUIRE_MESSAGE(body.has_value(), body.error());
  return json::parse(*body);
}

// The object as the API server returns it after a PUT of `body` (metadata kept as sent).
std::string put(const std::optional<std::string>& body) {
  REQUIRE(body.has_value());
  return *body;
}

}  // namespace

TEST_CASE("the HTTPRoute: parentRefs, hostnames, the default path match, backendRefs 100/0 with the service port") {
  canary c = make_canary();
  json::value hr = created(c);
  CHECK(hr.at("apiVersion") == "gateway.networking.k8s.io/v1");
  CHECK(hr.at("kind") == "HTTPRoute");
  CHECK(hr.at_pointer("/metadata/name") == "podinfo");
  CHECK(hr.at_pointer("/metadata/namespace") == "test");
  CHECK(hr.at_pointer("/metadata/annotations/kustomize.toolkit.fluxcd.io~1reconcile") == "disabled");
  CHECK(hr.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");
  CHECK(hr.at_pointer("/spec/parentRefs") ==
        json::parse(R"([{"group":"gateway.networking.k8s.io","kind":"Gateway","name":"gateway","namespace":"istio-ingress"}])"));
  CHECK(hr.at_pointer("/spec/hostnames") == json::parse(R"(["www.example.com"])"));
  json::array rules = hr.at_pointer("/spec/rules").as_array();
  REQUIRE(rules.size() == 1);
  CHECK(rules[0].at("matches") == default_match);
  CHECK(rules[0].at("backendRefs") == json::array{backend("podinfo-primary", 100), backend("podinfo-canary", 0)});
  CHECK_FALSE(rules[0].as_object().contains("filters"));
  CHECK_FALSE(rules[0].as_object().contains("timeouts"));

  CHECK(created(c, "v1beta1").at("apiVersion") == "gateway.networking.k8s.io/v1beta1");
  auto r = gatewayapi::read_routes(c, json::serialize(hr));
  REQUIRE(r.has_value());
  CHECK(*r == traffic_routes{100, 0, false});
}

TEST_CASE("without gatewayRefs the Canary is refused with Flagger's message") {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary","metadata":{"name":"podinfo","namespace":"test"},
    "spec":{"provider":"gatewayapi:v1","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
      "service":{"port":9898},"analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10}}})";
  auto d = decode_canary(text);
  REQUIRE(d.ok());
  auto body = gatewayapi::http_route_create_body(d.value, "v1");
  REQUIRE_FALSE(body.has_value());
  CHECK(body.error() == "GatewayRefs must be specified when using Gateway API as a provider.");
}

TEST_CASE("service.match, headers, rewrite, timeouts, mirror and CORS become matches, filters and timeouts") {
  canary c = make_canary(
      R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10})",
      R"("match":[{"uri":{"prefix":"/api"},"method":{"exact":"GET"},"headers":{"x-b":{"regex":"b.*"},"x-a":{"exact":"a"}},
                   "queryParams":{"q":{"exact":"1"}}}],
        "headers":{"request":{"set":{"z":"1","a":"2"},"remove":["x-drop"]},"response":{"add":{"x-served":"canaryd"}}},
        "rewrite":{"uri":"/v2","authority":"backend.example.com","type":"ReplacePrefixMatch"},
        "timeout":"30s","backendTimeout":"10s",
        "mirror":[{"backendRef":{"name":"shadow","port":8080},"percent":20}],
        "corsPolicy":{"allowOrigins":[{"exact":"https://example.com"}],"allowMethods":["GET","POST"],"maxAge":"24h","allowCredentials":true},)");
  json::value rule = created(c).at_pointer("/spec/rules/0");
  CHECK(rule.at("matches") == json::parse(R"([{"path":{"type":"PathPrefix","value":"/api"},"method":"GET",
      "headers":[{"name":"x-a","type":"Exact","value":"a"},{"name":"x-b","type":"RegularExpression","value":"b.*"}],
      "queryParams":[{"name":"q","type":"Exact","value":"1"}]}])"));
  CHECK(rule.at("filters") == json::parse(R"([
      {"type":"RequestHeaderModifier","requestHeaderModifier":{"set":[{"name":"a","value":"2"},{"name":"z","value":"1"}],"remove":["x-drop"]}},
      {"type":"ResponseHeaderModifier","responseHeaderModifier":{"add":[{"name":"x-served","value":"canaryd"}]}},
      {"type":"URLRewrite","urlRewrite":{"hostname":"backend.example.com","path":{"type":"ReplacePrefixMatch","replacePrefixMatch":"/v2"}}},
      {"type":"RequestMirror","requestMirror":{"backendRef":{"group":"","kind":"Service","name":"shadow","port":8080},"percent":20}},
      {"type":"CORS","cors":{"allowOrigins":["https://example.com"],"allowMethods":["GET","POST"],"maxAge":86400,"allowCredentials":true}}])"));
  CHECK(rule.at("timeouts") == json::parse(R"({"request":"30s","backendRequest":"10s"})"));
}

TEST_CASE("a match Gateway API cannot express is refused") {
  canary c = make_canary(R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10})",
                         R"("match":[{"uri":{"suffix":".png"}}],)");
  auto body = gatewayapi::http_route_create_body(c, "v1");
  REQUIRE_FALSE(body.has_value());
  CHECK(body.error().find("Invalid request matching selectors") == 0);
}

TEST_CASE("A/B: analysis.match x service.match to the weighted backends, the rest to the primary alone") {
  canary c = make_canary(
      R"("analysis":{"interval":"15s","threshold":10,"iterations":5,
         "match":[{"headers":{"x-canary":{"exact":"insider"}}},{"headers":{"cookie":{"regex":"^(.*?;)?(canary=always)(;.*)?$"}}}]})");
  json::value hr = created(c);
  auto set = gatewayapi::http_route_routes_body(c, json::serialize(hr), traffic_routes{0, 100, false});
  REQUIRE(set.has_value());
  json::value after = json::parse(put(*set));
  json::array rules = after.at_pointer("/spec/rules").as_array();
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].at("matches") == json::parse(R"([
      {"path":{"type":"PathPrefix","value":"/"},"headers":[{"name":"x-canary","type":"Exact","value":"insider"}]},
      {"path":{"type":"PathPrefix","value":"/"},"headers":[{"name":"cookie","type":"RegularExpression","value":"^(.*?;)?(canary=always)(;.*)?$"}]}])"));
  CHECK(rules[0].at("backendRefs") == json::array{backend("podinfo-primary", 0), backend("podinfo-canary", 100)});
  CHECK(rules[1].at("matches") == default_match);
  CHECK(rules[1].at("backendRefs") == json::array{backend("podinfo-primary", 100)});
  auto r = gatewayapi::read_routes(c, json::serialize(after));
  REQUIRE(r.has_value());
  CHECK(*r == traffic_routes{0, 100, false});
}

TEST_CASE("Blue/Green mirroring: a RequestMirror filter to the canary, read back, ignored by reconcile") {
  canary c = make_canary(R"("analysis":{"interval":"15s","threshold":10,"iterations":5,"mirror":true})");
  const std::string hr = json::serialize(created(c));
  auto set = gatewayapi::http_route_routes_body(c, hr, traffic_routes{100, 0, true});
  REQUIRE(set.has_value());
  json::value after = json::parse(put(*set));
  CHECK(after.at_pointer("/spec/rules/0/filters") == json::parse(R"([{"type":"RequestMirror",
      "requestMirror":{"backendRef":{"group":"","kind":"Service","name":"podinfo-canary","port":9898}}}])"));
  auto r = gatewayapi::read_routes(c, json::serialize(after));
  REQUIRE(r.has_value());
  CHECK(*r == traffic_routes{100, 0, true});
  // The routes in force: no write; reconcile keeps the mirror and writes nothing either.
  auto again = gatewayapi::http_route_routes_body(c, json::serialize(after), traffic_routes{100, 0, true});
  REQUIRE(again.has_value());
  CHECK_FALSE(*again);
  auto rec = gatewayapi::http_route_reconcile_body(c, json::serialize(after));
  REQUIRE(rec.has_value());
  CHECK_FALSE(*rec);
  // Without iterations (a canary analysis), Flagger mirrors nothing.
  canary weighted = make_canary(R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10,"mirror":true})");
  auto no_mirror = gatewayapi::http_route_routes_body(weighted, hr, traffic_routes{90, 10, true});
  REQUIRE(no_mirror.has_value());
  CHECK_FALSE(json::parse(put(*no_mirror)).at_pointer("/spec/rules/0").as_object().contains("filters"));
}

TEST_CASE("session affinity: a sticky rule and Set-Cookie while the canary has weight, a cookie deletion at weight 0") {
  canary c = make_canary(
      R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10,
         "sessionAffinity":{"cookieName":"flagger-cookie","maxAge":21600}})");
  const std::string hr = json::serialize(created(c));
  session_cookies cookies;
  cookies.canary = "flagger-cookie=abc";
  auto set = gatewayapi::http_route_routes_body(c, hr, traffic_routes{90, 10, false}, cookies);
  REQUIRE(set.has_value());
  json::value after = json::parse(put(*set));
  json::array rules = after.at_pointer("/spec/rules").as_array();
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].at("matches") == json::parse(R"([{"path":{"type":"PathPrefix","value":"/"},
      "headers":[{"name":"Cookie","type":"RegularExpression","value":".*flagger-cookie.*abc.*"}]}])"));
  CHECK(rules[0].at("backendRefs") == json::array{backend("podinfo-primary", 0), backend("podinfo-canary", 100)});
  CHECK(rules[1].at("matches") == default_match);
  CHECK(rules[1].at_pointer("/backendRefs/0/weight") == 90);
  CHECK_FALSE(rules[1].at_pointer("/backendRefs/0").as_object().contains("filters"));
  CHECK(rules[1].at_pointer("/backendRefs/1/filters") == json::parse(R"([{"type":"ResponseHeaderModifier",
      "responseHeaderModifier":{"add":[{"name":"Set-Cookie","value":"flagger-cookie=abc; Max-Age=21600"}]}}])"));
  auto r = gatewayapi::read_routes(c, json::serialize(after));
  REQUIRE(r.has_value());
  CHECK(*r == traffic_routes{90, 10, false});
  // Reconcile ignores the sticky rule and the cookie filters.
  auto rec = gatewayapi::http_route_reconcile_body(c, json::serialize(after));
  REQUIRE(rec.has_value());
  CHECK_FALSE(*rec);

  session_cookies done;
  done.previous = "flagger-cookie=abc";
  auto reset = gatewayapi::http_route_routes_body(c, json::serialize(after), traffic_routes{100, 0, false}, done);
  REQUIRE(reset.has_value());
  json::value promoted = json::parse(put(*reset));
  json::array prules = promoted.at_pointer("/spec/rules").as_array();
  REQUIRE(prules.size() == 2);
  CHECK(prules[0].at_pointer("/matches/0/headers/0/value") == ".*flagger-cookie.*abc.*");
  CHECK(prules[0].at("filters") == json::parse(R"([{"type":"ResponseHeaderModifier",
      "responseHeaderModifier":{"add":[{"name":"Set-Cookie","value":"flagger-cookie=abc; Max-Age=-1"}]}}])"));
  CHECK(prules[1].at("backendRefs") == json::array{backend("podinfo-primary", 100), backend("podinfo-canary", 0)});
}

TEST_CASE("reconcile takes over a user's HTTPRoute keeping foreign annotations, keeps the weights in force, then is idle") {
  canary c = make_canary();
  const std::string user = R"({"apiVersion":"gateway.networking.k8s.io/v1","kind":"HTTPRoute",
    "metadata":{"name":"podinfo","namespace":"test","resourceVersion":"7","labels":{"team":"web"},
      "annotations":{"external-dns.alpha.kubernetes.io/hostname":"www.example.com"}},
    "spec":{"parentRefs":[{"name":"other"}],"rules":[{"backendRefs":[{"name":"podinfo","port":9898}]}]}})";
  auto rec = gatewayapi::http_route_reconcile_body(c, user);
  REQUIRE(rec.has_value());
  json::value taken = json::parse(put(*rec));
  CHECK(taken.at_pointer("/metadata/resourceVersion") == "7");
  CHECK(taken.at_pointer("/metadata/annotations/external-dns.alpha.kubernetes.io~1hostname") == "www.example.com");
  CHECK(taken.at_pointer("/metadata/annotations/kustomize.toolkit.fluxcd.io~1reconcile") == "disabled");
  CHECK(taken.at_pointer("/spec/rules/0/backendRefs") == json::array{backend("podinfo-primary", 100), backend("podinfo-canary", 0)});
  auto idle = gatewayapi::http_route_reconcile_body(c, json::serialize(taken));
  REQUIRE(idle.has_value());
  CHECK_FALSE(*idle);

  // Mid-run, a change of the Canary's service (a new host) keeps the weights in force.
  auto mid = gatewayapi::http_route_routes_body(c, json::serialize(taken), traffic_routes{70, 30, false});
  REQUIRE(mid.has_value());
  canary changed = make_canary(R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":10})",
                               R"("timeout":"5s",)");
  auto rec2 = gatewayapi::http_route_reconcile_body(changed, put(*mid));
  REQUIRE(rec2.has_value());
  json::value updated = json::parse(put(*rec2));
  CHECK(updated.at_pointer("/spec/rules/0/timeouts/request") == "5s");
  CHECK(updated.at_pointer("/spec/rules/0/backendRefs") == json::array{backend("podinfo-primary", 70), backend("podinfo-canary", 30)});
}

TEST_CASE("the router design: each provider names its objects, the one with the routes, and what finalize restores") {
  auto gw = make_route_provider(*parse_provider("gatewayapi:v1beta1"));
  REQUIRE(gw);
  canary c = make_canary();
  auto objs = gw->objects(c);
  REQUIRE(objs.size() == 1);
  CHECK(objs[0].name == "podinfo");
  CHECK(objs[0].holds_routes);
  CHECK(objs[0].kind == object_kind{"gateway.networking.k8s.io", "v1beta1", "httproutes", "HTTPRoute"});
  CHECK(gw->kinds() == std::vector<object_kind>{objs[0].kind});
  auto fin = gw->finalize_body(c, objs[0], json::serialize(created(c)));
  REQUIRE(fin.has_value());
  CHECK_FALSE(fin->body);  // Flagger's Finalize is a no-op for Gateway API
  CHECK_FALSE(gw->finalize_restores());

  auto istio = make_route_provider(*parse_provider("istio"));
  REQUIRE(istio);
  auto iobjs = istio->objects(c);
  REQUIRE(iobjs.size() == 3);
  CHECK(iobjs[0].name == "podinfo-canary");
  CHECK(iobjs[1].name == "podinfo-primary");
  CHECK(iobjs[2].name == "podinfo");
  CHECK(iobjs[2].holds_routes);
  CHECK(iobjs[2].kind.kind == "VirtualService");
  CHECK(istio->finalize_restores());  // the VirtualService from original-configuration

  CHECK_FALSE(make_route_provider(*parse_provider("kubernetes")));  // the Services alone
  CHECK_FALSE(make_route_provider(*parse_provider("linkerd")));     // no router yet
}
