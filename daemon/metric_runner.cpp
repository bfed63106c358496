#include "daemon/metric_runner.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "core/metric_query.hpp"
#include "core/prometheus_answer.hpp"
#include "core/metric_template.hpp"
#include "k8s/config.hpp"
#include "k8s/http_client.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using outcome = core::metric_observation::outcome;

namespace {

// Flagger's Prometheus provider timeout.
constexpr std::chrono::seconds query_timeout{5};

core::metric_observation failed(outcome o, std::string error) {
  core::metric_observation r;
  r.result = o;
  r.error = std::move(error);
  return r;
}

}  // namespace

struct metric_runner::template_target {
  prometheus_endpoint endpoint;
  std::string query;  // the template's query, not yet rendered
};

metric_runner::metric_runner(asio::any_io_executor ex, cluster& k, const options& opts)
    : ex_(std::move(ex)), k_(k), opts_(opts) {}

metric_runner::~metric_runner() { stop(); }

void metric_runner::stop() {
  stopped_ = true;
  for (auto& [_, c] : clients_) c->shutdown();
}

prometheus_endpoint metric_runner::builtin_endpoint(const core::canary& c) const {
  prometheus_endpoint ep;
  ep.address = c.spec.metrics_server.empty() ? opts_.metrics_server : c.spec.metrics_server;
  return ep;
}

boost::system::result<metric_runner::template_target, std::string> metric_runner::resolve_template(
    const core::canary& c, const core::canary_metric& m) const {
  const auto& ref = *m.template_ref;
  const std::string ns = ref.namespace_.empty() ? c.metadata.namespace_ : ref.namespace_;
  auto obj = k_.metric_templates.get(ns, ref.name);
  if (!obj) {
    return fmt::format("Metric template {}.{} error: metrictemplate.flagger.app \"{}\" not found", ref.name, ns, ref.name);
  }
  auto decoded = core::decode_metric_template(obj->json());
  if (!decoded.errors.empty()) {
    return fmt::format("Metric template {}.{} error: {}", ref.name, ns, core::join_errors(decoded.errors));
  }
  const core::metric_template& t = decoded.value;
  template_target out;
  out.query = t.query;
  out.endpoint.address = t.provider.address;
  out.endpoint.insecure_skip_verify = t.provider.insecure_skip_verify;
  out.endpoint.headers = t.provider.headers;
  if (!t.provider.type.empty() && t.provider.type != "prometheus" && core::is_known_metric_provider(t.provider.type)) {
    return fmt::format("Metric template {}.{} provider {} error: canaryd does not support the {} provider yet", ref.name,
                       ns, t.provider.type, t.provider.type);
  }
  if (!t.provider.secret_ref.empty()) {
    auto secret = k_.secrets.get(ns, t.provider.secret_ref);
    if (!secret) {
      return fmt::format("Metric template {}.{} secret {} error: secrets \"{}\" not found", ref.name, ns,
                         t.provider.secret_ref, t.provider.secret_ref);
    }
    if (auto token = k8s::secret_value(*secret, "token")) {
      out.endpoint.bearer_token = *token;
    } else {
      auto user = k8s::secret_value(*secret, "username");
      auto pass = k8s::secret_value(*secret, "password");
      if (!user || !pass) {
        return fmt::format("Metric template {}.{} provider {} error: prometheus credentials does not contain a {}", ref.name,
                           ns, t.provider.type, user ? "password" : "username");
      }
      out.endpoint.username = *user;
      out.endpoint.password = *pass;
    }
  }
  if (out.endpoint.address.empty() || !boost::urls::parse_uri(out.endpoint.address)) {
    return fmt::format("Metric template {}.{} provider {} error: prometheus address {} is not a valid URL", ref.name, ns,
                       t.provider.type, out.endpoint.address);
  }
  return out;
}

