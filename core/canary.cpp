#include "core/canary.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "core/duration.hpp"
#include "core/json_dom.hpp"
#include "core/json_writer.hpp"
#include "core/message.hpp"

namespace canaryd::core {

using detail::dom::array;
using detail::dom::element;
using detail::dom::object;
using detail::json_reader;

namespace {

// spec.analysis.webhooks[].retries at most.
constexpr int max_webhook_retries = 10;

// kind Service, apiVersion serving.knative.dev/* (canary::is_knative_target, during decoding).
bool knative_target(const local_object_reference& t) {
  return t.kind == "Service" && t.api_version.starts_with("serving.knative.dev/");
}

bool is_lower_alnum(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); }

// A DNS-1123 label: 1-63 of [a-z0-9-], starting and ending with a letter or digit.
bool is_dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63 || !is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char ch) { return is_lower_alnum(ch) || ch == '-'; });
}

// An IANA service name (Kubernetes' IsValidPortName): 1-15 of [a-z0-9-], at least one letter,
// no leading, trailing or double '-'.
bool is_iana_service_name(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-' || s.find("--") != std::string_view::npos)
    return false;
  if (!std::all_of(s.begin(), s.end(), [](char ch) { return is_lower_alnum(ch) || ch == '-'; })) return false;
  return std::any_of(s.begin(), s.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; });
}

constexpr std::array<std::pair<canary_phase, std::string_view>, 12> phase_names{{
    {canary_phase::none, ""},
    {canary_phase::initializing, "Initializing"},
    {canary_phase::initialized, "Initialized"},
    {canary_phase::waiting, "Waiting"},
    {canary_phase::progressing, "Progressing"},
    {canary_phase::waiting_promotion, "WaitingPromotion"},
    {canary_phase::promoting, "Promoting"},
    {canary_phase::finalising, "Finalising"},
    {canary_phase::succeeded, "Succeeded"},
    {canary_phase::failed, "Failed"},
    {canary_phase::terminating, "Terminating"},
    {canary_phase::terminated, "Terminated"},
}};

constexpr std::array<std::pair<webhook_type, std::string_view>, 8> webhook_type_names{{
    {webhook_type::rollout, "rollout"},
    {webhook_type::confirm_rollout, "confirm-rollout"},
    {webhook_type::pre_rollout, "pre-rollout"},
    {webhook_type::confirm_promotion, "confirm-promotion"},
    {webhook_type::post_rollout, "post-rollout"},
    {webhook_type::event, "event"},
    {webhook_type::rollback, "rollback"},
    {webhook_type::confirm_traffic_increase, "confirm-traffic-increase"},
}};

constexpr std::array<std::string_view, 19> providers{
    "apisix", "appmesh", "appmesh:v1beta2", "contour", "gatewayapi:v1", "gatewayapi:v1beta1", "gloo",
    "istio",  "knative", "kubernetes",      "kuma",    "linkerd",       "nginx",              "osm",
    "skipper", "smi:v1alpha1", "smi:v1alpha2", "smi:v1alpha3", "traefik"};

std::string q(std::string_view s) { return json_string(s); }

template <std::size_t N>
std::string one_of(const std::array<std::string_view, N>& values) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) out += ", ";
    out += values[i].empty() ? "\"\"" : std::string(values[i]);
  }
  return out;
}

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& values, std::string_view v) {
  return std::find(values.begin(), values.end(), v) != values.end();
}

// ---- decoding -------------------------------------------------------------------------------

class canary_decoder {
 public:
  explicit canary_decoder(std::vector<field_error>& errors) : r_(errors) {}

  void decode(object root, canary& c) {
    r_.read(root, "apiVersion", "", c.api_version);
    r_.read(root, "kind", "", c.kind);
    if (auto meta = r_.object_at(root, "metadata", "")) {
      metadata(*meta, "metadata", c.metadata);
    } else {
      r_.error("metadata", "required");
    }
    if (auto spec_obj = r_.object_at(root, "spec", "")) {
      spec(*spec_obj, "spec", c.spec);
    } else if (!json_reader::member(root, "spec")) {
      r_.error("spec", "required");
    }
    if (auto st = r_.object_at(root, "status", "")) status(*st, "status", c.status);
  }

 private:
  json_reader r_;

  void time_at(object o, std::string_view key, const std::string& p, std::optional<wall_time>& out) {
    std::string text;
    if (!r_.read(o, key, p, text) || text.empty()) return;
    if (auto t = parse_rfc3339(text)) {
      out = *t;
    } else {
      r_.error(json_reader::path(p, key), fmt::format("must be an RFC 3339 time, got {}", q(text)));
    }
  }

  void metadata(object o, const std::string& p, object_metadata& m) {
    r_.read(o, "name", p, m.name);
    r_.read(o, "namespace", p, m.namespace_);
    r_.read(o, "uid", p, m.uid);
    r_.read(o, "resourceVersion", p, m.resource_version);
    if (auto g = json_reader::member(o, "generation")) {
      int v = 0;
      if (r_.as_int(*g, json_reader::path(p, "generation"), v)) m.generation = v;
    }
    time_at(o, "deletionTimestamp", p, m.deletion_timestamp);
    r_.read(o, "finalizers", p, m.finalizers);
    r_.read(o, "labels", p, m.labels);
    r_.read(o, "annotations", p, m.annotations);
  }

  void local_ref(object o, const std::string& p, local_object_reference& ref) {
    r_.read(o, "apiVersion", p, ref.api_version);
    r_.read(o, "kind", p, ref.kind);
    r_.read(o, "name", p, ref.name);
  }

  void string_match_value(object o, const std::string& p, string_match& m) {
    r_.read(o, "exact", p, m.exact);
    r_.read(o, "prefix", p, m.prefix);
    r_.read(o, "suffix", p, m.suffix);
    r_.read(o, "regex", p, m.regex);
  }

  void string_match_at(object parent, std::string_view key, const std::string& p, std::optional<string_match>& out) {
    if (auto o = r_.object_at(parent, key, p)) {
      out.emplace();
      string_match_value(*o, json_reader::path(p, key), *out);
    }
  }

