// externalmetrics: the Kubernetes External Metrics API (external.metrics.k8s.io/v1beta1), as
// Flagger's provider reads it (core/external_metrics.hpp has the query grammar and the answer):
//   GET <API server>/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>[?labelSelector=]
// through a Kubernetes API client made from canaryd's own cluster configuration (Flagger uses
// its in-cluster rest.Config) with the template's overrides: provider.address replaces the
// server, the secret's `token` replaces the credentials (a bearer token),
// provider.insecureSkipVerify turns off certificate verification; 5 s per request, as Flagger's
// rest.Config.Timeout. The value is the first item's; no items is "no values".
// IsOnline lists the metric "dummy-metric" in kube-system, as Flagger does: any answer but an
// error is online (an adapter answers an empty list for a metric it does not know).
#include <fmt/format.h>

#include "core/external_metrics.hpp"
#include "daemon/metric_provider.hpp"
#include "k8s/api_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
using namespace provider_detail;

namespace {

constexpr std::chrono::seconds timeout{5};

class externalmetrics_provider final : public metric_provider {
 public:
  explicit externalmetrics_provider(k8s::api_client& api) : api_(api) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    auto q = core::parse_external_metrics_query(query);
    if (!q) co_return failed(q.error());
    auto res = co_await api_.request("GET", core::external_metrics_target(*q), {}, "application/json", "GET");
    if (!res) co_return failed(fmt::format("error querying external metrics API: {}", res.error().what()));
    co_return core::read_external_metrics_answer(res->body);
  }

  asio::awaitable<std::string> is_online() override {
    core::external_metrics_query q{"kube-system", "dummy-metric", ""};
    auto res = co_await api_.request("GET", core::external_metrics_target(q), {}, "application/json", "GET");
    if (!res) co_return fmt::format("external metrics service unavailable: {}", res.error().what());
    co_return std::string();
  }

 private:
  k8s::api_client& api_;
};

}  // namespace

provider_result make_externalmetrics_provider(provider_env& env, const provider_config& cfg) {
  if (!env.api()) return std::string("Not in a kubernetes cluster: no Kubernetes API client");
  k8s::cluster_config cc = env.api()->config();
  if (!cfg.spec.address.empty()) cc.server = cfg.spec.address;
  if (cfg.spec.insecure_skip_verify) cc.tls.verify = false;
  if (cfg.credentials) {
    if (auto it = cfg.credentials->find("token"); it != cfg.credentials->end()) {
      cc.token = it->second;
      cc.token_file.clear();
      cc.basic.reset();
      cc.exec.reset();
    }
  }
  // One client per (server, verification, credentials), kept across checks.
  const std::string key = fmt::format("externalmetrics|{}|{}|{}", cc.server, cc.tls.verify,
                                      cfg.credentials && cfg.credentials->count("token") ? cc.token : "");
  auto& clients = env.api_clients();
  auto it = clients.find(key);
  if (it == clients.end()) {
    k8s::api_client_options opts = env.api()->options();
    opts.timeout = timeout;
    opts.max_idle_connections = 2;
    auto made = k8s::api_client::create(env.executor(), std::move(cc), opts);
    if (!made) return fmt::format("error creating external metric client: {}", made.error().what());
    it = clients.emplace(key, std::move(*made)).first;
  }
  return std::make_unique<externalmetrics_provider>(*it->second);
}

}  // namespace canaryd
