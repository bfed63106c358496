#include "daemon/canary_runner.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <random>
#include <variant>

#include "core/canary.hpp"
#include "core/message.hpp"
#include "core/metric_check.hpp"
#include "core/provider.hpp"
#include "core/rollout.hpp"
#include "daemon/alert_sender.hpp"
#include "daemon/canary_metrics.hpp"
#include "daemon/event_recorder.hpp"
#include "daemon/metric_runner.hpp"
#include "daemon/metrics_registry.hpp"
#include "daemon/ownership.hpp"
#include "daemon/target.hpp"
#include "daemon/webhook_caller.hpp"
#include "k8s/log.hpp"
#include "mesh/router.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;

// One Canary's task state, shared between the runner's map and the coroutine.
struct canary_runner::task {
  task(asio::any_io_executor ex, std::string k) : key(std::move(k)), timer(ex) {
    auto slash = key.find('/');
    namespace_name = key.substr(0, slash);
    name = key.substr(slash + 1);
  }
  std::string key, namespace_name, name;
  std::string target_name;  // the last tick's targetRef.name (Flagger's metric label)
  asio::steady_timer timer;
  bool dirty = true;     // something changed since the last decide()
  bool stopped = false;
  std::optional<core::wall_time> last_step;
  std::set<std::string> interests;
  // The Canary as our last write (or our last read after a conflict or a failed write) returned
  // it, and every resourceVersion known to be older: the cache's when we wrote, each base we
  // wrote over, our earlier writes. While the cache holds one of those, `written` is the truth;
  // deciding from the cache then would repeat a step (issue 11: "Initialization done!" twice
  // within 1 ms, iterations run twice while a cut watch had the cache behind).
  k8s::object_ptr written;
  std::set<std::string> superseded;
  std::string cached_version;  // of the cache's object when this tick started
  bool resumed = false;        // the first tick since start has finished
  bool action_failed = false;  // apply() stopped at a failed cluster action this tick
  // A status write failed without an answer we can trust (5xx, timeout): whether it landed is
  // unknown, so the next tick reads the Canary from the API server before deciding again.
  bool reread = false;
  // A status write met a newer Canary: apply() stopped and the tick is decided again at once
  // from that Canary (no Warning: nothing failed).
  bool redecide = false;
  bool step_written = false;   // this tick's status write carrying the step's time landed
  int failures = 0;            // consecutive ticks that stopped at a failed action (backoff)
};

namespace {

// Letters for session affinity cookies (Flagger's randSeq alphabet). One thread: a plain
// generator, seeded once.
std::string random_letters(std::size_t n) {
  static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  static std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += alphabet[pick(rng)];
  return out;
}

const char* source_name(canary_runner::source s) {
  switch (s) {
    case canary_runner::source::deployment: return "deployment";
    case canary_runner::source::configmap: return "configmap";
    case canary_runner::source::secret: return "secret";
    case canary_runner::source::daemonset: return "daemonset";
    case canary_runner::source::statefulset: return "statefulset";
    case canary_runner::source::service: return "service";
    case canary_runner::source::knative_service: return "knative";
  }
  return "?";
}

// The interest source of a provider's object kind ("VirtualService" → "mesh:VirtualService").
std::string mesh_source(std::string_view kind) { return fmt::format("mesh:{}", kind); }

std::string interest_key(std::string_view source, std::string_view ns, std::string_view name) {
  return fmt::format("{}/{}/{}", source, ns, name);
}

}  // namespace

// The coroutine and its helpers; a friend of canary_runner.
struct runner_access {
  using task = canary_runner::task;

