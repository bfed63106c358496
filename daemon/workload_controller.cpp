// The DaemonSet and StatefulSet target controllers (Flagger's DaemonSetController,
// flagger-behaviour.md §4; StatefulSets are canaryd's own, docs/targets.md). The object
// transformations are core/primary.hpp's; this file reads the caches and writes through the API
// client, like daemon/deployment_controller.cpp does for Deployments.
//
// Reads: only the caches in `cluster` (observe() makes no request). Writes are level-based and
// skipped when the cache already shows the wanted state, so a repeated action on an idle canary
// costs no request. Updates retry on 409 Conflict with a fresh GET (at most 5 times).
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
#include "daemon/target.hpp"
#include "k8s/api_error.hpp"

namespace canaryd {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using core::workload_action;
using core::workload_kind;

constexpr int conflict_retries = 5;

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

template <class... Args>
action_result error(fmt::format_string<Args...> f, Args&&... args) {
  return action_result(boost::system::in_place_error, fmt::format(f, std::forward<Args>(args)...));
}
action_result error_text(std::string s) { return action_result(boost::system::in_place_error, std::move(s)); }

std::string spec_version(const k8s::object& o) {
  if (o.generation() > 0) return fmt::format("{}/g{}", o.uid(), o.generation());
  return fmt::format("{}/r{}", o.uid(), o.resource_version());
}

const char* kind_name(workload_kind k) {
  switch (k) {
    case workload_kind::deployment: return "Deployment";
    case workload_kind::daemonset: return "DaemonSet";
    case workload_kind::statefulset: return "StatefulSet";
  }
  return "";
}
const char* kind_word(workload_kind k) {
  switch (k) {
    case workload_kind::deployment: return "deployment";
    case workload_kind::daemonset: return "daemonset";
    case workload_kind::statefulset: return "statefulset";
  }
  return "";
}

class workload_controller final : public target_controller {
 public:
  workload_controller(workload_kind kind, cluster& k, const options& opts)
      : kind_(kind), k_(k), opts_(opts), configs_(k, opts), scaler_(k, opts) {
    assert(kind != workload_kind::deployment);
  }

  void observe(const core::canary& c, core::observed_state& obs, core::wall_time now) const override {
    const std::string& ns = c.metadata.namespace_;
    const auto target = cache().get(ns, c.spec.target_ref.name);
    if (!target) {
      facts_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      statuses_.erase(k8s::object_key(ns, c.spec.target_ref.name));
      obs.target_error = core::missing_workload_error(kind_, c.spec.target_ref.name, ns);
      return;
    }
    const facts& f = facts_of(target);
    if (f.refusal) {
      obs.target_error = *f.refusal;
      return;
    }
    if (auto why = scaler_reconciler::refusal(c, kind_name(kind_))) {
      obs.target_error = *why;
      return;
    }
    if (kind_ == workload_kind::statefulset && !f.service_name.empty() && f.service_name == c.apex_service_name()) {
      obs.target_error = fmt::format(
          "the apex Service {}.{} would be statefulset {}.{}'s governing Service: set spec.service.name to another name",
          f.service_name, ns, c.spec.target_ref.name, ns);
      return;
    }
    obs.target_revision = f.revision;
    auto configs = configs_.tracked(c, f.has_template, f.refs);
    if (!configs) {
      obs.target_error = configs.error();
      return;
    }
    for (const auto& t : *configs) obs.tracked_configs[t.key] = t.checksum;
    obs.target_scaled_to_zero = f.scaled_to_zero;
    const auto primary = cache().get(ns, c.primary_workload_name());
    obs.canary = readiness(c, target, false, now);
    obs.primary = readiness(c, primary, true, now);
    const auto& applied = c.status.last_applied_spec;
    if (primary && !applied.empty() && !core::is_canaryd_revision(applied)) {
      obs.primary_matches_target =
          core::primary_matches_target(kind_, target->json(), primary->json(), configs_.options_for(*configs));
    }
  }

  asio::awaitable<action_result> apply(const core::canary& c, workload_action a) override {
    switch (a) {
      case workload_action::initialize_primary: co_return co_await initialize_primary(c);
      case workload_action::scale_to_zero: co_return co_await scale_to_zero(c);
      case workload_action::scale_from_zero: co_return co_await scale_from_zero(c);
      case workload_action::promote: co_return co_await promote(c);
      case workload_action::pause_target_scaler: co_return co_await scaler_.set_target_paused(c, true);
      case workload_action::resume_target_scaler: co_return co_await scaler_.set_target_paused(c, false);
      case workload_action::finalize_target: co_return co_await finalize(c);
      default:
        assert(false && "not a target controller action");
        co_return error("{} is not a target controller action", core::to_string(a));
    }
  }

