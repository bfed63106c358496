#include "core/services.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>

namespace canaryd::core {

namespace json = boost::json;

namespace {

// The value and error types can both be strings: name the error explicitly.
template <class T>
service_result<T> fail(std::string message) {
  return service_result<T>(boost::system::in_place_error, std::move(message));
}

using update_result = service_result<std::optional<std::string>>;

constexpr std::string_view toolkit_reconcile_key = "kustomize.toolkit.fluxcd.io/reconcile";
constexpr std::string_view helm_drift_detection_key = "helm.toolkit.fluxcd.io/driftDetection";
constexpr std::string_view kubectl_annotation = "kubectl.kubernetes.io/last-applied-configuration";

service_result<json::value> parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return fail<json::value>(std::string(what) + " is not valid JSON: " + ec.message());
  if (!v.is_object()) return fail<json::value>(std::string(what) + " is not a JSON object");
  return v;
}

const json::value* at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto key : path) {
    const auto* o = cur->if_object();
    if (!o) return nullptr;
    auto it = o->find(key);
    if (it == o->end()) return nullptr;
    cur = &it->value();
  }
  return cur;
}

std::string string_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const auto* p = at(v, path);
  if (!p || !p->is_string()) return {};
  return std::string(p->get_string());
}

int int_of(const json::value* p) {
  if (!p) return 0;
  if (p->is_int64()) return static_cast<int>(p->get_int64());
  if (p->is_uint64()) return static_cast<int>(p->get_uint64());
  if (p->is_double()) return static_cast<int>(p->get_double());
  return 0;
}

std::map<std::string, std::string> string_map(const json::value* p) {
  std::map<std::string, std::string> out;
  if (!p || !p->is_object()) return out;
  for (const auto& kv : p->get_object()) {
    if (kv.value().is_string()) out[std::string(kv.key())] = std::string(kv.value().get_string());
  }
  return out;
}

json::object to_json(const std::map<std::string, std::string>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

json::value to_json(const int_or_string& p) {
  if (p.is_string) return json::value(p.string_value);
  return json::value(p.int_value);
}

json::object to_json(const service_port& p) {
  json::object o;
  o["name"] = p.name;
  o["protocol"] = p.protocol;
  if (!p.app_protocol.empty()) o["appProtocol"] = p.app_protocol;
  o["port"] = p.port;
  o["targetPort"] = to_json(p.target_port);
  if (p.node_port > 0) o["nodePort"] = p.node_port;
  return o;
}

json::array to_json(const std::vector<service_port>& ports) {
  json::array a;
  for (const auto& p : ports) a.push_back(to_json(p));
  return a;
}

// A port as the API server returns it; absent protocol and targetPort get the server's defaults
// (TCP, the port) so a Service written without them compares equal.
service_port port_from_json(const json::value& v) {
  service_port p;
  p.name = string_at(v, {"name"});
  if (auto s = string_at(v, {"protocol"}); !s.empty()) p.protocol = s;
  p.port = int_of(at(v, {"port"}));
  p.app_protocol = string_at(v, {"appProtocol"});
  p.node_port = int_of(at(v, {"nodePort"}));
  const auto* tp = at(v, {"targetPort"});
  if (tp && tp->is_string()) {
    p.target_port.is_string = true;
    p.target_port.string_value = std::string(tp->get_string());
  } else if (tp && int_of(tp) != 0) {
    p.target_port.int_value = int_of(tp);
  } else {
    p.target_port.int_value = p.port;
  }
  return p;
}

std::vector<service_port> sorted_ports(std::vector<service_port> ports) {
  std::stable_sort(ports.begin(), ports.end(), [](const service_port& a, const service_port& b) {
    return a.port != b.port ? a.port < b.port : a.name < b.name;
  });
  return ports;
}

json::object owner_reference(const canary& c) {
  json::object o;
  o["apiVersion"] = "flagger.app/v1beta1";
  o["kind"] = "Canary";
  o["name"] = c.metadata.name;
  o["uid"] = c.metadata.uid;
  o["controller"] = true;
  o["blockOwnerDeletion"] = true;
  return o;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Go's %v of a []string: "[a b c]".
std::string go_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ' ';
    out += v[i];
  }
  return out + "]";
}

