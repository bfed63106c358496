#pragma once
// What the providers' HTTP APIs answered, read as Flagger's providers read them
// (flagger-behaviour.md §6.2; docs/metric-providers.md says which point each takes). Pure: the
// edge (daemon/metric_providers/<type>.cpp) passes the status and body it received.
//
// No data never passes: an empty series, a null, NaN or ±Inf value is no_values; an error
// status or a body that is not the documented answer is query_failed, with Flagger's text.
#include <string>
#include <string_view>

#include "core/metric_check.hpp"

namespace canaryd::core {

// A value (NaN or ±Inf: no_values "value is nan: no values found"), no values, a failure.
metric_observation observed_value(double v);
metric_observation observed_no_values(std::string error);
metric_observation observed_failure(std::string error);

// Datadog /api/v1/query: the first (oldest) point of the first series.
metric_observation read_datadog_answer(int status, std::string_view body);
// New Relic Insights query: results[0].result of exactly one result.
metric_observation read_newrelic_answer(int status, std::string_view body);
// Dynatrace /api/v2/metrics/query: the first value of the last data entry of the first result.
metric_observation read_dynatrace_answer(int status, std::string_view body);
// Graphite /render?format=json: the last non-null datapoint of the last series that has one.
metric_observation read_graphite_answer(int status, std::string_view body);
// InfluxDB 2 /api/v2/query annotated CSV: the _value of the first record.
metric_observation read_influxdb_answer(int status, std::string_view body);
// The body of a 200 answer (the edge reports other statuses with the API's error text):
// CloudWatch GetMetricData (AWS JSON 1.0): Values[0] of the first result (newest first).
metric_observation read_cloudwatch_answer(std::string_view body);
// Cloud Monitoring timeSeries:query: the first value (doubleValue, or int64Value as its number) of
// the first point of the first time series (newest first).
metric_observation read_stackdriver_answer(std::string_view body);

}  // namespace canaryd::core
