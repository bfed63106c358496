#include "core/primary.hpp"

#include <boost/json.hpp>

#include <cmath>
#include <fmt/format.h>

#include "core/revision.hpp"

namespace canaryd::core {

namespace json = boost::json;

namespace {

constexpr std::string_view flagger_id_key = "flagger-id";

// result<std::string, std::string> cannot tell a value from an error by type: say which.
struct failure {
  std::string message;
  template <class T>
  operator text_result<T>() const {  // NOLINT: implicit by design
    return text_result<T>(boost::system::in_place_error, message);
  }
};
failure fail(std::string m) { return failure{std::move(m)}; }
text_result<std::string> done(std::string v) { return text_result<std::string>(boost::system::in_place_value, std::move(v)); }

text_result<json::object> parse_object(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return fmt::format("{} is not valid JSON: {}", what, ec.message());
  if (!v.is_object()) return fmt::format("{} is not a JSON object", what);
  return std::move(v.as_object());
}

json::object* child_object(json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}
const json::object* child_object(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_object() ? &it->value().as_object() : nullptr;
}
json::array* child_array(json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_array() ? &it->value().as_array() : nullptr;
}
std::string string_at(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string()) : std::string();
}
std::optional<long long> int_at(const json::object* o, std::string_view key) {
  if (o == nullptr) return std::nullopt;
  auto it = o->find(key);
  if (it == o->end()) return std::nullopt;
  if (it->value().is_int64()) return it->value().as_int64();
  if (it->value().is_uint64()) return static_cast<long long>(it->value().as_uint64());
  if (it->value().is_double()) return static_cast<long long>(it->value().as_double());
  return std::nullopt;
}

// filterMetadata: every key except Flux's toolkit.fluxcd.io ones (Flux would fight over them).
json::object without_toolkit(const json::object* m) {
  json::object out;
  if (m == nullptr) return out;
  for (const auto& kv : *m) {
    if (kv.key().find("toolkit.fluxcd.io") == std::string_view::npos) out[kv.key()] = kv.value();
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

void rename_ref(json::object* ref, std::string_view field, std::string_view kind, const primary_options& o) {
  if (ref == nullptr) return;
  auto it = ref->find(field);
  if (it == ref->end() || !it->value().is_string()) return;
  std::string name(it->value().as_string());
  if (o.tracked_configs.count(fmt::format("{}/{}", kind, name)) != 0) it->value() = name + "-primary";
}

void rename_container_refs(json::array* containers, const primary_options& o) {
  if (containers == nullptr) return;
  for (auto& cv : *containers) {
    if (!cv.is_object()) continue;
    auto& container = cv.as_object();
    if (auto* env = child_array(container, "env")) {
      for (auto& ev : *env) {
        if (!ev.is_object()) continue;
        if (auto* from = child_object(ev.as_object(), "valueFrom")) {
          rename_ref(child_object(*from, "configMapKeyRef"), "name", "configmap", o);
          rename_ref(child_object(*from, "secretKeyRef"), "name", "secret", o);
        }
      }
    }
    if (auto* env_from = child_array(container, "envFrom")) {
      for (auto& ev : *env_from) {
        if (!ev.is_object()) continue;
        rename_ref(child_object(ev.as_object(), "configMapRef"), "name", "configmap", o);
        rename_ref(child_object(ev.as_object(), "secretRef"), "name", "secret", o);
      }
    }
  }
}

// appendPrimarySuffixToValuesIfNeeded: selectors that pick the target's pods by a selector
// label with the target's name must pick the primary's.
void rename_label_selector(json::object* selector, const std::string& target, const primary_options& o) {
  if (selector == nullptr) return;
  auto is_selector_key = [&](std::string_view k) {
    for (const auto& l : o.selector_labels) {
      if (l == k) return true;
    }
    return false;
  };
  if (auto* ml = child_object(*selector, "matchLabels")) {
    for (auto& kv : *ml) {
      if (is_selector_key(kv.key()) && kv.value().is_string() && kv.value().as_string() == target) {
        kv.value() = target + "-primary";
      }
    }
  }
  if (auto* exprs = child_array(*selector, "matchExpressions")) {
    for (auto& ev : *exprs) {
      if (!ev.is_object()) continue;
      auto& e = ev.as_object();
      if (!is_selector_key(string_at(e, "key"))) continue;
      if (auto* values = child_array(e, "values")) {
        for (auto& v : *values) {
          if (v.is_string() && v.as_string() == target) v = target + "-primary";
        }
      }
    }
  }
}

void rename_pod_spec(json::object& spec, const std::string& target, const primary_options& o) {
  if (auto* volumes = child_array(spec, "volumes")) {
    for (auto& vv : *volumes) {
      if (!vv.is_object()) continue;
      auto& v = vv.as_object();
      rename_ref(child_object(v, "configMap"), "name", "configmap", o);
      rename_ref(child_object(v, "secret"), "secretName", "secret", o);
      if (auto* projected = child_object(v, "projected")) {
        if (auto* sources = child_array(*projected, "sources")) {
          for (auto& sv : *sources) {
            if (!sv.is_object()) continue;
            rename_ref(child_object(sv.as_object(), "configMap"), "name", "configmap", o);
            rename_ref(child_object(sv.as_object(), "secret"), "name", "secret", o);
          }
        }
      }
    }
  }
  rename_container_refs(child_array(spec, "containers"), o);
  rename_container_refs(child_array(spec, "initContainers"), o);
  if (auto* tscs = child_array(spec, "topologySpreadConstraints")) {
    for (auto& t : *tscs) {
      if (t.is_object()) rename_label_selector(child_object(t.as_object(), "labelSelector"), target, o);
    }
  }
  if (auto* affinity = child_object(spec, "affinity")) {
    if (auto* anti = child_object(*affinity, "podAntiAffinity")) {
      if (auto* req = child_array(*anti, "requiredDuringSchedulingIgnoredDuringExecution")) {
        for (auto& t : *req) {
          if (t.is_object()) rename_label_selector(child_object(t.as_object(), "labelSelector"), target, o);
        }
      }
      if (auto* pref = child_array(*anti, "preferredDuringSchedulingIgnoredDuringExecution")) {
        for (auto& w : *pref) {
          if (!w.is_object()) continue;
          if (auto* term = child_object(w.as_object(), "podAffinityTerm")) {
            rename_label_selector(child_object(*term, "labelSelector"), target, o);
          }
        }
      }
    }
  }
}

// The primary's pod template from the target's: labels with the selector label rewritten,
// annotations minus toolkit keys (and the old flagger-id) plus `flagger_id` (when not empty),
// pod spec with references renamed.
json::object primary_template(const json::object& target_spec, const std::string& target_name,
                              const std::pair<std::string, std::string>& label, const primary_options& o,
                              std::string_view flagger_id) {
  json::object tmpl;
  if (const auto* t = child_object(target_spec, "template")) tmpl = *t;
  json::object meta;
  if (const auto* m = child_object(tmpl, "metadata")) meta = *m;
  json::object labels;
  if (const auto* l = child_object(meta, "labels")) labels = *l;
  labels[label.first] = label.second + "-primary";
  meta["labels"] = std::move(labels);
  json::object annotations = without_toolkit(child_object(meta, "annotations"));
  annotations.erase(flagger_id_key);
  if (!flagger_id.empty()) annotations[flagger_id_key] = flagger_id;
  if (annotations.empty()) {
    meta.erase("annotations");
  } else {
    meta["annotations"] = std::move(annotations);
  }
  tmpl["metadata"] = std::move(meta);
  if (auto* spec = child_object(tmpl, "spec")) rename_pod_spec(*spec, target_name, o);
  return tmpl;
}

void copy_spec_fields(const json::object& from, json::object& to) {
  for (std::string_view k : {"progressDeadlineSeconds", "minReadySeconds", "revisionHistoryLimit", "strategy"}) {
    auto it = from.find(k);
    if (it != from.end()) {
      to[k] = it->value();
    } else {
      to.erase(k);
    }
  }
}

json::object object_labels(const json::object* target_labels, const std::pair<std::string, std::string>& label,
                           const primary_options& o) {
  json::object labels = by_prefix(target_labels, o.include_label_prefix);
  labels[label.first] = label.second + "-primary";
  return labels;
}

void set_or_erase(json::object& o, std::string_view key, json::object value) {
  if (value.empty()) {
    o.erase(key);
  } else {
    o[key] = std::move(value);
  }
}

struct target_parts {
  json::object target;
  json::object spec;
  json::object meta;
  std::string name;
  std::pair<std::string, std::string> label;
};

text_result<target_parts> read_target(std::string_view target_json, const primary_options& o) {
  auto t = parse_object(target_json, "the target Deployment");
  if (!t) return fail(t.error());
  target_parts p;
  p.target = std::move(*t);
  if (const auto* s = child_object(p.target, "spec")) p.spec = *s;
  if (const auto* m = child_object(p.target, "metadata")) p.meta = *m;
  p.name = string_at(p.meta, "name");
  auto label = selector_label(target_json, o.selector_labels);
  if (!label) return fail(label.error());
  p.label = *label;
  return p;
}

}  // namespace

text_result<std::pair<std::string, std::string>> selector_label(std::string_view deployment_json,
                                                                const std::vector<std::string>& selector_labels) {
  auto d = parse_object(deployment_json, "the Deployment");
  if (!d) return fail(d.error());
  const json::object* meta = child_object(*d, "metadata");
  const json::object* spec = child_object(*d, "spec");
  const json::object* selector = spec ? child_object(*spec, "selector") : nullptr;
  const json::object* ml = selector ? child_object(*selector, "matchLabels") : nullptr;
  if (ml != nullptr) {
    for (const auto& key : selector_labels) {
      auto it = ml->find(key);
      if (it != ml->end() && it->value().is_string()) return std::pair{key, std::string(it->value().as_string())};
    }
  }
  return fmt::format("deployment {}.{} spec.selector.matchLabels must contain one of [{}]",
                     meta ? string_at(*meta, "name") : "", meta ? string_at(*meta, "namespace") : "",
                     fmt::join(selector_labels, " "));
}

bool include_by_prefix(std::string_view key, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes) {
    if (p == "*" || key.starts_with(p)) return true;
  }
  return false;
}

namespace {
json::object owner_reference(const canary& c) {
  return json::object{{"apiVersion", "flagger.app/v1beta1"},
                      {"kind", "Canary"},
                      {"name", c.metadata.name},
                      {"uid", c.metadata.uid},
                      {"controller", true},
                      {"blockOwnerDeletion", true}};
}
}  // namespace

std::string canary_owner_reference(const canary& c) { return json::serialize(owner_reference(c)); }

text_result<std::string> make_primary_deployment(const canary& c, std::string_view target_json,
                                                 const primary_options& o, std::string_view flagger_id) {
  auto t = read_target(target_json, o);
  if (!t) return fail(t.error());
  json::object meta{{"name", c.primary_workload_name()}, {"namespace", c.metadata.namespace_}};
  meta["labels"] = object_labels(child_object(t->meta, "labels"), t->label, o);
  set_or_erase(meta, "annotations", without_toolkit(child_object(t->meta, "annotations")));
  meta["ownerReferences"] = json::array{owner_reference(c)};
  json::object spec;
  copy_spec_fields(t->spec, spec);
  auto replicas = int_at(&t->spec, "replicas");
  spec["replicas"] = replicas && *replicas > 0 ? *replicas : 1;
  spec["selector"] = json::object{{"matchLabels", json::object{{t->label.first, t->label.second + "-primary"}}}};
  spec["template"] = primary_template(t->spec, t->name, t->label, o, flagger_id);
  json::object d{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", std::move(meta)}, {"spec", std::move(spec)}};
  return done(json::serialize(d));
}

text_result<std::string> promote_primary_deployment(const canary& c, std::string_view target_json,
                                                    std::string_view primary_json, const primary_options& o,
                                                    std::string_view flagger_id) {
  auto t = read_target(target_json, o);
  if (!t) return fail(t.error());
  auto p = parse_object(primary_json, "the primary Deployment");
  if (!p) return fail(p.error());
  json::object primary = std::move(*p);
  json::object meta;
  if (const auto* m = child_object(primary, "metadata")) meta = *m;
  meta["labels"] = object_labels(child_object(t->meta, "labels"), t->label, o);
  set_or_erase(meta, "annotations", by_prefix(child_object(t->meta, "annotations"), o.include_label_prefix));
  json::object spec;
  if (const auto* s = child_object(primary, "spec")) spec = *s;
  copy_spec_fields(t->spec, spec);
  if (!c.spec.autoscaler_ref) {
    auto it = t->spec.find("replicas");
    if (it != t->spec.end()) spec["replicas"] = it->value();
  }
  spec["template"] = primary_template(t->spec, t->name, t->label, o, flagger_id);
  primary["metadata"] = std::move(meta);
  primary["spec"] = std::move(spec);
  primary.erase("status");
  return done(json::serialize(primary));
}

text_result<std::string> make_primary_config(const canary& c, std::string_view config_json, const primary_options& o) {
  auto src = parse_object(config_json, "the config");
  if (!src) return fail(src.error());
  const json::object* m = child_object(*src, "metadata");
  json::object empty;
  if (m == nullptr) m = &empty;
  const std::string kind = string_at(*src, "kind");
  json::object meta{{"name", string_at(*m, "name") + "-primary"}, {"namespace", c.metadata.namespace_}};
  set_or_erase(meta, "labels", by_prefix(child_object(*m, "labels"), o.include_label_prefix));
  json::object annotations = without_toolkit(child_object(*m, "annotations"));
  annotations.erase("kubectl.kubernetes.io/last-applied-configuration");
  set_or_erase(meta, "annotations", std::move(annotations));
  json::array owners{owner_reference(c)};
  if (auto it = m->find("ownerReferences"); it != m->end() && it->value().is_array()) {
    for (const auto& rv : it->value().as_array()) {
      if (!rv.is_object()) continue;
      json::object r = rv.as_object();
      if (string_at(r, "kind") == "Canary" && string_at(r, "apiVersion").starts_with("flagger.app/")) continue;
      r["controller"] = false;
      owners.push_back(std::move(r));
    }
  }
  meta["ownerReferences"] = std::move(owners);
  json::object out{{"apiVersion", "v1"}, {"kind", kind.empty() ? "ConfigMap" : kind}, {"metadata", std::move(meta)}};
  for (std::string_view k : {"data", "binaryData", "stringData", "type", "immutable"}) {
    auto it = src->find(k);
    if (it != src->end()) out[k] = it->value();
  }
  return done(json::serialize(out));
}

namespace {
const json::object* find_condition(const json::object* status, std::string_view type) {
  if (status == nullptr) return nullptr;
  auto it = status->find("conditions");
  if (it == status->end() || !it->value().is_array()) return nullptr;
  for (const auto& cv : it->value().as_array()) {
    if (cv.is_object() && string_at(cv.as_object(), "type") == type) return &cv.as_object();
  }
  return nullptr;
}
}  // namespace

deployment_status read_deployment_status(std::string_view deployment_json) {
  deployment_status out;
  auto d = parse_object(deployment_json, "the Deployment");
  if (!d) {
    out.parse_error = d.error();
    return out;
  }
  const json::object* meta = child_object(*d, "metadata");
  const json::object* spec = child_object(*d, "spec");
  const json::object* status = child_object(*d, "status");
  if (meta) out.name = string_at(*meta, "name");
  out.generation = int_at(meta, "generation").value_or(0);
  out.observed_generation = int_at(status, "observedGeneration").value_or(0);
  if (const json::object* progressing = find_condition(status, "Progressing")) {
    out.has_progressing = true;
    const json::object* available = find_condition(status, "Available");
    if (available != nullptr && string_at(*available, "status") == "False" &&
        string_at(*available, "reason") == "MinimumReplicasUnavailable") {
      out.unavailable_since = parse_rfc3339(string_at(*available, "lastUpdateTime"));
    }
    out.progress_deadline_exceeded = string_at(*progressing, "reason") == "ProgressDeadlineExceeded";
  }
  out.desired = int_at(spec, "replicas");
  out.updated = int_at(status, "updatedReplicas").value_or(0);
  out.replicas = int_at(status, "replicas").value_or(0);
  out.available = int_at(status, "availableReplicas").value_or(0);
  return out;
}

readiness deployment_readiness(const deployment_status& d, int progress_deadline_seconds, int ready_threshold,
                               wall_time now) {
  if (d.parse_error) return readiness::waiting(*d.parse_error);
  if (d.generation > d.observed_generation) {
    return readiness::waiting("waiting for rollout to finish: observed deployment generation less than desired generation");
  }
  bool retriable = true;
  if (d.has_progressing) {
    if (d.unavailable_since && *d.unavailable_since + std::chrono::seconds(progress_deadline_seconds) < now) retriable = false;
    if (d.progress_deadline_exceeded) {
      return readiness::failed(fmt::format("deployment \"{}\" exceeded its progress deadline", d.name));
    }
  }
  auto result = [&](std::string why) { return retriable ? readiness::waiting(std::move(why)) : readiness::failed(std::move(why)); };
  const auto threshold_replicas =
      static_cast<long long>(std::floor(static_cast<double>(d.updated) * static_cast<double>(ready_threshold) / 100.0));
  if (d.desired && d.updated < *d.desired) {
    return result(fmt::format("waiting for rollout to finish: {} out of {} new replicas have been updated", d.updated, *d.desired));
  }
  if (d.replicas > d.updated) {
    return result(fmt::format("waiting for rollout to finish: {} old replicas are pending termination", d.replicas - d.updated));
  }
  if (d.available < threshold_replicas) {
    return result(fmt::format("waiting for rollout to finish: {} of {} (readyThreshold {}%) updated replicas are available",
                              d.available, threshold_replicas, ready_threshold));
  }
  return readiness::ready();
}

readiness deployment_readiness(std::string_view deployment_json, int progress_deadline_seconds, int ready_threshold,
                               wall_time now) {
  return deployment_readiness(read_deployment_status(deployment_json), progress_deadline_seconds, ready_threshold, now);
}

std::string missing_deployment_error(std::string_view name, std::string_view ns) {
  return fmt::format("deployment {}.{} get query error: deployments.apps \"{}\" not found", name, ns, name);
}

namespace {
readiness with_prefix(readiness r, std::string_view name, std::string_view ns) {
  if (!r.is_ready()) r.message = fmt::format("{}.{} not ready: {}", name, ns, r.message);
  return r;
}
}  // namespace

readiness canary_readiness(const canary& c, std::string_view target_json, wall_time now) {
  const auto& name = c.spec.target_ref.name;
  if (target_json.empty()) return readiness::waiting(missing_deployment_error(name, c.metadata.namespace_));
  return with_prefix(deployment_readiness(target_json, c.progress_deadline_seconds(), c.canary_ready_threshold(), now),
                     name, c.metadata.namespace_);
}

readiness canary_readiness(const canary& c, const deployment_status* target, wall_time now) {
  const auto& name = c.spec.target_ref.name;
  if (target == nullptr) return readiness::waiting(missing_deployment_error(name, c.metadata.namespace_));
  return with_prefix(deployment_readiness(*target, c.progress_deadline_seconds(), c.canary_ready_threshold(), now), name,
                     c.metadata.namespace_);
}

readiness primary_readiness(const canary& c, const deployment_status* primary, wall_time now) {
  const auto name = c.primary_workload_name();
  if (primary == nullptr) return readiness::waiting(missing_deployment_error(name, c.metadata.namespace_));
  return with_prefix(deployment_readiness(*primary, c.progress_deadline_seconds(), c.primary_ready_threshold(), now),
                     name, c.metadata.namespace_);
}

readiness primary_readiness(const canary& c, std::string_view primary_json, wall_time now) {
  const auto name = c.primary_workload_name();
  if (primary_json.empty()) return readiness::waiting(missing_deployment_error(name, c.metadata.namespace_));
  return with_prefix(deployment_readiness(primary_json, c.progress_deadline_seconds(), c.primary_ready_threshold(), now),
                     name, c.metadata.namespace_);
}

bool primary_matches_target(std::string_view target_json, std::string_view primary_json, const primary_options& o) {
  auto t = read_target(target_json, o);
  auto p = parse_object(primary_json, "the primary Deployment");
  if (!t || !p) return false;
  json::object wanted = primary_template(t->spec, t->name, t->label, o, "");
  const json::object* pspec = child_object(*p, "spec");
  const json::object* ptmpl = pspec ? child_object(*pspec, "template") : nullptr;
  if (ptmpl == nullptr) return false;
  json::object have = *ptmpl;
  if (auto* meta = child_object(have, "metadata")) {
    if (auto* ann = child_object(*meta, "annotations")) {
      ann->erase(flagger_id_key);
      if (ann->empty()) meta->erase("annotations");
    }
  }
  auto a = pod_template_revision(json::serialize(wanted));
  auto b = pod_template_revision(json::serialize(have));
  return a.ok() && b.ok() && a.value == b.value;
}

std::optional<long long> deployment_replicas(std::string_view deployment_json) {
  auto d = parse_object(deployment_json, "the Deployment");
  if (!d) return std::nullopt;
  return int_at(child_object(*d, "spec"), "replicas");
}

long long scale_from_zero_replicas(std::string_view target_json, std::string_view primary_json, bool has_autoscaler,
                                   std::string_view hpa_json) {
  if (!target_json.empty()) {
    if (auto r = deployment_replicas(target_json); r && *r > 0) return *r;
  }
  if (!has_autoscaler && !primary_json.empty()) {
    if (auto r = deployment_replicas(primary_json); r && *r > 0) return *r;
  }
  if (!hpa_json.empty()) {
    if (auto h = parse_object(hpa_json, "the HPA")) {
      if (auto m = int_at(child_object(*h, "spec"), "minReplicas"); m && *m > 1) return *m;
    }
  }
  return 1;
}

text_result<std::string> make_primary_hpa(const canary& c, std::string_view hpa_json, std::string_view existing_json) {
  if (!c.spec.autoscaler_ref) return fail("the canary has no autoscalerRef");
  auto h = parse_object(hpa_json, "the HorizontalPodAutoscaler");
  if (!h) return fail(h.error());
  const json::object* hmeta = child_object(*h, "metadata");
  const json::object* hspec = child_object(*h, "spec");
  if (hspec == nullptr) return fail(fmt::format("HorizontalPodAutoscaler {}.{} has no spec", c.spec.autoscaler_ref->name,
                                           c.metadata.namespace_));
  json::object target_ref{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}};
  if (const auto* r = child_object(*hspec, "scaleTargetRef")) target_ref = *r;
  target_ref["name"] = c.primary_workload_name();
  json::object spec{{"scaleTargetRef", std::move(target_ref)}};
  for (std::string_view k : {"minReplicas", "maxReplicas", "metrics", "behavior"}) {
    if (auto it = hspec->find(k); it != hspec->end()) spec[k] = it->value();
  }
  if (c.spec.autoscaler_ref->primary_scaler_replicas) {
    const auto& r = *c.spec.autoscaler_ref->primary_scaler_replicas;
    if (r.min_replicas) spec["minReplicas"] = *r.min_replicas;
    if (r.max_replicas) spec["maxReplicas"] = *r.max_replicas;
  }
  json::object meta;
  if (!existing_json.empty()) {
    auto e = parse_object(existing_json, "the primary HorizontalPodAutoscaler");
    if (!e) return fail(e.error());
    if (const auto* em = child_object(*e, "metadata")) meta = *em;
  } else {
    meta = json::object{{"name", c.spec.autoscaler_ref->name + "-primary"}, {"namespace", c.metadata.namespace_}};
    meta["ownerReferences"] = json::array{owner_reference(c)};
  }
  set_or_erase(meta, "labels", without_toolkit(hmeta ? child_object(*hmeta, "labels") : nullptr));
  set_or_erase(meta, "annotations", without_toolkit(hmeta ? child_object(*hmeta, "annotations") : nullptr));
  json::object out{{"apiVersion", "autoscaling/v2"},
                   {"kind", "HorizontalPodAutoscaler"},
                   {"metadata", std::move(meta)},
                   {"spec", std::move(spec)}};
  return done(json::serialize(out));
}

bool primary_hpa_differs(std::string_view wanted_json, std::string_view existing_json) {
  auto w = parse_object(wanted_json, "wanted");
  auto e = parse_object(existing_json, "existing");
  if (!w || !e) return true;
  auto part = [](const json::object& o, std::string_view a, std::string_view b) -> json::value {
    const json::object* x = child_object(o, a);
    if (x == nullptr) return nullptr;
    auto it = x->find(b);
    return it == x->end() ? json::value(nullptr) : it->value();
  };
  for (std::string_view k : {"minReplicas", "maxReplicas", "metrics", "behavior"}) {
    if (part(*w, "spec", k) != part(*e, "spec", k)) return true;
  }
  for (std::string_view k : {"labels", "annotations"}) {
    json::value a = part(*w, "metadata", k), b = part(*e, "metadata", k);
    if (a.is_null()) a = json::object{};
    if (b.is_null()) b = json::object{};
    if (a != b) return true;
  }
  return false;
}

}  // namespace canaryd::core
