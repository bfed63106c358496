#include "daemon/webhook_caller.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include "core/revision.hpp"
#include "k8s/http_client.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace json = boost::json;

boost::asio::awaitable<core::webhook_outcome> call_webhook(boost::asio::any_io_executor ex, const core::canary& c,
                                                           const core::canary_webhook& hook,
                                                           core::canary_phase phase) {
  core::webhook_outcome out;
  out.name = hook.name;
  auto url = boost::urls::parse_uri(hook.url);
  if (!url) {
    out.error = fmt::format("invalid webhook URL {}: {}", hook.url, url.error().message());
    co_return out;
  }
  auto origin = http::parse_origin(hook.url);
  if (!origin) {
    out.error = fmt::format("invalid webhook URL {}: {}", hook.url, origin.error().message());
    co_return out;
  }
  http::client_options co;
  co.tls.verify = !hook.disable_tls;
  co.max_idle_connections = 0;
  co.max_body_bytes = 1u << 20;
  co.user_agent = "flagger";
  auto client = http::make_client(ex, *origin, co);
  if (!client) {
    out.error = fmt::format("cannot call {}: {}", hook.url, client.error().message());
    co_return out;
  }

  json::object meta;
  for (const auto& [k, v] : hook.metadata) meta[k] = v;
  json::object payload{{"name", c.metadata.name},
                       {"namespace", c.metadata.namespace_},
                       {"phase", std::string(core::to_string(phase))},
                       {"checksum", core::webhook_checksum(c.status)},
                       {"metadata", std::move(meta)}};
  http::request req;
  req.method = "POST";
  std::string target(url->encoded_path());
  if (target.empty()) target = "/";
  if (url->has_query()) target += "?" + std::string(url->encoded_query());
  req.target = std::move(target);
  http::set_header(req.headers, "Content-Type", "application/json");
  req.body = json::serialize(payload);

  const int attempts = 1 + std::max(0, hook.retries);
  for (int i = 0; i < attempts; ++i) {
    auto res = co_await (*client)->send(req, hook.effective_timeout());
    if (!res) {
      out.error = fmt::format("Post \"{}\": {}", hook.url, res.error().message());
      continue;
    }
    if (res->status >= 200 && res->status <= 202) {
      out.ok = true;
      out.error.clear();
      break;
    }
    out.error = res->body.empty() ? fmt::format("{} returned HTTP {}", hook.url, res->status) : res->body;
    if (res->status < 500) break;
  }
  (*client)->shutdown();
  co_return out;
}

}  // namespace canaryd
