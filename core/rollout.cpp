#include "core/rollout.hpp"

#include <algorithm>
#include <initializer_list>

#include <fmt/format.h>

#include "core/message.hpp"
#include "core/revision.hpp"

namespace canaryd::core {

namespace {

using phase = canary_phase;

bool is_one_of(phase p, std::initializer_list<phase> list) { return std::find(list.begin(), list.end(), p) != list.end(); }

constexpr std::string_view invalid_spec_reason = "InvalidSpec";
constexpr std::string_view refused_reason = "Refused";
constexpr int total_weight = 100;

// One decide() call. The pending status `st_` is what the Canary's status will be once the
// steps so far are applied; Flagger's in-memory canary plays the same role in advanceCanary.
class decider {
 public:
  decider(const canary& c, const std::vector<field_error>& errors, const observed_state& obs, const rollout_options& opts,
          const tick_clock& clock)
      : c_(c), errors_(errors), obs_(obs), opts_(opts), now_(clock.now), st_(c.status), analysis_(c.analysis_or_empty()) {
    provider_ = c.spec.provider.empty() ? opts.mesh_provider : c.spec.provider;
    interval_ = c.analysis_interval();
    anchor_ = clock.last_step;
    if (c.status.last_transition_time && (!anchor_ || *c.status.last_transition_time > *anchor_)) {
      anchor_ = c.status.last_transition_time;
    }
    due_ = !anchor_ || now_ >= *anchor_ + interval_;
    iterations_ = analysis_.iterations;
  }

  decision run() {
    if (c_.metadata.deletion_timestamp) {
      finalize();
      return finish();
    }
    if (!errors_.empty()) {
      invalid();
      return finish();
    }
    if (!obs_.refusal.empty()) {
      refused();
      return finish();
    }
    // syncHandler: the finalizer follows revertOnDeletion.
    if (c_.spec.revert_on_deletion && !c_.has_finalizer()) act(workload_action::add_finalizer);
    if (!c_.spec.revert_on_deletion && c_.has_finalizer()) act(workload_action::remove_finalizer);
    // A spec that was invalid (or a canary refused) and is fixed: the condition goes back to the phase's.
    if (const auto* cond = st_.condition("Promoted");
        cond && (cond->reason == invalid_spec_reason || cond->reason == refused_reason) && st_.phase != phase::none) {
      make_conditions(st_.phase);
      write();
    }
    // syncHandler: a new canary is Initializing before anything else happens.
    if (st_.phase == phase::none) {
      st_.phase = phase::initializing;
      st_.last_transition_time = now_;
      make_conditions(phase::initializing);
      write();
    }
    if (c_.spec.suspend) {
      if (due_) {
        info("skipping canary run as object is suspended");
        d_.step_taken = true;
      }
      return finish();
    }
    if (!obs_.target_error.empty()) {
      // One Warning per distinct reason, with the condition (not one every interval: at a few
      // dozen held canaries the repeats outran the Event writer and the reasons were dropped).
      if (hold(obs_.target_error)) warn(obs_.target_error);
      if (due_) d_.step_taken = true;
      return finish();
    }
    advance();
    if (!held_ && d_.step_taken && !d_.needs_input()) restore_condition();
    return finish();
  }

 private:
  const canary& c_;
  const std::vector<field_error>& errors_;
  const observed_state& obs_;
  const rollout_options& opts_;
  const wall_time now_;
  canary_status st_;
  canary_analysis analysis_;  // a copy: the kubernetes provider drops match in memory, as Flagger does
  std::string provider_;
  std::chrono::milliseconds interval_{};
  std::optional<wall_time> anchor_;
  bool due_ = false;
  bool idle_ = false;
  bool held_ = false;  // hold() was called this tick
  int iterations_ = 0;  // analysis.iterations, 10 when the kubernetes provider forces Blue/Green
  decision d_;
  const std::vector<webhook_outcome> no_outcomes_{};

  // ---- the tick (advanceCanary) ----

