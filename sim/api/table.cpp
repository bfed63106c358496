#include "sim/api/table.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <optional>
#include <initializer_list>
#include <unordered_map>

#include "sim/json/jsonpath.hpp"
#include "sim/json/selector.hpp"

namespace kubesim::table {
namespace json = boost::json;
using clock = std::chrono::system_clock;

namespace {

const json::value* at(const json::object& o, std::initializer_list<std::string_view> path) {
  const json::object* cur = &o;
  const json::value* v = nullptr;
  for (auto key : path) {
    if (!cur) return nullptr;
    v = cur->if_contains(key);
    if (!v) return nullptr;
    cur = v->if_object();
  }
  return v;
}

std::string str(const json::object& o, std::initializer_list<std::string_view> path, std::string_view fallback = "") {
  auto* v = at(o, path);
  if (v && v->is_string()) return std::string(v->get_string());
  return std::string(fallback);
}

std::int64_t num(const json::object& o, std::initializer_list<std::string_view> path) {
  auto* v = at(o, path);
  if (!v) return 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return 0;
}

const json::array* arr(const json::object& o, std::initializer_list<std::string_view> path) {
  auto* v = at(o, path);
  return v ? v->if_array() : nullptr;
}

std::size_t count(const json::object& o, std::initializer_list<std::string_view> path) {
  auto* v = at(o, path);
  if (!v) return 0;
  if (auto* a = v->if_array()) return a->size();
  if (auto* m = v->if_object()) return m->size();
  return 0;
}

std::optional<clock::time_point> parse_time(std::string_view s) {
  std::tm tm{};
  int y, mo, d, h, mi, sec;
  if (std::sscanf(std::string(s).c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) != 6) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return clock::from_time_t(timegm(&tm));
}

json::value age(const json::object& o, std::initializer_list<std::string_view> path, clock::time_point now) {
  auto s = str(o, path);
  auto t = parse_time(s);
  if (!t) return "<unknown>";
  return json::value(human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t)));
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

std::string selector_text(const json::object& o, std::initializer_list<std::string_view> path) {
  auto* v = at(o, path);
  if (!v) return "<none>";
  auto sel = label_selector_from_object(*v);
  if (!sel) return "<invalid>";
  auto s = sel->to_string();
  return s.empty() ? "<none>" : s;
}

std::string map_text(const json::object& o, std::initializer_list<std::string_view> path) {
  auto* v = at(o, path);
  if (!v || !v->is_object() || v->as_object().empty()) return "<none>";
  std::vector<std::string> parts;
  for (const auto& kv : v->as_object())
    parts.push_back(std::string(kv.key()) + "=" + (kv.value().is_string() ? std::string(kv.value().get_string()) : json::serialize(kv.value())));
  std::sort(parts.begin(), parts.end());
  return join(parts, ",");
}

std::pair<std::string, std::string> containers_images(const json::object& o, std::initializer_list<std::string_view> spec_path) {
  std::vector<std::string> names, images;
  auto* spec = at(o, spec_path);
  if (spec && spec->is_object())
    if (auto* cs = arr(spec->as_object(), {"containers"}))
      for (const auto& c : *cs)
        if (c.is_object()) {
          names.push_back(str(c.as_object(), {"name"}));
          images.push_back(str(c.as_object(), {"image"}));
        }
  return {join(names, ","), join(images, ",")};
}

struct col {
  const char* name;
  const char* type;
  const char* description;
  int priority = 0;
  const char* format = "";
};

json::object column(const col& c) {
  return json::object{{"name", c.name}, {"type", c.type}, {"format", c.format}, {"description", c.description}, {"priority", c.priority}};
}

const col name_col{"Name", "string", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.", 0, "name"};
const col age_col{"Age", "string", "CreationTimestamp is a timestamp representing the server time when this object was created."};

std::vector<col> builtin_columns(const resource_info& r) {
  const auto& res = r.resource;
  if (r.group == "apps") {
    if (res == "deployments")
      return {name_col, {"Ready", "string", "Number of the pod with ready state"},
              {"Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."},
              {"Available", "integer", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."},
              age_col, {"Containers", "string", "Names of each container in the template.", 1},
              {"Images", "string", "Images referenced by each container in the template.", 1},
              {"Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.", 1}};
    if (res == "replicasets")
      return {name_col, {"Desired", "integer", "Replicas is the number of desired replicas."},
              {"Current", "integer", "Replicas is the most recently observed number of replicas."},
              {"Ready", "integer", "The number of ready replicas for this replica set."}, age_col,
              {"Containers", "string", "Names of each container in the template.", 1},
              {"Images", "string", "Images referenced by each container in the template.", 1},
              {"Selector", "string", "Selector is a label query over pods that should match the replica count.", 1}};
    if (res == "daemonsets")
      return {name_col, {"Desired", "integer", "The total number of nodes that should be running the daemon pod."},
              {"Current", "integer", "The number of nodes that are running at least 1 daemon pod."},
              {"Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."},
              {"Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"},
              {"Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."},
              {"Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."}, age_col,
              {"Containers", "string", "Names of each container in the template.", 1},
              {"Images", "string", "Images referenced by each container in the template.", 1},
              {"Selector", "string", "A label query over pods that are managed by the daemon set.", 1}};
    if (res == "statefulsets")
      return {name_col, {"Ready", "string", "Number of the pod with ready state"}, age_col,
              {"Containers", "string", "Names of each container in the template.", 1},
              {"Images", "string", "Images referenced by each container in the template.", 1}};
  }
  if (r.group.empty()) {
    if (res == "pods")
      return {name_col, {"Ready", "string", "The aggregate readiness state of this pod for accepting traffic."},
              {"Status", "string", "The aggregate status of the containers in this pod."},
              {"Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
              age_col, {"IP", "string", "The IP address assigned to the pod", 1},
              {"Node", "string", "The name of the node the pod is assigned to", 1},
              {"Nominated Node", "string", "The name of the node where the pod is nominated to run", 1},
              {"Readiness Gates", "string", "The readiness gates of the pod", 1}};
    if (res == "services")
      return {name_col, {"Type", "string", "The type of the service."},
              {"Cluster-IP", "string", "The IP address of the service."},
              {"External-IP", "string", "The external IP address of the service."},
              {"Port(s)", "string", "The ports of the service."}, age_col,
              {"Selector", "string", "Route service traffic to pods with label keys and values matching this selector.", 1}};
    if (res == "configmaps") return {name_col, {"Data", "integer", "Number of keys in the config map."}, age_col};
    if (res == "secrets")
      return {name_col, {"Type", "string", "The type of the secret"}, {"Data", "integer", "The number of keys in the secret."}, age_col};
    if (res == "namespaces") return {name_col, {"Status", "string", "The status of the namespace"}, age_col};
    if (res == "endpoints") return {name_col, {"Endpoints", "string", "Endpoints of the service"}, age_col};
    if (res == "serviceaccounts") return {name_col, {"Secrets", "string", "The number of secrets in the service account"}, age_col};
    if (res == "events")
      return {{"Last Seen", "string", "Time when last event occurred"}, {"Type", "string", "Type of this event."},
              {"Reason", "string", "Reason why this event was generated."},
              {"Object", "string", "The object that this event is about."},
              {"Subobject", "string", "The subobject this event is about.", 1},
              {"Source", "string", "The source of this event.", 1},
              {"Message", "string", "A human-readable description of the status of this operation."},
              {"First Seen", "string", "Time when first event occurred", 1},
              {"Count", "string", "Number of times this event occurred", 1},
              {"Name", "string", "Name of the event", 1, "name"}};
  }
  if (r.group == "autoscaling" && res == "horizontalpodautoscalers")
    return {name_col, {"Reference", "string", "Reference to the target"}, {"Targets", "string", "Current and target utilization"},
            {"MinPods", "string", "Minimum number of pods"}, {"MaxPods", "string", "Maximum number of pods"},
            {"Replicas", "string", "Current number of replicas"}, age_col};
  if (r.group == "coordination.k8s.io" && res == "leases")
    return {name_col, {"Holder", "string", "The holder of the lease"}, age_col};
  if (r.group == "networking.k8s.io" && res == "ingresses")
    return {name_col, {"Class", "string", "The name of the IngressClass resource that should be used"},
            {"Hosts", "string", "Hosts that incoming requests are matched against"},
            {"Address", "string", "Address is a list containing ingress points for the load-balancer"},
            {"Ports", "string", "Ports of TLS configurations that open"}, age_col};
  if (r.group == "apiextensions.k8s.io")
    return {name_col, {"Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created."}};
  return {name_col, age_col};
}

std::string service_ports(const json::object& o) {
  std::vector<std::string> parts;
  if (auto* ps = arr(o, {"spec", "ports"}))
    for (const auto& p : *ps) {
      if (!p.is_object()) continue;
      const auto& po = p.as_object();
      auto s = std::to_string(num(po, {"port"}));
      if (num(po, {"nodePort"}) > 0) s += ":" + std::to_string(num(po, {"nodePort"}));
      s += "/" + str(po, {"protocol"}, "TCP");
      parts.push_back(s);
    }
  return parts.empty() ? "<none>" : join(parts, ",");
}

std::string external_ips(const json::object& o) {
  auto type = str(o, {"spec", "type"}, "ClusterIP");
  std::vector<std::string> ips;
  if (auto* e = arr(o, {"spec", "externalIPs"}))
    for (const auto& v : *e)
      if (v.is_string()) ips.emplace_back(v.get_string());
  if (type == "ExternalName") return str(o, {"spec", "externalName"});
  if (type == "LoadBalancer") {
    if (auto* in = arr(o, {"status", "loadBalancer", "ingress"}))
      for (const auto& v : *in)
        if (v.is_object()) {
          auto ip = str(v.as_object(), {"ip"});
          ips.push_back(ip.empty() ? str(v.as_object(), {"hostname"}) : ip);
        }
    if (ips.empty()) return "<pending>";
  }
  return ips.empty() ? "<none>" : join(ips, ",");
}

std::string pod_status(const json::object& o) {
  if (at(o, {"metadata", "deletionTimestamp"})) return "Terminating";
  auto reason = str(o, {"status", "reason"});
  if (!reason.empty()) return reason;
  if (auto* cs = arr(o, {"status", "containerStatuses"}))
    for (const auto& c : *cs)
      if (c.is_object()) {
        auto w = str(c.as_object(), {"state", "waiting", "reason"});
        if (!w.empty()) return w;
        auto t = str(c.as_object(), {"state", "terminated", "reason"});
        if (!t.empty()) return t;
      }
  return str(o, {"status", "phase"}, "Pending");
}

json::array builtin_cells(const resource_info& r, const json::object& o, clock::time_point now) {
  const auto& res = r.resource;
  json::value name = json::value(str(o, {"metadata", "name"}));
  json::value created = age(o, {"metadata", "creationTimestamp"}, now);
  if (r.group == "apps") {
    auto [containers, images] = containers_images(o, {"spec", "template", "spec"});
    if (res == "deployments")
      return {name, fmt::format("{}/{}", num(o, {"status", "readyReplicas"}), num(o, {"spec", "replicas"})),
              num(o, {"status", "updatedReplicas"}), num(o, {"status", "availableReplicas"}), created, containers, images,
              selector_text(o, {"spec", "selector"})};
    if (res == "replicasets")
      return {name, num(o, {"spec", "replicas"}), num(o, {"status", "replicas"}), num(o, {"status", "readyReplicas"}),
              created, containers, images, selector_text(o, {"spec", "selector"})};
    if (res == "daemonsets")
      return {name, num(o, {"status", "desiredNumberScheduled"}), num(o, {"status", "currentNumberScheduled"}),
              num(o, {"status", "numberReady"}), num(o, {"status", "updatedNumberScheduled"}),
              num(o, {"status", "numberAvailable"}), map_text(o, {"spec", "template", "spec", "nodeSelector"}), created,
              containers, images, selector_text(o, {"spec", "selector"})};
    if (res == "statefulsets")
      return {name, fmt::format("{}/{}", num(o, {"status", "readyReplicas"}), num(o, {"spec", "replicas"})), created,
              containers, images};
  }
  if (r.group.empty()) {
    if (res == "pods") {
      std::int64_t ready = 0, restarts = 0;
      if (auto* cs = arr(o, {"status", "containerStatuses"}))
        for (const auto& c : *cs)
          if (c.is_object()) {
            if (auto* rd = c.as_object().if_contains("ready"); rd && rd->is_bool() && rd->get_bool()) ++ready;
            restarts += num(c.as_object(), {"restartCount"});
          }
      return {name, fmt::format("{}/{}", ready, count(o, {"spec", "containers"})), pod_status(o), restarts, created,
              str(o, {"status", "podIP"}, "<none>"), str(o, {"spec", "nodeName"}, "<none>"),
              str(o, {"status", "nominatedNodeName"}, "<none>"), "<none>"};
    }
    if (res == "services") {
      auto ip = str(o, {"spec", "clusterIP"}, "<none>");
      return {name, str(o, {"spec", "type"}, "ClusterIP"), ip, external_ips(o), service_ports(o), created,
              map_text(o, {"spec", "selector"})};
    }
    if (res == "configmaps")
      return {name, static_cast<std::int64_t>(count(o, {"data"}) + count(o, {"binaryData"})), created};
    if (res == "secrets")
      return {name, str(o, {"type"}, "Opaque"), static_cast<std::int64_t>(count(o, {"data"})), created};
    if (res == "namespaces") return {name, str(o, {"status", "phase"}, "Active"), created};
    if (res == "endpoints") {
      std::vector<std::string> eps;
      if (auto* subsets = arr(o, {"subsets"}))
        for (const auto& s : *subsets) {
          if (!s.is_object()) continue;
          auto* addrs = arr(s.as_object(), {"addresses"});
          auto* ports = arr(s.as_object(), {"ports"});
          if (!addrs) continue;
          for (const auto& a : *addrs) {
            if (!a.is_object()) continue;
            auto ip = str(a.as_object(), {"ip"});
            if (ports && !ports->empty()) {
              for (const auto& p : *ports)
                if (p.is_object()) eps.push_back(fmt::format("{}:{}", ip, num(p.as_object(), {"port"})));
            } else {
              eps.push_back(ip);
            }
          }
        }
      std::string text = eps.empty() ? "<none>" : join(std::vector<std::string>(eps.begin(), eps.begin() + std::min<std::size_t>(eps.size(), 3)), ",");
      if (eps.size() > 3) text += fmt::format(" + {} more...", eps.size() - 3);
      return {name, text, created};
    }
    if (res == "serviceaccounts") return {name, static_cast<std::int64_t>(count(o, {"secrets"})), created};
    if (res == "events") {
      auto last = str(o, {"lastTimestamp"});
      if (last.empty()) last = str(o, {"eventTime"});
      json::value last_seen = "<unknown>";
      if (auto t = parse_time(last))
        last_seen = human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
      else
        last_seen = created;
      auto kind = str(o, {"involvedObject", "kind"});
      for (auto& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto object = kind + "/" + str(o, {"involvedObject", "name"});
      json::value first_seen = age(o, {"firstTimestamp"}, now);
      std::int64_t n = num(o, {"count"});
      return {last_seen, str(o, {"type"}), str(o, {"reason"}), object, str(o, {"involvedObject", "fieldPath"}),
              str(o, {"source", "component"}), str(o, {"message"}), first_seen, std::to_string(n ? n : 1), name};
    }
  }
  if (r.group == "autoscaling" && res == "horizontalpodautoscalers") {
    auto ref = str(o, {"spec", "scaleTargetRef", "kind"}) + "/" + str(o, {"spec", "scaleTargetRef", "name"});
    std::vector<std::string> targets;
    if (auto* ms = arr(o, {"spec", "metrics"}))
      for (const auto& m : *ms) {
        if (!m.is_object()) continue;
        const auto& mo = m.as_object();
        if (str(mo, {"type"}) == "Resource") {
          auto* util = at(mo, {"resource", "target", "averageUtilization"});
          targets.push_back(fmt::format("{}: <unknown>/{}", str(mo, {"resource", "name"}),
                                        util ? json::serialize(*util) + "%" : str(mo, {"resource", "target", "averageValue"})));
        } else {
          targets.push_back("<unknown>/" + str(mo, {"type"}));
        }
      }
    auto min = at(o, {"spec", "minReplicas"}) ? std::to_string(num(o, {"spec", "minReplicas"})) : std::string("<unset>");
    return {name, ref, targets.empty() ? "<none>" : join(targets, ", "), min,
            num(o, {"spec", "maxReplicas"}), num(o, {"status", "currentReplicas"}), created};
  }
  if (r.group == "coordination.k8s.io" && res == "leases") return {name, str(o, {"spec", "holderIdentity"}, "<unknown>"), created};
  if (r.group == "networking.k8s.io" && res == "ingresses") {
    std::vector<std::string> hosts, addrs;
    if (auto* rules = arr(o, {"spec", "rules"}))
      for (const auto& rule : *rules)
        if (rule.is_object()) hosts.push_back(str(rule.as_object(), {"host"}, "*"));
    if (auto* in = arr(o, {"status", "loadBalancer", "ingress"}))
      for (const auto& v : *in)
        if (v.is_object()) addrs.push_back(str(v.as_object(), {"ip"}, str(v.as_object(), {"hostname"})));
    return {name, str(o, {"spec", "ingressClassName"}, "<none>"), hosts.empty() ? "*" : join(hosts, ","),
            join(addrs, ","), count(o, {"spec", "tls"}) ? "80, 443" : "80", created};
  }
  if (r.group == "apiextensions.k8s.io") return {name, str(o, {"metadata", "creationTimestamp"})};
  return {name, created};
}

// JSONPaths of CRD columns, compiled once each (the io_context thread only).
const jsonpath* compiled(const std::string& expr) {
  static std::unordered_map<std::string, std::optional<jsonpath>> cache;
  auto it = cache.find(expr);
  if (it == cache.end()) {
    auto p = jsonpath::parse(expr);
    it = cache.emplace(expr, p ? std::optional<jsonpath>(*p) : std::nullopt).first;
  }
  return it->second ? &*it->second : nullptr;
}

// A plain ".a.b.c" path, walked without JSONPath (and without copying the object into a value).
bool simple_path(std::string_view p, std::vector<std::string_view>& keys) {
  if (p.starts_with("{") && p.ends_with("}")) p = p.substr(1, p.size() - 2);
  if (!p.starts_with(".")) return false;
  p.remove_prefix(1);
  while (!p.empty()) {
    auto dot = p.find('.');
    auto key = p.substr(0, dot);
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
        }))
      return false;
    keys.push_back(key);
    if (dot == std::string_view::npos) break;
    p.remove_prefix(dot + 1);
  }
  return !keys.empty();
}

json::value custom_cell(const printer_column& c, const json::object& obj, std::optional<json::value>& whole,
                        clock::time_point now) {
  const json::value* found = nullptr;
  std::vector<std::string_view> keys;
  if (simple_path(c.json_path, keys)) {
    const json::object* cur = &obj;
    for (auto k : keys) {
      if (!cur) {
        found = nullptr;
        break;
      }
      found = cur->if_contains(k);
      if (!found) break;
      cur = found->if_object();
    }
  } else {
    auto* path = compiled(c.json_path);
    if (!path) return nullptr;
    if (!whole) whole = json::value(obj);
    auto all = path->find(*whole);
    if (!all.empty()) found = all.front();
  }
  if (!found) return nullptr;
  const json::value& v = *found;
  if (c.type == "string") return json::value(jsonpath_text(v));
  if (c.type == "integer") {
    if (v.is_int64() || v.is_uint64()) return v;
    if (v.is_double()) return static_cast<std::int64_t>(v.get_double());
    return nullptr;
  }
  if (c.type == "number") return v.is_number() ? v : json::value(nullptr);
  if (c.type == "boolean") return v.is_bool() ? v : json::value(nullptr);
  if (c.type == "date") {
    if (!v.is_string()) return nullptr;
    auto t = parse_time(v.get_string());
    if (!t) return nullptr;
    return json::value(human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t)));
  }
  return v;
}

}  // namespace

