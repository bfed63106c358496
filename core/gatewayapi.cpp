#include "core/gatewayapi.hpp"

#include <boost/json.hpp>

#include <map>

#include "core/duration.hpp"
#include "core/primary.hpp"
#include "core/services.hpp"

namespace canaryd::core::gatewayapi {

namespace json = boost::json;

namespace {

template <class T>
service_result<T> fail(std::string message) {
  return service_result<T>(boost::system::in_place_error, std::move(message));
}

constexpr std::string_view group = "gateway.networking.k8s.io";

service_result<json::value> parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return fail<json::value>("HTTPRoute is not valid JSON: " + ec.message());
  if (!v.is_object()) return fail<json::value>("HTTPRoute is not a JSON object");
  return v;
}

bool is_str(const json::value* v, std::string_view s) { return v && v->is_string() && v->as_string() == s; }

json::object typed_match(std::string_view name, std::string_view type, const std::string& value) {
  return json::object{{"name", name}, {"type", type}, {"value", value}};
}

// mapRouteMatches: Istio's HTTPMatchRequest as Gateway API HTTPRouteMatch.
service_result<json::array> map_matches(const std::vector<http_match_request>& in) {
  json::array out;
  for (const auto& m : in) {
    json::object o;
    if (m.uri) {
      const string_match& u = *m.uri;
      if (!u.regex.empty()) o["path"] = json::object{{"type", "RegularExpression"}, {"value", u.regex}};
      else if (!u.exact.empty()) o["path"] = json::object{{"type", "Exact"}, {"value", u.exact}};
      else if (!u.prefix.empty()) o["path"] = json::object{{"type", "PathPrefix"}, {"value", u.prefix}};
      else return fail<json::array>("Gateway API doesn't support the specified path matching selector");
    }
    if (m.method) {
      if (m.method->exact.empty()) return fail<json::array>("Gateway API doesn't support the specified method matching selector");
      o["method"] = m.method->exact;
    }
    json::array headers;
    for (const auto& [name, v] : m.headers) {
      if (!v.exact.empty()) headers.push_back(typed_match(name, "Exact", v.exact));
      else if (!v.regex.empty()) headers.push_back(typed_match(name, "RegularExpression", v.regex));
      else return fail<json::array>("Gateway API doesn't support the specified header matching selector for " + name);
    }
    if (!headers.empty()) o["headers"] = std::move(headers);
    json::array params;
    for (const auto& [name, v] : m.query_params) {
      if (!v.exact.empty()) params.push_back(typed_match(name, "Exact", v.exact));
      else if (!v.regex.empty()) params.push_back(typed_match(name, "RegularExpression", v.regex));
      else return fail<json::array>("Gateway API doesn't support the specified query matching selector for " + name);
    }
    if (!params.empty()) o["queryParams"] = std::move(params);
    if (!o.empty()) out.push_back(std::move(o));
  }
  return out;
}

// mergeMatchConditions: each analysis match crossed with each service match, the service's copy
// taking the analysis match's headers and query params.
json::array merge_matches(const json::array& analysis, const json::array& service) {
  if (analysis.empty()) return service;
  if (service.empty()) return analysis;
  json::array out;
  for (const auto& a : analysis) {
    for (const auto& s : service) {
      json::object m = s.as_object();
      for (std::string_view k : {"headers", "queryParams"}) {
        if (const auto* v = a.as_object().if_contains(k)) m[k] = *v;
      }
      out.push_back(std::move(m));
    }
  }
  return out;
}

json::array header_list(const std::map<std::string, std::string>& m) {
  json::array out;
  for (const auto& [k, v] : m) out.push_back(json::object{{"name", k}, {"value", v}});  // sorted by name
  return out;
}

std::optional<json::object> header_modifier(const header_operations& ops) {
  if (ops.add.empty() && ops.set.empty() && ops.remove.empty()) return std::nullopt;
  json::object m;
  if (!ops.add.empty()) m["add"] = header_list(ops.add);
  if (!ops.set.empty()) m["set"] = header_list(ops.set);
  if (!ops.remove.empty()) {
    json::array r;
    for (const auto& n : ops.remove) r.push_back(json::value(n));
    m["remove"] = std::move(r);
  }
  return m;
}

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.push_back(json::value(s));
  return a;
}

