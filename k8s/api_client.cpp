#include "k8s/api_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "k8s/credentials.hpp"
#include "k8s/json_text.hpp"
#include "k8s/log.hpp"
#include "k8s/object_detail.hpp"
#include "k8s/rate_limiter.hpp"

namespace canaryd::k8s {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

void append_query(std::string& target, std::string_view key, std::string_view value) {
  target += target.find('?') == std::string::npos ? '?' : '&';
  target += key;
  target += '=';
  target += http::percent_encode(value);
}

// "https://host:port/prefix/" -> "/prefix" ("" when there is none).
std::string path_prefix(std::string_view server) {
  auto scheme = server.find("://");
  std::string_view rest = scheme == std::string_view::npos ? server : server.substr(scheme + 3);
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return {};
  std::string p(rest.substr(slash));
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

api_error with_request(api_error e, std::string_view description) {
  e.request = std::string(description);
  return e;
}

api_error cancelled_error(std::string_view description) {
  return with_request(transport_error(make_error_code(http::errc::cancelled)), description);
}

}  // namespace

std::string resource::path(std::string_view ns, std::string_view name, std::string_view subresource) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) {
    p += "/namespaces/";
    p += http::percent_encode(ns);
  }
  p += "/";
  p += plural;
  if (!name.empty()) {
    p += "/";
    p += http::percent_encode(name);
    if (!subresource.empty()) {
      p += "/";
      p += subresource;
    }
  }
  return p;
}

std::string_view content_type(patch_type t) noexcept {
  switch (t) {
    case patch_type::merge: return "application/merge-patch+json";
    case patch_type::json: return "application/json-patch+json";
    case patch_type::strategic: return "application/strategic-merge-patch+json";
    case patch_type::apply: return "application/apply-patch+yaml";
  }
  return "application/merge-patch+json";
}

struct api_client::impl {
  impl(asio::any_io_executor ex, double qps, int burst) : limiter(std::move(ex), qps, burst) {}
  http::origin origin;
  std::string prefix;
  std::string server;  // for messages
  std::unique_ptr<http::client> http;
  std::uint64_t http_tls_generation = 0;
  // Clients replaced after an exec plugin rotated the client certificate: open watch streams
  // may still use their connections, so they live on (a handful at most).
  std::vector<std::unique_ptr<http::client>> retired;
  rate_limiter limiter;
  simdjson::dom::parser parser;  // used without suspending between parse and use
};

api_client::api_client(asio::any_io_executor ex, api_client_options opts) : ex_(std::move(ex)), opts_(std::move(opts)) {}

api_client::~api_client() = default;

api_result<std::unique_ptr<api_client>> api_client::create(asio::any_io_executor ex, cluster_config cfg,
                                                           api_client_options opts) {
  auto origin = http::parse_origin(cfg.server);
  if (!origin) {
    api_error e = transport_error(make_error_code(http::errc::bad_config),
                                  fmt::format("server \"{}\" is not a valid URL", cfg.server));
    return e;
  }
  std::unique_ptr<api_client> c(new api_client(ex, std::move(opts)));
  c->impl_ = std::make_unique<impl>(ex, c->opts_.qps, c->opts_.burst);
  c->impl_->origin = *origin;
  c->impl_->prefix = path_prefix(cfg.server);
  c->impl_->server = cfg.server;
  while (!c->impl_->server.empty() && c->impl_->server.back() == '/') c->impl_->server.pop_back();
  c->creds_ = std::make_unique<credentials>(ex, std::move(cfg), c->opts_.exec_timeout);
  auto hc = c->http_client();
  if (!hc) return hc.error();
  return c;
}

const cluster_config& api_client::config() const noexcept { return creds_->config(); }

void api_client::shutdown() noexcept {
  shut_down_ = true;
  if (impl_->http) impl_->http->shutdown();
  for (auto& r : impl_->retired) r->shutdown();
}

api_result<http::client*> api_client::http_client() {
  if (impl_->http && impl_->http_tls_generation == creds_->tls_generation()) return impl_->http.get();
  http::client_options o;
  o.tls = creds_->tls();
  o.max_idle_connections = opts_.max_idle_connections;
  o.user_agent = opts_.user_agent;
  auto made = http::make_client(ex_, impl_->origin, o);
  if (!made) {
    return transport_error(made.error(), fmt::format("cannot set up TLS for {} ({}): {}", impl_->server,
                                                     config().source, made.error().message()));
  }
  if (impl_->http) {
    impl_->retired.push_back(std::move(impl_->http));
    if (impl_->retired.size() > 4) impl_->retired.erase(impl_->retired.begin());
  }
  impl_->http = std::move(*made);
  impl_->http_tls_generation = creds_->tls_generation();
  return impl_->http.get();
}