  static asio::awaitable<void> run(canary_runner& r, std::shared_ptr<task> t) {
    log::debug("canary task started", {{"canary", t->name + "." + t->namespace_name}});
    while (!t->stopped) {
      if (!r.try_take_slot()) {
        // Wait for release_slot() to hand over a slot (it cancels this timer), or for stop().
        asio::steady_timer turn(r.ex_, std::chrono::steady_clock::time_point::max());
        r.slot_waiters_.push_back(&turn);
        boost::system::error_code ec;
        co_await turn.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (r.stopped_) break;  // woken by stop(): no slot was handed over
        if (t->stopped) {
          r.release_slot();
          break;
        }
      }
      t->dirty = false;
      std::optional<core::wall_time> wake_at;
      try {
        wake_at = co_await tick(r, *t);
      } catch (...) {
        r.release_slot();
        throw;
      }
      r.release_slot();
      if (t->stopped) break;
      if (!t->resumed) {
        t->resumed = true;
        r.resumed_.add({});
      }
      if (t->dirty) continue;
      if (wake_at) {
        auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(*wake_at - core::wall_clock::now());
        t->timer.expires_after(std::max(wait, std::chrono::steady_clock::duration::zero()));
      } else {
        t->timer.expires_at(std::chrono::steady_clock::time_point::max());
      }
      boost::system::error_code ec;
      co_await t->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      // Only a timer that expired (not one cancelled by a change or stop) is a timer wake.
      if (!ec && !t->stopped)
        r.timer_lag_.observe({}, std::chrono::duration<double>(std::chrono::steady_clock::now() - t->timer.expiry()).count());
    }
  }

  // The Canary to decide on: the cache's, unless what we wrote (or read) is newer.
  static k8s::object_ptr current(canary_runner& r, task& t) {
    auto obj = r.k_.canaries.get(t.namespace_name, t.name);
    if (!obj) return nullptr;
    t.cached_version = obj->resource_version();
    if (t.written && obj->uid() == t.written->uid() && t.superseded.contains(obj->resource_version())) return t.written;
    // The cache has what we wrote, or something newer (another writer): it is the truth again.
    t.written.reset();
    t.superseded.clear();
    return obj;
  }

  // When to try again after `failures` consecutive failed ticks: 100 ms doubling, at most one
  // interval. A failed step is retried soon, so a 5xx or a 429 lengthens its wait by a fraction
  // of the interval instead of a whole one (which made rollouts under API faults 6.3x slower).
  static std::chrono::milliseconds retry_delay(int failures, std::chrono::milliseconds interval) {
    auto d = std::chrono::milliseconds(100);
    for (int i = 1; i < failures && d < interval; ++i) d *= 2;
    return std::min(d, std::max(interval, std::chrono::milliseconds(100)));
  }