// makeFilters: header modifiers, URL rewrite, service.mirror and CORS.
json::array make_filters(const canary& c) {
  const canary_service& svc = c.spec.service;
  json::array f;
  if (svc.headers) {
    if (auto m = header_modifier(svc.headers->request)) {
      f.push_back(json::object{{"type", "RequestHeaderModifier"}, {"requestHeaderModifier", std::move(*m)}});
    }
    if (auto m = header_modifier(svc.headers->response)) {
      f.push_back(json::object{{"type", "ResponseHeaderModifier"}, {"responseHeaderModifier", std::move(*m)}});
    }
  }
  if (svc.rewrite && (!svc.rewrite->authority.empty() || !svc.rewrite->uri.empty())) {
    json::object rw;
    if (!svc.rewrite->authority.empty()) rw["hostname"] = svc.rewrite->authority;
    if (!svc.rewrite->uri.empty()) {
      const bool prefix = svc.rewrite->type == "ReplacePrefixMatch";
      rw["path"] = json::object{{"type", prefix ? "ReplacePrefixMatch" : "ReplaceFullPath"},
                                {prefix ? "replacePrefixMatch" : "replaceFullPath", svc.rewrite->uri}};
    }
    f.push_back(json::object{{"type", "URLRewrite"}, {"urlRewrite", std::move(rw)}});
  }
  for (const auto& m : svc.mirror) {
    json::object ref{{"group", m.backend_ref.group}, {"kind", m.backend_ref.kind}, {"name", m.backend_ref.name}};
    if (!m.backend_ref.namespace_.empty()) ref["namespace"] = m.backend_ref.namespace_;
    if (m.backend_ref.port) ref["port"] = *m.backend_ref.port;
    json::object mirror{{"backendRef", std::move(ref)}};
    if (m.percent) mirror["percent"] = *m.percent;
    if (m.fraction) mirror["fraction"] = json::object{{"numerator", m.fraction->numerator},
                                                      {"denominator", m.fraction->denominator.value_or(100)}};
    f.push_back(json::object{{"type", "RequestMirror"}, {"requestMirror", std::move(mirror)}});
  }
  if (svc.cors) {
    const cors_policy& p = *svc.cors;
    json::object cors;
    json::array origins = strings(p.allow_origin);
    for (const auto& o : p.allow_origins) {
      if (!o.exact.empty()) origins.push_back(json::value(o.exact));
      else if (!o.prefix.empty()) origins.push_back(json::value(o.prefix));
    }
    if (!origins.empty()) cors["allowOrigins"] = std::move(origins);
    if (!p.allow_methods.empty()) cors["allowMethods"] = strings(p.allow_methods);
    if (!p.allow_headers.empty()) cors["allowHeaders"] = strings(p.allow_headers);
    if (!p.expose_headers.empty()) cors["exposeHeaders"] = strings(p.expose_headers);
    std::int64_t max_age = 5;  // the CRD's default, written so the object reads back as written
    if (auto d = parse_go_duration(p.max_age)) {
      max_age = std::chrono::duration_cast<std::chrono::seconds>(*d).count();
    }
    cors["maxAge"] = max_age;
    if (p.allow_credentials) cors["allowCredentials"] = *p.allow_credentials;
    f.push_back(json::object{{"type", "CORS"}, {"cors", std::move(cors)}});
  }
  return f;
}

json::object backend_ref(const canary& c, const std::string& name, int weight) {
  return json::object{{"group", ""}, {"kind", "Service"}, {"name", name}, {"port", c.spec.service.port}, {"weight", weight}};
}

