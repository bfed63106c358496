// The pure half of the Istio router: the VirtualService and DestinationRules Flagger's
// IstioRouter writes, the routes read back, take-over and restore.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/istio.hpp"
#include "core/provider.hpp"
#include "core/router.hpp"

using namespace canaryd::core;
namespace json = boost::json;

namespace {

// Flagger's istio example (examples/istio-canary.yaml), as JSON, with the analysis swapped in.
canary make_canary(const std::string& analysis = R"("analysis":{"interval":"15s","threshold":10,"maxWeight":50,"stepWeight":5})") {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"test","uid":"u-1"},
    "spec":{"provider":"istio","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
      "service":{"name":"podinfo","port":80,"targetPort":9898,"portName":"http","portDiscovery":true,
        "gateways":["istio-system/public-gateway","mesh"],"hosts":["app.example.com"],
        "trafficPolicy":{"tls":{"mode":"DISABLE"}},
        "match":[{"uri":{"prefix":"/"}}],"rewrite":{"uri":"/"},"timeout":"30s"},
      )" + analysis + "}}";
  auto d = decode_canary(text);
  REQUIRE_MESSAGE(d.ok(), join_errors(d.errors));
  return d.value;
}

json::value parse(const std::string& s) { return json::parse(s); }
std::string str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : json::serialize(v); }

}  // namespace

TEST_CASE("the VirtualService of Flagger's istio example: hosts, gateways, the service's route fields and 100/0") {
  canary c = make_canary();
  auto body = istio::virtual_service_create_body(c);
  REQUIRE(body.has_value());
  json::value vs = parse(*body);
  CHECK(vs.at("apiVersion") == "networking.istio.io/v1beta1");
  CHECK(vs.at("kind") == "VirtualService");
  CHECK(vs.at_pointer("/metadata/name") == "podinfo");
  CHECK(vs.at_pointer("/metadata/namespace") == "test");
  CHECK(vs.at_pointer("/metadata/annotations/kustomize.toolkit.fluxcd.io~1reconcile") == "disabled");
  CHECK(vs.at_pointer("/metadata/annotations/helm.toolkit.fluxcd.io~1driftDetection") == "disabled");
  CHECK(vs.at_pointer("/metadata/ownerReferences/0/kind") == "Canary");
  CHECK(vs.at_pointer("/metadata/ownerReferences/0/controller") == true);
  CHECK(vs.at_pointer("/spec/hosts") == json::parse(R"(["app.example.com","podinfo"])"));
  CHECK(vs.at_pointer("/spec/gateways") == json::parse(R"(["istio-system/public-gateway","mesh"])"));
  json::value expected_http = json::parse(R"([{
    "match":[{"uri":{"prefix":"/"}}],"rewrite":{"uri":"/"},"timeout":"30s",
    "route":[{"destination":{"host":"podinfo-primary","port":{"number":80}},"weight":100},
             {"destination":{"host":"podinfo-canary","port":{"number":80}}}]}])");
  CHECK(vs.at_pointer("/spec/http") == expected_http);
}

TEST_CASE("without gateways the mesh gateway is used and destinations carry no port") {
  canary c = make_canary();
  c.spec.service.gateways.clear();
  c.spec.service.hosts.clear();
  auto spec = istio::virtual_service_spec(c, {90, 10, false});
  REQUIRE(spec.has_value());
  json::value v = parse(*spec);
  CHECK(v.at("hosts") == json::parse(R"(["podinfo"])"));
  CHECK(v.at("gateways") == json::parse(R"(["mesh"])"));
  CHECK(v.at_pointer("/http/0/route") ==
        json::parse(R"([{"destination":{"host":"podinfo-primary"},"weight":90},{"destination":{"host":"podinfo-canary"},"weight":10}])"));
}

