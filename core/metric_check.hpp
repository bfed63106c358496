#pragma once
// The metric part of an analysis step (flagger-behaviour.md §6): which queries a step needs, in
// Flagger's order, and how their results are judged, with Flagger's event texts. Running the
// queries is the edge's job (Prometheus and the other providers); judging them is pure.
//
// Flagger stops at the first failing metric. Queries are read-only, so the edge may run all of
// them (concurrently); judge_metrics then walks the results in Flagger's order and reports the
// first failure exactly as Flagger would have.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/canary_event.hpp"

namespace canaryd::core {

enum class metric_query_kind {
  request_success_rate,  // built-in observer query, a percentage
  request_duration,      // built-in observer query, milliseconds
  inline_query,          // metric.query (deprecated), run on the metrics server
  template_query,        // metric.templateRef, rendered and run on the template's provider
};

struct metric_query {
  std::size_t metric = 0;  // index into spec.analysis.metrics
  metric_query_kind kind = metric_query_kind::inline_query;
  std::string interval;    // effective interval ("1m" when unset)
  friend bool operator==(const metric_query&, const metric_query&) = default;
};

struct metric_observation {
  enum class outcome {
    value,         // `value` holds the result
    no_values,     // the provider answered with no data (ErrNoValuesFound)
    query_failed,  // the query failed; `error` says why
    setup_failed,  // template missing, secret missing, render error...: `error` is the full event text
  };
  outcome result = outcome::query_failed;
  double value = 0;
  std::string error;
};

// The queries of one analysis step: first every built-in and inline query, metric by metric,
// then every templateRef metric (runBuiltinMetricChecks, then runMetricChecks).
std::vector<metric_query> metric_queries(const canary_analysis& analysis);

// The observer provider the built-in queries are written for (runBuiltinMetricChecks):
// spec.provider or else -mesh-provider ("crossover" if it contains crossover); "linkerd" whenever
// -mesh-provider contains linkerd and spec.provider is set; ":service" appended for Service targets.
std::string builtin_metrics_provider(const canary& c, std::string_view mesh_provider);

// The first failure among `observations` (one per query, same order), as the Warning event Flagger
// records; nullopt when every metric passed. A missing observation counts as a failed query.
std::optional<canary_event> judge_metrics(const canary& c, std::string_view metrics_provider,
                                          const std::vector<metric_query>& queries,
                                          const std::vector<metric_observation>& observations);

}  // namespace canaryd::core