  void stop() override { scaler_.stop(); }

  asio::awaitable<action_result> reconcile_primary_scaler(const core::canary& c, bool init) override {
    if (auto why = scaler_reconciler::refusal(c, kind_name(kind_))) co_return error_text(*why);
    co_return co_await scaler_.reconcile_primary(c, init);
  }

 private:
  // What observe() derives from the target's spec, kept per spec version (uid + generation).
  struct facts {
    std::string target;
    std::optional<std::string> refusal;  // the target cannot be progressed: why
    bool has_template = false;
    std::string revision;
    core::decoded<std::vector<core::config_ref>> refs;
    bool scaled_to_zero = false;
    std::string service_name;  // a StatefulSet's spec.serviceName
  };

  k8s::cache& cache() const { return kind_ == workload_kind::daemonset ? k_.daemonsets : k_.statefulsets; }
  const k8s::resource& resource() const {
    return kind_ == workload_kind::daemonset ? resources::daemonsets : resources::statefulsets;
  }

  facts& facts_of(const k8s::object_ptr& target) const {
    facts& f = facts_[target->key()];
    std::string version = spec_version(*target);
    if (f.target == version) return f;
    f = facts{};
    f.target = std::move(version);
    const std::string_view json_text = target->json();
    if (auto label = core::selector_label(json_text, opts_.selector_labels, kind_word(kind_)); !label) {
      f.refusal = label.error();
      return f;
    }
    const std::string tmpl = pod_template_json(json_text);
    core::revision_options ro;
    ro.daemonset = kind_ == workload_kind::daemonset;
    auto revision = core::pod_template_revision(tmpl.empty() ? std::string_view("{}") : std::string_view(tmpl), ro);
    if (!revision.ok() || tmpl.empty()) {
      f.refusal = fmt::format("{} {}.{} has no readable pod template", kind_word(kind_), target->name(),
                              target->namespace_name());
      return f;
    }
    f.revision = std::move(revision.value);
    f.has_template = true;
    if (opts_.enable_config_tracking) f.refs = core::find_config_refs(tmpl);
    if (kind_ == workload_kind::daemonset) {
      f.scaled_to_zero = core::daemonset_scaled_to_zero(json_text);
      // createPrimaryDaemonSet's check, made before anything is created.
      f.refusal = core::daemonset_refusal(json_text);
    } else {
      f.refusal = core::statefulset_refusal(json_text);
      f.service_name = core::statefulset_service_name(json_text);
      f.scaled_to_zero = core::deployment_replicas(json_text) == 0;
    }
    return f;
  }

  // A workload's readiness inputs, parsed once per object version (uid/resourceVersion): the
  // ticks a status update does not concern reuse the parse.
  struct parsed_status {
    std::string version;
    core::daemonset_status daemonset;
    core::statefulset_status statefulset;
  };

  const parsed_status& status_of(const k8s::object& o) const {
    parsed_status& p = statuses_[o.key()];
    std::string version = fmt::format("{}/r{}", o.uid(), o.resource_version());
    if (p.version != version) {
      p.version = std::move(version);
      if (kind_ == workload_kind::daemonset) {
        p.daemonset = core::read_daemonset_status(o.json());
      } else {
        p.statefulset = core::read_statefulset_status(o.json());
      }
    }
    return p;
  }

  core::readiness readiness(const core::canary& c, const k8s::object_ptr& o, bool primary, core::wall_time now) const {
    const parsed_status* st = nullptr;
    if (o) {
      st = &status_of(*o);
    } else {
      statuses_.erase(k8s::object_key(c.metadata.namespace_, primary ? c.primary_workload_name() : c.spec.target_ref.name));
    }
    if (kind_ == workload_kind::daemonset) {
      const core::daemonset_status* d = st ? &st->daemonset : nullptr;
      return primary ? core::daemonset_primary_readiness(c, d, now) : core::daemonset_canary_readiness(c, d, now);
    }
    const core::statefulset_status* s = st ? &st->statefulset : nullptr;
    return primary ? core::statefulset_primary_readiness(c, s, now) : core::statefulset_canary_readiness(c, s, now);
  }

  struct target_view {
    k8s::object_ptr target;
    std::vector<tracked_config> configs;
    core::primary_options opts;
  };

  core::text_result<target_view> read_target(const core::canary& c) const {
    target_view v;
    v.target = cache().get(c.metadata.namespace_, c.spec.target_ref.name);
    if (!v.target) return core::missing_workload_error(kind_, c.spec.target_ref.name, c.metadata.namespace_);
    auto configs = configs_.tracked(c, pod_template_json(v.target->json()));
    if (!configs) return configs.error();
    v.configs = std::move(*configs);
    v.opts = configs_.options_for(v.configs);
    return v;
  }