  void advance() {
    const bool skip = c_.skip_analysis();
    const bool initializing = st_.phase == phase::initializing;
    const bool appmesh = provider_.starts_with("appmesh");
    act(workload_action::initialize_services);
    if (!skip && initializing && due_) act(workload_action::check_metric_providers);
    // App Mesh needs its virtual nodes before the primary's pods start (sidecar injection).
    if (appmesh) act(workload_action::reconcile_mesh);
    act(workload_action::initialize_primary);
    if (initializing && !skip) {
      if (obs_.primary.value == readiness::state::failed) {
        warn(obs_.primary.message);
        rollback();
        return;
      }
      if (obs_.primary.value == readiness::state::waiting) {
        if (hold(obs_.primary.message)) warn(obs_.primary.message);
        if (due_) d_.step_taken = true;
        return;
      }
    }
    if (c_.spec.autoscaler_ref) {
      step(reconcile_primary_scaler{true});
      if (initializing) act(workload_action::pause_target_scaler);
    }
    act(workload_action::reconcile_apex);
    if (initializing) act(workload_action::scale_to_zero);
    if (!appmesh) act(workload_action::reconcile_mesh);
    if (initializing) {
      sync_status(phase::initialized, 0, 0, 0);
      write();
      info(fmt::format("Initialization done! {}", c_.id()));
      alert(fmt::format("New {} detected, initialization completed.", c_.spec.target_ref.kind), alert_severity::info, true);
      d_.step_taken = true;
      idle_ = true;
      return;
    }

    // shouldAdvance
    const bool active =
        is_one_of(st_.phase, {phase::progressing, phase::waiting, phase::waiting_promotion, phase::promoting, phase::finalising});
    if (!active) {
      adopt_flagger_revision();
      sync_reverted_revision();
      if (!target_changed() && !configs_changed()) {
        idle_ = true;
        return;
      }
    }

    if (!skip) {
      if (obs_.primary.value == readiness::state::failed) {
        warn(obs_.primary.message);
        if (is_one_of(st_.phase, {phase::promoting, phase::finalising})) {
          failed_promotion(obs_.primary.message);
        } else {
          rollback();
        }
        return;
      }
      if (obs_.primary.value == readiness::state::waiting) {
        if (hold(obs_.primary.message)) warn(obs_.primary.message);
        if (due_) d_.step_taken = true;
        return;
      }
    }
    if (!obs_.routes) {
      const std::string why = obs_.routes_error.empty() ? std::string("traffic routes unknown") : obs_.routes_error;
      if (hold(why)) warn(why);
      if (due_) d_.step_taken = true;
      return;
    }
    const traffic_routes routes = *obs_.routes;

    // checkCanaryStatus: a new revision (or a Waiting canary) passes the confirm-rollout gate.
    if (!is_one_of(st_.phase, {phase::progressing, phase::waiting_promotion, phase::promoting, phase::finalising})) {
      if (st_.phase == phase::waiting && !due_) return;
      start_analysis();
      return;
    }

    // hasCanaryRevisionChanged: a new revision during the analysis starts it over, at once.
    if (is_one_of(st_.phase, {phase::progressing, phase::waiting_promotion}) && (target_changed() || configs_changed())) {
      info(fmt::format("New revision detected! Restarting analysis for {}", c_.target_id()));
      step(set_routes{{total_weight, 0, false}, {}});
      sync_status(phase::progressing, 0, 0, 0);
      write();
      d_.step_taken = true;
      return;
    }

    // Everything below is one analysis step per interval.
    if (!due_) return;
    d_.step_taken = true;

    // [fix] A target that runs no pods has nothing to analyse, though Flagger's readiness calls
    // it ready (0 of 0 replicas available). During a run canaryd scales the target to zero only
    // on the way out (a rollback, a skipped analysis's promotion), just before the status write
    // that ends the run. When that write did not land (SIGKILL, a 5xx) the status still says
    // Progressing, and advancing it would promote a release whose pods never even ran (issue 11:
    // a never-ready release promoted after a kill). Scale the target up again and wait for it,
    // so the run ends as its pods deserve; the same if someone else scaled it to zero. A run at
    // its failed-checks threshold needs no pods to be rolled back: it goes on to the rollback.
    if (obs_.target_scaled_to_zero && is_one_of(st_.phase, {phase::progressing, phase::waiting_promotion}) &&
        (skip || st_.failed_checks < c_.analysis_threshold())) {
      if (c_.spec.autoscaler_ref) act(workload_action::resume_target_scaler);
      act(workload_action::scale_from_zero);
      const std::string why =
          fmt::format("{} not ready: scaled to zero during the analysis, scaling it up again", c_.target_id());
      if (hold(why)) warn(why);
      return;
    }

    bool retriable = true;
    std::string not_ready;
    if (obs_.canary.value == readiness::state::waiting) {
      if (hold(obs_.canary.message)) warn(obs_.canary.message);
      return;
    }
    if (obs_.canary.value == readiness::state::failed) {
      retriable = false;
      not_ready = obs_.canary.message;
    }

    if (skip) {
      skip_analysis(retriable, not_ready);
      return;
    }

    // [quirk] Flagger lists Waiting here, but a Waiting canary never gets this far (the
    // confirm-rollout gate above returns first). Kept: the order of checks is Flagger's.
    if (is_one_of(st_.phase, {phase::progressing, phase::waiting, phase::waiting_promotion})) {
      const auto* outcomes = gate(webhook_type::rollback, st_.phase, true);
      if (!outcomes) return;
      for (const auto& e : webhook_outcome_events(c_, webhook_type::rollback, st_.phase, *outcomes)) step(record_event{e});
      const bool roll_back = std::any_of(outcomes->begin(), outcomes->end(), [](const auto& o) { return o.ok; });
      if (roll_back) {
        warn(fmt::format("Rolling back {} manual webhook invoked", c_.id()));
        alert("Rolling back manual webhook invoked", alert_severity::warn, false);
        rollback();
        return;
      }
    }

    if (st_.phase == phase::promoting) {
      if (c_.spec.autoscaler_ref) step(reconcile_primary_scaler{false});
      promotion_traffic_shift(routes);
      return;
    }
    if (st_.phase == phase::finalising) {
      if (c_.spec.autoscaler_ref) act(workload_action::pause_target_scaler);
      act(workload_action::scale_to_zero);
      set_phase(phase::succeeded);
      write();
      post_rollout_hooks(phase::succeeded);
      info(fmt::format("Promotion completed! Scaling down {}", c_.target_id()));
      alert("Canary analysis completed successfully, promotion finished.", alert_severity::info, false);
      idle_ = true;
      return;
    }

    // The threshold is checked before the analysis: the rollback comes on the tick after
    // failedChecks reaches it, as in Flagger.
    if (is_one_of(st_.phase, {phase::progressing, phase::waiting_promotion}) &&
        (!retriable || st_.failed_checks >= c_.analysis_threshold())) {
      if (!retriable) {
        warn(fmt::format("Rolling back {} progress deadline exceeded {}", c_.id(), not_ready));
        alert(fmt::format("Progress deadline exceeded {}", not_ready), alert_severity::error, false);
      }
      rollback();
      return;
    }

    // The analysis: pre-rollout hooks on the first step (nothing routed or mirrored yet), then
    // rollout hooks and metrics on every step. A failure counts one failed check.
    if (routes.canary == 0 && st_.iterations == 0 && !(analysis_.mirror && routes.mirrored)) {
      info(fmt::format("Starting canary analysis for {}", c_.target_id()));
      const auto* outcomes = gate(webhook_type::pre_rollout, phase::progressing);
      if (!outcomes) return;
      if (!passed(webhook_type::pre_rollout, phase::progressing, *outcomes)) {
        failed_check();
        return;
      }
    } else {
      const auto* outcomes = gate(webhook_type::rollout, phase::progressing);
      if (!outcomes) return;
      if (!passed(webhook_type::rollout, phase::progressing, *outcomes)) {
        failed_check();
        return;
      }
      const auto queries = metric_queries(analysis_);
      if (!queries.empty()) {
        const std::string metrics_provider = builtin_metrics_provider(c_, opts_.mesh_provider);
        if (!obs_.metric_results) {
          d_.need_metrics = metric_request{metrics_provider, queries};
          return;
        }
        if (auto failure = judge_metrics(c_, metrics_provider, queries, *obs_.metric_results)) {
          hold(failure->message);
          step(record_event{*failure});
          failed_check();
          return;
        }
      }
    }

    // The kubernetes provider cannot split traffic: Blue/Green, 10 iterations unless set.
    bool ab = !analysis_.match.empty();
    if (provider_ == "kubernetes") {
      if (ab) {
        warn("A/B testing is not supported when using the kubernetes provider");
        analysis_.match.clear();
        ab = false;
      }
      if (iterations_ < 1) {
        warn("Progressive traffic is not supported when using the kubernetes provider");
        warn("Setting canaryAnalysis.iterations: 10");
        iterations_ = 10;
      }
    }
    if (ab && iterations_ > 0) {
      run_ab();
      return;
    }
    if (iterations_ > 0) {
      run_blue_green(routes);
      return;
    }
    if (next_step_weight(analysis_, routes.canary) > 0) {
      if (!routes.mirrored && !is_one_of(st_.phase, {phase::promoting, phase::waiting_promotion, phase::finalising})) {
        const auto* outcomes = gate(webhook_type::confirm_traffic_increase, phase::progressing);
        if (!outcomes) return;
        if (!passed(webhook_type::confirm_traffic_increase, phase::progressing, *outcomes)) {
          if (const auto* hook = failed_hook(webhook_type::confirm_traffic_increase, *outcomes); hook && !hook->mute_alert) {
            alert("Canary traffic increase is waiting for approval.", alert_severity::warn, false);
          }
          return;
        }
      }
      run_canary(routes);
    }
  }