asio::awaitable<api_result<http::response>> api_client::execute(http::request req, std::string verb, bool idempotent,
                                                                std::string_view description) {
  const auto deadline = clock::now() + opts_.timeout;
  backoff bo(opts_.retry_backoff, opts_.random01);
  int attempts = 0;
  bool refreshed = false;
  std::optional<api_error> last;
  auto finish = [&](api_error e) {
    e = with_request(std::move(e), description);
    if (e.http_status == 401) {
      // Say whose credentials were refused: expired, revoked or meant for another cluster.
      e.message += (e.message.empty() ? "" : "; ") + ("rejected " + creds_->describe());
    }
    if (attempts > 1 && e.is_transport()) e.message += fmt::format(" (after {} attempts)", attempts);
    return e;
  };
  for (;;) {
    if (shut_down_) co_return cancelled_error(description);
    if (fence_ && !fence_(req)) {
      api_error e = cancelled_error(description);
      e.message = "fenced: this replica is not the leader";
      co_return e;
    }
    auto waited = impl_->limiter.throttled();
    auto ec = co_await impl_->limiter.acquire(deadline);
    if (impl_->limiter.throttled() != waited) ++stats_.throttled;
    if (ec) {
      if (last) co_return finish(std::move(*last));
      if (ec == http::errc::timeout) {
        co_return finish(transport_error(ec, "client-side rate limit: no token before the deadline"));
      }
      co_return cancelled_error(description);
    }
    auto auth = co_await creds_->authorization();
    if (!auth) co_return finish(auth.error());
    if (auth->empty()) {
      std::erase_if(req.headers, [](const http::header& h) { return h.name == "Authorization"; });
    } else {
      http::set_header(req.headers, "Authorization", *auth);
    }
    auto hc = http_client();
    if (!hc) co_return finish(hc.error());
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (remaining <= std::chrono::milliseconds(0)) {
      if (last) co_return finish(std::move(*last));
      co_return finish(transport_error(make_error_code(http::errc::timeout)));
    }
    ++attempts;
    if (attempts > 1) ++stats_.retries;
    http::request attempt = req;
    auto res = co_await (*hc)->send(std::move(attempt), remaining);

    bool retryable = false;
    std::chrono::milliseconds delay{0};
    if (!res) {
      ++stats_.requests[{verb, 0}];
      const auto err = res.error();
      if (err == http::errc::cancelled || err == asio::error::operation_aborted) co_return cancelled_error(description);
      last = transport_error(err);
      // A failed TLS handshake (wrong CA, bad client certificate) will not pass on a retry.
      retryable = (idempotent || err == http::errc::connect_failed) && err != http::errc::tls_failed;
      delay = bo.next();
    } else {
      const int status = res->status;
      ++stats_.requests[{verb, status}];
      if (status >= 200 && status < 300) co_return std::move(*res);
      last = decode_status(status, res->body, res->header("Retry-After"));
      if (status == 401 && !refreshed && creds_->invalidate()) {
        refreshed = true;
        ++stats_.auth_refreshes;
        --attempts;
        log::debug("401 from the API server; refreshing credentials", {{"request", description}});
        continue;
      }
      if (status == 429) {
        retryable = true;
      } else if (status >= 500 && status != 501) {
        retryable = idempotent;
      }
      if (last->retry_after_seconds > 0) {
        delay = std::min<std::chrono::milliseconds>(std::chrono::seconds(last->retry_after_seconds),
                                                    opts_.max_retry_after);
        // Only this request waits, as client-go's: pausing the whole client on each 429 made
        // every later request wait for the next pause to end, so under a steady share of 429s
        // the client moved in bursts a Retry-After apart and an analysis step waited seconds for
        // its writes (issue 11).
        if (status == 429) ++stats_.retry_after_waits;
      } else {
        delay = bo.next();
      }
    }
    if (!retryable || attempts >= opts_.max_attempts) co_return finish(std::move(*last));
    if (clock::now() + delay >= deadline) co_return finish(std::move(*last));
    log::debug("retrying API request",
               {{"request", description}, {"attempt", attempts}, {"delay_ms", static_cast<std::int64_t>(delay.count())},
                {"error", last->what()}});
    asio::steady_timer timer(ex_, delay);
    auto [wec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (wec) co_return cancelled_error(description);
  }
}

asio::awaitable<api_result<http::response>> api_client::request(std::string method, std::string target,
                                                                std::string body, std::string content_type,
                                                                std::string verb) {
  http::request req;
  req.method = std::move(method);
  req.target = impl_->prefix + target;
  req.body = std::move(body);
  http::set_header(req.headers, "Accept", "application/json");
  if (!req.body.empty()) http::set_header(req.headers, "Content-Type", std::move(content_type));
  if (verb.empty()) verb = req.method;
  const bool idempotent = req.method == "GET" || req.method == "HEAD" || req.method == "DELETE";
  const std::string description = req.method + " " + impl_->server + req.target;
  co_return co_await execute(std::move(req), std::move(verb), idempotent, description);
}

asio::awaitable<api_result<object>> api_client::object_call(std::string method, std::string target,
                                                            std::string_view body, std::string content_type,
                                                            std::string verb, bool idempotent) {
  http::request req;
  req.method = std::move(method);
  req.target = impl_->prefix + target;
  req.body = std::string(body);
  http::set_header(req.headers, "Accept", "application/json");
  if (!req.body.empty()) http::set_header(req.headers, "Content-Type", std::move(content_type));
  const std::string description = req.method + " " + impl_->server + req.target;
  auto res = co_await execute(std::move(req), std::move(verb), idempotent, description);
  if (!res) co_return res.error();
  auto obj = object::parse(res->body);
  if (!obj) {
    api_error e;
    e.code = api_errc::bad_response;
    e.http_status = res->status;
    e.message = "the response body is not a JSON object";
    co_return with_request(std::move(e), description);
  }
  co_return std::move(*obj);
}

asio::awaitable<api_result<object>> api_client::get(const resource& r, std::string_view ns, std::string_view name) {
  co_return co_await object_call("GET", r.path(ns, name), std::string_view(), std::string(), "GET", true);
}

asio::awaitable<api_result<object_list>> api_client::list(const resource& r, std::string_view ns,
                                                          const list_options& opts) {
  std::string target = r.path(ns);
  if (!opts.label_selector.empty()) append_query(target, "labelSelector", opts.label_selector);
  if (!opts.field_selector.empty()) append_query(target, "fieldSelector", opts.field_selector);
  if (opts.limit > 0) append_query(target, "limit", std::to_string(opts.limit));
  if (!opts.continue_token.empty()) append_query(target, "continue", opts.continue_token);
  if (!opts.resource_version.empty()) append_query(target, "resourceVersion", opts.resource_version);
  http::request req;
  req.method = "GET";
  req.target = impl_->prefix + target;
  http::set_header(req.headers, "Accept", "application/json");
  const std::string description = "LIST " + impl_->server + req.target;
  auto res = co_await execute(std::move(req), "LIST", true, description);
  if (!res) co_return res.error();

  auto bad = [&](std::string msg) {
    api_error e;
    e.code = api_errc::bad_response;
    e.http_status = res->status;
    e.message = std::move(msg);
    return with_request(std::move(e), description);
  };
  simdjson::padded_string padded(res->body);
  simdjson::dom::element doc;
  if (auto err = impl_->parser.parse(padded).get(doc); err != simdjson::SUCCESS) {
    co_return bad(fmt::format("the list is not JSON: {}", simdjson::error_message(err)));
  }
  simdjson::dom::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS) co_return bad("the list is not a JSON object");
  object_list out;
  std::string_view sv;
  if (root.at_pointer("/metadata/resourceVersion").get_string().get(sv) == simdjson::SUCCESS) {
    out.resource_version = std::string(sv);
  }
  if (root.at_pointer("/metadata/continue").get_string().get(sv) == simdjson::SUCCESS) {
    out.continue_token = std::string(sv);
  }
  std::int64_t remaining = 0;
  if (root.at_pointer("/metadata/remainingItemCount").get_int64().get(remaining) == simdjson::SUCCESS) {
    out.remaining_item_count = remaining;
  }
  // Items of built-in lists carry no apiVersion/kind; fill them in from the list's.
  std::string item_kind;
  if (root["kind"].get_string().get(sv) == simdjson::SUCCESS && sv.size() > 4 && sv.ends_with("List")) {
    item_kind = std::string(sv.substr(0, sv.size() - 4));
  }
  std::string api_version;
  if (root["apiVersion"].get_string().get(sv) == simdjson::SUCCESS) api_version = std::string(sv);
  simdjson::dom::element items;
  if (root["items"].get(items) == simdjson::SUCCESS && !items.is_null()) {
    simdjson::dom::array arr;
    if (items.get_array().get(arr) != simdjson::SUCCESS) co_return bad("the list's items is not an array");
    out.items.reserve(arr.size());
    for (auto item : arr) {
      auto o = detail::object_from_element(item, api_version, item_kind);
      if (!o) co_return bad("a list item is not a JSON object");
      out.items.push_back(std::move(*o));
    }
  }
  co_return out;
}

