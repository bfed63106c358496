// dynatrace: Dynatrace's Metrics API v2 (https://docs.dynatrace.com/docs/dynatrace-api/environment-api/metric-v2/get-data-points):
//   GET <address>/api/v2/metrics/query?from=<now-10*interval ms>&metricSelector=<q>&resolution=Inf&to=<now ms>
//   header Authorization: Api-Token <dynatrace_token>; 5 s. The address is required (it is the
//   environment's URL). IsOnline: GET /api/v2/metrics?pageSize=1.
// The value, as Flagger picks it: the first value of the last data entry of the first result.
// A null value (Dynatrace writes null for a bucket with no data) is no_values.
#include <boost/json.hpp>

#include <fmt/format.h>

#include "core/metric_answers.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds timeout{5};

core::metric_observation read_answer(const http::response& res) {
  return core::read_dynatrace_answer(res.status, res.body);
}

class dynatrace_provider final : public metric_provider {
 public:
  dynatrace_provider(provider_env& env, std::string address, std::string token, std::int64_t from_delta_ms)
      : env_(env), address_(std::move(address)), token_(std::move(token)), from_delta_ms_(from_delta_ms) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    const std::int64_t now = unix_seconds(env_.now()) * 1000;
    // Built before the co_await: GCC 12 rejects an initializer list inside a co_await operand.
    std::vector<std::pair<std::string, std::string>> params{{"metricSelector", query},
                                                            {"resolution", "Inf"},
                                                            {"from", std::to_string(now - from_delta_ms_)},
                                                            {"to", std::to_string(now)}};
    http::request req = make_request("/api/v2/metrics/query?" + form_encode(std::move(params)));
    auto res = co_await env_.send(address_, false, std::move(req), timeout);
    if (!res) co_return failed(fmt::format("request failed: {}", res.error()));
    co_return read_answer(*res);
  }

  asio::awaitable<std::string> is_online() override {
    auto res = co_await env_.send(address_, false, make_request("/api/v2/metrics?pageSize=1"), timeout);
    co_return health_verdict(res);
  }

 private:
  http::request make_request(const std::string& path_and_query) const {
    http::request req;
    req.target = join_path(url_path(address_).value_or(""), path_and_query);
    req.headers.push_back({"Authorization", "Api-Token " + token_});
    return req;
  }

  provider_env& env_;
  std::string address_;
  std::string token_;
  std::int64_t from_delta_ms_;
};

}  // namespace

provider_result make_dynatrace_provider(provider_env& env, const provider_config& cfg) {
  if (cfg.spec.address.empty()) return std::string("dynatrace endpoint is not set");
  if (!url_path(cfg.spec.address) || !http::parse_origin(cfg.spec.address)) {
    return fmt::format("dynatrace address {} is not a valid URL", cfg.spec.address);
  }
  const auto* token = credential(cfg, "dynatrace_token");
  if (!token) return std::string("dynatrace credentials does not contain dynatrace_token");
  auto interval = parse_interval(cfg.interval);
  if (!interval) return interval.error();
  return std::make_unique<dynatrace_provider>(env, cfg.spec.address, *token, 10 * interval->count());
}

}  // namespace canaryd