  core::text_result<std::string> make_primary(const core::canary& c, const target_view& v) {
    if (kind_ == workload_kind::daemonset) return core::make_primary_daemonset(c, v.target->json(), v.opts, configs_.new_flagger_id());
    return core::make_primary_statefulset(c, v.target->json(), v.opts, configs_.new_flagger_id());
  }

  asio::awaitable<action_result> initialize_primary(const core::canary& c) {
    const std::string& ns = c.metadata.namespace_;
    auto v = read_target(c);
    if (!v) co_return error_text(v.error());
    if (auto r = co_await configs_.write_primary_copies(c, v->configs, v->opts); !r) co_return r;
    if (kind_ == workload_kind::statefulset) {
      if (auto r = co_await reconcile_governing_service(c, v->target->json()); !r) co_return r;
    }
    if (cache().get(ns, c.primary_workload_name())) co_return action_result();
    auto body = make_primary(c, *v);
    if (!body) co_return error_text(body.error());
    auto r = co_await k_.client.create(resource(), ns, *body);
    if (!r && !k8s::is_already_exists(r.error()))
      co_return error("creating {} {}.{} failed: {}", kind_word(kind_), c.primary_workload_name(), ns, api_text(r.error()));
    co_return action_result();
  }

  // StatefulSets: the primary's own headless governing Service, `<serviceName>-primary`, a copy
  // of the target's with the selector pointing at the primary's pods (core/primary.hpp).
  asio::awaitable<action_result> reconcile_governing_service(const core::canary& c, std::string_view target_json) {
    const std::string& ns = c.metadata.namespace_;
    const std::string service_name = core::statefulset_service_name(target_json);
    if (service_name.empty()) co_return action_result();
    const auto governing = k_.services.get(ns, service_name);
    if (!governing) co_return action_result();  // the target's own pods have no DNS either: not ours to fix
    const std::string copy_name = service_name + "-primary";
    const auto existing = k_.services.get(ns, copy_name);
    auto body = core::make_primary_governing_service(c, governing->json(), target_json, opts_.selector_labels,
                                                     existing ? existing->json() : std::string_view());
    if (!body) co_return error_text(body.error());
    if (!*body) co_return action_result();  // up to date
    if (existing) {
      auto r = co_await k_.client.update(resources::services, ns, copy_name, **body);
      if (!r) co_return error("updating service {}.{} failed: {}", copy_name, ns, api_text(r.error()));
      co_return action_result();
    }
    auto r = co_await k_.client.create(resources::services, ns, **body);
    if (!r && !k8s::is_already_exists(r.error()))
      co_return error("creating service {}.{} failed: {}", copy_name, ns, api_text(r.error()));
    co_return action_result();
  }

  asio::awaitable<action_result> promote(const core::canary& c) {
    const std::string& ns = c.metadata.namespace_;
    const std::string primary_name = c.primary_workload_name();
    auto v = read_target(c);
    if (!v) co_return error_text(v.error());
    if (auto r = co_await configs_.write_primary_copies(c, v->configs, v->opts); !r) co_return r;
    const auto cached = cache().get(ns, primary_name);
    if (!cached) co_return error_text(core::missing_workload_error(kind_, primary_name, ns));
    std::string current(cached->json());
    for (int attempt = 0;; ++attempt) {
      auto body = kind_ == workload_kind::daemonset
                      ? core::promote_primary_daemonset(c, v->target->json(), current, v->opts, configs_.new_flagger_id())
                      : core::promote_primary_statefulset(c, v->target->json(), current, v->opts, configs_.new_flagger_id());
      if (!body) co_return error_text(body.error());
      auto r = co_await k_.client.update(resource(), ns, primary_name, *body);
      if (r) co_return action_result();
      if (!k8s::is_conflict(r.error()) || attempt >= conflict_retries)
        co_return error("updating {} {}.{} template spec failed: {}", kind_word(kind_), primary_name, ns, api_text(r.error()));
      auto fresh = co_await k_.client.get(resource(), ns, primary_name);
      if (!fresh)
        co_return error("updating {} {}.{} template spec failed: {}", kind_word(kind_), primary_name, ns, api_text(fresh.error()));
      current = std::string(fresh->json());
    }
  }

