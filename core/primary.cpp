#include "core/primary.hpp"

#include <boost/json.hpp>

#include <cctype>
#include <cmath>
#include <fmt/format.h>

#include "core/provider.hpp"
#include "core/revision.hpp"

namespace canaryd::core {

namespace json = boost::json;

namespace {

constexpr std::string_view flagger_id_key = "flagger-id";
constexpr std::string_view scale_to_zero_key = "flagger.app/scale-to-zero";

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
  if (selector == nullptr || target.empty()) return;
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
                              std::string_view flagger_id, workload_kind kind = workload_kind::deployment) {
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
  if (auto* spec = child_object(tmpl, "spec")) {
    // Flagger renames anti-affinity and topology selectors for Deployments only; a DaemonSet
    // primary never carries the target's scale-to-zero nodeSelector.
    rename_pod_spec(*spec, kind == workload_kind::daemonset ? std::string() : target_name, o);
    if (kind == workload_kind::daemonset) {
      if (auto* ns = child_object(*spec, "nodeSelector")) {
        ns->erase(scale_to_zero_key);
        if (ns->empty()) spec->erase("nodeSelector");
      }
    }
  }
  return tmpl;
}

// The spec fields a primary copies from its target, per kind (Flagger's create and Promote).
std::vector<std::string_view> copied_spec_fields(workload_kind kind) {
  switch (kind) {
    case workload_kind::deployment: return {"progressDeadlineSeconds", "minReadySeconds", "revisionHistoryLimit", "strategy"};
    case workload_kind::daemonset: return {"minReadySeconds", "revisionHistoryLimit", "updateStrategy"};
    case workload_kind::statefulset:
      return {"minReadySeconds", "revisionHistoryLimit", "updateStrategy", "persistentVolumeClaimRetentionPolicy"};
  }
  return {};
}

void copy_spec_fields(const json::object& from, json::object& to, workload_kind kind = workload_kind::deployment) {
  for (std::string_view k : copied_spec_fields(kind)) {
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

text_result<target_parts> read_target(std::string_view target_json, const primary_options& o,
                                      std::string_view what = "the target Deployment") {
  auto t = parse_object(target_json, what);
  if (!t) return fail(t.error());
  target_parts p;
  p.target = std::move(*t);
  if (const auto* s = child_object(p.target, "spec")) p.spec = *s;
  if (const auto* m = child_object(p.target, "metadata")) p.meta = *m;
  p.name = string_at(p.meta, "name");
  std::string_view word = what.substr(what.rfind(' ') + 1);  // "Deployment", "DaemonSet", ...
  std::string lower(word);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto label = selector_label(target_json, o.selector_labels, lower);
  if (!label) return fail(label.error());
  p.label = *label;
  return p;
}

}  // namespace

text_result<std::pair<std::string, std::string>> selector_label(std::string_view deployment_json,
                                                                const std::vector<std::string>& selector_labels) {
  return selector_label(deployment_json, selector_labels, "");
}

text_result<std::pair<std::string, std::string>> selector_label(std::string_view deployment_json,
                                                                const std::vector<std::string>& selector_labels,
                                                                std::string_view kind_word) {
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
  // Flagger's message names the kind: "deployment ...", "daemonset ...".
  std::string kind = kind_word.empty() ? string_at(*d, "kind") : std::string(kind_word);
  for (char& ch : kind) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return fmt::format("{} {}.{} spec.selector.matchLabels must contain one of [{}]", kind.empty() ? "deployment" : kind,
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

// The readiness of the canary's workload `name` of `kind` (its target or its primary): Flagger's
// "not found" error when `status` is null, else judge(*status) as "<name>.<ns> not ready: ...".
template <class Status, class Judge>
readiness workload_readiness(const canary& c, workload_kind kind, const std::string& name, const Status* status,
                             Judge judge) {
  if (status == nullptr) return readiness::waiting(missing_workload_error(kind, name, c.metadata.namespace_));
  return with_prefix(judge(*status), name, c.metadata.namespace_);
}
}  // namespace

readiness canary_readiness(const canary& c, std::string_view target_json, wall_time now) {
  const auto& name = c.spec.target_ref.name;
  if (target_json.empty()) return readiness::waiting(missing_deployment_error(name, c.metadata.namespace_));
  return with_prefix(deployment_readiness(target_json, c.progress_deadline_seconds(), c.canary_ready_threshold(), now),
                     name, c.metadata.namespace_);
}

readiness canary_readiness(const canary& c, const deployment_status* target, wall_time now) {
  return workload_readiness(c, workload_kind::deployment, c.spec.target_ref.name, target, [&](const auto& s) {
    return deployment_readiness(s, c.progress_deadline_seconds(), c.canary_ready_threshold(), now);
  });
}

readiness primary_readiness(const canary& c, const deployment_status* primary, wall_time now) {
  return workload_readiness(c, workload_kind::deployment, c.primary_workload_name(), primary, [&](const auto& s) {
    return deployment_readiness(s, c.progress_deadline_seconds(), c.primary_ready_threshold(), now);
  });
}

readiness primary_readiness(const canary& c, std::string_view primary_json, wall_time now) {
  const auto name = c.primary_workload_name();
  if (primary_json.empty()) return readiness::waiting(missing_deployment_error(name, c.metadata.namespace_));
  return with_prefix(deployment_readiness(primary_json, c.progress_deadline_seconds(), c.primary_ready_threshold(), now),
                     name, c.metadata.namespace_);
}

bool primary_matches_target(std::string_view target_json, std::string_view primary_json, const primary_options& o) {
  return primary_matches_target(workload_kind::deployment, target_json, primary_json, o);
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
      // An HPA's minReplicas, a KEDA ScaledObject's minReplicaCount.
      const json::object* spec = child_object(*h, "spec");
      auto m = int_at(spec, "minReplicas");
      if (!m) m = int_at(spec, "minReplicaCount");
      if (m && *m > 1) return *m;
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

// ---- DaemonSet targets ---------------------------------------------------------------------------

std::string missing_workload_error(workload_kind kind, std::string_view name, std::string_view ns) {
  switch (kind) {
    case workload_kind::deployment: return missing_deployment_error(name, ns);
    case workload_kind::daemonset:
      return fmt::format("daemonset {}.{} get query error: daemonsets.apps \"{}\" not found", name, ns, name);
    case workload_kind::statefulset:
      return fmt::format("statefulset {}.{} get query error: statefulsets.apps \"{}\" not found", name, ns, name);
  }
  return {};
}

text_result<std::string> make_primary_daemonset(const canary& c, std::string_view target_json,
                                                const primary_options& o, std::string_view flagger_id) {
  auto t = read_target(target_json, o, "the target DaemonSet");
  if (!t) return fail(t.error());
  if (const auto* strategy = child_object(t->spec, "updateStrategy")) {
    const std::string type = string_at(*strategy, "type");
    if (!type.empty() && type != "RollingUpdate") {
      return fail(fmt::format("daemonset {}.{} must have RollingUpdate strategy but have {}", t->name,
                              c.metadata.namespace_, type));
    }
  }
  json::object meta{{"name", c.primary_workload_name()}, {"namespace", c.metadata.namespace_}};
  meta["labels"] = object_labels(child_object(t->meta, "labels"), t->label, o);
  set_or_erase(meta, "annotations", without_toolkit(child_object(t->meta, "annotations")));
  meta["ownerReferences"] = json::array{owner_reference(c)};
  json::object spec;
  copy_spec_fields(t->spec, spec, workload_kind::daemonset);
  spec["selector"] = json::object{{"matchLabels", json::object{{t->label.first, t->label.second + "-primary"}}}};
  spec["template"] = primary_template(t->spec, t->name, t->label, o, flagger_id, workload_kind::daemonset);
  json::object d{{"apiVersion", "apps/v1"}, {"kind", "DaemonSet"}, {"metadata", std::move(meta)}, {"spec", std::move(spec)}};
  return done(json::serialize(d));
}

text_result<std::string> promote_primary_daemonset(const canary& c, std::string_view target_json,
                                                   std::string_view primary_json, const primary_options& o,
                                                   std::string_view flagger_id) {
  (void)c;
  auto t = read_target(target_json, o, "the target DaemonSet");
  if (!t) return fail(t.error());
  auto p = parse_object(primary_json, "the primary DaemonSet");
  if (!p) return fail(p.error());
  json::object primary = std::move(*p);
  json::object spec;
  if (const auto* s = child_object(primary, "spec")) spec = *s;
  copy_spec_fields(t->spec, spec, workload_kind::daemonset);
  spec["template"] = primary_template(t->spec, t->name, t->label, o, flagger_id, workload_kind::daemonset);
  primary["spec"] = std::move(spec);
  primary.erase("status");
  return done(json::serialize(primary));
}

bool daemonset_scaled_to_zero(std::string_view daemonset_json) {
  auto d = parse_object(daemonset_json, "the DaemonSet");
  if (!d) return false;
  const json::object* spec = child_object(*d, "spec");
  const json::object* tmpl = spec ? child_object(*spec, "template") : nullptr;
  const json::object* pspec = tmpl ? child_object(*tmpl, "spec") : nullptr;
  const json::object* selector = pspec ? child_object(*pspec, "nodeSelector") : nullptr;
  return selector != nullptr && selector->contains(daemonset_scale_to_zero_key);
}

daemonset_status read_daemonset_status(std::string_view daemonset_json) {
  daemonset_status out;
  auto d = parse_object(daemonset_json, "the DaemonSet");
  if (!d) {
    out.parse_error = d.error();
    return out;
  }
  const json::object* status = child_object(*d, "status");
  out.generation = int_at(child_object(*d, "metadata"), "generation").value_or(0);
  out.observed_generation = int_at(status, "observedGeneration").value_or(0);
  out.desired = int_at(status, "desiredNumberScheduled").value_or(0);
  out.updated = int_at(status, "updatedNumberScheduled").value_or(0);
  out.available = int_at(status, "numberAvailable").value_or(0);
  return out;
}

readiness daemonset_readiness(const daemonset_status& d, const canary& c, int ready_threshold, wall_time now) {
  if (d.parse_error) return readiness::waiting(*d.parse_error);
  if (d.generation > d.observed_generation) {
    return readiness::waiting("waiting for rollout to finish: observed daemonset generation less than desired generation");
  }
  const auto wanted = static_cast<long long>(static_cast<double>(d.desired) * static_cast<double>(ready_threshold) / 100.0);
  const bool not_updated = d.updated < d.desired;
  const bool not_available = d.available < wanted;
  if (!not_updated && !not_available) return readiness::ready();
  const int deadline = c.progress_deadline_seconds();
  if (c.status.last_transition_time && *c.status.last_transition_time + std::chrono::seconds(deadline) < now) {
    return readiness::failed(fmt::format("exceeded its progressDeadlineSeconds: {}", deadline));
  }
  if (not_updated) {
    return readiness::waiting(
        fmt::format("waiting for rollout to finish: {} out of {} new pods have been updated", d.updated, d.desired));
  }
  return readiness::waiting(fmt::format("waiting for rollout to finish: {} of {} (readyThreshold {}%) updated pods are available",
                                        d.available, wanted, ready_threshold));
}

readiness daemonset_canary_readiness(const canary& c, const daemonset_status* target, wall_time now) {
  return workload_readiness(c, workload_kind::daemonset, c.spec.target_ref.name, target,
                            [&](const auto& s) { return daemonset_readiness(s, c, c.canary_ready_threshold(), now); });
}

readiness daemonset_primary_readiness(const canary& c, const daemonset_status* primary, wall_time now) {
  return workload_readiness(c, workload_kind::daemonset, c.primary_workload_name(), primary,
                            [&](const auto& s) { return daemonset_readiness(s, c, c.primary_ready_threshold(), now); });
}

bool primary_matches_target(workload_kind kind, std::string_view target_json, std::string_view primary_json,
                            const primary_options& o) {
  auto t = read_target(target_json, o, kind == workload_kind::daemonset     ? "the target DaemonSet"
                                      : kind == workload_kind::statefulset ? "the target StatefulSet"
                                                                           : "the target Deployment");
  auto p = parse_object(primary_json, "the primary");
  if (!t || !p) return false;
  json::object wanted = primary_template(t->spec, t->name, t->label, o, "", kind);
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

std::optional<std::string> daemonset_refusal(std::string_view daemonset_json) {
  auto d = parse_object(daemonset_json, "the DaemonSet");
  if (!d) return std::nullopt;
  const json::object* meta = child_object(*d, "metadata");
  const json::object* spec = child_object(*d, "spec");
  const json::object* strategy = spec ? child_object(*spec, "updateStrategy") : nullptr;
  const std::string type = strategy ? string_at(*strategy, "type") : std::string();
  if (type.empty() || type == "RollingUpdate") return std::nullopt;
  return fmt::format("daemonset {}.{} must have RollingUpdate strategy but have {}", meta ? string_at(*meta, "name") : "",
                     meta ? string_at(*meta, "namespace") : "", type);
}

// ---- StatefulSet targets ----------------------------------------------------------------------------

std::optional<std::string> statefulset_refusal(std::string_view statefulset_json) {
  auto d = parse_object(statefulset_json, "the StatefulSet");
  if (!d) return std::nullopt;
  const json::object* meta = child_object(*d, "metadata");
  const std::string id = meta ? string_at(*meta, "name") + "." + string_at(*meta, "namespace") : std::string(".");
  const json::object* spec = child_object(*d, "spec");
  const json::object* strategy = spec ? child_object(*spec, "updateStrategy") : nullptr;
  const std::string type = strategy ? string_at(*strategy, "type") : std::string();
  if (!type.empty() && type != "RollingUpdate") {
    return fmt::format("statefulset {} must have RollingUpdate strategy but have {}: a promotion would never roll the "
                       "primary's pods",
                       id, type);
  }
  const json::object* ru = strategy ? child_object(*strategy, "rollingUpdate") : nullptr;
  if (auto partition = int_at(ru, "partition"); partition && *partition > 0) {
    return fmt::format("statefulset {} has updateStrategy.rollingUpdate.partition {}: canaryd promotes whole "
                       "StatefulSets, partitioned rollouts are not supported",
                       id, *partition);
  }
  return std::nullopt;
}

std::string statefulset_service_name(std::string_view statefulset_json) {
  auto d = parse_object(statefulset_json, "the StatefulSet");
  if (!d) return {};
  const json::object* spec = child_object(*d, "spec");
  return spec ? string_at(*spec, "serviceName") : std::string();
}

text_result<std::string> make_primary_statefulset(const canary& c, std::string_view target_json,
                                                  const primary_options& o, std::string_view flagger_id) {
  auto t = read_target(target_json, o, "the target StatefulSet");
  if (!t) return fail(t.error());
  json::object meta{{"name", c.primary_workload_name()}, {"namespace", c.metadata.namespace_}};
  meta["labels"] = object_labels(child_object(t->meta, "labels"), t->label, o);
  set_or_erase(meta, "annotations", without_toolkit(child_object(t->meta, "annotations")));
  meta["ownerReferences"] = json::array{owner_reference(c)};
  json::object spec;
  copy_spec_fields(t->spec, spec, workload_kind::statefulset);
  auto replicas = int_at(&t->spec, "replicas");
  spec["replicas"] = replicas && *replicas > 0 ? *replicas : 1;
  spec["selector"] = json::object{{"matchLabels", json::object{{t->label.first, t->label.second + "-primary"}}}};
  if (std::string svc = string_at(t->spec, "serviceName"); !svc.empty()) spec["serviceName"] = svc + "-primary";
  for (std::string_view k : {"podManagementPolicy", "volumeClaimTemplates", "ordinals"}) {
    if (auto it = t->spec.find(k); it != t->spec.end()) spec[k] = it->value();
  }
  spec["template"] = primary_template(t->spec, t->name, t->label, o, flagger_id, workload_kind::statefulset);
  json::object d{{"apiVersion", "apps/v1"}, {"kind", "StatefulSet"}, {"metadata", std::move(meta)}, {"spec", std::move(spec)}};
  return done(json::serialize(d));
}

text_result<std::string> promote_primary_statefulset(const canary& c, std::string_view target_json,
                                                     std::string_view primary_json, const primary_options& o,
                                                     std::string_view flagger_id) {
  auto t = read_target(target_json, o, "the target StatefulSet");
  if (!t) return fail(t.error());
  auto p = parse_object(primary_json, "the primary StatefulSet");
  if (!p) return fail(p.error());
  json::object primary = std::move(*p);
  json::object meta;
  if (const auto* m = child_object(primary, "metadata")) meta = *m;
  meta["labels"] = object_labels(child_object(t->meta, "labels"), t->label, o);
  set_or_erase(meta, "annotations", by_prefix(child_object(t->meta, "annotations"), o.include_label_prefix));
  json::object spec;
  if (const auto* s = child_object(primary, "spec")) spec = *s;
  copy_spec_fields(t->spec, spec, workload_kind::statefulset);
  if (!c.spec.autoscaler_ref) {
    if (auto it = t->spec.find("replicas"); it != t->spec.end()) spec["replicas"] = it->value();
  }
  spec["template"] = primary_template(t->spec, t->name, t->label, o, flagger_id, workload_kind::statefulset);
  primary["metadata"] = std::move(meta);
  primary["spec"] = std::move(spec);
  primary.erase("status");
  return done(json::serialize(primary));
}

statefulset_status read_statefulset_status(std::string_view statefulset_json) {
  statefulset_status out;
  auto d = parse_object(statefulset_json, "the StatefulSet");
  if (!d) {
    out.parse_error = d.error();
    return out;
  }
  const json::object* status = child_object(*d, "status");
  out.generation = int_at(child_object(*d, "metadata"), "generation").value_or(0);
  out.observed_generation = int_at(status, "observedGeneration").value_or(0);
  out.replicas = int_at(child_object(*d, "spec"), "replicas").value_or(1);
  out.ready = int_at(status, "readyReplicas").value_or(0);
  out.updated = int_at(status, "updatedReplicas").value_or(0);
  if (status != nullptr) {
    out.current_revision = string_at(*status, "currentRevision");
    out.update_revision = string_at(*status, "updateRevision");
  }
  return out;
}

readiness statefulset_readiness(const statefulset_status& s, const canary& c, int ready_threshold, wall_time now) {
  if (s.parse_error) return readiness::waiting(*s.parse_error);
  if (s.generation > s.observed_generation) {
    return readiness::waiting("waiting for rollout to finish: observed statefulset generation less than desired generation");
  }
  const auto wanted = static_cast<long long>(static_cast<double>(s.replicas) * static_cast<double>(ready_threshold) / 100.0);
  std::string why;
  if (s.updated < s.replicas) {
    why = fmt::format("waiting for rollout to finish: {} out of {} new pods have been updated", s.updated, s.replicas);
  } else if (s.ready < wanted) {
    why = fmt::format("waiting for rollout to finish: {} of {} (readyThreshold {}%) updated pods are ready", s.ready,
                      wanted, ready_threshold);
  } else if (s.current_revision != s.update_revision) {
    why = fmt::format("waiting for statefulset rolling update to complete: {} pods at revision {}", s.updated,
                      s.update_revision);
  } else {
    return readiness::ready();
  }
  const int deadline = c.progress_deadline_seconds();
  if (c.status.last_transition_time && *c.status.last_transition_time + std::chrono::seconds(deadline) < now) {
    return readiness::failed(fmt::format("exceeded its progressDeadlineSeconds: {}", deadline));
  }
  return readiness::waiting(std::move(why));
}

readiness statefulset_canary_readiness(const canary& c, const statefulset_status* target, wall_time now) {
  return workload_readiness(c, workload_kind::statefulset, c.spec.target_ref.name, target,
                            [&](const auto& s) { return statefulset_readiness(s, c, c.canary_ready_threshold(), now); });
}

readiness statefulset_primary_readiness(const canary& c, const statefulset_status* primary, wall_time now) {
  return workload_readiness(c, workload_kind::statefulset, c.primary_workload_name(), primary,
                            [&](const auto& s) { return statefulset_readiness(s, c, c.primary_ready_threshold(), now); });
}

text_result<std::optional<std::string>> make_primary_governing_service(const canary& c, std::string_view governing_json,
                                                                       std::string_view target_json,
                                                                       const std::vector<std::string>& selector_labels,
                                                                       std::string_view existing_json) {
  using out_t = text_result<std::optional<std::string>>;
  auto g = parse_object(governing_json, "the governing Service");
  if (!g) return out_t(boost::system::in_place_error, g.error());
  auto label = selector_label(target_json, selector_labels, "statefulset");
  if (!label) return out_t(boost::system::in_place_error, label.error());
  const json::object* gmeta = child_object(*g, "metadata");
  const std::string name = (gmeta ? string_at(*gmeta, "name") : std::string()) + "-primary";
  json::object spec;
  if (const auto* s = child_object(*g, "spec")) spec = *s;
  if (auto* sel = child_object(spec, "selector")) {
    for (auto& kv : *sel) {
      if (kv.key() == label->first && kv.value().is_string() && kv.value().as_string() == label->second)
        kv.value() = label->second + "-primary";
    }
  }
  const bool headless = string_at(spec, "clusterIP") == "None";
  if (!headless) {
    spec.erase("clusterIP");
    spec.erase("clusterIPs");
  }
  json::object labels = gmeta && child_object(*gmeta, "labels") ? *child_object(*gmeta, "labels") : json::object{};
  json::object annotations = without_toolkit(gmeta ? child_object(*gmeta, "annotations") : nullptr);
  annotations.erase("kubectl.kubernetes.io/last-applied-configuration");
  if (!existing_json.empty()) {
    auto e = parse_object(existing_json, "the primary governing Service");
    if (!e) return out_t(boost::system::in_place_error, e.error());
    json::object existing = std::move(*e);
    json::object espec = child_object(existing, "spec") ? *child_object(existing, "spec") : json::object{};
    for (std::string_view k : {"clusterIP", "clusterIPs"}) {
      if (auto it = espec.find(k); it != espec.end()) spec[k] = it->value();
    }
    json::object& emeta = existing["metadata"].as_object();
    const json::object* el = child_object(emeta, "labels");
    const json::object* ea = child_object(emeta, "annotations");
    if (espec == spec && (el ? *el : json::object{}) == labels && (ea ? *ea : json::object{}) == annotations)
      return out_t(boost::system::in_place_value, std::nullopt);
    set_or_erase(emeta, "labels", std::move(labels));
    set_or_erase(emeta, "annotations", std::move(annotations));
    existing["spec"] = std::move(spec);
    existing.erase("status");
    return out_t(boost::system::in_place_value, json::serialize(existing));
  }
  json::object meta{{"name", name}, {"namespace", c.metadata.namespace_}};
  set_or_erase(meta, "labels", std::move(labels));
  set_or_erase(meta, "annotations", std::move(annotations));
  meta["ownerReferences"] = json::array{owner_reference(c)};
  json::object svc{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", std::move(meta)}, {"spec", std::move(spec)}};
  return out_t(boost::system::in_place_value, json::serialize(svc));
}

// ---- Service targets --------------------------------------------------------------------------------

std::string service_target_name_error(const canary& c, std::string_view provider) {
  const std::string& target = c.spec.target_ref.name;
  const std::string& apex = c.spec.service.name;
  if (apex.empty() || apex == target) return {};
  const auto p = parse_provider(provider);
  if (!p || p->family == router_family::kubernetes) return {};  // the kubernetes provider routes nothing
  return fmt::format("spec.service.name {} is not the target Service {}: the copies of a Service target are {}-primary "
                     "and {}-canary, while the {} router would send traffic to {}-primary and {}-canary; leave "
                     "spec.service.name empty or set it to {}",
                     apex, target, target, target, provider, apex, apex, target);
}

text_result<std::optional<std::string>> make_service_copy(const canary& c, std::string_view svc_json, std::string_view name,
                                                          std::string_view existing_json, const primary_options& o,
                                                          bool promotion) {
  using out_t = text_result<std::optional<std::string>>;
  auto t = parse_object(svc_json, "the target Service");
  if (!t) return out_t(boost::system::in_place_error, t.error());
  const json::object* tmeta = child_object(*t, "metadata");
  json::object labels = promotion ? by_prefix(tmeta ? child_object(*tmeta, "labels") : nullptr, o.include_label_prefix)
                                  : (tmeta && child_object(*tmeta, "labels") ? *child_object(*tmeta, "labels") : json::object{});
  json::object annotations = promotion ? by_prefix(tmeta ? child_object(*tmeta, "annotations") : nullptr, o.include_label_prefix)
                                       : (tmeta && child_object(*tmeta, "annotations") ? *child_object(*tmeta, "annotations")
                                                                                       : json::object{});
  annotations.erase("kubectl.kubernetes.io/last-applied-configuration");
  json::array owners{owner_reference(c)};
  json::object spec = child_object(*t, "spec") ? *child_object(*t, "spec") : json::object{};
  // What the API server allocates per Service: never copied from the target.
  if (string_at(spec, "clusterIP") != "None") {
    spec.erase("clusterIP");
    spec.erase("clusterIPs");
  }
  spec.erase("healthCheckNodePort");
  if (auto* ports = child_array(spec, "ports")) {
    for (auto& pv : *ports) {
      if (pv.is_object()) pv.as_object().erase("nodePort");
    }
  }
  if (existing_json.empty()) {
    json::object meta{{"name", name}, {"namespace", c.metadata.namespace_}};
    set_or_erase(meta, "labels", std::move(labels));
    set_or_erase(meta, "annotations", std::move(annotations));
    meta["ownerReferences"] = std::move(owners);
    json::object svc{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", std::move(meta)}, {"spec", std::move(spec)}};
    return out_t(boost::system::in_place_value, json::serialize(svc));
  }
  auto e = parse_object(existing_json, "the Service copy");
  if (!e) return out_t(boost::system::in_place_error, e.error());
  json::object existing = std::move(*e);
  const json::object espec = child_object(existing, "spec") ? *child_object(existing, "spec") : json::object{};
  for (std::string_view k : {"clusterIP", "clusterIPs", "healthCheckNodePort"}) {
    if (auto it = espec.find(k); it != espec.end()) spec[k] = it->value();
  }
  // Node ports stay those allocated to the copy, matched by port and protocol.
  if (auto* ports = child_array(spec, "ports"); ports != nullptr && espec.contains("ports") && espec.at("ports").is_array()) {
    for (auto& pv : *ports) {
      if (!pv.is_object()) continue;
      for (const auto& ev : espec.at("ports").as_array()) {
        if (!ev.is_object()) continue;
        const auto& ep = ev.as_object();
        if (ep.contains("nodePort") && int_at(&ep, "port") == int_at(&pv.as_object(), "port") &&
            string_at(ep, "protocol") == string_at(pv.as_object(), "protocol"))
          pv.as_object()["nodePort"] = ep.at("nodePort");
      }
    }
  }
  json::object& emeta = existing["metadata"].as_object();
  auto same = [&](std::string_view k, const json::value& want) {
    auto it = emeta.find(k);
    const json::value have = it == emeta.end() ? json::value(json::object{}) : it->value();
    return have == want;
  };
  if (espec == spec && same("labels", labels) && same("annotations", annotations) && same("ownerReferences", owners))
    return out_t(boost::system::in_place_value, std::nullopt);
  set_or_erase(emeta, "labels", std::move(labels));
  set_or_erase(emeta, "annotations", std::move(annotations));
  emeta["ownerReferences"] = std::move(owners);
  existing["spec"] = std::move(spec);
  existing.erase("status");
  return out_t(boost::system::in_place_value, json::serialize(existing));
}

}  // namespace canaryd::core
