#include "core/metric_query.hpp"

#include <cctype>
#include <initializer_list>

#include <fmt/format.h>

#include "core/go_template.hpp"

namespace canaryd::core {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Flagger's encodeModelForSkipper: every non-word character (regexp \W, per rune) of the name,
// namespace, target, service and ingress becomes '_', as Skipper names its routes.
std::string skipper_word(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (std::isalnum(c) || c == '_') {
      out += static_cast<char>(c);
      continue;
    }
    out += '_';
    if (c >= 0xC0) {  // skip the continuation bytes of a multi-byte rune
      while (i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) ++i;
    }
  }
  return out;
}

// Comma-joined label matchers, in Flagger's layout once collapsed ("{ a, b }").
std::string selector(std::initializer_list<std::string_view> labels) {
  std::string out = "{ ";
  bool first = true;
  for (auto l : labels) {
    if (!first) out += ", ";
    out += l;
    first = false;
  }
  return out + " }";
}

// sum(rate(M{sel, ok})) / sum(rate(M{sel})) * 100, laid out as Flagger's observers write it.
std::string success_rate(std::string_view metric, std::string_view sel_ok, std::string_view sel_all) {
  return fmt::format(" sum( rate( {0}{1}[{{{{ interval }}}}] ) ) / sum( rate( {0}{2}[{{{{ interval }}}}] ) ) * 100",
                     metric, sel_ok, sel_all);
}