  // checkCanaryStatus for Initialized, Succeeded, Failed and Waiting.
  void start_analysis() {
    const auto* outcomes = gate(webhook_type::confirm_rollout, st_.phase);
    if (!outcomes) return;
    for (std::size_t i = 0; i < outcomes->size(); ++i) {
      const auto& o = (*outcomes)[i];
      if (o.ok) {
        info(fmt::format("Confirm-rollout check {} passed", o.name));
        continue;
      }
      const std::string why = gate_message(fmt::format("Halt {} advancement waiting for approval {}", c_.id(), o.name), o);
      if (st_.phase != phase::waiting) {
        set_phase(phase::waiting);
        if (!hold(why)) write();
        warn(why);
        if (const auto* hook = hook_at(webhook_type::confirm_rollout, i); hook && !hook->mute_alert) {
          alert("Canary is waiting for approval.", alert_severity::warn, false);
        }
      } else {
        hold(why);
      }
      d_.step_taken = true;
      return;
    }
    event(event_severity::info, fmt::format("New revision detected! Scaling up {}", c_.target_id()), phase::progressing);
    alert("New revision detected, progressing canary analysis.", alert_severity::info, true);
    if (c_.spec.autoscaler_ref) act(workload_action::resume_target_scaler);
    act(workload_action::scale_from_zero);
    sync_status(phase::progressing, 0, 0, 0);
    write();
    d_.step_taken = true;
  }

  void skip_analysis(bool retriable, const std::string& not_ready) {
    if (!retriable) {
      warn(fmt::format("Rolling back {} progress deadline exceeded {}", c_.id(), not_ready));
      alert(fmt::format("Progress deadline exceeded {}", not_ready), alert_severity::error, false);
      rollback();
      return;
    }
    step(set_routes{{total_weight, 0, false}, {}});
    info(copying_message());
    act(workload_action::promote);
    if (c_.spec.autoscaler_ref) {
      step(reconcile_primary_scaler{false});
      act(workload_action::pause_target_scaler);
    }
    act(workload_action::scale_to_zero);
    set_phase(phase::succeeded);
    write();
    // Flagger runs no post-rollout hooks when the analysis is skipped (TestWebhooks).
    info(fmt::format("Promotion completed! Canary analysis was skipped for {}", c_.target_id()));
    alert("Canary analysis was skipped, promotion finished.", alert_severity::info, false);
    idle_ = true;
  }

