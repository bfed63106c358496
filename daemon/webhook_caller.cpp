#include "daemon/webhook_caller.hpp"
#include "daemon/outbound.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <chrono>
#include <exception>

#include <fmt/format.h>

#include "core/message.hpp"
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
  http::client_options co;
  http::request req;
  std::string target(url->encoded_path());
  if (target.empty()) target = "/";
  req.target = target;
  if (url->has_query()) req.target += "?" + std::string(url->encoded_query());
  // HTTP(S)_PROXY/NO_PROXY, as Go's ProxyFromEnvironment in Flagger's webhook client.
  auto routed = route_outbound(hook.url, {}, co, req);
  if (!routed) {
    out.error = fmt::format("invalid webhook URL {}: {}", hook.url, routed.error());
    co_return out;
  }
  auto origin = http::parse_origin(*routed);
  if (!origin) {
    out.error = fmt::format("invalid webhook URL {}: {}", hook.url, origin.error().message());
    co_return out;
  }
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
  req.method = "POST";
  http::set_header(req.headers, "Content-Type", "application/json");
  req.body = json::serialize(payload);

  // go-retryablehttp's policy, as Flagger uses it: `retries` more attempts after a transport
  // error, a 429 or a 5xx other than 501, waiting 1 s, 2 s, 4 s ... (at most 30 s) between them.
  const int attempts = 1 + std::max(0, hook.retries);
  boost::asio::steady_timer pause(ex);
  std::chrono::seconds wait{1};
  for (int i = 0; i < attempts; ++i) {
    if (i > 0) {
      pause.expires_after(wait);
      co_await pause.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      wait = std::min<std::chrono::seconds>(wait * 2, std::chrono::seconds(30));
    }
    auto res = co_await (*client)->send(req, hook.effective_timeout());
    if (!res) {
      out.error = fmt::format("Post \"{}\": {}", hook.url, res.error().message());
      out.answered = false;
      continue;
    }
    out.answered = true;
    if (res->status >= 200 && res->status <= 202) {
      out.ok = true;
      out.error.clear();
      break;
    }
    // The status and at most ~200 bytes of the body's text, never its markup: a receiver's
    // HTML error page does not belong in an Event (core/message.hpp).
    const std::string excerpt = core::body_excerpt(res->body);
    out.error = excerpt.empty() ? fmt::format("HTTP {} from {}", res->status, core::url_host(hook.url))
                                : fmt::format("HTTP {} from {}: {}", res->status, core::url_host(hook.url), excerpt);
    const bool retryable = res->status == 429 || (res->status >= 500 && res->status != 501);
    if (!retryable) break;
  }
  (*client)->shutdown();
  co_return out;
}

void send_event_webhooks(boost::asio::any_io_executor ex, const core::canary& c, const core::canary_event& e,
                         const std::string& global_url) {
  std::vector<core::canary_webhook> hooks;
  for (const auto& h : c.analysis_or_empty().webhooks)
    if (h.type == core::webhook_type::event) hooks.push_back(h);
  if (hooks.empty() && !global_url.empty()) {
    core::canary_webhook h;
    h.name = "event-webhook";
    h.type = core::webhook_type::event;
    h.url = global_url;
    hooks.push_back(std::move(h));
  }
  if (hooks.empty()) return;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  for (auto& h : hooks) {
    h.metadata["eventMessage"] = e.message;
    h.metadata["eventType"] = e.type();
    h.metadata["timestamp"] = std::to_string(ms.count());
    // The coroutine owns copies of the canary and the hook: the caller's may be gone before it runs.
    auto send = [](boost::asio::any_io_executor ex, core::canary c, core::canary_webhook h) -> boost::asio::awaitable<void> {
      auto out = co_await call_webhook(ex, c, h, c.status.phase);
      if (!out.ok) log::warn(fmt::format("event webhook {} failed: {}", h.name, out.error), {{"canary", c.id()}});
    };
    boost::asio::co_spawn(ex, send(ex, c, std::move(h)), [id = c.id()](std::exception_ptr ep) {
      if (!ep) return;
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& ex) {
        log::error(fmt::format("event webhook task failed: {}", ex.what()), {{"canary", id}});
      }
    });
  }
}

}  // namespace canaryd