  static asio::awaitable<std::optional<core::wall_time>> tick(canary_runner& r, task& t) {
    auto obj = current(r, t);
    if (!obj) co_return std::nullopt;
    if (t.reread) {
      // The last status write may or may not have landed: decide from the API server's Canary.
      auto fresh = co_await r.k_.client.get(resources::canaries, t.namespace_name, t.name);
      if (t.stopped) co_return std::nullopt;
      if (!fresh) {
        if (k8s::is_not_found(fresh.error())) co_return std::nullopt;  // the cache will say it is gone
        ++t.failures;
        log::warn(fmt::format("cannot read the canary after a failed status write: {}", fresh.error().what()),
                  {{"canary", t.name + "." + t.namespace_name}});
        co_return core::wall_clock::now() + retry_delay(t.failures, std::chrono::seconds(1));
      }
      t.reread = false;
      if (fresh->uid() == obj->uid()) {
        remember(t, *obj, std::move(*fresh));
        obj = t.written;
      }
    }
    core::decode_options dopts;
    dopts.no_cross_namespace_refs = r.opts_.no_cross_namespace_refs;
    auto dec = core::decode_canary(obj->json(), dopts);
    // A provider canaryd has no router for is refused like an invalid field: nothing is created
    // or scaled (core/provider.hpp).
    if (std::none_of(dec.errors.begin(), dec.errors.end(), [](const auto& e) { return e.field == "spec.provider"; })) {
      if (auto pe = core::provider_error(dec.value, r.opts_.mesh_provider)) dec.errors.push_back(std::move(*pe));
    }
    const core::canary& c = dec.value;
    if (dec.ok()) {
      // The ownership check reads the provider's mesh objects: a provider's first tick waits for
      // its caches (they start on first use), or it would create objects next to a foreign one.
      if (auto* m = router_for(r, c)) {
        const bool synced = co_await m->wait_synced();
        (void)synced;  // not synced: the reconcile says why
        if (t.stopped) co_return std::nullopt;
      }
    }
    const core::wall_time now = core::wall_clock::now();
    const auto started = std::chrono::steady_clock::now();
    t.target_name = c.spec.target_ref.name;

    core::observed_state obs;
    if (c.analysis_or_empty().affinity) obs.random_letters = random_letters(20);
    target_controller* target = nullptr;
    mesh_router* mesh = nullptr;
    std::set<std::string> interests;
    if (dec.ok()) {
      const auto& ref = c.spec.target_ref;
      // The controller for the kind and the cache its changes come from ("deployment", ...).
      std::string_view source;
      if (ref.kind == "Deployment") {
        target = r.deployments_.get();
        source = "deployment";
      } else if (ref.kind == "DaemonSet") {
        target = r.daemonsets_.get();
        source = "daemonset";
      } else if (ref.kind == "StatefulSet") {
        target = r.statefulsets_.get();
        source = "statefulset";
      } else if (ref.kind == "Service" && !c.is_knative_target()) {
        target = r.service_targets_.get();
        source = "service";
      } else if (c.is_knative_target()) {
        target = r.knative_.get();
        source = "knative";
      } else {
        obs.target_error = fmt::format("target kind {} is not supported yet", ref.kind);
      }
      if (target) {
        target->observe(c, obs, now);
        interests.insert(interest_key(source, c.metadata.namespace_, ref.name));
        interests.insert(interest_key(source, c.metadata.namespace_, c.primary_workload_name()));
        for (const auto& [k, _] : obs.tracked_configs) {
          auto slash = k.find('/');
          if (slash == std::string::npos) continue;
          interests.insert(interest_key(k.substr(0, slash), c.metadata.namespace_, k.substr(slash + 1)));
        }
      }
      mesh = router_for(r, c);
      if (mesh) {
        mesh->observe(c, obs);
      } else {
        obs.routes_error = fmt::format("provider {} is not supported yet",
                                       c.spec.provider.empty() ? r.opts_.mesh_provider : c.spec.provider);
      }
      // Before anything is written: is any of it someone else's?
      obs.refusal = r.owners_->refusal(c, obs, mesh ? mesh->existing(c) : decltype(mesh->existing(c)){});
      // A refused Canary waits on the provider's objects too: it goes ahead when their owner lets
      // go of them (rule 4). Only then: a driven Canary's own writes would wake it for nothing.
      if (mesh && !obs.refusal.empty())
        for (const auto& [kind, name] : mesh->object_names(c))
          interests.insert(interest_key(mesh_source(kind), c.metadata.namespace_, name));
    }
    r.set_interests(t, std::move(interests));

    core::rollout_options ro;
    ro.mesh_provider = r.opts_.mesh_provider;
    ro.config_tracking = r.opts_.enable_config_tracking;
    core::tick_clock clock{now, t.last_step};
    for (int round = 0; round < 32; ++round) {
      core::decision d = core::decide(c, dec.errors, obs, ro, clock);
      if (d.need_webhooks) {
        const core::webhook_request& req = *d.need_webhooks;
        std::vector<core::webhook_outcome> outcomes;
        for (const auto& h : req.hooks) {
          outcomes.push_back(co_await call_webhook(r.ex_, c, h, req.payload_phase));
          if (t.stopped) co_return std::nullopt;
          // Stop as Flagger does: gates at the first failure, rollback hooks at the first success.
          if (outcomes.back().ok == req.stop_at_first_success) break;
        }
        obs.webhook_results[req.type] = std::move(outcomes);
        continue;
      }
      if (d.need_metrics) {
        obs.metric_results = co_await r.metrics_->run(c, *d.need_metrics);
        if (t.stopped) co_return std::nullopt;
        const auto& metrics = c.analysis_or_empty().metrics;
        for (std::size_t i = 0; i < d.need_metrics->queries.size() && i < obs.metric_results->size(); ++i) {
          const auto& q = d.need_metrics->queries[i];
          const auto& o = (*obs.metric_results)[i];
          if (o.result != core::metric_observation::outcome::value || q.metric >= metrics.size()) continue;
          r.flagger_metrics_->metric_checked(c, metrics[q.metric], q.kind == core::metric_query_kind::request_duration,
                                             o.value);
        }
        continue;
      }
      t.action_failed = false;
      t.redecide = false;
      t.step_written = false;
      co_await apply(r, t, c, *obj, target, mesh, d, now);
      // The step is taken when its status write (which carries `now`) landed, or it had none and
      // nothing failed; a step whose write failed is tried again soon, not an interval later.
      if (d.step_taken && (t.step_written || !t.action_failed)) {
        t.last_step = now;
        log_step(c, d, now);
      }
      r.flagger_metrics_->tick(c, d, std::chrono::steady_clock::now() - started);
      if (t.redecide) {
        // A newer Canary than the one decided from: decide again from it (remembered in
        // `written`). A second conflict in a row backs off like a failure.
        t.dirty = t.failures++ == 0;
        if (!t.dirty) co_return core::wall_clock::now() + retry_delay(t.failures - 1, c.analysis_interval());
        co_return d.wake_at;
      }
      // A failed cluster action (5xx, timeout, the client rate limit's deadline) leaves the
      // cluster short of the decision, and an idle decision (initialization, the end of a
      // promotion) waits for a change that then never comes: found by bench/ at 10,000 canaries,
      // where 6,000 initializations stalled for good. Retry with a backoff from 100 ms up to one
      // analysis interval (Flagger's per-canary ticker retries after one interval).
      if (t.action_failed) {
        const core::wall_time retry = core::wall_clock::now() + retry_delay(++t.failures, c.analysis_interval());
        if (!d.wake_at || *d.wake_at > retry) co_return retry;
        co_return d.wake_at;
      }
      t.failures = 0;
      co_return d.wake_at;
    }
    log::error("decide() kept asking for input; giving up until the next change", {{"canary", c.id()}});
    co_return std::nullopt;
  }