TEST_CASE("delegation leaves hosts and gateways out, and refuses a Canary that sets them") {
  canary c = make_canary();
  c.spec.service.delegation = true;
  auto bad = istio::virtual_service_spec(c, {100, 0, false});
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error() == "VirtualService podinfo.test cannot have hosts and gateways when delegation enabled");
  c.spec.service.hosts.clear();
  c.spec.service.gateways.clear();
  auto ok = istio::virtual_service_spec(c, {100, 0, false});
  REQUIRE(ok.has_value());
  json::value v = parse(*ok);
  CHECK(!v.as_object().contains("hosts"));
  CHECK(!v.as_object().contains("gateways"));
  CHECK(v.at_pointer("/http/0/route/0/destination/port/number") == 80);  // delegation sets ports
}

TEST_CASE("A/B: the analysis match crossed with the service match routes to the canary, the rest to the primary") {
  canary c = make_canary(R"("analysis":{"interval":"15s","threshold":10,"iterations":10,
    "match":[{"headers":{"x-canary":{"regex":".*insider.*"}}},{"headers":{"cookie":{"regex":"^(.*?;)?(canary=always)(;.*)?$"}}}]})");
  auto spec = istio::virtual_service_spec(c, {0, 100, false});
  REQUIRE(spec.has_value());
  json::value v = parse(*spec);
  auto& http = v.at("http").as_array();
  REQUIRE(http.size() == 2);
  CHECK(http[0].at("match") == json::parse(R"([
    {"uri":{"prefix":"/"},"headers":{"x-canary":{"regex":".*insider.*"}}},
    {"uri":{"prefix":"/"},"headers":{"cookie":{"regex":"^(.*?;)?(canary=always)(;.*)?$"}}}])"));
  CHECK(http[0].at("route") == json::parse(R"([{"destination":{"host":"podinfo-primary","port":{"number":80}}},
    {"destination":{"host":"podinfo-canary","port":{"number":80}},"weight":100}])"));
  CHECK(http[1].at("match") == json::parse(R"([{"uri":{"prefix":"/"}}])"));
  // SetRoutes gives the default route the primary's weight, as Flagger does; 0 is omitted, so
  // the lone destination takes everything.
  CHECK(http[1].at("route") == json::parse(R"([{"destination":{"host":"podinfo-primary","port":{"number":80}}}])"));
}

TEST_CASE("mirroring sets the canary as mirror with mirrorWeight as its percentage") {
  canary c = make_canary(R"("analysis":{"interval":"15s","threshold":10,"iterations":10,"mirror":true,"mirrorWeight":50})");
  auto spec = istio::virtual_service_spec(c, {100, 0, true});
  REQUIRE(spec.has_value());
  json::value v = parse(*spec);
  CHECK(v.at_pointer("/http/0/mirror") == json::parse(R"({"host":"podinfo-canary"})"));
  CHECK(v.at_pointer("/http/0/mirrorPercentage") == json::parse(R"({"value":50})"));
  auto none = istio::virtual_service_spec(c, {0, 100, false});
  REQUIRE(none.has_value());
  CHECK(!parse(*none).at_pointer("/http/0").as_object().contains("mirror"));
}

TEST_CASE("routes are read from the http route that has the canary destination") {
  canary c = make_canary();
  auto spec = istio::virtual_service_spec(c, {70, 30, true});
  REQUIRE(spec.has_value());
  std::string vs = R"({"metadata":{"name":"podinfo"},"spec":)" + *spec + "}";
  auto r = istio::read_routes(c, vs);
  REQUIRE(r.has_value());
  CHECK(r->primary == 70);
  CHECK(r->canary == 30);
  CHECK(r->mirrored);

  auto missing = istio::read_routes(c, R"({"spec":{"http":[{"route":[{"destination":{"host":"other"},"weight":100}]}]}})");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error() == "VirtualService podinfo.test does not contain routes for podinfo-primary and podinfo-canary");
  CHECK_FALSE(istio::read_routes(c, "not json").has_value());
}