  void run_canary(const traffic_routes& routes) {
    const int max = max_weight(analysis_);
    if (routes.canary < max) {
      const int step_weight = next_step_weight(analysis_, routes.canary);
      traffic_routes next = routes;
      if (analysis_.mirror && routes.canary == 0) {
        // One mirrored step (everything to the primary, a copy to the canary) before the
        // first real shift.
        next = routes.mirrored ? traffic_routes{total_weight - step_weight, step_weight, false}
                               : traffic_routes{total_weight, 0, true};
      } else {
        next.primary = std::max(0, routes.primary - step_weight);
        next.canary = std::min(total_weight, routes.canary + step_weight);
      }
      step(set_routes{next, {}});
      set_weight(next.canary);
      write();
      info(fmt::format("Advance {} canary weight {}", c_.id(), next.canary));
      return;
    }
    if (!promotion_confirmed()) return;
    info(copying_message());
    act(workload_action::promote);
    set_phase(phase::promoting);
    write();
  }

  void run_ab() {
    if (iterations_ > st_.iterations) {
      step(set_routes{{0, total_weight, false}, {}});
      set_iterations(st_.iterations + 1);
      write();
      info(fmt::format("Advance {} canary iteration {}/{}", c_.id(), st_.iterations, iterations_));
      return;
    }
    if (!promotion_confirmed()) return;
    if (iterations_ == st_.iterations) {
      info(copying_message());
      act(workload_action::promote);
      set_phase(phase::promoting);
      write();
    }
  }

  void run_blue_green(const traffic_routes& routes) {
    const bool kubernetes = provider_ == "kubernetes";
    if (iterations_ > st_.iterations) {
      // Mirroring runs for the whole Blue/Green analysis (mesh providers only).
      if (!kubernetes && analysis_.mirror && !routes.mirrored) step(set_routes{{total_weight, 0, true}, {}});
      set_iterations(st_.iterations + 1);
      write();
      info(fmt::format("Advance {} canary iteration {}/{}", c_.id(), st_.iterations, iterations_));
      return;
    }
    if (!promotion_confirmed()) return;
    if (iterations_ == st_.iterations) {
      // One more step with all traffic on the canary, analysis still running.
      if (!kubernetes) {
        info(analysis_.mirror ? "Stop traffic mirroring and route all traffic to canary" : "Routing all traffic to canary");
        step(set_routes{{0, total_weight, false}, {}});
      }
      set_iterations(st_.iterations + 1);
      write();
      return;
    }
    if (iterations_ < st_.iterations) {
      info(copying_message());
      act(workload_action::promote);
      set_phase(phase::promoting);
      write();
    }
  }

  // runConfirmPromotionHooks: false when a hook said no (or its answer is still needed).
  bool promotion_confirmed() {
    const auto* outcomes = gate(webhook_type::confirm_promotion, phase::progressing);
    if (!outcomes) return false;
    for (std::size_t i = 0; i < outcomes->size(); ++i) {
      const auto& o = (*outcomes)[i];
      if (o.ok) {
        info(fmt::format("Confirm-promotion check {} passed", o.name));
        continue;
      }
      const std::string why =
          gate_message(fmt::format("Halt {} advancement waiting for promotion approval {}", c_.id(), o.name), o);
      if (st_.phase != phase::waiting_promotion) {
        set_phase(phase::waiting_promotion);
        if (!hold(why)) write();
        warn(why);
        if (const auto* hook = hook_at(webhook_type::confirm_promotion, i); hook && !hook->mute_alert) {
          alert("Canary promotion is waiting for approval.", alert_severity::warn, false);
        }
      } else {
        set_iterations(iterations_ - 1);
        if (!hold(why)) write();
      }
      return false;
    }
    return true;
  }

  void promotion_traffic_shift(const traffic_routes& routes) {
    // The kubernetes provider has no traffic to shift.
    if (provider_ == "kubernetes") {
      set_phase(phase::finalising);
      write();
      return;
    }
    if (analysis_.step_weight_promotion == 0) {
      info("Routing all traffic to primary");
      step(set_routes{{total_weight, 0, false}, {}});
      set_phase(phase::finalising);
      write();
      return;
    }
    if (routes.canary == 0) {
      // [quirk] Flagger shifts only while the canary has weight, so a Promoting canary with
      // no canary weight (routes changed by hand) stays Promoting forever. Fixed: finalise.
      step(set_routes{{total_weight, 0, false}, {}});
      set_phase(phase::finalising);
      write();
      return;
    }
    const int primary = std::min(total_weight, routes.primary + analysis_.step_weight_promotion);
    const int canary_weight = std::max(0, routes.canary - analysis_.step_weight_promotion);
    step(set_routes{{primary, canary_weight, false}, {}});
    info(fmt::format("Advance {} primary weight {}", c_.id(), primary));
    if (primary == total_weight) {
      set_phase(phase::finalising);
    } else {
      set_weight(canary_weight);
    }
    write();
  }

  void rollback() {
    if (st_.failed_checks >= c_.analysis_threshold()) {
      warn(fmt::format("Rolling back {} failed checks threshold reached {}", c_.id(), st_.failed_checks));
      alert(fmt::format("Failed checks threshold reached {}", st_.failed_checks), alert_severity::error, false);
    }
    step(set_routes{{total_weight, 0, false}, {}});
    event(event_severity::warning, fmt::format("Canary failed! Scaling down {}", c_.id()), phase::failed);
    if (c_.spec.autoscaler_ref) act(workload_action::pause_target_scaler);
    act(workload_action::scale_to_zero);
    // Storing the failed revision as lastAppliedSpec keeps it from being retried until it changes.
    sync_status(phase::failed, 0, 0, 0);
    write();
    post_rollout_hooks(phase::failed);
    d_.step_taken = true;
    idle_ = true;
  }