  // One debug line per analysis step taken, with the state it wrote (or, for a step that wrote
  // nothing — a wait whose reason the condition already says — the state it left alone, and
  // `written` false: such a step leaves no time where a restart finds it): what tests/e2e's
  // reliability suite measures gaps, repeats and skips from (docs/reliability.md).
  static void log_step(const core::canary& c, const core::decision& d, core::wall_time now) {
    if (!log::enabled(log::level::debug)) return;
    const core::canary_status* st = &c.status;
    bool written = false;
    for (const auto& s : d.steps) {
      if (auto* w = std::get_if<core::write_status>(&s)) {
        st = &w->status;
        written = true;
      }
    }
    const std::string at = core::format_rfc3339_ms(now);
    log::debug("analysis step", {{"canary", c.id()},
                                 {"decidedAt", at},
                                 {"phase", core::to_string(st->phase)},
                                 {"iterations", st->iterations},
                                 {"canaryWeight", st->canary_weight},
                                 {"failedChecks", st->failed_checks},
                                 {"written", written}});
  }

  static mesh_router* router_for(canary_runner& r, const core::canary& c) {
    std::string provider = c.spec.provider.empty() ? r.opts_.mesh_provider : c.spec.provider;
    auto it = r.meshes_.find(provider);
    if (it == r.meshes_.end()) it = r.meshes_.emplace(provider, make_mesh_router(provider, *r.routing_)).first;
    return it->second.get();
  }

  static bool is_report(const core::rollout_step& s) {
    return std::holds_alternative<core::record_event>(s) || std::holds_alternative<core::send_alert>(s) ||
           std::holds_alternative<core::call_webhooks>(s);
  }