  void string_match_map(object parent, std::string_view key, const std::string& p,
                        std::map<std::string, string_match>& out) {
    auto o = r_.object_at(parent, key, p);
    if (!o) return;
    const std::string mp = json_reader::path(p, key);
    for (detail::dom::key_value_pair kv : *o) {
      if (kv.value.is_null()) continue;
      const std::string ep = json_reader::path(mp, kv.key);
      if (auto m = r_.as_object(kv.value, ep)) string_match_value(*m, ep, out[std::string(kv.key)]);
    }
  }

  void match_list(object parent, std::string_view key, const std::string& p, std::vector<http_match_request>& out,
                  std::string& raw) {
    r_.read_raw(parent, key, p, raw);
    auto arr = r_.array_at(parent, key, p);
    if (!arr) return;
    const std::string lp = json_reader::path(p, key);
    std::size_t i = 0;
    for (element item : *arr) {
      const std::string ip = json_reader::index(lp, i++);
      auto o = r_.as_object(item, ip);
      if (!o) continue;
      http_match_request& m = out.emplace_back();
      r_.read(*o, "name", ip, m.name);
      string_match_at(*o, "uri", ip, m.uri);
      string_match_at(*o, "scheme", ip, m.scheme);
      string_match_at(*o, "method", ip, m.method);
      string_match_at(*o, "authority", ip, m.authority);
      string_match_map(*o, "headers", ip, m.headers);
      string_match_map(*o, "queryParams", ip, m.query_params);
      string_match_map(*o, "withoutHeaders", ip, m.without_headers);
      r_.read(*o, "port", ip, m.port);
      r_.read(*o, "sourceLabels", ip, m.source_labels);
      r_.read(*o, "gateways", ip, m.gateways);
      r_.read(*o, "ignoreUriCase", ip, m.ignore_uri_case);
      r_.read(*o, "sourceNamespace", ip, m.source_namespace);
    }
  }

  void custom_metadata_at(object parent, std::string_view key, const std::string& p,
                          std::optional<custom_metadata>& out) {
    if (auto o = r_.object_at(parent, key, p)) {
      out.emplace();
      const std::string mp = json_reader::path(p, key);
      r_.read(*o, "labels", mp, out->labels);
      r_.read(*o, "annotations", mp, out->annotations);
    }
  }

  void header_ops(object parent, std::string_view key, const std::string& p, header_operations& out) {
    if (auto o = r_.object_at(parent, key, p)) {
      const std::string hp = json_reader::path(p, key);
      r_.read(*o, "set", hp, out.set);
      r_.read(*o, "add", hp, out.add);
      r_.read(*o, "remove", hp, out.remove);
    }
  }

  void service(object o, const std::string& p, canary_service& s) {
    r_.read(o, "name", p, s.name);
    if (r_.read(o, "port", p, s.port)) {
      if (s.port == 0) r_.error(json_reader::path(p, "port"), "must be between 1 and 65535, got 0");
    } else if (!json_reader::member(o, "port")) {
      r_.error(json_reader::path(p, "port"), "required");
    }
    r_.read(o, "portName", p, s.port_name);
    if (auto tp = json_reader::member(o, "targetPort")) {
      int_or_string v;
      if (tp->is_string()) {
        v.is_string = true;
        r_.as_string(*tp, json_reader::path(p, "targetPort"), v.string_value);
        s.target_port = v;
      } else if (r_.as_int(*tp, json_reader::path(p, "targetPort"), v.int_value)) {
        s.target_port = v;
      }
    }
    r_.read(o, "appProtocol", p, s.app_protocol);
    r_.read(o, "trafficDistribution", p, s.traffic_distribution);
    r_.read(o, "portDiscovery", p, s.port_discovery);
    r_.read(o, "headless", p, s.headless);
    r_.read(o, "timeout", p, s.timeout);
    r_.read(o, "backendTimeout", p, s.backend_timeout);
    r_.read(o, "meshName", p, s.mesh_name);
    r_.read(o, "backends", p, s.backends);
    r_.read(o, "hosts", p, s.hosts);
    r_.read(o, "delegation", p, s.delegation);
    r_.read(o, "gateways", p, s.gateways);
    if (auto refs = r_.array_at(o, "gatewayRefs", p)) {
      const std::string lp = json_reader::path(p, "gatewayRefs");
      std::size_t i = 0;
      for (element item : *refs) {
        const std::string ip = json_reader::index(lp, i++);
        auto ro = r_.as_object(item, ip);
        if (!ro) continue;
        parent_reference& ref = s.gateway_refs.emplace_back();
        r_.read(*ro, "group", ip, ref.group);
        r_.read(*ro, "kind", ip, ref.kind);
        r_.read(*ro, "namespace", ip, ref.namespace_);
        r_.read(*ro, "name", ip, ref.name);
        r_.read(*ro, "sectionName", ip, ref.section_name);
        r_.read(*ro, "port", ip, ref.port);
      }
    }
    match_list(o, "match", p, s.match, s.match_json);
    r_.read_raw(o, "retries", p, s.retries_json);
    if (auto ro = r_.object_at(o, "retries", p)) {
      const std::string rp = json_reader::path(p, "retries");
      s.retries.emplace();
      r_.read(*ro, "attempts", rp, s.retries->attempts);
      r_.read(*ro, "perTryTimeout", rp, s.retries->per_try_timeout);
      r_.read(*ro, "retryOn", rp, s.retries->retry_on);
    }
    r_.read_raw(o, "rewrite", p, s.rewrite_json);
    if (auto ro = r_.object_at(o, "rewrite", p)) {
      const std::string rp = json_reader::path(p, "rewrite");
      s.rewrite.emplace();
      r_.read(*ro, "uri", rp, s.rewrite->uri);
      r_.read(*ro, "authority", rp, s.rewrite->authority);
      r_.read(*ro, "type", rp, s.rewrite->type);
    }
    r_.read_raw(o, "mirror", p, s.mirror_json);
    if (auto mirrors = r_.array_at(o, "mirror", p)) {
      const std::string lp = json_reader::path(p, "mirror");
      std::size_t i = 0;
      for (element item : *mirrors) {
        const std::string ip = json_reader::index(lp, i++);
        auto mo = r_.as_object(item, ip);
        if (!mo) continue;
        request_mirror& m = s.mirror.emplace_back();
        if (auto bo = r_.object_at(*mo, "backendRef", ip)) {
          const std::string bp = json_reader::path(ip, "backendRef");
          r_.read(*bo, "group", bp, m.backend_ref.group);
          r_.read(*bo, "kind", bp, m.backend_ref.kind);
          r_.read(*bo, "name", bp, m.backend_ref.name);
          r_.read(*bo, "namespace", bp, m.backend_ref.namespace_);
          r_.read(*bo, "port", bp, m.backend_ref.port);
        } else if (!json_reader::member(*mo, "backendRef")) {
          r_.error(json_reader::path(ip, "backendRef"), "required");
        }
        r_.read(*mo, "percent", ip, m.percent);
        if (auto fo = r_.object_at(*mo, "fraction", ip)) {
          const std::string fp = json_reader::path(ip, "fraction");
          m.fraction.emplace();
          r_.read(*fo, "numerator", fp, m.fraction->numerator);
          r_.read(*fo, "denominator", fp, m.fraction->denominator);
        }
      }
    }
    r_.read_raw(o, "headers", p, s.headers_json);
    if (auto ho = r_.object_at(o, "headers", p)) {
      const std::string hp = json_reader::path(p, "headers");
      s.headers.emplace();
      header_ops(*ho, "request", hp, s.headers->request);
      header_ops(*ho, "response", hp, s.headers->response);
    }
    r_.read_raw(o, "corsPolicy", p, s.cors_policy_json);
    if (auto co = r_.object_at(o, "corsPolicy", p)) {
      const std::string cp = json_reader::path(p, "corsPolicy");
      cors_policy& c = s.cors.emplace();
      r_.read(*co, "allowOrigin", cp, c.allow_origin);
      if (auto origins = r_.array_at(*co, "allowOrigins", cp)) {
        const std::string lp = json_reader::path(cp, "allowOrigins");
        std::size_t i = 0;
        for (element item : *origins) {
          const std::string ip = json_reader::index(lp, i++);
          if (auto mo = r_.as_object(item, ip)) string_match_value(*mo, ip, c.allow_origins.emplace_back());
        }
      }
      r_.read(*co, "allowMethods", cp, c.allow_methods);
      r_.read(*co, "allowHeaders", cp, c.allow_headers);
      r_.read(*co, "exposeHeaders", cp, c.expose_headers);
      r_.read(*co, "maxAge", cp, c.max_age);
      bool credentials = false;
      if (r_.read(*co, "allowCredentials", cp, credentials)) c.allow_credentials = credentials;
    }
    if (auto tp = json_reader::member(o, "trafficPolicy")) {
      if (r_.as_object(*tp, json_reader::path(p, "trafficPolicy"))) s.traffic_policy_json = detail::canonical(*tp);
    }
    custom_metadata_at(o, "apex", p, s.apex);
    custom_metadata_at(o, "primary", p, s.primary);
    custom_metadata_at(o, "canary", p, s.canary);
    if (auto uo = r_.object_at(o, "unmanagedMetadata", p)) {
      const std::string up = json_reader::path(p, "unmanagedMetadata");
      s.unmanaged.emplace();
      r_.read(*uo, "labels", up, s.unmanaged->labels);
      r_.read(*uo, "annotations", up, s.unmanaged->annotations);
    }
  }

