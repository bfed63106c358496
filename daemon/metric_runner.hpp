#pragma once
// Runs the metric queries of an analysis step (core::metric_request) and answers one
// core::metric_observation per query, as Flagger's runBuiltinMetricChecks and runMetricChecks
// would have seen them (flagger-behaviour.md §6): built-in and inline queries on the canary's
// metrics server (spec.metricsServer, else -metrics-server), templateRef queries on their
// MetricTemplate's provider, with the template's secretRef credentials. Judging the answers is
// core::judge_metrics's job.
//
// Providers: one per MetricTemplate type behind daemon/metric_provider.hpp (an unknown type is
// prometheus, as in Flagger); a type canaryd lacks is a setup failure that names it. The error of
// a template query names the provider and the template, after Flagger's own text.
//
// Reads: MetricTemplates and Secrets come from the watch caches, never from the API server.
// Every query has Flagger's 5 s deadline; the queries of one step run one after another.
//
// Thread affinity: the io_context thread. Errors: in the observations, never thrown.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/canary.hpp"
#include "core/rollout.hpp"
#include "daemon/cluster.hpp"
#include "daemon/metric_provider.hpp"
#include "daemon/options.hpp"

namespace canaryd {

class metric_runner {
 public:
  metric_runner(boost::asio::any_io_executor ex, cluster& k, const options& opts);
  ~metric_runner();
  metric_runner(const metric_runner&) = delete;
  metric_runner& operator=(const metric_runner&) = delete;

  boost::asio::awaitable<std::vector<core::metric_observation>> run(const core::canary& c,
                                                                    const core::metric_request& req);

  // Flagger's checkMetricProviderAvailability: "" when every provider the canary's metrics use
  // answers `vector(1)` with 1, else the first problem (for an Error event; it does not block).
  boost::asio::awaitable<std::string> check_providers(const core::canary& c);

  // Shuts down every kept connection; later queries fail with "cancelled".
  void stop();

 private:
  struct template_target;
  // The template's provider (from the caches), or the full event text of why there is none.
  boost::system::result<template_target, std::string> resolve_template(const core::canary& c,
                                                                         const core::canary_metric& m,
                                                                         const std::string& interval);
  prometheus_endpoint builtin_endpoint(const core::canary& c) const;

  cluster& k_;
  const options& opts_;
  provider_env env_;  // kept-alive clients by origin and TLS setting
};

}  // namespace canaryd
