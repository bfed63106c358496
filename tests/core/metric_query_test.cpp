// The text of metric queries: Flagger's template functions, white space collapsing, and the
// built-in observers' PromQL exactly as Flagger sends it (flagger-behaviour.md §2.2, §6).
#include <doctest/doctest.h>

#include <string>

#include "core/canary.hpp"
#include "core/metric_query.hpp"

using namespace canaryd::core;

namespace {

canary make_canary(std::string extra_spec = "") {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo-canary","namespace":"test"},
    "spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},)" +
                     extra_spec + R"(
      "service":{"port":9898},
      "analysis":{"interval":"1m","threshold":5,"iterations":3,"metrics":[
        {"name":"request-success-rate","thresholdRange":{"min":99},"interval":"30s"},
        {"name":"latency","templateRef":{"name":"latency"},"templateVariables":{"direction":"inbound"}}]}}})";
  auto d = decode_canary(text);
  REQUIRE_MESSAGE(d.ok(), join_errors(d.errors));
  return d.value;
}

}  // namespace

TEST_CASE("template functions take their values from the canary and the metric, with Flagger's fallbacks") {
  canary c = make_canary();
  query_vars v = make_query_vars(c, c.spec.analysis->metrics[1]);
  CHECK(v.name == "podinfo-canary");
  CHECK(v.namespace_ == "test");
  CHECK(v.target == "podinfo");
  CHECK(v.service == "podinfo");
  CHECK(v.ingress == "podinfo");
  CHECK(v.route == "podinfo");
  CHECK(v.interval == "1m");  // no interval on a templateRef metric: 1m (Flagger leaves it empty, a quirk we fix)
  CHECK(v.variables.at("direction") == "inbound");
  CHECK(make_query_vars(c, c.spec.analysis->metrics[0]).interval == "30s");

  canary named = make_canary(R"("ingressRef":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","name":"podinfo-ing"},
    "routeRef":{"apiVersion":"apisix.apache.org/v2","kind":"ApisixRoute","name":"podinfo-route"},)");
  named.spec.service.name = "podinfo-svc";
  query_vars n = make_query_vars(named, named.spec.analysis->metrics[0]);
  CHECK(n.service == "podinfo-svc");
  CHECK(n.ingress == "podinfo-ing");
  CHECK(n.route == "podinfo-route");
}

TEST_CASE("render_query fills every template function, honours trim markers and comments") {
  query_vars v;
  v.name = "c";
  v.namespace_ = "ns";
  v.target = "app";
  v.service = "svc";
  v.ingress = "ing";
  v.route = "rt";
  v.interval = "1m";
  v.variables = {{"direction", "inbound"}, {"code", "5.*"}};

  rendered_query r = render_query(
      R"(sum(rate(x{a="{{ name }}",b="{{namespace}}",c=~"{{ target }}",d="{{ service }}",e="{{ ingress }}",f="{{ route }}",g="{{ variables.direction }}",h!~"{{variables.code}}"}[{{ interval }}])))",
      v);
  REQUIRE(r.ok());
  CHECK(r.query == R"(sum(rate(x{a="c",b="ns",c=~"app",d="svc",e="ing",f="rt",g="inbound",h!~"5.*"}[1m])))");

  CHECK(render_query("a  {{- target -}}  b", v).query == "aappb");
  CHECK(render_query("a {{/* a comment */}}b", v).query == "a b");
  CHECK(render_query("no actions at all", v).query == "no actions at all");
}

TEST_CASE("render_query fails like Go's text/template with missingkey=error") {
  query_vars v;
  v.target = "app";
  rendered_query missing = render_query("x{d=\"{{ variables.direction }}\"}", v);
  CHECK_FALSE(missing.ok());
  CHECK(missing.query.empty());
  CHECK(missing.error.find("map has no entry for key \"direction\"") != std::string::npos);

  rendered_query unknown = render_query("{{ deployment }}", v);
  CHECK_FALSE(unknown.ok());
  // Flagger's RenderQuery wraps Go's parse error; the template is named "tmpl".
  CHECK(unknown.error == "template parsing failed: template: tmpl:1: function \"deployment\" not defined");

  CHECK_FALSE(render_query("{{ target ", v).ok());
  CHECK_FALSE(render_query("{{ }}", v).ok());
}

TEST_CASE("collapse_whitespace turns every run of white space into one space, as Flagger's trimQuery") {
  CHECK(collapse_whitespace("\n\tsum(\n\t\trate(x[1m])\n\t) \n\t/ 2") == " sum( rate(x[1m]) ) / 2");
  CHECK(collapse_whitespace("a") == "a");
  CHECK(collapse_whitespace("") == "");
}

TEST_CASE("the istio observer's queries are Flagger's, character for character") {
  canary c = make_canary();
  query_vars v = make_query_vars(c, c.spec.analysis->metrics[0]);
  builtin_query sr = builtin_observer_query("istio", metric_query_kind::request_success_rate, v);
  CHECK(sr.query ==
        R"( sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo", response_code!~"5.*" }[30s] ) ) / sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[30s] ) ) * 100)");
  builtin_query d = builtin_observer_query("istio", metric_query_kind::request_duration, v);
  CHECK(d.query ==
        R"( histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[30s] ) ) by (le) ))");
  CHECK(d.to_milliseconds == 1);
  // Anything the factory does not know gets istio's queries, as in Flagger; so does
  // "kubernetes:service" (a Service target), which is not "kubernetes".
  CHECK(builtin_observer_query("something", metric_query_kind::request_success_rate, v).query == sr.query);
  CHECK(builtin_observer_query("kubernetes:service", metric_query_kind::request_success_rate, v).query == sr.query);
}