  void cross_ref(object o, const std::string& p, cross_namespace_reference& ref) {
    r_.read(o, "name", p, ref.name);
    r_.read(o, "namespace", p, ref.namespace_);
  }

  void analysis(object o, const std::string& p, canary_analysis& a) {
    r_.read(o, "interval", p, a.interval);
    r_.read(o, "iterations", p, a.iterations);
    r_.read(o, "threshold", p, a.threshold);
    r_.read(o, "maxWeight", p, a.max_weight);
    r_.read(o, "stepWeight", p, a.step_weight);
    r_.read(o, "stepWeights", p, a.step_weights);
    r_.read(o, "stepWeightPromotion", p, a.step_weight_promotion);
    r_.read(o, "mirror", p, a.mirror);
    r_.read(o, "mirrorWeight", p, a.mirror_weight);
    r_.read(o, "primaryReadyThreshold", p, a.primary_ready_threshold);
    r_.read(o, "canaryReadyThreshold", p, a.canary_ready_threshold);
    match_list(o, "match", p, a.match, a.match_json);

    if (auto metrics = r_.array_at(o, "metrics", p)) {
      const std::string lp = json_reader::path(p, "metrics");
      std::size_t i = 0;
      for (element item : *metrics) {
        const std::string ip = json_reader::index(lp, i++);
        auto mo = r_.as_object(item, ip);
        if (!mo) continue;
        canary_metric& m = a.metrics.emplace_back();
        r_.read(*mo, "name", ip, m.name);
        r_.read(*mo, "interval", ip, m.interval);
        r_.read(*mo, "threshold", ip, m.threshold);
        if (auto ro = r_.object_at(*mo, "thresholdRange", ip)) {
          const std::string rp = json_reader::path(ip, "thresholdRange");
          m.range.emplace();
          r_.read(*ro, "min", rp, m.range->min);
          r_.read(*ro, "max", rp, m.range->max);
        }
        r_.read(*mo, "query", ip, m.query);
        if (auto to = r_.object_at(*mo, "templateRef", ip)) {
          m.template_ref.emplace();
          cross_ref(*to, json_reader::path(ip, "templateRef"), *m.template_ref);
        }
        r_.read(*mo, "templateVariables", ip, m.template_variables);
      }
    }
    if (auto alerts = r_.array_at(o, "alerts", p)) {
      const std::string lp = json_reader::path(p, "alerts");
      std::size_t i = 0;
      for (element item : *alerts) {
        const std::string ip = json_reader::index(lp, i++);
        auto ao = r_.as_object(item, ip);
        if (!ao) continue;
        canary_alert& al = a.alerts.emplace_back();
        r_.read(*ao, "name", ip, al.name);
        r_.read(*ao, "severity", ip, al.severity);
        if (auto po = r_.object_at(*ao, "providerRef", ip)) {
          cross_ref(*po, json_reader::path(ip, "providerRef"), al.provider_ref);
        } else if (!json_reader::member(*ao, "providerRef")) {
          r_.error(json_reader::path(ip, "providerRef"), "required");
        }
      }
    }
    if (auto hooks = r_.array_at(o, "webhooks", p)) {
      const std::string lp = json_reader::path(p, "webhooks");
      std::size_t i = 0;
      for (element item : *hooks) {
        const std::string ip = json_reader::index(lp, i++);
        auto wo = r_.as_object(item, ip);
        if (!wo) continue;
        canary_webhook& w = a.webhooks.emplace_back();
        r_.read(*wo, "name", ip, w.name);
        std::string type;
        if (r_.read(*wo, "type", ip, type)) {
          if (auto t = parse_webhook_type(type)) {
            w.type = *t;
          } else {
            r_.error(json_reader::path(ip, "type"),
                     fmt::format("must be one of \"\", rollout, confirm-rollout, pre-rollout, confirm-promotion, "
                                 "post-rollout, event, rollback, confirm-traffic-increase; got {}",
                                 q(type)));
          }
        }
        r_.read(*wo, "url", ip, w.url);
        r_.read(*wo, "timeout", ip, w.timeout);
        r_.read(*wo, "retries", ip, w.retries);
        r_.read(*wo, "muteAlert", ip, w.mute_alert);
        r_.read(*wo, "disableTLS", ip, w.disable_tls);
        r_.read(*wo, "metadata", ip, w.metadata);
      }
    }
    if (auto so = r_.object_at(o, "sessionAffinity", p)) {
      const std::string sp = json_reader::path(p, "sessionAffinity");
      session_affinity& s = a.affinity.emplace();
      r_.read(*so, "cookieName", sp, s.cookie_name);
      r_.read(*so, "primaryCookieName", sp, s.primary_cookie_name);
      r_.read(*so, "domain", sp, s.domain);
      r_.read(*so, "httpOnly", sp, s.http_only);
      r_.read(*so, "maxAge", sp, s.max_age);
      r_.read(*so, "partitioned", sp, s.partitioned);
      r_.read(*so, "path", sp, s.path);
      r_.read(*so, "sameSite", sp, s.same_site);
      r_.read(*so, "secure", sp, s.secure);
    }
  }

