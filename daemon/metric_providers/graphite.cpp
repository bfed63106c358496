// graphite: Graphite's render API (https://graphite.readthedocs.io/en/latest/render_api.html):
//   GET <address>/render?<the query's parameters, with format=json, re-encoded in key order>
// The query is the render API's query string ("target=...&from=-1min"), white space collapsed
// as Flagger does. Secret keys "username" and "password" (both required when a secret is named)
// as basic auth; insecureSkipVerify is honoured; 5 s. The value, as Flagger picks it: the last
// non-null datapoint of the last series that has one. IsOnline runs `target=test` and accepts
// an answer with no values.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "core/metric_answers.hpp"
#include "core/metric_query.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/config.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;
using outcome = core::metric_observation::outcome;

namespace {

constexpr std::chrono::seconds timeout{5};

// Go's url.ParseQuery, leniently (as url.URL.Query() is): pairs split on '&', a pair with a
// ';' dropped, '+' and %XX decoded.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty() || pair.find(';') != std::string_view::npos) continue;
    auto eq = pair.find('=');
    std::string key = http::percent_decode(pair.substr(0, eq), true);
    std::string val = eq == std::string_view::npos ? "" : http::percent_decode(pair.substr(eq + 1), true);
    out.emplace_back(std::move(key), std::move(val));
  }
  return out;
}

core::metric_observation read_answer(const http::response& res) {
  return core::read_graphite_answer(res.status, res.body);
}

class graphite_provider final : public metric_provider {
 public:
  graphite_provider(provider_env& env, std::string address, bool insecure, std::string user, std::string password)
      : env_(env), address_(std::move(address)), insecure_(insecure), user_(std::move(user)), password_(std::move(password)) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    auto params = parse_query(core::collapse_whitespace(query));
    std::erase_if(params, [](const auto& p) { return p.first == "format"; });
    params.emplace_back("format", "json");
    http::request req;
    req.target = join_path(url_path(address_).value_or(""), "/render?" + form_encode(std::move(params)));
    if (!user_.empty() && !password_.empty()) {
      req.headers.push_back({"Authorization", "Basic " + k8s::base64_encode(user_ + ":" + password_)});
    }
    auto res = co_await env_.send(address_, insecure_, std::move(req), timeout);
    if (!res) co_return failed(fmt::format("request failed: {}", res.error()));
    co_return read_answer(*res);
  }

  asio::awaitable<std::string> is_online() override {
    auto o = co_await run_query("target=test");
    if (o.result == outcome::query_failed) co_return fmt::format("running query failed: {}", o.error);
    co_return std::string();
  }

 private:
  provider_env& env_;
  std::string address_;
  bool insecure_;
  std::string user_;
  std::string password_;
};

}  // namespace

provider_result make_graphite_provider(provider_env& env, const provider_config& cfg) {
  const std::string& type = cfg.spec.type;
  if (cfg.spec.address.empty() || !boost::urls::parse_uri(cfg.spec.address) || !http::parse_origin(cfg.spec.address)) {
    return fmt::format("{} address {} is not a valid URL", type, cfg.spec.address);
  }
  std::string user, password;
  if (cfg.credentials) {
    auto u = cfg.credentials->find("username");
    if (u == cfg.credentials->end()) return fmt::format("{} credentials does not contain a username", type);
    auto p = cfg.credentials->find("password");
    if (p == cfg.credentials->end()) return fmt::format("{} credentials does not contain a password", type);
    user = u->second;
    password = p->second;
  }
  return std::make_unique<graphite_provider>(env, cfg.spec.address, cfg.spec.insecure_skip_verify, std::move(user),
                                             std::move(password));
}

}  // namespace canaryd