asio::awaitable<api_result<object_list>> api_client::list_all(const resource& r, std::string_view ns,
                                                              const list_options& opts, std::int64_t page_size) {
  list_options page = opts;
  page.limit = page_size;
  page.continue_token.clear();
  object_list all;
  bool first = true;
  for (;;) {
    auto res = co_await list(r, ns, page);
    if (!res) {
      if (is_gone(res.error()) && !page.continue_token.empty()) {
        // The continue token expired mid-way: one consistent list, unpaged.
        log::info("list continue token expired; listing without paging", {{"resource", r.plural}});
        list_options whole = opts;
        whole.limit = 0;
        whole.continue_token.clear();
        co_return co_await list(r, ns, whole);
      }
      co_return res.error();
    }
    if (first) {
      all.resource_version = res->resource_version;  // the snapshot the pages belong to
      first = false;
    }
    for (auto& o : res->items) all.items.push_back(std::move(o));
    if (res->continue_token.empty() || page_size <= 0) break;
    page.continue_token = std::move(res->continue_token);
    // The server serves later pages from the first page's snapshot.
    page.resource_version.clear();
  }
  co_return all;
}

asio::awaitable<api_result<object_list>> api_client::list(const resource& r, std::string_view ns) {
  const list_options none;
  co_return co_await list(r, ns, none);
}

