#include "sim/api/builtin.hpp"

#include "sim/api/base64.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace kubesim::builtin {
namespace json = boost::json;

namespace {

const std::vector<std::string> standard_verbs = {"create", "delete", "deletecollection", "get",
                                                 "list",   "patch",  "update",           "watch"};

resource_info make(std::string group, std::string version, std::string resource, std::string singular,
                   std::string kind, bool namespaced, std::vector<std::string> short_names,
                   std::vector<std::string> categories, bool status, bool generation) {
  resource_info r;
  r.group = std::move(group);
  r.version = std::move(version);
  r.resource = std::move(resource);
  r.singular = std::move(singular);
  r.kind = std::move(kind);
  r.list_kind = r.kind + "List";
  r.namespaced = namespaced;
  r.short_names = std::move(short_names);
  r.categories = std::move(categories);
  r.status_subresource = status;
  r.tracks_generation = generation;
  r.verbs = standard_verbs;
  r.custom = false;
  return r;
}

void scalable(resource_info& r) {
  r.scale_subresource = true;
  r.scale_spec_replicas_path = ".spec.replicas";
  r.scale_status_replicas_path = ".status.replicas";
  // A built-in Scale's status.selector is spec.selector rendered as a string (the API layer does it).
  r.scale_label_selector_path = ".spec.selector";
}

json::object& object_at(json::object& o, std::string_view key) {
  auto& v = o[key];
  if (!v.is_object()) v = json::object();
  return v.as_object();
}

void set_default(json::object& o, std::string_view key, json::value v) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) o[key] = std::move(v);
}

std::string_view str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v && v->is_string()) return v->get_string();
  return {};
}

