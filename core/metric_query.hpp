#pragma once
// The text of a metric query (flagger-behaviour.md §2.2 and §6): the built-in observers' PromQL
// for request-success-rate and request-duration, and Flagger's template functions rendered into
// inline queries and MetricTemplate queries. Pure: the edge sends what this returns.
#include <map>
#include <string>
#include <string_view>

#include "core/canary.hpp"
#include "core/metric_check.hpp"

namespace canaryd::core {

// The values of Flagger's template functions (MetricTemplateModel): {{ name }}, {{ namespace }},
// {{ target }}, {{ service }}, {{ ingress }}, {{ route }}, {{ interval }}, {{ variables.<key> }}.
struct query_vars {
  std::string name;
  std::string namespace_;
  std::string target;
  std::string service;   // spec.service.name, else targetRef.name
  std::string ingress;   // spec.ingressRef.name, else targetRef.name
  std::string route;     // spec.routeRef.name, else targetRef.name
  std::string interval;  // the metric's effective interval
  std::map<std::string, std::string> variables;  // the metric's templateVariables
};

query_vars make_query_vars(const canary& c, const canary_metric& m);

// A rendered query, or why it could not be rendered.
struct rendered_query {
  std::string query;
  std::string error;  // non-empty on failure; query is then empty
  bool ok() const { return error.empty(); }
};

// Renders a query as Flagger's RenderQuery does: Go's text/template (core/go_template.hpp), the
// template named "tmpl", the functions above, nil data, missingkey=error. An unknown function or
// a missing variable is an error, never an empty string; the error is Flagger's: "template
// parsing failed: " or "template excution failed: " (sic) before Go's own text, e.g.
// `template excution failed: template: tmpl:1:3: executing "tmpl" at <variables>: map has no
// entry for key "x"`.
rendered_query render_query(std::string_view text, const query_vars& vars);

// Every run of white space becomes one space, as Flagger's Prometheus provider does to every
// query before it sends it (trimQuery).
std::string collapse_whitespace(std::string_view query);

// A built-in observer's query, rendered and collapsed, as Flagger sends it. `observer` is
// builtin_metrics_provider()'s result; the observers are chosen as Flagger's factory does
// (exact names, prefixes for appmesh, gloo and gatewayapi, istio for anything else — so
// "kubernetes:service" gets istio's queries, as in Flagger). `kind` is request_success_rate or
// request_duration.
struct builtin_query {
  std::string query;
  // request-duration: what the answer is multiplied by to get milliseconds, which are then
  // truncated to a whole number as Flagger's time.Duration conversion does (1000 for
  // observers whose histograms are in seconds, 1 for those in milliseconds).
  double to_milliseconds = 1;
};
builtin_query builtin_observer_query(std::string_view observer, metric_query_kind kind, const query_vars& vars);

}  // namespace canaryd::core