  // The decision's steps in order, except that reports (Events, alerts, post-rollout hooks) wait
  // until the cluster actions and status write before them succeeded: they are delivered after
  // each status write that landed, and at the end. A step that fails drops the reports not yet
  // delivered: the retry decides them again, so each is delivered once (issue 11: "New revision
  // detected!" recorded, then its scale-up failed on a 500 and the retry recorded it again).
  static asio::awaitable<void> apply(canary_runner& r, task& t, const core::canary& c, const k8s::object& obj,
                                     target_controller* target, mesh_router* mesh, const core::decision& d,
                                     core::wall_time now) {
    const core::canary_status* status = &c.status;  // the status as this tick last wrote it
    std::vector<const core::rollout_step*> pending;
    for (const auto& step : d.steps) {
      if (t.stopped) co_return;
      if (is_report(step)) {
        pending.push_back(&step);
        continue;
      }
      action_result res;
      if (auto* a = std::get_if<core::workload_action>(&step)) {
        res = co_await workload(r, t, c, obj, target, mesh, *a);
      } else if (auto* s = std::get_if<core::reconcile_primary_scaler>(&step)) {
        // Not `target ? co_await ... : ...`: GCC 12 destroys a co_await result inside a
        // conditional operator twice, a double free whenever the result holds an error string.
        if (target)
          res = co_await target->reconcile_primary_scaler(c, s->init);
        else
          res = action_result(std::string("no target controller"));
      } else if (auto* s = std::get_if<core::set_routes>(&step)) {
        if (mesh)
          res = co_await mesh->set_routes(c, *s);
        else
          res = action_result(std::string("no router"));
      } else if (auto* s = std::get_if<core::write_status>(&step)) {
        res = co_await write_status(r, t, c, obj, s->status);
        if (res) status = &s->status;
        if (res && s->status.last_transition_time == now) t.step_written = true;
        if (res) {
          co_await deliver(r, t, c, pending, now);
          pending.clear();
        }
      }
      if (!res) {
        t.action_failed = true;
        if (t.redecide) co_return;
        core::canary_event ev;
        ev.severity = core::event_severity::warning;
        ev.message = res.error();
        ev.phase = c.status.phase;
        // The canary cannot go on: its Promoted condition says why, and one Warning Event per
        // distinct reason (not one every interval); decide() puts the phase's message back once
        // a step goes on.
        core::canary_status held = *status;
        const std::string why = core::one_line(res.error());
        bool repeated = false;
        for (auto& cond : held.conditions) {
          if (cond.type != "Promoted") continue;
          if (cond.message == why) {
            repeated = true;
            break;
          }
          cond.message = why;
          cond.last_update_time = now;
          if (!t.stopped && !std::holds_alternative<core::write_status>(step)) (void)co_await write_status(r, t, c, obj, held);
          break;
        }
        if (!repeated) r.events_->record(c, ev, now);
        co_return;
      }
    }
    co_await deliver(r, t, c, pending, now);
  }

  static asio::awaitable<void> deliver(canary_runner& r, task& t, const core::canary& c,
                                       const std::vector<const core::rollout_step*>& reports, core::wall_time now) {
    for (const auto* step : reports) {
      if (t.stopped) co_return;
      if (auto* s = std::get_if<core::record_event>(step)) {
        r.events_->record(c, s->event, now);
      } else if (auto* s = std::get_if<core::send_alert>(step)) {
        r.alerts_.send(c, *s);  // returns at once: delivery never delays the rollout
      } else if (auto* s = std::get_if<core::call_webhooks>(step)) {
        std::vector<core::webhook_outcome> outcomes;
        for (const auto& h : s->hooks) outcomes.push_back(co_await call_webhook(r.ex_, c, h, s->payload_phase));
        // Named, not a range-for temporary: GCC 12 mishandles temporaries' lifetimes across co_await.
        const auto events = core::webhook_outcome_events(c, s->type, s->payload_phase, outcomes);
        for (const auto& e : events) r.events_->record(c, e, now);
      }
    }
  }

  static asio::awaitable<action_result> workload(canary_runner& r, task& t, const core::canary& c,
                                                 const k8s::object& obj, target_controller* target,
                                                 mesh_router* mesh, core::workload_action a) {
    using wa = core::workload_action;
    // A Service target (a Knative one too) has no apex/-primary/-canary Services to manage:
    // Flagger's KubernetesNoopRouter (the Service target controller makes the -primary and
    // -canary copies; Knative routes between revisions).
    const bool noop_kube_router = c.spec.target_ref.kind == "Service";
    switch (a) {
      case wa::initialize_services:
        if (noop_kube_router) co_return action_result();
        co_return co_await r.services_->initialize(c);
      case wa::reconcile_apex:
        if (noop_kube_router) co_return action_result();
        co_return co_await r.services_->reconcile(c);
      case wa::reconcile_mesh:
        if (!mesh)
          co_return action_result(fmt::format("no router for provider {}",
                                              c.spec.provider.empty() ? r.opts_.mesh_provider : c.spec.provider));
        co_return co_await mesh->reconcile(c);
      case wa::finalize_routers: {
        if (!noop_kube_router) {
          auto s = co_await r.services_->finalize(c);
          if (!s) co_return s;
        }
        if (mesh) co_return co_await mesh->finalize(c);
        co_return action_result();
      }
      case wa::check_metric_providers: {
        // As Flagger: an unavailable provider is reported in an Error event and does not block.
        std::string problem = co_await r.metrics_->check_providers(c);
        if (!problem.empty()) {
          core::canary_event ev;
          ev.severity = core::event_severity::error;
          ev.message = fmt::format("Error checking metric providers: {}", problem);
          ev.phase = c.status.phase;
          r.events_->record(c, ev);
        }
        co_return action_result();
      }
      case wa::add_finalizer:
      case wa::remove_finalizer: co_return co_await finalizer(r, t, c, obj, a == wa::add_finalizer);
      default:
        if (!target) co_return action_result(fmt::format("no controller for target kind {}", c.spec.target_ref.kind));
        co_return co_await target->apply(c, a);
    }
  }