TEST_CASE("the kubernetes observer reads the app's own histogram and converts seconds to milliseconds") {
  canary c = make_canary();
  query_vars v = make_query_vars(c, c.spec.analysis->metrics[0]);
  builtin_query sr = builtin_observer_query("kubernetes", metric_query_kind::request_success_rate, v);
  CHECK(sr.query ==
        R"q( sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)", status!~"5.*" }[30s] ) ) / sum( rate( http_request_duration_seconds_count{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[30s] ) ) * 100)q");
  builtin_query d = builtin_observer_query("kubernetes", metric_query_kind::request_duration, v);
  CHECK(d.query ==
        R"q( histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{ kubernetes_namespace="test", kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)" }[30s] ) ) by (le) ))q");
  CHECK(d.to_milliseconds == 1000);
  // Gateway API shares the HTTP observer.
  CHECK(builtin_observer_query("gatewayapi:v1", metric_query_kind::request_success_rate, v).query == sr.query);
}

TEST_CASE("the other observers select their mesh's metric families") {
  canary c = make_canary();
  query_vars v = make_query_vars(c, c.spec.analysis->metrics[0]);
  auto sr = [&](const char* observer) { return builtin_observer_query(observer, metric_query_kind::request_success_rate, v).query; };
  auto dur = [&](const char* observer) { return builtin_observer_query(observer, metric_query_kind::request_duration, v).query; };
  CHECK(sr("linkerd").find(R"(response_total{ namespace="test", deployment=~"podinfo", classification!="failure", direction="inbound" })") !=
        std::string::npos);
  CHECK(dur("linkerd").find("response_latency_ms_bucket") != std::string::npos);
  CHECK(sr("appmesh:v1beta2").find("envoy_cluster_upstream_rq{ kubernetes_namespace=\"test\"") != std::string::npos);
  CHECK(sr("contour").find(R"(envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+")") != std::string::npos);
  CHECK(sr("gloo").find(R"(envoy_cluster_name=~"test-podinfo-canaryupstream-)") != std::string::npos);
  CHECK(sr("nginx").find(R"(nginx_ingress_controller_requests{ namespace="test", ingress="podinfo", canary!="", status!~"5.*" })") !=
        std::string::npos);
  CHECK(dur("nginx").find("nginx_ingress_controller_response_duration_seconds_sum") != std::string::npos);
  CHECK(sr("osm").find(R"(destination_kind="Deployment", destination_name="podinfo")") != std::string::npos);
  CHECK(sr("kuma").find(R"(service=~"podinfo-canary_test_svc_[0-9a-zA-Z-]+")") != std::string::npos);
  CHECK(sr("traefik").find("@kubernetescrd") != std::string::npos);
  CHECK(sr("skipper").find(R"(route=~"kube(ew)?_test__podinfo_canary__.*__podinfo_canary(_[0-9]+)?")") != std::string::npos);
  CHECK(sr("apisix").find(R"(route=~"test_podinfo-podinfo-canary_.+")") != std::string::npos);
  for (const char* o : {"linkerd", "appmesh", "contour", "gloo", "nginx", "osm", "kuma", "traefik", "skipper", "apisix", "knative"}) {
    CAPTURE(o);
    CHECK(sr(o).find("{{") == std::string::npos);
    CHECK(sr(o).find("[30s]") != std::string::npos);
    CHECK(dur(o).find("[30s]") != std::string::npos);
  }
}

TEST_CASE("the skipper observer renders Flagger's $route prelude and encodes names as Skipper does") {
  canary c = make_canary(R"("ingressRef":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","name":"podinfo.ing"},)");
  c.metadata.namespace_ = "team-a";
  query_vars v = make_query_vars(c, c.spec.analysis->metrics[0]);
  // encodeModelForSkipper: every non-word character becomes '_'.
  CHECK(builtin_observer_query("skipper", metric_query_kind::request_success_rate, v).query ==
        R"( sum( rate( skipper_response_duration_seconds_bucket{ route=~"kube(ew)?_team_a__podinfo_ing_canary__.*__podinfo_canary(_[0-9]+)?", code!~"5..", le="+Inf" }[30s] ) ) / sum( rate( skipper_response_duration_seconds_bucket{ route=~"kube(ew)?_team_a__podinfo_ing_canary__.*__podinfo_canary(_[0-9]+)?", le="+Inf" }[30s] ) ) * 100)");
  CHECK(builtin_observer_query("skipper", metric_query_kind::request_duration, v).query ==
        R"( sum( rate( skipper_serve_route_duration_seconds_sum{ route=~"kube(ew)?_team_a__podinfo_ing_canary__.*__podinfo_canary(_[0-9]+)?" }[30s] ) ) / sum( rate( skipper_serve_route_duration_seconds_count{ route=~"kube(ew)?_team_a__podinfo_ing_canary__.*__podinfo_canary(_[0-9]+)?" }[30s] ) ) * 1000)");
}

TEST_CASE("MetricTemplate queries use the whole template language") {
  canary c = make_canary();
  query_vars v = make_query_vars(c, c.spec.analysis->metrics[1]);
  rendered_query r = render_query(R"({{- $dir := index variables "direction" -}}
sum(rate(http_requests_total{namespace="{{ namespace }}",app=~"{{ printf "%s-%s" target "primary" }}",direction="{{ $dir }}"
{{- if eq $dir "inbound" }},inbound="true"{{ else }},inbound="false"{{ end -}}
}[{{ interval }}])))",
                                  v);
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(r.query ==
        R"(sum(rate(http_requests_total{namespace="test",app=~"podinfo-primary",direction="inbound",inbound="true"}[1m])))");
}
