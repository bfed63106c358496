// libFuzzer target: the bodies the metric providers' APIs answer (Datadog, New Relic, Dynatrace,
// Graphite, InfluxDB, CloudWatch, Cloud Monitoring, the External Metrics API), an externalmetrics
// query and a Kubernetes quantity, read as canaryd reads them (core/metric_answers.hpp,
// core/external_metrics.hpp).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/external_metrics.hpp"
#include "core/metric_answers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  using namespace canaryd::core;
  for (int status : {200, 500}) {
    (void)read_datadog_answer(status, body);
    (void)read_newrelic_answer(status, body);
    (void)read_dynatrace_answer(status, body);
    (void)read_graphite_answer(status, body);
    (void)read_influxdb_answer(status, body);
  }
  (void)read_cloudwatch_answer(body);
  (void)read_stackdriver_answer(body);
  (void)read_external_metrics_answer(body);
  (void)parse_quantity(body);
  if (auto q = parse_external_metrics_query(body)) (void)external_metrics_target(*q);
  return 0;
}