asio::awaitable<core::metric_observation> metric_runner::query(const prometheus_endpoint& ep, const std::string& promql) {
  if (stopped_) co_return failed(outcome::query_failed, "cancelled");
  auto url = boost::urls::parse_uri(ep.address);
  auto origin = http::parse_origin(ep.address);
  if (!url || !origin) co_return failed(outcome::query_failed, fmt::format("prometheus address {} is not a valid URL", ep.address));
  const std::string key = fmt::format("{}://{}:{}#{}", origin->scheme, origin->host, origin->port, ep.insecure_skip_verify);
  auto it = clients_.find(key);
  if (it == clients_.end()) {
    http::client_options co;
    co.tls.verify = !ep.insecure_skip_verify;
    co.max_idle_connections = 2;
    co.max_body_bytes = 8u << 20;
    co.user_agent = "canaryd";
    auto made = http::make_client(ex_, *origin, co);
    if (!made) co_return failed(outcome::query_failed, fmt::format("request failed: {}", made.error().message()));
    it = clients_.emplace(key, std::move(*made)).first;
  }
  http::request req;
  std::string path(url->encoded_path());
  while (!path.empty() && path.back() == '/') path.pop_back();
  req.target = fmt::format("{}/api/v1/query?query={}", path, http::percent_encode(core::collapse_whitespace(promql)));
  for (const auto& [name, values] : ep.headers) {
    for (const auto& v : values) req.headers.push_back({name, v});
  }
  if (!ep.bearer_token.empty()) {
    http::set_header(req.headers, "Authorization", "Bearer " + ep.bearer_token);
  } else if (!ep.username.empty() && !ep.password.empty()) {
    http::set_header(req.headers, "Authorization", "Basic " + k8s::base64_encode(ep.username + ":" + ep.password));
  }
  http::client& client = *it->second;
  auto res = co_await client.send(std::move(req), query_timeout);
  if (!res) co_return failed(outcome::query_failed, fmt::format("request failed: Get \"{}\": {}", ep.address, res.error().message()));
  co_return core::read_prometheus_answer(res->status, res->body);
}

asio::awaitable<std::vector<core::metric_observation>> metric_runner::run(const core::canary& c,
                                                                         const core::metric_request& req) {
  std::vector<core::metric_observation> out;
  const auto& metrics = c.analysis_or_empty().metrics;
  for (const core::metric_query& q : req.queries) {
    if (q.metric >= metrics.size()) {
      out.push_back(failed(outcome::query_failed, "no such metric"));
      continue;
    }
    const core::canary_metric& m = metrics[q.metric];
    core::query_vars vars = core::make_query_vars(c, m);
    vars.interval = q.interval;
    switch (q.kind) {
      case core::metric_query_kind::request_success_rate:
      case core::metric_query_kind::request_duration: {
        core::builtin_query b = core::builtin_observer_query(req.metrics_provider, q.kind, vars);
        core::metric_observation o = co_await query(builtin_endpoint(c), b.query);
        if (o.result == outcome::value && q.kind == core::metric_query_kind::request_duration) {
          // Flagger's observers convert to a time.Duration of whole milliseconds.
          o.value = std::trunc(o.value * b.to_milliseconds);
        }
        if (o.result == outcome::query_failed) o.error = "running query failed: " + o.error;
        out.push_back(std::move(o));
        break;
      }
      case core::metric_query_kind::inline_query: {
        core::rendered_query r = core::render_query(m.query, vars);
        if (!r.ok()) {
          out.push_back(failed(outcome::query_failed, r.error));
          break;
        }
        out.push_back(co_await query(builtin_endpoint(c), r.query));
        break;
      }
      case core::metric_query_kind::template_query: {
        auto target = resolve_template(c, m);
        if (!target) {
          out.push_back(failed(outcome::setup_failed, target.error()));
          break;
        }
        core::rendered_query r = core::render_query(target->query, vars);
        if (!r.ok()) {
          const auto& ref = *m.template_ref;
          out.push_back(failed(outcome::setup_failed,
                               fmt::format("Metric template {}.{} query render error: {}", ref.name,
                                           ref.namespace_.empty() ? c.metadata.namespace_ : ref.namespace_, r.error)));
          break;
        }
        out.push_back(co_await query(target->endpoint, r.query));
        break;
      }
    }
  }
  co_return out;
}

asio::awaitable<std::string> metric_runner::check_providers(const core::canary& c) {
  for (const core::canary_metric& m : c.analysis_or_empty().metrics) {
    if (m.is_builtin()) {
      auto o = co_await query(builtin_endpoint(c), "vector(1)");
      if (o.result != outcome::value) co_return fmt::format("prometheus not available: running query failed: {}", o.error);
      if (o.value != 1) co_return "prometheus not available: value is not 1 for query: vector(1)";
      continue;
    }
    if (!m.template_ref) continue;
    auto target = resolve_template(c, m);
    if (!target) co_return target.error();
    auto o = co_await query(target->endpoint, "vector(1)");
    if (o.result != outcome::value || o.value != 1) {
      const auto& ref = *m.template_ref;
      co_return fmt::format("prometheus in metric template {}.{} not available: running query failed: {}", ref.name,
                            ref.namespace_.empty() ? c.metadata.namespace_ : ref.namespace_,
                            o.result == outcome::value ? "value is not 1 for query: vector(1)" : o.error);
    }
  }
  co_return std::string();
}

}  // namespace canaryd