  static asio::awaitable<action_result> finalizer(canary_runner& r, task& t, const core::canary& c,
                                                  const k8s::object& obj, bool add) {
    std::vector<std::string> list = c.metadata.finalizers;
    auto it = std::find(list.begin(), list.end(), core::canary_finalizer);
    if (add == (it != list.end())) co_return action_result();
    if (add)
      list.emplace_back(core::canary_finalizer);
    else
      list.erase(it);
    json::array fin;
    for (const auto& f : list) fin.emplace_back(json::string(f));
    json::object meta{{"resourceVersion", latest(t, obj).resource_version()}, {"finalizers", std::move(fin)}};
    json::object body{{"metadata", std::move(meta)}};
    const std::string text = json::serialize(body);
    auto res = co_await r.k_.client.patch(resources::canaries, t.namespace_name, t.name, k8s::patch_type::merge, text);
    if (!res) {
      // Landed or not (a lost answer), or a newer Canary than ours (409): read before deciding again.
      t.reread = true;
      co_return action_result(fmt::format("{} finalizer on {} failed: {}", add ? "adding" : "removing", c.id(),
                                          res.error().what()));
    }
    remember(t, latest(t, obj), std::move(*res));
    co_return action_result();
  }

  // `obj`, or our own later write of it while the cache has not caught up.
  static const k8s::object& latest(task& t, const k8s::object& obj) {
    // current() dropped `written` if the cache moved past it.
    return t.written && t.written->uid() == obj.uid() ? *t.written : obj;
  }

  // `after` is newer than `base` (what a write replaced, or what a read found out of date), than
  // the cache's view this tick, and than anything remembered before.
  static void remember(task& t, const k8s::object& base, k8s::object after) {
    if (!t.cached_version.empty()) t.superseded.insert(t.cached_version);
    if (!base.resource_version().empty()) t.superseded.insert(base.resource_version());
    if (t.written) t.superseded.insert(t.written->resource_version());
    t.superseded.erase(after.resource_version());
    t.written = std::make_shared<const k8s::object>(std::move(after));
  }

