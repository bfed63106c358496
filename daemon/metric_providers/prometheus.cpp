// prometheus: GET <address>/api/v1/query?query=<collapsed query>, 5 s (flagger-behaviour.md §6.2).
// Auth from the secret: "token" as a bearer token, else "username" and "password" (both
// required) as basic auth; provider.headers are added; insecureSkipVerify is honoured.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "core/metric_query.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/config.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds query_timeout{5};

// The sample's value: Prometheus writes it as a string ("0.95", "NaN", "+Inf").
std::optional<double> sample_value(const json::value& pair) {
  const auto* arr = pair.if_array();
  if (!arr || arr->size() < 2 || !(*arr)[1].is_string()) return std::nullopt;
  const json::string& s = (*arr)[1].as_string();
  std::string text(s.data(), s.size());
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  return v;
}

core::metric_observation read_answer(const http::response& res) {
  if (res.status >= 400) return failed(fmt::format("error response: {}", res.body));
  boost::system::error_code ec;
  json::value doc = json::parse(res.body, ec);
  const json::object* root = ec ? nullptr : doc.if_object();
  const json::object* data = nullptr;
  if (root) {
    if (auto it = root->find("data"); it != root->end()) data = it->value().if_object();
  }
  if (!data) return failed(fmt::format("error unmarshaling result: '{}'", res.body));
  std::string_view type;
  if (auto it = data->find("resultType"); it != data->end() && it->value().is_string()) type = it->value().as_string();
  const json::value* result = data->if_contains("result");
  if (type == "matrix") return failed("query returned multiple values");
  std::optional<double> v;
  if (type == "scalar" && result) {
    v = sample_value(*result);
  } else if (result && result->is_array() && !result->as_array().empty()) {
    if (const auto* first = result->as_array()[0].if_object()) {
      if (const json::value* p = first->if_contains("value")) v = sample_value(*p);
    }
  }
  if (!v || std::isnan(*v)) return no_values("no values found");
  core::metric_observation o;
  o.result = core::metric_observation::outcome::value;
  o.value = *v;  // ±Inf is a value for Prometheus, as in Flagger (it fails any threshold)
  return o;
}

class prometheus_provider final : public metric_provider {
 public:
  prometheus_provider(provider_env& env, prometheus_endpoint ep) : env_(env), ep_(std::move(ep)) {}
  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    co_return co_await query_prometheus(env_, ep_, std::move(query));
  }
  asio::awaitable<std::string> is_online() override {
    auto o = co_await query_prometheus(env_, ep_, "vector(1)");
    if (o.result != core::metric_observation::outcome::value) co_return fmt::format("running query failed: {}", o.error);
    if (o.value != 1) co_return "value is not 1 for query: vector(1)";
    co_return std::string();
  }

 private:
  provider_env& env_;
  prometheus_endpoint ep_;
};

}  // namespace

asio::awaitable<core::metric_observation> query_prometheus(provider_env& env, const prometheus_endpoint& ep,
                                                           std::string promql) {
  auto path = url_path(ep.address);
  if (!path || !http::parse_origin(ep.address)) {
    co_return failed(fmt::format("prometheus address {} is not a valid URL", ep.address));
  }
  http::request req;
  req.target = join_path(*path, "/api/v1/query?query=" + http::percent_encode(core::collapse_whitespace(promql)));
  for (const auto& [name, values] : ep.headers) {
    for (const auto& v : values) req.headers.push_back({name, v});
  }
  if (!ep.bearer_token.empty()) {
    http::set_header(req.headers, "Authorization", "Bearer " + ep.bearer_token);
  } else if (!ep.username.empty() && !ep.password.empty()) {
    http::set_header(req.headers, "Authorization", "Basic " + k8s::base64_encode(ep.username + ":" + ep.password));
  }
  auto res = co_await env.send(ep.address, ep.insecure_skip_verify, std::move(req), query_timeout);
  if (!res) co_return failed(fmt::format("request failed: Get \"{}\": {}", ep.address, res.error()));
  co_return read_answer(*res);
}

provider_result make_prometheus_provider(provider_env& env, const provider_config& cfg) {
  prometheus_endpoint ep;
  ep.address = cfg.spec.address;
  ep.insecure_skip_verify = cfg.spec.insecure_skip_verify;
  ep.headers = cfg.spec.headers;
  if (cfg.credentials) {
    const auto& c = *cfg.credentials;
    if (auto t = c.find("token"); t != c.end()) {
      ep.bearer_token = t->second;
    } else {
      auto u = c.find("username");
      auto p = c.find("password");
      if (u == c.end() || p == c.end()) {
        return fmt::format("prometheus credentials does not contain a {}", u == c.end() ? "username" : "password");
      }
      ep.username = u->second;
      ep.password = p->second;
    }
  }
  if (ep.address.empty() || !boost::urls::parse_uri(ep.address)) {
    return fmt::format("prometheus address {} is not a valid URL", ep.address);
  }
  return std::make_unique<prometheus_provider>(env, std::move(ep));
}

}  // namespace canaryd
