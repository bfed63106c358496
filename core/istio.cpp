#include "core/istio.hpp"

#include <boost/json.hpp>

#include <map>

#include "core/primary.hpp"
#include "core/router.hpp"

namespace canaryd::core::istio {

namespace json = boost::json;

namespace {

template <class T>
service_result<T> fail(std::string message) {
  return service_result<T>(boost::system::in_place_error, std::move(message));
}

using update_result = service_result<std::optional<std::string>>;

constexpr std::string_view kubectl_annotation = "kubectl.kubernetes.io/last-applied-configuration";

service_result<json::value> parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return fail<json::value>(std::string(what) + " is not valid JSON: " + ec.message());
  return v;
}

// A sub-object the Canary keeps as canonical JSON ("" when absent): null when absent.
json::value sub_object(const std::string& text) {
  if (text.empty()) return nullptr;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(nullptr) : v;
}

json::object destination(const canary& c, const std::string& host, int weight) {
  json::object dest{{"host", host}};
  const auto& svc = c.spec.service;
  if (svc.port_discovery && ((!svc.gateways.empty() && svc.gateways.front() != "mesh") || svc.delegation)) {
    dest["port"] = json::object{{"number", svc.port}};
  }
  json::object d{{"destination", std::move(dest)}};
  if (weight != 0) d["weight"] = weight;  // Go's omitempty
  return d;
}

// GetIstioRewrite: the Istio members of service.rewrite.
json::value istio_rewrite(const canary& c) {
  json::value r = sub_object(c.spec.service.rewrite_json);
  if (!r.is_object()) return nullptr;
  json::object out;
  for (std::string_view k : {"uri", "authority", "uriRegexRewrite"}) {
    if (auto* v = r.as_object().if_contains(k)) out[k] = *v;
  }
  if (out.empty()) return nullptr;
  return out;
}

// mergeMatchConditions(canary, defaults): each canary condition crossed with each default one,
// the default's copy taking the canary's headers and sourceLabels.
json::array merge_match(const json::array& canary_match, const json::array& defaults) {
  if (defaults.empty()) return canary_match;
  json::array out;
  for (const auto& cm : canary_match) {
    for (const auto& d : defaults) {
      json::value merged = d;
      if (cm.is_object() && merged.is_object()) {
        for (std::string_view k : {"headers", "sourceLabels"}) {
          if (auto* v = cm.as_object().if_contains(k)) merged.as_object()[k] = *v;
        }
      }
      out.push_back(std::move(merged));
    }
  }
  return out;
}

// An http route with the service's common fields; absent fields are left out as omitempty does.
json::object http_route(const canary& c, const json::value& match, json::array route) {
  json::object r;
  if (match.is_array() && !match.as_array().empty()) r["match"] = match;
  if (json::value rw = istio_rewrite(c); !rw.is_null()) r["rewrite"] = std::move(rw);
  if (!c.spec.service.timeout.empty()) r["timeout"] = c.spec.service.timeout;
  if (json::value v = sub_object(c.spec.service.retries_json); !v.is_null()) r["retries"] = std::move(v);
  if (json::value v = sub_object(c.spec.service.cors_policy_json); !v.is_null()) r["corsPolicy"] = std::move(v);
  if (json::value v = sub_object(c.spec.service.headers_json); !v.is_null()) r["headers"] = std::move(v);
  r["route"] = std::move(route);
  return r;
}

constexpr std::string_view sticky_route_name = "sticky-route";
constexpr std::string_view primary_sticky_route_name = "sticky-route-primary";

// "<cookie>; Max-Age=<n>" with the sessionAffinity attributes (shared with Gateway API).
std::string set_cookie(const session_affinity& a, const std::string& cookie, long max_age) {
  return set_cookie_value(a, cookie, max_age);
}

// Adds `Set-Cookie: value` to a headers object's response.add (an HTTPRoute's or a destination's).
void add_set_cookie(json::object& holder, const std::string& value) {
  json::value& headers = holder["headers"];
  if (!headers.is_object()) headers = json::object{};
  json::value& response = headers.as_object()["response"];
  if (!response.is_object()) response = json::object{};
  json::value& add = response.as_object()["add"];
  if (!add.is_object()) add = json::object{};
  add.as_object()["Set-Cookie"] = value;
}

// A match on the Cookie header carrying `cookie` ("<name>=<value>"), merged with service.match.
json::array cookie_match(const std::string& cookie, const json::value& service_match) {
  const auto eq = cookie.find('=');
  const std::string name = cookie.substr(0, eq);
  const std::string value = eq == std::string::npos ? std::string() : cookie.substr(eq + 1);
  json::array m{json::object{{"headers", json::object{{"Cookie", json::object{{"regex", ".*" + name + ".*" + value + ".*"}}}}}}};
  return merge_match(m, service_match.is_array() ? service_match.as_array() : json::array{});
}

// `cookies` is null for Reconcile's spec (no sticky routes, as Flagger's newSpec).
service_result<json::object> build_spec(const canary& c, const traffic_routes& routes, const session_cookies* cookies) {
  const auto& svc = c.spec.service;
  const std::string apex = c.apex_service_name();
  const std::string primary = c.primary_service_name();
  const std::string canary_name = c.canary_service_name();
  if (svc.delegation && (!svc.hosts.empty() || !svc.gateways.empty())) {
    return fail<json::object>("VirtualService " + apex + "." + c.metadata.namespace_ +
                              " cannot have hosts and gateways when delegation enabled");
  }
  json::object spec;
  if (!svc.delegation) {
    json::array hosts;
    bool has_apex = false;
    for (const auto& h : svc.hosts) {
      hosts.push_back(json::value(h));
      if (h == apex || h == "*") has_apex = true;
    }
    if (!has_apex) hosts.push_back(json::value(apex));
    json::array gateways;
    for (const auto& g : svc.gateways) gateways.push_back(json::value(g));
    if (gateways.empty()) gateways.push_back("mesh");
    spec["hosts"] = std::move(hosts);
    spec["gateways"] = std::move(gateways);
  }
  const json::value service_match = sub_object(svc.match_json);
  json::array weighted{destination(c, primary, routes.primary), destination(c, canary_name, routes.canary)};
  json::array http;
  const canary_analysis& a = c.analysis_or_empty();
  if (!a.match.empty()) {
    json::value analysis_match = sub_object(a.match_json);
    json::array defaults = service_match.is_array() ? service_match.as_array() : json::array{};
    json::array merged = merge_match(analysis_match.is_array() ? analysis_match.as_array() : json::array{}, defaults);
    http.push_back(http_route(c, merged, std::move(weighted)));
    http.push_back(http_route(c, service_match, json::array{destination(c, primary, routes.primary)}));
  } else {
    json::object r = http_route(c, service_match, std::move(weighted));
    if (cookies && a.affinity && !a.affinity->cookie_name.empty()) {
      // getSessionAffinityRouteRules: a sticky route before the weighted one.
      const session_affinity& sa = *a.affinity;
      json::object sticky = r;
      sticky["name"] = sticky_route_name;
      if (routes.canary != 0 && !cookies->canary.empty()) {
        for (auto& d : r["route"].as_array()) {
          const std::string host(d.at_pointer("/destination/host").as_string());
          if (host == canary_name) add_set_cookie(d.as_object(), set_cookie(sa, cookies->canary, sa.max_age));
          if (host == primary && !cookies->primary.empty()) {
            const long interval_s = static_cast<long>(c.analysis_interval().count() / 1000);
            add_set_cookie(d.as_object(), set_cookie(sa, cookies->primary, interval_s));
          }
        }
        sticky["match"] = cookie_match(cookies->canary, service_match);
        sticky["route"] = json::array{destination(c, primary, 0), destination(c, canary_name, 100)};
      } else if (routes.canary == 0 && !cookies->previous.empty()) {
        sticky["match"] = cookie_match(cookies->previous, service_match);
        add_set_cookie(sticky, cookies->previous + "; Max-Age=-1");
      }
      http.push_back(std::move(sticky));
      if (routes.canary != 0 && !cookies->primary.empty()) {
        json::object primary_sticky = r;
        primary_sticky["name"] = primary_sticky_route_name;
        primary_sticky["match"] = cookie_match(cookies->primary, service_match);
        primary_sticky["route"] = json::array{destination(c, primary, 100)};
        http.push_back(std::move(primary_sticky));
      }
    }
    http.push_back(std::move(r));
    if (routes.mirrored) {
      // On http[0], as Flagger does (the sticky route when there is one).
      json::object& first = http[0].as_object();
      first["mirror"] = json::object{{"host", canary_name}};
      if (a.mirror_weight > 0) first["mirrorPercentage"] = json::object{{"value", a.mirror_weight}};
    }
  }
  spec["http"] = std::move(http);
  return spec;
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

// The spec with weights and mirrors taken out: what reconcile compares.
json::value without_routing(json::value spec) {
  if (!spec.is_object()) return spec;
  if (auto* http = spec.as_object().if_contains("http"); http && http->is_array()) {
    auto& routes = http->as_array();
    for (auto it = routes.begin(); it != routes.end();) {
      const json::value* name = it->is_object() ? it->as_object().if_contains("name") : nullptr;
      const bool sticky = name && name->is_string() &&
                          (name->as_string() == sticky_route_name || name->as_string() == primary_sticky_route_name);
      it = sticky ? routes.erase(it) : it + 1;
    }
    for (auto& r : routes) {
      if (!r.is_object()) continue;
      r.as_object().erase("mirror");
      r.as_object().erase("mirrorPercentage");
      if (auto* dests = r.as_object().if_contains("route"); dests && dests->is_array()) {
        for (auto& d : dests->as_array()) {
          if (!d.is_object()) continue;
          d.as_object().erase("weight");
          d.as_object().erase("headers");  // session affinity's Set-Cookie
        }
      }
    }
  }
  return spec;
}

json::value spec_of(const json::value& obj) {
  if (auto* s = obj.as_object().if_contains("spec")) return *s;
  return json::object{};
}

std::map<std::string, std::string> apex_labels(const canary& c) {
  return c.spec.service.apex ? c.spec.service.apex->labels : std::map<std::string, std::string>{};
}

std::map<std::string, std::string> apex_annotations(const canary& c) {
  auto a = c.spec.service.apex ? c.spec.service.apex->annotations : std::map<std::string, std::string>{};
  filter_metadata(a);
  return a;
}

}  // namespace

service_result<std::string> virtual_service_spec(const canary& c, const traffic_routes& routes,
                                                 const session_cookies& cookies) {
  auto spec = build_spec(c, routes, &cookies);
  if (!spec) return fail<std::string>(spec.error());
  return service_result<std::string>(boost::system::in_place_value, json::serialize(*spec));
}

service_result<traffic_routes> read_routes(const canary& c, std::string_view virtual_service_json) {
  auto v = parse(virtual_service_json, "VirtualService");
  if (!v) return fail<traffic_routes>(v.error());
  const std::string primary = c.primary_service_name();
  const std::string canary_name = c.canary_service_name();
  auto host_of = [](const json::value& d) -> std::string {
    const json::object* o = d.if_object();
    const json::value* dest = o ? o->if_contains("destination") : nullptr;
    const json::value* host = dest && dest->is_object() ? dest->as_object().if_contains("host") : nullptr;
    return host && host->is_string() ? std::string(host->as_string()) : std::string();
  };
  auto weight_of = [](const json::value& d) -> int {
    const json::value* w = d.is_object() ? d.as_object().if_contains("weight") : nullptr;
    return w && w->is_number() ? w->to_number<int>() : 0;
  };
  // The http route that has the canary destination (the last such one, as Flagger's loop).
  const json::object* found = nullptr;
  const json::value* spec = v->is_object() ? v->as_object().if_contains("spec") : nullptr;
  const json::value* http = spec && spec->is_object() ? spec->as_object().if_contains("http") : nullptr;
  if (http && http->is_array()) {
    for (const auto& r : http->as_array()) {
      const json::value* dests = r.is_object() ? r.as_object().if_contains("route") : nullptr;
      if (!dests || !dests->is_array()) continue;
      for (const auto& d : dests->as_array()) {
        if (host_of(d) == canary_name) {
          found = &r.as_object();
          break;
        }
      }
    }
  }
  traffic_routes out{0, 0, false};
  if (found) {
    for (const auto& d : found->at("route").as_array()) {
      if (host_of(d) == primary) out.primary = weight_of(d);
      if (host_of(d) == canary_name) out.canary = weight_of(d);
    }
    if (const json::value* m = found->if_contains("mirror"); m && m->is_object()) {
      const json::value* h = m->as_object().if_contains("host");
      out.mirrored = h && h->is_string() && !h->as_string().empty();
    }
  }
  if (out.primary == 0 && out.canary == 0) {
    const std::string apex = c.apex_service_name();
    return fail<traffic_routes>("VirtualService " + apex + "." + c.metadata.namespace_ + " does not contain routes for " +
                                apex + "-primary and " + apex + "-canary");
  }
  return out;
}

service_result<std::string> virtual_service_create_body(const canary& c) {
  auto spec = build_spec(c, traffic_routes{100, 0, false}, nullptr);
  if (!spec) return fail<std::string>(spec.error());
  json::object meta{{"name", c.apex_service_name()}, {"namespace", c.metadata.namespace_}};
  if (auto l = apex_labels(c); !l.empty()) meta["labels"] = to_json(l);
  meta["annotations"] = to_json(apex_annotations(c));
  meta["ownerReferences"] = json::array{json::parse(canary_owner_reference(c))};
  json::object obj{{"apiVersion", api_version}, {"kind", "VirtualService"}, {"metadata", std::move(meta)},
                   {"spec", std::move(*spec)}};
  return service_result<std::string>(boost::system::in_place_value, json::serialize(obj));
}

update_result virtual_service_reconcile_body(const canary& c, std::string_view existing_json) {
  auto existing = parse(existing_json, "VirtualService");
  if (!existing) return fail<std::optional<std::string>>(existing.error());
  if (!existing->is_object()) return fail<std::optional<std::string>>("VirtualService is not a JSON object");
  // The weights and mirror in force stay (see the header's quirk note); a VirtualService without
  // Flagger's routes yet (taken over from the user) starts at 100/0.
  traffic_routes in_force{100, 0, false};
  if (auto r = read_routes(c, existing_json)) in_force = *r;
  auto spec = build_spec(c, in_force, nullptr);
  if (!spec) return fail<std::optional<std::string>>(spec.error());

  json::object& obj = existing->as_object();
  json::object& meta = obj["metadata"].is_object() ? obj["metadata"].as_object() : obj["metadata"].emplace_object();
  const auto current_labels = string_map(meta.if_contains("labels"));
  const auto current_annotations = string_map(meta.if_contains("annotations"));
  auto labels = apex_labels(c);
  auto annotations = apex_annotations(c);
  for (std::string_view keep : {kubectl_annotation, original_configuration_annotation}) {
    if (auto it = current_annotations.find(std::string(keep)); it != current_annotations.end()) annotations[it->first] = it->second;
  }
  const json::value current_spec = spec_of(*existing);
  const bool spec_differs = without_routing(current_spec) != without_routing(json::value(*spec));
  if (!spec_differs && labels == current_labels && annotations == current_annotations) return std::optional<std::string>();
  // [quirk] Flagger stores the spec it replaces on every spec change, so a second change of the
  // Canary overwrites the user's original with Flagger's own spec; the first one is kept here.
  if (spec_differs && !annotations.contains(std::string(kubectl_annotation)) &&
      !annotations.contains(std::string(original_configuration_annotation))) {
    annotations[std::string(original_configuration_annotation)] = json::serialize(current_spec);
  }
  obj["spec"] = std::move(*spec);
  if (labels.empty()) meta.erase("labels");
  else meta["labels"] = to_json(labels);
  meta["annotations"] = to_json(annotations);
  return std::optional<std::string>(json::serialize(obj));
}

update_result virtual_service_routes_body(const canary& c, std::string_view existing_json, const traffic_routes& routes,
                                          const session_cookies& cookies) {
  auto existing = parse(existing_json, "VirtualService");
  if (!existing) return fail<std::optional<std::string>>(existing.error());
  if (!existing->is_object()) return fail<std::optional<std::string>>("VirtualService is not a JSON object");
  auto spec = build_spec(c, routes, &cookies);
  if (!spec) return fail<std::optional<std::string>>(spec.error());
  json::value current = spec_of(*existing);
  json::object wanted = current.is_object() ? current.as_object() : json::object{};
  wanted["http"] = (*spec)["http"];
  if (current == json::value(wanted)) return std::optional<std::string>();
  existing->as_object()["spec"] = std::move(wanted);
  return std::optional<std::string>(json::serialize(*existing));
}

update_result virtual_service_finalize_body(const canary& c, std::string_view existing_json) {
  auto existing = parse(existing_json, "VirtualService");
  if (!existing) return fail<std::optional<std::string>>(existing.error());
  if (!existing->is_object()) return fail<std::optional<std::string>>("VirtualService is not a JSON object");
  const auto annotations = string_map(existing->as_object()["metadata"].is_object()
                                          ? existing->as_object()["metadata"].as_object().if_contains("annotations")
                                          : nullptr);
  const std::string where = "VirtualService " + c.apex_service_name() + "." + c.metadata.namespace_;
  json::value stored;
  if (auto it = annotations.find(std::string(kubectl_annotation)); it != annotations.end()) {
    auto v = parse(it->second, "annotation");
    if (!v || !v->is_object()) return fail<std::optional<std::string>>(where + " failed to unMarshal annotation " + it->first);
    stored = spec_of(*v);
  } else if (auto it2 = annotations.find(std::string(original_configuration_annotation)); it2 != annotations.end()) {
    auto v = parse(it2->second, "annotation");
    if (!v) return fail<std::optional<std::string>>(where + " failed to unMarshal annotation " + it2->first);
    stored = *v;
  } else {
    return std::optional<std::string>();
  }
  if (spec_of(*existing) == stored) return std::optional<std::string>();
  existing->as_object()["spec"] = std::move(stored);
  return std::optional<std::string>(json::serialize(*existing));
}

namespace {

json::object destination_rule_spec(const canary& c, std::string_view host) {
  json::object spec{{"host", host}};
  if (json::value tp = sub_object(c.spec.service.traffic_policy_json); !tp.is_null()) spec["trafficPolicy"] = std::move(tp);
  return spec;
}

}  // namespace

std::string destination_rule_create_body(const canary& c, std::string_view host) {
  json::object meta{{"name", host}, {"namespace", c.metadata.namespace_}};
  meta["ownerReferences"] = json::array{json::parse(canary_owner_reference(c))};
  json::object obj{{"apiVersion", api_version}, {"kind", "DestinationRule"}, {"metadata", std::move(meta)},
                   {"spec", destination_rule_spec(c, host)}};
  return json::serialize(obj);
}

update_result destination_rule_update_body(const canary& c, std::string_view host, std::string_view existing_json) {
  auto existing = parse(existing_json, "DestinationRule");
  if (!existing) return fail<std::optional<std::string>>(existing.error());
  if (!existing->is_object()) return fail<std::optional<std::string>>("DestinationRule is not a JSON object");
  json::value wanted = destination_rule_spec(c, host);
  if (spec_of(*existing) == wanted) return std::optional<std::string>();
  existing->as_object()["spec"] = std::move(wanted);
  return std::optional<std::string>(json::serialize(*existing));
}

}  // namespace canaryd::core::istio