json::object rule(const canary& c, const json::array& matches, json::array backends) {
  json::object r{{"matches", matches}};
  json::array filters = make_filters(c);
  if (!filters.empty()) r["filters"] = std::move(filters);
  r["backendRefs"] = std::move(backends);
  const canary_service& svc = c.spec.service;
  if (!svc.timeout.empty() || !svc.backend_timeout.empty()) {
    json::object t;
    if (!svc.timeout.empty()) t["request"] = svc.timeout;
    if (!svc.backend_timeout.empty()) t["backendRequest"] = svc.backend_timeout;
    r["timeouts"] = std::move(t);
  }
  return r;
}

json::object set_cookie_filter(const std::string& value) {
  return json::object{{"type", "ResponseHeaderModifier"},
                      {"responseHeaderModifier",
                       json::object{{"add", json::array{json::object{{"name", "Set-Cookie"}, {"value", value}}}}}}};
}

// A match on the Cookie header carrying `cookie` ("<name>=<value>").
json::array cookie_match(const std::string& cookie) {
  const auto eq = cookie.find('=');
  const std::string name = cookie.substr(0, eq);
  const std::string value = eq == std::string::npos ? std::string() : cookie.substr(eq + 1);
  return json::array{
      json::object{{"headers", json::array{typed_match("Cookie", "RegularExpression", ".*" + name + ".*" + value + ".*")}}}};
}

void add_filter(json::object& holder, json::object filter) {
  json::value& f = holder["filters"];
  if (!f.is_array()) f = json::array{};
  f.as_array().push_back(std::move(filter));
}

// The HTTPRoute spec with `routes`; `cookies` is null for Reconcile's spec (no sticky rules).
service_result<json::object> build_spec(const canary& c, const traffic_routes& routes, const session_cookies* cookies) {
  const canary_service& svc = c.spec.service;
  if (svc.gateway_refs.empty()) {
    return fail<json::object>("GatewayRefs must be specified when using Gateway API as a provider.");
  }
  const std::string primary = c.primary_service_name();
  const std::string canary_name = c.canary_service_name();
  auto service_matches = map_matches(svc.match);
  if (!service_matches) return fail<json::object>("Invalid request matching selectors: " + service_matches.error());
  json::array matches = std::move(*service_matches);
  if (matches.empty()) matches.push_back(json::object{{"path", json::object{{"type", "PathPrefix"}, {"value", "/"}}}});

  const canary_analysis& a = c.analysis_or_empty();
  json::object weighted =
      rule(c, matches, json::array{backend_ref(c, primary, routes.primary), backend_ref(c, canary_name, routes.canary)});
  if (routes.mirrored && a.iterations > 0) {
    add_filter(weighted, json::object{{"type", "RequestMirror"},
                                      {"requestMirror", json::object{{"backendRef", json::object{{"group", ""},
                                                                                                  {"kind", "Service"},
                                                                                                  {"name", canary_name},
                                                                                                  {"port", svc.port}}}}}});
  }
  json::array rules;
  if (cookies && a.affinity && !a.affinity->cookie_name.empty()) {
    // getSessionAffinityRouteRules: a sticky rule before the weighted one.
    const session_affinity& sa = *a.affinity;
    json::object sticky = weighted;
    json::array extra;
    if (routes.canary != 0 && !cookies->canary.empty()) {
      for (auto& b : weighted["backendRefs"].as_array()) {
        // A copy: add_filter() inserts into the object, which may rehash and free the name.
        const std::string name(b.as_object().at("name").as_string());
        if (name == canary_name) add_filter(b.as_object(), set_cookie_filter(set_cookie_value(sa, cookies->canary, sa.max_age)));
        if (name == primary && !cookies->primary.empty()) {
          const long interval_s = static_cast<long>(c.analysis_interval().count() / 1000);
          add_filter(b.as_object(), set_cookie_filter(set_cookie_value(sa, cookies->primary, interval_s)));
        }
      }
      sticky["matches"] = merge_matches(cookie_match(cookies->canary), matches);
      sticky["backendRefs"] = json::array{backend_ref(c, primary, 0), backend_ref(c, canary_name, 100)};
      if (!cookies->primary.empty()) {
        json::object primary_sticky = rule(c, merge_matches(cookie_match(cookies->primary), matches),
                                           json::array{backend_ref(c, primary, 100)});
        extra.push_back(std::move(primary_sticky));
      }
    } else if (routes.canary == 0 && !cookies->previous.empty()) {
      sticky["matches"] = merge_matches(cookie_match(cookies->previous), matches);
      add_filter(sticky, set_cookie_filter(cookies->previous + "; Max-Age=-1"));
    }
    rules.push_back(std::move(sticky));
    for (auto& r : extra) rules.push_back(std::move(r));
  }
  rules.push_back(std::move(weighted));
  if (!a.match.empty()) {
    auto analysis_matches = map_matches(a.match);
    if (!analysis_matches) return fail<json::object>("Invalid request matching selectors: " + analysis_matches.error());
    rules[0].as_object()["matches"] = merge_matches(*analysis_matches, matches);
    rules.push_back(rule(c, matches, json::array{backend_ref(c, primary, 100)}));
  }

  json::array parents;
  for (const auto& p : svc.gateway_refs) {
    json::object ref{{"group", p.group}, {"kind", p.kind}, {"name", p.name}};
    if (!p.namespace_.empty()) ref["namespace"] = p.namespace_;
    if (!p.section_name.empty()) ref["sectionName"] = p.section_name;
    if (p.port) ref["port"] = *p.port;
    parents.push_back(std::move(ref));
  }
  json::object spec{{"parentRefs", std::move(parents)}};
  if (!svc.hosts.empty()) spec["hostnames"] = strings(svc.hosts);
  spec["rules"] = std::move(rules);
  return spec;
}

