#include "sim/json/strategic_merge.hpp"

#include "sim/json/json_compare.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace kubesim {
namespace json = boost::json;

// One Go struct type's patch metadata: the fields whose tags say something (patchStrategy,
// patchMergeKey) or lead to such fields. Any other field has no strategy.
struct smp_type {
  struct field {
    std::string_view name;
    const smp_type* type = nullptr;  // the element type for lists; null: nothing known below
    bool merge = false;              // patchStrategy:"merge" (lists)
    std::string_view merge_key;      // patchMergeKey; empty for lists of scalars
    bool replace = false;            // patchStrategy:"replace" (maps)
  };
  std::vector<field> fields;

  const field* find(std::string_view n) const noexcept {
    for (const auto& f : fields)
      if (f.name == n) return &f;
    return nullptr;
  }
};

namespace {

// The tags of k8s.io/api for the kinds kubesim serves (core/v1, apps/v1, autoscaling/v2, ...).
struct registry {
  smp_type object_meta, container, pod_spec, pod_template, pod_status, pod, conditions_status, workload_spec,
      workload, service_spec, service_status, service, namespace_, service_account, plain;

  registry() {
    // A struct-typed field, and a list with patchStrategy merge (and its patchMergeKey).
    auto f = [](std::string_view name, const smp_type* type) { return smp_type::field{name, type, false, {}, false}; };
    auto m = [](std::string_view name, std::string_view key, const smp_type* type = nullptr) {
      return smp_type::field{name, type, true, key, false};
    };
    object_meta.fields = {
        m("ownerReferences", "uid"),
        m("finalizers", ""),
    };
    container.fields = {
        m("ports", "containerPort"),
        m("env", "name"),
        m("volumeMounts", "mountPath"),
        m("volumeDevices", "devicePath"),
    };
    pod_spec.fields = {
        m("volumes", "name"),
        m("initContainers", "name", &container),
        m("containers", "name", &container),
        m("ephemeralContainers", "name", &container),
        m("imagePullSecrets", "name"),
        m("hostAliases", "ip"),
        m("topologySpreadConstraints", "topologyKey"),
        m("resourceClaims", "name"),
        m("schedulingGates", "name"),
    };
    pod_template.fields = {f("metadata", &object_meta), f("spec", &pod_spec)};
    pod_status.fields = {
        m("conditions", "type"),
        m("podIPs", "ip"),
        m("hostIPs", "ip"),
        m("resourceClaimStatuses", "name"),
    };
    pod.fields = {f("metadata", &object_meta), f("spec", &pod_spec), f("status", &pod_status)};
    conditions_status.fields = {m("conditions", "type")};
    // Deployment, DaemonSet, ReplicaSet and StatefulSet specs share what matters: the pod
    // template (StatefulSet's volumeClaimTemplates and everything else have no strategy).
    workload_spec.fields = {f("template", &pod_template)};
    workload.fields = {f("metadata", &object_meta), f("spec", &workload_spec), f("status", &conditions_status)};
    service_spec.fields = {m("ports", "port")};
    service_status.fields = {m("conditions", "type")};
    service.fields = {f("metadata", &object_meta), f("spec", &service_spec), f("status", &service_status)};
    namespace_.fields = {f("metadata", &object_meta), f("status", &conditions_status)};
    service_account.fields = {f("metadata", &object_meta), m("secrets", "name")};
    // HorizontalPodAutoscaler (status.conditions by type), ConfigMap, Secret, Event, Endpoints,
    // Lease, Ingress, CustomResourceDefinition: only metadata and status conditions.
    plain.fields = {f("metadata", &object_meta), f("status", &conditions_status)};
  }
};

const registry& types() {
  static const registry r;
  return r;
}

using failure = std::optional<patch_error>;

patch_error internal(std::string m) { return {500, "", m, m}; }

std::string go_kind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: return "map";
    case json::kind::array: return "slice";
    case json::kind::string: return "string";
    case json::kind::bool_: return "bool";
    case json::kind::null: return "invalid";
    case json::kind::double_: return "float64";
    default: return "int64";
  }
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

