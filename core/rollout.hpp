#pragma once
// The rollout state machine: Flagger's advanceCanary (flagger-behaviour.md §3.2) as a pure function
//
//     decide(canary, validation errors, observed state, options, clock) -> decision
//
// run by one coroutine per Canary in the daemon. It walks Flagger's steps in Flagger's order and
// returns what to do (an ordered list of steps: reconcile, scale, route, promote, write status,
// record events, send alerts, call post-rollout hooks), the next phase, and when to look again.
//
// How a daemon coroutine drives it (one tick):
//
//     observed_state obs = read_caches(canary);      // target, primary, routes: no API calls
//     for (;;) {
//       decision d = decide(canary, errors, obs, options, {now, last_step});
//       if (d.need_webhooks) { obs.webhook_results[d.need_webhooks->type] = co_await call(*d.need_webhooks); continue; }
//       if (d.need_metrics)  { obs.metric_results = co_await query(*d.need_metrics); continue; }
//       co_await apply(d.steps);                      // in order; stop at the first failed cluster action
//       if (d.step_taken) last_step = now;
//       sleep until d.wake_at (nullopt: only until something changes), or wake on a watch event.
//       break;
//     }
//
// Gates whose answers change the path (confirm-rollout, pre-rollout, rollout, confirm-traffic-
// increase, confirm-promotion and rollback webhooks, and the metric queries) are inputs: when
// decide() reaches one whose answer is not in `observed_state` yet, it returns a decision with
// only `need_webhooks` or `need_metrics` set; the daemon runs exactly that request (webhooks in
// order, stopping as Flagger does) and calls decide() again with the same state, clock and the
// answers added. decide() is deterministic, so the second call walks the same path up to the
// gate and continues. Webhooks that only report (post-rollout) are steps; event webhooks are
// the event sink's business.
//
// Time: decide() never reads a clock. Analysis steps are paced: one per analysis interval,
// counted from the later of the last step the daemon ran (`last_step`, in memory) and
// status.lastTransitionTime, which every step writes with its time in milliseconds (a step that
// would otherwise only record events gets a status write for it), so a restarted daemon waits
// exactly what was left of the interval, neither less nor more (issue 11). Reactions to change are not paced: initialization, a new
// revision (Initialized/Succeeded/Failed -> Progressing, or a restart during the analysis),
// deletion and invalid specs are decided on the wake that sees them.
//
// Thread affinity: none (pure). Errors: none; problems are reported as events in the decision.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/alert_provider.hpp"
#include "core/canary.hpp"
#include "core/canary_event.hpp"
#include "core/field_error.hpp"
#include "core/metric_check.hpp"
#include "core/wall_time.hpp"

namespace canaryd::core {

// ---- inputs -----------------------------------------------------------------------------------

// A workload's readiness as Flagger's IsPrimaryReady/IsCanaryReady report it.
struct readiness {
  enum class state {
    ready,
    waiting,  // not ready yet, retriable (Flagger's retriable error)
    failed,   // will not become ready: progress deadline exceeded (non-retriable)
  };
  state value = state::waiting;
  std::string message;  // Flagger's error text, e.g. "podinfo-primary.default not ready: ..."