bool is_sticky(const json::value& r) {
  const auto* matches = r.is_object() ? r.as_object().if_contains("matches") : nullptr;
  if (!matches || !matches->is_array()) return false;
  for (const auto& m : matches->as_array()) {
    const auto* headers = m.is_object() ? m.as_object().if_contains("headers") : nullptr;
    if (!headers || !headers->is_array()) continue;
    for (const auto& h : headers->as_array()) {
      if (!h.is_object()) continue;
      const auto* name = h.as_object().if_contains("name");
      const auto* type = h.as_object().if_contains("type");
      if (is_str(name, "Cookie") && is_str(type, "RegularExpression")) return true;
    }
  }
  return false;
}

// What reconcile compares: the spec without weights, the sticky rules and backendRef filters of
// session affinity, and the Blue/Green mirror filter.
json::value without_routing(json::value spec, const canary& c) {
  if (!spec.is_object()) return spec;
  const bool affinity = c.analysis_or_empty().affinity.has_value();
  const std::string canary_name = c.canary_service_name();
  auto* rules = spec.as_object().if_contains("rules");
  if (!rules || !rules->is_array()) return spec;
  auto& list = rules->as_array();
  for (auto it = list.begin(); it != list.end();) it = affinity && is_sticky(*it) ? list.erase(it) : it + 1;
  for (auto& r : list) {
    if (!r.is_object()) continue;
    if (auto* filters = r.as_object().if_contains("filters"); filters && filters->is_array()) {
      auto& fl = filters->as_array();
      for (auto it = fl.begin(); it != fl.end();) {
        boost::system::error_code ec;
        const auto* name = it->find_pointer("/requestMirror/backendRef/name", ec);
        it = is_str(name, canary_name) ? fl.erase(it) : it + 1;
      }
      if (fl.empty()) r.as_object().erase("filters");
    }
    if (auto* backends = r.as_object().if_contains("backendRefs"); backends && backends->is_array()) {
      for (auto& b : backends->as_array()) {
        if (!b.is_object()) continue;
        b.as_object().erase("weight");
        if (affinity) b.as_object().erase("filters");
      }
    }
  }
  return spec;
}