constexpr std::string_view delete_from_primitive_list = "$deleteFromPrimitiveList";
constexpr std::string_view set_element_order = "$setElementOrder";

// "$setElementOrder/containers" -> "containers"; nullopt if there is no "/".
std::optional<std::string> extract_key(std::string_view s, std::string_view prefix) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos || s.substr(0, slash) != prefix) return std::nullopt;
  return std::string(s.substr(slash + 1));
}

// removeDirectives(): a map carrying "$patch" disappears (false), other directive keys are
// dropped, as decoding into the Go type would drop them.
bool strip_directives(json::value& v) {
  if (auto* o = v.if_object()) {
    if (o->contains("$patch")) return false;
    for (auto it = o->begin(); it != o->end();) {
      if (starts_with(it->key(), "$")) {
        it = o->erase(it);
        continue;
      }
      if (!strip_directives(it->value())) {
        it = o->erase(it);
        continue;
      }
      ++it;
    }
    return true;
  }
  if (auto* a = v.if_array()) {
    for (auto it = a->begin(); it != a->end();) {
      if (!strip_directives(*it)) {
        it = a->erase(it);
        continue;
      }
      ++it;
    }
  }
  return true;
}

// discardNullValuesFromPatch(): nulls mean "delete", and there is nothing to delete in a new member.
void discard_nulls(json::value& v) {
  if (auto* o = v.if_object()) {
    for (auto it = o->begin(); it != o->end();) {
      if (it->value().is_null()) {
        it = o->erase(it);
        continue;
      }
      discard_nulls(it->value());
      ++it;
    }
  } else if (auto* a = v.if_array()) {
    for (auto& e : *a) discard_nulls(e);
  }
}

const smp_type::field* lookup(const smp_type* t, std::string_view name) {
  return t == nullptr ? nullptr : t->find(name);
}

// The merge key value of a list element, or null if it has none.
const json::value* key_of(const json::value& item, std::string_view merge_key) {
  if (merge_key.empty()) return &item;
  const auto* o = item.if_object();
  if (o == nullptr) return nullptr;
  auto it = o->find(merge_key);
  return it == o->end() ? nullptr : &it->value();
}

// index(): the position of `item` in `list` by merge key (by value for scalars), or -1.
std::ptrdiff_t index_in(const json::array& list, const json::value& item, std::string_view merge_key) {
  const json::value* k = key_of(item, merge_key);
  if (k == nullptr) return -1;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json::value* lk = key_of(list[i], merge_key);
    if (lk != nullptr && json_equal(*lk, *k)) return static_cast<std::ptrdiff_t>(i);
  }
  return -1;
}

