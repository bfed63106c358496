// The Kubernetes Services the router manages (Flagger's KubernetesDefaultRouter): names,
// selectors, ports, portDiscovery, metadata, the update of an existing Service and the apex's
// restore on finalize, as pure tables.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/services.hpp"

using namespace canaryd::core;
namespace json = boost::json;

namespace {

const std::vector<std::string> default_labels{"app", "name", "app.kubernetes.io/name"};

// Flagger's test fixture (pkg/controller/scheduler_deployment_fixture_test.go): container podinfo
// with http 9898, http-metrics 8080 and an unnamed 8888, plus an istio-proxy sidecar.
const char* const podinfo = R"({"apiVersion":"apps/v1","kind":"Deployment",
  "metadata":{"name":"podinfo","namespace":"default"},
  "spec":{"selector":{"matchLabels":{"name":"podinfo"}},
    "template":{"metadata":{"labels":{"name":"podinfo"}},"spec":{"containers":[
      {"name":"podinfo","image":"quay.io/stefanprodan/podinfo:1.2.0",
       "ports":[{"name":"http","containerPort":9898},{"name":"http-metrics","containerPort":8080},{"containerPort":8888}]},
      {"name":"istio-proxy","image":"istio/proxyv2","ports":[{"name":"http-envoy-prom","containerPort":15090}]}]}}}})";

canary make_canary(const std::string& service) {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"default","uid":"uid-1"},
    "spec":{"provider":"kubernetes","targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
      "service":)" + service + R"(,"analysis":{"interval":"1m","threshold":5,"iterations":3}}})";
  auto d = decode_canary(text);
  REQUIRE_MESSAGE(d.ok(), join_errors(d.errors));
  return d.value;
}

target_metadata metadata(const canary& c, const char* target = podinfo) {
  auto t = read_target_metadata(c, target, default_labels);
  REQUIRE_MESSAGE(t.has_value(), t.error());
  return *t;
}

std::string ports_text(const desired_service& s) {
  std::string out;
  for (const auto& p : s.ports) {
    if (!out.empty()) out += ", ";
    out += p.name + " " + std::to_string(p.port) + "->" +
           (p.target_port.is_string ? p.target_port.string_value : std::to_string(p.target_port.int_value));
  }
  return out;
}

json::value parse(const std::string& s) { return json::parse(s); }

}  // namespace

TEST_CASE("the three Services are named after service.name or the target and select primary or canary pods") {
  struct row {
    const char* service;
    const char* apex;
    const char* primary;
    const char* canary_name;
  };
  const row rows[] = {
      {R"({"port":9898})", "podinfo", "podinfo-primary", "podinfo-canary"},
      {R"({"name":"frontend","port":9898})", "frontend", "frontend-primary", "frontend-canary"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.service);
    auto c = make_canary(r.service);
    auto set = build_services(c, metadata(c));
    CHECK(set.apex.name == r.apex);
    CHECK(set.primary.name == r.primary);
    CHECK(set.canary.name == r.canary_name);
    // The selector label is the first of -selector-labels in matchLabels ("name" here), and its
    // value, not the target's name, is what the selectors use.
    CHECK(set.apex.selector == std::map<std::string, std::string>{{"name", "podinfo-primary"}});
    CHECK(set.primary.selector == std::map<std::string, std::string>{{"name", "podinfo-primary"}});
    CHECK(set.canary.selector == std::map<std::string, std::string>{{"name", "podinfo"}});
    // Each Service is labelled {<label>: <its own name>}.
    CHECK(set.apex.labels.at("name") == r.apex);
    CHECK(set.canary.labels.at("name") == r.canary_name);
    CHECK(set.apex.namespace_ == "default");
  }
}

TEST_CASE("the selector label value comes from matchLabels even when it differs from the target name") {
  auto c = make_canary(R"({"port":80})");
  const char* target = R"({"spec":{"selector":{"matchLabels":{"app.kubernetes.io/name":"web","tier":"x"}}}})";
  auto t = metadata(c, target);
  CHECK(t.label == "app.kubernetes.io/name");
  CHECK(t.label_value == "web");
  auto set = build_services(c, t);
  CHECK(set.apex.selector.at("app.kubernetes.io/name") == "web-primary");
  CHECK(set.canary.selector.at("app.kubernetes.io/name") == "web");
}