json::value spec_of(const json::value& obj) {
  if (const auto* s = obj.as_object().if_contains("spec")) return *s;
  return json::object{};
}

std::map<std::string, std::string> string_map(const json::value* v) {
  std::map<std::string, std::string> out;
  if (!v || !v->is_object()) return out;
  for (const auto& [k, val] : v->as_object()) {
    if (val.is_string()) out[std::string(k)] = std::string(val.as_string());
  }
  return out;
}

json::object to_json(const std::map<std::string, std::string>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

std::map<std::string, std::string> apex_labels(const canary& c) {
  return c.spec.service.apex ? c.spec.service.apex->labels : std::map<std::string, std::string>{};
}

std::map<std::string, std::string> apex_annotations(const canary& c) {
  auto a = c.spec.service.apex ? c.spec.service.apex->annotations : std::map<std::string, std::string>{};
  filter_metadata(a);
  return a;
}

std::string where(const canary& c) { return "HTTPRoute " + c.apex_service_name() + "." + c.metadata.namespace_; }

}  // namespace

service_result<std::string> http_route_create_body(const canary& c, std::string_view version) {
  auto spec = build_spec(c, traffic_routes{100, 0, false}, nullptr);
  if (!spec) return fail<std::string>(spec.error());
  json::object meta{{"name", c.apex_service_name()}, {"namespace", c.metadata.namespace_}};
  if (auto l = apex_labels(c); !l.empty()) meta["labels"] = to_json(l);
  meta["annotations"] = to_json(apex_annotations(c));
  meta["ownerReferences"] = json::array{json::parse(canary_owner_reference(c))};
  json::object obj{{"apiVersion", std::string(group) + "/" + std::string(version)},
                   {"kind", "HTTPRoute"},
                   {"metadata", std::move(meta)},
                   {"spec", std::move(*spec)}};
  return service_result<std::string>(boost::system::in_place_value, json::serialize(obj));
}

service_result<traffic_routes> read_routes(const canary& c, std::string_view existing_json) {
  auto v = parse(existing_json);
  if (!v) return fail<traffic_routes>(v.error());
  const std::string primary = c.primary_service_name();
  const std::string canary_name = c.canary_service_name();
  traffic_routes out{0, 0, false};
  bool found = false;
  boost::system::error_code ec;
  const json::value* rules = v->find_pointer("/spec/rules", ec);
  if (rules && rules->is_array()) {
    for (const auto& r : rules->as_array()) {
      if (!r.is_object()) continue;
      if (const auto* filters = r.as_object().if_contains("filters"); filters && filters->is_array()) {
        for (const auto& f : filters->as_array()) {
          const auto* name = f.find_pointer("/requestMirror/backendRef/name", ec);
          if (f.is_object() && is_str(f.as_object().if_contains("type"), "RequestMirror") && is_str(name, canary_name))
            out.mirrored = true;
        }
      }
      const auto* backends = r.as_object().if_contains("backendRefs");
      if (!backends || !backends->is_array()) continue;
      int p = 0, k = 0;
      bool has_canary = false;
      for (const auto& b : backends->as_array()) {
        if (!b.is_object()) continue;
        const auto* name = b.as_object().if_contains("name");
        const auto* w = b.as_object().if_contains("weight");
        const int weight = w && w->is_number() ? w->to_number<int>() : 1;  // the CRD's default
        if (is_str(name, primary)) p = weight;
        if (is_str(name, canary_name)) {
          k = weight;
          has_canary = true;
        }
      }
      // The last rule with the canary backendRef is the weighted one (sticky rules come first).
      if (has_canary) {
        found = true;
        out.primary = p;
        out.canary = k;
      }
    }
  }
  if (!found || (out.primary == 0 && out.canary == 0)) {
    const std::string apex = c.apex_service_name();
    return fail<traffic_routes>(where(c) + " does not contain routes for " + apex + "-primary and " + apex + "-canary");
  }
  return out;
}

