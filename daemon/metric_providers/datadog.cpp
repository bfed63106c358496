// datadog: Datadog's v1 metrics query API (https://docs.datadoghq.com/api/latest/metrics/#query-timeseries-points):
//   GET <address or https://api.datadoghq.com>/api/v1/query?from=<now-10*interval s>&query=<q>&to=<now s>
//   headers DD-API-KEY and DD-APPLICATION-KEY from the secret's datadog_api_key and
//   datadog_application_key; 5 s. IsOnline: GET /api/v1/validate with the same headers.
// The value is the first (oldest) point of the first series, as Flagger picks it: the newest
// bucket is usually incomplete. A null point value is no_values (Flagger would read it as 0).
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
constexpr const char* default_address = "https://api.datadoghq.com";

core::metric_observation read_answer(const http::response& res) {
  return core::read_datadog_answer(res.status, res.body);
}

class datadog_provider final : public metric_provider {
 public:
  datadog_provider(provider_env& env, std::string address, std::string api_key, std::string app_key,
                   std::int64_t from_delta)
      : env_(env), address_(std::move(address)), api_key_(std::move(api_key)), app_key_(std::move(app_key)),
        from_delta_(from_delta) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    const std::int64_t now = unix_seconds(env_.now());
    http::request req = make_request(
        "/api/v1/query?" +
        form_encode({{"query", query}, {"from", std::to_string(now - from_delta_)}, {"to", std::to_string(now)}}));
    auto res = co_await env_.send(address_, false, std::move(req), timeout);
    if (!res) co_return failed(fmt::format("request failed: {}", res.error()));
    co_return read_answer(*res);
  }

  asio::awaitable<std::string> is_online() override {
    auto res = co_await env_.send(address_, false, make_request("/api/v1/validate"), timeout);
    co_return health_verdict(res);
  }

 private:
  http::request make_request(const std::string& path_and_query) const {
    http::request req;
    req.target = join_path(url_path(address_).value_or(""), path_and_query);
    req.headers.push_back({"DD-API-KEY", api_key_});
    req.headers.push_back({"DD-APPLICATION-KEY", app_key_});
    return req;
  }

  provider_env& env_;
  std::string address_;
  std::string api_key_;
  std::string app_key_;
  std::int64_t from_delta_;
};

}  // namespace

provider_result make_datadog_provider(provider_env& env, const provider_config& cfg) {
  std::string address = cfg.spec.address.empty() ? default_address : cfg.spec.address;
  if (!url_path(address) || !http::parse_origin(address)) return fmt::format("datadog address {} is not a valid URL", address);
  const auto* api = credential(cfg, "datadog_api_key");
  if (!api) return std::string("datadog credentials does not contain datadog_api_key");
  const auto* app = credential(cfg, "datadog_application_key");
  if (!app) return std::string("datadog credentials does not contain datadog_application_key");
  auto interval = parse_interval(cfg.interval);
  if (!interval) return interval.error();
  // int64(10 * md.Seconds()), as Flagger computes it.
  const auto from_delta = static_cast<std::int64_t>(10 * std::chrono::duration<double>(*interval).count());
  return std::make_unique<datadog_provider>(env, std::move(address), *api, *app, from_delta);
}

}  // namespace canaryd