TEST_CASE("a target without a selector label or with bad JSON is an error with Flagger's message") {
  auto c = make_canary(R"({"port":80})");
  auto t = read_target_metadata(c, R"({"spec":{"selector":{"matchLabels":{"tier":"x"}}}})", default_labels);
  REQUIRE(t.has_error());
  CHECK(t.error() == "deployment podinfo.default spec.selector.matchLabels must contain one of [app name app.kubernetes.io/name]");
  auto bad = read_target_metadata(c, "{not json", default_labels);
  REQUIRE(bad.has_error());
  CHECK(bad.error().find("deployment podinfo.default is not valid JSON") == 0);
  CHECK(read_target_metadata(c, "[1,2]", default_labels).has_error());
}

TEST_CASE("ports: port name, targetPort and portDiscovery as in Flagger's PortDiscovery scenarios") {
  struct row {
    const char* service;
    const char* ports;
  };
  const row rows[] = {
      // No discovery: one port, named http, targetPort = port.
      {R"({"port":9898})", "http 9898->9898"},
      {R"({"port":80,"portName":"web","targetPort":8080})", "web 80->8080"},
      {R"({"port":80,"targetPort":"http"})", "http 80->http"},
      // scheduler_deployment_test.go TestScheduler_DeploymentPortDiscovery / TargetPortNumber /
      // TargetPortName: the main port is left out of the discovered ones; the sidecar is skipped;
      // an unnamed port is tcp-<container>-<index>.
      {R"({"port":9898,"portDiscovery":true})", "http 9898->9898, http-metrics 8080->8080, tcp-podinfo-2 8888->8888"},
      {R"({"port":80,"targetPort":9898,"portDiscovery":true})",
       "http 80->9898, http-metrics 8080->8080, tcp-podinfo-2 8888->8888"},
      {R"({"port":8080,"targetPort":"http","portDiscovery":true})",
       "http 8080->http, http-metrics 8080->8080, tcp-podinfo-2 8888->8888"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.service);
    auto c = make_canary(r.service);
    auto set = build_services(c, metadata(c));
    CHECK(ports_text(set.apex) == r.ports);
    CHECK(ports_text(set.primary) == r.ports);
    CHECK(ports_text(set.canary) == r.ports);
  }
}

TEST_CASE("appProtocol is set on the main port only; trafficDistribution and headless reach the spec") {
  auto c = make_canary(R"({"port":9898,"appProtocol":"http","portDiscovery":true,"trafficDistribution":"PreferClose","headless":true})");
  auto s = build_service(c, metadata(c), service_role::canary);
  REQUIRE(s.ports.size() == 3);
  CHECK(s.ports[0].app_protocol == "http");
  CHECK(s.ports[1].app_protocol.empty());
  auto body = parse(service_create_body(c, s));
  CHECK(body.at("spec").at("ports").at(0).at("appProtocol") == "http");
  CHECK(body.at("spec").at("trafficDistribution") == "PreferClose");
  CHECK(body.at("spec").at("clusterIP") == "None");
  CHECK(body.at("spec").at("type") == "ClusterIP");
}

TEST_CASE("apex, primary and canary metadata come from service.apex/primary/canary plus Flagger's annotations") {
  auto c = make_canary(R"({"port":9898,
    "apex":{"labels":{"team":"a"},"annotations":{"note":"apex"}},
    "primary":{"labels":{"role":"p"}},
    "canary":{"annotations":{"note":"canary"}}})");
  auto set = build_services(c, metadata(c));
  const std::map<std::string, std::string> flux{{"kustomize.toolkit.fluxcd.io/reconcile", "disabled"},
                                                {"helm.toolkit.fluxcd.io/driftDetection", "disabled"}};
  CHECK(set.apex.labels == std::map<std::string, std::string>{{"name", "podinfo"}, {"team", "a"}});
  auto apex_annotations = flux;
  apex_annotations["note"] = "apex";
  CHECK(set.apex.annotations == apex_annotations);
  CHECK(set.primary.labels == std::map<std::string, std::string>{{"name", "podinfo-primary"}, {"role", "p"}});
  CHECK(set.primary.annotations == flux);
  auto canary_annotations = flux;
  canary_annotations["note"] = "canary";
  CHECK(set.canary.annotations == canary_annotations);
  CHECK(set.canary.labels == std::map<std::string, std::string>{{"name", "podinfo-canary"}});
}

