#include "sim/world/traffic_model.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <unordered_map>

#include "sim/world/gateway_api.hpp"

namespace kubesim::world {

namespace json = boost::json;

namespace {

constexpr std::size_t max_regex_input = 4096;
constexpr double max_rps = 1e6;
constexpr double max_latency_ms = 3.6e6;
constexpr int max_session_requests = 10000;
constexpr std::size_t max_cookie_jars = 64;

const json::object* obj_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_object() ? &it->value().get_object() : nullptr;
}

const json::array* arr_field(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_array() ? &it->value().get_array() : nullptr;
}

std::string_view str_field(const json::object* o, std::string_view key) {
  if (!o) return {};
  auto it = o->find(key);
  return it != o->end() && it->value().is_string() ? std::string_view(it->value().get_string()) : std::string_view{};
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

// A JSON number as an int, clamped (a cast of an out-of-range double is undefined behaviour).
int to_int(double v) {
  if (!(v > -1e9)) return -1'000'000'000;
  if (v > 1e9) return 1'000'000'000;
  return static_cast<int>(v);
}

const json::object* metadata(const json::object& o) { return obj_field(o, "metadata"); }
std::string_view name_of(const json::object& o) { return str_field(metadata(o), "name"); }
std::string_view namespace_of(const json::object& o) { return str_field(metadata(o), "namespace"); }
const json::object* labels_of(const json::object& o) {
  auto* m = metadata(o);
  return m ? obj_field(*m, "labels") : nullptr;
}
const json::object* annotations_of(const json::object& o) {
  auto* m = metadata(o);
  return m ? obj_field(*m, "annotations") : nullptr;
}
std::optional<std::string_view> annotation(const json::object& o, std::string_view key) {
  auto* a = annotations_of(o);
  if (!a) return std::nullopt;
  auto it = a->find(key);
  if (it == a->end() || !it->value().is_string()) return std::nullopt;
  return std::string_view(it->value().get_string());
}

const json::object* template_annotations(const json::object& workload) {
  auto* spec = obj_field(workload, "spec");
  auto* tmpl = spec ? obj_field(*spec, "template") : nullptr;
  auto* md = tmpl ? obj_field(*tmpl, "metadata") : nullptr;
  return md ? obj_field(*md, "annotations") : nullptr;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<double> parse_double(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string key(std::string_view ns, std::string_view name) {
  std::string k(ns);
  k += '/';
  k += name;
  return k;
}

std::string label_key(std::string_view ns, std::string_view k, std::string_view v) {
  std::string out;
  out.reserve(ns.size() + k.size() + v.size() + 2);
  out.append(ns).append(1, '\0').append(k).append(1, '\0').append(v);
  return out;
}

// Whether every label of `selector` is on `labels` with the same value.
bool selects(const json::object& selector, const json::object* labels) {
  for (const auto& [k, v] : selector) {
    if (!labels) return false;
    auto it = labels->find(k);
    if (it == labels->end() || it->value() != v) return false;
  }
  return true;
}

// Compiled regexes, kept across plans (VirtualServices rarely change). One thread only.
const std::regex* compiled(const std::string& pattern, bool icase, std::vector<std::string>& problems) {
  static std::unordered_map<std::string, std::optional<std::regex>> cache;
  if (cache.size() > 4096) cache.clear();
  std::string k = (icase ? "i:" : "c:") + pattern;
  auto it = cache.find(k);
  if (it == cache.end()) {
    std::optional<std::regex> re;
    try {
      auto flags = std::regex::ECMAScript;
      if (icase) flags |= std::regex::icase;
      re.emplace(pattern, flags);
    } catch (const std::regex_error& e) {
      problems.push_back("invalid regex \"" + pattern + "\": " + e.what());
    }
    it = cache.emplace(std::move(k), std::move(re)).first;
  }
  return it->second ? &*it->second : nullptr;
}

bool string_match_impl(const json::value& match, const std::string* value, bool icase, bool empty_exact_is_presence,
                       std::vector<std::string>& problems) {
  if (!match.is_object()) {
    problems.push_back("a StringMatch is not an object: " + json::serialize(match));
    return false;
  }
  const auto& m = match.get_object();
  if (!value) return false;
  auto norm = [&](std::string_view s) { return icase ? lower(s) : std::string(s); };
  if (auto it = m.find("exact"); it != m.end() && it->value().is_string()) {
    std::string_view want = it->value().get_string();
    if (want.empty() && empty_exact_is_presence) return true;
    return norm(want) == norm(*value);
  }
  if (auto it = m.find("prefix"); it != m.end() && it->value().is_string()) {
    std::string p = norm(it->value().get_string());
    return norm(*value).starts_with(p);
  }
  if (auto it = m.find("regex"); it != m.end() && it->value().is_string()) {
    // libstdc++'s regex recurses per character: keep stack use bounded.
    if (value->size() > max_regex_input) {
      problems.push_back("a value of " + std::to_string(value->size()) + " bytes is too long to match a regex against");
      return false;
    }
    const std::regex* re = compiled(std::string(it->value().get_string()), icase, problems);
    return re && std::regex_match(*value, *re);
  }
  // No exact/prefix/regex: Istio matches on presence alone.
  return true;
}

const std::string* find_value(const std::vector<std::pair<std::string, std::string>>& kv, std::string_view name) {
  for (const auto& [k, v] : kv)
    if (k == name) return &v;
  return nullptr;
}

std::optional<std::string> header_value(const canaryd::http::headers& hs, std::string_view name) {
  auto v = canaryd::http::find_header(hs, name);
  if (!v) return std::nullopt;
  return std::string(*v);
}

std::string fraction_text(double v) {
  char buf[32];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, p) : std::string("?");
}

// ---- The routing state of one plan -----------------------------------------------------------

struct pod_info {
  const json::object* obj = nullptr;
  std::string name, ns, workload;
  const json::object* labels = nullptr;
};

struct service_info {
  const json::object* obj = nullptr;
  std::string name, ns, fqdn;
  const json::object* selector = nullptr;  // non-empty, or null: the Service selects nothing
  int port = 80;
  std::vector<const pod_info*> ready;      // ready pods it selects, by name
};

struct vs_info {
  const json::object* obj = nullptr;
  std::string ns, name, created;
  std::vector<std::string> hosts;          // qualified
};

struct dr_info {
  const json::object* obj = nullptr;
  std::string ns, host;                    // qualified
};

class planner {
 public:
  explicit planner(const cluster_objects& objs) : objs_(objs) {}

  traffic_plan run() {
    index_workloads();
    index_pods();
    index_services();
    index_routing();
    index_hosts();
    std::vector<const service_info*> order;
    for (const auto& [fqdn, s] : services_) order.push_back(&s);
    std::sort(order.begin(), order.end(),
              [](const service_info* a, const service_info* b) { return std::tie(a->ns, a->name) < std::tie(b->ns, b->name); });
    for (const auto* s : order) plan_service(*s);
    for (const auto* g : gw_->gateways()) plan_gateway(*g);
    for (const auto& k : objs_.knative_services)
      if (k) plan_knative(*k);
    return std::move(plan_);
  }

 private:
  void problem(std::string s) { plan_.problems.push_back(std::move(s)); }

  void index_workloads() {
    auto index = [](const std::vector<object_ptr>& v, std::unordered_map<std::string, const json::object*>& out) {
      for (const auto& o : v)
        if (o) out.emplace(key(namespace_of(*o), name_of(*o)), o.get());
    };
    index(objs_.replica_sets, replica_sets_);
    index(objs_.deployments, deployments_);
    index(objs_.stateful_sets, stateful_sets_);
    index(objs_.daemon_sets, daemon_sets_);
  }

  static std::pair<std::string_view, std::string_view> controller_of(const json::object& o) {
    auto* md = metadata(o);
    auto* refs = md ? arr_field(*md, "ownerReferences") : nullptr;
    if (!refs) return {};
    const json::object* pick = nullptr;
    for (const auto& r : *refs) {
      if (!r.is_object()) continue;
      const auto& ro = r.get_object();
      if (!pick) pick = &ro;
      if (auto it = ro.find("controller"); it != ro.end() && it->value() == true) {
        pick = &ro;
        break;
      }
    }
    if (!pick) return {};
    return {str_field(pick, "kind"), str_field(pick, "name")};
  }

  // destination_workload and the template whose annotations give the behaviour, the way Istio
  // names workloads: the Deployment of a ReplicaSet-owned pod, else the owning controller,
  // else the pod itself.
  void resolve_workload(pod_info& p) {
    const json::object* annotations = annotations_of(*p.obj);
    auto [kind, owner] = controller_of(*p.obj);
    if (kind == "ReplicaSet") {
      auto rs = replica_sets_.find(key(p.ns, owner));
      if (rs != replica_sets_.end()) {
        auto [rkind, rowner] = controller_of(*rs->second);
        if (rkind == "Deployment") {
          p.workload = rowner;
          auto d = deployments_.find(key(p.ns, rowner));
          annotations = d != deployments_.end() ? template_annotations(*d->second) : template_annotations(*rs->second);
        } else {
          p.workload = owner;
          annotations = template_annotations(*rs->second);
        }
      } else {
        // The ReplicaSet is gone (or not yet seen): strip its pod-template hash like Istio does.
        auto dash = owner.rfind('-');
        p.workload = dash == std::string_view::npos ? owner : owner.substr(0, dash);
      }
    } else if (kind == "StatefulSet" || kind == "DaemonSet") {
      p.workload = owner;
      auto& idx = kind == "StatefulSet" ? stateful_sets_ : daemon_sets_;
      if (auto it = idx.find(key(p.ns, owner)); it != idx.end()) annotations = template_annotations(*it->second);
    } else if (!owner.empty()) {
      p.workload = owner;
    } else {
      p.workload = p.name;
    }
    auto wk = key(p.ns, p.workload);
    if (!plan_.workloads.contains(wk)) {
      std::vector<std::string> probs;
      plan_.workloads.emplace(wk, parse_behaviour(annotations, probs));
      for (auto& s : probs) problem("workload " + wk + ": " + s);
    }
  }

  void index_pods() {
    pods_.reserve(objs_.pods.size());
    for (const auto& o : objs_.pods) {
      if (!o) continue;
      pod_info p;
      p.obj = o.get();
      p.name = name_of(*o);
      p.ns = namespace_of(*o);
      p.labels = labels_of(*o);
      resolve_workload(p);
      plan_.pods.push_back(key(p.ns, p.name));
      if (pod_ready(*o)) pods_.push_back(std::move(p));
    }
    std::sort(pods_.begin(), pods_.end(), [](const pod_info& a, const pod_info& b) { return std::tie(a.ns, a.name) < std::tie(b.ns, b.name); });
    // Ready pods by namespace and label, so a Service's selector scans only the pods that carry
    // one of its labels rather than its whole namespace.
    for (const auto& p : pods_)
      if (p.labels)
        for (const auto& [k, v] : *p.labels)
          if (v.is_string()) pods_by_label_[label_key(p.ns, k, v.get_string())].push_back(&p);
  }

  void index_services() {
    for (const auto& o : objs_.services) {
      if (!o) continue;
      service_info s;
      s.obj = o.get();
      s.name = name_of(*o);
      s.ns = namespace_of(*o);
      s.fqdn = s.name + "." + s.ns + ".svc.cluster.local";
      auto* spec = obj_field(*o, "spec");
      if (spec) {
        if (auto* sel = obj_field(*spec, "selector"); sel && !sel->empty() && str_field(spec, "type") != "ExternalName")
          s.selector = sel;
        if (auto* ports = arr_field(*spec, "ports"); ports && !ports->empty() && ports->front().is_object())
          if (auto n = num_field(&ports->front().get_object(), "port")) s.port = to_int(*n);
      }
      if (s.selector) {
        const std::vector<const pod_info*>* candidates = nullptr;
        for (const auto& [k, v] : *s.selector) {
          auto it = v.is_string() ? pods_by_label_.find(label_key(s.ns, k, v.get_string())) : pods_by_label_.end();
          if (it == pods_by_label_.end()) {
            candidates = nullptr;  // no pod has this label: the Service selects nothing
            break;
          }
          if (!candidates || it->second.size() < candidates->size()) candidates = &it->second;
        }
        if (candidates)
          for (const auto* p : *candidates)
            if (selects(*s.selector, p->labels)) s.ready.push_back(p);
      }
      services_.emplace(s.fqdn, std::move(s));
    }
  }

  void index_routing() {
    std::set<std::string> seen;  // uids: one object may be listed under several served versions
    auto fresh = [&seen](const json::object& o) {
      auto uid = std::string(str_field(metadata(o), "uid"));
      if (uid.empty()) uid = "name:" + key(namespace_of(o), name_of(o));
      return seen.insert(uid).second;
    };
    for (const auto& o : objs_.virtual_services) {
      if (!o || !fresh(*o)) continue;
      vs_info v;
      v.obj = o.get();
      v.ns = namespace_of(*o);
      v.name = name_of(*o);
      v.created = str_field(metadata(*o), "creationTimestamp");
      auto* spec = obj_field(*o, "spec");
      if (auto* hosts = spec ? arr_field(*spec, "hosts") : nullptr)
        for (const auto& h : *hosts)
          if (h.is_string()) v.hosts.push_back(qualify_host(h.get_string(), v.ns));
      virtual_services_.push_back(std::move(v));
    }
    // When several VirtualServices claim one host, the oldest wins (Istio's conflict rule).
    std::sort(virtual_services_.begin(), virtual_services_.end(), [](const vs_info& a, const vs_info& b) {
      return std::tie(a.created, a.ns, a.name) < std::tie(b.created, b.ns, b.name);
    });
    for (const auto& o : objs_.destination_rules) {
      if (!o || !fresh(*o)) continue;
      dr_info d;
      d.obj = o.get();
      d.ns = namespace_of(*o);
      d.host = qualify_host(str_field(obj_field(*o, "spec"), "host"), d.ns);
      destination_rules_.push_back(std::move(d));
    }
    // Services that some VirtualService routes to without being one of its hosts are backends
    // (Flagger's <svc>-primary and <svc>-canary): clients call the host, so backends get no
    // traffic of their own unless annotated.
    for (const auto& v : virtual_services_) {
      auto* spec = obj_field(*v.obj, "spec");
      if (!spec) continue;
      auto note = [&](const json::object* dest) {
        std::string host(str_field(dest, "host"));
        if (host.empty()) return;
        auto fq = qualify_host(host, v.ns);
        bool own = std::any_of(v.hosts.begin(), v.hosts.end(), [&](const std::string& h) { return host_covers(h, fq); });
        if (!own) backends_.insert(fq);
      };
      for (auto list : {"http", "tcp", "tls"}) {
        auto* routes = arr_field(*spec, list);
        if (!routes) continue;
        for (const auto& r : *routes) {
          if (!r.is_object()) continue;
          const auto& ro = r.get_object();
          if (auto* dests = arr_field(ro, "route"))
            for (const auto& d : *dests)
              if (d.is_object()) note(obj_field(d.get_object(), "destination"));
          note(obj_field(ro, "mirror"));
          if (auto* mirrors = arr_field(ro, "mirrors"))
            for (const auto& m : *mirrors)
              if (m.is_object()) note(obj_field(m.get_object(), "destination"));
        }
      }
    }
    // Knative's <revision>-private Services: the gateway sends to them, clients never do.
    for (const auto& [fq, svc] : services_)
      if (auto* l = labels_of(*svc.obj); l && str_field(l, "networking.internal.knative.dev/serviceType") == "Private")
        backends_.insert(fq);
    gw_.emplace(objs_);
    for (const auto& p : gw_->problems()) problem(p);
    for (const auto& b : gw_->backends()) {
      auto slash = b.find('/');
      backends_.insert(b.substr(slash + 1) + "." + b.substr(0, slash) + ".svc.cluster.local");
    }
  }

  // Indexes hosts once per plan: exact hosts by name (the oldest VirtualService first, as
  // sorted), wildcards apart, so a plan costs O(services + VirtualServices), not their product.
  void index_hosts() {
    for (const auto& v : virtual_services_)
      for (const auto& h : v.hosts) {
        if (h.starts_with('*')) wildcard_hosts_.emplace_back(h, &v);
        else vs_by_host_.try_emplace(h, &v);
      }
    for (const auto& d : destination_rules_) dr_by_host_[d.host].push_back(&d);
  }

  const vs_info* virtual_service_for(const std::string& fqdn) const {
    if (auto it = vs_by_host_.find(fqdn); it != vs_by_host_.end()) return it->second;
    const vs_info* wildcard = nullptr;
    std::size_t best = 0;
    for (const auto& [h, v] : wildcard_hosts_)
      if (host_covers(h, fqdn) && h.size() > best) {
        wildcard = v;
        best = h.size();
      }
    return wildcard;
  }

  // A route destination (host and optional subset) as a backend share: the Service of the host and
  // the labels of the subset in a DestinationRule for the host (the VirtualService's namespace
  // first); without one the subset is ignored. Null when the host is no Service of the cluster.
  std::optional<backend_share> destination_backend(const json::object& dest, const std::string& vs_ns) const {
    auto fq = qualify_host(str_field(&dest, "host"), vs_ns);
    auto it = services_.find(fq);
    if (it == services_.end()) return std::nullopt;
    backend_share b;
    b.service = it->second.name;
    b.service_namespace = it->second.ns;
    auto subset = str_field(&dest, "subset");
    if (subset.empty()) return b;
    auto rules = dr_by_host_.find(fq);
    for (int pass = 0; pass < 2 && rules != dr_by_host_.end(); ++pass) {
      for (const auto* dp : rules->second) {
        const auto& d = *dp;
        if ((pass == 0) != (d.ns == vs_ns)) continue;
        auto* spec = obj_field(*d.obj, "spec");
        auto* subsets = spec ? arr_field(*spec, "subsets") : nullptr;
        if (!subsets) continue;
        for (const auto& s : *subsets) {
          if (!s.is_object() || str_field(&s.get_object(), "name") != subset) continue;
          b.subset = obj_field(s.get_object(), "labels");
          return b;
        }
      }
    }
    return b;
  }

  // Set-Cookie values of an Istio Headers object's response set/add (maps of name to value).
  static void response_cookies(const json::object* headers, std::vector<std::string>& set, std::vector<std::string>& del) {
    auto* response = headers ? obj_field(*headers, "response") : nullptr;
    for (auto list : {"set", "add"}) {
      auto* m = response ? obj_field(*response, list) : nullptr;
      if (!m) continue;
      for (const auto& [name, v] : *m)
        if (v.is_string() && lower(name) == "set-cookie") read_set_cookie(v.get_string(), set, del);
    }
  }

  static std::string flow_key(const traffic_flow& f) {
    auto k = f.namespace_ + "/" + f.service + "/" + f.request_class;
    return f.entry == "Service" ? k : f.entry + ":" + k;
  }

  void spread(traffic_flow& f, double rps, bool mirrored, const service_info& svc,
              const std::vector<const pod_info*>& pods, const std::string& path = {},
              const std::string& envoy_cluster = {}) {
    if (rps <= 0 || pods.empty()) return;
    double each = rps / static_cast<double>(pods.size());
    auto prefix = flow_key(f) + "|" + key(svc.ns, svc.name) + "|" + (path.empty() ? "" : path + "|");
    for (const auto* p : pods) {
      traffic_leg l;
      l.rps = each;
      l.mirrored = mirrored;
      l.service = svc.name;
      l.service_namespace = svc.ns;
      l.pod = p->name;
      l.namespace_ = p->ns;
      l.workload = p->workload;
      l.workload_key = key(p->ns, p->workload);
      if (auto b = plan_.workloads.find(l.workload_key); b != plan_.workloads.end()) l.behaviour = b->second;
      l.key = prefix + key(p->ns, p->name) + (mirrored ? "|mirror" : "");
      l.path = path;
      l.envoy_cluster = envoy_cluster;
      // One pod may get several shares of one flow (two rules' backends, a weight and a mirror
      // of the same Service): they add up on one leg.
      auto same = std::find_if(f.legs.begin(), f.legs.end(), [&](const traffic_leg& o) { return o.key == l.key; });
      if (same != f.legs.end()) {
        same->rps += l.rps;
        continue;
      }
      f.legs.push_back(std::move(l));
    }
  }

  static void add_unrouted(traffic_flow& f, double rps, int code) {
    if (rps <= 0) return;
    for (auto& u : f.unrouted)
      if (u.code == code) {
        u.rps += rps;
        return;
      }
    f.unrouted.push_back({rps, code, flow_key(f) + "|unrouted|" + std::to_string(code)});
  }

  // Istio's reader: the routing_decision of VirtualService `v` for one request.
  void route_destinations(routing_decision& d, const json::array& dests, const vs_info& v, double share,
                          const json::object* route_headers) const {
    struct weighted {
      const json::object* entry;
      const json::object* dest;
      double weight;
    };
    std::vector<weighted> ws;
    double total = 0;
    for (const auto& e : dests) {
      if (!e.is_object()) continue;
      const auto& eo = e.get_object();
      auto* dest = obj_field(eo, "destination");
      if (!dest) {
        d.problems.push_back("a route entry has no destination");
        continue;
      }
      ws.push_back({&eo, dest, num_field(&eo, "weight").value_or(-1)});
    }
    if (ws.empty()) {
      d.answered.push_back({share, 503});
      return;
    }
    // A lone destination without a weight takes everything; Istio requires weights otherwise.
    if (ws.size() == 1 && ws[0].weight < 0) ws[0].weight = 100;
    for (auto& w : ws) {
      if (w.weight < 0) w.weight = 0;
      total += w.weight;
    }
    if (total <= 0) {
      d.problems.push_back("route weights sum to 0; shared equally");
      for (auto& w : ws) w.weight = 1;
      total = static_cast<double>(ws.size());
    }
    for (const auto& w : ws) {
      double part = share * w.weight / total;
      if (part <= 0) continue;
      auto b = destination_backend(*w.dest, v.ns);
      if (!b) {
        d.answered.push_back({part, 503});  // Envoy: no healthy upstream
        continue;
      }
      b->share = part;
      response_cookies(route_headers, b->set_cookies, b->delete_cookies);
      response_cookies(obj_field(*w.entry, "headers"), b->set_cookies, b->delete_cookies);
      d.backends.push_back(std::move(*b));
    }
  }

  void route_mirror(routing_decision& d, const json::object* dest, double percent, const vs_info& v, double share) const {
    if (!dest || percent <= 0) return;
    auto b = destination_backend(*dest, v.ns);
    if (!b) return;  // mirrors fail silently
    b->share = share * std::min(percent, 100.0) / 100.0;
    b->mirrored = true;
    d.backends.push_back(std::move(*b));
  }

  routing_decision virtual_service_decision(const vs_info& v, const simulated_request& req) const {
    routing_decision d;
    d.router = "VirtualService " + key(v.ns, v.name);
    auto* spec = obj_field(*v.obj, "spec");
    const json::array* http = spec ? arr_field(*spec, "http") : nullptr;
    if (!http || http->empty()) {
      // TCP-only VirtualService: the first tcp route carries the connections.
      auto* tcp = spec ? arr_field(*spec, "tcp") : nullptr;
      if (tcp && !tcp->empty() && tcp->front().is_object())
        if (auto* dests = arr_field(tcp->front().get_object(), "route")) {
          route_destinations(d, *dests, v, 1.0, nullptr);
          return d;
        }
      d.answered.push_back({1.0, 404});
      return d;
    }
    for (const auto& r : *http) {
      if (!r.is_object()) continue;
      const auto& ro = r.get_object();
      bool applies = true;
      if (auto* matches = arr_field(ro, "match"); matches && !matches->empty()) {
        applies = false;
        for (const auto& m : *matches)
          if (m.is_object() && http_match(m.get_object(), req, d.problems)) {
            applies = true;
            break;
          }
      }
      if (!applies) continue;
      double share = 1.0;
      // Fault injection: aborted requests are answered by the source proxy.
      if (auto* fault = obj_field(ro, "fault"))
        if (auto* abort = obj_field(*fault, "abort")) {
          double pct = num_field(obj_field(*abort, "percentage"), "value").value_or(100);
          auto code = num_field(abort, "httpStatus");
          if (code) {
            double aborted = std::clamp(pct, 0.0, 100.0) / 100.0;
            d.answered.push_back({aborted, to_int(*code)});
            share -= aborted;
          }
        }
      if (auto* redirect = obj_field(ro, "redirect")) {
        d.answered.push_back({share, to_int(num_field(redirect, "redirectCode").value_or(301))});
        return d;
      }
      if (auto* direct = obj_field(ro, "directResponse")) {
        d.answered.push_back({share, to_int(num_field(direct, "status").value_or(200))});
        return d;
      }
      auto* dests = arr_field(ro, "route");
      if (!dests) {
        d.problems.push_back("an http route has no destinations (delegate is not simulated)");
        d.answered.push_back({share, 404});
        return d;
      }
      route_destinations(d, *dests, v, share, obj_field(ro, "headers"));
      if (auto* mirror = obj_field(ro, "mirror")) {
        double pct = 100;
        if (auto p = num_field(obj_field(ro, "mirrorPercentage"), "value")) pct = *p;
        else if (auto legacy = num_field(&ro, "mirrorPercent")) pct = *legacy;
        route_mirror(d, mirror, pct, v, share);
      }
      if (auto* mirrors = arr_field(ro, "mirrors"))
        for (const auto& m : *mirrors) {
          if (!m.is_object()) continue;
          double pct = num_field(obj_field(m.get_object(), "percentage"), "value").value_or(100);
          route_mirror(d, obj_field(m.get_object(), "destination"), pct, v, share);
        }
      return d;
    }
    d.answered.push_back({1.0, 404});  // no route matched: Envoy's NR
    return d;
  }

  // Resolves a provider's decision for `rps` requests of flow `f` to pods.
  void apply_decision(traffic_flow& f, const routing_decision& d, double rps) {
    f.router = d.router;
    for (const auto& p : d.problems) problem(d.router.empty() ? p : d.router + ": " + p);
    for (const auto& a : d.answered) add_unrouted(f, rps * a.share, a.code);
    for (const auto& b : d.backends) {
      double share = rps * b.share;
      if (share <= 0) continue;
      auto it = services_.find(b.service + "." + b.service_namespace + ".svc.cluster.local");
      if (it == services_.end()) {
        if (!b.mirrored) {
          problem(d.router + ": backend Service " + key(b.service_namespace, b.service) + " does not exist");
          add_unrouted(f, share, b.no_service_code);
        }
        continue;
      }
      const auto& svc = it->second;
      std::vector<const pod_info*> narrowed;
      const auto* pods = &svc.ready;
      if (b.subset && !b.subset->empty()) {
        for (const auto* p : svc.ready)
          if (selects(*b.subset, p->labels)) narrowed.push_back(p);
        pods = &narrowed;
      }
      if (pods->empty()) {
        if (!b.mirrored) add_unrouted(f, share, b.no_endpoints_code);
        continue;
      }
      spread(f, share, b.mirrored, svc, *pods, b.path, b.envoy_cluster);
    }
  }

  // kubesim.dev/session-requests of a Service or Gateway: how many requests each simulated client
  // sends while keeping the cookies responses set (1: none kept).
  int session_requests(const json::object& entry, const std::string& what) {
    auto a = annotation(entry, annotations::session_requests);
    if (!a) return 1;
    auto v = parse_double(*a);
    if (!v || *v < 1 || *v > max_session_requests || std::floor(*v) != *v) {
      problem(what + ": " + std::string(annotations::session_requests) + " \"" + std::string(*a) +
              "\" is not a whole number from 1 to " + std::to_string(max_session_requests) + "; using 1");
      return 1;
    }
    return static_cast<int>(*v);
  }

  // Routes the requests of one class (`base`, request `req`) by `decide` (a provider's reader),
  // and adds the flows to the plan. When clients keep cookies (session > 1), each client sends
  // `session` requests, starting with the class's cookies and adding those its responses set
  // (or dropping those they delete); the class's rate is split into one flow per cookie jar by
  // the share of requests sent with it over a session. Deterministic: shares, not samples.
  template <class Decide>
  void route_sessions(traffic_flow base, const simulated_request& req, int session, Decide&& decide) {
    std::string initial(canaryd::http::find_header(req.headers, "cookie").value_or(""));
    std::map<std::string, routing_decision> decisions;
    auto decision_for = [&](const std::string& jar) -> const routing_decision& {
      auto it = decisions.find(jar);
      if (it == decisions.end()) {
        simulated_request r = req;
        std::erase_if(r.headers, [](const canaryd::http::header& h) { return lower(h.name) == "cookie"; });
        if (!jar.empty()) r.headers.push_back({"cookie", jar});
        it = decisions.emplace(jar, decide(r)).first;
      }
      return it->second;
    };
    std::map<std::string, double> current{{initial, 1.0}}, total;
    for (int k = 0; k < session && !current.empty(); ++k) {
      std::map<std::string, double> next;
      for (const auto& [jar, mass] : current) {
        total[jar] += mass;
        if (k + 1 == session) continue;
        const auto& d = decision_for(jar);
        double moved = 0;
        for (const auto& b : d.backends) {
          if (b.mirrored || (b.set_cookies.empty() && b.delete_cookies.empty())) continue;
          next[apply_cookies(jar, b.set_cookies, b.delete_cookies)] += mass * b.share;
          moved += b.share;
        }
        if (moved < 1) next[jar] += mass * (1 - moved);
      }
      current = std::move(next);
      if (decisions.size() > max_cookie_jars) {
        problem(flow_key(base) + ": clients hold more than " + std::to_string(max_cookie_jars) +
                " different cookie sets; the session is cut short");
        for (const auto& [jar, mass] : current) total[jar] += mass;
        break;
      }
    }
    double sum = 0;
    for (const auto& [jar, t] : total) sum += t;
    for (const auto& [jar, t] : total) {
      traffic_flow f = base;
      f.rps = base.rps * t / sum;
      if (f.rps <= 1e-9) continue;
      if (jar != initial) f.request_class += "+cookie:" + jar;
      apply_decision(f, decision_for(jar), f.rps);
      plan_.flows.push_back(std::move(f));
    }
  }

  // Requests sent through a Gateway (gateway_api.hpp), configured by its annotations.
  void plan_gateway(const json::object& g) {
    auto ns = std::string(namespace_of(g));
    auto name = std::string(name_of(g));
    std::vector<std::string> probs;
    double rps = service_rps(g, objs_.default_rps, probs);
    auto classes = request_classes(g, probs);
    for (auto& p : probs) problem("Gateway " + key(ns, name) + ": " + p);
    if (rps <= 0) return;
    std::string source(annotation(g, annotations::source_workload).value_or("unknown"));
    if (source.empty()) source = "unknown";
    auto host = gw_->client_host(g);
    int session = session_requests(g, "Gateway " + key(ns, name));
    for (auto& c : classes) {
      traffic_flow f;
      f.namespace_ = ns;
      f.service = name;
      f.entry = "Gateway";
      f.request_class = c.name;
      f.source_workload = source;
      f.path = c.request.path;
      f.rps = rps * c.share;
      if (f.rps <= 0) continue;
      c.request.authority = host;
      route_sessions(std::move(f), c.request, session,
                     [&](const simulated_request& r) { return gw_->through_gateway(g, r); });
    }
  }

  // Knative Serving's reader: the revisions of a Knative Service's status.traffic share its
  // clients' requests by percent, through each revision's <revision>-private Service; Envoy (the
  // Kourier gateway) counts them per cluster "<ns>/<revision>".
  routing_decision knative_decision(const json::object& ksvc) const {
    routing_decision d;
    const std::string ns(namespace_of(ksvc));
    d.router = "Knative Service " + key(ns, name_of(ksvc));
    const json::array* traffic = arr_field_of(obj_field(ksvc, "status"), "traffic");
    double total = 0;
    if (traffic)
      for (const auto& t : *traffic)
        if (t.is_object()) total += std::max(0.0, num_field(&t.get_object(), "percent").value_or(0));
    if (total <= 0) {
      d.answered.push_back({1.0, 503});  // no revision serves: the gateway has no route
      return d;
    }
    for (const auto& t : *traffic) {
      if (!t.is_object()) continue;
      double pct = std::max(0.0, num_field(&t.get_object(), "percent").value_or(0));
      if (pct <= 0) continue;
      std::string rev(str_field(&t.get_object(), "revisionName"));
      backend_share b;
      b.share = pct / total;
      b.service = rev + "-private";
      b.service_namespace = ns;
      b.envoy_cluster = ns + "/" + rev;
      d.backends.push_back(std::move(b));
    }
    return d;
  }

  static const json::array* arr_field_of(const json::object* o, std::string_view k) { return o ? arr_field(*o, k) : nullptr; }

  // Requests sent to a Knative Service, configured by its annotations.
  void plan_knative(const json::object& k) {
    auto ns = std::string(namespace_of(k));
    auto name = std::string(name_of(k));
    std::vector<std::string> probs;
    double rps = service_rps(k, objs_.default_rps, probs);
    auto classes = request_classes(k, probs);
    for (auto& p : probs) problem("Knative Service " + key(ns, name) + ": " + p);
    if (rps <= 0) return;
    std::string source(annotation(k, annotations::source_workload).value_or("unknown"));
    if (source.empty()) source = "unknown";
    for (auto& c : classes) {
      traffic_flow f;
      f.namespace_ = ns;
      f.service = name;
      f.entry = "KnativeService";
      f.request_class = c.name;
      f.source_workload = source;
      f.path = c.request.path;
      f.rps = rps * c.share;
      if (f.rps <= 0) continue;
      auto d = knative_decision(k);
      apply_decision(f, d, f.rps);
      plan_.flows.push_back(std::move(f));
    }
  }

  void plan_service(const service_info& s) {
    if (!s.selector) return;
    const vs_info* v = virtual_service_for(s.fqdn);
    bool gamma = !v && gw_->routes_service(s.ns, s.name);
    if (!v && !gamma && s.ready.empty()) return;
    std::vector<std::string> probs;
    double fallback = backends_.contains(s.fqdn) ? 0.0 : objs_.default_rps;
    double rps = service_rps(*s.obj, fallback, probs);
    auto classes = request_classes(*s.obj, probs);
    for (auto& p : probs) problem("service " + key(s.ns, s.name) + ": " + p);
    if (rps <= 0) return;
    std::string source(annotation(*s.obj, annotations::source_workload).value_or("unknown"));
    if (source.empty()) source = "unknown";
    int session = session_requests(*s.obj, "service " + key(s.ns, s.name));
    for (auto& c : classes) {
      traffic_flow f;
      f.namespace_ = s.ns;
      f.service = s.name;
      f.request_class = c.name;
      f.source_workload = source;
      f.path = c.request.path;
      f.rps = rps * c.share;
      if (f.rps <= 0) continue;
      c.request.authority = s.name + "." + s.ns + ":" + std::to_string(s.port);
      c.request.port = s.port;
      if (v) {
        f.virtual_service = key(v->ns, v->name);
        route_sessions(std::move(f), c.request, session,
                       [&](const simulated_request& r) { return virtual_service_decision(*v, r); });
      } else if (gamma) {
        route_sessions(std::move(f), c.request, session,
                       [&](const simulated_request& r) { return *gw_->for_service(s.ns, s.name, r); });
      } else {
        spread(f, f.rps, false, s, s.ready);
        plan_.flows.push_back(std::move(f));
      }
    }
  }

  const cluster_objects& objs_;
  traffic_plan plan_;
  std::unordered_map<std::string, const json::object*> replica_sets_, deployments_, stateful_sets_, daemon_sets_;
  std::vector<pod_info> pods_;  // ready pods only
  std::unordered_map<std::string, std::vector<const pod_info*>> pods_by_label_;
  std::unordered_map<std::string, service_info> services_;  // by fqdn
  std::vector<vs_info> virtual_services_;
  std::vector<dr_info> destination_rules_;
  std::unordered_map<std::string, const vs_info*> vs_by_host_;
  std::vector<std::pair<std::string, const vs_info*>> wildcard_hosts_;
  std::unordered_map<std::string, std::vector<const dr_info*>> dr_by_host_;
  std::set<std::string> backends_;
  std::optional<gateway_api::router> gw_;
};

}  // namespace

double service_rps(const json::object& service, double fallback, std::vector<std::string>& problems) {
  auto a = annotation(service, annotations::rps);
  if (!a) return fallback;
  auto v = parse_double(*a);
  if (!v || *v < 0) {
    problems.push_back(std::string(annotations::rps) + " \"" + std::string(*a) +
                       "\" is not a non-negative number; using " + fraction_text(fallback));
    return fallback;
  }
  if (*v > max_rps) {
    problems.push_back(std::string(annotations::rps) + " \"" + std::string(*a) + "\" is above " + fraction_text(max_rps) +
                       "; using " + fraction_text(max_rps));
    return max_rps;
  }
  return *v;
}

namespace {

std::optional<double> share_annotation(const json::object& service, std::string_view name,
                                       std::vector<std::string>& problems) {
  auto a = annotation(service, name);
  if (!a) return std::nullopt;
  auto v = parse_double(*a);
  if (!v || *v < 0 || *v > 1) {
    problems.push_back(std::string(name) + " \"" + std::string(*a) + "\" is not a share between 0 and 1; ignored");
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::vector<request_class> request_classes(const json::object& service, std::vector<std::string>& problems) {
  simulated_request base;
  if (auto p = annotation(service, annotations::path)) {
    auto t = std::string(trim(*p));
    if (t.empty() || t.front() != '/') {
      problems.push_back(std::string(annotations::path) + " \"" + t + "\" must start with '/'; using /");
    } else {
      auto parts = canaryd::http::split_target(t);
      base.path = parts.path;
      base.query = std::move(parts.query);
    }
  }
  canaryd::http::headers marked_headers;
  if (auto h = annotation(service, annotations::header)) {
    std::string_view rest = *h;
    while (!rest.empty()) {
      auto nl = rest.find('\n');
      auto line = trim(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      if (line.empty()) continue;
      auto colon = line.find(':');
      if (colon == std::string_view::npos || trim(line.substr(0, colon)).empty()) {
        problems.push_back(std::string(annotations::header) + " line \"" + std::string(line) +
                           "\" is not \"name: value\"; ignored");
        continue;
      }
      marked_headers.push_back({lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1)))});
    }
  }
  std::string cookie(trim(annotation(service, annotations::cookie).value_or("")));
  auto header_share = share_annotation(service, annotations::header_share, problems);
  auto cookie_share = share_annotation(service, annotations::cookie_share, problems);

  std::vector<request_class> out;
  auto add = [&](std::string name, double share, const canaryd::http::headers& hs) {
    if (share <= 0) return;
    request_class c{std::move(name), share, base};
    c.request.headers = hs;
    out.push_back(std::move(c));
  };
  if (!cookie.empty() && cookie_share) {
    // Separate classes: some requests carry the header, others the cookie.
    if (!marked_headers.empty()) add("header", header_share.value_or(default_marked_share), marked_headers);
    add("cookie", *cookie_share, {{"cookie", cookie}});
  } else if (!marked_headers.empty() || !cookie.empty()) {
    auto hs = marked_headers;
    if (!cookie.empty()) hs.push_back({"cookie", cookie});
    std::string name = marked_headers.empty() ? "cookie" : cookie.empty() ? "header" : "marked";
    add(std::move(name), header_share.value_or(default_marked_share), hs);
  }
  double marked = 0;
  for (const auto& c : out) marked += c.share;
  if (marked > 1) {
    problems.push_back("header and cookie shares add up to " + fraction_text(marked) + " > 1; scaled down");
    for (auto& c : out) c.share /= marked;
    marked = 1;
  }
  if (marked < 1) {
    request_class plain{"plain", 1 - marked, base};
    out.insert(out.begin(), std::move(plain));
  }
  return out;
}

bool string_match(const json::value& match, const std::string* value, std::vector<std::string>& problems) {
  return string_match_impl(match, value, false, false, problems);
}

bool http_match(const json::object& m, const simulated_request& req, std::vector<std::string>& problems) {
  bool icase = false;
  if (auto it = m.find("ignoreUriCase"); it != m.end() && it->value() == true) icase = true;
  if (auto it = m.find("uri"); it != m.end() && !string_match_impl(it->value(), &req.path, icase, false, problems)) return false;
  if (auto it = m.find("scheme"); it != m.end() && !string_match(it->value(), &req.scheme, problems)) return false;
  if (auto it = m.find("method"); it != m.end() && !string_match(it->value(), &req.method, problems)) return false;
  if (auto it = m.find("authority"); it != m.end() && !string_match(it->value(), &req.authority, problems)) return false;
  if (auto port = num_field(&m, "port"); port && to_int(*port) != req.port) return false;
  if (auto* hs = obj_field(m, "headers"))
    for (const auto& [name, sm] : *hs) {
      auto v = header_value(req.headers, name);
      if (!string_match(sm, v ? &*v : nullptr, problems)) return false;
    }
  if (auto* hs = obj_field(m, "withoutHeaders"))
    for (const auto& [name, sm] : *hs) {
      auto v = header_value(req.headers, name);
      if (string_match(sm, v ? &*v : nullptr, problems)) return false;
    }
  if (auto* qs = obj_field(m, "queryParams"))
    for (const auto& [name, sm] : *qs)
      if (!string_match_impl(sm, find_value(req.query, name), false, true, problems)) return false;
  // The simulated source is outside the mesh: it has no labels and no namespace.
  if (auto* sl = obj_field(m, "sourceLabels"); sl && !sl->empty()) return false;
  if (!str_field(&m, "sourceNamespace").empty()) return false;
  return true;
}

std::string qualify_host(std::string_view host, std::string_view ns) {
  std::string h(trim(host));
  if (h.empty() || h.front() == '*') return h;
  auto dots = std::count(h.begin(), h.end(), '.');
  if (dots == 0) return h + "." + std::string(ns) + ".svc.cluster.local";
  if (dots == 1) return h + ".svc.cluster.local";
  if (h.ends_with(".svc")) return h + ".cluster.local";
  return h;
}

bool host_covers(std::string_view vs_host, std::string_view fqdn) {
  if (vs_host == "*") return true;
  if (vs_host.starts_with("*.")) {
    auto suffix = vs_host.substr(1);  // ".example.com"
    return fqdn.size() > suffix.size() && fqdn.ends_with(suffix);
  }
  return vs_host == fqdn;
}

bool pod_ready(const json::object& pod) {
  auto* md = metadata(pod);
  if (md && md->contains("deletionTimestamp") && !md->at("deletionTimestamp").is_null()) return false;
  auto* status = obj_field(pod, "status");
  if (!status) return false;
  if (auto* conds = arr_field(*status, "conditions"); conds && !conds->empty()) {
    for (const auto& c : *conds) {
      if (!c.is_object()) continue;
      if (str_field(&c.get_object(), "type") == "Ready") return str_field(&c.get_object(), "status") == "True";
    }
    return false;
  }
  return str_field(status, "phase") == "Running";
}

workload_behaviour parse_behaviour(const json::object* a, std::vector<std::string>& problems) {
  workload_behaviour b;
  if (!a) return b;
  auto get = [&](std::string_view k) -> std::optional<std::string_view> {
    auto it = a->find(k);
    if (it == a->end() || !it->value().is_string()) return std::nullopt;
    return std::string_view(it->value().get_string());
  };
  if (auto s = get(annotations::error_rate)) {
    auto v = parse_double(*s);
    if (!v || *v < 0 || *v > 1)
      problems.push_back(std::string(annotations::error_rate) + " \"" + std::string(*s) + "\" is not between 0 and 1; using 0");
    else
      b.error_rate = *v;
  }
  if (auto s = get(annotations::latency_ms)) {
    auto v = parse_double(*s);
    if (!v || *v < 0 || *v > max_latency_ms)
      problems.push_back(std::string(annotations::latency_ms) + " \"" + std::string(*s) + "\" is not a number of milliseconds up to an hour; using " +
                         fraction_text(default_latency_ms));
    else
      b.latency_ms = *v;
  }
  if (auto s = get(annotations::error_code)) {
    auto v = parse_double(*s);
    if (!v || *v < 100 || *v > 599 || std::floor(*v) != *v)
      problems.push_back(std::string(annotations::error_code) + " \"" + std::string(*s) + "\" is not an HTTP status; using 500");
    else
      b.error_code = static_cast<int>(*v);
  }
  return b;
}

traffic_plan plan_traffic(const cluster_objects& objects) { return planner(objects).run(); }

}  // namespace kubesim::world