  void spec(object o, const std::string& p, canary_spec& s) {
    r_.read(o, "provider", p, s.provider);
    r_.read(o, "metricsServer", p, s.metrics_server);
    r_.read(o, "progressDeadlineSeconds", p, s.progress_deadline_seconds);
    if (auto t = r_.object_at(o, "targetRef", p)) {
      local_ref(*t, json_reader::path(p, "targetRef"), s.target_ref);
    } else if (!json_reader::member(o, "targetRef")) {
      r_.error(json_reader::path(p, "targetRef"), "required");
    }
    if (auto a = r_.object_at(o, "autoscalerRef", p)) {
      const std::string ap = json_reader::path(p, "autoscalerRef");
      autoscaler_reference& ref = s.autoscaler_ref.emplace();
      r_.read(*a, "apiVersion", ap, ref.api_version);
      r_.read(*a, "kind", ap, ref.kind);
      r_.read(*a, "name", ap, ref.name);
      r_.read(*a, "primaryScalerQueries", ap, ref.primary_scaler_queries);
      if (auto ro = r_.object_at(*a, "primaryScalerReplicas", ap)) {
        const std::string rp = json_reader::path(ap, "primaryScalerReplicas");
        ref.primary_scaler_replicas.emplace();
        r_.read(*ro, "minReplicas", rp, ref.primary_scaler_replicas->min_replicas);
        r_.read(*ro, "maxReplicas", rp, ref.primary_scaler_replicas->max_replicas);
      }
    }
    if (auto i = r_.object_at(o, "ingressRef", p)) local_ref(*i, json_reader::path(p, "ingressRef"), s.ingress_ref.emplace());
    if (auto i = r_.object_at(o, "routeRef", p)) local_ref(*i, json_reader::path(p, "routeRef"), s.route_ref.emplace());
    if (auto u = r_.object_at(o, "upstreamRef", p)) {
      const std::string up = json_reader::path(p, "upstreamRef");
      upstream_reference& ref = s.upstream_ref.emplace();
      r_.read(*u, "apiVersion", up, ref.api_version);
      r_.read(*u, "kind", up, ref.kind);
      r_.read(*u, "name", up, ref.name);
      r_.read(*u, "namespace", up, ref.namespace_);
    }
    if (auto sv = r_.object_at(o, "service", p)) {
      service(*sv, json_reader::path(p, "service"), s.service);
    } else if (!json_reader::member(o, "service") && !knative_target(s.target_ref)) {
      // Flagger's CRD does not require it; canaryd needs it for every target but a Knative
      // Service, whose traffic Knative routes (no Services are generated).
      r_.error(json_reader::path(p, "service"), "required");
    }
    r_.read(o, "skipAnalysis", p, s.skip_analysis);
    r_.read(o, "revertOnDeletion", p, s.revert_on_deletion);
    r_.read(o, "suspend", p, s.suspend);
    if (auto a = r_.object_at(o, "analysis", p)) {
      analysis(*a, json_reader::path(p, "analysis"), s.analysis.emplace());
    } else if (!json_reader::member(o, "analysis")) {
      r_.error(json_reader::path(p, "analysis"), "required");
    }
  }

  void status(object o, const std::string& p, canary_status& st) {
    std::string phase;
    if (r_.read(o, "phase", p, phase)) {
      if (auto ph = parse_phase(phase)) {
        st.phase = *ph;
      } else {
        r_.error(json_reader::path(p, "phase"), fmt::format("unknown phase {}", q(phase)));
      }
    }
    r_.read(o, "failedChecks", p, st.failed_checks);
    r_.read(o, "canaryWeight", p, st.canary_weight);
    r_.read(o, "iterations", p, st.iterations);
    std::map<std::string, std::string> tracked;
    if (r_.read(o, "trackedConfigs", p, tracked)) st.tracked_configs = std::move(tracked);
    r_.read(o, "lastAppliedSpec", p, st.last_applied_spec);
    r_.read(o, "lastPromotedSpec", p, st.last_promoted_spec);
    time_at(o, "lastTransitionTime", p, st.last_transition_time);
    r_.read(o, "sessionAffinityCookie", p, st.session_affinity_cookie);
    r_.read(o, "primarySessionAffinityCookie", p, st.primary_session_affinity_cookie);
    r_.read(o, "previousSessionAffinityCookie", p, st.previous_session_affinity_cookie);
    if (auto conds = r_.array_at(o, "conditions", p)) {
      const std::string lp = json_reader::path(p, "conditions");
      std::size_t i = 0;
      for (element item : *conds) {
        const std::string ip = json_reader::index(lp, i++);
        auto co = r_.as_object(item, ip);
        if (!co) continue;
        canary_condition& c = st.conditions.emplace_back();
        r_.read(*co, "type", ip, c.type);
        r_.read(*co, "status", ip, c.status);
        time_at(*co, "lastUpdateTime", ip, c.last_update_time);
        time_at(*co, "lastTransitionTime", ip, c.last_transition_time);
        r_.read(*co, "reason", ip, c.reason);
        r_.read(*co, "message", ip, c.message);
      }
    }
  }
};

