// influxdb: InfluxDB 2's query API (https://docs.influxdata.com/influxdb/v2/api/#operation/PostQuery), as
// influxdb-client-go's QueryAPI.Query (Flagger's client) sends it:
//   POST <address>/api/v2/query?org=<org>
//   Content-Type: application/json, Authorization: Token <token> (when there is a secret)
//   {"dialect":{"annotations":["datatype","group","default"],"delimiter":",","header":true},
//    "query":"<flux>","type":"flux"}
// 15 s. The answer is annotated CSV; the value is the _value of the first record. Secret keys
// "token" and "org" (both required when a secret is named). IsOnline runs
// `from(bucket: "default") |> range(start: -2h)` and needs only an answer.
// Differences from Flagger: an answer with no record is no_values (Flagger returns 0 and passes),
// and a long or unsignedLong _value is a value (Flagger fails it as "invalid response").
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "core/metric_answers.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds timeout{15};

core::metric_observation read_answer(const http::response& res) {
  return core::read_influxdb_answer(res.status, res.body);
}

class influxdb_provider final : public metric_provider {
 public:
  influxdb_provider(provider_env& env, std::string address, std::string token, std::string org)
      : env_(env), address_(std::move(address)), token_(std::move(token)), org_(std::move(org)) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    auto res = co_await env_.send(address_, false, make_request(query), timeout);
    if (!res) co_return failed(fmt::format("error accessing influxdb query api: {}", res.error()));
    co_return read_answer(*res);
  }

  asio::awaitable<std::string> is_online() override {
    auto o = co_await run_query(R"(from(bucket: "default") |> range(start: -2h))");
    if (o.result == core::metric_observation::outcome::query_failed) co_return o.error;
    co_return std::string();
  }

 private:
  http::request make_request(const std::string& query) const {
    http::request req;
    req.method = "POST";
    req.target = join_path(url_path(address_).value_or(""), "/api/v2/query?" + form_encode({{"org", org_}}));
    req.headers.push_back({"Content-Type", "application/json"});
    if (!token_.empty()) req.headers.push_back({"Authorization", "Token " + token_});
    json::object body;
    body["dialect"] = json::object{{"annotations", json::array{"datatype", "group", "default"}},
                                   {"delimiter", ","},
                                   {"header", true}};
    body["query"] = query;
    body["type"] = "flux";
    req.body = json::serialize(body);
    return req;
  }

  provider_env& env_;
  std::string address_;
  std::string token_;
  std::string org_;
};

}  // namespace

provider_result make_influxdb_provider(provider_env& env, const provider_config& cfg) {
  const std::string& type = cfg.spec.type;
  if (cfg.spec.address.empty() || !boost::urls::parse_uri(cfg.spec.address) || !http::parse_origin(cfg.spec.address)) {
    return fmt::format("{} address {} is not a valid URL", type, cfg.spec.address);
  }
  std::string token, org;
  if (cfg.credentials) {
    auto t = cfg.credentials->find("token");
    if (t == cfg.credentials->end()) return fmt::format("{} credentials does not contain an authentication token", type);
    auto o = cfg.credentials->find("org");
    if (o == cfg.credentials->end()) return fmt::format("{} credentials does not contain an organisation", type);
    token = t->second;
    org = o->second;
  }
  return std::make_unique<influxdb_provider>(env, cfg.spec.address, std::move(token), std::move(org));
}

}  // namespace canaryd