TEST_CASE("reconcile takes over a user's VirtualService, keeps its original spec for finalize, and is idle afterwards") {
  canary c = make_canary();
  const std::string users = R"({"apiVersion":"networking.istio.io/v1beta1","kind":"VirtualService",
    "metadata":{"name":"podinfo","namespace":"test","resourceVersion":"7"},
    "spec":{"hosts":["podinfo"],"http":[{"route":[{"destination":{"host":"podinfo"}}]}]}})";
  auto taken = istio::virtual_service_reconcile_body(c, users);
  REQUIRE(taken.has_value());
  REQUIRE(*taken);
  json::value v = parse(**taken);
  CHECK(v.at_pointer("/metadata/resourceVersion") == "7");
  CHECK(parse(std::string(v.at_pointer("/metadata/annotations/flagger.kubernetes.io~1original-configuration").as_string())) ==
        json::parse(R"({"hosts":["podinfo"],"http":[{"route":[{"destination":{"host":"podinfo"}}]}]})"));
  CHECK(v.at_pointer("/spec/http/0/route/0/weight") == 100);

  // Once it is ours, reconciling again writes nothing, whatever the weights in force.
  auto idle = istio::virtual_service_reconcile_body(c, **taken);
  REQUIRE(idle.has_value());
  CHECK_FALSE(*idle);
  auto shifted = istio::virtual_service_routes_body(c, **taken, {60, 40, false});
  REQUIRE(shifted.has_value());
  REQUIRE(*shifted);
  CHECK(istio::read_routes(c, **shifted)->canary == 40);
  auto still_idle = istio::virtual_service_reconcile_body(c, **shifted);
  REQUIRE(still_idle.has_value());
  CHECK_FALSE(*still_idle);
  // Setting the routes in force writes nothing.
  auto same = istio::virtual_service_routes_body(c, **shifted, {60, 40, false});
  REQUIRE(same.has_value());
  CHECK_FALSE(*same);

  // A change of the Canary's service is applied while the weights in force stay.
  canary changed = c;
  changed.spec.service.timeout = "10s";
  auto updated = istio::virtual_service_reconcile_body(changed, **shifted);
  REQUIRE(updated.has_value());
  REQUIRE(*updated);
  CHECK(parse(**updated).at_pointer("/spec/http/0/timeout") == "10s");
  CHECK(istio::read_routes(c, **updated)->canary == 40);

  // Finalize restores the user's spec.
  auto restored = istio::virtual_service_finalize_body(c, **updated);
  REQUIRE(restored.has_value());
  REQUIRE(*restored);
  CHECK(parse(**restored).at("spec") == json::parse(R"({"hosts":["podinfo"],"http":[{"route":[{"destination":{"host":"podinfo"}}]}]})"));
}

TEST_CASE("finalize without an original configuration changes nothing, as Flagger only logs it") {
  canary c = make_canary();
  auto created = istio::virtual_service_create_body(c);
  REQUIRE(created.has_value());
  auto r = istio::virtual_service_finalize_body(c, *created);
  REQUIRE(r.has_value());
  CHECK_FALSE(*r);
}

TEST_CASE("DestinationRules carry the host and the service's trafficPolicy, and are updated only on a difference") {
  canary c = make_canary();
  json::value dr = parse(istio::destination_rule_create_body(c, "podinfo-canary"));
  CHECK(dr.at("kind") == "DestinationRule");
  CHECK(dr.at_pointer("/metadata/name") == "podinfo-canary");
  CHECK(dr.at("spec") == json::parse(R"({"host":"podinfo-canary","trafficPolicy":{"tls":{"mode":"DISABLE"}}})"));
  auto same = istio::destination_rule_update_body(c, "podinfo-canary", json::serialize(dr));
  REQUIRE(same.has_value());
  CHECK_FALSE(*same);
  dr.as_object()["spec"] = json::parse(R"({"host":"podinfo-canary"})");
  auto fixed = istio::destination_rule_update_body(c, "podinfo-canary", json::serialize(dr));
  REQUIRE(fixed.has_value());
  REQUIRE(*fixed);
  CHECK(parse(**fixed).at_pointer("/spec/trafficPolicy/tls/mode") == "DISABLE");
}