  // A JSON merge patch of the target; `what` formats "<name>, <ns>, <error>".
  asio::awaitable<action_result> patch_target(const core::canary& c, const std::string& patch, std::string what) {
    const std::string& ns = c.metadata.namespace_;
    const std::string& name = c.spec.target_ref.name;
    auto r = co_await k_.client.patch(resource(), ns, name, k8s::patch_type::merge, patch);
    if (!r) co_return error_text(fmt::format(fmt::runtime(what), name, ns, api_text(r.error())));
    co_return action_result();
  }

  asio::awaitable<action_result> scale_to_zero(const core::canary& c) {
    const auto target = cache().get(c.metadata.namespace_, c.spec.target_ref.name);
    if (!target) co_return error_text(core::missing_workload_error(kind_, c.spec.target_ref.name, c.metadata.namespace_));
    if (kind_ == workload_kind::daemonset) {
      // Flagger's ScaleToZero: the nodeSelector flagger.app/scale-to-zero: "true" matches no node.
      if (core::daemonset_scaled_to_zero(target->json())) co_return action_result();
      co_return co_await patch_target(
          c, fmt::format(R"({{"spec":{{"template":{{"spec":{{"nodeSelector":{{"{}":"true"}}}}}}}}}})", core::daemonset_scale_to_zero_key),
          "updating daemonset {}.{} failed: {}");
    }
    if (core::deployment_replicas(target->json()) == 0) co_return action_result();
    co_return co_await patch_target(c, R"({"spec":{"replicas":0}})", "scaling down {}.{} failed: {}");
  }

  asio::awaitable<action_result> scale_from_zero(const core::canary& c) {
    const std::string& ns = c.metadata.namespace_;
    const auto target = cache().get(ns, c.spec.target_ref.name);
    if (!target) co_return error_text(core::missing_workload_error(kind_, c.spec.target_ref.name, ns));
    if (kind_ == workload_kind::daemonset) {
      if (!core::daemonset_scaled_to_zero(target->json())) co_return action_result();
      co_return co_await patch_target(
          c, fmt::format(R"({{"spec":{{"template":{{"spec":{{"nodeSelector":{{"{}":null}}}}}}}}}})", core::daemonset_scale_to_zero_key),
          "scaling up daemonset {}.{} failed: {}");
    }
    const long long replicas = scale_from_zero_count(c, target->json());
    if (core::deployment_replicas(target->json()) == replicas) co_return action_result();
    co_return co_await patch_target(c, fmt::format(R"({{"spec":{{"replicas":{}}}}})", replicas),
                                    fmt::format("scaling up {{}}.{{}} to {} failed: {{}}", replicas));
  }

  long long scale_from_zero_count(const core::canary& c, std::string_view target_json) const {
    const auto primary = cache().get(c.metadata.namespace_, c.primary_workload_name());
    const k8s::object_ptr hpa = scaler_.target_autoscaler(c);
    return core::scale_from_zero_replicas(target_json, primary ? primary->json() : std::string_view(),
                                          c.spec.autoscaler_ref.has_value(), hpa ? hpa->json() : std::string_view());
  }

  // Finalize: a DaemonSet loses its scale-to-zero nodeSelector (Flagger's Finalize); a
  // StatefulSet gets the primary's replicas, as a Deployment does.
  asio::awaitable<action_result> finalize(const core::canary& c) {
    if (kind_ == workload_kind::daemonset) co_return co_await scale_from_zero(c);
    const std::string& ns = c.metadata.namespace_;
    const auto target = cache().get(ns, c.spec.target_ref.name);
    if (!target) co_return error_text(core::missing_workload_error(kind_, c.spec.target_ref.name, ns));
    const auto primary = cache().get(ns, c.primary_workload_name());
    const long long replicas = primary ? core::deployment_replicas(primary->json()).value_or(1)
                                       : scale_from_zero_count(c, target->json());
    if (core::deployment_replicas(target->json()) == replicas) co_return action_result();
    co_return co_await patch_target(c, fmt::format(R"({{"spec":{{"replicas":{}}}}})", replicas),
                                    fmt::format("scaling up {{}}.{{}} to {} failed: {{}}", replicas));
  }

  workload_kind kind_;
  cluster& k_;
  const options& opts_;
  config_tracker configs_;
  scaler_reconciler scaler_;
  mutable std::map<std::string, facts, std::less<>> facts_;             // target key -> facts
  mutable std::map<std::string, parsed_status, std::less<>> statuses_;  // workload key -> parsed status
};

}  // namespace

std::unique_ptr<target_controller> make_daemonset_controller(cluster& k, const options& opts) {
  return std::make_unique<workload_controller>(workload_kind::daemonset, k, opts);
}

std::unique_ptr<target_controller> make_statefulset_controller(cluster& k, const options& opts) {
  return std::make_unique<workload_controller>(workload_kind::statefulset, k, opts);
}

}  // namespace canaryd