// ---- validation -----------------------------------------------------------------------------

class canary_validator {
 public:
  canary_validator(const canary& c, const decode_options& options, std::vector<field_error>& errors)
      : c_(c), options_(options), errors_(errors) {}

  void run() {
    if (c_.metadata.name.empty()) error("metadata.name", "required");
    const canary_spec& s = c_.spec;
    if (!s.provider.empty() && !is_known_provider(s.provider)) {
      error("spec.provider", fmt::format("must be one of {}; got {}", one_of(providers), q(s.provider)));
    }
    target_ref();
    if (s.progress_deadline_seconds && *s.progress_deadline_seconds < 0) {
      error("spec.progressDeadlineSeconds", fmt::format("must not be negative, got {}", *s.progress_deadline_seconds));
    }
    if (s.autoscaler_ref) autoscaler_ref(*s.autoscaler_ref);
    if (s.ingress_ref) typed_ref("spec.ingressRef", *s.ingress_ref, "Ingress");
    if (s.route_ref) typed_ref("spec.routeRef", *s.route_ref, "ApisixRoute");
    if (s.upstream_ref) upstream_ref(*s.upstream_ref);
    service(s.service);
    if (s.analysis) analysis(*s.analysis);
    knative();
  }

 private:
  const canary& c_;
  const decode_options& options_;
  std::vector<field_error>& errors_;

  void error(std::string field, std::string message) { errors_.push_back({std::move(field), std::move(message)}); }

  void percent(const std::string& field, int v) {
    if (v < 0) error(field, fmt::format("must not be negative, got {}", v));
    if (v > 100) error(field, fmt::format("must be at most 100, got {}", v));
  }

  void cross_namespace(const std::string& field, const std::string& ns) {
    if (options_.no_cross_namespace_refs && !ns.empty() && ns != c_.metadata.namespace_) {
      error(field, fmt::format("cross-namespace references are disabled (-no-cross-namespace-refs), got {}",
                               q(ns)));
    }
  }

  void duration(const std::string& field, const std::string& text, std::chrono::milliseconds min) {
    if (text.empty()) return;
    auto d = parse_go_duration(text);
    if (!d) {
      error(field, fmt::format("invalid duration {} (Go syntax: \"1m\", \"30s\", \"1m30s\", \"500ms\", \"1h\")",
                               q(text)));
      return;
    }
    if (*d < min) {
      error(field, fmt::format("must be at least {}, got {}", format_go_duration(min), q(text)));
    }
  }

  void target_ref() {
    const local_object_reference& t = c_.spec.target_ref;
    if (t.name.empty()) error("spec.targetRef.name", "required");
    if (t.api_version.empty()) error("spec.targetRef.apiVersion", "required");
    // StatefulSet is canaryd's own (deploy/crds admits it; Flagger's CRD does not).
    static constexpr std::array<std::string_view, 4> kinds{"DaemonSet", "Deployment", "Service", "StatefulSet"};
    if (t.kind.empty()) {
      error("spec.targetRef.kind", "required");
    } else if (!contains(kinds, t.kind)) {
      error("spec.targetRef.kind", fmt::format("must be one of {}; got {}", one_of(kinds), q(t.kind)));
    }
  }

  void typed_ref(const std::string& field, const local_object_reference& ref, std::string_view kind) {
    if (ref.name.empty()) error(field + ".name", "required");
    if (ref.api_version.empty()) error(field + ".apiVersion", "required");
    if (ref.kind != kind) error(field + ".kind", fmt::format("must be {}, got {}", kind, q(ref.kind)));
  }

  void autoscaler_ref(const autoscaler_reference& a) {
    if (a.name.empty()) error("spec.autoscalerRef.name", "required");
    if (a.api_version.empty()) error("spec.autoscalerRef.apiVersion", "required");
    static constexpr std::array<std::string_view, 2> kinds{"HorizontalPodAutoscaler", "ScaledObject"};
    if (!contains(kinds, a.kind)) {
      error("spec.autoscalerRef.kind", fmt::format("must be one of {}; got {}", one_of(kinds), q(a.kind)));
    }
    if (a.primary_scaler_replicas) {
      const auto& r = *a.primary_scaler_replicas;
      if (r.min_replicas && *r.min_replicas < 1) {
        error("spec.autoscalerRef.primaryScalerReplicas.minReplicas", fmt::format("must be at least 1, got {}", *r.min_replicas));
      }
      if (r.max_replicas && *r.max_replicas < 1) {
        error("spec.autoscalerRef.primaryScalerReplicas.maxReplicas", fmt::format("must be at least 1, got {}", *r.max_replicas));
      }
      if (r.min_replicas && r.max_replicas && *r.min_replicas > *r.max_replicas) {
        error("spec.autoscalerRef.primaryScalerReplicas",
              fmt::format("minReplicas ({}) must not exceed maxReplicas ({})", *r.min_replicas, *r.max_replicas));
      }
    }
  }

  void upstream_ref(const upstream_reference& u) {
    if (u.name.empty()) error("spec.upstreamRef.name", "required");
    if (u.api_version.empty()) error("spec.upstreamRef.apiVersion", "required");
    if (u.kind != "Upstream") error("spec.upstreamRef.kind", fmt::format("must be Upstream, got {}", q(u.kind)));
    cross_namespace("spec.upstreamRef.namespace", u.namespace_);
  }

