#pragma once
// The External Metrics API (external.metrics.k8s.io/v1beta1) as an adapter behind an APIService
// serves it (the Kubernetes design "External Metrics API"): discovery lists the group, and
//   GET /apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>?labelSelector=<sel>
// answers an ExternalMetricValueList. Only GET; there are no objects to watch or write.
//
// Where the values come from (kubesim's own convention, docs/kubesim.md): a ConfigMap in <ns>
// labelled `kubesim.dev/external-metric: <metric>` is one value of that metric; its data key
// `value` is the value (a Kubernetes quantity, "0.5", "1500m", "2k"), its other labels the
// metric's labels, which the labelSelector is matched against. A test sets and changes values
// with kubectl (create/patch the ConfigMap). A metric without any matching ConfigMap answers an
// empty list, as adapters answer for series they have no points of; a ConfigMap whose value is
// not a quantity answers 500 (the adapter failed).
//
// Pure functions over the ConfigMaps the caller lists; the server routes the requests.
#include <boost/json/object.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "sim/api/store.hpp"

namespace kubesim::external_metrics {

inline constexpr std::string_view group = "external.metrics.k8s.io";
inline constexpr std::string_view version = "v1beta1";
inline constexpr std::string_view metric_label = "kubesim.dev/external-metric";

// The entry of /apis's APIGroupList.
boost::json::object group_entry();
// /apis/external.metrics.k8s.io
boost::json::object api_group();
// /apis/external.metrics.k8s.io/v1beta1: one resource per metric the ConfigMaps name (as
// adapters list the metrics they serve), namespaced, verb get; "externalmetrics" (KEDA's one
// entry) when there is none, as kubectl's discovery fails on an empty list.
boost::json::object resource_list(const std::vector<object_ptr>& configmaps);

// The list for `metric` from the ConfigMaps of its namespace: the ones labelled for it whose
// other labels match `label_selector` (the query parameter, "" for all), by ConfigMap name.
result<boost::json::object> values(const std::vector<object_ptr>& configmaps, std::string_view metric,
                                   std::string_view label_selector, std::chrono::system_clock::time_point now);

// The grammar of a Kubernetes resource.Quantity.
bool is_quantity(std::string_view s);

}  // namespace kubesim::external_metrics
