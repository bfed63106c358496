// The Deployment target controller (Flagger's DeploymentController + ConfigTracker + HPA
// reconciler, flagger-behaviour.md §3.7, §4). The object transformations are core/primary.hpp's;
// this file reads the caches and writes through the API client.
//
// Reads: only the caches in `cluster` (observe() makes no request). Writes are level-based and
// skipped when the cache already shows the wanted state, so a repeated action on an idle canary
// costs no request. Updates retry on 409 Conflict with a fresh GET (at most 5 times).
#include "daemon/target.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <array>
#include <cassert>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "core/primary.hpp"
#include "core/revision.hpp"
#include "k8s/api_error.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using core::workload_action;

constexpr int conflict_retries = 5;

// Go's error text of a Kubernetes API error: the Status message when the server sent one.
std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

// The JSON of spec.template of a Deployment (empty when absent or not JSON).
std::string template_json(std::string_view deployment_json) {
  boost::system::error_code ec;
  json::value v = json::parse(deployment_json, ec);
  if (ec || !v.is_object()) return {};
  const auto* spec = v.as_object().if_contains("spec");
  if (spec == nullptr || !spec->is_object()) return {};
  const auto* tmpl = spec->as_object().if_contains("template");
  return tmpl == nullptr ? std::string() : json::serialize(*tmpl);
}

// The fields of a config copy that matter for "already up to date".
json::value config_payload(std::string_view config_json) {
  boost::system::error_code ec;
  json::value v = json::parse(config_json, ec);
  json::object out;
  if (ec || !v.is_object()) return out;
  for (std::string_view k : {"data", "binaryData", "type"}) {
    if (const auto* f = v.as_object().if_contains(k)) out[k] = *f;
  }
  if (const auto* m = v.as_object().if_contains("metadata"); m && m->is_object()) {
    for (std::string_view k : {"labels", "annotations", "ownerReferences"}) {
      if (const auto* f = m->as_object().if_contains(k)) out[k] = *f;
    }
  }
  return out;
}

class deployment_controller final : public target_controller {
 public:
  deployment_controller(cluster& k, const options& opts) : k_(k), opts_(opts), random_(std::random_device{}()) {}

  void observe(const core::canary& c, core::observed_state& obs, core::wall_time now) const override {
    const std::string& ns = c.metadata.namespace_;
    const auto target = deployment(ns, c.spec.target_ref.name);
    if (!target) {
      facts_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      statuses_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      obs.target_error = core::missing_deployment_error(c.spec.target_ref.name, ns);
      return;
    }
    facts& f = facts_of(target);
    if (f.label_error) {
      obs.target_error = *f.label_error;
      return;
    }
    if (!f.revision_ok) {
      obs.target_error = fmt::format("deployment {}.{} has no readable pod template", c.spec.target_ref.name, ns);
      return;
    }
    obs.target_revision = f.revision;
    auto configs = tracked_configs(c, f.has_template, f.refs);
    if (!configs) {
      obs.target_error = configs.error();
      return;
    }
    for (const auto& t : *configs) obs.tracked_configs[t.key] = t.checksum;
    obs.target_scaled_to_zero = f.replicas == 0;
    obs.canary = core::canary_readiness(c, &status_of(*target), now);
    const auto primary = deployment(ns, c.primary_workload_name());
    if (!primary) statuses_.erase(k8s::object_key(ns, c.primary_workload_name()));
    obs.primary = core::primary_readiness(c, primary ? &status_of(*primary) : nullptr, now);
    // Only adoption from Flagger consults it (a lastAppliedSpec that is not our hash), and it
    // parses both templates: 17% of a cold start's CPU at 10,000 canaries when always computed.
    const auto& applied = c.status.last_applied_spec;
    if (primary && !applied.empty() && !core::is_canaryd_revision(applied)) {
      auto o = options_for(*configs);
      if (std::string pv = spec_version(*primary); f.matched_primary != pv || f.matched_configs != o.tracked_configs) {
        f.matched_primary = std::move(pv);
        f.matched_configs = o.tracked_configs;
        f.primary_matches = core::primary_matches_target(target->json(), primary->json(), o);
      }
      obs.primary_matches_target = f.primary_matches;
    }
  }