std::string human_duration(std::chrono::seconds d) {
  long long seconds = d.count();
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return fmt::format("{}s", seconds);
  long long minutes = seconds / 60;
  if (minutes < 10) {
    long long s = seconds % 60;
    if (s == 0) return fmt::format("{}m", minutes);
    return fmt::format("{}m{}s", minutes, s);
  }
  if (minutes < 60 * 3) return fmt::format("{}m", minutes);
  long long hours = seconds / 3600;
  if (hours < 8) {
    long long m = minutes % 60;
    if (m == 0) return fmt::format("{}h", hours);
    return fmt::format("{}h{}m", hours, m);
  }
  if (hours < 48) return fmt::format("{}h", hours);
  if (hours < 24 * 8) {
    long long h = hours % 24;
    if (h == 0) return fmt::format("{}d", hours / 24);
    return fmt::format("{}d{}h", hours / 24, h);
  }
  if (hours < 24 * 365 * 2) return fmt::format("{}d", hours / 24);
  if (hours < 24 * 365 * 8) {
    long long dy = (hours / 24) % 365;
    if (dy == 0) return fmt::format("{}y", hours / 24 / 365);
    return fmt::format("{}y{}d", hours / 24 / 365, dy);
  }
  return fmt::format("{}y", hours / 24 / 365);
}

