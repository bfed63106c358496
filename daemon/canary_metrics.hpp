#pragma once
// Flagger's own Prometheus metrics (flagger-behaviour.md §9), with its names and labels so its
// Grafana dashboard works unchanged: flagger_canary_total, flagger_canary_status,
// flagger_canary_weight, flagger_canary_duration_seconds, flagger_canary_metric_analysis,
// flagger_canary_successes_total and flagger_canary_failures_total. (flagger_info is the app's.)
//
// Thread affinity: the io_context thread; it writes into the app's registry.
#include <chrono>
#include <map>
#include <string>

#include "core/canary.hpp"
#include "core/rollout.hpp"

namespace canaryd {

class metrics_registry;
class metric_family;

class canary_metrics {
 public:
  explicit canary_metrics(metrics_registry& registry);

  // A canary task started or stopped in `ns` (flagger_canary_total{namespace}); `target` is the
  // last target name seen ("" if none), whose series are dropped.
  void canary_added(const std::string& ns);
  void canary_removed(const std::string& ns, const std::string& target);

  // After a tick's steps were applied: the canary as it was before, its decision, and how long
  // the tick took. Sets status and weight, observes the duration, and counts a run that ended.
  void tick(const core::canary& before, const core::decision& d, std::chrono::duration<double> took);

  // One metric check's value (request-duration in milliseconds is recorded in seconds, as Flagger).
  void metric_checked(const core::canary& c, const core::canary_metric& m, bool is_duration, double value);

 private:
  metric_family& total_;
  metric_family& status_;
  metric_family& weight_;
  metric_family& duration_;
  metric_family& analysis_;
  metric_family& successes_;
  metric_family& failures_;
  std::map<std::string, int> per_namespace_;
};

}  // namespace canaryd