asio::awaitable<api_result<object_list>> api_client::list_all(const resource& r, std::string_view ns) {
  const list_options none;
  co_return co_await list_all(r, ns, none);
}

asio::awaitable<api_result<object>> api_client::remove(const resource& r, std::string_view ns, std::string_view name) {
  const delete_options none;
  co_return co_await remove(r, ns, name, none);
}

asio::awaitable<api_result<object>> api_client::create(const resource& r, std::string_view ns, std::string_view body) {
  co_return co_await object_call("POST", r.path(ns), body, "application/json", "POST", false);
}

namespace {
// A PUT is safe to replay when it carries a resourceVersion: a replay either succeeds once or
// gets a 409, never a lost update.
bool has_resource_version(simdjson::dom::parser& parser, std::string_view body) {
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return false;
  std::string_view rv;
  return doc.at_pointer("/metadata/resourceVersion").get_string().get(rv) == simdjson::SUCCESS && !rv.empty();
}
}  // namespace

asio::awaitable<api_result<object>> api_client::update(const resource& r, std::string_view ns, std::string_view name,
                                                       std::string_view body) {
  const bool idempotent = has_resource_version(impl_->parser, body);
  co_return co_await object_call("PUT", r.path(ns, name), body, "application/json", "PUT", idempotent);
}

asio::awaitable<api_result<object>> api_client::update_status(const resource& r, std::string_view ns,
                                                              std::string_view name, std::string_view body) {
  const bool idempotent = has_resource_version(impl_->parser, body);
  co_return co_await object_call("PUT", r.path(ns, name, "status"), body, "application/json", "PUT", idempotent);
}

asio::awaitable<api_result<object>> api_client::patch(const resource& r, std::string_view ns, std::string_view name,
                                                      patch_type type, std::string_view body) {
  std::string target = r.path(ns, name);
  if (type == patch_type::apply) append_query(target, "fieldManager", opts_.field_manager);
  co_return co_await object_call("PATCH", std::move(target), body, std::string(content_type(type)), "PATCH", false);
}

asio::awaitable<api_result<object>> api_client::patch_status(const resource& r, std::string_view ns,
                                                             std::string_view name, patch_type type,
                                                             std::string_view body) {
  std::string target = r.path(ns, name, "status");
  if (type == patch_type::apply) append_query(target, "fieldManager", opts_.field_manager);
  co_return co_await object_call("PATCH", std::move(target), body, std::string(content_type(type)), "PATCH", false);
}

