#pragma once
// Flagger's externalmetrics provider, its pure part (flagger-behaviour.md §6.2; Flagger's
// pkg/metrics/providers/externalmetrics.go): the query names a metric of the Kubernetes External
// Metrics API (external.metrics.k8s.io/v1beta1), and its value is the first item's Quantity.
//
//   query:   [<namespace>/]<metricName>[?labelSelector=<url-encoded selector>]
//            namespace "default" when absent or empty; the metric name is required; more than
//            one '/' is an error. Parsed as Go's url.Parse reads "dummy:///" + query.
//   request: GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>[?labelSelector=]
//   answer:  ExternalMetricValueList {items: [{metricName, metricLabels, timestamp, value}]};
//            no items is "no values" (Flagger's ErrNoValuesFound); otherwise the first item's
//            value as Quantity.AsApproximateFloat64 reads it. There are no data semantics beyond
//            that: the adapter decides which point the value is.
//
// Errors carry Flagger's texts. Pure: no I/O.
#include <boost/system/result.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "core/metric_check.hpp"

namespace canaryd::core {

struct external_metrics_query {
  std::string namespace_ = "default";
  std::string metric;
  std::string label_selector;  // decoded, trimmed; "" selects everything
  friend bool operator==(const external_metrics_query&, const external_metrics_query&) = default;
};

// The query, or Flagger's "error parsing metric query: ..." text.
boost::system::result<external_metrics_query, std::string> parse_external_metrics_query(std::string_view query);

// The request target for `q` (path and, when there is a selector, ?labelSelector= encoded as
// client-go encodes query parameters).
std::string external_metrics_target(const external_metrics_query& q);

// A Kubernetes resource.Quantity ("1500m", "1.5", "2Ki", "1e3", "-0.25M") as a double, or nullopt
// when the text is not a quantity (k8s.io/apimachinery/pkg/api/resource's grammar).
std::optional<double> parse_quantity(std::string_view text);

// The value an ExternalMetricValueList body gives: the first item's value, no_values for no
// items, query_failed for a body that is not such a list or a value that is not a quantity.
metric_observation read_external_metrics_answer(std::string_view body);

}  // namespace canaryd::core