  static readiness ready() { return {state::ready, {}}; }
  static readiness waiting(std::string why) { return {state::waiting, std::move(why)}; }
  static readiness failed(std::string why) { return {state::failed, std::move(why)}; }
  bool is_ready() const { return value == state::ready; }
};

// Traffic split between primary and canary (meshRouter.GetRoutes / SetRoutes), in percent.
struct traffic_routes {
  int primary = 100;
  int canary = 0;
  bool mirrored = false;
  friend bool operator==(const traffic_routes&, const traffic_routes&) = default;
};

struct webhook_outcome {
  std::string name;
  bool ok = false;    // 2xx up to 202, as Flagger counts success
  std::string error;  // the failure (response body or transport error)
  // false: no HTTP answer at all (timeout, refused connection, TLS): a closed gate's Warning
  // then says so instead of only "waiting for approval".
  bool answered = true;
};

// What the daemon saw in its caches for one canary, plus the answers to this tick's requests.
struct observed_state {
  // GetMetadata of the target failed (missing target, no selector label...): Flagger's error
  // text. When set, nothing else of the target is read.
  std::string target_error;
  // pod_template_revision() of the target's pod template (or the revision name of a Knative
  // target): compared with status.lastAppliedSpec / lastPromotedSpec.
  std::string target_revision;
  // config_checksum() of every tracked ConfigMap/Secret, keyed "configmap/<name>",
  // "secret/<name>" (empty with -enable-config-tracking=false).
  std::map<std::string, std::string> tracked_configs;
  // The target runs no pods by Flagger's doing (replicas 0, or a DaemonSet's scale-to-zero
  // nodeSelector): used to wait for the target to come back before a finalizer is removed.
  bool target_scaled_to_zero = false;
  // IsCanaryReady of the target (canaryReadyThreshold, progress deadline).
  readiness canary;
  // IsPrimaryReady of <target>-primary (primaryReadyThreshold); waiting when it does not exist.
  readiness primary;
  // Adoption from Flagger: whether <target>-primary runs the target's current template
  // (compared after the primary transformations). Only consulted when status.lastAppliedSpec
  // holds a hash that is not ours; nullopt when unknown.
  std::optional<bool> primary_matches_target;
  // Randomness for a new session affinity cookie: at least 20 letters ([a-zA-Z]) from the edge
  // (the core reads no random source). Only consulted when a cookie is created.
  std::string random_letters;
  // Ownership (docs/ownership.md): an object this canary would write belongs to someone else
  // (another Canary controls the target or a -primary/-canary object, an older Canary already
  // targets the same workload or apex Service, ...). The edge's message names the object and its
  // owner. When set, decide() touches nothing: Promoted=False (reason Refused) with this
  // message and one Warning event; deletion only removes the finalizer.
  std::string refusal;
  // meshRouter.GetRoutes, or the error that kept it from answering.
  std::optional<traffic_routes> routes;
  std::string routes_error;

  // Answers to need_webhooks, by webhook type, one outcome per hook called, in call order.
  std::map<webhook_type, std::vector<webhook_outcome>> webhook_results;
  // Answers to need_metrics, one per query, same order.
  std::optional<std::vector<metric_observation>> metric_results;
};

struct rollout_options {
  std::string mesh_provider = "istio";  // -mesh-provider, for canaries without spec.provider
  bool config_tracking = true;          // -enable-config-tracking
};

struct tick_clock {
  wall_time now;
  std::optional<wall_time> last_step;  // when a decision with step_taken was last applied (nullopt after a restart)
};

// ---- outputs ----------------------------------------------------------------------------------

// Actions on the cluster whose details belong to the target controller and the routers.
enum class workload_action {
  initialize_services,   // kubeRouter.Initialize: <apex>-primary and <apex>-canary Services
  initialize_primary,    // canaryController.Initialize: create <target>-primary (and -primary configs) if missing
  reconcile_apex,        // kubeRouter.Reconcile: the apex Service selects the primary
  reconcile_mesh,        // meshRouter.Reconcile: create or take over the mesh objects (weights untouched)
  scale_to_zero,         // the target
  scale_from_zero,       // the target
  promote,               // copy the target's template (and configs) into the primary
  pause_target_scaler,   // autoscalerRef: pause the target's HPA/ScaledObject
  resume_target_scaler,
  check_metric_providers,  // IsOnline of every metric provider; the edge records Flagger's events
  add_finalizer,         // finalizer.flagger.app
  remove_finalizer,
  finalize_target,       // revertOnDeletion: give the target its replicas back
  finalize_routers,      // revertOnDeletion: kube router (apex selector) and mesh router finalizers
};
std::string_view to_string(workload_action a);

struct reconcile_primary_scaler {
  bool init = false;  // true: create only; false: also update (Promoting, skip analysis)
  friend bool operator==(const reconcile_primary_scaler&, const reconcile_primary_scaler&) = default;
};

// Session affinity (analysis.sessionAffinity, istio and Gateway API): the cookies the routes
// carry, each "<name>=<value>" or "". Decided with the routes and recorded in the status written
// after them, as Flagger's SetRoutes does as a side effect.
struct session_cookies {
  std::string canary;    // set on the canary's responses; requests carrying it stick to the canary
  std::string primary;   // primaryCookieName's: set on the primary's responses, sticks to the primary
  std::string previous;  // the last run's canary cookie, deleted (Max-Age=-1) once the weight is 0
  friend bool operator==(const session_cookies&, const session_cookies&) = default;
};

struct set_routes {
  traffic_routes routes;
  session_cookies cookies;  // empty without sessionAffinity
  friend bool operator==(const set_routes&, const set_routes&) = default;
};

// Write the whole status through the status subresource (retry on conflict with the same value).
struct write_status {
  canary_status status;
  friend bool operator==(const write_status&, const write_status&) = default;
};

struct record_event {
  canary_event event;
  friend bool operator==(const record_event&, const record_event&) = default;
};

struct send_alert {
  std::string message;
  alert_severity severity = alert_severity::info;
  bool with_metadata = false;  // add alert_fields() (Target, thresholds, traffic routing)
  friend bool operator==(const send_alert&, const send_alert&) = default;
};

// Call the hooks in order, each with `payload_phase`; record webhook_outcome_events() for them.
// Failures change nothing else (post-rollout).
struct call_webhooks {
  webhook_type type = webhook_type::post_rollout;
  canary_phase payload_phase = canary_phase::none;
  std::vector<canary_webhook> hooks;
  friend bool operator==(const call_webhooks&, const call_webhooks&) = default;
};

using rollout_step =
    std::variant<workload_action, reconcile_primary_scaler, set_routes, write_status, record_event, send_alert, call_webhooks>;

// Run these webhooks in order with `payload_phase` and report one outcome per hook called; stop
// after the first failure, or (rollback hooks) after the first success.
struct webhook_request {
  webhook_type type = webhook_type::rollout;
  canary_phase payload_phase = canary_phase::progressing;
  std::vector<canary_webhook> hooks;
  bool stop_at_first_success = false;
};

// Run these metric queries (all of them; they are read-only) and answer one observation each.
struct metric_request {
  std::string metrics_provider;  // builtin_metrics_provider(): which observer queries to use
  std::vector<metric_query> queries;
};

struct decision {
  // Set when decide() needs answers before it can decide; then nothing else is set.
  std::optional<webhook_request> need_webhooks;
  std::optional<metric_request> need_metrics;