void sort_by(json::array& items, const json::array& order, std::string_view merge_key) {
  std::vector<std::pair<std::ptrdiff_t, json::value>> keyed;
  keyed.reserve(items.size());
  for (auto& v : items) {
    auto i = index_in(order, v, merge_key);
    keyed.emplace_back(i < 0 ? std::numeric_limits<std::ptrdiff_t>::max() : i, std::move(v));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  items.clear();
  for (auto& kv : keyed) items.push_back(std::move(kv.second));
}

// normalizeElementOrder() + mergeSortedSlice(): patch items in patch order, live-only items in
// live order, interleaved so that a live-only item goes before a patch item that follows it live.
json::array normalize_order(json::array patch_items, json::array server_only, const json::array& patch_order,
                            const json::array& server_order, std::string_view merge_key) {
  sort_by(patch_items, patch_order, merge_key);
  sort_by(server_only, server_order, merge_key);
  json::array out;
  out.reserve(patch_items.size() + server_only.size());
  std::size_t i = 0, j = 0;
  while (i < server_only.size() || j < patch_items.size()) {
    if (j >= patch_items.size()) {
      out.push_back(std::move(server_only[i++]));
      continue;
    }
    if (i >= server_only.size()) {
      out.push_back(std::move(patch_items[j++]));
      continue;
    }
    auto li = index_in(server_order, server_only[i], merge_key);
    auto ri = index_in(server_order, patch_items[j], merge_key);
    if (li >= 0 && ri >= 0 && li < ri) {
      out.push_back(std::move(server_only[i++]));
    } else {
      out.push_back(std::move(patch_items[j++]));
    }
  }
  return out;
}

// Splits `merged` into the items present in `by` and the others, each in merged order.
void partition(json::array merged, const json::array& by, std::string_view merge_key, json::array& present,
               json::array& absent) {
  for (auto& v : merged) {
    if (index_in(by, v, merge_key) >= 0) {
      present.push_back(std::move(v));
    } else {
      absent.push_back(std::move(v));
    }
  }
}

json::array ordered(json::array merged, const json::array& patch_order, const json::array& server_order,
                    std::string_view merge_key) {
  json::array present, absent;
  partition(std::move(merged), patch_order, merge_key, present, absent);
  return normalize_order(std::move(present), std::move(absent), patch_order, server_order, merge_key);
}

failure merge_map(json::object& original, json::object& patch, const smp_type* t);

// mergeSlice() for a list with patchStrategy merge.
failure merge_slice(json::array& original, json::array& patch, const smp_type::field& f, bool is_delete_list) {
  if (original.empty() && patch.empty()) return std::nullopt;
  // sliceElementType(): one element kind across both lists, and no lists of lists.
  std::optional<std::string> kind;
  for (const json::array* list : {&original, &patch}) {
    for (const auto& v : *list) {
      if (v.is_array()) return unprocessable("lists of lists are not supported");
      std::string k = go_kind(v);
      if (kind && *kind != k) {
        return internal("list element types are not identical: " + json::serialize(original) + " " +
                        json::serialize(patch));
      }
      kind = k;
    }
  }

  if (*kind != "map") {
    if (is_delete_list) {
      json::array kept;
      for (auto& v : original)
        if (index_in(patch, v, "") < 0) kept.push_back(std::move(v));
      original = std::move(kept);
      return std::nullopt;
    }
    const json::array server_order = original;
    json::array merged;
    for (const json::array* list : {&original, &patch})
      for (const auto& v : *list)
        if (index_in(merged, v, "") < 0) merged.push_back(v);
    original = ordered(std::move(merged), patch, server_order, "");
    return std::nullopt;
  }

  const std::string_view merge_key = f.merge_key;
  if (merge_key.empty()) return internal("cannot merge lists without merge key for type struct");

  // mergeSliceWithSpecialElements(): {"$patch": "delete", key: v} and {"$patch": "replace"}.
  json::array plain;
  bool replace = false;
  for (auto& v : patch) {
    auto& o = v.get_object();
    auto d = o.find("$patch");
    if (d == o.end()) {
      plain.push_back(std::move(v));
      continue;
    }
    const json::string* directive = d->value().if_string();
    if (directive != nullptr && *directive == "delete") {
      auto k = o.find(merge_key);
      if (k == o.end()) {
        return internal("map: " + json::serialize(o) + " does not contain declared merge key: " + std::string(merge_key));
      }
      json::array kept;
      for (auto& e : original) {
        const json::value* ek = key_of(e, merge_key);
        if (ek == nullptr || !json_equal(*ek, k->value())) kept.push_back(std::move(e));
      }
      original = std::move(kept);
    } else if (directive != nullptr && *directive == "replace") {
      replace = true;
    } else if (directive != nullptr && *directive == "merge") {
      return internal("merging lists cannot yet be specified in the patch");
    } else {
      return internal("unknown patch type: " + json::serialize(d->value()) + " in map: " + json::serialize(o));
    }
  }
  if (replace) {
    for (auto it = plain.begin(); it != plain.end();) {
      if (!strip_directives(*it)) {
        it = plain.erase(it);
        continue;
      }
      ++it;
    }
    original = std::move(plain);
    return std::nullopt;
  }

  // mergeSliceWithoutSpecialElements(): merge by key, append the new ones.
  const json::array server_order = original;
  for (auto& v : plain) {
    auto& o = v.get_object();
    auto k = o.find(merge_key);
    if (k == o.end()) {
      return internal("map: " + json::serialize(o) + " does not contain declared merge key: " + std::string(merge_key));
    }
    auto pos = index_in(original, v, merge_key);
    if (pos >= 0) {
      json::object copy = o;
      if (auto err = merge_map(original[static_cast<std::size_t>(pos)].get_object(), copy, f.type)) return err;
    } else {
      json::value added = v;
      discard_nulls(added);
      if (strip_directives(added)) original.push_back(std::move(added));
    }
  }
  original = ordered(std::move(original), plain, server_order, merge_key);
  return std::nullopt;
}

// mergeSliceHandler(): merge lists merge, every other list is replaced by the patch's.
failure merge_list_field(json::value& original, json::value& patch, const smp_type::field* f, bool is_delete_list) {
  if (f != nullptr && f->merge) return merge_slice(original.get_array(), patch.get_array(), *f, is_delete_list);
  if (is_delete_list) return std::nullopt;  // a deletion list only means something for merge lists
  discard_nulls(patch);
  strip_directives(patch);
  original = std::move(patch);
  return std::nullopt;
}

// mergePatchIntoOriginal(): lists that come with a $setElementOrder are merged and then put in
// that order; both the order list and the patch list are consumed.
failure apply_set_element_order(json::object& original, json::object& patch, const smp_type* t) {
  std::vector<std::string> keys;
  for (const auto& kv : patch)
    if (starts_with(kv.key(), set_element_order)) keys.emplace_back(kv.key());
  for (const auto& key : keys) {
    json::value order_v = std::move(patch[key]);
    patch.erase(key);
    auto list_key = extract_key(key, set_element_order);
    if (!list_key) return bad_request("invalid patch format of setElementOrder list");
    if (!order_v.is_array()) return internal("expected a slice, but received a " + go_kind(order_v));
    const json::array& order = order_v.get_array();

    const smp_type::field* f = lookup(t, *list_key);
    auto oit = original.find(*list_key);
    auto pit = patch.find(*list_key);
    const bool in_original = oit != original.end();
    const bool in_patch = pit != patch.end();
    if (in_original && !oit->value().is_array()) return internal("expected a slice, but received a " + go_kind(oit->value()));
    if (in_patch && !pit->value().is_array()) return internal("expected a slice, but received a " + go_kind(pit->value()));
    if (!in_original && !in_patch) continue;

    const json::array server_order = in_original ? oit->value().get_array() : json::array();
    json::value merged;
    if (in_original && in_patch) {
      merged = oit->value();
      if (auto err = merge_list_field(merged, pit->value(), f, false)) return err;
    } else if (in_original) {
      merged = oit->value();
    } else {
      merged = std::move(pit->value());
      discard_nulls(merged);
      strip_directives(merged);
    }
    if (f != nullptr && f->merge) {
      bool maps = !merged.get_array().empty() && merged.get_array().front().is_object();
      std::string_view mk = maps ? f->merge_key : std::string_view();
      merged = ordered(std::move(merged.get_array()), order, server_order, mk);
    }
    original[*list_key] = std::move(merged);
    patch.erase(*list_key);
  }
  return std::nullopt;
}

failure merge_map(json::object& original, json::object& patch, const smp_type* t) {
  if (auto d = patch.find("$patch"); d != patch.end()) {
    const json::string* directive = d->value().if_string();
    if (directive != nullptr && *directive == "replace") {
      patch.erase(d);
      json::value v = std::move(patch);
      discard_nulls(v);
      strip_directives(v);
      original = std::move(v.get_object());
      return std::nullopt;
    }
    if (directive != nullptr && *directive == "delete") {
      original.clear();
      return std::nullopt;
    }
    return internal("unknown patch type: " + json::serialize(d->value()) + " in map: " + json::serialize(patch));
  }

  // applyRetainKeysDirective()
  if (auto r = patch.find("$retainKeys"); r != patch.end()) {
    json::value retain = std::move(r->value());
    patch.erase(r);
    if (!retain.is_array()) return bad_request("invalid patch format of retainKeys");
    auto retained = [&](std::string_view k) {
      for (const auto& e : retain.get_array())
        if (const auto* s = e.if_string(); s != nullptr && *s == k) return true;
      return false;
    };
    for (const auto& kv : patch) {
      if (kv.value().is_null() || starts_with(kv.key(), delete_from_primitive_list) ||
          starts_with(kv.key(), set_element_order))
        continue;
      if (!retained(kv.key())) return unprocessable("patch content doesn't match retainKeys list");
    }
    for (auto it = original.begin(); it != original.end();) {
      if (!retained(it->key())) {
        it = original.erase(it);
        continue;
      }
      ++it;
    }
  }

  if (auto err = apply_set_element_order(original, patch, t)) return err;

  for (auto& kv : patch) {
    std::string key(kv.key());
    json::value& pv = kv.value();
    bool is_delete_list = false;
    if (starts_with(key, delete_from_primitive_list)) {
      auto k = extract_key(key, delete_from_primitive_list);
      if (!k) return bad_request("invalid patch format of primitive list");
      key = *k;
      is_delete_list = true;
    } else if (starts_with(key, "$")) {
      continue;
    }

    if (pv.is_null()) {
      original.erase(key);
      continue;
    }
    auto oit = original.find(key);
    if (oit == original.end()) {
      if (is_delete_list) continue;
      discard_nulls(pv);
      if (strip_directives(pv)) original[key] = std::move(pv);
      continue;
    }
    json::value& ov = oit->value();
    const smp_type::field* f = lookup(t, key);
    if (ov.is_object() && pv.is_object()) {
      if (f != nullptr && f->replace) {
        discard_nulls(pv);
        strip_directives(pv);
        ov = std::move(pv);
        continue;
      }
      if (auto err = merge_map(ov.get_object(), pv.get_object(), f != nullptr ? f->type : nullptr)) return err;
      continue;
    }
    if (ov.is_array() && pv.is_array()) {
      if (auto err = merge_list_field(ov, pv, f, is_delete_list)) return err;
      continue;
    }
    if (is_delete_list) continue;
    discard_nulls(pv);
    if (strip_directives(pv)) {
      ov = std::move(pv);
    } else {
      original.erase(oit);
    }
  }
  return std::nullopt;
}

}  // namespace

