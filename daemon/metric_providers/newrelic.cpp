// newrelic: New Relic's Insights query API (https://docs.newrelic.com/docs/apis/insights-apis/query-insights-event-data-api/):
//   GET <address or https://insights-api.newrelic.com>/v1/accounts/<newrelic_account_id>/query
//       ?nrql=<q> SINCE <interval in whole seconds> seconds ago
//   header X-Query-Key from the secret's newrelic_query_key; 5 s. IsOnline: the same request
//   with `SELECT * FROM Metric`.
// The value is results[0].result; anything but exactly one result, or a null one, is no_values.
// (Flagger's window is one interval here, not ten: it is kept.)
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
constexpr const char* default_address = "https://insights-api.newrelic.com";

core::metric_observation read_answer(const http::response& res) {
  return core::read_newrelic_answer(res.status, res.body);
}

class newrelic_provider final : public metric_provider {
 public:
  newrelic_provider(provider_env& env, std::string address, std::string account, std::string key, std::int64_t since)
      : env_(env), address_(std::move(address)), account_(std::move(account)), key_(std::move(key)), since_(since) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    auto res = co_await env_.send(address_, false, make_request(query), timeout);
    if (!res) co_return failed(fmt::format("request failed: {}", res.error()));
    co_return read_answer(*res);
  }

  asio::awaitable<std::string> is_online() override {
    auto res = co_await env_.send(address_, false, make_request("SELECT * FROM Metric"), timeout);
    co_return health_verdict(res);
  }

 private:
  http::request make_request(const std::string& query) const {
    http::request req;
    req.target = join_path(url_path(address_).value_or(""),
                           fmt::format("/v1/accounts/{}/query?{}", http::percent_encode(account_),
                                       form_encode({{"nrql", fmt::format("{} SINCE {} seconds ago", query, since_)}})));
    req.headers.push_back({"X-Query-Key", key_});
    return req;
  }

  provider_env& env_;
  std::string address_;
  std::string account_;
  std::string key_;
  std::int64_t since_;
};

}  // namespace

provider_result make_newrelic_provider(provider_env& env, const provider_config& cfg) {
  std::string address = cfg.spec.address.empty() ? default_address : cfg.spec.address;
  if (!url_path(address) || !http::parse_origin(address)) return fmt::format("newrelic address {} is not a valid URL", address);
  const auto* account = credential(cfg, "newrelic_account_id");
  if (!account) return std::string("newrelic credentials does not contain the key 'newrelic_account_id'");
  const auto* key = credential(cfg, "newrelic_query_key");
  if (!key) return std::string("newrelic credentials does not contain the key 'newrelic_query_key'");
  auto interval = parse_interval(cfg.interval);
  if (!interval) return interval.error();
  const auto since = static_cast<std::int64_t>(std::chrono::duration<double>(*interval).count());
  return std::make_unique<newrelic_provider>(env, std::move(address), *account, *key, since);
}

}  // namespace canaryd