  // handleFailedPromotion: the primary will not become ready after the promotion started; all
  // traffic goes to the canary, which keeps running.
  void failed_promotion(const std::string& why) {
    alert(fmt::format("Promotion failed, primary not ready: {}", why), alert_severity::error, false);
    step(set_routes{{0, total_weight, false}, {}});
    sync_status(phase::failed, total_weight, 0, 0);
    write();
    post_rollout_hooks(phase::failed);
    d_.step_taken = true;
    idle_ = true;
  }

  void failed_check() {
    set_failed_checks(st_.failed_checks + 1);
    write();
  }

  // ---- deletion, invalid specs, adoption ----

  void finalize() {
    if (!c_.has_finalizer()) {
      idle_ = true;  // nothing to revert: the API server deletes the canary, the GC its objects
      return;
    }
    // A refused canary touched nothing, so it reverts nothing: it only lets go of itself.
    if (!obs_.refusal.empty()) {
      act(workload_action::remove_finalizer);
      idle_ = true;
      return;
    }
    if (!is_one_of(st_.phase, {phase::terminating, phase::terminated})) {
      set_phase(phase::terminating);
      write();
      info(fmt::format("Terminating canary {}", c_.id()));
    }
    if (obs_.target_error.empty()) {
      if (c_.spec.autoscaler_ref) act(workload_action::resume_target_scaler);
      act(workload_action::finalize_target);
      // Wait until the target runs again before its traffic comes back.
      if (obs_.target_scaled_to_zero || obs_.canary.value == readiness::state::waiting) return;
      if (obs_.canary.value == readiness::state::failed) warn(obs_.canary.message);
    }
    act(workload_action::finalize_routers);
    // [quirk] Flagger never writes Terminated; fixed: the last status says so.
    set_phase(phase::terminated);
    write();
    info(fmt::format("Terminated canary {}", c_.id()));
    act(workload_action::remove_finalizer);
    idle_ = true;
  }

  // The canary cannot go on: the Promoted condition (status and reason unchanged) says why,
  // written once per distinct message. Callers record the Warning event themselves (paced).
  // Returns whether it wrote the status.
  bool hold(const std::string& why) {
    held_ = true;
    const std::string message = one_line(why);
    if (!st_.condition("Promoted")) make_conditions(st_.phase == phase::none ? phase::initializing : st_.phase);
    bool changed = false;
    for (auto& cond : st_.conditions) {
      if (cond.type != "Promoted" || cond.message == message) continue;
      cond.message = message;
      cond.last_update_time = now_;
      changed = true;
    }
    if (changed) write();
    return changed;
  }

  // A step went on: a condition message left by hold() goes back to the phase's.
  void restore_condition() {
    if (st_.phase == phase::none) return;
    const promoted_condition pc = promoted_condition_for(c_, st_.phase);
    for (auto& cond : st_.conditions) {
      if (cond.type != "Promoted" || cond.reason != to_string(st_.phase) || cond.status != pc.status) continue;
      if (cond.message == pc.message) return;
      cond.message = pc.message;
      cond.last_update_time = now_;
      write();
    }
  }

  // A gate's Warning: Flagger's text, plus the transport error when the hook did not answer at
  // all (a hung gate is not just "waiting for approval").
  static std::string gate_message(std::string text, const webhook_outcome& o) {
    if (!o.answered && !o.error.empty()) text += ": no answer: " + o.error;
    return one_line(text);
  }

  void refused() {
    idle_ = true;
    const std::string message = one_line(obs_.refusal);
    const canary_condition* cur = st_.condition("Promoted");
    if (cur && cur->status == "False" && cur->reason == refused_reason && cur->message == message) return;
    canary_condition next{"Promoted", "False", now_, now_, std::string(refused_reason), message};
    if (cur && cur->status == "False") next.last_transition_time = cur->last_transition_time;
    st_.conditions = {next};
    if (!c_.metadata.name.empty()) write();
    warn(message);
  }

  void invalid() {
    idle_ = true;
    const std::string message = join_errors(errors_);
    const canary_condition* cur = st_.condition("Promoted");
    if (cur && cur->status == "False" && cur->reason == invalid_spec_reason && cur->message == message) return;
    canary_condition next{"Promoted", "False", now_, now_, std::string(invalid_spec_reason), message};
    if (cur && cur->status == "False") next.last_transition_time = cur->last_transition_time;
    st_.conditions = {next};
    if (!c_.metadata.name.empty()) write();
    warn(message);
  }

  // Adoption (issue 4): a lastAppliedSpec that is not one of our hashes was written by Flagger.
  // If the primary already runs the target's template, the target is the promoted baseline:
  // record our hash without a run. Otherwise the hashes differ and a normal run starts.
  void adopt_flagger_revision() {
    if (st_.last_applied_spec.empty() || is_canaryd_revision(st_.last_applied_spec)) return;
    if (!is_canaryd_revision(obs_.target_revision) || obs_.primary_matches_target != true) return;
    st_.last_applied_spec = obs_.target_revision;
    st_.last_promoted_spec = obs_.target_revision;
    write();
  }

  // [quirk] While Failed, Flagger rewrites the status every tick (SyncStatus in shouldAdvance)
  // so that reverting the target to lastPromotedSpec and then re-applying the failed revision is
  // seen as a change. Fixed: one write, only when the target was reverted.
  void sync_reverted_revision() {
    if (st_.phase != phase::failed) return;
    if (obs_.target_revision.empty() || obs_.target_revision != st_.last_promoted_spec) return;
    if (obs_.target_revision == st_.last_applied_spec) return;
    st_.last_applied_spec = obs_.target_revision;
    write();
  }

