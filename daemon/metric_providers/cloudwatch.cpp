// cloudwatch: CloudWatch GetMetricData (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html)
// in the AWS JSON 1.0 protocol, signed with SigV4 (service "monitoring"):
//   POST <address, else AWS_ENDPOINT_URL_CLOUDWATCH, else https://monitoring.<region>.amazonaws.com>/
//   Content-Type: application/x-amz-json-1.0
//   X-Amz-Target: GraniteServiceVersion20100801.GetMetricData
//   {"EndTime": now, "MaxDatapoints": 20, "MetricDataQueries": <the query>, "StartTime": now - 10 x interval}
// The query is the JSON array of MetricDataQuery that Flagger's templates hold. The region is
// the template's provider.region (required). Credentials: the AWS default chain
// (daemon/aws_credentials.hpp). 5 s per request. The value is Values[0] of the first result
// (CloudWatch answers newest first), as Flagger picks it. IsOnline sends an empty query: a
// 200 or a 400 (the query is invalid, but the request was accepted and authorised) is online.
#include <boost/json.hpp>

#include <fmt/format.h>

#include <cstdlib>

#include "core/aws_sigv4.hpp"
#include "core/metric_answers.hpp"
#include "daemon/aws_credentials.hpp"
#include "daemon/aws_sign.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds timeout{5};

// "Type: message" of an AWS JSON error answer.
std::string aws_error(const http::response& res) {
  boost::system::error_code ec;
  json::value doc = json::parse(res.body, ec);
  if (ec || !doc.is_object()) return fmt::format("{} {}", res.status, res.body);
  std::string type, message;
  if (auto* t = doc.as_object().if_contains("__type"); t && t->is_string()) type = std::string(t->as_string());
  for (const char* k : {"message", "Message"}) {
    if (auto* m = doc.as_object().if_contains(k); m && m->is_string()) message = std::string(m->as_string());
  }
  if (auto hash = type.rfind('#'); hash != std::string::npos) type = type.substr(hash + 1);
  return fmt::format("{}: {} (status code: {})", type, message, res.status);
}

class cloudwatch_provider final : public metric_provider {
 public:
  cloudwatch_provider(provider_env& env, std::string address, std::string region, std::chrono::milliseconds window)
      : env_(env), address_(std::move(address)), region_(std::move(region)), window_(window) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    boost::system::error_code ec;
    json::value queries = json::parse(query, ec);
    if (ec || !queries.is_array()) {
      co_return failed(fmt::format("error unmarshaling query: {}", ec ? ec.message() : "not a JSON array"));
    }
    const std::int64_t end = unix_seconds(env_.now());
    const std::int64_t start = end - std::chrono::duration_cast<std::chrono::seconds>(window_).count();
    json::object body{{"EndTime", end}, {"MaxDatapoints", 20}, {"MetricDataQueries", queries}, {"StartTime", start}};
    auto res = co_await call(json::serialize(body));
    if (!res) co_return failed(fmt::format("error requesting cloudwatch: {}", res.error()));
    if (res->status != 200) co_return failed(fmt::format("error requesting cloudwatch: {}", aws_error(*res)));
    co_return core::read_cloudwatch_answer(res->body);
  }

  asio::awaitable<std::string> is_online() override {
    auto res = co_await call(R"({"EndTime":0,"MetricDataQueries":[],"StartTime":0})");
    if (!res) co_return fmt::format("unexpected error: {}", res.error());
    if (res->status != 200 && res->status != 400) co_return fmt::format("unexpected status code: {}", aws_error(*res));
    co_return std::string();
  }

 private:
  asio::awaitable<boost::system::result<http::response, std::string>> call(std::string body) {
    auto creds = co_await env_.aws_credentials().get(env_, region_);
    if (!creds) co_return creds.error();
    auto origin = http::parse_origin(address_);
    if (!origin) co_return fmt::format("{} is not a valid URL", address_);
    const bool default_port = (origin->scheme == "https" && origin->port == "443") ||
                              (origin->scheme == "http" && origin->port == "80");
    const std::string host = default_port ? origin->host : origin->host + ":" + origin->port;
    core::sigv4_request sr;
    sr.method = "POST";
    sr.path = join_path(url_path(address_).value_or(""), "/");
    sr.headers = {{"Host", host},
                  {"Content-Type", "application/x-amz-json-1.0"},
                  {"X-Amz-Target", "GraniteServiceVersion20100801.GetMetricData"}};
    sr.payload = body;
    const std::string authorization = sigv4_sign(sr, *creds, region_, "monitoring", env_.now());
    http::request req;
    req.method = "POST";
    req.target = sr.path;
    for (auto& [k, v] : sr.headers) req.headers.push_back({k, v});
    req.headers.push_back({"Authorization", authorization});
    req.body = std::move(body);
    co_return co_await env_.send(address_, false, std::move(req), timeout);
  }

  provider_env& env_;
  std::string address_;
  std::string region_;
  std::chrono::milliseconds window_;
};

}  // namespace

provider_result make_cloudwatch_provider(provider_env& env, const provider_config& cfg) {
  if (cfg.spec.region.empty()) return std::string("region not specified");
  auto interval = parse_interval(cfg.interval);
  if (!interval) return interval.error();
  std::string address = cfg.spec.address;
  if (address.empty()) {
    const char* e = std::getenv("AWS_ENDPOINT_URL_CLOUDWATCH");
    if (!e || !*e) e = std::getenv("AWS_ENDPOINT_URL");
    address = e && *e ? e : fmt::format("https://monitoring.{}.amazonaws.com", cfg.spec.region);
  }
  if (!url_path(address) || !http::parse_origin(address)) return fmt::format("cloudwatch address {} is not a valid URL", address);
  return std::make_unique<cloudwatch_provider>(env, std::move(address), cfg.spec.region, 10 * *interval);
}

}  // namespace canaryd