asio::awaitable<api_result<object>> api_client::remove(const resource& r, std::string_view ns, std::string_view name,
                                                       const delete_options& opts) {
  std::string target = r.path(ns, name);
  std::string policy;
  switch (opts.policy) {
    case propagation::unset: break;
    case propagation::background: policy = "Background"; break;
    case propagation::foreground: policy = "Foreground"; break;
    case propagation::orphan: policy = "Orphan"; break;
  }
  if (!policy.empty()) append_query(target, "propagationPolicy", policy);
  if (opts.grace_period_seconds) append_query(target, "gracePeriodSeconds", std::to_string(*opts.grace_period_seconds));
  std::string body;
  if (!opts.precondition_uid.empty() || !opts.precondition_resource_version.empty()) {
    body = "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\"";
    if (!policy.empty()) body += ",\"propagationPolicy\":\"" + policy + "\"";
    body += ",\"preconditions\":{";
    bool first = true;
    if (!opts.precondition_uid.empty()) {
      body += "\"uid\":";
      json_text::append_quoted(body, opts.precondition_uid);
      first = false;
    }
    if (!opts.precondition_resource_version.empty()) {
      if (!first) body += ",";
      body += "\"resourceVersion\":";
      json_text::append_quoted(body, opts.precondition_resource_version);
    }
    body += "}}";
  }
  co_return co_await object_call("DELETE", std::move(target), body, "application/json", "DELETE", true);
}

asio::awaitable<api_result<std::unique_ptr<http::body_stream>>> api_client::open_watch(const resource& r,
                                                                                       std::string_view ns,
                                                                                       const watch_params& p) {
  std::string target = impl_->prefix + r.path(ns);
  append_query(target, "watch", "1");
  if (!p.label_selector.empty()) append_query(target, "labelSelector", p.label_selector);
  if (!p.field_selector.empty()) append_query(target, "fieldSelector", p.field_selector);
  if (!p.resource_version.empty()) append_query(target, "resourceVersion", p.resource_version);
  if (p.allow_bookmarks) append_query(target, "allowWatchBookmarks", "true");
  if (p.timeout.count() > 0) append_query(target, "timeoutSeconds", std::to_string(p.timeout.count()));
  const std::string description = "WATCH " + impl_->server + target;
  const auto deadline = clock::now() + opts_.timeout;
  bool refreshed = false;
  for (;;) {
    if (shut_down_) co_return cancelled_error(description);
    auto ec = co_await impl_->limiter.acquire(deadline);
    if (ec) {
      if (ec == http::errc::timeout) {
        co_return with_request(transport_error(ec, "client-side rate limit: no token before the deadline"),
                               description);
      }
      co_return cancelled_error(description);
    }
    http::request req;
    req.method = "GET";
    req.target = target;
    http::set_header(req.headers, "Accept", "application/json");
    auto auth = co_await creds_->authorization();
    if (!auth) co_return with_request(auth.error(), description);
    if (!auth->empty()) http::set_header(req.headers, "Authorization", *auth);
    auto hc = http_client();
    if (!hc) co_return with_request(hc.error(), description);
    const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (remaining <= std::chrono::milliseconds(0)) {
      co_return with_request(transport_error(make_error_code(http::errc::timeout)), description);
    }
    auto stream = co_await (*hc)->open_stream(std::move(req), remaining);
    if (!stream) {
      ++stats_.requests[{"WATCH", 0}];
      if (stream.error() == http::errc::cancelled || stream.error() == asio::error::operation_aborted) {
        co_return cancelled_error(description);
      }
      co_return with_request(transport_error(stream.error()), description);
    }
    const int status = (*stream)->head().status;
    ++stats_.requests[{"WATCH", status}];
    if (status == 200) co_return std::move(*stream);
    // An error answer: read its (small) body for the Status, within the deadline.
    std::string body;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left <= std::chrono::milliseconds(0) || body.size() > (1u << 20)) break;
      auto piece = co_await (*stream)->read_some(left);
      if (!piece || piece->empty()) break;
      body += *piece;
    }
    auto retry_after = (*stream)->head().header("Retry-After");
    api_error e = decode_status(status, body, retry_after);
    (*stream)->close();
    if (status == 401 && !refreshed && creds_->invalidate()) {
      refreshed = true;
      ++stats_.auth_refreshes;
      continue;
    }
    if (status == 401) e.message += (e.message.empty() ? "" : "; ") + ("rejected " + creds_->describe());
    // The watcher waits out a 429's Retry-After before it opens the stream again (watch.cpp).
    if (status == 429 && e.retry_after_seconds > 0) ++stats_.retry_after_waits;
    co_return with_request(std::move(e), description);
  }
}

}  // namespace canaryd::k8s