  // hasSpecChanged: a target reverted to the last promoted revision starts no run.
  bool target_changed() const {
    if (st_.last_applied_spec.empty()) return true;
    if (obs_.target_revision == st_.last_promoted_spec) return false;
    return obs_.target_revision != st_.last_applied_spec;
  }

  // HasConfigChanged.
  bool configs_changed() const {
    if (!opts_.config_tracking) return false;
    const auto& current = obs_.tracked_configs;
    if (!st_.tracked_configs) return !current.empty();
    const auto& tracked = *st_.tracked_configs;
    if (current.size() != tracked.size()) return true;
    for (const auto& [key, checksum] : current) {
      auto it = tracked.find(key);
      if (it == tracked.end() || it->second != checksum) return true;
    }
    return false;
  }

  // ---- status (Flagger's status writers, applied to the pending status) ----

  void make_conditions(phase p) {
    const promoted_condition pc = promoted_condition_for(c_, p);
    const std::string reason(to_string(p));
    const canary_condition* cur = st_.condition("Promoted");
    if (cur && cur->status == pc.status && cur->reason == reason) return;
    canary_condition next{"Promoted", pc.status, now_, now_, reason, pc.message};
    if (cur && cur->status == pc.status) next.last_transition_time = cur->last_transition_time;
    st_.conditions = {next};
  }

  // SyncStatus: phase, counters, the current revision and configs.
  void sync_status(phase p, int weight, int failed_checks, int iterations) {
    st_.phase = p;
    st_.canary_weight = weight;
    st_.failed_checks = failed_checks;
    st_.iterations = iterations;
    st_.last_applied_spec = obs_.target_revision;
    if (p == phase::initialized) st_.last_promoted_spec = obs_.target_revision;
    st_.last_transition_time = now_;
    if (opts_.config_tracking) {
      st_.tracked_configs = obs_.tracked_configs;
    } else {
      st_.tracked_configs.reset();
    }
    make_conditions(p);
  }

  // setStatusPhase.
  void set_phase(phase p) {
    st_.phase = p;
    st_.last_transition_time = now_;
    if (!is_one_of(p, {phase::progressing, phase::waiting, phase::promoting})) {
      st_.canary_weight = 0;
      // [quirk] Kept: WaitingPromotion stores iterations-1 (so -1 for a canary-weights
      // analysis) and weight 0 even though traffic stays at maxWeight; the routes, not the
      // status, carry the weight Flagger continues from.
      st_.iterations = p == phase::waiting_promotion ? iterations_ - 1 : 0;
    }
    if (is_one_of(p, {phase::initialized, phase::succeeded})) st_.last_promoted_spec = st_.last_applied_spec;
    make_conditions(p);
  }

  void set_weight(int w) {
    st_.canary_weight = w;
    st_.last_transition_time = now_;
  }
  void set_iterations(int i) {
    st_.iterations = i;
    st_.last_transition_time = now_;
  }
  void set_failed_checks(int n) {
    st_.failed_checks = n;
    st_.last_transition_time = now_;
  }

  void write() { step(write_status{st_}); }

  // ---- steps ----

  void step(rollout_step s) {
    if (auto* r = std::get_if<set_routes>(&s)) session_affinity(*r);
    d_.steps.push_back(std::move(s));
  }

  // getSessionAffinityRouteRules' status side (istio and Gateway API only): a canary cookie
  // "<cookieName>=<10 letters>" while the canary has weight, kept for the whole run; at weight 0
  // it becomes the previous cookie, which the routes delete. The status written next records it.
  void session_affinity(set_routes& r) {
    const auto& affinity = analysis_.affinity;
    if (!affinity || affinity->cookie_name.empty()) return;
    if (provider_ != "istio" && !provider_.starts_with("gatewayapi")) return;
    const std::string letters = obs_.random_letters.size() >= 20 ? obs_.random_letters : std::string(20, 'x');
    if (r.routes.canary != 0) {
      if (st_.session_affinity_cookie.empty()) st_.session_affinity_cookie = affinity->cookie_name + "=" + letters.substr(0, 10);
      if (!affinity->primary_cookie_name.empty() && st_.primary_session_affinity_cookie.empty()) {
        st_.primary_session_affinity_cookie = affinity->primary_cookie_name + "=" + letters.substr(10, 10);
      }
      r.cookies.canary = st_.session_affinity_cookie;
      r.cookies.primary = st_.primary_session_affinity_cookie;
    } else {
      if (!st_.session_affinity_cookie.empty()) st_.previous_session_affinity_cookie = st_.session_affinity_cookie;
      st_.session_affinity_cookie.clear();
      st_.primary_session_affinity_cookie.clear();
    }
    r.cookies.previous = r.routes.canary != 0 ? std::string() : st_.previous_session_affinity_cookie;
  }
  void act(workload_action a) { step(a); }
  void event(event_severity severity, std::string message, phase p) {
    step(record_event{{severity, std::move(message), p}});
  }
  void info(std::string message) { event(event_severity::info, std::move(message), st_.phase); }
  void warn(std::string message) { event(event_severity::warning, std::move(message), st_.phase); }
  void alert(std::string message, alert_severity severity, bool with_metadata) {
    step(send_alert{std::move(message), severity, with_metadata});
  }

  std::string copying_message() const {
    return fmt::format("Copying {} template spec to {}.{}", c_.target_id(), c_.primary_workload_name(), c_.metadata.namespace_);
  }

