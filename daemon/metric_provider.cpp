#include "daemon/metric_provider.hpp"

#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/duration.hpp"
#include "core/metric_answers.hpp"
#include "daemon/aws_credentials.hpp"
#include "daemon/outbound.hpp"
#include "k8s/api_client.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
using outcome = core::metric_observation::outcome;

provider_env::provider_env(asio::any_io_executor ex, std::function<core::wall_time()> now)
    : ex_(std::move(ex)), now_(now ? std::move(now) : [] { return core::wall_clock::now(); }) {}

provider_env::~provider_env() { stop(); }

aws_credential_chain& provider_env::aws_credentials() {
  if (!aws_) aws_ = std::make_unique<aws_credential_chain>();
  return *aws_;
}

void provider_env::stop() {
  stopped_ = true;
  for (auto& [_, c] : clients_) c->shutdown();
  for (auto& [_, c] : api_clients_) c->shutdown();
}

asio::awaitable<boost::system::result<http::response, std::string>> provider_env::send(
    std::string_view base, bool insecure_skip_verify, http::request req, std::chrono::milliseconds timeout) {
  if (stopped_) co_return std::string("cancelled");
  auto url = boost::urls::parse_uri(base);
  if (!url || !http::parse_origin(base)) co_return fmt::format("{} is not a valid URL", base);
  // HTTP(S)_PROXY/NO_PROXY, as Go's ProxyFromEnvironment in Flagger's provider clients: the
  // request goes to the proxy (http) or through a CONNECT tunnel (https) when one applies.
  http::client_options co;
  auto routed = route_outbound(
      fmt::format("{}://{}{}", std::string(url->scheme()), std::string(url->encoded_authority()), req.target), {}, co, req);
  if (!routed) co_return fmt::format("{}: {}", base, routed.error());
  auto via = http::parse_origin(*routed);
  if (!via) co_return fmt::format("proxy for {} is not a valid URL", base);
  const std::string key = fmt::format("{}://{}:{}#{}#{}", via->scheme, via->host, via->port, insecure_skip_verify,
                                      co.connect_proxy ? co.connect_proxy->host + ":" + co.connect_proxy->port : "");
  auto it = clients_.find(key);
  if (it == clients_.end()) {
    co.tls.verify = !insecure_skip_verify;
    co.max_idle_connections = 2;
    co.max_body_bytes = 8u << 20;
    co.user_agent = "canaryd";
    auto made = http::make_client(ex_, *via, co);
    if (!made) co_return made.error().message();
    it = clients_.emplace(key, std::move(*made)).first;
  }
  auto res = co_await it->second->send(std::move(req), timeout);
  if (!res) co_return res.error().message();
  co_return std::move(*res);
}

namespace provider_detail {

// One definition of what a value, no values and a failure are: core's (core/metric_answers.hpp).
core::metric_observation value(double v) { return core::observed_value(v); }
core::metric_observation no_values(std::string error) { return core::observed_no_values(std::move(error)); }
core::metric_observation failed(std::string error) { return core::observed_failure(std::move(error)); }

boost::system::result<std::chrono::milliseconds, std::string> parse_interval(std::string_view interval) {
  auto d = parse_go_duration(interval);
  if (!d) return fmt::format("error parsing metric interval: time: invalid duration \"{}\"", interval);
  return *d;
}

std::string form_encode(std::vector<std::pair<std::string, std::string>> params) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::stable_sort(params.begin(), params.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    for (const std::string* s : {&k, &v}) {
      for (unsigned char c : *s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
          out += static_cast<char>(c);
        } else if (c == ' ') {
          out += '+';
        } else {
          out += '%';
          out += hex[c >> 4];
          out += hex[c & 15];
        }
      }
      if (s == &k) out += '=';
    }
  }
  return out;
}

std::string join_path(std::string_view base_path, std::string_view path) {
  while (!base_path.empty() && base_path.back() == '/') base_path.remove_suffix(1);
  return std::string(base_path) + std::string(path);
}

std::optional<std::string> url_path(std::string_view url) {
  auto u = boost::urls::parse_uri(url);
  if (!u) return std::nullopt;
  return std::string(u->encoded_path());
}

std::int64_t unix_seconds(core::wall_time t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

const std::string* credential(const provider_config& cfg, std::string_view key) {
  if (!cfg.credentials) return nullptr;
  auto it = cfg.credentials->find(std::string(key));
  return it == cfg.credentials->end() ? nullptr : &it->second;
}

std::string health_verdict(const boost::system::result<http::response, std::string>& res) {
  if (!res) return fmt::format("request failed: {}", res.error());
  if (res->status != 200) return fmt::format("error response: {}", res->body);
  return {};
}

}  // namespace provider_detail

provider_result make_metric_provider(provider_env& env, const provider_config& cfg) {
  const std::string& t = cfg.spec.type;
  if (t == "datadog") return make_datadog_provider(env, cfg);
  if (t == "newrelic") return make_newrelic_provider(env, cfg);
  if (t == "dynatrace") return make_dynatrace_provider(env, cfg);
  if (t == "influxdb") return make_influxdb_provider(env, cfg);
  if (t == "graphite") return make_graphite_provider(env, cfg);
  if (t == "cloudwatch") return make_cloudwatch_provider(env, cfg);
  if (t == "stackdriver") return make_stackdriver_provider(env, cfg);
  if (t == "keptn") return make_keptn_provider(env, cfg);
  if (t == "splunk") return make_splunk_provider(env, cfg);
  if (t == "externalmetrics") return make_externalmetrics_provider(env, cfg);
  if (t.empty() || t == "prometheus" || !core::is_known_metric_provider(t)) return make_prometheus_provider(env, cfg);
  return fmt::format("canaryd does not support the {} provider yet", t);
}

}  // namespace canaryd
