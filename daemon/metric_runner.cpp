#include "daemon/metric_runner.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <cmath>

#include "core/metric_query.hpp"
#include "core/metric_template.hpp"
#include "k8s/config.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace asio = boost::asio;
using outcome = core::metric_observation::outcome;

namespace {

core::metric_observation failed(outcome o, std::string error) {
  core::metric_observation r;
  r.result = o;
  r.error = std::move(error);
  return r;
}

std::string template_namespace(const core::canary& c, const core::canary_metric& m) {
  return m.template_ref->namespace_.empty() ? c.metadata.namespace_ : m.template_ref->namespace_;
}

}  // namespace

// The provider first: a std::string first member would make the struct constructible from the
// error text, and result<> ambiguous.
struct metric_runner::template_target {
  std::unique_ptr<metric_provider> provider;
  std::string type;  // provider.type as written ("" reads as prometheus)
  std::string query;  // the template's query, not yet rendered
};

metric_runner::metric_runner(asio::any_io_executor ex, cluster& k, const options& opts)
    : k_(k), opts_(opts), env_(std::move(ex)) {
  env_.set_api(&k_.client);
}

metric_runner::~metric_runner() { stop(); }

void metric_runner::stop() { env_.stop(); }

prometheus_endpoint metric_runner::builtin_endpoint(const core::canary& c) const {
  prometheus_endpoint ep;
  ep.address = c.spec.metrics_server.empty() ? opts_.metrics_server : c.spec.metrics_server;
  return ep;
}

boost::system::result<metric_runner::template_target, std::string> metric_runner::resolve_template(
    const core::canary& c, const core::canary_metric& m, const std::string& interval) {
  const auto& ref = *m.template_ref;
  const std::string ns = template_namespace(c, m);
  auto obj = k_.metric_templates.get(ns, ref.name);
  if (!obj) {
    return fmt::format("Metric template {}.{} error: metrictemplate.flagger.app \"{}\" not found", ref.name, ns, ref.name);
  }
  auto decoded = core::decode_metric_template(obj->json());
  if (!decoded.errors.empty()) {
    return fmt::format("Metric template {}.{} error: {}", ref.name, ns, core::join_errors(decoded.errors));
  }
  const core::metric_template& t = decoded.value;
  provider_config cfg;
  cfg.spec = t.provider;
  cfg.interval = interval;
  if (!t.provider.secret_ref.empty()) {
    auto secret = k_.secrets.get(ns, t.provider.secret_ref);
    if (!secret) {
      return fmt::format("Metric template {}.{} secret {} error: secrets \"{}\" not found", ref.name, ns,
                         t.provider.secret_ref, t.provider.secret_ref);
    }
    // Flagger hands providers secret.Data: every key, decoded.
    std::map<std::string, std::string> data;
    boost::system::error_code ec;
    boost::json::value doc = boost::json::parse(secret->json(), ec);
    for (std::string_view field : {"data", "stringData"}) {
      const auto* o = ec || !doc.is_object() ? nullptr : doc.as_object().if_contains(field);
      if (!o || !o->is_object()) continue;
      for (const auto& kv : o->as_object()) {
        if (auto v = k8s::secret_value(*secret, kv.key())) data.emplace(std::string(kv.key()), *v);
      }
    }
    cfg.credentials = std::move(data);
  }
  auto made = make_metric_provider(env_, cfg);
  if (!made) return fmt::format("Metric template {}.{} provider {} error: {}", ref.name, ns, t.provider.type, made.error());
  template_target out;
  out.type = t.provider.type.empty() ? "prometheus" : t.provider.type;
  out.provider = std::move(*made);
  out.query = t.query;
  return out;
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
        core::metric_observation o = co_await query_prometheus(env_, builtin_endpoint(c), b.query);
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
        out.push_back(co_await query_prometheus(env_, builtin_endpoint(c), r.query));
        break;
      }
      case core::metric_query_kind::template_query: {
        auto target = resolve_template(c, m, q.interval);
        if (!target) {
          out.push_back(failed(outcome::setup_failed, target.error()));
          break;
        }
        const std::string ns = template_namespace(c, m);
        core::rendered_query r = core::render_query(target->query, vars);
        if (!r.ok()) {
          out.push_back(failed(outcome::setup_failed, fmt::format("Metric template {}.{} query render error: {}",
                                                                  m.template_ref->name, ns, r.error)));
          break;
        }
        core::metric_observation o = co_await target->provider->run_query(r.query);
        // Flagger's text first (the events keep it), then which provider and template said so.
        if (o.result != outcome::value) {
          o.error += fmt::format(" ({} provider, metric template {}.{})", target->type, m.template_ref->name, ns);
        }
        out.push_back(std::move(o));
        break;
      }
    }
  }
  co_return out;
}

asio::awaitable<std::string> metric_runner::check_providers(const core::canary& c) {
  for (const core::canary_metric& m : c.analysis_or_empty().metrics) {
    if (m.is_builtin()) {
      auto o = co_await query_prometheus(env_, builtin_endpoint(c), "vector(1)");
      if (o.result != outcome::value) co_return fmt::format("prometheus not available: running query failed: {}", o.error);
      if (o.value != 1) co_return "prometheus not available: value is not 1 for query: vector(1)";
      continue;
    }
    if (!m.template_ref) continue;
    auto target = resolve_template(c, m, m.effective_interval());
    if (!target) co_return target.error();
    std::string problem = co_await target->provider->is_online();
    if (!problem.empty()) {
      co_return fmt::format("{} in metric template {}.{} not available: {}", target->type, m.template_ref->name,
                            template_namespace(c, m), problem);
    }
  }
  co_return std::string();
}

}  // namespace canaryd