  void post_rollout_hooks(phase p) {
    auto hooks = hooks_of(webhook_type::post_rollout);
    if (!hooks.empty()) step(call_webhooks{webhook_type::post_rollout, p, std::move(hooks)});
  }

  // ---- gates ----

  std::vector<canary_webhook> hooks_of(webhook_type type) const {
    std::vector<canary_webhook> out;
    for (const auto& w : analysis_.webhooks) {
      if (w.type == type) out.push_back(w);
    }
    return out;
  }

  const canary_webhook* hook_at(webhook_type type, std::size_t index) const {
    std::size_t i = 0;
    for (const auto& w : analysis_.webhooks) {
      if (w.type != type) continue;
      if (i++ == index) return &w;
    }
    return nullptr;
  }

  const canary_webhook* failed_hook(webhook_type type, const std::vector<webhook_outcome>& outcomes) const {
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      if (!outcomes[i].ok) return hook_at(type, i);
    }
    return nullptr;
  }

  // The answers for the hooks of `type`: none needed when there are no such hooks; nullptr (and
  // a need_webhooks request) when they have not been called yet this tick.
  const std::vector<webhook_outcome>* gate(webhook_type type, phase payload, bool stop_at_first_success = false) {
    auto hooks = hooks_of(type);
    if (hooks.empty()) return &no_outcomes_;
    if (auto it = obs_.webhook_results.find(type); it != obs_.webhook_results.end()) return &it->second;
    d_.need_webhooks = webhook_request{type, payload, std::move(hooks), stop_at_first_success};
    return nullptr;
  }

  // Records the outcome events of a run that stops at the first failure; true when all passed.
  // A failure holds the canary with its Warning event's message.
  bool passed(webhook_type type, phase p, const std::vector<webhook_outcome>& outcomes) {
    for (const auto& e : webhook_outcome_events(c_, type, p, outcomes)) {
      if (e.severity != event_severity::info) hold(e.message);
      step(record_event{e});
    }
    return std::all_of(outcomes.begin(), outcomes.end(), [](const auto& o) { return o.ok; });
  }

  // Every analysis step that changes or reports anything leaves its time in
  // status.lastTransitionTime (milliseconds), where a restarted daemon finds it: most steps
  // write the status anyway; one that only records events (waiting for readiness, a held
  // traffic increase, a suspended canary) gets a write of its own, placed before its events and
  // alerts, which are reported only once the write landed. A step that neither changes nor
  // reports anything (a confirm-rollout gate still closed) writes nothing: a restart may ask
  // the gate again early, which nobody sees.
  void record_step_time() {
    auto is_write = [](const rollout_step& s) { return std::holds_alternative<write_status>(s); };
    auto last = std::find_if(d_.steps.rbegin(), d_.steps.rend(), is_write);
    if (last != d_.steps.rend() && std::get<write_status>(*last).status.last_transition_time == now_) return;
    auto reports = [](const rollout_step& s) {
      return std::holds_alternative<record_event>(s) || std::holds_alternative<send_alert>(s) ||
             std::holds_alternative<call_webhooks>(s);
    };
    auto at = std::find_if(d_.steps.begin(), d_.steps.end(), reports);
    if (at == d_.steps.end()) return;
    st_.last_transition_time = now_;
    // A write already placed before the first report (a held condition's message) carries the
    // step's time; only a step without one gets a write of its own, so a step writes once.
    if (std::find_if(d_.steps.begin(), at, is_write) == at) d_.steps.insert(at, write_status{st_});
    for (auto& s : d_.steps) {
      if (auto* w = std::get_if<write_status>(&s)) w->status.last_transition_time = now_;
    }
  }

  decision finish() {
    if (d_.needs_input()) {
      d_.steps.clear();
      d_.step_taken = false;
      d_.wake_at.reset();
      d_.phase = c_.status.phase;
      return std::move(d_);
    }
    if (d_.step_taken) record_step_time();
    d_.phase = st_.phase;
    if (idle_) {
      d_.wake_at.reset();
    } else {
      wall_time wake = (d_.step_taken ? now_ : anchor_.value_or(now_)) + interval_;
      if (wake <= now_) wake = now_ + interval_;
      d_.wake_at = wake;
    }
    return std::move(d_);
  }
};

}  // namespace

std::string_view to_string(workload_action a) {
  switch (a) {
    case workload_action::initialize_services: return "initialize_services";
    case workload_action::initialize_primary: return "initialize_primary";
    case workload_action::reconcile_apex: return "reconcile_apex";
    case workload_action::reconcile_mesh: return "reconcile_mesh";
    case workload_action::scale_to_zero: return "scale_to_zero";
    case workload_action::scale_from_zero: return "scale_from_zero";
    case workload_action::promote: return "promote";
    case workload_action::pause_target_scaler: return "pause_target_scaler";
    case workload_action::resume_target_scaler: return "resume_target_scaler";
    case workload_action::check_metric_providers: return "check_metric_providers";
    case workload_action::add_finalizer: return "add_finalizer";
    case workload_action::remove_finalizer: return "remove_finalizer";
    case workload_action::finalize_target: return "finalize_target";
    case workload_action::finalize_routers: return "finalize_routers";
  }
  return "?";
}

decision decide(const canary& c, const std::vector<field_error>& errors, const observed_state& observed,
                const rollout_options& options, const tick_clock& clock) {
  return decider(c, errors, observed, options, clock).run();
}

int max_weight(const canary_analysis& a) {
  if (!a.step_weights.empty()) return std::min(total_weight, a.step_weights.back());
  if (a.max_weight > 0) return a.max_weight;
  return total_weight;
}

