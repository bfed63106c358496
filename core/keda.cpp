#include "core/keda.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

namespace canaryd::core {

namespace json = boost::json;

namespace {

text_result<json::object> parse_object(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return text_result<json::object>(boost::system::in_place_error, fmt::format("{} is not valid JSON: {}", what, ec.message()));
  if (!v.is_object()) return text_result<json::object>(boost::system::in_place_error, fmt::format("{} is not a JSON object", what));
  return std::move(v.as_object());
}

const json::object* child_object(const json::object* o, std::string_view key) {
  if (o == nullptr) return nullptr;
  auto it = o->find(key);
  return it != o->end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// Labels or annotations without Flux's toolkit.fluxcd.io keys (Flagger's filterMetadata) and,
// for a new primary, without what must not carry over from the target's ScaledObject: the
// paused-replicas annotation (a primary created while the target is paused would stay at 0
// replicas; Flagger copies it, canaryd does not) and kubectl's last-applied-configuration.
json::object copied_metadata(const json::object* m) {
  json::object out;
  if (m == nullptr) return out;
  for (const auto& kv : *m) {
    const std::string_view k = kv.key();
    if (k.find("toolkit.fluxcd.io") != std::string_view::npos) continue;
    if (k == keda_paused_replicas_annotation || k == "kubectl.kubernetes.io/last-applied-configuration") continue;
    out[k] = kv.value();
  }
  return out;
}

json::object by_prefix(const json::object* m, const std::vector<std::string>& prefixes) {
  json::object out;
  if (m == nullptr) return out;
  for (const auto& kv : *m) {
    if (include_by_prefix(kv.key(), prefixes)) out[kv.key()] = kv.value();
  }
  return out;
}

void set_or_erase(json::object& o, std::string_view key, json::object v) {
  if (v.empty()) {
    o.erase(key);
  } else {
    o[key] = std::move(v);
  }
}

}  // namespace

std::string primary_scaler_query(std::string_view query, std::string_view target) {
  std::string out(query);
  if (target.empty()) return out;
  const std::string primary = fmt::format("{}-primary", target);
  // A placeholder no Kubernetes name or PromQL text contains (Flagger draws ten random letters).
  std::string placeholder = "\x01\x02";
  while (out.find(placeholder) != std::string::npos) placeholder += '\x01';
  replace_all(out, fmt::format("{}-canary", target), placeholder);
  replace_all(out, target, primary);
  replace_all(out, placeholder, primary);
  return out;
}

std::vector<std::optional<std::string>> primary_trigger_queries(const canary& c, std::string_view scaled_object_json) {
  std::vector<std::optional<std::string>> out;
  auto so = parse_object(scaled_object_json, "the ScaledObject");
  if (!so) return out;
  const json::object* spec = child_object(&*so, "spec");
  const json::value* triggers = spec ? spec->if_contains("triggers") : nullptr;
  if (triggers == nullptr || !triggers->is_array()) return out;
  const auto* queries = c.spec.autoscaler_ref ? &c.spec.autoscaler_ref->primary_scaler_queries : nullptr;
  for (const auto& t : triggers->as_array()) {
    const json::object* trigger = t.is_object() ? &t.as_object() : nullptr;
    const json::object* metadata = child_object(trigger, "metadata");
    std::optional<std::string> query;
    if (metadata != nullptr) {
      if (const auto* q = metadata->if_contains("query"); q && q->is_string()) query = std::string(q->as_string());
    }
    if (queries != nullptr && !queries->empty()) {
      // Flagger: "the triggers must be named" for primaryScalerQueries; unnamed ones keep theirs.
      const json::value* name = trigger ? trigger->if_contains("name") : nullptr;
      if (name != nullptr && name->is_string()) {
        if (auto it = queries->find(std::string(name->as_string())); it != queries->end()) query = it->second;
      }
    } else if (query) {
      query = primary_scaler_query(*query, c.spec.target_ref.name);
    }
    out.push_back(std::move(query));
  }
  return out;
}

text_result<std::string> make_primary_scaled_object(const canary& c, std::string_view scaled_object_json,
                                                    std::string_view existing_json,
                                                    const std::vector<std::string>& include_label_prefix) {
  using result = text_result<std::string>;
  if (!c.spec.autoscaler_ref) return result(boost::system::in_place_error, "the canary has no autoscalerRef");
  const std::string& so_name = c.spec.autoscaler_ref->name;
  auto so = parse_object(scaled_object_json, "the ScaledObject");
  if (!so) return result(boost::system::in_place_error, so.error());
  const json::object* smeta = child_object(&*so, "metadata");
  const json::object* sspec = child_object(&*so, "spec");
  if (sspec == nullptr) {
    return result(boost::system::in_place_error, fmt::format("ScaledObject {}.{} has no spec", so_name, c.metadata.namespace_));
  }

  json::object target_ref;
  if (const auto* r = child_object(sspec, "scaleTargetRef")) {
    for (std::string_view k : {"apiVersion", "kind", "envSourceContainerName"}) {
      if (const auto* v = r->if_contains(k); v && v->is_string() && !v->as_string().empty()) target_ref[k] = *v;
    }
  }
  target_ref["name"] = c.primary_workload_name();
  json::object spec{{"scaleTargetRef", std::move(target_ref)}};
  for (std::string_view k : {"pollingInterval", "cooldownPeriod", "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback"}) {
    if (const auto* v = sspec->if_contains(k); v && !v->is_null()) spec[k] = *v;
  }
  if (const auto& r = c.spec.autoscaler_ref->primary_scaler_replicas) {
    if (r->min_replicas) spec["minReplicaCount"] = *r->min_replicas;
    if (r->max_replicas) spec["maxReplicaCount"] = *r->max_replicas;
  }
  // setPrimaryScaledObjectHPA: advanced.horizontalPodAutoscalerConfig always exists on the
  // primary; its name, when the target sets one, gets -primary (two HPAs cannot share a name).
  json::object advanced;
  if (const auto* a = child_object(sspec, "advanced")) advanced = *a;
  json::object hpa_config;
  if (const auto* h = child_object(&advanced, "horizontalPodAutoscalerConfig")) hpa_config = *h;
  if (const auto* n = hpa_config.if_contains("name"); n && n->is_string() && !n->as_string().empty()) {
    hpa_config["name"] = fmt::format("{}-primary", std::string_view(n->as_string()));
  }
  advanced["horizontalPodAutoscalerConfig"] = std::move(hpa_config);
  spec["advanced"] = std::move(advanced);

  json::array triggers;
  if (const auto* t = sspec->if_contains("triggers"); t && t->is_array()) triggers = t->as_array();
  const auto queries = primary_trigger_queries(c, scaled_object_json);
  for (std::size_t i = 0; i < triggers.size() && i < queries.size(); ++i) {
    if (!queries[i] || !triggers[i].is_object()) continue;
    json::value& md = triggers[i].as_object()["metadata"];
    if (!md.is_object()) md = json::object{};
    md.as_object()["query"] = *queries[i];
  }
  spec["triggers"] = std::move(triggers);

  json::object meta;
  if (!existing_json.empty()) {
    auto e = parse_object(existing_json, "the primary ScaledObject");
    if (!e) return result(boost::system::in_place_error, e.error());
    if (const auto* em = child_object(&*e, "metadata")) meta = *em;
    json::object labels = by_prefix(child_object(&meta, "labels"), include_label_prefix);
    json::object annotations = by_prefix(child_object(&meta, "annotations"), include_label_prefix);
    set_or_erase(meta, "labels", std::move(labels));
    set_or_erase(meta, "annotations", std::move(annotations));
  } else {
    meta = json::object{{"name", so_name + "-primary"}, {"namespace", c.metadata.namespace_}};
    set_or_erase(meta, "labels", copied_metadata(child_object(smeta, "labels")));
    set_or_erase(meta, "annotations", copied_metadata(child_object(smeta, "annotations")));
    boost::system::error_code ec;
    meta["ownerReferences"] = json::array{json::parse(canary_owner_reference(c), ec)};
  }
  json::object out{{"apiVersion", "keda.sh/v1alpha1"}, {"kind", "ScaledObject"}, {"metadata", std::move(meta)}, {"spec", std::move(spec)}};
  return result(boost::system::in_place_value, json::serialize(out));
}

bool primary_scaled_object_differs(std::string_view wanted_json, std::string_view existing_json) {
  auto w = parse_object(wanted_json, "wanted");
  auto e = parse_object(existing_json, "existing");
  if (!w || !e) return true;
  const json::object* ws = child_object(&*w, "spec");
  const json::object* es = child_object(&*e, "spec");
  if (ws == nullptr || es == nullptr) return ws != es;
  return *ws != *es;
}

std::optional<std::string> scaled_object_paused_replicas(std::string_view scaled_object_json) {
  auto so = parse_object(scaled_object_json, "the ScaledObject");
  if (!so) return std::nullopt;
  const json::object* annotations = child_object(child_object(&*so, "metadata"), "annotations");
  if (annotations == nullptr) return std::nullopt;
  const auto* v = annotations->if_contains(keda_paused_replicas_annotation);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

}  // namespace canaryd::core
