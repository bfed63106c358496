#pragma once
// What a Prometheus instant query answered (flagger-behaviour.md §6.2, Flagger's prometheus
// provider): the first sample of a vector (or a scalar); NaN or no sample is "no values"
// (ErrNoValuesFound); HTTP >= 400, a body that is not a query answer, or a matrix is a failed
// query. Pure: the edge passes the status and body it received.
#include <string_view>

#include "core/metric_check.hpp"

namespace canaryd::core {

metric_observation read_prometheus_answer(int http_status, std::string_view body);

}  // namespace canaryd::core