  // An absolute http or https URL with a host and, when given, a port in 1..65535 (what
  // webhook_caller.cpp can call; anything else failed only at call time, as "bad TLS or endpoint
  // configuration").
  void webhook_url(const std::string& field, std::string_view url) {
    const std::size_t sep = url.find("://");
    if (sep == std::string_view::npos) {
      error(field, fmt::format("must be an absolute URL, got {}", q(std::string(url))));
      return;
    }
    std::string scheme(url.substr(0, sep));
    for (auto& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (scheme != "http" && scheme != "https") {
      error(field, fmt::format("scheme must be http or https, got {}", q(scheme)));
      return;
    }
    std::string_view authority = url.substr(sep + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) authority = authority.substr(at + 1);
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
      const std::size_t close = authority.find(']');
      if (close == std::string_view::npos) {
        error(field, fmt::format("has an unterminated IPv6 address, got {}", q(std::string(url))));
        return;
      }
      host = authority.substr(0, close + 1);
      if (close + 1 < authority.size()) {
        if (authority[close + 1] != ':') {
          error(field, fmt::format("has a malformed host, got {}", q(std::string(url))));
          return;
        }
        port = authority.substr(close + 2);
        if (port.empty()) port = "-";
      }
    } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) port = "-";
    }
    if (host.empty()) {
      error(field, fmt::format("must name a host, got {}", q(std::string(url))));
      return;
    }
    for (char ch : host) {
      if (static_cast<unsigned char>(ch) <= ' ' || ch == '<' || ch == '>' || ch == '"' || ch == '\\') {
        error(field, fmt::format("has an invalid character in its host, got {}", q(std::string(url))));
        return;
      }
    }
    if (!port.empty()) {
      long value = 0;
      bool digits = port.size() <= 5;
      for (char ch : port) {
        if (ch < '0' || ch > '9') digits = false;
        if (digits) value = value * 10 + (ch - '0');
      }
      if (!digits || value < 1 || value > 65535) {
        error(field, fmt::format("port must be between 1 and 65535, got {}", q(std::string(port))));
      }
    }
  }

  void service(const canary_service& s) {
    // A missing or zero port is reported by the decoder; a present one must be usable.
    if (s.port < 0 || s.port > 65535) {
      error("spec.service.port", fmt::format("must be between 1 and 65535, got {}", s.port));
    }
    if (s.target_port && !s.target_port->is_string &&
        (s.target_port->int_value < 1 || s.target_port->int_value > 65535)) {
      error("spec.service.targetPort", fmt::format("must be between 1 and 65535, got {}", s.target_port->int_value));
    }
    // The Service's port name is a DNS-1123 label; a named targetPort names a container port,
    // an IANA service name (what the API server would refuse only when the Service is written).
    if (!s.port_name.empty() && !is_dns_label(s.port_name)) {
      error("spec.service.portName",
            fmt::format("must be a DNS-1123 label (lowercase letters, digits and '-', at most 63), got {}", q(s.port_name)));
    }
    if (s.target_port && s.target_port->is_string && !is_iana_service_name(s.target_port->string_value)) {
      error("spec.service.targetPort",
            fmt::format("a port name must be an IANA service name (at most 15 lowercase letters, digits and single "
                        "'-', with a letter), got {}",
                        q(s.target_port->string_value)));
    }
    static constexpr std::array<std::string_view, 3> distributions{"PreferClose", "PreferSameZone", "PreferSameNode"};
    if (!s.traffic_distribution.empty() && !contains(distributions, s.traffic_distribution)) {
      error("spec.service.trafficDistribution",
            fmt::format("must be one of {}; got {}", one_of(distributions), q(s.traffic_distribution)));
    }
    if (s.gateway_refs.size() > 32) {
      error("spec.service.gatewayRefs", fmt::format("must have at most 32 items, got {}", s.gateway_refs.size()));
    }
    for (std::size_t i = 0; i < s.gateway_refs.size(); ++i) {
      const auto& ref = s.gateway_refs[i];
      const std::string p = fmt::format("spec.service.gatewayRefs[{}]", i);
      if (ref.name.empty()) error(p + ".name", "required");
      if (ref.port && (*ref.port < 1 || *ref.port > 65535)) {
        error(p + ".port", fmt::format("must be between 1 and 65535, got {}", *ref.port));
      }
    }
    for (std::size_t i = 0; i < s.mirror.size(); ++i) {
      const auto& m = s.mirror[i];
      const std::string p = fmt::format("spec.service.mirror[{}].backendRef", i);
      if (m.backend_ref.name.empty()) error(p + ".name", "required");
      if ((m.backend_ref.kind.empty() || m.backend_ref.kind == "Service") && !m.backend_ref.port) {
        error(p + ".port", "required when kind is Service");
      }
      if (m.backend_ref.port && (*m.backend_ref.port < 1 || *m.backend_ref.port > 65535)) {
        error(p + ".port", fmt::format("must be between 1 and 65535, got {}", *m.backend_ref.port));
      }
    }
    if (s.delegation && (!s.hosts.empty() || !s.gateways.empty())) {
      error("spec.service.delegation", "a delegate VirtualService must not set hosts or gateways");
    }
  }

  void analysis(const canary_analysis& a) {
    duration("spec.analysis.interval", a.interval, std::chrono::seconds(1));
    // Pacing adds the interval to wall-clock times; a year is plenty and can never overflow.
    if (auto d = parse_go_duration(a.interval); d && *d > std::chrono::hours(24 * 365)) {
      error("spec.analysis.interval", fmt::format("must be at most 8760h, got {}", q(a.interval)));
    }
    if (a.iterations < 0) error("spec.analysis.iterations", fmt::format("must not be negative, got {}", a.iterations));
    if (a.threshold < 0) error("spec.analysis.threshold", fmt::format("must not be negative, got {}", a.threshold));
    percent("spec.analysis.maxWeight", a.max_weight);
    percent("spec.analysis.stepWeight", a.step_weight);
    percent("spec.analysis.stepWeightPromotion", a.step_weight_promotion);
    percent("spec.analysis.mirrorWeight", a.mirror_weight);
    if (a.primary_ready_threshold) percent("spec.analysis.primaryReadyThreshold", *a.primary_ready_threshold);
    if (a.canary_ready_threshold) percent("spec.analysis.canaryReadyThreshold", *a.canary_ready_threshold);
    for (std::size_t i = 0; i < a.step_weights.size(); ++i) {
      const std::string p = fmt::format("spec.analysis.stepWeights[{}]", i);
      const int w = a.step_weights[i];
      // [quirk] Flagger accepts steps above 100 and caps the ladder at 100 (maxWeight = min(100,
      // last step)) while it refuses maxWeight 150. Fixed: a weight is a percentage, as maxWeight.
      if (w < 1) {
        error(p, fmt::format("must be at least 1, got {}", w));
      } else if (w > 100) {
        error(p, fmt::format("must be at most 100, got {}", w));
      } else if (i > 0 && w <= a.step_weights[i - 1]) {
        error(p, fmt::format("must be greater than the previous step ({}), got {}", a.step_weights[i - 1], w));
      }
    }
    // Without iterations, stepWeight or stepWeights the canary strategy never moves (Flagger
    // would sit in Progressing forever).
    if (a.iterations <= 0 && a.step_weight <= 0 && a.step_weights.empty()) {
      error("spec.analysis.stepWeight", "must be greater than 0 when neither iterations nor stepWeights is set");
    }

    for (std::size_t i = 0; i < a.metrics.size(); ++i) {
      const auto& m = a.metrics[i];
      const std::string p = fmt::format("spec.analysis.metrics[{}]", i);
      if (m.name.empty()) error(p + ".name", "required");
      duration(p + ".interval", m.interval, std::chrono::milliseconds(1));
      if (m.range && m.range->min && m.range->max && *m.range->min > *m.range->max) {
        error(p + ".thresholdRange", fmt::format("min ({}) must not exceed max ({})", *m.range->min, *m.range->max));
      }
      if (m.name == "request-duration" && !m.range && m.threshold <= 0) {
        // Flagger compares the duration with a 0 ms maximum and fails every check.
        error(p + ".thresholdRange", "request-duration needs a thresholdRange (milliseconds) or a threshold");
      }
      if (m.template_ref) {
        if (m.template_ref->name.empty()) error(p + ".templateRef.name", "required");
        cross_namespace(p + ".templateRef.namespace", m.template_ref->namespace_);
      } else if (!m.is_builtin() && m.query.empty() && !m.name.empty()) {
        // Flagger fails such a metric on every check ("no usable metrics template and query
        // were configured") and rolls back; reporting it up front is kinder.
        error(p, fmt::format("{} is not a built-in metric (request-success-rate, request-duration): it needs a "
                             "templateRef or a query",
                             q(m.name)));
      }
    }
    static constexpr std::array<std::string_view, 4> severities{"", "info", "warn", "error"};
    for (std::size_t i = 0; i < a.alerts.size(); ++i) {
      const auto& al = a.alerts[i];
      const std::string p = fmt::format("spec.analysis.alerts[{}]", i);
      if (al.name.empty()) error(p + ".name", "required");
      if (!contains(severities, al.severity)) {
        error(p + ".severity", fmt::format("must be one of {}; got {}", one_of(severities), q(al.severity)));
      }
      if (al.provider_ref.name.empty()) error(p + ".providerRef.name", "required");
      cross_namespace(p + ".providerRef.namespace", al.provider_ref.namespace_);
    }
    for (std::size_t i = 0; i < a.webhooks.size(); ++i) {
      const auto& w = a.webhooks[i];
      const std::string p = fmt::format("spec.analysis.webhooks[{}]", i);
      if (w.name.empty()) error(p + ".name", "required");
      if (w.url.empty()) {
        error(p + ".url", "required");
      } else {
        webhook_url(p + ".url", w.url);
      }
      if (w.timeout.size() >= 2) duration(p + ".timeout", w.timeout, std::chrono::milliseconds(1));
      if (w.retries < 0) error(p + ".retries", fmt::format("must not be negative, got {}", w.retries));
      // Each retry waits up to 30 s more (webhook_caller.cpp): 10 already hold a gate ~5 minutes.
      if (w.retries > max_webhook_retries) {
        error(p + ".retries", fmt::format("must be at most {}, got {}", max_webhook_retries, w.retries));
      }
    }
    if (a.affinity) {
      const auto& s = *a.affinity;
      if (s.cookie_name.empty()) error("spec.analysis.sessionAffinity.cookieName", "required");
      if (!s.cookie_name.empty() && s.cookie_name == s.primary_cookie_name) {
        error("spec.analysis.sessionAffinity.primaryCookieName",
              fmt::format("must differ from cookieName, both are {}", q(s.cookie_name)));
      }
      static constexpr std::array<std::string_view, 3> same_site{"Strict", "Lax", "None"};
      if (!s.same_site.empty() && !contains(same_site, s.same_site)) {
        error("spec.analysis.sessionAffinity.sameSite",
              fmt::format("must be one of {}; got {}", one_of(same_site), q(s.same_site)));
      }
    }
  }

  // verifyCanary: a Knative target needs provider knative and no autoscaler, and vice versa.
  void knative() {
    const bool knative_target = c_.is_knative_target();
    if (knative_target && !c_.spec.provider.empty() && c_.spec.provider != "knative") {
      error("spec.provider", fmt::format("must be knative for a Knative Service target, got {}", q(c_.spec.provider)));
    }
    if (!knative_target && c_.spec.provider == "knative") {
      error("spec.targetRef", "provider knative needs a Knative Service target (apiVersion serving.knative.dev/v1, kind Service)");
    }
    if (knative_target && c_.spec.autoscaler_ref) {
      error("spec.autoscalerRef", "not supported with a Knative Service target");
    }
  }
};