TEST_CASE("session affinity: a sticky route and Set-Cookie while the canary has weight, a cookie deletion at weight 0") {
  canary c = make_canary(R"("analysis":{"interval":"30s","threshold":10,"maxWeight":50,"stepWeight":10,
    "sessionAffinity":{"cookieName":"flagger-cookie","maxAge":21600,"primaryCookieName":"flagger-primary","path":"/","secure":true}})");
  session_cookies cookies{"flagger-cookie=abcdefghij", "flagger-primary=klmnopqrst", ""};
  auto spec = istio::virtual_service_spec(c, {90, 10, false}, cookies);
  REQUIRE(spec.has_value());
  json::value v = parse(*spec);
  const auto& http = v.at("http").as_array();
  REQUIRE(http.size() == 3);
  CHECK(http[0].at("name") == "sticky-route");
  CHECK(http[0].at("match") == json::parse(R"([{"uri":{"prefix":"/"},"headers":{"Cookie":{"regex":".*flagger-cookie.*abcdefghij.*"}}}])"));
  CHECK(http[0].at("route") == json::parse(R"([{"destination":{"host":"podinfo-primary","port":{"number":80}}},
    {"destination":{"host":"podinfo-canary","port":{"number":80}},"weight":100}])"));
  CHECK(http[1].at("name") == "sticky-route-primary");
  CHECK(str(http[1].at_pointer("/match/0/headers/Cookie/regex")) == ".*flagger-primary.*klmnopqrst.*");
  const auto& weighted = http[2].at("route").as_array();
  CHECK(str(weighted[1].at_pointer("/headers/response/add/Set-Cookie")) == "flagger-cookie=abcdefghij; Max-Age=21600; Path=/; Secure");
  CHECK(str(weighted[0].at_pointer("/headers/response/add/Set-Cookie")) == "flagger-primary=klmnopqrst; Max-Age=30; Path=/; Secure");
  // The weights are read from the weighted route.
  auto r = istio::read_routes(c, R"({"spec":)" + *spec + "}");
  REQUIRE(r.has_value());
  CHECK(r->canary == 10);

  session_cookies after{"", "", "flagger-cookie=abcdefghij"};
  auto done = istio::virtual_service_spec(c, {100, 0, false}, after);
  REQUIRE(done.has_value());
  json::value d = parse(*done);
  REQUIRE(d.at("http").as_array().size() == 2);
  CHECK(str(d.at_pointer("/http/0/headers/response/add/Set-Cookie")) == "flagger-cookie=abcdefghij; Max-Age=-1");
  CHECK(str(d.at_pointer("/http/0/match/0/headers/Cookie/regex")) == ".*flagger-cookie.*abcdefghij.*");
  CHECK(d.at_pointer("/http/1/route/0/weight") == 100);

  // Reconcile ignores the sticky routes and Set-Cookie headers: no write during a run.
  auto created = istio::virtual_service_create_body(c);
  REQUIRE(created.has_value());
  json::value vs = parse(*created);
  vs.as_object()["spec"] = parse(*spec);
  auto idle = istio::virtual_service_reconcile_body(c, json::serialize(vs));
  REQUIRE(idle.has_value());
  CHECK_FALSE(*idle);
}

TEST_CASE("on a mesh cluster apart from the main one the created objects carry no ownerReference, the rest unchanged") {
  canary c = make_canary();
  auto created = istio::virtual_service_create_body(c);
  REQUIRE(created.has_value());
  json::value with = parse(*created);
  REQUIRE(with.at_pointer("/metadata/ownerReferences").as_array().size() == 1);
  auto stripped = without_owner_references(*created);
  REQUIRE(stripped.has_value());
  json::value without = parse(*stripped);
  CHECK_FALSE(without.at("metadata").as_object().contains("ownerReferences"));
  with.at("metadata").as_object().erase("ownerReferences");
  CHECK(without == with);

  json::value dr = parse(*without_owner_references(istio::destination_rule_create_body(c, "podinfo-canary")));
  CHECK_FALSE(dr.at("metadata").as_object().contains("ownerReferences"));
  CHECK(dr.at_pointer("/spec/host") == "podinfo-canary");

  CHECK_FALSE(without_owner_references("[1]").has_value());
  CHECK_FALSE(without_owner_references("not json").has_value());
  // Istio's and Gateway API's objects live where Flagger's meshClient points.
  CHECK(make_route_provider(*parse_provider("istio"))->on_mesh_cluster());
  CHECK(make_route_provider(*parse_provider("gatewayapi:v1"))->on_mesh_cluster());
}