json::array column_definitions(const resource_info& r) {
  json::array out;
  if (!r.custom) {
    for (const auto& c : builtin_columns(r)) out.push_back(column(c));
    return out;
  }
  out.push_back(column(name_col));
  for (const auto& c : r.columns) {
    auto type = c.type == "date" ? std::string("date") : c.type;
    out.push_back(json::object{{"name", c.name}, {"type", type}, {"format", c.format}, {"description", c.description},
                               {"priority", c.priority}});
  }
  return out;
}

json::array cells(const resource_info& r, const json::object& obj, clock::time_point now) {
  if (!r.custom) return builtin_cells(r, obj, now);
  json::array out;
  out.emplace_back(str(obj, {"metadata", "name"}));
  std::optional<json::value> whole;  // for JSONPath, which evaluates over a value: copied once if needed
  for (const auto& c : r.columns) out.push_back(custom_cell(c, obj, whole, now));
  return out;
}

json::object partial_metadata(const json::object& obj, std::string_view api_version) {
  json::object out{{"kind", "PartialObjectMetadata"}, {"apiVersion", api_version}};
  if (auto* m = obj.if_contains("metadata")) out["metadata"] = *m;
  else out["metadata"] = json::object();
  return out;
}

json::object make(const resource_info& r, const std::vector<object_ptr>& items, include_object inc, bool with_columns,
                  clock::time_point now, json::object list_meta, std::string_view api_version) {
  json::array rows;
  for (const auto& item : items) {
    json::object row{{"cells", cells(r, *item, now)}};
    if (inc == include_object::object) row["object"] = *item;
    else if (inc == include_object::metadata) row["object"] = partial_metadata(*item, api_version);
    rows.push_back(std::move(row));
  }
  return json::object{{"kind", "Table"},
                      {"apiVersion", api_version},
                      {"metadata", std::move(list_meta)},
                      {"columnDefinitions", with_columns ? column_definitions(r) : json::array()},
                      {"rows", std::move(rows)}};
}

}  // namespace kubesim::table