namespace canaryd::core {

namespace {

const object_kind virtual_service_kind{"networking.istio.io", "v1beta1", "virtualservices", "VirtualService"};
const object_kind destination_rule_kind{"networking.istio.io", "v1beta1", "destinationrules", "DestinationRule"};

// The istio provider on the router design (core/router.hpp): the functions above, per object.
class istio_provider final : public route_provider {
 public:
  std::string_view display_name() const override { return "Istio"; }
  std::vector<object_kind> kinds() const override { return {virtual_service_kind, destination_rule_kind}; }

  // Flagger's order: the canary's DestinationRule, the primary's, then the VirtualService.
  std::vector<owned_object> objects(const canary& c) const override {
    return {{destination_rule_kind, c.canary_service_name(), false},
            {destination_rule_kind, c.primary_service_name(), false},
            {virtual_service_kind, c.apex_service_name(), true}};
  }

  service_result<std::string> create_body(const canary& c, const owned_object& o) const override {
    if (o.kind == destination_rule_kind) {
      return service_result<std::string>(boost::system::in_place_value, istio::destination_rule_create_body(c, o.name));
    }
    return istio::virtual_service_create_body(c);
  }

  write_result reconcile_body(const canary& c, const owned_object& o, std::string_view existing) const override {
    if (o.kind == destination_rule_kind) return istio::destination_rule_update_body(c, o.name, existing);
    return istio::virtual_service_reconcile_body(c, existing);
  }

  service_result<traffic_routes> read_routes(const canary& c, std::string_view existing) const override {
    return istio::read_routes(c, existing);
  }

  write_result routes_body(const canary& c, std::string_view existing, const traffic_routes& routes,
                           const session_cookies& cookies) const override {
    return istio::virtual_service_routes_body(c, existing, routes, cookies);
  }

  // Flagger restores the VirtualService only; the DestinationRules go with the Canary.
  service_result<finalize_write> finalize_body(const canary& c, const owned_object& o,
                                               std::string_view existing) const override {
    finalize_write w;
    if (o.kind == destination_rule_kind) return w;
    auto body = istio::virtual_service_finalize_body(c, existing);
    if (!body) return service_result<finalize_write>(boost::system::in_place_error, body.error());
    w.body = std::move(*body);
    if (!w.body) {
      w.warning = "VirtualService " + c.apex_service_name() + "." + c.metadata.namespace_ +
                  " original configuration not found, unable to revert";
    }
    return w;
  }
};

}  // namespace

std::unique_ptr<route_provider> make_istio_provider() { return std::make_unique<istio_provider>(); }

}  // namespace canaryd::core