TEST_CASE("the create body carries the Canary's controller ownerReference") {
  auto c = make_canary(R"({"port":9898})");
  auto body = parse(service_create_body(c, build_service(c, metadata(c), service_role::apex)));
  const auto& ref = body.at("metadata").at("ownerReferences").at(0);
  CHECK(ref.at("apiVersion") == "flagger.app/v1beta1");
  CHECK(ref.at("kind") == "Canary");
  CHECK(ref.at("name") == "podinfo");
  CHECK(ref.at("uid") == "uid-1");
  CHECK(ref.at("controller") == true);
  CHECK(body.at("metadata").at("name") == "podinfo");
  CHECK(body.at("spec").at("selector").at("name") == "podinfo-primary");
  auto [has_owner, owned] = owned_by_canary(json::serialize(body), "podinfo");
  CHECK(has_owner);
  CHECK(owned);
  CHECK(owned_by_canary(json::serialize(body), "other") == std::pair<bool, bool>{true, false});
  CHECK(owned_by_canary(R"({"metadata":{}})", "podinfo") == std::pair<bool, bool>{false, false});
}

TEST_CASE("an existing Service equal to the desired one needs no write") {
  auto c = make_canary(R"({"port":9898,"portDiscovery":true,"apex":{"labels":{"team":"a"}}})");
  auto s = build_service(c, metadata(c), service_role::apex);
  // As the API server returns it: defaults filled, clusterIP assigned, ports in another order.
  auto created = parse(service_create_body(c, s));
  created.at("metadata").as_object()["resourceVersion"] = "7";
  created.at("spec").as_object()["clusterIP"] = "10.0.0.12";
  auto& ports = created.at("spec").at("ports").as_array();
  std::reverse(ports.begin(), ports.end());
  auto update = service_update_body(c, s, json::serialize(created));
  REQUIRE(update.has_value());
  CHECK_FALSE(update->has_value());
}

TEST_CASE("a user's apex Service is taken over: selector and ports replaced, clusterIP and metadata kept") {
  auto c = make_canary(R"({"port":9898,"apex":{"labels":{"team":"a"}}})");
  auto s = build_service(c, metadata(c), service_role::apex);
  const char* user = R"({"apiVersion":"v1","kind":"Service",
    "metadata":{"name":"podinfo","namespace":"default","resourceVersion":"42","labels":{"owner":"me"}},
    "spec":{"type":"NodePort","clusterIP":"10.0.0.7","selector":{"name":"podinfo"},
      "ports":[{"name":"http","protocol":"TCP","port":9898,"targetPort":9898,"nodePort":30080}]}})";
  auto update = service_update_body(c, s, user);
  REQUIRE(update.has_value());
  REQUIRE(update->has_value());
  auto v = parse(**update);
  CHECK(v.at("spec").at("selector") == json::object{{"name", "podinfo-primary"}});
  CHECK(v.at("spec").at("clusterIP") == "10.0.0.7");
  CHECK(v.at("spec").at("type") == "NodePort");
  CHECK(v.at("spec").at("ports").at(0).at("nodePort") == 30080);  // nodePorts of same-named ports kept
  CHECK(v.at("metadata").at("resourceVersion") == "42");
  // Not owned by the Canary: labels stay the user's; Flagger's annotations are added.
  CHECK(v.at("metadata").at("labels") == json::object{{"owner", "me"}});
  CHECK(v.at("metadata").at("annotations").at("kustomize.toolkit.fluxcd.io/reconcile") == "disabled");
  CHECK_FALSE(v.at("metadata").as_object().contains("ownerReferences"));
  // Once taken over, the next reconcile writes nothing.
  auto again = service_update_body(c, s, **update);
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());
}

