// keptn: Keptn's metrics.keptn.sh/v1beta1 objects through the Kubernetes API (canaryd's own API
// client and credentials), as Flagger's query syntax names them (lower-cased, trimmed):
//   keptnmetric/<namespace>/<name>   GET the KeptnMetric, the value is status.value (a string);
//   analysis/<namespace>/<definition>[/<duration, default 1m>[/<k=v;k=v>]]
//       POST an Analysis {analysisDefinition.name, timeframe.recent, args} named
//       <definition>-<6 hex>, GET it every second until status.state is Completed (10 s at
//       most), then 1 if status.pass else 0, and DELETE it.
// A KeptnMetric without a value is an error, as in Flagger; a NaN value is no values (Flagger
// returns NaN, which passes every threshold). IsOnline asks the API server for the
// metrics.keptn.sh/v1beta1 group (Flagger answers true without asking).
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <random>

#include "daemon/metric_provider.hpp"
#include "k8s/api_client.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace provider_detail;

namespace {

constexpr const char* group_path = "/apis/metrics.keptn.sh/v1beta1";
constexpr std::chrono::seconds analysis_timeout{10};

struct keptn_query {
  bool analysis = false;
  std::string namespace_;
  std::string name;
  std::string duration = "1m";
  std::vector<std::pair<std::string, std::string>> args;
};

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (;;) {
    auto at = s.find(sep);
    out.emplace_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

boost::system::result<keptn_query, std::string> parse(std::string q) {
  for (auto& c : q) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!q.empty() && std::isspace(static_cast<unsigned char>(q.back()))) q.pop_back();
  auto first = q.find_first_not_of(" \t\r\n");
  q = first == std::string::npos ? "" : q.substr(first);
  auto parts = split(q, '/');
  if (parts.size() < 3) {
    return boost::system::result<keptn_query, std::string>(
        boost::system::in_place_error,
        "unexpected query format. query must be in the format "
        "<keptnmetric|analysis>/<namespace>/<resourceName>/<duration>/<arguments>");
  }
  keptn_query out;
  if (parts[0] == "analysis" || parts[0] == "analyses") {
    out.analysis = true;
    if (parts.size() >= 4) out.duration = parts[3];
    if (parts.size() >= 5) {
      for (const auto& kv : split(parts[4], ';')) {
        auto p = split(kv, '=');
        if (p.size() == 2) out.args.emplace_back(p[0], p[1]);
      }
    }
  } else if (parts[0] != "keptnmetric" && parts[0] != "keptnmetrics") {
    return boost::system::result<keptn_query, std::string>(
        boost::system::in_place_error,
        "unexpected resource kind provided in the query. must be one of: ['keptnmetric', 'analysis']");
  }
  out.namespace_ = parts[1];
  out.name = parts[2];
  return out;
}

class keptn_provider final : public metric_provider {
 public:
  explicit keptn_provider(provider_env& env) : env_(env) {}

  asio::awaitable<core::metric_observation> run_query(std::string query) override {
    auto q = parse(std::move(query));
    if (!q) co_return failed(q.error());
    if (q->analysis) co_return co_await run_analysis(*q);
    auto res = co_await env_.api()->request(
        "GET", fmt::format("{}/namespaces/{}/keptnmetrics/{}", group_path, q->namespace_, q->name));
    if (!res) co_return failed(fmt::format("could not retrieve KeptnMetric {}/{}: {}", q->namespace_, q->name, res.error().what()));
    boost::system::error_code ec;
    json::value doc = json::parse(res->body, ec);
    const json::value* v = ec ? nullptr : doc.find_pointer("/status/value", ec);
    if (!v || !v->is_string()) {
      co_return failed(fmt::format("could not retrieve KeptnMetric - no value found in resource {}/{}", q->namespace_, q->name));
    }
    std::string text(v->as_string());
    char* end = nullptr;
    double d = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size()) {
      co_return failed(fmt::format("could not parse value of KeptnMetric {}/{} to float: {}", q->namespace_, q->name, text));
    }
    co_return value(d);
  }

  asio::awaitable<std::string> is_online() override {
    auto res = co_await env_.api()->request("GET", group_path);
    if (!res) co_return fmt::format("metrics.keptn.sh/v1beta1 is not served: {}", res.error().what());
    co_return std::string();
  }

 private:
  asio::awaitable<core::metric_observation> run_analysis(const keptn_query& q) {
    static std::mt19937 rng{std::random_device{}()};
    const std::string name = fmt::format("{}-{:06x}", q.name, rng() & 0xffffff);
    json::object args;
    for (const auto& [k, v] : q.args) args[k] = v;
    json::object body{{"apiVersion", "metrics.keptn.sh/v1beta1"},
                      {"kind", "Analysis"},
                      {"metadata", json::object{{"name", name}, {"namespace", q.namespace_}}},
                      {"spec", json::object{{"analysisDefinition", json::object{{"name", q.name}}},
                                            {"timeframe", json::object{{"recent", q.duration}}},
                                            {"args", args}}}};
    const std::string collection = fmt::format("{}/namespaces/{}/analyses", group_path, q.namespace_);
    auto created = co_await env_.api()->request("POST", collection, json::serialize(body));
    if (!created) {
      co_return failed(fmt::format("could not create Keptn Analysis {}/{}: {}", q.namespace_, q.name, created.error().what()));
    }
    core::metric_observation out =
        failed(fmt::format("encountered timeout while waiting for Keptn Analysis {}/{} to be finished", q.namespace_, q.name));
    const auto deadline = std::chrono::steady_clock::now() + analysis_timeout;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (std::chrono::steady_clock::now() + std::chrono::seconds(1) <= deadline) {
      timer.expires_after(std::chrono::seconds(1));
      co_await timer.async_wait(asio::use_awaitable);
      auto got = co_await env_.api()->request("GET", collection + "/" + name);
      if (!got) {
        out = failed(fmt::format("could not check status of created Keptn Analysis {}/{}: {}", q.namespace_, q.name,
                                 got.error().what()));
        break;
      }
      boost::system::error_code ec;
      json::value doc = json::parse(got->body, ec);
      const json::value* state = ec ? nullptr : doc.find_pointer("/status/state", ec);
      if (!state || !state->is_string() || state->as_string() != "Completed") continue;
      const json::value* pass = doc.find_pointer("/status/pass", ec);
      if (!pass || !pass->is_bool()) continue;
      out = value(pass->as_bool() ? 1 : 0);
      break;
    }
    // Flagger deletes the Analysis whatever the outcome.
    (void)co_await env_.api()->request("DELETE", collection + "/" + name);
    co_return out;
  }

  provider_env& env_;
};

}  // namespace

provider_result make_keptn_provider(provider_env& env, const provider_config&) {
  if (!env.api()) return std::string("could not initialize KeptnProvider: no KubeConfig provided");
  return std::make_unique<keptn_provider>(env);
}

}  // namespace canaryd
