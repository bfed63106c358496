// prometheus: GET <address>/api/v1/query?query=<collapsed query>, 5 s (flagger-behaviour.md §6.2).
// Auth from the secret: "token" as a bearer token, else "username" and "password" (both
// required) as basic auth; provider.headers are added; insecureSkipVerify is honoured.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "core/metric_query.hpp"
#include "core/prometheus_answer.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/config.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds query_timeout{5};

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
  co_return core::read_prometheus_answer(res->status, res->body);  // the fuzzed reader (fuzz/prometheus_answer)
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
