#include "sim/world/gateway_api.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>
#include <tuple>

namespace kubesim::world::gateway_api {

namespace json = boost::json;

namespace {

constexpr std::size_t max_regex_input = 4096;

const json::object* obj_field(const json::object* o, std::string_view key) {
  if (!o) return nullptr;
  auto it = o->find(key);
  return it != o->end() && it->value().is_object() ? &it->value().get_object() : nullptr;
}

const json::array* arr_field(const json::object* o, std::string_view key) {
  if (!o) return nullptr;
  auto it = o->find(key);
  return it != o->end() && it->value().is_array() ? &it->value().get_array() : nullptr;
}

// A string field; `fallback` when absent or not a string.
std::string_view str_field(const json::object* o, std::string_view key, std::string_view fallback = {}) {
  if (!o) return fallback;
  auto it = o->find(key);
  return it != o->end() && it->value().is_string() ? std::string_view(it->value().get_string()) : fallback;
}

std::optional<double> num_field(const json::object* o, std::string_view key) {
  if (!o) return std::nullopt;
  auto it = o->find(key);
  if (it == o->end()) return std::nullopt;
  const auto& v = it->value();
  if (v.is_double()) return v.get_double();
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return std::nullopt;
}

const json::object* metadata(const json::object& o) { return obj_field(&o, "metadata"); }
std::string_view name_of(const json::object& o) { return str_field(metadata(o), "name"); }
std::string_view namespace_of(const json::object& o) { return str_field(metadata(o), "namespace"); }

std::string key(std::string_view ns, std::string_view name) {
  std::string k(ns);
  k += '/';
  k += name;
  return k;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Full-match regular expressions (ECMAScript, close enough to RE2 for the patterns routers
// write), compiled once. One thread only.
bool regex_full_match(const std::string& pattern, std::string_view value, std::vector<std::string>& problems) {
  static std::unordered_map<std::string, std::optional<std::regex>> cache;
  if (cache.size() > 4096) cache.clear();
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    std::optional<std::regex> re;
    try {
      re.emplace(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      problems.push_back("invalid regular expression \"" + pattern + "\": " + e.what());
    }
    it = cache.emplace(pattern, std::move(re)).first;
  }
  if (!it->second) return false;
  // libstdc++'s regex recurses per character: keep stack use bounded.
  if (value.size() > max_regex_input) {
    problems.push_back("a value of " + std::to_string(value.size()) + " bytes is too long to match a regex against");
    return false;
  }
  return std::regex_match(value.begin(), value.end(), *it->second);
}

std::string_view strip_port(std::string_view host) {
  if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(']') == std::string_view::npos)
    return host.substr(0, colon);
  return host;
}

// The listener's hostname if it covers `host`, as a specificity: 2 exact, 1 wildcard (longer
// wins), 0 none set; nullopt when it does not cover the host.
std::optional<std::pair<int, std::size_t>> listener_fit(const json::object& listener, std::string_view host) {
  auto h = str_field(&listener, "hostname");
  if (h.empty()) return std::pair{0, std::size_t{0}};
  if (!hostname_covers(h, host)) return std::nullopt;
  return std::pair{h.starts_with("*") ? 1 : 2, h.size()};
}

bool http_listener(const json::object& listener) {
  auto p = str_field(&listener, "protocol");
  return p == "HTTP" || p == "HTTPS";
}

// parentRef group/kind/namespace with the spec's defaults.
struct parent_ref {
  std::string_view group, kind, ns, name, section;
  std::optional<double> port;
};

parent_ref read_parent(const json::object& p, std::string_view route_ns) {
  parent_ref r;
  r.group = str_field(&p, "group", group);
  r.kind = str_field(&p, "kind", "Gateway");
  r.ns = str_field(&p, "namespace", route_ns);
  r.name = str_field(&p, "name");
  r.section = str_field(&p, "sectionName");
  r.port = num_field(&p, "port");
  return r;
}

bool selector_matches(const json::object* selector, const json::object* labels, std::vector<std::string>& problems) {
  if (!selector) return true;  // an empty selector selects everything
  if (auto* ml = obj_field(selector, "matchLabels"))
    for (const auto& [k, v] : *ml) {
      if (!labels) return false;
      auto it = labels->find(k);
      if (it == labels->end() || it->value() != v) return false;
    }
  if (auto* exprs = arr_field(selector, "matchExpressions"))
    for (const auto& e : *exprs) {
      if (!e.is_object()) continue;
      const auto& eo = e.get_object();
      auto k = str_field(&eo, "key");
      auto op = str_field(&eo, "operator");
      const json::value* have = nullptr;
      if (labels)
        if (auto it = labels->find(k); it != labels->end()) have = &it->value();
      bool in = false;
      if (auto* vals = arr_field(&eo, "values"))
        for (const auto& v : *vals)
          if (have && *have == v) in = true;
      if (op == "In" && !in) return false;
      if (op == "NotIn" && in) return false;
      if (op == "Exists" && !have) return false;
      if (op == "DoesNotExist" && have) return false;
      if (op != "In" && op != "NotIn" && op != "Exists" && op != "DoesNotExist") {
        problems.push_back("selector operator \"" + std::string(op) + "\" is unknown");
        return false;
      }
    }
  return true;
}

// A header value's Set-Cookie effect: ("name=value", deleted?).
std::optional<std::pair<std::string, bool>> parse_set_cookie(std::string_view v) {
  auto semi = v.find(';');
  auto pair = trim(v.substr(0, semi));
  if (pair.empty() || pair.find('=') == std::string_view::npos) return std::nullopt;
  bool deleted = false;
  std::string_view rest = semi == std::string_view::npos ? std::string_view{} : v.substr(semi + 1);
  while (!rest.empty()) {
    auto next = rest.find(';');
    auto attr = trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next + 1);
    if (attr.size() > 8 && iequals(attr.substr(0, 8), "max-age=")) {
      auto n = trim(attr.substr(8));
      deleted = !n.empty() && (n.front() == '-' || n == "0");
    }
  }
  return std::pair{std::string(pair), deleted};
}

// The effects of one list of filters on a share of requests (rule-level or per backend).
struct filter_effects {
  std::optional<int> answer;                 // RequestRedirect / unresolvable filter
  std::string path;                          // rewritten path, empty when unchanged
  std::vector<std::string> set_cookies, delete_cookies;
  struct mirror {
    const json::object* backend = nullptr;   // the mirror's backendRef
    double fraction = 1;
  };
  std::vector<mirror> mirrors;
};

// The path after a URLRewrite, given the PathPrefix that matched (for ReplacePrefixMatch).
std::string rewrite_path(const json::object& path_modifier, const std::string& path, const json::object* matched_path) {
  auto type = str_field(&path_modifier, "type");
  if (type == "ReplaceFullPath") return std::string(str_field(&path_modifier, "replaceFullPath", "/"));
  if (type == "ReplacePrefixMatch") {
    std::string prefix(str_field(matched_path, "value", "/"));
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    std::string replacement(str_field(&path_modifier, "replacePrefixMatch", "/"));
    std::string rest = prefix == "/" ? path : path.substr(std::min(prefix.size(), path.size()));
    if (replacement.ends_with('/') && rest.starts_with('/')) rest.erase(0, 1);
    std::string out = replacement + rest;
    if (out.empty()) out = "/";
    return out;
  }
  return path;
}

void apply_filters(const json::array* filters, simulated_request& req, const json::object* matched_path,
                   filter_effects& fx, std::vector<std::string>& problems) {
  if (!filters) return;
  for (const auto& f : *filters) {
    if (!f.is_object()) continue;
    const auto& fo = f.get_object();
    auto type = str_field(&fo, "type");
    if (type == "RequestHeaderModifier") {
      auto* m = obj_field(&fo, "requestHeaderModifier");
      if (auto* set = arr_field(m, "set"))
        for (const auto& h : *set)
          if (h.is_object()) {
            auto name = lower(str_field(&h.get_object(), "name"));
            std::erase_if(req.headers, [&](const auto& kv) { return kv.name == name; });
            req.headers.push_back({name, std::string(str_field(&h.get_object(), "value"))});
          }
      if (auto* add = arr_field(m, "add"))
        for (const auto& h : *add)
          if (h.is_object()) {
            auto name = lower(str_field(&h.get_object(), "name"));
            auto value = std::string(str_field(&h.get_object(), "value"));
            auto it = std::find_if(req.headers.begin(), req.headers.end(), [&](const auto& kv) { return kv.name == name; });
            if (it != req.headers.end()) it->value += "," + value;
            else req.headers.push_back({name, value});
          }
      if (auto* rm = arr_field(m, "remove"))
        for (const auto& h : *rm)
          if (h.is_string()) {
            auto name = lower(h.get_string());
            std::erase_if(req.headers, [&](const auto& kv) { return kv.name == name; });
          }
    } else if (type == "ResponseHeaderModifier") {
      auto* m = obj_field(&fo, "responseHeaderModifier");
      for (auto list : {"set", "add"})
        if (auto* hs = arr_field(m, list))
          for (const auto& h : *hs) {
            if (!h.is_object() || !iequals(str_field(&h.get_object(), "name"), "set-cookie")) continue;
            if (auto c = parse_set_cookie(str_field(&h.get_object(), "value")))
              (c->second ? fx.delete_cookies : fx.set_cookies).push_back(c->first);
          }
    } else if (type == "RequestMirror") {
      auto* m = obj_field(&fo, "requestMirror");
      filter_effects::mirror mi;
      mi.backend = obj_field(m, "backendRef");
      if (auto pct = num_field(m, "percent")) {
        mi.fraction = std::clamp(*pct, 0.0, 100.0) / 100.0;
      } else if (auto* frac = obj_field(m, "fraction")) {
        double num = num_field(frac, "numerator").value_or(0);
        double den = num_field(frac, "denominator").value_or(100);
        mi.fraction = den > 0 ? std::clamp(num / den, 0.0, 1.0) : 0.0;
      }
      if (mi.backend) fx.mirrors.push_back(mi);
    } else if (type == "RequestRedirect") {
      auto code = num_field(obj_field(&fo, "requestRedirect"), "statusCode").value_or(302);
      fx.answer = static_cast<int>(std::clamp(code, 100.0, 599.0));
      return;
    } else if (type == "URLRewrite") {
      if (auto* p = obj_field(obj_field(&fo, "urlRewrite"), "path")) {
        req.path = rewrite_path(*p, req.path, matched_path);
        fx.path = req.path;
      }
    } else if (type == "ExtensionRef") {
      problems.push_back("an ExtensionRef filter cannot be resolved by kubesim; its requests are answered 500");
      fx.answer = 500;
      return;
    }
    // CORS and filters of later releases do not change a simple GET's routing.
  }
}

}  // namespace

bool hostname_covers(std::string_view pattern, std::string_view host) {
  host = strip_port(host);
  if (pattern.starts_with("*.")) {
    auto suffix = pattern.substr(1);  // ".example.com": one or more labels before it
    return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  return iequals(pattern, host);
}

bool path_matches(const json::object* m, std::string_view path, std::vector<std::string>& problems) {
  auto type = str_field(m, "type", "PathPrefix");
  std::string value(str_field(m, "value", "/"));
  if (type == "Exact") return path == value;
  if (type == "RegularExpression") return regex_full_match(value, path, problems);
  if (type != "PathPrefix") {
    problems.push_back("path match type \"" + std::string(type) + "\" is unknown");
    return false;
  }
  // Element-wise: "/abc" matches "/abc", "/abc/" and "/abc/def", not "/abcd"; a trailing "/"
  // of the value is ignored.
  while (value.size() > 1 && value.back() == '/') value.pop_back();
  if (value == "/") return true;
  return path == value || (path.starts_with(value) && path.size() > value.size() && path[value.size()] == '/');
}

bool route_match(const json::object& m, const simulated_request& req, std::vector<std::string>& problems) {
  if (!path_matches(obj_field(&m, "path"), req.path, problems)) return false;
  if (auto method = str_field(&m, "method"); !method.empty() && method != req.method) return false;
  if (auto* hs = arr_field(&m, "headers")) {
    std::vector<std::string> seen;
    for (const auto& h : *hs) {
      if (!h.is_object()) continue;
      const auto& ho = h.get_object();
      auto name = lower(str_field(&ho, "name"));
      // Only the first entry of an equivalent (case-insensitive) name counts.
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
      seen.push_back(name);
      auto have = canaryd::http::find_header(req.headers, name);
      if (!have) return false;
      std::string want(str_field(&ho, "value"));
      auto type = str_field(&ho, "type", "Exact");
      if (type == "RegularExpression") {
        if (!regex_full_match(want, *have, problems)) return false;
      } else if (*have != want) {
        return false;
      }
    }
  }
  if (auto* qs = arr_field(&m, "queryParams")) {
    std::vector<std::string> seen;
    for (const auto& q : *qs) {
      if (!q.is_object()) continue;
      const auto& qo = q.get_object();
      std::string name(str_field(&qo, "name"));
      if (std::find(seen.begin(), seen.end(), name) != seen.end()) continue;
      seen.push_back(name);
      const std::string* have = nullptr;
      for (const auto& [k, v] : req.query)
        if (k == name) {
          have = &v;
          break;
        }
      if (!have) return false;
      std::string want(str_field(&qo, "value"));
      if (str_field(&qo, "type", "Exact") == "RegularExpression") {
        if (!regex_full_match(want, *have, problems)) return false;
      } else if (*have != want) {
        return false;
      }
    }
  }
  return true;
}

router::router(const cluster_objects& objs) {
  std::set<std::string> seen;  // uids: one object may be listed under several served versions
  auto fresh = [&seen](const json::object& o) {
    auto uid = std::string(str_field(metadata(o), "uid"));
    if (uid.empty()) uid = "name:" + std::string(str_field(&o, "kind")) + ":" + key(namespace_of(o), name_of(o));
    return seen.insert(uid).second;
  };
  for (const auto& o : objs.http_routes) {
    if (!o || !fresh(*o)) continue;
    route_info r;
    r.obj = o.get();
    r.ns = namespace_of(*o);
    r.name = name_of(*o);
    r.created = str_field(metadata(*o), "creationTimestamp");
    routes_.push_back(std::move(r));
  }
  std::sort(routes_.begin(), routes_.end(), [](const route_info& a, const route_info& b) {
    return std::tie(a.created, a.ns, a.name) < std::tie(b.created, b.ns, b.name);
  });
  std::vector<std::pair<std::string, const json::object*>> gws;
  for (const auto& o : objs.gateways)
    if (o && fresh(*o))
      gws.emplace_back(std::string(str_field(metadata(*o), "creationTimestamp")) + "\n" + key(namespace_of(*o), name_of(*o)),
                       o.get());
  std::sort(gws.begin(), gws.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, g] : gws) gateways_.push_back(g);
  for (const auto& o : objs.reference_grants)
    if (o && fresh(*o)) grants_.push_back(o.get());
  for (const auto& o : objs.namespaces)
    if (o) namespaces_.emplace(std::string(name_of(*o)), o.get());

  // Backends: Services named by backendRefs and mirrors that are not the route's Service parent.
  for (const auto& r : routes_) {
    auto* spec = obj_field(r.obj, "spec");
    std::set<std::string> parents;
    if (auto* prs = arr_field(spec, "parentRefs"))
      for (const auto& p : *prs)
        if (p.is_object()) {
          auto pr = read_parent(p.get_object(), r.ns);
          if (pr.kind == "Service" && pr.group.empty()) {
            parents.insert(key(pr.ns, pr.name));
            service_parents_.insert(key(pr.ns, pr.name));
          }
        }
    auto note = [&](const json::object* ref) {
      if (!ref || str_field(ref, "kind", "Service") != "Service" || !str_field(ref, "group").empty()) return;
      auto k = key(str_field(ref, "namespace", r.ns), str_field(ref, "name"));
      if (!parents.contains(k)) backends_.insert(k);
    };
    auto note_filters = [&](const json::array* filters) {
      if (!filters) return;
      for (const auto& f : *filters)
        if (f.is_object() && str_field(&f.get_object(), "type") == "RequestMirror")
          note(obj_field(obj_field(&f.get_object(), "requestMirror"), "backendRef"));
    };
    if (auto* rules = arr_field(spec, "rules"))
      for (const auto& rule : *rules) {
        if (!rule.is_object()) continue;
        note_filters(arr_field(&rule.get_object(), "filters"));
        if (auto* brs = arr_field(&rule.get_object(), "backendRefs"))
          for (const auto& b : *brs)
            if (b.is_object()) {
              note(&b.get_object());
              note_filters(arr_field(&b.get_object(), "filters"));
            }
      }
  }
}

std::string router::client_host(const json::object& gateway) const {
  if (auto* a = obj_field(metadata(gateway), "annotations")) {
    auto h = trim(str_field(a, hostname_annotation));
    if (!h.empty()) return std::string(h);
  }
  if (auto* ls = arr_field(obj_field(&gateway, "spec"), "listeners"))
    for (const auto& l : *ls)
      if (l.is_object() && http_listener(l.get_object())) {
        auto h = str_field(&l.get_object(), "hostname");
        if (!h.empty() && !h.starts_with("*")) return std::string(h);
        break;
      }
  auto gns = namespace_of(gateway);
  auto gname = name_of(gateway);
  for (const auto& r : routes_) {
    auto* spec = obj_field(r.obj, "spec");
    bool attached = false;
    if (auto* prs = arr_field(spec, "parentRefs"))
      for (const auto& p : *prs)
        if (p.is_object()) {
          auto pr = read_parent(p.get_object(), r.ns);
          if (pr.group == group && pr.kind == "Gateway" && pr.ns == gns && pr.name == gname) attached = true;
        }
    if (!attached) continue;
    if (auto* hs = arr_field(spec, "hostnames"))
      for (const auto& h : *hs)
        if (h.is_string() && !h.get_string().starts_with("*")) return std::string(h.get_string());
  }
  return std::string(gname) + "." + std::string(gns);
}

routing_decision router::through_gateway(const json::object& gateway, const simulated_request& req) const {
  routing_decision d;
  auto gns = std::string(namespace_of(gateway));
  auto gname = std::string(name_of(gateway));
  auto host = std::string(strip_port(req.authority));
  // The listener: HTTP(S), the best hostname fit.
  const json::object* listener = nullptr;
  std::pair<int, std::size_t> best{-1, 0};
  if (auto* ls = arr_field(obj_field(&gateway, "spec"), "listeners"))
    for (const auto& l : *ls) {
      if (!l.is_object() || !http_listener(l.get_object())) continue;
      auto fit = listener_fit(l.get_object(), host);
      if (fit && *fit > best) {
        best = *fit;
        listener = &l.get_object();
      }
    }
  if (!listener) {
    d.router = "Gateway " + key(gns, gname);
    d.problems.push_back("Gateway " + key(gns, gname) + " has no HTTP listener for host \"" + host + "\"");
    d.answered.push_back({1.0, 404});
    return d;
  }
  auto lname = str_field(listener, "name");
  auto lport = num_field(listener, "port");
  // allowedRoutes: namespaces (Same by default) and kinds (HTTPRoute is allowed on HTTP(S)).
  auto* allowed = obj_field(listener, "allowedRoutes");
  auto* from_ns = obj_field(allowed, "namespaces");
  auto from = str_field(from_ns, "from", "Same");
  bool kind_ok = true;
  if (auto* kinds = arr_field(allowed, "kinds"); kinds && !kinds->empty()) {
    kind_ok = false;
    for (const auto& k : *kinds)
      if (k.is_object() && str_field(&k.get_object(), "kind") == "HTTPRoute" &&
          str_field(&k.get_object(), "group", group) == group)
        kind_ok = true;
  }
  std::vector<const route_info*> attached;
  if (kind_ok)
    for (const auto& r : routes_) {
      if (from == "Same" && r.ns != gns) continue;
      if (from == "Selector") {
        auto ns = namespaces_.find(r.ns);
        const json::object* labels = ns == namespaces_.end() ? nullptr : obj_field(metadata(*ns->second), "labels");
        if (!selector_matches(obj_field(from_ns, "selector"), labels, d.problems)) continue;
      } else if (from != "Same" && from != "All") {
        continue;
      }
      bool ok = false;
      if (auto* prs = arr_field(obj_field(r.obj, "spec"), "parentRefs"))
        for (const auto& p : *prs) {
          if (!p.is_object()) continue;
          auto pr = read_parent(p.get_object(), r.ns);
          if (pr.group != group || pr.kind != "Gateway" || pr.ns != gns || pr.name != gname) continue;
          if (!pr.section.empty() && pr.section != lname) continue;
          if (pr.port && lport && *pr.port != *lport) continue;
          ok = true;
        }
      if (ok) attached.push_back(&r);
    }
  d = decide(attached, host, listener, req);
  return d;
}

bool router::routes_service(std::string_view ns, std::string_view name) const {
  return service_parents_.contains(key(ns, name));
}

std::optional<routing_decision> router::for_service(std::string_view ns, std::string_view name,
                                                    const simulated_request& req) const {
  std::vector<const route_info*> attached;
  for (const auto& r : routes_) {
    bool ok = false;
    if (auto* prs = arr_field(obj_field(r.obj, "spec"), "parentRefs"))
      for (const auto& p : *prs)
        if (p.is_object()) {
          auto pr = read_parent(p.get_object(), r.ns);
          if (pr.group.empty() && pr.kind == "Service" && pr.ns == ns && pr.name == name) ok = true;
        }
    if (ok) attached.push_back(&r);
  }
  if (attached.empty()) return std::nullopt;
  return decide(attached, {}, nullptr, req);
}

routing_decision router::decide(const std::vector<const route_info*>& routes, const std::string& host,
                                const json::object* listener, const simulated_request& req) const {
  routing_decision d;
  // The best match over all rules of all routes: a larger key wins; ties keep the earlier
  // candidate (routes are sorted oldest first, then by name; rules in list order).
  using rank = std::tuple<std::size_t, std::size_t, int, std::size_t, int, std::size_t, std::size_t>;
  std::optional<rank> best;
  const route_info* best_route = nullptr;
  const json::object* best_rule = nullptr;
  const json::object* best_path = nullptr;
  for (const auto* r : routes) {
    auto* spec = obj_field(r->obj, "spec");
    // Hostname specificity: the route's matching hostname (non-wildcard characters, then
    // characters); a route without hostnames takes the listener's.
    std::size_t exact_chars = 0, chars = 0;
    if (listener) {
      auto* hs = arr_field(spec, "hostnames");
      if (hs && !hs->empty()) {
        bool any = false;
        for (const auto& h : *hs) {
          if (!h.is_string()) continue;
          std::string_view hn = h.get_string();
          // The listener's hostname covers the host, so a route hostname that covers it too
          // intersects the listener's (the others are ignored, as the spec asks).
          if (!hostname_covers(hn, host)) continue;
          any = true;
          bool wild = hn.starts_with("*");
          if (std::pair{wild ? std::size_t{0} : hn.size(), hn.size()} > std::pair{exact_chars, chars}) {
            exact_chars = wild ? 0 : hn.size();
            chars = hn.size();
          }
        }
        if (!any) continue;
      } else if (auto lh = str_field(listener, "hostname"); !lh.empty()) {
        exact_chars = lh.starts_with("*") ? 0 : lh.size();
        chars = lh.size();
      }
    }
    auto* rules = arr_field(spec, "rules");
    if (!rules) continue;
    for (const auto& rule : *rules) {
      if (!rule.is_object()) continue;
      const auto& ro = rule.get_object();
      static const json::object default_match{{"path", json::object{{"type", "PathPrefix"}, {"value", "/"}}}};
      std::vector<const json::object*> matches;
      if (auto* ms = arr_field(&ro, "matches"); ms && !ms->empty()) {
        for (const auto& m : *ms)
          if (m.is_object()) matches.push_back(&m.get_object());
      } else {
        matches.push_back(&default_match);
      }
      for (const auto* m : matches) {
        if (!route_match(*m, req, d.problems)) continue;
        auto* path = obj_field(m, "path");
        auto type = str_field(path, "type", "PathPrefix");
        int path_rank = type == "Exact" ? 2 : type == "RegularExpression" ? 1 : 0;
        std::string value(str_field(path, "value", "/"));
        std::size_t prefix_len = type == "PathPrefix" ? value.size() : 0;
        auto* headers = arr_field(m, "headers");
        auto* query = arr_field(m, "queryParams");
        rank k{exact_chars, chars, path_rank, prefix_len, str_field(m, "method").empty() ? 0 : 1,
               headers ? headers->size() : 0, query ? query->size() : 0};
        if (!best || k > *best) {
          best = k;
          best_route = r;
          best_rule = &ro;
          best_path = path;
        }
      }
    }
  }
  if (!best) {
    d.router = listener ? "Gateway listener " + std::string(str_field(listener, "name")) : "";
    d.answered.push_back({1.0, 404});  // no rule matched: the spec's 404
    return d;
  }
  d.router = "HTTPRoute " + key(best_route->ns, best_route->name);
  const auto& rule = *best_rule;
  simulated_request seen = req;  // the request as the backends see it
  filter_effects fx;
  apply_filters(arr_field(&rule, "filters"), seen, best_path, fx, d.problems);
  if (fx.answer) {
    d.answered.push_back({1.0, *fx.answer});
    return d;
  }
  // Whether a backendRef (or mirror backendRef) may be used: a core Service, in the route's
  // namespace or granted by a ReferenceGrant of its own namespace.
  auto permitted = [&](const json::object& ref) -> std::optional<std::string> {
    if (!str_field(&ref, "group").empty() || str_field(&ref, "kind", "Service") != "Service")
      return "backendRef " + std::string(str_field(&ref, "name")) + " is not a core Service";
    auto ns = str_field(&ref, "namespace", best_route->ns);
    if (ns == best_route->ns) return std::nullopt;
    for (const auto* g : grants_) {
      if (namespace_of(*g) != ns) continue;
      auto* spec = obj_field(g, "spec");
      bool from = false, to = false;
      if (auto* fs = arr_field(spec, "from"))
        for (const auto& f : *fs)
          if (f.is_object() && str_field(&f.get_object(), "group") == group &&
              str_field(&f.get_object(), "kind") == "HTTPRoute" && str_field(&f.get_object(), "namespace") == best_route->ns)
            from = true;
      if (auto* ts = arr_field(spec, "to"))
        for (const auto& t : *ts)
          if (t.is_object() && str_field(&t.get_object(), "group").empty() && str_field(&t.get_object(), "kind") == "Service") {
            auto n = str_field(&t.get_object(), "name");
            if (n.empty() || n == str_field(&ref, "name")) to = true;
          }
      if (from && to) return std::nullopt;
    }
    return "backendRef " + key(ns, str_field(&ref, "name")) + " is in another namespace and no ReferenceGrant allows it";
  };
  auto add_mirrors = [&](const filter_effects& f, double share) {
    for (const auto& m : f.mirrors) {
      if (auto why = permitted(*m.backend)) {
        d.problems.push_back(d.router + ": mirror " + *why);
        continue;
      }
      backend_share b;
      b.share = share * m.fraction;
      b.service_namespace = str_field(m.backend, "namespace", best_route->ns);
      b.service = str_field(m.backend, "name");
      b.mirrored = true;
      b.path = seen.path == req.path ? std::string() : seen.path;
      if (b.share > 0) d.backends.push_back(std::move(b));
    }
  };
  add_mirrors(fx, 1.0);
  struct weighted {
    const json::object* ref;
    double weight;
  };
  std::vector<weighted> ws;
  double total = 0;
  if (auto* brs = arr_field(&rule, "backendRefs"))
    for (const auto& b : *brs) {
      if (!b.is_object()) continue;
      double w = std::max(0.0, num_field(&b.get_object(), "weight").value_or(1));
      ws.push_back({&b.get_object(), w});
      total += w;
    }
  if (total <= 0) {
    d.answered.push_back({1.0, 500});
    return d;
  }
  for (const auto& w : ws) {
    double share = w.weight / total;
    if (share <= 0) continue;
    if (auto why = permitted(*w.ref)) {
      d.problems.push_back(d.router + ": " + *why);
      d.answered.push_back({share, 500});
      continue;
    }
    simulated_request own = seen;
    filter_effects bfx;
    apply_filters(arr_field(w.ref, "filters"), own, best_path, bfx, d.problems);
    if (bfx.answer) {
      d.answered.push_back({share, *bfx.answer});
      continue;
    }
    add_mirrors(bfx, share);
    backend_share b;
    b.share = share;
    b.service_namespace = str_field(w.ref, "namespace", best_route->ns);
    b.service = str_field(w.ref, "name");
    b.path = own.path == req.path ? std::string() : own.path;
    b.set_cookies = fx.set_cookies;
    b.set_cookies.insert(b.set_cookies.end(), bfx.set_cookies.begin(), bfx.set_cookies.end());
    b.delete_cookies = fx.delete_cookies;
    b.delete_cookies.insert(b.delete_cookies.end(), bfx.delete_cookies.begin(), bfx.delete_cookies.end());
    b.no_service_code = 500;   // an invalid backendRef
    b.no_endpoints_code = 503; // the spec's SHOULD for a Service without ready endpoints
    d.backends.push_back(std::move(b));
  }
  return d;
}

}  // namespace kubesim::world::gateway_api