  // What to do, in order. The daemon stops at the first failing cluster action (anything but
  // record_event, send_alert and call_webhooks), records a Warning event with its error (as
  // Flagger's recordEventWarningf("%v")) and leaves the rest to the next wake: every step is
  // level-based, so re-deciding from the new observed state is always safe. Reports (events,
  // alerts, post-rollout hooks) are held until the actions and status write before them
  // succeeded and dropped when one fails: the next decision makes them again, once.
  std::vector<rollout_step> steps;

  // This decision consumed the interval's analysis step: the daemon sets last_step = now.
  bool step_taken = false;
  // When to call decide() again even if nothing changes; nullopt: only on a change (idle).
  std::optional<wall_time> wake_at;
  // The phase the status has once the steps are applied (for logs and metrics).
  canary_phase phase = canary_phase::none;

  bool needs_input() const { return need_webhooks.has_value() || need_metrics.has_value(); }
};

// The decision for one wake of one canary. `errors` are the decode/validation errors of `c`
// (decode_canary's); with any, the canary gets condition Promoted=False (reason InvalidSpec) and
// a Warning event once per distinct message, and nothing else happens. observed_state::refusal
// does the same with reason Refused.
//
// Whenever the canary cannot go on (missing target, primary or canary not ready, routes
// unknown, a gate closed, a failing webhook or metric), the Promoted condition keeps its status
// and reason and its message says why, in one line of at most max_message_bytes
// (core/message.hpp), with a Warning event saying the same; once a step goes on again the
// message returns to the phase's.
decision decide(const canary& c, const std::vector<field_error>& errors, const observed_state& observed,
                const rollout_options& options, const tick_clock& clock);

// ---- helpers shared with the edges -----------------------------------------------------------

// maxWeight: min(100, last of stepWeights) when stepWeights is set, else maxWeight when > 0, else 100.
int max_weight(const canary_analysis& a);
// nextStepWeight (flagger-behaviour.md §3.2 step 29) for the current canary weight.
int next_step_weight(const canary_analysis& a, int canary_weight);

// The events Flagger records for a webhook run: "Pre-rollout check X passed", "Post-rollout hook
// X failed <err>", ... (call_webhooks steps use this for post-rollout outcomes).
std::vector<canary_event> webhook_outcome_events(const canary& c, webhook_type type, canary_phase phase,
                                                 const std::vector<webhook_outcome>& outcomes);

// The fields of an alert sent with_metadata: Target, Failed checks threshold, Progress deadline
// and Traffic routing, in Flagger's order and wording.
std::vector<std::pair<std::string, std::string>> alert_fields(const canary& c);

// The Promoted condition Flagger derives from a phase (MakeStatusConditions): status and message.
struct promoted_condition {
  std::string status;   // True, False, Unknown
  std::string message;
};
promoted_condition promoted_condition_for(const canary& c, canary_phase phase);

}  // namespace canaryd::core