TEST_CASE("an owned Service gets its labels and annotations back; unmanagedMetadata keys keep their values") {
  auto c = make_canary(R"({"port":9898,"canary":{"labels":{"team":"a"}},
    "unmanagedMetadata":{"labels":["external"],"annotations":["external.io/x"]}})");
  auto s = build_service(c, metadata(c), service_role::canary);
  auto obj = parse(service_create_body(c, s));
  auto& meta = obj.at("metadata").as_object();
  meta["labels"].as_object()["team"] = "b";
  meta["labels"].as_object()["external"] = "kept";
  meta["annotations"].as_object()["external.io/x"] = "kept";
  meta["annotations"].as_object()["stray"] = "removed";
  auto update = service_update_body(c, s, json::serialize(obj));
  REQUIRE(update.has_value());
  REQUIRE(update->has_value());
  auto v = parse(**update);
  CHECK(v.at("metadata").at("labels") ==
        json::object{{"name", "podinfo-canary"}, {"team", "a"}, {"external", "kept"}});
  const auto& ann = v.at("metadata").at("annotations").as_object();
  CHECK(ann.at("external.io/x") == "kept");
  CHECK_FALSE(ann.contains("stray"));
  auto again = service_update_body(c, s, **update);
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());
}

TEST_CASE("a changed port or selector is written back; bad JSON is an error") {
  auto c = make_canary(R"({"port":9898})");
  auto s = build_service(c, metadata(c), service_role::primary);
  auto obj = parse(service_create_body(c, s));
  obj.at("spec").at("ports").at(0).as_object()["targetPort"] = 8080;
  auto update = service_update_body(c, s, json::serialize(obj));
  REQUIRE(update.has_value());
  REQUIRE(update->has_value());
  CHECK(parse(**update).at("spec").at("ports").at(0).at("targetPort") == 9898);
  // A Service without protocol and targetPort (the API server's defaults) equals the desired one.
  const char* defaults = R"({"metadata":{"name":"podinfo-primary"},"spec":{"selector":{"name":"podinfo-primary"},
    "ports":[{"name":"http","port":9898}]}})";
  auto none = service_update_body(c, s, defaults);
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  CHECK(service_update_body(c, s, "{oops").has_error());
  CHECK(service_update_body(c, s, "\"text\"").has_error());
}

TEST_CASE("finalize restores a user's apex selector, from kubectl's annotation when there is one") {
  auto c = make_canary(R"({"port":9898})");
  auto t = metadata(c);
  const char* taken_over = R"({"metadata":{"name":"podinfo","resourceVersion":"9"},
    "spec":{"clusterIP":"10.0.0.7","selector":{"name":"podinfo-primary"},"ports":[{"name":"http","port":9898,"targetPort":9898}]}})";
  auto body = apex_finalize_body(c, t, taken_over);
  REQUIRE(body.has_value());
  REQUIRE(body->has_value());
  auto v = parse(**body);
  CHECK(v.at("spec").at("selector") == json::object{{"name", "podinfo"}});
  CHECK(v.at("spec").at("clusterIP") == "10.0.0.7");
  CHECK_FALSE(apex_finalize_body(c, t, **body)->has_value());  // already restored: no write

  const char* applied = R"({"metadata":{"name":"podinfo","annotations":{"kubectl.kubernetes.io/last-applied-configuration":
      "{\"spec\":{\"selector\":{\"app\":\"frontend\"}}}"}},
    "spec":{"selector":{"name":"podinfo-primary"},"ports":[{"name":"http","port":9898}]}})";
  auto from_kubectl = apex_finalize_body(c, t, applied);
  REQUIRE(from_kubectl.has_value());
  REQUIRE(from_kubectl->has_value());
  CHECK(parse(**from_kubectl).at("spec").at("selector") == json::object{{"app", "frontend"}});

  const char* broken = R"({"metadata":{"name":"podinfo","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{"}},
    "spec":{"selector":{"name":"podinfo-primary"}}})";
  auto err = apex_finalize_body(c, t, broken);
  REQUIRE(err.has_error());
  CHECK(err.error() == "router podinfo.default failed to unMarshal annotation kubectl.kubernetes.io/last-applied-configuration");
}

TEST_CASE("finalize leaves an apex Service a Canary owns to the garbage collector") {
  auto c = make_canary(R"({"port":9898})");
  auto t = metadata(c);
  auto owned = service_create_body(c, build_service(c, t, service_role::apex));
  auto body = apex_finalize_body(c, t, owned);
  REQUIRE(body.has_value());
  CHECK_FALSE(body->has_value());
}