  asio::awaitable<action_result> apply(const core::canary& c, workload_action a) override {
    switch (a) {
      case workload_action::initialize_primary:
        co_return co_await initialize_primary(c);
      case workload_action::scale_to_zero:
        co_return co_await scale_target(c, 0, "scaling down {}.{} failed: {}");
      case workload_action::scale_from_zero: {
        const auto target = deployment(c.metadata.namespace_, c.spec.target_ref.name);
        if (!target) co_return action_result(boost::system::in_place_error, core::missing_deployment_error(c.spec.target_ref.name, c.metadata.namespace_));
        const auto replicas = scale_from_zero_count(c, target->json());
        co_return co_await scale_target(c, replicas, fmt::format("scaling up {{}}.{{}} to {} failed: {{}}", replicas));
      }
      case workload_action::promote:
        co_return co_await promote(c);
      case workload_action::pause_target_scaler:
        co_return co_await set_scaler_paused(c, true);
      case workload_action::resume_target_scaler:
        co_return co_await set_scaler_paused(c, false);
      case workload_action::finalize_target:
        co_return co_await finalize(c);
      default:
        assert(false && "not a target controller action");
        co_return action_result(boost::system::in_place_error,
                                fmt::format("{} is not a target controller action", core::to_string(a)));
    }
  }

  asio::awaitable<action_result> reconcile_primary_scaler(const core::canary& c, bool init) override {
    if (!c.spec.autoscaler_ref) co_return action_result();
    const auto& ref = *c.spec.autoscaler_ref;
    const std::string& ns = c.metadata.namespace_;
    if (ref.kind != "HorizontalPodAutoscaler") {
      co_return error("AutoscalerRef kind {} is not supported by canaryd yet (only HorizontalPodAutoscaler)", ref.kind);
    }
    const auto hpa = k_.hpas.get(ns, ref.name);
    if (!hpa) {
      co_return error("HorizontalPodAutoscaler {}.{} get query error: horizontalpodautoscalers.autoscaling \"{}\" not found",
                      ref.name, ns, ref.name);
    }
    const std::string primary_name = ref.name + "-primary";
    const auto existing = k_.hpas.get(ns, primary_name);
    if (!existing) {
      auto body = core::make_primary_hpa(c, hpa->json(), "");
      if (!body) co_return action_result(boost::system::in_place_error, body.error());
      auto r = co_await k_.client.create(resources::hpas, ns, *body);
      if (!r && !k8s::is_already_exists(r.error())) {
        co_return error("creating HorizontalPodAutoscaler {}.{} failed: {}", primary_name, ns, api_text(r.error()));
      }
      co_return action_result();
    }
    if (init) co_return action_result();
    std::string current(existing->json());
    for (int attempt = 0;; ++attempt) {
      auto body = core::make_primary_hpa(c, hpa->json(), current);
      if (!body) co_return action_result(boost::system::in_place_error, body.error());
      if (!core::primary_hpa_differs(*body, current)) co_return action_result();
      auto r = co_await k_.client.update(resources::hpas, ns, primary_name, *body);
      if (r) co_return action_result();
      if (!k8s::is_conflict(r.error()) || attempt >= conflict_retries) {
        co_return error("updating HorizontalPodAutoscaler {}.{} failed: {}", primary_name, ns, api_text(r.error()));
      }
      auto fresh = co_await k_.client.get(resources::hpas, ns, primary_name);
      if (!fresh) co_return error("updating HorizontalPodAutoscaler {}.{} failed: {}", primary_name, ns, api_text(fresh.error()));
      current = std::string(fresh->json());
    }
  }

 private:
  struct tracked {
    std::string key;  // configmap/<name>, secret/<name>
    core::config_ref ref;
    k8s::object_ptr object;
    std::string checksum;
  };

  template <class... Args>
  static action_result error(fmt::format_string<Args...> f, Args&&... args) {
    return action_result(boost::system::in_place_error, fmt::format(f, std::forward<Args>(args)...));
  }

