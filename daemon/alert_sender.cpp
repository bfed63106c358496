#include "daemon/alert_sender.hpp"
#include "daemon/outbound.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <string>

#include "core/alert_payload.hpp"
#include "core/alert_provider.hpp"
#include "core/message.hpp"
#include "daemon/metrics_registry.hpp"
#include "k8s/cache.hpp"
#include "k8s/config.hpp"
#include "k8s/http_client.hpp"
#include "k8s/log.hpp"

namespace canaryd {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Flagger's postMessage: context.WithTimeout(5 * time.Second).
constexpr std::chrono::milliseconds post_timeout{5'000};

// A notifier resolved for one alert: where to post, and the labels of its metrics.
struct resolved {
  core::alert_target target;
  std::string provider;  // "<name>.<namespace>" or "global"
};


}  // namespace

struct alert_sender::state {
  state(asio::any_io_executor e, k8s::cache& p, k8s::cache& s, const options& o, metrics_registry& m)
      : ex(std::move(e)),
        providers(p),
        secrets(s),
        opts(o),
        failures(m.counter("canaryd_alert_failures_total",
                           "Alerts that could not be delivered, by AlertProvider (name.namespace, or global) and type",
                           {"provider", "type"})),
        sent(m.counter("canaryd_alerts_sent_total", "Alerts delivered, by AlertProvider (name.namespace, or global) and type",
                       {"provider", "type"})) {}

  asio::any_io_executor ex;
  k8s::cache& providers;
  k8s::cache& secrets;
  const options& opts;
  metric_family& failures;
  metric_family& sent;
  std::optional<core::alert_target> global;  // -msteams-url or -slack-url, if usable
  std::set<http::client*> in_flight;          // closed by stop()
  bool stopped = false;
  std::function<void(const core::canary&, const std::string&)> on_failure;

  void fail(const core::canary& c, const std::string& provider, const std::string& type, const std::string& message) {
    failures.add({provider, type});
    log::error(fmt::format("alert can't be sent: {}", message), {{"canary", c.id()}, {"provider", provider}, {"type", type}});
    if (on_failure && !stopped) {
      on_failure(c, core::one_line(fmt::format("Alert to AlertProvider {} ({}) failed: {}", provider,
                                               type.empty() ? "unknown type" : type, message)));
    }
  }

  // The notifier of one canary alert, or the reason there is none (Flagger logs and skips it).
  boost::system::result<resolved, std::string> resolve(const core::canary& c, const core::canary_alert& a) const {
    const std::string ns = a.provider_ref.namespace_.empty() ? c.metadata.namespace_ : a.provider_ref.namespace_;
    resolved out;
    out.provider = fmt::format("{}.{}", a.provider_ref.name, ns);
    auto obj = providers.get(ns, a.provider_ref.name);
    if (!obj) return fmt::format("alert provider {} error: alertprovider {} not found", out.provider, a.provider_ref.name);
    auto dec = core::decode_alert_provider(obj->json());
    if (!dec.ok()) {
      return fmt::format("alert provider {} is invalid: {}", out.provider, dec.errors.front().text());
    }
    const core::alert_provider& p = dec.value;
    out.target.type = p.type;
    out.target.address = p.address;
    out.target.proxy = p.proxy;
    out.target.channel = p.effective_channel();
    out.target.username = p.effective_username();
    if (!p.secret_ref.empty()) {
      auto secret = secrets.get(ns, p.secret_ref);
      if (!secret) return fmt::format("alert provider {} secretRef error: secret {} not found", out.provider, p.secret_ref);
      auto address = k8s::secret_value(*secret, "address");
      if (!address)
        return fmt::format("alert provider {} secretRef error: secret {} does not contain an address", out.provider,
                           p.secret_ref);
      out.target.address = std::move(*address);
      if (auto token = k8s::secret_value(*secret, "token")) out.target.token = std::move(*token);
    }
    if (auto err = core::alert_target_error(out.target); !err.empty())
      return fmt::format("alert provider {}: {}", out.provider, err);
    return out;
  }
};

namespace {

// One POST within post_timeout; "" on a 2xx answer, else the error (Flagger's wording).
asio::awaitable<std::string> post_alert(std::shared_ptr<alert_sender::state> st, core::alert_target target,
                                        std::string body) {
  const std::string url = core::alert_post_url(target);
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) co_return fmt::format("invalid hook URL: {}", parsed.error().message());
  // Hook URLs carry their credential in the path (Slack, Discord, Teams): errors name only the
  // scheme and host, so logs do not leak what a secretRef hides. (Flagger logs the whole URL.)
  const std::string shown = fmt::format("{}://{}/...", std::string(parsed->scheme()), std::string(parsed->encoded_host_and_port()));
  http::request req;
  req.method = "POST";
  std::string path(parsed->encoded_path());
  req.target = path.empty() ? "/" : path;
  if (parsed->has_query()) req.target += "?" + std::string(parsed->encoded_query());
  http::client_options co;
  // The provider's proxy, else HTTP(S)_PROXY/NO_PROXY as Go's ProxyFromEnvironment.
  auto routed = route_outbound(url, target.proxy, co, req);
  if (!routed) co_return routed.error();
  const std::string origin_url = *routed;
  auto origin = http::parse_origin(origin_url);
  if (!origin) co_return fmt::format("invalid hook URL: {}", origin.error().message());
  http::set_header(req.headers, "Content-Type", "application/json");
  if (!target.token.empty() && target.type == "slack")
    http::set_header(req.headers, "Authorization", "Bearer " + target.token);
  req.body = std::move(body);