std::string p99(std::string_view bucket, std::string_view sel) {
  return fmt::format(" histogram_quantile( 0.99, sum( rate( {}{}[{{{{ interval }}}}] ) ) by (le) )", bucket, sel);
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

query_vars make_query_vars(const canary& c, const canary_metric& m) {
  query_vars v;
  v.name = c.metadata.name;
  v.namespace_ = c.metadata.namespace_;
  v.target = c.spec.target_ref.name;
  v.service = c.spec.service.name.empty() ? c.spec.target_ref.name : c.spec.service.name;
  v.ingress = c.spec.ingress_ref ? c.spec.ingress_ref->name : c.spec.target_ref.name;
  v.route = c.spec.route_ref ? c.spec.route_ref->name : c.spec.target_ref.name;
  // Knative: the latest created revision (Flagger's model.Route), which status.lastAppliedSpec
  // holds for a Knative target (docs/targets.md).
  if (!c.spec.route_ref && c.is_knative_target() && !c.status.last_applied_spec.empty()) v.route = c.status.last_applied_spec;
  v.interval = m.effective_interval();
  v.variables = m.template_variables;
  return v;
}

rendered_query render_query(std::string_view text, const query_vars& vars) {
  go_template_funcs funcs;
  funcs.strings = {{"name", vars.name},       {"namespace", vars.namespace_}, {"target", vars.target},
                   {"service", vars.service}, {"ingress", vars.ingress},       {"route", vars.route},
                   {"interval", vars.interval}};
  funcs.maps.emplace("variables", vars.variables);
  go_template_result r = execute_go_template("tmpl", text, funcs);
  if (r.ok()) return {std::move(r.output), ""};
  // Flagger's RenderQuery wraps Go's error (its spelling kept, so events read the same).
  return {"", (r.parse_failed ? "template parsing failed: " : "template excution failed: ") + r.error};
}

std::string collapse_whitespace(std::string_view query) {
  std::string out;
  out.reserve(query.size());
  bool in_space = false;
  for (char c : query) {
    if (is_space(c) || c == '\f' || c == '\v') {
      if (!in_space) out += ' ';
      in_space = true;
    } else {
      out += c;
      in_space = false;
    }
  }
  return out;
}

builtin_query builtin_observer_query(std::string_view observer, metric_query_kind kind, const query_vars& vars) {
  const bool success = kind == metric_query_kind::request_success_rate;
  std::string text;
  double to_ms = 1;
  // The Envoy-based observers share one shape: envoy_cluster_upstream_rq with a response-code
  // filter, and envoy_cluster_upstream_rq_time_bucket's P99 in milliseconds.
  auto envoy = [&](std::string_view sel) {
    const std::string ok = selector({sel, R"(envoy_response_code!~"5.*")"});
    const std::string all = selector({sel});
    text = success ? success_rate("envoy_cluster_upstream_rq", ok, all) : p99("envoy_cluster_upstream_rq_time_bucket", all);
  };
  if (starts_with(observer, "appmesh")) {
    const std::string sel = selector({R"(kubernetes_namespace="{{ namespace }}")",
                                      R"q(kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)")q"});
    const std::string ok = selector({R"(kubernetes_namespace="{{ namespace }}")",
                                     R"q(kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)")q",
                                     R"(envoy_response_code!~"5.*")"});
    text = success ? success_rate("envoy_cluster_upstream_rq", ok, sel) : p99("envoy_cluster_upstream_rq_time_bucket", sel);
  } else if (observer == "linkerd") {
    const char* ns = R"(namespace="{{ namespace }}")";
    const char* dep = R"(deployment=~"{{ target }}")";
    const char* dir = R"(direction="inbound")";
    text = success ? success_rate("response_total", selector({ns, dep, R"(classification!="failure")", dir}), selector({ns, dep, dir}))
                   : p99("response_latency_ms_bucket", selector({ns, dep, dir}));
  } else if (observer == "contour") {
    envoy(R"(envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+")");
  } else if (starts_with(observer, "gloo")) {
    envoy(R"(envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+")");
  } else if (observer == "kuma") {
    envoy(R"(service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+")");
  } else if (observer == "knative") {
    envoy(R"(envoy_cluster_name=~"{{ namespace }}/{{ route }}")");
  } else if (observer == "nginx") {
    const char* ns = R"(namespace="{{ namespace }}")";
    const char* ing = R"(ingress="{{ ingress }}")";
    const char* canary = R"(canary!="")";
    if (success) {
      text = success_rate("nginx_ingress_controller_requests", selector({ns, ing, canary, R"(status!~"5.*")"}),
                          selector({ns, ing, canary}));
    } else {
      const std::string sel = selector({ns, ing, canary});
      text = fmt::format(
          " sum( rate( nginx_ingress_controller_response_duration_seconds_sum{0}[{{{{ interval }}}}] ) ) / sum( rate( "
          "nginx_ingress_controller_response_duration_seconds_count{0}[{{{{ interval }}}}] ) ) * 1000",
          sel);
    }
  } else if (observer == "kubernetes" || starts_with(observer, "gatewayapi")) {
    const char* ns = R"(kubernetes_namespace="{{ namespace }}")";
    const char* pod = R"q(kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)")q";
    text = success ? success_rate("http_request_duration_seconds_count", selector({ns, pod, R"(status!~"5.*")"}), selector({ns, pod}))
                   : p99("http_request_duration_seconds_bucket", selector({ns, pod}));
    if (!success) to_ms = 1000;
  } else if (observer == "osm") {
    const char* ns = R"(destination_namespace="{{ namespace }}")";
    const char* k = R"(destination_kind="Deployment")";
    const char* n = R"(destination_name="{{ target }}")";
    text = success ? success_rate("osm_request_total", selector({ns, k, n, R"(response_code!~"5.*")"}), selector({ns, k, n}))
                   : p99("osm_request_duration_ms_bucket", selector({ns, k, n}));
  } else if (observer == "apisix") {
    const char* route = R"(route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+")";
    text = success ? success_rate("apisix_http_status", selector({route, R"(code!~"5..")"}), selector({route}))
                   : p99("apisix_http_latency_bucket", selector({R"(type=~"request")", route}));
  } else if (observer == "traefik") {
    const char* svc = R"(service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd")";
    if (success) {
      text = success_rate("traefik_service_request_duration_seconds_bucket", selector({svc, R"(code!~"5..")", R"(le="+Inf")"}),
                          selector({svc, R"(le="+Inf")"}));
    } else {
      text = fmt::format(
          " histogram_quantile( 0.99, sum( rate( traefik_service_request_duration_seconds_bucket{}[{{{{ interval }}}}] ) ) by (le) ) "
          "* 1000",
          selector({svc}));
    }
  } else if (observer == "skipper") {
    // Flagger's prelude declares $route with printf; the model is encoded as Skipper names routes.
    const char* prelude =
        R"({{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }})";
    const char* route = R"(route=~"{{ $route }}")";
    if (success) {
      text = prelude + success_rate("skipper_response_duration_seconds_bucket", selector({route, R"(code!~"5..")", R"(le="+Inf")"}),
                                    selector({route, R"(le="+Inf")"}));
    } else {
      const std::string sel = selector({route});
      text = prelude + fmt::format(
                           " sum( rate( skipper_serve_route_duration_seconds_sum{0}[{{{{ interval }}}}] ) ) / sum( rate( "
                           "skipper_serve_route_duration_seconds_count{0}[{{{{ interval }}}}] ) ) * 1000",
                           sel);
    }
    query_vars encoded = vars;
    for (std::string* field : {&encoded.name, &encoded.namespace_, &encoded.target, &encoded.service, &encoded.ingress}) {
      *field = skipper_word(*field);
    }
    rendered_query r = render_query(text, encoded);
    return {collapse_whitespace(r.query), to_ms};
  } else {
    const char* rep = R"(reporter="destination")";
    const char* ns = R"(destination_workload_namespace="{{ namespace }}")";
    const char* wl = R"(destination_workload=~"{{ target }}")";
    text = success ? success_rate("istio_requests_total", selector({rep, ns, wl, R"(response_code!~"5.*")"}), selector({rep, ns, wl}))
                   : p99("istio_request_duration_milliseconds_bucket", selector({rep, ns, wl}));
  }
  rendered_query r = render_query(text, vars);
  return {collapse_whitespace(r.query), to_ms};
}

}  // namespace canaryd::core