// The existing Service `obj` (an object value) brought to the desired ports and selector (and,
// when `with_metadata`, labels and annotations); true when anything changed.
bool apply_desired(json::object& obj, const desired_service& s, bool with_metadata) {
  bool changed = false;
  json::value& spec_v = obj["spec"];
  if (!spec_v.is_object()) spec_v = json::object{};
  json::object& spec = spec_v.get_object();

  std::vector<service_port> existing;
  if (auto it = spec.find("ports"); it != spec.end() && it->value().is_array()) {
    for (const auto& p : it->value().get_array()) existing.push_back(port_from_json(p));
  }
  // Flagger copies the nodePorts of same-named ports so a NodePort/LoadBalancer apex keeps them.
  std::vector<service_port> wanted = s.ports;
  for (const auto& e : existing) {
    for (auto& w : wanted) {
      if (w.name == e.name && e.node_port > 0) {
        w.node_port = e.node_port;
        break;
      }
    }
  }
  auto selector = string_map(spec.if_contains("selector"));
  if (sorted_ports(wanted) != sorted_ports(existing) || selector != s.selector) {
    spec["ports"] = to_json(wanted);
    spec["selector"] = to_json(s.selector);
    changed = true;
  }
  if (!s.traffic_distribution.empty()) {
    const auto* td = spec.if_contains("trafficDistribution");
    if (!td || !td->is_string() || td->get_string() != s.traffic_distribution) {
      spec["trafficDistribution"] = s.traffic_distribution;
      changed = true;
    }
  }

  json::value& meta_v = obj["metadata"];
  if (!meta_v.is_object()) meta_v = json::object{};
  json::object& meta = meta_v.get_object();
  auto labels = string_map(meta.if_contains("labels"));
  auto annotations = string_map(meta.if_contains("annotations"));
  if (with_metadata) {
    auto want_labels = s.labels;
    auto want_annotations = s.annotations;
    for (const auto& k : s.unmanaged_labels) {
      if (auto it = labels.find(k); it != labels.end()) want_labels[k] = it->second;
    }
    for (const auto& k : s.unmanaged_annotations) {
      if (auto it = annotations.find(k); it != annotations.end()) want_annotations[k] = it->second;
    }
    if (want_labels != labels) {
      labels = want_labels;
      meta["labels"] = to_json(labels);
      changed = true;
    }
    if (want_annotations != annotations) {
      annotations = want_annotations;
      changed = true;
    }
  }
  if (changed) {
    // Flagger filters the clone's annotations on every update, taken-over Services included.
    filter_metadata(annotations);
    meta["annotations"] = to_json(annotations);
  }
  return changed;
}

}  // namespace

void filter_metadata(std::map<std::string, std::string>& annotations) {
  annotations[std::string(toolkit_reconcile_key)] = "disabled";
  annotations[std::string(helm_drift_detection_key)] = "disabled";
}

std::string_view to_string(service_role r) {
  switch (r) {
    case service_role::apex: return "apex";
    case service_role::primary: return "primary";
    case service_role::canary: return "canary";
    case service_role::restore: return "restore";
  }
  return "?";
}