const smp_type* strategic_schema(std::string_view api_version, std::string_view kind) noexcept {
  const registry& r = types();
  if (api_version == "v1") {
    if (kind == "Pod") return &r.pod;
    if (kind == "Service") return &r.service;
    if (kind == "Namespace") return &r.namespace_;
    if (kind == "ServiceAccount") return &r.service_account;
    if (kind == "ConfigMap" || kind == "Secret" || kind == "Event" || kind == "Endpoints") return &r.plain;
    return nullptr;
  }
  if (api_version == "apps/v1") {
    if (kind == "Deployment" || kind == "DaemonSet" || kind == "StatefulSet" || kind == "ReplicaSet") return &r.workload;
    return nullptr;
  }
  if ((api_version == "autoscaling/v2" || api_version == "autoscaling/v1") && kind == "HorizontalPodAutoscaler") return &r.plain;
  if (api_version == "events.k8s.io/v1" && kind == "Event") return &r.plain;
  if (api_version == "coordination.k8s.io/v1" && kind == "Lease") return &r.plain;
  if (api_version == "networking.k8s.io/v1" && kind == "Ingress") return &r.plain;
  if (api_version == "apiextensions.k8s.io/v1" && kind == "CustomResourceDefinition") return &r.plain;
  return nullptr;
}

patch_result<json::value> strategic_merge(const json::value& original, const json::value& patch, const smp_type& schema) {
  if (!patch.is_object()) {
    return bad_request(std::string("json: cannot unmarshal ") + json_type_name(patch) +
                       " into Go value of type map[string]interface {}");
  }
  if (!original.is_object()) return internal("expected a map, but received a " + go_kind(original));
  json::object out = original.get_object();
  json::object p = patch.get_object();
  if (auto err = merge_map(out, p, &schema)) return *err;
  return json::value(std::move(out));
}

}  // namespace kubesim