const json::object* obj(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

const json::array* arr(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? v->if_array() : nullptr;
}

void default_probe(json::object& c, std::string_view key) {
  auto it = c.find(key);
  if (it == c.end() || !it->value().is_object()) return;
  auto& p = it->value().as_object();
  set_default(p, "timeoutSeconds", 1);
  set_default(p, "periodSeconds", 10);
  set_default(p, "successThreshold", 1);
  set_default(p, "failureThreshold", 3);
  if (auto* h = p.if_contains("httpGet"); h && h->is_object()) set_default(h->as_object(), "scheme", "HTTP");
}

void default_container(json::object& c) {
  set_default(c, "terminationMessagePath", "/dev/termination-log");
  set_default(c, "terminationMessagePolicy", "File");
  set_default(c, "resources", json::object());
  if (!c.contains("imagePullPolicy")) {
    // Always for ":latest" or an untagged image, else IfNotPresent (SetDefaults_Container).
    std::string_view image = str(c, "image");
    auto slash = image.rfind('/');
    auto tail = slash == std::string_view::npos ? image : image.substr(slash + 1);
    bool digest = tail.find('@') != std::string_view::npos;
    auto colon = tail.rfind(':');
    bool latest = !digest && (colon == std::string_view::npos || tail.substr(colon + 1) == "latest");
    c["imagePullPolicy"] = latest ? "Always" : "IfNotPresent";
  }
  if (auto* ports = c.if_contains("ports"); ports && ports->is_array())
    for (auto& p : ports->as_array())
      if (p.is_object()) set_default(p.as_object(), "protocol", "TCP");
  default_probe(c, "readinessProbe");
  default_probe(c, "livenessProbe");
  default_probe(c, "startupProbe");
}

void default_pod_spec(json::object& spec) {
  set_default(spec, "restartPolicy", "Always");
  set_default(spec, "terminationGracePeriodSeconds", 30);
  set_default(spec, "dnsPolicy", "ClusterFirst");
  set_default(spec, "securityContext", json::object());
  set_default(spec, "schedulerName", "default-scheduler");
  for (auto key : {"containers", "initContainers"})
    if (auto* cs = spec.if_contains(key); cs && cs->is_array())
      for (auto& c : cs->as_array())
        if (c.is_object()) default_container(c.as_object());
  if (auto* vs = spec.if_contains("volumes"); vs && vs->is_array())
    for (auto& v : vs->as_array()) {
      if (!v.is_object()) continue;
      for (auto key : {"configMap", "secret"})
        if (auto* src = v.as_object().if_contains(key); src && src->is_object())
          set_default(src->as_object(), "defaultMode", 420);
    }
}

void default_template(json::object& spec) {
  auto it = spec.find("template");
  if (it == spec.end() || !it->value().is_object()) return;
  auto& t = it->value().as_object();
  if (auto* ps = t.if_contains("spec"); ps && ps->is_object()) default_pod_spec(ps->as_object());
}

std::string ip_string(std::uint32_t n) {
  return fmt::format("{}.{}.{}.{}", (n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255);
}

void default_service(json::object& o, const json::object* old, std::uint32_t& next_ip) {
  auto& spec = object_at(o, "spec");
  set_default(spec, "type", "ClusterIP");
  set_default(spec, "sessionAffinity", "None");
  if (auto* ports = spec.if_contains("ports"); ports && ports->is_array())
    for (auto& p : ports->as_array()) {
      if (!p.is_object()) continue;
      auto& po = p.as_object();
      set_default(po, "protocol", "TCP");
      if (!po.contains("targetPort") && po.contains("port")) po["targetPort"] = po["port"];
    }
  if (str(spec, "type") != "ExternalName") {
    // Allocated values survive an update that omits them (patchAllocatedValues).
    if (str(spec, "clusterIP").empty()) {
      std::string ip;
      if (old)
        if (auto* os = obj(*old, "spec")) ip = std::string(str(*os, "clusterIP"));
      if (ip.empty()) ip = ip_string(next_ip++);
      spec["clusterIP"] = ip;
    }
    if (!spec.contains("clusterIPs")) spec["clusterIPs"] = json::array{spec["clusterIP"]};
    set_default(spec, "ipFamilies", json::array{"IPv4"});
    set_default(spec, "ipFamilyPolicy", "SingleStack");
    set_default(spec, "internalTrafficPolicy", "Cluster");
  }
  if (!o.contains("status")) o["status"] = json::object{{"loadBalancer", json::object()}};
}

// --- validation helpers ---

std::string go_value(const json::value& v) {
  if (v.is_string()) return json::serialize(v);  // quoted, as Go's %q
  return json::serialize(v);
}

field_error required(std::string field) { return {"FieldValueRequired", std::move(field), "Required value"}; }

field_error invalid_value(std::string field, const json::value& v, std::string_view detail) {
  return {"FieldValueInvalid", std::move(field), fmt::format("Invalid value: {}: {}", go_value(v), detail)};
}

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool dns_label(std::string_view s, bool alpha_start) {
  if (s.empty() || s.size() > 63) return false;
  if (alpha_start ? !(s.front() >= 'a' && s.front() <= 'z') : !is_lower_alnum(s.front())) return false;
  if (!is_lower_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_lower_alnum(c) || c == '-'; });
}

// RFC 1123 subdomain: dot-separated labels (no per-label length limit in Kubernetes), 253 in all.
bool dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    auto dot = s.find('.', start);
    auto part = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (part.empty() || !is_lower_alnum(part.front()) || !is_lower_alnum(part.back()) ||
        !std::all_of(part.begin(), part.end(), [](char c) { return is_lower_alnum(c) || c == '-'; }))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// matchLabels + matchExpressions against a label map.
bool selector_matches(const json::object& sel, const json::object* labels) {
  auto label = [&](std::string_view k) -> const json::value* { return labels ? labels->if_contains(k) : nullptr; };
  if (auto* ml = obj(sel, "matchLabels"))
    for (const auto& kv : *ml) {
      auto* v = label(kv.key());
      if (!v || *v != kv.value()) return false;
    }
  if (auto* me = arr(sel, "matchExpressions"))
    for (const auto& e : *me) {
      if (!e.is_object()) return false;
      const auto& eo = e.as_object();
      auto key = str(eo, "key");
      auto op = str(eo, "operator");
      auto* v = label(key);
      bool in = false;
      if (auto* vals = arr(eo, "values"))
        for (const auto& x : *vals)
          if (v && *v == x) in = true;
      if (op == "In" && !in) return false;
      if (op == "NotIn" && in) return false;
      if (op == "Exists" && !v) return false;
      if (op == "DoesNotExist" && v) return false;
    }
  return true;
}

void validate_containers(const json::object& pod_spec, const std::string& path, std::vector<field_error>& errs) {
  auto* cs = pod_spec.if_contains("containers");
  if (!cs || !cs->is_array() || cs->as_array().empty()) {
    errs.push_back(required(path + ".containers"));
    return;
  }
  std::set<std::string> names;
  for (auto key : {"initContainers", "containers"}) {
    auto* list = arr(pod_spec, key);
    if (!list) continue;
    for (std::size_t i = 0; i < list->size(); ++i) {
      auto field = fmt::format("{}.{}[{}]", path, key, i);
      if (!(*list)[i].is_object()) {
        errs.push_back(invalid_value(field, (*list)[i], "must be an object"));
        continue;
      }
      const auto& c = (*list)[i].as_object();
      auto name = str(c, "name");
      if (name.empty()) {
        errs.push_back(required(field + ".name"));
      } else if (!dns_label(name, false)) {
        errs.push_back(invalid_value(field + ".name", c.at("name"),
                                     "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                                     "characters or '-', and must start and end with an alphanumeric character"));
      } else if (!names.insert(std::string(name)).second) {
        errs.push_back({"FieldValueDuplicate", field + ".name", fmt::format("Duplicate value: \"{}\"", name)});
      }
      if (std::string(key) == "containers" && str(c, "image").empty()) errs.push_back(required(field + ".image"));
      if (auto* ports = arr(c, "ports"))
        for (std::size_t p = 0; p < ports->size(); ++p) {
          const auto* po = (*ports)[p].if_object();
          if (!po) continue;
          auto* cp = po->if_contains("containerPort");
          auto pf = fmt::format("{}.ports[{}].containerPort", field, p);
          if (!cp) errs.push_back(required(pf));
          else if (!cp->is_int64() || cp->as_int64() < 1 || cp->as_int64() > 65535)
            errs.push_back(invalid_value(pf, *cp, "must be between 1 and 65535, inclusive"));
        }
    }
  }
}

void validate_replicas(const json::object& spec, std::string_view field, std::int64_t min,
                       std::vector<field_error>& errs) {
  auto* r = spec.if_contains(field);
  if (!r || r->is_null()) return;
  if (!r->is_int64() && !r->is_uint64()) {
    errs.push_back(invalid_value(fmt::format("spec.{}", field), *r, "must be an integer"));
    return;
  }
  if (r->is_int64() && r->as_int64() < min)
    errs.push_back(invalid_value(fmt::format("spec.{}", field), *r,
                                 fmt::format("must be greater than or equal to {}", min)));
}

void validate_workload(const json::object& o, const json::object* old, bool has_replicas,
                       std::vector<field_error>& errs) {
  auto* spec = obj(o, "spec");
  if (!spec) {
    errs.push_back(required("spec.selector"));
    errs.push_back(required("spec.template.spec.containers"));
    return;
  }
  if (has_replicas) validate_replicas(*spec, "replicas", 0, errs);
  auto* sel = obj(*spec, "selector");
  if (!sel) {
    errs.push_back(required("spec.selector"));
  } else {
    bool empty = (!obj(*sel, "matchLabels") || obj(*sel, "matchLabels")->empty()) &&
                 (!arr(*sel, "matchExpressions") || arr(*sel, "matchExpressions")->empty());
    if (empty) errs.push_back(invalid_value("spec.selector", *spec->if_contains("selector"), "empty selector is invalid for deployment"));
  }
  auto* tmpl = obj(*spec, "template");
  const json::object* tmeta = tmpl ? obj(*tmpl, "metadata") : nullptr;
  const json::object* tlabels = tmeta ? obj(*tmeta, "labels") : nullptr;
  if (sel && !selector_matches(*sel, tlabels))
    errs.push_back(invalid_value("spec.template.metadata.labels",
                                 tlabels ? json::value(*tlabels) : json::value(json::object()),
                                 "`selector` does not match template `labels`"));
  const json::object* pspec = tmpl ? obj(*tmpl, "spec") : nullptr;
  if (!pspec) errs.push_back(required("spec.template.spec.containers"));
  else validate_containers(*pspec, "spec.template.spec", errs);
  // apps/v1 selectors are immutable.
  if (old && sel)
    if (auto* os = obj(*old, "spec"))
      if (auto* osel = obj(*os, "selector"); osel && *osel != *sel)
        errs.push_back(invalid_value("spec.selector", json::value(*sel), "field is immutable"));
}

void validate_service(const json::object& o, const json::object* old, std::vector<field_error>& errs) {
  auto* spec = obj(o, "spec");
  if (!spec) return;
  auto type = str(*spec, "type");
  static const std::set<std::string_view> types = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"};
  if (!types.contains(type))
    errs.push_back({"FieldValueNotSupported", "spec.type",
                    fmt::format("Unsupported value: \"{}\": supported values: \"ClusterIP\", \"ExternalName\", "
                                "\"LoadBalancer\", \"NodePort\"",
                                type)});
  auto* ports = arr(*spec, "ports");
  if (type != "ExternalName" && str(*spec, "clusterIP") != "None" && (!ports || ports->empty()))
    errs.push_back(required("spec.ports"));
  if (ports) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < ports->size(); ++i) {
      auto* p = (*ports)[i].if_object();
      if (!p) continue;
      auto field = fmt::format("spec.ports[{}]", i);
      auto* port = p->if_contains("port");
      if (!port) errs.push_back(required(field + ".port"));
      else if (!port->is_int64() || port->as_int64() < 1 || port->as_int64() > 65535)
        errs.push_back(invalid_value(field + ".port", *port, "must be between 1 and 65535, inclusive"));
      if (ports->size() > 1 && str(*p, "name").empty()) errs.push_back(required(field + ".name"));
      else if (!str(*p, "name").empty() && !names.insert(std::string(str(*p, "name"))).second)
        errs.push_back({"FieldValueDuplicate", field + ".name", fmt::format("Duplicate value: \"{}\"", str(*p, "name"))});
    }
  }
  if (old)
    if (auto* os = obj(*old, "spec")) {
      auto oip = str(*os, "clusterIP");
      auto nip = str(*spec, "clusterIP");
      if (!oip.empty() && !nip.empty() && oip != nip && str(*os, "type") != "ExternalName" && type != "ExternalName")
        errs.push_back(invalid_value("spec.clusterIPs[0]", spec->at("clusterIP"),
                                     "may not change once set"));
    }
}

void validate_hpa(const json::object& o, std::vector<field_error>& errs) {
  auto* spec = obj(o, "spec");
  if (!spec) {
    errs.push_back(required("spec.scaleTargetRef.kind"));
    errs.push_back(required("spec.scaleTargetRef.name"));
    errs.push_back(invalid_value("spec.maxReplicas", json::value(0), "must be greater than or equal to 1"));
    return;
  }
  auto* ref = obj(*spec, "scaleTargetRef");
  if (!ref || str(*ref, "kind").empty()) errs.push_back(required("spec.scaleTargetRef.kind"));
  if (!ref || str(*ref, "name").empty()) errs.push_back(required("spec.scaleTargetRef.name"));
  auto* mx = spec->if_contains("maxReplicas");
  if (!mx || !mx->is_int64() || mx->as_int64() < 1)
    errs.push_back(invalid_value("spec.maxReplicas", mx ? *mx : json::value(0), "must be greater than or equal to 1"));
  validate_replicas(*spec, "minReplicas", 1, errs);
}

}  // namespace

