#include "core/metric_query.hpp"

#include <cctype>
#include <initializer_list>

#include <fmt/format.h>

namespace canaryd::core {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

const std::string* function_value(std::string_view fn, const query_vars& v) {
  if (fn == "name") return &v.name;
  if (fn == "namespace") return &v.namespace_;
  if (fn == "target") return &v.target;
  if (fn == "service") return &v.service;
  if (fn == "ingress") return &v.ingress;
  if (fn == "route") return &v.route;
  if (fn == "interval") return &v.interval;
  return nullptr;
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
  v.interval = m.effective_interval();
  v.variables = m.template_variables;
  return v;
}

rendered_query render_query(std::string_view text, const query_vars& vars) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    out.append(text.substr(pos, open - pos));
    std::size_t body = open + 2;
    // "{{- " trims the white space before the action (the dash must be followed by a space).
    if (body + 1 < text.size() && text[body] == '-' && is_space(text[body + 1])) {
      while (!out.empty() && is_space(out.back())) out.pop_back();
      ++body;
    }
    std::size_t close = text.find("}}", body);
    if (close == std::string_view::npos) return {"", "template: query: unclosed action"};
    std::size_t after = close + 2;
    std::string_view action = text.substr(body, close - body);
    bool trim_right = false;
    if (action.size() >= 2 && action.back() == '-' && is_space(action[action.size() - 2])) {
      action.remove_suffix(1);
      trim_right = true;
    }
    action = trim(action);
    if (starts_with(action, "/*")) {
      if (action.size() < 4 || action.substr(action.size() - 2) != "*/") return {"", "template: query: unclosed comment"};
    } else if (action.empty()) {
      return {"", "template: query: missing value for command"};
    } else if (const std::string* v = function_value(action, vars)) {
      out += *v;
    } else if (starts_with(action, "variables.")) {
      std::string key(action.substr(10));
      auto it = vars.variables.find(key);
      if (it == vars.variables.end()) {
        return {"", fmt::format("template: query: executing \"query\" at <variables.{0}>: map has no entry for key \"{0}\"", key)};
      }
      out += it->second;
    } else {
      std::string_view fn = action.substr(0, action.find_first_of(" \t\n.|("));
      return {"", fmt::format("template: query: function \"{}\" not defined", fn)};
    }
    pos = after;
    if (trim_right) {
      while (pos < text.size() && is_space(text[pos])) ++pos;
    }
  }
  return {std::move(out), ""};
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
    // Flagger's prelude: {{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}
    const std::string route = fmt::format(R"q(route=~"kube(ew)?_{}__{}_canary__.*__{}_canary(_[0-9]+)?")q", vars.namespace_,
                                          vars.ingress, vars.service);
    if (success) {
      text = success_rate("skipper_response_duration_seconds_bucket", selector({route, R"(code!~"5..")", R"(le="+Inf")"}),
                          selector({route, R"(le="+Inf")"}));
    } else {
      const std::string sel = selector({route});
      text = fmt::format(
          " sum( rate( skipper_serve_route_duration_seconds_sum{0}[{{{{ interval }}}}] ) ) / sum( rate( "
          "skipper_serve_route_duration_seconds_count{0}[{{{{ interval }}}}] ) ) * 1000",
          sel);
    }
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