  // The whole status through the status subresource, on the Canary decided from (or our later
  // write of it). Never a status decided from a stale view (issue 11):
  //   - 409: the Canary is re-read once. If it already holds this status, our write landed
  //     earlier (an answer lost, then a replay met our own write): done. If its status is the
  //     one decided from (someone changed metadata or spec), the status is put on it once more.
  //     Otherwise the step was decided from an old status: nothing is written, and the tick is
  //     decided again at once from the Canary read (t.redecide).
  //   - any other failure: whether it landed is unknown, so the next tick re-reads (t.reread).
  static asio::awaitable<action_result> write_status(canary_runner& r, task& t, const core::canary& c,
                                                     const k8s::object& obj, const core::canary_status& status) {
    json::value st;
    try {
      st = json::parse(core::encode_status(status));
    } catch (const std::exception& e) {
      co_return action_result(fmt::format("cannot encode the status of {}: {}", c.id(), e.what()));
    }
    k8s::object base = latest(t, obj);
    json::value decided_from = status_of(base);
    for (int attempt = 0; attempt < 2; ++attempt) {
      json::value v = base.to_value();
      if (!v.is_object()) co_return action_result(fmt::format("canary {} is not a JSON object", c.id()));
      v.as_object()["status"] = st;
      const std::string body = json::serialize(v);
      auto res = co_await r.k_.client.update_status(resources::canaries, t.namespace_name, t.name, body);
      if (res) {
        remember(t, base, std::move(*res));
        co_return action_result();
      }
      if (!k8s::is_conflict(res.error())) {
        t.reread = true;
        co_return action_result(fmt::format("status update of {} failed: {}", c.id(), res.error().what()));
      }
      auto fresh = co_await r.k_.client.get(resources::canaries, t.namespace_name, t.name);
      if (!fresh) {
        t.reread = true;
        co_return action_result(fmt::format("status update of {} failed: {}", c.id(), fresh.error().what()));
      }
      const json::value now_there = status_of(*fresh);
      if (fresh->uid() != base.uid()) co_return action_result(fmt::format("canary {} was replaced", c.id()));
      if (now_there == st) {
        remember(t, base, std::move(*fresh));
        co_return action_result();
      }
      if (now_there != decided_from) {
        remember(t, base, std::move(*fresh));
        t.redecide = true;
        co_return action_result(fmt::format("status of {} changed meanwhile; deciding again", c.id()));
      }
      base = std::move(*fresh);
    }
    // Two conflicts with the same status: someone keeps changing the Canary's metadata or spec.
    t.reread = true;
    t.redecide = true;
    co_return action_result(fmt::format("status update of {} failed: the Canary keeps changing", c.id()));
  }

  static json::value status_of(const k8s::object& o) {
    json::value v = o.to_value();
    if (auto* obj = v.if_object()) {
      if (auto* s = obj->if_contains("status")) return *s;
    }
    return json::object();
  }
};

canary_runner::canary_runner(asio::any_io_executor ex, cluster& k, const options& opts, alert_sender& alerts,
                             metrics_registry& registry)
    : ex_(std::move(ex)),
      k_(k),
      opts_(opts),
      routing_(std::make_unique<router_context>(
          router_context{k.client, k.deployments, k.daemonsets, k.statefulsets, k.services, opts.namespace_,
                         opts.selector_labels, k.mesh_client, k.mesh_owner_references, {}, {}})),
      alerts_(alerts),
      events_(std::make_unique<event_recorder>(ex_, k.client, registry)),
      deployments_(make_deployment_controller(k, opts)),
      daemonsets_(make_daemonset_controller(k, opts)),
      statefulsets_(make_statefulset_controller(k, opts)),
      service_targets_(make_service_target_controller(k, opts)),
      knative_(make_knative_controller(k, opts,
                                       [this](std::string_view ns, std::string_view name) {
                                         if (!stopped_) changed(source::knative_service, ns, name);
                                       })),
      services_(make_service_router(*routing_)),
      metrics_(std::make_unique<metric_runner>(ex_, k, opts)),
      flagger_metrics_(std::make_unique<canary_metrics>(registry)),
      owners_(std::make_unique<ownership>(k)),
      tasks_gauge_(registry.gauge("canaryd_canary_tasks", "Running canary tasks")),
      resumed_(registry.counter("canaryd_canaries_resumed_total",
                                "Canary tasks that finished their first decision since the process started")),
      // Fine buckets below 0.1 s: the goal is a p99 under 100 ms (bench/).
      timer_lag_(registry.histogram("canaryd_timer_lag_seconds",
                                    "How late a canary task's timer fired after its due time", {},
                                    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1})) {
  tasks_gauge_.set({}, 0);
  resumed_.add({}, 0);
  routing_->foreign_owner = [this](const core::canary& c, const std::string& kind, const k8s::object& o) {
    return owners_->foreign_mesh_object(c, kind, o);
  };
  routing_->mesh_object_changed = [this](const std::string& kind, std::string_view ns, std::string_view name) {
    if (!stopped_) wake_interested(interest_key(mesh_source(kind), ns, name));
  };
  events_->on_event([this](const core::canary& c, const core::canary_event& e) {
    if (!stopped_) send_event_webhooks(ex_, c, e, opts_.event_webhook);
  });
  // An alert that could not be delivered is a Warning Event on its Canary (aggregated by the
  // recorder), not only a log line.
  alerts_.on_failure([this](const core::canary& c, const std::string& message) {
    if (stopped_) return;
    core::canary_event ev;
    ev.severity = core::event_severity::warning;
    ev.message = message;
    ev.phase = c.status.phase;
    events_->record(c, ev);
  });
}