void append_time(std::string& out, std::string_view key, const std::optional<wall_time>& t, bool& first,
                 bool milliseconds = false) {
  if (!t) return;
  if (!first) out += ',';
  first = false;
  append_json_string(out, key);
  out += ':';
  append_json_string(out, milliseconds ? format_rfc3339_ms(*t) : format_rfc3339(*t));
}

void append_member(std::string& out, std::string_view key, std::string_view value, bool& first) {
  if (!first) out += ',';
  first = false;
  append_json_string(out, key);
  out += ':';
  append_json_string(out, value);
}

}  // namespace

std::string_view to_string(canary_phase p) {
  for (const auto& [phase, name] : phase_names) {
    if (phase == p) return name;
  }
  return "";
}

std::optional<canary_phase> parse_phase(std::string_view text) {
  for (const auto& [phase, name] : phase_names) {
    if (name == text) return phase;
  }
  return std::nullopt;
}

std::string_view to_string(webhook_type t) {
  for (const auto& [type, name] : webhook_type_names) {
    if (type == t) return name;
  }
  return "rollout";
}

std::optional<webhook_type> parse_webhook_type(std::string_view text) {
  if (text.empty()) return webhook_type::rollout;
  for (const auto& [type, name] : webhook_type_names) {
    if (name == text) return type;
  }
  return std::nullopt;
}