  // What observe() derives from a target Deployment's spec (and, for primary_matches_target,
  // its primary's), kept per target so that the ~6 ticks of a release (woken by the task's own
  // writes and by the controllers' status updates) do not parse the same specs again: that
  // parsing was most of a tick's CPU and why 100 simultaneous releases queued for ~0.5 s
  // (bench/README.md, "Profile"). Every input here is under spec, so an object's uid and
  // metadata.generation (which the API server bumps on every spec change and never on a status
  // change) name it; an object without a generation is named by its resourceVersion.
  struct facts {
    std::string target;  // spec_version() of the target the facts came from
    std::optional<std::string> label_error;  // selector_label()'s error
    bool has_template = false;
    bool revision_ok = false;
    std::string revision;
    core::decoded<std::vector<core::config_ref>> refs;
    std::optional<long long> replicas;
    // primary_matches_target() of the target against this primary with these tracked configs.
    std::string matched_primary;
    std::set<std::string> matched_configs;
    bool primary_matches = false;
  };

  static std::string spec_version(const k8s::object& o) {
    if (o.generation() > 0) return fmt::format("{}/g{}", o.uid(), o.generation());
    return fmt::format("{}/r{}", o.uid(), o.resource_version());
  }

  // A Deployment's readiness inputs, parsed once per resourceVersion (a status update is a new
  // version; the ticks it does not concern reuse the parse).
  struct parsed_status {
    std::string version;
    core::deployment_status status;
  };

  const core::deployment_status& status_of(const k8s::object& d) const {
    parsed_status& p = statuses_[d.key()];
    std::string version = fmt::format("{}/r{}", d.uid(), d.resource_version());
    if (p.version != version) {
      p.version = std::move(version);
      p.status = core::read_deployment_status(d.json());
    }
    return p.status;
  }

  facts& facts_of(const k8s::object_ptr& target) const {
    facts& f = facts_[target->key()];
    std::string version = spec_version(*target);
    if (f.target == version) return f;
    f = facts{};
    f.target = std::move(version);
    if (auto label = core::selector_label(target->json(), opts_.selector_labels); !label) f.label_error = label.error();
    const std::string tmpl = template_json(target->json());
    auto revision = core::pod_template_revision(tmpl.empty() ? std::string_view("{}") : std::string_view(tmpl));
    f.revision_ok = revision.ok();
    f.revision = std::move(revision.value);
    f.has_template = !tmpl.empty();
    if (f.has_template && opts_.enable_config_tracking) f.refs = core::find_config_refs(tmpl);
    f.replicas = core::deployment_replicas(target->json());
    return f;
  }

  // GetTargetConfigs: every referenced config that exists and is trackable; a missing
  // mandatory one is Flagger's get-query error, a missing optional one is skipped.
  core::text_result<std::vector<tracked>> tracked_configs(const core::canary& c, std::string_view tmpl) const {
    if (!opts_.enable_config_tracking || tmpl.empty()) return std::vector<tracked>{};
    return tracked_configs(c, true, core::find_config_refs(tmpl));
  }

  // The same from the template's config references (find_config_refs() of it).
  core::text_result<std::vector<tracked>> tracked_configs(const core::canary& c, bool has_template,
                                                          const core::decoded<std::vector<core::config_ref>>& refs) const {
    std::vector<tracked> out;
    if (!opts_.enable_config_tracking || !has_template) return out;
    if (!refs.ok()) return std::string("the pod template's config references are not readable");
    for (const auto& ref : refs.value) {
      const bool is_cm = ref.kind == core::config_ref::kind_t::config_map;
      const auto obj = (is_cm ? k_.configmaps : k_.secrets).get(c.metadata.namespace_, ref.name);
      if (!obj) {
        if (ref.optional) continue;
        return is_cm ? fmt::format("configmap {}.{} get query error: configmaps \"{}\" not found", ref.name,
                                   c.metadata.namespace_, ref.name)
                     : fmt::format("secret {}.{} get query error: secrets \"{}\" not found", ref.name,
                                   c.metadata.namespace_, ref.name);
      }
      if (!core::is_tracked_config(obj->json())) continue;
      auto sum = core::config_checksum(obj->json());
      if (!sum.ok()) continue;
      out.push_back({ref.key(), ref, obj, sum.value});
    }
    return out;
  }

  core::primary_options options_for(const std::vector<tracked>& configs) const {
    core::primary_options o;
    o.selector_labels = opts_.selector_labels;
    o.include_label_prefix = opts_.include_label_prefix;
    for (const auto& t : configs) o.tracked_configs.insert(t.key);
    return o;
  }