std::vector<std::pair<std::string, int>> discover_ports(const canary& c, std::string_view template_spec_json) {
  std::map<std::string, int> ports;
  boost::system::error_code ec;
  json::value spec = json::parse(template_spec_json, ec);
  if (ec) return {};
  const auto* containers = at(spec, {"containers"});
  if (!containers || !containers->is_array()) return {};
  const auto& svc = c.spec.service;
  for (const auto& container : containers->get_array()) {
    std::string cname = string_at(container, {"name"});
    if (cname == "istio-proxy" || cname == "envoy") continue;
    const auto* cports = at(container, {"ports"});
    if (!cports || !cports->is_array()) continue;
    std::size_t index = 0;
    for (const auto& p : cports->get_array()) {
      std::size_t i = index++;
      int container_port = int_of(at(p, {"containerPort"}));
      std::string pname = string_at(p, {"name"});
      bool target_unset = !svc.target_port || (!svc.target_port->is_string && svc.target_port->int_value == 0);
      if (target_unset) {
        if (container_port == svc.port) continue;
      } else if (svc.target_port->is_string) {
        if (pname == svc.target_port->string_value) continue;
      } else if (container_port == svc.target_port->int_value) {
        continue;
      }
      std::string name = pname.empty() ? "tcp-" + cname + "-" + std::to_string(i) : pname;
      ports[name] = container_port;
    }
  }
  return {ports.begin(), ports.end()};
}

service_result<target_metadata> read_target_metadata(const canary& c, std::string_view target_json,
                                                     const std::vector<std::string>& selector_labels) {
  std::string kind = lower(c.spec.target_ref.kind.empty() ? "Deployment" : c.spec.target_ref.kind);
  auto v = parse(target_json, kind + " " + c.target_id());
  if (!v) return fail<target_metadata>(v.error());
  auto match_labels = string_map(at(*v, {"spec", "selector", "matchLabels"}));
  target_metadata t;
  for (const auto& l : selector_labels) {
    if (auto it = match_labels.find(l); it != match_labels.end()) {
      t.label = l;
      t.label_value = it->second;
      break;
    }
  }
  if (t.label.empty()) {
    return fail<target_metadata>(kind + " " + c.target_id() + " spec.selector.matchLabels must contain one of " +
                                 go_list(selector_labels));
  }
  if (c.spec.service.port_discovery) {
    if (const auto* ts = at(*v, {"spec", "template", "spec"})) t.ports = discover_ports(c, json::serialize(*ts));
  }
  return t;
}

desired_service build_service(const canary& c, const target_metadata& t, service_role role) {
  const auto& svc = c.spec.service;
  desired_service s;
  s.namespace_ = c.metadata.namespace_;
  const custom_metadata* custom = nullptr;
  switch (role) {
    case service_role::apex:
      s.name = c.apex_service_name();
      s.selector[t.label] = t.label_value + "-primary";
      if (svc.apex) custom = &*svc.apex;
      break;
    case service_role::primary:
      s.name = c.primary_service_name();
      s.selector[t.label] = t.label_value + "-primary";
      if (svc.primary) custom = &*svc.primary;
      break;
    case service_role::canary:
      s.name = c.canary_service_name();
      s.selector[t.label] = t.label_value;
      if (svc.canary) custom = &*svc.canary;
      break;
    case service_role::restore:
      s.name = c.apex_service_name();
      s.selector[t.label] = t.label_value;
      break;
  }
  if (custom) {
    s.labels = custom->labels;
    s.annotations = custom->annotations;
  }
  s.labels[t.label] = s.name;
  filter_metadata(s.annotations);

  service_port main;
  main.name = c.port_name();
  main.port = svc.port;
  main.target_port.int_value = svc.port;
  if (svc.target_port && (svc.target_port->is_string || svc.target_port->int_value != 0)) {
    main.target_port = *svc.target_port;
  }
  main.app_protocol = svc.app_protocol;
  s.ports.push_back(main);
  for (const auto& [name, port] : t.ports) {
    service_port p;
    p.name = name;
    p.port = port;
    p.target_port.int_value = port;
    s.ports.push_back(p);
  }
  s.headless = svc.headless;
  s.traffic_distribution = svc.traffic_distribution;
  if (svc.unmanaged) {
    s.unmanaged_labels = svc.unmanaged->labels;
    s.unmanaged_annotations = svc.unmanaged->annotations;
  }
  return s;
}

