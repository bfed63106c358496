#include "core/metric_check.hpp"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "core/go_format.hpp"

namespace canaryd::core {

namespace {

std::chrono::nanoseconds millis(double ms) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6));
}

canary_event warning(std::string message, canary_phase phase) {
  return {event_severity::warning, std::move(message), phase};
}

canary_event error(std::string message, canary_phase phase) { return {event_severity::error, std::move(message), phase}; }

}  // namespace

std::vector<metric_query> metric_queries(const canary_analysis& analysis) {
  std::vector<metric_query> out;
  for (std::size_t i = 0; i < analysis.metrics.size(); ++i) {
    const canary_metric& m = analysis.metrics[i];
    const std::string interval = m.effective_interval();
    if (m.name == "request-success-rate") out.push_back({i, metric_query_kind::request_success_rate, interval});
    if (m.name == "request-duration") out.push_back({i, metric_query_kind::request_duration, interval});
    if (!m.query.empty()) out.push_back({i, metric_query_kind::inline_query, interval});
  }
  for (std::size_t i = 0; i < analysis.metrics.size(); ++i) {
    const canary_metric& m = analysis.metrics[i];
    if (m.template_ref) out.push_back({i, metric_query_kind::template_query, m.effective_interval()});
  }
  return out;
}

std::string builtin_metrics_provider(const canary& c, std::string_view mesh_provider) {
  std::string provider = mesh_provider.find("crossover") != std::string_view::npos ? "crossover" : std::string(mesh_provider);
  if (!c.spec.provider.empty()) {
    provider = c.spec.provider;
    if (mesh_provider.find("linkerd") != std::string_view::npos) provider = "linkerd";
  }
  if (c.spec.target_ref.kind == "Service" && !c.is_knative_target()) provider += ":service";
  return provider;
}

std::optional<canary_event> judge_metrics(const canary& c, std::string_view metrics_provider,
                                          const std::vector<metric_query>& queries,
                                          const std::vector<metric_observation>& observations) {
  const canary_analysis& a = c.analysis_or_empty();
  const canary_phase phase = c.status.phase;
  const std::string id = c.id();
  for (std::size_t q = 0; q < queries.size(); ++q) {
    const metric_query& query = queries[q];
    if (query.metric >= a.metrics.size()) continue;
    const canary_metric& m = a.metrics[query.metric];
    const metric_observation missing{metric_observation::outcome::query_failed, 0, "no result"};
    const metric_observation& o = q < observations.size() ? observations[q] : missing;
    using outcome = metric_observation::outcome;
    const auto& range = m.range;
    switch (query.kind) {
      case metric_query_kind::request_success_rate: {
        if (o.result == outcome::no_values) {
          return warning(fmt::format("Halt advancement no values found for {} metric {} probably {} is not receiving "
                                     "traffic: {}",
                                     metrics_provider, m.name, c.target_id(), o.error),
                         phase);
        }
        if (o.result != outcome::value) return error(fmt::format("Prometheus query failed: {}", o.error), phase);
        if (range) {
          if (range->min && o.value < *range->min) {
            return warning(fmt::format("Halt {} advancement success rate {:.2f}% < {}%", id, o.value, format_go_float(*range->min)), phase);
          }
          if (range->max && o.value > *range->max) {
            return warning(fmt::format("Halt {} advancement success rate {:.2f}% > {}%", id, o.value, format_go_float(*range->max)), phase);
          }
        } else if (m.threshold > o.value) {
          return warning(fmt::format("Halt {} advancement success rate {:.2f}% < {}%", id, o.value, format_go_float(m.threshold)), phase);
        }
        break;
      }
      case metric_query_kind::request_duration: {
        if (o.result == outcome::no_values) {
          return warning(fmt::format("Halt advancement no values found for {} metric {} probably {} is not receiving traffic",
                                     metrics_provider, m.name, c.target_id()),
                         phase);
        }
        if (o.result != outcome::value) return error(fmt::format("Prometheus query failed: {}", o.error), phase);
        const auto value = millis(o.value);
        if (range) {
          if (range->min && value < millis(*range->min)) {
            return warning(fmt::format("Halt {} advancement request duration {} < {}", id, format_go_duration_ns(value),
                                       format_go_duration_ns(millis(*range->min))),
                           phase);
          }
          if (range->max && value > millis(*range->max)) {
            return warning(fmt::format("Halt {} advancement request duration {} > {}", id, format_go_duration_ns(value),
                                       format_go_duration_ns(millis(*range->max))),
                           phase);
          }
        } else if (value > millis(m.threshold)) {
          return warning(fmt::format("Halt {} advancement request duration {} > {}", id, format_go_duration_ns(value),
                                     format_go_duration_ns(millis(m.threshold))),
                         phase);
        }
        break;
      }
      case metric_query_kind::inline_query:
      case metric_query_kind::template_query: {
        const bool inline_query = query.kind == metric_query_kind::inline_query;
        if (o.result == outcome::no_values) {
          return warning(inline_query ? fmt::format("Halt advancement no values found for metric: {}", m.name)
                                      : fmt::format("Halt advancement no values found for custom metric: {}: {}", m.name, o.error),
                         phase);
        }
        if (o.result == outcome::setup_failed) return error(o.error, phase);
        if (o.result != outcome::value) {
          return error(inline_query ? fmt::format("Prometheus query failed for {}: {}", m.name, o.error)
                                    : fmt::format("Metric query failed for {}: {}", m.name, o.error),
                       phase);
        }
        if (range) {
          if (range->min && o.value < *range->min) {
            return warning(fmt::format("Halt {} advancement {} {:.2f} < {}", id, m.name, o.value, format_go_float(*range->min)), phase);
          }
          if (range->max && o.value > *range->max) {
            return warning(fmt::format("Halt {} advancement {} {:.2f} > {}", id, m.name, o.value, format_go_float(*range->max)), phase);
          }
        } else if (o.value > m.threshold) {
          return warning(fmt::format("Halt {} advancement {} {:.2f} > {}", id, m.name, o.value, format_go_float(m.threshold)), phase);
        }
        break;
      }
    }
  }
  return std::nullopt;
}

}  // namespace canaryd::core