std::vector<resource_info> resources() {
  std::vector<resource_info> out;
  out.push_back(make("", "v1", "namespaces", "namespace", "Namespace", false, {"ns"}, {}, true, false));
  out.back().verbs = {"create", "delete", "get", "list", "patch", "update", "watch"};
  out.push_back(make("", "v1", "services", "service", "Service", true, {"svc"}, {"all"}, true, false));
  out.back().verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"};
  out.push_back(make("", "v1", "configmaps", "configmap", "ConfigMap", true, {"cm"}, {}, false, false));
  out.push_back(make("", "v1", "secrets", "secret", "Secret", true, {}, {}, false, false));
  out.push_back(make("", "v1", "events", "event", "Event", true, {"ev"}, {}, false, false));
  out.push_back(make("", "v1", "pods", "pod", "Pod", true, {"po"}, {"all"}, true, false));
  out.push_back(make("", "v1", "endpoints", "endpoints", "Endpoints", true, {"ep"}, {}, false, false));
  out.push_back(make("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, {"sa"}, {}, false, false));
  // Made by the StatefulSet controller from volumeClaimTemplates and bound at once (sim/world).
  out.push_back(make("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, {"pvc"},
                     {}, true, false));
  out.push_back(make("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, {"pv"}, {}, true,
                     false));
  out.push_back(make("apps", "v1", "deployments", "deployment", "Deployment", true, {"deploy"}, {"all"}, true, true));
  scalable(out.back());
  out.push_back(make("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, {"ds"}, {"all"}, true, true));
  out.push_back(make("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, {"sts"}, {"all"}, true, true));
  scalable(out.back());
  out.push_back(make("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, {"rs"}, {"all"}, true, true));
  scalable(out.back());
  out.push_back(make("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler",
                     "HorizontalPodAutoscaler", true, {"hpa"}, {"all"}, true, true));
  out.push_back(make("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, {}, {}, false, false));
  // RBAC objects are stored and served (so `kubectl apply -k deploy/` works) but not enforced.
  out.push_back(make("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, {}, {},
                     false, false));
  out.push_back(make("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
                     "ClusterRoleBinding", false, {}, {}, false, false));
  out.push_back(make("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, {}, {}, false, false));
  out.push_back(make("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, {}, {},
                     false, false));
  // Stored and served (deploy/ and its chart create one); evictions are not simulated.
  out.push_back(make("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true,
                     {"pdb"}, {}, true, true));
  out.push_back(make("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, {"ing"}, {}, true, true));
  out.push_back(make("events.k8s.io", "v1", "events", "event", "Event", true, {"ev"}, {}, false, false));
  out.push_back(make("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
                     "CustomResourceDefinition", false, {"crd", "crds"}, {"api-extensions"}, true, true));
  return out;
}

void apply_defaults(const resource_info& r, json::object& o, const json::object* old, std::uint32_t& next_ip) {
  if (r.custom) return;
  const auto& res = r.resource;
  if (r.group == "apps") {
    auto& spec = object_at(o, "spec");
    if (res == "deployments") {
      set_default(spec, "replicas", 1);
      set_default(spec, "revisionHistoryLimit", 10);
      set_default(spec, "progressDeadlineSeconds", 600);
      auto& strategy = object_at(spec, "strategy");
      set_default(strategy, "type", "RollingUpdate");
      if (str(strategy, "type") == "RollingUpdate") {
        auto& ru = object_at(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", "25%");
        set_default(ru, "maxSurge", "25%");
      }
    } else if (res == "replicasets") {
      set_default(spec, "replicas", 1);
    } else if (res == "daemonsets") {
      set_default(spec, "revisionHistoryLimit", 10);
      auto& strategy = object_at(spec, "updateStrategy");
      set_default(strategy, "type", "RollingUpdate");
      if (str(strategy, "type") == "RollingUpdate") {
        auto& ru = object_at(strategy, "rollingUpdate");
        set_default(ru, "maxUnavailable", 1);
        set_default(ru, "maxSurge", 0);
      }
    } else if (res == "statefulsets") {
      set_default(spec, "replicas", 1);
      set_default(spec, "revisionHistoryLimit", 10);
      set_default(spec, "podManagementPolicy", "OrderedReady");
      auto& strategy = object_at(spec, "updateStrategy");
      set_default(strategy, "type", "RollingUpdate");
      if (str(strategy, "type") == "RollingUpdate") set_default(object_at(strategy, "rollingUpdate"), "partition", 0);
      auto& retention = object_at(spec, "persistentVolumeClaimRetentionPolicy");
      set_default(retention, "whenDeleted", "Retain");
      set_default(retention, "whenScaled", "Retain");
    }
    default_template(spec);
    return;
  }
  if (!r.group.empty()) return;
  if (res == "pods") {
    default_pod_spec(object_at(o, "spec"));
  } else if (res == "services") {
    default_service(o, old, next_ip);
  } else if (res == "secrets") {
    set_default(o, "type", "Opaque");
    // stringData is write-only, as on a real API server: its entries are base64-encoded into
    // data (overwriting same-named keys) and it is not stored. Non-string values are left for
    // validate() to reject.
    if (auto* sd = o.if_contains("stringData"); sd && sd->is_object()) {
      const auto& entries = sd->as_object();
      if (std::all_of(entries.begin(), entries.end(), [](const auto& kv) { return kv.value().is_string(); })) {
        auto& data = object_at(o, "data");
        for (const auto& kv : entries) data[kv.key()] = base64_encode(std::string_view(kv.value().as_string()));
        o.erase("stringData");
      }
    } else if (sd && sd->is_null()) {
      o.erase("stringData");
    }
  } else if (res == "namespaces") {
    auto& meta = object_at(o, "metadata");
    auto name = std::string(str(meta, "name"));
    if (!name.empty()) object_at(meta, "labels")["kubernetes.io/metadata.name"] = name;
    auto& spec = object_at(o, "spec");
    set_default(spec, "finalizers", json::array{"kubernetes"});
  }
}

std::vector<field_error> validate(const resource_info& r, const json::object& o, const json::object* old) {
  std::vector<field_error> errs;
  if (r.custom) return errs;
  if (r.group == "apps") {
    validate_workload(o, old, r.resource != "daemonsets", errs);
  } else if (r.group.empty() && r.resource == "services") {
    validate_service(o, old, errs);
  } else if (r.group.empty() && r.resource == "pods") {
    auto* spec = obj(o, "spec");
    if (!spec) errs.push_back(required("spec.containers"));
    else validate_containers(*spec, "spec", errs);
  } else if (r.group == "autoscaling") {
    validate_hpa(o, errs);
  } else if (r.group.empty() && (r.resource == "configmaps" || r.resource == "secrets")) {
    for (auto key : {"data", "binaryData", "stringData"}) {
      auto* d = o.if_contains(key);
      if (!d || d->is_null()) continue;
      if (!d->is_object()) {
        errs.push_back(invalid_value(key, *d, "must be a map of strings"));
        continue;
      }
      for (const auto& kv : d->as_object()) {
        if (!kv.value().is_string())
          errs.push_back(invalid_value(fmt::format("{}[{}]", key, std::string_view(kv.key())), kv.value(),
                                       "must be a string"));
        auto k = std::string_view(kv.key());
        bool ok = !k.empty() && k.size() <= 253 && k != "." && k != ".." &&
                  std::all_of(k.begin(), k.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
        if (!ok)
          errs.push_back(invalid_value(fmt::format("{}[{}]", key, k), json::value(k),
                                       "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                                       "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                                       "is '[-._a-zA-Z0-9]+')"));
      }
    }
  }
  return errs;
}

name_rule name_rule_of(const resource_info& r) {
  if (r.group.empty() && r.resource == "namespaces") return name_rule::dns_label;
  if (r.group.empty() && r.resource == "services") return name_rule::dns1035_label;
  if (r.group.empty() && r.resource == "events") return name_rule::path_segment;
  return name_rule::dns_subdomain;
}

std::string check_name(name_rule rule, std::string_view name) {
  switch (rule) {
    case name_rule::dns_label:
      if (dns_label(name, false)) return {};
      return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    case name_rule::dns1035_label:
      if (dns_label(name, true)) return {};
      return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
             "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
             "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    case name_rule::path_segment:
      if (name == "." || name == "..") return fmt::format("may not be '{}'", name);
      if (name.find('/') != std::string_view::npos) return "may not contain '/'";
      if (name.find('%') != std::string_view::npos) return "may not contain '%'";
      return {};
    case name_rule::dns_subdomain:
      if (dns_subdomain(name)) return {};
      return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
             "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  return {};
}

std::string check_label_value(std::string_view v) {
  if (v.size() > 63) return "must be no more than 63 characters";
  if (v.empty()) return {};
  bool ok = is_alnum(v.front()) && is_alnum(v.back()) &&
            std::all_of(v.begin(), v.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
  if (ok) return {};
  return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
         "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
         "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
}

std::string check_qualified_name(std::string_view k) {
  auto slash = k.find('/');
  std::string_view name = k;
  if (slash != std::string_view::npos) {
    auto prefix = k.substr(0, slash);
    name = k.substr(slash + 1);
    if (prefix.empty()) return "prefix part must be non-empty";
    if (!dns_subdomain(prefix))
      return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
             "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  if (name.empty()) return "name part must be non-empty";
  if (name.size() > 63) return "name part must be no more than 63 characters";
  bool ok = is_alnum(name.front()) && is_alnum(name.back()) &&
            std::all_of(name.begin(), name.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
  if (ok) return {};
  return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
         "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
         "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
}

std::vector<field_error> validate_metadata(const resource_info& r, const json::object& meta) {
  std::vector<field_error> errs;
  auto name = str(meta, "name");
  if (auto why = check_name(name_rule_of(r), name); !why.empty())
    errs.push_back(invalid_value("metadata.name", json::value(name), why));
  if (auto* l = meta.if_contains("labels"); l && !l->is_null()) {
    if (!l->is_object()) {
      errs.push_back(invalid_value("metadata.labels", *l, "must be a map of strings"));
    } else {
      for (const auto& kv : l->as_object()) {
        if (auto why = check_qualified_name(kv.key()); !why.empty())
          errs.push_back(invalid_value("metadata.labels", json::value(kv.key()), why));
        if (!kv.value().is_string()) {
          errs.push_back(invalid_value("metadata.labels", kv.value(), "must be a string"));
        } else if (auto why2 = check_label_value(kv.value().get_string()); !why2.empty()) {
          errs.push_back(invalid_value("metadata.labels", kv.value(), why2));
        }
      }
    }
  }
  if (auto* a = meta.if_contains("annotations"); a && !a->is_null()) {
    if (!a->is_object()) {
      errs.push_back(invalid_value("metadata.annotations", *a, "must be a map of strings"));
    } else {
      std::size_t total = 0;
      for (const auto& kv : a->as_object()) {
        if (auto why = check_qualified_name(kv.key()); !why.empty())
          errs.push_back(invalid_value("metadata.annotations", json::value(kv.key()), why));
        if (!kv.value().is_string()) errs.push_back(invalid_value("metadata.annotations", kv.value(), "must be a string"));
        else total += kv.key().size() + kv.value().get_string().size();
      }
      if (total > 256 * 1024)
        errs.push_back({"FieldValueTooLong", "metadata.annotations",
                        "Too long: must have at most 262144 bytes"});
    }
  }
  if (auto* f = meta.if_contains("finalizers"); f && !f->is_null()) {
    if (!f->is_array()) {
      errs.push_back(invalid_value("metadata.finalizers", *f, "must be a list of strings"));
    } else {
      for (std::size_t i = 0; i < f->as_array().size(); ++i) {
        const auto& v = f->as_array()[i];
        if (!v.is_string()) {
          errs.push_back(invalid_value(fmt::format("metadata.finalizers[{}]", i), v, "must be a string"));
        } else if (auto why = check_qualified_name(v.get_string()); !why.empty()) {
          errs.push_back(invalid_value(fmt::format("metadata.finalizers[{}]", i), v, why));
        }
      }
    }
  }
  if (auto* refs = meta.if_contains("ownerReferences"); refs && !refs->is_null()) {
    if (!refs->is_array()) {
      errs.push_back(invalid_value("metadata.ownerReferences", *refs, "must be a list"));
    } else {
      int controllers = 0;
      for (std::size_t i = 0; i < refs->as_array().size(); ++i) {
        auto field = fmt::format("metadata.ownerReferences[{}]", i);
        const auto* ref = refs->as_array()[i].if_object();
        if (!ref) {
          errs.push_back(invalid_value(field, refs->as_array()[i], "must be an object"));
          continue;
        }
        if (str(*ref, "apiVersion").empty()) errs.push_back(invalid_value(field + ".apiVersion", json::value(""), "version must not be empty"));
        if (str(*ref, "kind").empty()) errs.push_back(invalid_value(field + ".kind", json::value(""), "kind must not be empty"));
        if (str(*ref, "name").empty()) errs.push_back(invalid_value(field + ".name", json::value(""), "name must not be empty"));
        if (str(*ref, "uid").empty()) errs.push_back(invalid_value(field + ".uid", json::value(""), "uid must not be empty"));
        if (auto* c = ref->if_contains("controller"); c && c->is_bool() && c->get_bool()) ++controllers;
      }
      if (controllers > 1)
        errs.push_back(invalid_value("metadata.ownerReferences", *refs, "Only one reference can have Controller set to true"));
    }
  }
  return errs;
}

}  // namespace kubesim::builtin