  co.max_idle_connections = 0;
  co.max_body_bytes = 1u << 20;
  co.user_agent = "flagger";
  auto client = http::make_client(st->ex, *origin, co);
  if (!client) co_return fmt::format("cannot post to {}: {}", shown, client.error().message());
  http::client* raw = client->get();
  st->in_flight.insert(raw);
  auto res = co_await raw->send(std::move(req), post_timeout);
  st->in_flight.erase(raw);
  raw->shutdown();
  if (!res) co_return fmt::format("postMessage failed: sending notification failed: Post \"{}\": {}", shown, res.error().message());
  if (res->status < 200 || res->status > 299) {
    // A chat service's error page is not a log line: its text, at most ~200 bytes, no markup.
    co_return fmt::format("postMessage failed: sending notification failed: HTTP {}: {}", res->status,
                          core::body_excerpt(res->body));
  }
  co_return std::string();
}

// Starts one post; its completion handler logs and counts the outcome.
void spawn_post(const std::shared_ptr<alert_sender::state>& st, const std::shared_ptr<const core::canary>& canary, resolved r,
                std::string body) {
  const std::string type = r.target.type;
  const std::string canary_id = canary->id();
  asio::co_spawn(st->ex, post_alert(st, std::move(r.target), std::move(body)),
                 [st, canary, canary_id, provider = std::move(r.provider), type](std::exception_ptr e, std::string err) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       err = fmt::format("internal error: {}", ex.what());
                     }
                   }
                   if (err.empty()) {
                     st->sent.add({provider, type});
                     log::debug("alert sent", {{"canary", canary_id}, {"provider", provider}, {"type", type}});
                     return;
                   }
                   if (st->stopped) {  // shutting down: the post was cut, not refused
                     log::debug(fmt::format("alert abandoned at shutdown: {}", err),
                                {{"canary", canary_id}, {"provider", provider}, {"type", type}});
                     return;
                   }
                   st->fail(*canary, provider, type, err);
                 });
}

}  // namespace

alert_sender::alert_sender(asio::any_io_executor ex, k8s::cache& alert_providers, k8s::cache& secrets,
                           const options& opts, metrics_registry& metrics)
    : state_(std::make_shared<state>(std::move(ex), alert_providers, secrets, opts, metrics)) {
  // Flagger's initNotifier: MS Teams replaces Slack when its URL is set; no URL, no notifier.
  core::alert_target g;
  if (!opts.msteams_url.empty()) {
    g.type = "msteams";
    g.address = opts.msteams_url;
    g.proxy = opts.msteams_proxy_url;
  } else if (!opts.slack_url.empty()) {
    g.type = "slack";
    g.address = opts.slack_url;
    g.token = opts.slack_token;
    g.proxy = opts.slack_proxy_url;
    g.channel = opts.slack_channel;
    g.username = opts.slack_user;
  } else {
    return;
  }
  if (auto err = core::alert_target_error(g); !err.empty()) {
    // As Flagger: logged at start, and alerts without providers then go nowhere.
    log::error(fmt::format("Notifier {}", err), {{"type", g.type}});
    return;
  }
  state_->global = std::move(g);
}

alert_sender::~alert_sender() { stop(); }

void alert_sender::send(const core::canary& c, const core::send_alert& a) {
  auto& st = state_;
  if (st->stopped) return;
  const std::string id = c.id();
  log::debug(fmt::format("alert: {}", a.message), {{"canary", id}, {"severity", core::to_string(a.severity)}});
  const auto fields = core::alert_message_fields(c, a, st->opts.cluster_name);
  const auto& alerts = c.analysis_or_empty().alerts;
  // What a failure's Event needs of the canary, shared by the posts of this alert.
  auto about = std::make_shared<core::canary>();
  about->api_version = c.api_version;
  about->metadata = c.metadata;
  about->status.phase = c.status.phase;
  if (alerts.empty()) {
    if (!st->global) return;
    resolved r{*st->global, "global"};
    std::string body = core::alert_payload(r.target, id, a.message, fields, a.severity);
    spawn_post(st, about, std::move(r), std::move(body));
    return;
  }
  for (const auto& al : alerts) {
    if (!core::alert_matches(al.severity, a.severity)) continue;
    auto r = st->resolve(c, al);
    if (!r) {
      const std::string ns = al.provider_ref.namespace_.empty() ? c.metadata.namespace_ : al.provider_ref.namespace_;
      st->fail(*about, fmt::format("{}.{}", al.provider_ref.name, ns), "unknown", r.error());
      continue;
    }
    std::string body = core::alert_payload(r->target, id, a.message, fields, a.severity);
    spawn_post(st, about, std::move(*r), std::move(body));
  }
}

void alert_sender::on_failure(std::function<void(const core::canary&, const std::string&)> f) {
  state_->on_failure = std::move(f);
}

void alert_sender::stop() {
  auto& st = state_;
  st->stopped = true;
  auto clients = st->in_flight;  // shutdown() completes sends, which erase themselves later
  for (auto* c : clients) c->shutdown();
}

}  // namespace canaryd
