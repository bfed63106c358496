#include "daemon/canary_metrics.hpp"

#include <variant>

#include "daemon/metrics_registry.hpp"

namespace canaryd {

namespace {

// flagger_canary_status: 0 while Progressing, 2 once Failed, 1 otherwise.
double status_value(core::canary_phase p) {
  if (p == core::canary_phase::progressing) return 0;
  if (p == core::canary_phase::failed) return 2;
  return 1;
}

}  // namespace

canary_metrics::canary_metrics(metrics_registry& r)
    : total_(r.gauge("flagger_canary_total", "Total number of canary object", {"namespace"})),
      status_(r.gauge("flagger_canary_status", "Last canary analysis result per canary", {"name", "namespace"})),
      weight_(r.gauge("flagger_canary_weight", "The virtual service destination weight current value",
                      {"workload", "namespace"})),
      duration_(r.histogram("flagger_canary_duration_seconds", "Seconds spent performing canary analysis.",
                            {"name", "namespace"})),
      analysis_(r.gauge("flagger_canary_metric_analysis", "Last canary analysis result per metric",
                        {"name", "namespace", "metric"})),
      successes_(r.counter("flagger_canary_successes_total", "Total number of canary successes",
                           {"name", "namespace", "deployment_strategy", "analysis_status"})),
      failures_(r.counter("flagger_canary_failures_total", "Total number of canary failures",
                          {"name", "namespace", "deployment_strategy", "analysis_status"})) {}

void canary_metrics::canary_added(const std::string& ns) { total_.set({ns}, ++per_namespace_[ns]); }

void canary_metrics::canary_removed(const std::string& ns, const std::string& target) {
  auto it = per_namespace_.find(ns);
  if (it != per_namespace_.end()) {
    total_.set({ns}, --it->second);
    if (it->second <= 0) per_namespace_.erase(it);
  }
  if (target.empty()) return;
  status_.remove({target, ns});
  weight_.remove({target + "-primary", ns});
  weight_.remove({target, ns});
  duration_.remove({target, ns});
}

void canary_metrics::tick(const core::canary& before, const core::decision& d, std::chrono::duration<double> took) {
  const std::string& ns = before.metadata.namespace_;
  // Flagger labels these by the target's name, not the Canary's.
  const std::string& target = before.spec.target_ref.name;
  const core::canary_phase phase = d.phase == core::canary_phase::none ? before.status.phase : d.phase;
  status_.set({target, ns}, status_value(phase));
  int weight = before.status.canary_weight;
  for (const auto& step : d.steps) {
    if (const auto* w = std::get_if<core::write_status>(&step)) weight = w->status.canary_weight;
  }
  weight_.set({target + "-primary", ns}, 100 - weight);
  weight_.set({target, ns}, weight);
  duration_.observe({target, ns}, took.count());
  if (phase == before.status.phase) return;
  const std::string strategy(core::to_string(before.strategy()));
  if (phase == core::canary_phase::succeeded) {
    successes_.add({target, ns, strategy, before.skip_analysis() ? "skipped" : "completed"});
  } else if (phase == core::canary_phase::failed) {
    failures_.add({target, ns, strategy, "completed"});
  }
}

void canary_metrics::metric_checked(const core::canary& c, const core::canary_metric& m, bool is_duration, double value) {
  analysis_.set({c.spec.target_ref.name, c.metadata.namespace_, m.name}, is_duration ? value / 1000.0 : value);
}

}  // namespace canaryd
