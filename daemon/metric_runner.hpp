#pragma once
// Runs the metric queries of an analysis step (core::metric_request) and answers one
// core::metric_observation per query, as Flagger's runBuiltinMetricChecks and runMetricChecks
// would have seen them (flagger-behaviour.md §6): built-in and inline queries on the canary's
// metrics server (spec.metricsServer, else -metrics-server), templateRef queries on their
// MetricTemplate's provider, with the template's secretRef credentials. Judging the answers is
// core::judge_metrics's job.
//
// Providers: prometheus (and unknown types, which Flagger also treats as prometheus). The other
// MetricTemplate provider types are answered with a setup failure that names the type.
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
#include "daemon/options.hpp"

namespace canaryd {

namespace http {
class client;
}

// Where a Prometheus query goes and how it authenticates.
struct prometheus_endpoint {
  std::string address;  // "http://prometheus:9090" (a path prefix is kept)
  bool insecure_skip_verify = false;
  std::string bearer_token;  // secret key "token"
  std::string username;      // secret keys "username" and "password": basic auth
  std::string password;
  std::map<std::string, std::vector<std::string>> headers;
};

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

  // One instant query: the first sample of a vector (or a scalar); NaN or no sample is
  // no_values; HTTP >= 400, a transport error or a matrix is query_failed.
  boost::asio::awaitable<core::metric_observation> query(const prometheus_endpoint& ep, const std::string& promql);

  // Shuts down every kept connection; later queries fail with "cancelled".
  void stop();

 private:
  struct template_target;
  // The template's endpoint (from the caches), or the full event text of why there is none.
  boost::system::result<template_target, std::string> resolve_template(const core::canary& c,
                                                                         const core::canary_metric& m) const;
  prometheus_endpoint builtin_endpoint(const core::canary& c) const;

  boost::asio::any_io_executor ex_;
  cluster& k_;
  const options& opts_;
  // Kept-alive clients by origin and TLS setting.
  std::map<std::string, std::unique_ptr<http::client>> clients_;
  bool stopped_ = false;
};

}  // namespace canaryd