std::string_view to_string(deployment_strategy s) {
  switch (s) {
    case deployment_strategy::canary: return "canary";
    case deployment_strategy::blue_green: return "blue-green";
    case deployment_strategy::ab_testing: return "ab-testing";
  }
  return "canary";
}

std::string join_errors(const std::vector<field_error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += "; ";
    out += e.text();
    // A status or Event message is capped (core/message.hpp): stop joining well past the cap.
    if (out.size() > 2 * max_message_bytes) break;
  }
  return one_line(out);
}

std::chrono::milliseconds canary_webhook::effective_timeout() const {
  if (timeout.size() < 2) return std::chrono::seconds(10);
  auto d = parse_go_duration(timeout);
  return d ? *d : std::chrono::milliseconds(std::chrono::seconds(10));
}

const canary_condition* canary_status::condition(std::string_view type) const {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

std::string canary::apex_service_name() const {
  return spec.service.name.empty() ? spec.target_ref.name : spec.service.name;
}

std::chrono::milliseconds canary::analysis_interval() const {
  if (!spec.analysis || spec.analysis->interval.empty()) return std::chrono::seconds(60);
  auto d = parse_go_duration(spec.analysis->interval);
  // Validation rejects these; the fallback keeps a bug from turning into a busy loop.
  if (!d || *d < std::chrono::seconds(1)) return std::chrono::seconds(60);
  return *d;
}

int canary::analysis_threshold() const {
  const int t = spec.analysis ? spec.analysis->threshold : 0;
  return t > 0 ? t : 1;
}

int canary::progress_deadline_seconds() const { return spec.progress_deadline_seconds.value_or(600); }

int canary::primary_ready_threshold() const {
  return spec.analysis && spec.analysis->primary_ready_threshold ? *spec.analysis->primary_ready_threshold : 100;
}

int canary::canary_ready_threshold() const {
  return spec.analysis && spec.analysis->canary_ready_threshold ? *spec.analysis->canary_ready_threshold : 100;
}

bool canary::skip_analysis() const { return !spec.analysis || spec.skip_analysis; }

std::string canary::port_name() const { return spec.service.port_name.empty() ? "http" : spec.service.port_name; }

deployment_strategy canary::strategy() const {
  const canary_analysis& a = analysis_or_empty();
  if (!a.match.empty() && a.iterations > 0) return deployment_strategy::ab_testing;
  if (a.iterations > 0) return deployment_strategy::blue_green;
  return deployment_strategy::canary;
}

bool canary::is_knative_target() const {
  return spec.target_ref.kind == "Service" && spec.target_ref.api_version.starts_with("serving.knative.dev/");
}

bool canary::has_finalizer() const {
  return std::find(metadata.finalizers.begin(), metadata.finalizers.end(), canary_finalizer) !=
         metadata.finalizers.end();
}

const canary_analysis& canary::analysis_or_empty() const {
  static const canary_analysis empty{};
  return spec.analysis ? *spec.analysis : empty;
}

bool is_known_provider(std::string_view provider) { return contains(providers, provider); }

decoded<canary> decode_canary(std::string_view json, const decode_options& options) {
  decoded<canary> out;
  detail::dom::parser parser;
  element doc;
  if (!detail::parse_document(parser, json, doc, out.errors)) return out;
  object root;
  if (doc.get_object().get(root)) {
    out.errors.push_back({"", fmt::format("a Canary must be a JSON object, got {}", detail::type_name(doc))});
    return out;
  }
  canary_decoder(out.errors).decode(root, out.value);
  canary_validator(out.value, options, out.errors).run();
  return out;
}

std::vector<field_error> validate(const canary& c, const decode_options& options) {
  std::vector<field_error> errors;
  canary_validator(c, options, errors).run();
  return errors;
}

std::string encode_status(const canary_status& st) {
  std::string out = "{";
  bool first = true;
  append_member(out, "phase", to_string(st.phase), first);
  out += fmt::format(",\"failedChecks\":{},\"canaryWeight\":{},\"iterations\":{}", st.failed_checks,
                     st.canary_weight, st.iterations);
  if (!st.previous_session_affinity_cookie.empty()) {
    append_member(out, "previousSessionAffinityCookie", st.previous_session_affinity_cookie, first);
  }
  if (!st.session_affinity_cookie.empty()) append_member(out, "sessionAffinityCookie", st.session_affinity_cookie, first);
  if (!st.primary_session_affinity_cookie.empty()) {
    append_member(out, "primarySessionAffinityCookie", st.primary_session_affinity_cookie, first);
  }
  if (st.tracked_configs) {
    out += ",\"trackedConfigs\":{";
    bool first_config = true;
    for (const auto& [key, value] : *st.tracked_configs) append_member(out, key, value, first_config);
    out += '}';
  }
  if (!st.last_applied_spec.empty()) append_member(out, "lastAppliedSpec", st.last_applied_spec, first);
  if (!st.last_promoted_spec.empty()) append_member(out, "lastPromotedSpec", st.last_promoted_spec, first);
  // Milliseconds: the time of the last analysis step, which a restarted daemon paces from
  // (core/rollout.hpp); seconds would shorten its first wait by up to a second (issue 11).
  append_time(out, "lastTransitionTime", st.last_transition_time, first, true);
  if (!st.conditions.empty()) {
    out += ",\"conditions\":[";
    for (std::size_t i = 0; i < st.conditions.size(); ++i) {
      const auto& c = st.conditions[i];
      if (i) out += ',';
      out += '{';
      bool first_member = true;
      append_member(out, "type", c.type, first_member);
      append_member(out, "status", c.status, first_member);
      append_time(out, "lastUpdateTime", c.last_update_time, first_member);
      append_time(out, "lastTransitionTime", c.last_transition_time, first_member);
      append_member(out, "reason", c.reason, first_member);
      if (!c.message.empty()) append_member(out, "message", c.message, first_member);
      out += '}';
    }
    out += ']';
  }
  out += '}';
  return out;
}

}  // namespace canaryd::core