int next_step_weight(const canary_analysis& a, int canary_weight) {
  if (a.step_weight > 0 || a.step_weights.empty()) return a.step_weight;
  const int max_step = total_weight - canary_weight;
  // At 100% any positive step moves the canary on to promotion.
  if (max_step == 0) return 1;
  if (canary_weight == 0) return std::min(max_step, a.step_weights.front());
  for (std::size_t i = 0; i + 1 < a.step_weights.size(); ++i) {
    if (a.step_weights[i] == canary_weight) return std::min(max_step, a.step_weights[i + 1] - canary_weight);
  }
  return max_step;
}

std::vector<canary_event> webhook_outcome_events(const canary& c, webhook_type type, canary_phase phase,
                                                 const std::vector<webhook_outcome>& outcomes) {
  std::vector<canary_event> out;
  auto info = [&](std::string m) { out.push_back({event_severity::info, std::move(m), phase}); };
  auto warn = [&](std::string m) { out.push_back({event_severity::warning, std::move(m), phase}); };
  for (const auto& o : outcomes) {
    switch (type) {
      case webhook_type::confirm_rollout:
        o.ok ? info(fmt::format("Confirm-rollout check {} passed", o.name))
             : warn(fmt::format("Halt {} advancement waiting for approval {}", c.id(), o.name));
        break;
      case webhook_type::confirm_promotion:
        o.ok ? info(fmt::format("Confirm-promotion check {} passed", o.name))
             : warn(fmt::format("Halt {} advancement waiting for promotion approval {}", c.id(), o.name));
        break;
      case webhook_type::confirm_traffic_increase:
        o.ok ? info(fmt::format("Confirm-traffic-increase check {} passed", o.name))
             : warn(fmt::format("Halt {} advancement waiting for traffic increase approval {}", c.id(), o.name));
        break;
      case webhook_type::pre_rollout:
        o.ok ? info(fmt::format("Pre-rollout check {} passed", o.name))
             : warn(fmt::format("Halt {} advancement pre-rollout check {} failed {}", c.id(), o.name, o.error));
        break;
      case webhook_type::rollout:
        if (!o.ok) warn(fmt::format("Halt {} advancement external check {} failed {}", c.id(), o.name, o.error));
        break;
      case webhook_type::post_rollout:
        o.ok ? info(fmt::format("Post-rollout check {} passed", o.name))
             : warn(fmt::format("Post-rollout hook {} failed {}", o.name, o.error));
        break;
      case webhook_type::rollback:
        o.ok ? warn(fmt::format("Rollback check {} passed", o.name))
             : info(fmt::format("Rollback hook {} not signaling a rollback", o.name));
        break;
      case webhook_type::event:
        break;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> alert_fields(const canary& c) {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("Target", fmt::format("{}/{}", c.spec.target_ref.kind, c.target_id()));
  out.emplace_back("Failed checks threshold", std::to_string(c.analysis_threshold()));
  out.emplace_back("Progress deadline", fmt::format("{}s", c.progress_deadline_seconds()));
  const canary_analysis& a = c.analysis_or_empty();
  // [quirk] Flagger prints the raw maxWeight ("max: 0" when unset); we print the effective one.
  if (a.step_weight > 0) {
    out.emplace_back("Traffic routing", fmt::format("Weight step: {} max: {}", a.step_weight, max_weight(a)));
  } else if (!a.step_weights.empty()) {
    std::string steps;
    for (std::size_t i = 0; i < a.step_weights.size(); ++i) steps += (i ? "," : "") + std::to_string(a.step_weights[i]);
    out.emplace_back("Traffic routing", fmt::format("Weight steps: {} max: {}", steps, max_weight(a)));
  } else if (!a.match.empty()) {
    out.emplace_back("Traffic routing", "A/B Testing");
  } else if (a.iterations > 0) {
    out.emplace_back("Traffic routing", "Blue/Green");
  }
  return out;
}

promoted_condition promoted_condition_for(const canary& c, canary_phase p) {
  const std::string& kind = c.spec.target_ref.kind;
  switch (p) {
    case canary_phase::none:
    case canary_phase::initializing: return {"Unknown", fmt::format("New {} detected, starting initialization.", kind)};
    case canary_phase::initialized: return {"True", fmt::format("{} initialization completed.", kind)};
    case canary_phase::waiting:
    case canary_phase::waiting_promotion: return {"Unknown", "Waiting for approval."};
    case canary_phase::progressing: return {"Unknown", "New revision detected, progressing canary analysis."};
    case canary_phase::promoting: return {"Unknown", "Canary analysis completed, starting primary rolling update."};
    case canary_phase::finalising: return {"Unknown", "Canary analysis completed, routing all traffic to primary."};
    case canary_phase::succeeded: return {"True", "Canary analysis completed successfully, promotion finished."};
    case canary_phase::failed: return {"False", fmt::format("Canary analysis failed, {} scaled to zero.", kind)};
    // [quirk] Flagger has no message for these and writes "New <Kind> detected, starting
    // initialization." with reason Terminating. Fixed: say what is happening.
    case canary_phase::terminating:
      return {"Unknown", fmt::format("Canary is being deleted, restoring {} {}.", kind, c.spec.target_ref.name)};
    case canary_phase::terminated:
      return {"Unknown", fmt::format("Canary deleted, {} {} restored.", kind, c.spec.target_ref.name)};
  }
  return {"Unknown", ""};
}

}  // namespace canaryd::core