canary_runner::~canary_runner() {
  alerts_.on_failure(nullptr);
  stop();
}

void canary_runner::add(const std::string& key) {
  if (stopped_) return;
  if (tasks_.contains(key)) {
    wake(key);
    return;
  }
  for (const auto& other : owners_->canary_changed(key)) wake(other);
  auto t = std::make_shared<task>(ex_, key);
  tasks_.emplace(key, t);
  flagger_metrics_->canary_added(t->namespace_name);
  tasks_gauge_.set({}, static_cast<double>(tasks_.size()));
  asio::co_spawn(ex_, runner_access::run(*this, t), [key](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error(fmt::format("canary task failed: {}", ex.what()), {{"canary", key}});
    }
  });
}

void canary_runner::wake(const std::string& key) {
  auto it = tasks_.find(key);
  if (it == tasks_.end()) return;
  // A changed Canary may claim another target or Service now (a cache look-up when unchanged).
  for (const auto& other : owners_->canary_changed(key)) {
    if (other == key) continue;
    if (auto o = tasks_.find(other); o != tasks_.end()) {
      o->second->dirty = true;
      o->second->timer.cancel();
    }
  }
  it->second->dirty = true;
  it->second->timer.cancel();
}

void canary_runner::remove(const std::string& key) {
  auto it = tasks_.find(key);
  if (it == tasks_.end()) return;
  auto t = it->second;
  t->stopped = true;
  t->timer.cancel();
  set_interests(*t, {});
  // The Canaries it held back may go on now.
  if (!stopped_) {
    for (const auto& other : owners_->canary_removed(key)) {
      if (auto o = tasks_.find(other); o != tasks_.end()) {
        o->second->dirty = true;
        o->second->timer.cancel();
      }
    }
  }
  events_->forget(key);  // before erase: `key` may be the map's own key (stop() passes it)
  flagger_metrics_->canary_removed(t->namespace_name, t->target_name);
  tasks_.erase(it);
  tasks_gauge_.set({}, static_cast<double>(tasks_.size()));
}

void canary_runner::changed(source s, std::string_view namespace_name, std::string_view name) {
  wake_interested(interest_key(source_name(s), namespace_name, name));
}

void canary_runner::wake_interested(const std::string& key) {
  auto it = interests_.find(key);
  if (it == interests_.end()) return;
  auto keys = it->second;  // wake() does not touch the index, but copy to stay safe
  for (const auto& k : keys) wake(k);
}

bool canary_runner::try_take_slot() {
  if (busy_slots_ >= static_cast<std::size_t>(std::max(1, opts_.max_concurrent_ticks)) || !slot_waiters_.empty())
    return false;
  ++busy_slots_;
  return true;
}

void canary_runner::release_slot() {
  if (stopped_ || slot_waiters_.empty()) {
    if (busy_slots_ > 0) --busy_slots_;
    return;
  }
  // The slot passes to the first waiter: busy_slots_ is unchanged.
  auto* next = slot_waiters_.front();
  slot_waiters_.pop_front();
  next->cancel();
}

void canary_runner::stop() {
  stopped_ = true;
  // Wake every task waiting for a slot; each sees stopped_ and ends.
  for (auto* w : slot_waiters_) w->cancel();
  slot_waiters_.clear();
  metrics_->stop();
  events_->stop();
  knative_->stop();
  for (auto& [_, m] : meshes_)
    if (m) m->stop();
  for (auto* t : {deployments_.get(), daemonsets_.get(), statefulsets_.get(), service_targets_.get()})
    if (t) t->stop();
  while (!tasks_.empty()) remove(tasks_.begin()->first);
}

void canary_runner::set_interests(task& t, std::set<std::string> keys) {
  for (const auto& k : t.interests) {
    if (keys.contains(k)) continue;
    auto it = interests_.find(k);
    if (it == interests_.end()) continue;
    it->second.erase(t.key);
    if (it->second.empty()) interests_.erase(it);
  }
  for (const auto& k : keys) interests_[k].insert(t.key);
  t.interests = std::move(keys);
}

}  // namespace canaryd
