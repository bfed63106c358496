#pragma once
// The seam between metric_runner and one MetricTemplate provider type (Flagger's
// providers.Interface: RunQuery and IsOnline). One file per provider in daemon/metric_providers/,
// each written against the provider's documented HTTP API with Flagger's request shape
// (flagger-behaviour.md §6.2); docs/metric-providers.md lists them with their secret keys.
//
// A provider is made per check from the template, its secret's data and the metric's interval,
// as Flagger's factory does; what outlives a check (kept-alive HTTP clients) lives in the
// provider_env that metric_runner owns.
//
// No-data never passes: every provider answers an empty series, a null or NaN value with
// outcome::no_values, and a refused, failed or timed-out request with outcome::query_failed.
//
// Thread affinity: the io_context thread. Errors: in the returned values, never thrown.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/metric_check.hpp"
#include "core/metric_template.hpp"
#include "core/wall_time.hpp"

namespace canaryd {

class aws_credential_chain;

namespace k8s {
class api_client;
}

namespace http {
class client;
struct request;
struct response;
}  // namespace http

// What providers share across checks. Thread affinity: the io_context thread.
class provider_env {
 public:
  explicit provider_env(boost::asio::any_io_executor ex, std::function<core::wall_time()> now = {});
  ~provider_env();
  provider_env(const provider_env&) = delete;
  provider_env& operator=(const provider_env&) = delete;

  const boost::asio::any_io_executor& executor() const { return ex_; }
  core::wall_time now() const { return now_(); }

  // Sends `req` to `base`'s origin (scheme, host, port; `base`'s path is the caller's to join)
  // within `timeout`, on a kept-alive client per origin and TLS setting. Errors: "cancelled"
  // after stop(), the URL's problem, or the transport error's message.
  boost::asio::awaitable<boost::system::result<http::response, std::string>> send(std::string_view base,
                                                                                 bool insecure_skip_verify,
                                                                                 http::request req,
                                                                                 std::chrono::milliseconds timeout);
  // Shuts every kept connection; later sends fail with "cancelled".
  void stop();

  // The Kubernetes API client (keptn), or null when there is none.
  k8s::api_client* api() const { return api_; }
  void set_api(k8s::api_client* api) { api_ = api; }
  // Kubernetes API clients made from api()'s configuration with a provider's overrides
  // (externalmetrics: its address, token and 5 s deadline), by the provider's key; stop() shuts them.
  std::map<std::string, std::unique_ptr<k8s::api_client>>& api_clients() { return api_clients_; }

  // The AWS default credential chain, its temporary credentials kept across checks.
  aws_credential_chain& aws_credentials();
  // Google access tokens by service account (or "metadata"), with their expiry.
  std::map<std::string, std::pair<std::string, core::wall_time>>& google_tokens() { return google_tokens_; }

 private:
  boost::asio::any_io_executor ex_;
  std::function<core::wall_time()> now_;
  std::map<std::string, std::unique_ptr<http::client>> clients_;
  bool stopped_ = false;
  std::unique_ptr<aws_credential_chain> aws_;
  std::map<std::string, std::pair<std::string, core::wall_time>> google_tokens_;
  k8s::api_client* api_ = nullptr;
  std::map<std::string, std::unique_ptr<k8s::api_client>> api_clients_;
};

// Where a Prometheus query goes and how it authenticates.
struct prometheus_endpoint {
  std::string address;  // "http://prometheus:9090" (a path prefix is kept)
  bool insecure_skip_verify = false;
  std::string bearer_token;  // secret key "token"
  std::string username;      // secret keys "username" and "password": basic auth
  std::string password;
  std::map<std::string, std::vector<std::string>> headers;
};

// One Prometheus instant query (GET <address>/api/v1/query, 5 s): the first sample of a vector
// (or a scalar); NaN or no sample is no_values; HTTP >= 400, a transport error or a matrix is
// query_failed.
boost::asio::awaitable<core::metric_observation> query_prometheus(provider_env& env, const prometheus_endpoint& ep,
                                                                  std::string promql);

// What a provider is made from.
struct provider_config {
  core::metric_template_provider spec;
  // The secretRef's data (decoded), present only when the template names a secret.
  std::optional<std::map<std::string, std::string>> credentials;
  std::string interval;  // the metric's interval, as Go's time.ParseDuration reads it
};

class metric_provider {
 public:
  virtual ~metric_provider() = default;
  // One query, rendered. value, no_values or query_failed (with Flagger's error text).
  virtual boost::asio::awaitable<core::metric_observation> run_query(std::string query) = 0;
  // "" when the provider answers its health query, else why not.
  virtual boost::asio::awaitable<std::string> is_online() = 0;
};

using provider_result = boost::system::result<std::unique_ptr<metric_provider>, std::string>;

// Flagger's factory: one provider per known type (prometheus for an unknown one). An error is
// Flagger's construction error ("datadog credentials does not contain datadog_api_key").
provider_result make_metric_provider(provider_env& env, const provider_config& cfg);

// The providers (daemon/metric_providers/<type>.cpp).
provider_result make_prometheus_provider(provider_env& env, const provider_config& cfg);
provider_result make_datadog_provider(provider_env& env, const provider_config& cfg);
provider_result make_newrelic_provider(provider_env& env, const provider_config& cfg);
provider_result make_dynatrace_provider(provider_env& env, const provider_config& cfg);
provider_result make_influxdb_provider(provider_env& env, const provider_config& cfg);
provider_result make_graphite_provider(provider_env& env, const provider_config& cfg);
provider_result make_cloudwatch_provider(provider_env& env, const provider_config& cfg);
provider_result make_stackdriver_provider(provider_env& env, const provider_config& cfg);
provider_result make_keptn_provider(provider_env& env, const provider_config& cfg);
provider_result make_splunk_provider(provider_env& env, const provider_config& cfg);
provider_result make_externalmetrics_provider(provider_env& env, const provider_config& cfg);

// Helpers the providers share (daemon/metric_provider.cpp).
namespace provider_detail {
core::metric_observation value(double v);  // NaN or ±Inf -> no_values, as no provider reports a usable one
core::metric_observation no_values(std::string error);
core::metric_observation failed(std::string error);
// The interval as Flagger's time.ParseDuration reads it, or "error parsing metric interval: ...".
boost::system::result<std::chrono::milliseconds, std::string> parse_interval(std::string_view interval);
// Go's url.Values.Encode: keys sorted (values of one key in order), QueryEscape (space as '+').
std::string form_encode(std::vector<std::pair<std::string, std::string>> params);
// `base` without trailing slashes, then `path`.
std::string join_path(std::string_view base_path, std::string_view path);
// The path of a URL ("" for none), or nullopt if it does not parse.
std::optional<std::string> url_path(std::string_view url);
std::int64_t unix_seconds(core::wall_time t);
// The secret's value under `key`; null when the template names no secret or it lacks the key.
const std::string* credential(const provider_config& cfg, std::string_view key);
// What IsOnline says of a health query's answer, as Flagger words it: "" for a 200, else
// "request failed: <why>" or "error response: <body>".
std::string health_verdict(const boost::system::result<http::response, std::string>& res);
}  // namespace provider_detail

}  // namespace canaryd