service_set build_services(const canary& c, const target_metadata& t) {
  return {build_service(c, t, service_role::apex), build_service(c, t, service_role::primary),
          build_service(c, t, service_role::canary)};
}

std::string service_create_body(const canary& c, const desired_service& s) {
  json::object meta;
  meta["name"] = s.name;
  meta["namespace"] = s.namespace_;
  meta["labels"] = to_json(s.labels);
  meta["annotations"] = to_json(s.annotations);
  meta["ownerReferences"] = json::array{owner_reference(c)};
  json::object spec;
  spec["type"] = "ClusterIP";
  if (s.headless) spec["clusterIP"] = "None";
  spec["selector"] = to_json(s.selector);
  spec["ports"] = to_json(s.ports);
  if (!s.traffic_distribution.empty()) spec["trafficDistribution"] = s.traffic_distribution;
  json::object obj;
  obj["apiVersion"] = "v1";
  obj["kind"] = "Service";
  obj["metadata"] = std::move(meta);
  obj["spec"] = std::move(spec);
  return json::serialize(obj);
}

std::pair<bool, bool> owned_by_canary(std::string_view service_json, std::string_view canary_name) {
  boost::system::error_code ec;
  json::value v = json::parse(service_json, ec);
  if (ec) return {false, false};
  const auto* refs = at(v, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return {false, false};
  for (const auto& r : refs->get_array()) {
    const auto* ctl = at(r, {"controller"});
    if (!ctl || !ctl->is_bool() || !ctl->get_bool()) continue;
    // metav1.GetControllerOf: the first controller ref is the one.
    if (string_at(r, {"kind"}) != "Canary") return {false, false};
    return {true, string_at(r, {"name"}) == canary_name};
  }
  return {false, false};
}

service_result<std::optional<std::string>> service_update_body(const canary& c, const desired_service& s,
                                                               std::string_view existing_json) {
  auto v = parse(existing_json, "service " + s.name + "." + s.namespace_);
  if (!v) return fail<std::optional<std::string>>(v.error());
  bool owned = owned_by_canary(existing_json, c.metadata.name).second;
  if (!apply_desired(v->get_object(), s, owned)) return update_result(std::optional<std::string>{});
  return update_result(std::optional<std::string>{json::serialize(*v)});
}

service_result<std::optional<std::string>> apex_finalize_body(const canary& c, const target_metadata& t,
                                                              std::string_view existing_json) {
  auto v = parse(existing_json, "service " + c.apex_service_name() + "." + c.metadata.namespace_);
  if (!v) return fail<std::optional<std::string>>(v.error());
  auto [has_canary_owner, owned] = owned_by_canary(existing_json, c.metadata.name);
  if (has_canary_owner || owned) return update_result(std::optional<std::string>{});
  json::object& obj = v->get_object();
  auto annotations = string_map(at(*v, {"metadata", "annotations"}));
  if (auto it = annotations.find(std::string(kubectl_annotation)); it != annotations.end()) {
    boost::system::error_code ec;
    json::value stored = json::parse(it->second, ec);
    if (ec || !stored.is_object()) {
      return fail<std::optional<std::string>>("router " + c.apex_service_name() + "." + c.metadata.namespace_ +
                                              " failed to unMarshal annotation " + std::string(kubectl_annotation));
    }
    auto selector = string_map(at(stored, {"spec", "selector"}));
    json::value& spec_v = obj["spec"];
    if (!spec_v.is_object()) spec_v = json::object{};
    if (string_map(spec_v.get_object().if_contains("selector")) == selector) return update_result(std::optional<std::string>{});
    spec_v.get_object()["selector"] = to_json(selector);
    return update_result(std::optional<std::string>{json::serialize(*v)});
  }
  auto s = build_service(c, t, service_role::restore);
  if (!apply_desired(obj, s, false)) return update_result(std::optional<std::string>{});
  return update_result(std::optional<std::string>{json::serialize(*v)});
}

}  // namespace canaryd::core
