#include "daemon/ownership.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <utility>

namespace canaryd {

namespace {

namespace json = boost::json;

const json::value* at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto key : path) {
    if (!cur->is_object()) return nullptr;
    cur = cur->as_object().if_contains(key);
    if (!cur) return nullptr;
  }
  return cur;
}

std::string text_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* s = at(v, path);
  return s && s->is_string() ? std::string(s->as_string()) : std::string();
}

std::string split_ns(const std::string& key) { return key.substr(0, key.find('/')); }
std::string split_name(const std::string& key) {
  auto slash = key.find('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

}  // namespace

std::vector<std::string> ownership::canary_changed(const std::string& key) {
  const std::string ns = split_ns(key);
  auto obj = k_.canaries.get(ns, split_name(key));
  if (!obj) return drop(key);
  auto it = claims_.find(key);
  if (it != claims_.end() && it->second.version == obj->resource_version()) return {};
  claim next;
  next.version = obj->resource_version();
  boost::system::error_code ec;
  json::value v = json::parse(obj->json(), ec);
  if (!ec) {
    next.created = text_at(v, {"metadata", "creationTimestamp"});
    next.driven = !text_at(v, {"status", "phase"}).empty();
    std::string kind = text_at(v, {"spec", "targetRef", "kind"});
    const std::string target = text_at(v, {"spec", "targetRef", "name"});
    std::string apex = text_at(v, {"spec", "service", "name"});
    if (apex.empty()) apex = target;
    // A Knative Service is not a core Service, and a Knative Canary generates no Services.
    if (kind == "Service" && text_at(v, {"spec", "targetRef", "apiVersion"}).starts_with("serving.knative.dev/")) {
      kind = "Service.serving.knative.dev";
      apex.clear();
    }
    if (!target.empty()) next.keys.push_back(fmt::format("{}/target/{}/{}", ns, kind, target));
    if (!apex.empty()) next.keys.push_back(fmt::format("{}/service/{}", ns, apex));
  }
  std::vector<std::string> wake;
  if (it != claims_.end() && it->second.keys == next.keys && it->second.created == next.created &&
      it->second.driven == next.driven) {
    it->second.version = next.version;
    return wake;
  }
  wake = drop(key);
  // Only the claimants this one now ranks ahead of lose their standing (a new Canary is almost
  // always the youngest: it wakes nobody, so a namespace of N Canaries on one target costs N
  // wakes, not N^2).
  const rank mine = rank_of(next, key);
  for (const auto& k : next.keys) {
    auto& set = index_[k];
    for (const auto& other : set) {
      auto c = claims_.find(other);
      if (c == claims_.end() || mine < rank_of(c->second, other)) wake.push_back(other);
    }
    set.insert(key);
  }
  claims_[key] = std::move(next);
  std::sort(wake.begin(), wake.end());
  wake.erase(std::unique(wake.begin(), wake.end()), wake.end());
  std::erase(wake, key);
  return wake;
}

ownership::rank ownership::rank_of(const claim& c, const std::string& key) {
  return {c.created, !c.driven, split_name(key)};
}

std::vector<std::string> ownership::canary_removed(const std::string& key) { return drop(key); }

std::vector<std::string> ownership::drop(const std::string& key) {
  std::vector<std::string> wake;
  auto it = claims_.find(key);
  if (it == claims_.end()) return wake;
  for (const auto& k : it->second.keys) {
    auto ix = index_.find(k);
    if (ix == index_.end()) continue;
    ix->second.erase(key);
    // The oldest remaining claimant may go on now; the others stay refused by it.
    std::string oldest;
    rank best;
    for (const auto& other : ix->second) {
      auto c = claims_.find(other);
      if (c == claims_.end()) continue;
      rank r = rank_of(c->second, other);
      if (oldest.empty() || r < best) {
        best = std::move(r);
        oldest = other;
      }
    }
    if (!oldest.empty()) wake.push_back(oldest);
    if (ix->second.empty()) index_.erase(ix);
  }
  claims_.erase(it);
  return wake;
}

std::string ownership::older_claimant(const std::string& index_key, const std::string& self) const {
  auto ix = index_.find(index_key);
  auto mine = claims_.find(self);
  if (ix == index_.end() || mine == claims_.end()) return {};
  std::string best;
  rank best_rank = rank_of(mine->second, self);
  for (const auto& other : ix->second) {
    if (other == self) continue;
    auto c = claims_.find(other);
    if (c == claims_.end()) continue;
    rank r = rank_of(c->second, other);
    if (r < best_rank) {
      best_rank = std::move(r);
      best = other;
    }
  }
  return best;
}

const ownership::controller& ownership::controller_of(const char* kind, const k8s::object& o) const {
  controller& c = controllers_[fmt::format("{}/{}", kind, o.key())];
  std::string version = fmt::format("{}/{}", o.uid(), o.resource_version());
  if (c.version == version) return c;
  c = controller{std::move(version), {}, {}};
  // Most objects have no ownerReferences at all: no parse.
  if (o.json().find("\"ownerReferences\"") == std::string_view::npos) return c;
  boost::system::error_code ec;
  json::value v = json::parse(o.json(), ec);
  if (ec) return c;
  const json::value* refs = at(v, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return c;
  for (const auto& r : refs->as_array()) {
    const json::value* ctl = at(r, {"controller"});
    if (!ctl || !ctl->is_bool() || !ctl->as_bool()) continue;
    // metav1.GetControllerOf: the first controller reference is the one.
    c.kind = text_at(r, {"kind"});
    c.name = text_at(r, {"name"});
    break;
  }
  return c;
}

std::string ownership::foreign(const core::canary& c, const char* kind, const k8s::object& o, bool any_controller) const {
  const controller& ctl = controller_of(kind, o);
  if (ctl.kind.empty()) return {};
  if (ctl.kind == "Canary" && ctl.name == c.metadata.name) return {};
  if (!any_controller && ctl.kind != "Canary") return {};
  return fmt::format("refused: {} {}.{} is controlled by {} {}, not by this Canary; canaryd changes only what it "
                     "created or was handed",
                     kind, o.name(), c.metadata.namespace_, ctl.kind, ctl.name);
}

std::string ownership::foreign_mesh_object(const core::canary& c, const std::string& kind, const k8s::object& o) const {
  return foreign(c, kind.c_str(), o, true);
}

std::string ownership::refusal(const core::canary& c, const core::observed_state& obs,
                               const std::vector<std::pair<std::string, k8s::object_ptr>>& mesh_objects) const {
  const std::string& ns = c.metadata.namespace_;
  const std::string self = k8s::object_key(ns, c.metadata.name);
  const auto& ref = c.spec.target_ref;
  // 1. One Canary per target and per apex Service.
  const bool knative = c.is_knative_target();
  const std::string claim_kind = knative ? "Service.serving.knative.dev" : ref.kind;
  if (auto other = older_claimant(fmt::format("{}/target/{}/{}", ns, claim_kind, ref.name), self); !other.empty()) {
    return fmt::format("refused: {} {}.{} is already the target of Canary {} (the oldest Canary of a target drives it)",
                       ref.kind, ref.name, ns, split_name(other));
  }
  const std::string apex = c.apex_service_name();
  if (auto other = knative ? std::string() : older_claimant(fmt::format("{}/service/{}", ns, apex), self); !other.empty()) {
    return fmt::format("refused: Service {}.{} is already the apex Service of Canary {} (the oldest Canary of a "
                       "Service drives it)",
                       apex, ns, split_name(other));
  }
  // The workload kinds canaryd drives; other kinds are refused as unsupported elsewhere.
  k8s::cache* workloads = ref.kind == "Deployment"    ? &k_.deployments
                          : ref.kind == "DaemonSet"   ? &k_.daemonsets
                          : ref.kind == "StatefulSet" ? &k_.statefulsets
                          : ref.kind == "Service" && !c.is_knative_target() ? &k_.services
                                                      : nullptr;
  if (workloads == nullptr) return {};
  // 2. The target is not another Canary's object.
  if (auto target = workloads->get(ns, ref.name)) {
    const controller& ctl = controller_of(ref.kind.c_str(), *target);
    if (ctl.kind == "Canary") {
      return fmt::format("refused: target {} {}.{} is controlled by Canary {}; a Canary's target must not "
                         "be an object canaryd manages for another Canary",
                         ref.kind, ref.name, ns, ctl.name);
    }
  }
  // 3. What canaryd creates for this Canary is this Canary's (or nobody's).
  if (auto why = foreign(c, ref.kind.c_str(), workloads->get(ns, c.primary_workload_name()), true); !why.empty())
    return why;
  if (auto why = foreign(c, "Service", k_.services.get(ns, c.primary_service_name()), true); !why.empty()) return why;
  if (auto why = foreign(c, "Service", k_.services.get(ns, c.canary_service_name()), true); !why.empty()) return why;
  // A Service target's copies are named after the target, whatever the apex (with the kubernetes
  // provider, service.name may differ): its -canary copy too.
  if (ref.kind == "Service" && !c.is_knative_target() && ref.name + "-canary" != c.canary_service_name()) {
    if (auto why = foreign(c, "Service", k_.services.get(ns, ref.name + "-canary"), true); !why.empty()) return why;
  }
  if (c.spec.autoscaler_ref && c.spec.autoscaler_ref->kind == "HorizontalPodAutoscaler") {
    if (auto why = foreign(c, "HorizontalPodAutoscaler", k_.hpas.get(ns, c.spec.autoscaler_ref->name + "-primary"), true);
        !why.empty())
      return why;
  }
  for (const auto& [key, _] : obs.tracked_configs) {
    const auto slash = key.find('/');
    if (slash == std::string::npos) continue;
    const bool is_cm = key.substr(0, slash) == "configmap";
    const std::string copy = key.substr(slash + 1) + "-primary";
    auto why = foreign(c, is_cm ? "ConfigMap" : "Secret", (is_cm ? k_.configmaps : k_.secrets).get(ns, copy), true);
    if (!why.empty()) return why;
  }
  // 4. The mesh objects canaryd creates for this Canary are this Canary's (or nobody's).
  for (const auto& [kind, o] : mesh_objects) {
    if (auto why = foreign(c, kind.c_str(), o, true); !why.empty()) return why;
  }
  // 5. The apex may be the user's Service, never another Canary's.
  if (auto why = foreign(c, "Service", k_.services.get(ns, apex), false); !why.empty()) return why;
  return {};
}

}  // namespace canaryd
