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

#include <cassert>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <set>

#include "core/primary.hpp"
#include "core/revision.hpp"
#include "daemon/config_tracker.hpp"
#include "daemon/scaler_reconciler.hpp"
#include "k8s/api_error.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using core::workload_action;

constexpr int conflict_retries = 5;

// Go's error text of a Kubernetes API error: the Status message when the server sent one.
std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

class deployment_controller final : public target_controller {
 public:
  deployment_controller(cluster& k, const options& opts) : k_(k), opts_(opts), configs_(k, opts), scaler_(k, opts) {}

  void observe(const core::canary& c, core::observed_state& obs, core::wall_time now) const override {
    const std::string& ns = c.metadata.namespace_;
    const auto target = deployment(ns, c.spec.target_ref.name);
    if (!target) {
      facts_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      statuses_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      obs.target_error = core::missing_deployment_error(c.spec.target_ref.name, ns);
      return;
    }
    if (auto why = scaler_reconciler::refusal(c, "Deployment")) {
      obs.target_error = *why;
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
    auto configs = configs_.tracked(c, f.has_template, f.refs);
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
      auto o = configs_.options_for(*configs);
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
        co_return co_await scaler_.set_target_paused(c, true);
      case workload_action::resume_target_scaler:
        co_return co_await scaler_.set_target_paused(c, false);
      case workload_action::finalize_target:
        co_return co_await finalize(c);
      default:
        assert(false && "not a target controller action");
        co_return action_result(boost::system::in_place_error,
                                fmt::format("{} is not a target controller action", core::to_string(a)));
    }
  }

  void stop() override { scaler_.stop(); }

  asio::awaitable<action_result> reconcile_primary_scaler(const core::canary& c, bool init) override {
    co_return co_await scaler_.reconcile_primary(c, init);
  }

 private:
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
    const std::string tmpl = pod_template_json(target->json());
    auto revision = core::pod_template_revision(tmpl.empty() ? std::string_view("{}") : std::string_view(tmpl));
    f.revision_ok = revision.ok();
    f.revision = std::move(revision.value);
    f.has_template = !tmpl.empty();
    if (f.has_template && opts_.enable_config_tracking) f.refs = core::find_config_refs(tmpl);
    f.replicas = core::deployment_replicas(target->json());
    return f;
  }

  long long scale_from_zero_count(const core::canary& c, std::string_view target_json) const {
    const auto primary = deployment(c.metadata.namespace_, c.primary_workload_name());
    const k8s::object_ptr hpa = scaler_.target_autoscaler(c);
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

  struct target_view {
    k8s::object_ptr target;
    std::vector<tracked_config> configs;
    core::primary_options opts;
  };

  core::text_result<target_view> read_target(const core::canary& c) const {
    target_view v;
    v.target = deployment(c.metadata.namespace_, c.spec.target_ref.name);
    if (!v.target) return core::missing_deployment_error(c.spec.target_ref.name, c.metadata.namespace_);
    auto configs = configs_.tracked(c, pod_template_json(v.target->json()));
    if (!configs) return configs.error();
    v.configs = std::move(*configs);
    v.opts = configs_.options_for(v.configs);
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
    const std::size_t writes_before = configs_.writes();
    if (auto r = co_await configs_.write_primary_copies(c, v->configs, v->opts); !r) co_return r;
    if (deployment(ns, c.primary_workload_name())) {
      // Nothing written: these inputs are in sync. (After a write the cache moves on anyway.)
      if (configs_.writes() == writes_before && !inputs.empty()) primaries_in_sync_[memo_key] = inputs;
      co_return action_result();
    }
    primaries_in_sync_.erase(memo_key);
    auto body = core::make_primary_deployment(c, v->target->json(), v->opts, configs_.new_flagger_id());
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
    if (auto r = co_await configs_.write_primary_copies(c, v->configs, v->opts); !r) co_return r;
    const auto cached = deployment(ns, primary_name);
    if (!cached) co_return action_result(boost::system::in_place_error, core::missing_deployment_error(primary_name, ns));
    std::string current(cached->json());
    for (int attempt = 0;; ++attempt) {
      auto body = core::promote_primary_deployment(c, v->target->json(), current, v->opts, configs_.new_flagger_id());
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
  config_tracker configs_;
  scaler_reconciler scaler_;
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
};

}  // namespace

std::unique_ptr<target_controller> make_deployment_controller(cluster& k, const options& opts) {
  return std::make_unique<deployment_controller>(k, opts);
}

}  // namespace canaryd