  // A random UUID v4: Flagger's flagger-id template annotation, new on every promotion so the
  // primary always rolls.
  std::string new_flagger_id() {
    std::array<unsigned char, 16> b{};
    for (auto& x : b) x = static_cast<unsigned char>(random_() & 0xff);
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    std::string s;
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
      s += fmt::format("{:02x}", b[i]);
    }
    return s;
  }

  long long scale_from_zero_count(const core::canary& c, std::string_view target_json) const {
    const auto primary = deployment(c.metadata.namespace_, c.primary_workload_name());
    k8s::object_ptr hpa;
    if (c.spec.autoscaler_ref && c.spec.autoscaler_ref->kind == "HorizontalPodAutoscaler") {
      hpa = k_.hpas.get(c.metadata.namespace_, c.spec.autoscaler_ref->name);
    }
    return core::scale_from_zero_replicas(target_json, primary ? primary->json() : std::string_view(),
                                          c.spec.autoscaler_ref.has_value(), hpa ? hpa->json() : std::string_view());
  }

  // JSON merge patch of the target's spec.replicas; skipped when the cache already shows it.
  // `what` formats "<name>, <ns>, <error>".
  asio::awaitable<action_result> scale_target(const core::canary& c, long long replicas, std::string what) {
    const std::string& ns = c.metadata.namespace_;
    const std::string& name = c.spec.target_ref.name;
    const auto target = deployment(ns, name);
    if (!target) co_return action_result(boost::system::in_place_error, core::missing_deployment_error(name, ns));
    if (core::deployment_replicas(target->json()) == replicas) co_return action_result();
    const std::string patch = fmt::format(R"({{"spec":{{"replicas":{}}}}})", replicas);
    auto r = co_await k_.client.patch(resources::deployments, ns, name, k8s::patch_type::merge, patch);
    if (!r) co_return action_result(boost::system::in_place_error, fmt::format(fmt::runtime(what), name, ns, api_text(r.error())));
    wrote(std::move(*r));
    co_return action_result();
  }

  // CreatePrimaryConfigs: write the -primary copy of every tracked config whose cached copy
  // differs (Update, Create when missing).
  asio::awaitable<action_result> write_primary_configs(const core::canary& c, const std::vector<tracked>& configs,
                                                       const core::primary_options& o) {
    const std::string& ns = c.metadata.namespace_;
    for (const auto& t : configs) {
      const bool is_cm = t.ref.kind == core::config_ref::kind_t::config_map;
      const k8s::resource& res = is_cm ? resources::configmaps : resources::secrets;
      const std::string_view kind = is_cm ? "configmap" : "secret";
      const std::string copy_name = t.ref.name + "-primary";
      auto body = core::make_primary_config(c, t.object->json(), o);
      if (!body) co_return action_result(boost::system::in_place_error, body.error());
      const auto existing = (is_cm ? k_.configmaps : k_.secrets).get(ns, copy_name);
      if (existing && config_payload(existing->json()) == config_payload(*body)) continue;
      ++config_writes_;
      if (existing) {
        auto r = co_await k_.client.update(res, ns, copy_name, *body);
        if (r) continue;
        if (!k8s::is_not_found(r.error())) {
          co_return error("updating {} {}.{} failed: {}", kind, copy_name, ns, api_text(r.error()));
        }
      }
      auto r = co_await k_.client.create(res, ns, *body);
      if (r) continue;
      if (k8s::is_already_exists(r.error())) {
        auto u = co_await k_.client.update(res, ns, copy_name, *body);
        if (u) continue;
        co_return error("updating {} {}.{} failed: {}", kind, copy_name, ns, api_text(u.error()));
      }
      co_return error("creating {} {}.{} failed: {}", kind, copy_name, ns, api_text(r.error()));
    }
    co_return action_result();
  }

  struct target_view {
    k8s::object_ptr target;
    std::vector<tracked> configs;
    core::primary_options opts;
  };

  core::text_result<target_view> read_target(const core::canary& c) const {
    target_view v;
    v.target = deployment(c.metadata.namespace_, c.spec.target_ref.name);
    if (!v.target) return core::missing_deployment_error(c.spec.target_ref.name, c.metadata.namespace_);
    auto configs = tracked_configs(c, template_json(v.target->json()));
    if (!configs) return configs.error();
    v.configs = std::move(*configs);
    v.opts = options_for(v.configs);
    return v;
  }

  // What initialize_primary() reads, named without parsing: the Canary's spec version, the
  // target's, and the uid/resourceVersion of every referenced config, of its -primary copy and of
  // the primary Deployment. Empty when the target is missing or its references are unreadable.
  std::string primary_inputs(const core::canary& c) const {
    const std::string& ns = c.metadata.namespace_;
    const auto target = deployment(ns, c.spec.target_ref.name);
    const auto primary = deployment(ns, c.primary_workload_name());
    if (!target || !primary) return {};
    const facts& f = facts_of(target);
    if (opts_.enable_config_tracking && f.has_template && !f.refs.ok()) return {};
    auto version_of = [](const k8s::object_ptr& o) { return o ? fmt::format("{}/r{}", o->uid(), o->resource_version()) : "-"; };
    std::string out = fmt::format("{}/g{}/r{}|{}|{}", c.metadata.uid, c.metadata.generation,
                                  c.metadata.generation > 0 ? std::string() : c.metadata.resource_version,
                                  spec_version(*target), version_of(primary));
    if (opts_.enable_config_tracking && f.has_template) {
      for (const auto& ref : f.refs.value) {
        const auto& cache = ref.kind == core::config_ref::kind_t::config_map ? k_.configmaps : k_.secrets;
        out += "|" + ref.key() + "=" + version_of(cache.get(ns, ref.name)) + "," + version_of(cache.get(ns, ref.name + "-primary"));
      }
    }
    return out;
  }

  asio::awaitable<action_result> initialize_primary(const core::canary& c) {
    const std::string& ns = c.metadata.namespace_;
    // Every tick re-syncs the primary as Flagger does; a tick whose inputs are those of the last
    // sync that found nothing to write parses nothing (bench/README.md, "Profile").
    const std::string inputs = primary_inputs(c);
    const std::string memo_key = k8s::object_key(ns, c.metadata.name);
    if (auto it = primaries_in_sync_.find(memo_key); !inputs.empty() && it != primaries_in_sync_.end() && it->second == inputs)
      co_return action_result();
    auto v = read_target(c);
    if (!v) co_return action_result(boost::system::in_place_error, v.error());
    const std::size_t writes_before = config_writes_;
    if (auto r = co_await write_primary_configs(c, v->configs, v->opts); !r) co_return r;
    if (deployment(ns, c.primary_workload_name())) {
      // Nothing written: these inputs are in sync. (After a write the cache moves on anyway.)
      if (config_writes_ == writes_before && !inputs.empty()) primaries_in_sync_[memo_key] = inputs;
      co_return action_result();
    }
    primaries_in_sync_.erase(memo_key);
    auto body = core::make_primary_deployment(c, v->target->json(), v->opts, new_flagger_id());
    if (!body) co_return action_result(boost::system::in_place_error, body.error());
    auto r = co_await k_.client.create(resources::deployments, ns, *body);
    if (!r && !k8s::is_already_exists(r.error())) {
      co_return error("creating deployment {}.{} failed: {}", c.primary_workload_name(), ns, api_text(r.error()));
    }
    if (r) wrote(std::move(*r));
    co_return action_result();
  }

  asio::awaitable<action_result> promote(const core::canary& c) {
    const std::string& ns = c.metadata.namespace_;
    const std::string primary_name = c.primary_workload_name();
    auto v = read_target(c);
    if (!v) co_return action_result(boost::system::in_place_error, v.error());
    if (auto r = co_await write_primary_configs(c, v->configs, v->opts); !r) co_return r;
    const auto cached = deployment(ns, primary_name);
    if (!cached) co_return action_result(boost::system::in_place_error, core::missing_deployment_error(primary_name, ns));
    std::string current(cached->json());
    for (int attempt = 0;; ++attempt) {
      auto body = core::promote_primary_deployment(c, v->target->json(), current, v->opts, new_flagger_id());
      if (!body) co_return action_result(boost::system::in_place_error, body.error());
      auto r = co_await k_.client.update(resources::deployments, ns, primary_name, *body);
      if (r) {
        wrote(std::move(*r));
        co_return action_result();
      }
      if (!k8s::is_conflict(r.error()) || attempt >= conflict_retries) {
        co_return error("updating deployment {}.{} template spec failed: {}", primary_name, ns, api_text(r.error()));
      }
      auto fresh = co_await k_.client.get(resources::deployments, ns, primary_name);
      if (!fresh) co_return error("updating deployment {}.{} template spec failed: {}", primary_name, ns, api_text(fresh.error()));
      current = std::string(fresh->json());
    }
  }

  // HPA: Flagger's Pause/Resume are no-ops (the target HPA keeps running; it does not scale a
  // Deployment up from 0). KEDA ScaledObject: the paused-replicas annotation.
  asio::awaitable<action_result> set_scaler_paused(const core::canary& c, bool paused) {
    if (!c.spec.autoscaler_ref || c.spec.autoscaler_ref->kind != "ScaledObject") co_return action_result();
    static const k8s::resource scaled_objects{"keda.sh", "v1alpha1", "scaledobjects", true};
    const std::string patch = paused ? R"({"metadata":{"annotations":{"autoscaling.keda.sh/paused-replicas":"0"}}})"
                                     : R"({"metadata":{"annotations":{"autoscaling.keda.sh/paused-replicas":null}}})";
    const auto& name = c.spec.autoscaler_ref->name;
    auto r = co_await k_.client.patch(scaled_objects, c.metadata.namespace_, name, k8s::patch_type::merge, patch);
    if (!r) {
      co_return error("{} ScaledObject {}.{} failed: {}", paused ? "pausing" : "resuming", name, c.metadata.namespace_,
                      api_text(r.error()));
    }
    co_return action_result();
  }

  // Finalize: give the target the primary's replicas (ScaleFromZero when the primary is gone).
  asio::awaitable<action_result> finalize(const core::canary& c) {
    const std::string& ns = c.metadata.namespace_;
    const auto target = deployment(ns, c.spec.target_ref.name);
    if (!target) co_return action_result(boost::system::in_place_error, core::missing_deployment_error(c.spec.target_ref.name, ns));
    const auto primary = deployment(ns, c.primary_workload_name());
    const long long replicas = primary ? core::deployment_replicas(primary->json()).value_or(1)
                                       : scale_from_zero_count(c, target->json());
    co_return co_await scale_target(c, replicas, fmt::format("scaling up {{}}.{{}} to {} failed: {{}}", replicas));
  }

  cluster& k_;
  const options& opts_;
  std::mt19937_64 random_;
  mutable std::map<std::string, facts, std::less<>> facts_;  // target key -> facts; see facts
  // Deployments as our own writes (scale, promote, create) returned them, by key, while the
  // cache still holds an older generation: a watch cache behind (a cut watch, a slow event)
  // would otherwise show a target we just scaled up as still at zero replicas, i.e. ready, and
  // the analysis would advance a canary whose pods never became ready (issue 11).
  mutable std::map<std::string, k8s::object_ptr, std::less<>> written_;

  k8s::object_ptr deployment(const std::string& ns, const std::string& name) const {
    auto cached = k_.deployments.get(ns, name);
    auto it = written_.find(k8s::object_key(ns, name));
    if (it == written_.end()) return cached;
    if (cached && cached->uid() == it->second->uid() && cached->generation() < it->second->generation()) return it->second;
    written_.erase(it);
    return cached;
  }
  void wrote(k8s::object o) const {
    if (o.generation() <= 0) return;
    const std::string key = o.key();
    written_[key] = std::make_shared<const k8s::object>(std::move(o));
  }
  mutable std::map<std::string, parsed_status, std::less<>> statuses_;  // deployment key -> parsed status
  std::map<std::string, std::string, std::less<>> primaries_in_sync_;  // canary key -> primary_inputs() found in sync
  std::size_t config_writes_ = 0;  // -primary config writes attempted, ever
};

}  // namespace

std::unique_ptr<target_controller> make_deployment_controller(cluster& k, const options& opts) {
  return std::make_unique<deployment_controller>(k, opts);
}

}  // namespace canaryd
