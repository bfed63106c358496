#pragma once
// MetricTemplate of flagger.app/v1beta1: a query (a Go text/template rendered with the canary's
// name, namespace, target, service, ingress, route, interval and variables) and the provider
// that runs it. Decoded and validated like core/canary.hpp: never throws, errors name the field.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/field_error.hpp"

namespace canaryd::core {

struct metric_template_provider {
  std::string type;  // prometheus, influxdb, datadog, externalmetrics, stackdriver, cloudwatch,
                     // newrelic, graphite, dynatrace, keptn, splunk
  std::string address;
  std::string secret_ref;  // secretRef.name, a Secret in the template's namespace ("" = none)
  std::string region;      // CloudWatch
  bool insecure_skip_verify = false;  // Prometheus only
  std::map<std::string, std::vector<std::string>> headers;  // http.Header
};

struct metric_template {
  std::string api_version;
  std::string kind;
  object_metadata metadata;
  metric_template_provider provider;
  std::string query;
};

decoded<metric_template> decode_metric_template(std::string_view json);

bool is_known_metric_provider(std::string_view type);

}  // namespace canaryd::core