write_result http_route_reconcile_body(const canary& c, std::string_view existing_json) {
  auto existing = parse(existing_json);
  if (!existing) return fail<std::optional<std::string>>(existing.error());
  traffic_routes in_force{100, 0, false};
  if (auto r = read_routes(c, existing_json)) in_force = *r;
  auto spec = build_spec(c, in_force, nullptr);
  if (!spec) return fail<std::optional<std::string>>(spec.error());
  json::object& obj = existing->as_object();
  json::object& meta = obj["metadata"].is_object() ? obj["metadata"].as_object() : obj["metadata"].emplace_object();
  const auto current_labels = string_map(meta.if_contains("labels"));
  const auto current_annotations = string_map(meta.if_contains("annotations"));
  const auto labels = apex_labels(c);
  // Annotations other controllers (and kubectl) set stay; ours are added over them.
  auto annotations = current_annotations;
  for (const auto& [k, v] : apex_annotations(c)) annotations[k] = v;
  const json::value current_spec = spec_of(*existing);
  const bool spec_differs = without_routing(current_spec, c) != without_routing(json::value(*spec), c);
  if (!spec_differs && labels == current_labels && annotations == current_annotations) return std::optional<std::string>();
  if (spec_differs) obj["spec"] = std::move(*spec);
  if (labels.empty()) meta.erase("labels");
  else meta["labels"] = to_json(labels);
  meta["annotations"] = to_json(annotations);
  return std::optional<std::string>(json::serialize(obj));
}

write_result http_route_routes_body(const canary& c, std::string_view existing_json, const traffic_routes& routes,
                                    const session_cookies& cookies) {
  auto existing = parse(existing_json);
  if (!existing) return fail<std::optional<std::string>>(existing.error());
  auto spec = build_spec(c, routes, &cookies);
  if (!spec) return fail<std::optional<std::string>>(spec.error());
  if (spec_of(*existing) == json::value(*spec)) return std::optional<std::string>();
  existing->as_object()["spec"] = std::move(*spec);
  return std::optional<std::string>(json::serialize(*existing));
}

}  // namespace canaryd::core::gatewayapi

namespace canaryd::core {

namespace {

// The Gateway API provider on the router design (core/router.hpp).
class gatewayapi_provider final : public route_provider {
 public:
  explicit gatewayapi_provider(std::string_view version)
      : version_(version), kind_{"gateway.networking.k8s.io", std::string(version), "httproutes", "HTTPRoute"} {}

  std::string_view display_name() const override { return "Gateway API"; }
  std::vector<object_kind> kinds() const override { return {kind_}; }
  std::vector<owned_object> objects(const canary& c) const override { return {{kind_, c.apex_service_name(), true}}; }

  service_result<std::string> create_body(const canary& c, const owned_object&) const override {
    return gatewayapi::http_route_create_body(c, version_);
  }
  write_result reconcile_body(const canary& c, const owned_object&, std::string_view existing) const override {
    return gatewayapi::http_route_reconcile_body(c, existing);
  }
  service_result<traffic_routes> read_routes(const canary& c, std::string_view existing) const override {
    return gatewayapi::read_routes(c, existing);
  }
  write_result routes_body(const canary& c, std::string_view existing, const traffic_routes& routes,
                           const session_cookies& cookies) const override {
    return gatewayapi::http_route_routes_body(c, existing, routes, cookies);
  }
  // Flagger's Finalize is a no-op: the HTTPRoute goes with the Canary (ownerReference).
  bool finalize_restores() const override { return false; }
  service_result<finalize_write> finalize_body(const canary&, const owned_object&, std::string_view) const override {
    return finalize_write{};
  }

 private:
  std::string version_;
  object_kind kind_;
};

}  // namespace

std::unique_ptr<route_provider> make_gatewayapi_provider(std::string_view version) {
  return std::make_unique<gatewayapi_provider>(version);
}

}  // namespace canaryd::core
