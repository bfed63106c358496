// The API client, watcher and cache against a small scripted API server on 127.0.0.1:0 in the
// same io_context (the real HTTP server, a fake Kubernetes API for one resource: configmaps in
// "default"). It makes failures exact and countable — 429 then success, two 500s then success,
// a 401 answered by re-reading the token file, a watch cut at a chosen moment, a compaction —
// which kubesim's random fault injection (k8s_kubesim_test.cpp) cannot.
//
// Test bodies are free coroutines; their state lives in the TEST_CASE frame, which outlives
// io.run().
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <deque>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"
#include "k8s/credentials.hpp"
#include "k8s/http_server.hpp"
#include "k8s/log.hpp"
#include "k8s/watch.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace k8s = canaryd::k8s;
namespace json = boost::json;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
const std::string collection = "/api/v1/namespaces/default/configmaps";
const k8s::resource configmaps{"", "v1", "configmaps", true};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

// ---------------------------------------------------------------------------------------------
// The fake API server.

struct fake_api {
  std::unique_ptr<http::server> server;
  std::string url;
  std::uint64_t rv = 100;
  std::map<std::string, json::object> objects;  // by name
  struct event {
    std::uint64_t rv;
    std::string type;
    std::string object;
  };
  std::vector<event> history;
  std::uint64_t compacted_before = 0;  // a watch from an older resourceVersion gets 410
  struct fault {
    int status;
    int retry_after = 0;
  };
  std::deque<fault> fail_next;  // answered to the next non-watch requests
  std::vector<std::string> log;  // "METHOD target"
  std::string required_token;    // empty: anonymous is fine
  bool silent_watches = false;   // watches send nothing (for the idle watchdog)
  int watches_opened = 0;
  int open_watches = 0;
  std::vector<std::string> watch_rvs;  // resourceVersion of each watch request

  static std::string status(int code, const std::string& reason, const std::string& message) {
    json::object s{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object{}},
                   {"status", "Failure"}, {"message", message}, {"reason", reason}, {"code", code}};
    return json::serialize(s);
  }

  void record(const std::string& type, const json::object& o) {
    history.push_back({rv, type, json::serialize(o)});
  }

  json::object& meta(json::object& o) { return o["metadata"].as_object(); }

  // Server-side writes, also used by tests to change the world behind the client's back.
  json::object put(const std::string& name, const std::string& value) {
    ++rv;
    auto it = objects.find(name);
    json::object o;
    if (it == objects.end()) {
      o = json::object{{"apiVersion", "v1"}, {"kind", "ConfigMap"},
                       {"metadata", json::object{{"name", name}, {"namespace", "default"},
                                                 {"uid", "uid-" + name + "-" + std::to_string(rv)}}}};
    } else {
      o = it->second;
    }
    meta(o)["resourceVersion"] = std::to_string(rv);
    o["data"] = json::object{{"v", value}};
    const bool existed = it != objects.end();
    objects[name] = o;
    record(existed ? "MODIFIED" : "ADDED", o);
    return o;
  }
  bool erase(const std::string& name) {
    auto it = objects.find(name);
    if (it == objects.end()) return false;
    ++rv;
    json::object o = it->second;
    meta(o)["resourceVersion"] = std::to_string(rv);
    objects.erase(it);
    record("DELETED", o);
    return true;
  }
  // History before now is gone: watching from an older resourceVersion gets 410.
  void compact() { compacted_before = rv; }
};

http::response json_response(int code, std::string body) {
  http::response r;
  r.status = code;
  r.headers.push_back({"Content-Type", "application/json"});
  r.body = std::move(body);
  return r;
}

bool matches(const json::object& o, std::string_view selector) {
  if (selector.empty()) return true;
  auto eq = selector.find('=');
  std::string k(selector.substr(0, eq)), v(selector.substr(eq + 1));
  auto* labels = o.at("metadata").as_object().if_contains("labels");
  if (!labels) return false;
  auto* val = labels->as_object().if_contains(k);
  return val && val->as_string() == v;
}

asio::awaitable<void> serve_watch(fake_api* api, http::target_parts parts, http::responder& out) {
  ++api->watches_opened;
  ++api->open_watches;
  struct dec {
    fake_api* a;
    ~dec() { --a->open_watches; }
  } guard{api};
  std::uint64_t from = 0;
  if (auto p = parts.param("resourceVersion"); p && !p->empty()) from = std::stoull(std::string(*p));
  api->watch_rvs.push_back(std::to_string(from));
  http::headers hs{{"Content-Type", "application/json"}};
  co_await out.begin_stream(200, std::move(hs));
  if (from != 0 && from < api->compacted_before) {
    auto ev = "{\"type\":\"ERROR\",\"object\":" + fake_api::status(410, "Expired", "too old resource version") + "}\n";
    co_await out.write_chunk(ev);
    co_await out.end_stream();
    co_return;
  }
  std::size_t next = 0;
  while (next < api->history.size() && api->history[next].rv <= from) ++next;
  for (;;) {
    if (out.closed()) co_return;
    if (!api->silent_watches) {
      while (next < api->history.size()) {
        const auto& e = api->history[next++];
        auto line = "{\"type\":\"" + e.type + "\",\"object\":" + e.object + "}\n";
        if (co_await out.write_chunk(line)) co_return;
      }
    }
    co_await (sleep_for(5ms) || out.wait_closed());
  }
}

asio::awaitable<void> serve(fake_api* api, const http::request& req, const http::peer_info&, http::responder& out) {
  api->log.push_back(req.method + " " + req.target);
  if (!api->required_token.empty() && req.header("Authorization").value_or("") != "Bearer " + api->required_token) {
    co_await out.send(json_response(401, fake_api::status(401, "Unauthorized", "Unauthorized")));
    co_return;
  }
  auto parts = http::split_target(req.target);
  const bool watch = parts.param("watch").value_or("") == "1";
  if (!watch && !api->fail_next.empty()) {
    auto f = api->fail_next.front();
    api->fail_next.pop_front();
    auto r = json_response(f.status, fake_api::status(f.status, f.status == 429 ? "TooManyRequests" : "InternalError",
                                                     "injected"));
    if (f.retry_after > 0) r.headers.push_back({"Retry-After", std::to_string(f.retry_after)});
    co_await out.send(std::move(r));
    co_return;
  }
  if (parts.path == collection && req.method == "GET") {
    if (watch) {
      co_await serve_watch(api, parts, out);
      co_return;
    }
    std::string selector(parts.param("labelSelector").value_or(""));
    std::int64_t limit = 0;
    if (auto l = parts.param("limit")) limit = std::stoll(std::string(*l));
    std::string after(parts.param("continue").value_or(""));
    json::array items;
    std::string next;
    for (const auto& [name, o] : api->objects) {
      if (!after.empty() && name <= after) continue;
      if (!matches(o, selector)) continue;
      if (limit > 0 && static_cast<std::int64_t>(items.size()) == limit) {
        next = items.back().at("metadata").at("name").as_string().c_str();
        break;
      }
      json::object item = o;
      item.erase("kind");  // built-in lists carry no kind per item
      item.erase("apiVersion");
      items.push_back(item);
    }
    json::object list{{"kind", "ConfigMapList"}, {"apiVersion", "v1"},
                      {"metadata", json::object{{"resourceVersion", std::to_string(api->rv)}}}, {"items", items}};
    if (!next.empty()) list["metadata"].as_object()["continue"] = next;
    co_await out.send(json_response(200, json::serialize(list)));
    co_return;
  }
  if (parts.path == collection && req.method == "POST") {
    auto body = json::parse(req.body).as_object();
    std::string name = body.at("metadata").at("name").as_string().c_str();
    if (api->objects.contains(name)) {
      co_await out.send(json_response(409, fake_api::status(409, "AlreadyExists", "configmaps \"" + name + "\" already exists")));
      co_return;
    }
    auto o = api->put(name, body["data"].as_object()["v"].as_string().c_str());
    co_await out.send(json_response(201, json::serialize(o)));
    co_return;
  }
  if (parts.path.rfind(collection + "/", 0) == 0) {
    std::string name = parts.path.substr(collection.size() + 1);
    auto it = api->objects.find(name);
    if (it == api->objects.end()) {
      co_await out.send(json_response(404, fake_api::status(404, "NotFound", "configmaps \"" + name + "\" not found")));
      co_return;
    }
    if (req.method == "GET") {
      co_await out.send(json_response(200, json::serialize(it->second)));
    } else if (req.method == "PUT") {
      auto body = json::parse(req.body).as_object();
      std::string want = body.at("metadata").at("resourceVersion").as_string().c_str();
      if (want != it->second.at("metadata").at("resourceVersion").as_string()) {
        co_await out.send(json_response(
            409, fake_api::status(409, "Conflict",
                                  "Operation cannot be fulfilled on configmaps \"" + name +
                                      "\": the object has been modified; please apply your changes to the latest "
                                      "version and try again")));
        co_return;
      }
      auto o = api->put(name, body["data"].as_object()["v"].as_string().c_str());
      co_await out.send(json_response(200, json::serialize(o)));
    } else if (req.method == "DELETE") {
      auto last = it->second;
      api->erase(name);
      co_await out.send(json_response(200, json::serialize(last)));
    } else {
      co_await out.send(json_response(405, fake_api::status(405, "MethodNotAllowed", "no")));
    }
    co_return;
  }
  co_await out.send(json_response(404, fake_api::status(404, "NotFound", "the server could not find the requested resource")));
}

void start(fake_api& api, asio::any_io_executor ex) {
  http::server_options o;
  o.listen = "127.0.0.1:0";
  fake_api* p = &api;
  auto s = http::start_server(ex, o, [p](const http::request& req, const http::peer_info& peer, http::responder& out) {
    return serve(p, req, peer, out);
  });
  REQUIRE(s.has_value());
  api.server = std::move(*s);
  api.url = "http://" + api.server->local_address();
}

k8s::api_client_options fast_options() {
  k8s::api_client_options o;
  o.timeout = 5s;
  o.retry_backoff = {10ms, 50ms, 2.0, 0.5};
  o.random01 = [] { return 0.5; };
  return o;
}

std::unique_ptr<k8s::api_client> make_client(asio::any_io_executor ex, const std::string& url,
                                             k8s::api_client_options o = fast_options(), k8s::cluster_config cfg = {}) {
  cfg.server = url;
  auto c = k8s::api_client::create(ex, cfg, std::move(o));
  REQUIRE(c.has_value());
  return std::move(*c);
}

template <class Body>
void run_io(asio::io_context& io, Body body, std::chrono::seconds limit = 30s) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(limit);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  if (failure) std::rethrow_exception(failure);
}

std::string cm(const std::string& name, const std::string& v, const std::string& rv = {}) {
  json::object meta{{"name", name}, {"namespace", "default"}};
  if (!rv.empty()) meta["resourceVersion"] = rv;
  return json::serialize(json::object{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", meta},
                                      {"data", json::object{{"v", v}}}});
}

std::uint64_t count(const k8s::request_stats& s, const std::string& verb, int code) {
  auto it = s.requests.find({verb, code});
  return it == s.requests.end() ? 0 : it->second;
}

// ---------------------------------------------------------------------------------------------

struct crud_state {
  bool created = false, got = false, conflict = false, exists = false, updated = false, deleted = false, gone = false;
  std::string conflict_text;
  std::size_t paged_items = 0;
  int pages = 0;
  std::size_t selected = 0;
  std::uint64_t connections = 0;
};

asio::awaitable<void> crud(fake_api* api, crud_state* st) {
  auto ex = co_await asio::this_coro::executor;
  start(*api, ex);
  auto c = make_client(ex, api->url);
  const std::string body = cm("a", "1");
  auto created = co_await c->create(configmaps, "default", body);
  REQUIRE_MESSAGE(created.has_value(), created.error().what());
  st->created = created->name() == "a" && created->namespace_name() == "default" && !created->uid().empty();
  auto again = co_await c->create(configmaps, "default", body);
  st->exists = !again.has_value() && k8s::is_already_exists(again.error());

  auto got = co_await c->get(configmaps, "default", "a");
  REQUIRE(got.has_value());
  st->got = got->resource_version() == created->resource_version() && got->kind() == "ConfigMap";

  const std::string stale = cm("a", "2", "1");
  auto conflict = co_await c->update(configmaps, "default", "a", stale);
  st->conflict = !conflict.has_value() && k8s::is_conflict(conflict.error());
  if (!conflict) st->conflict_text = conflict.error().what();

  const std::string fresh = cm("a", "2", created->resource_version());
  auto updated = co_await c->update(configmaps, "default", "a", fresh);
  st->updated = updated.has_value() && updated->resource_version() != created->resource_version();

  // Pagination: 7 objects, pages of 3.
  for (int i = 0; i < 6; ++i) {
    const std::string b = cm("p" + std::to_string(i), "x");
    auto r = co_await c->create(configmaps, "default", b);
    REQUIRE(r.has_value());
  }
  k8s::list_options lo;
  lo.limit = 3;
  for (;;) {
    auto page = co_await c->list(configmaps, "default", lo);
    REQUIRE(page.has_value());
    ++st->pages;
    st->paged_items += page->items.size();
    for (const auto& o : page->items) CHECK(o.kind() == "ConfigMap");  // filled in from the list kind
    if (page->continue_token.empty()) break;
    lo.continue_token = page->continue_token;
  }
  const k8s::list_options everything;
  auto all = co_await c->list_all(configmaps, "default", everything, 2);
  REQUIRE(all.has_value());
  CHECK(all->items.size() == 7);

  k8s::delete_options foreground;
  foreground.policy = k8s::propagation::foreground;
  auto del = co_await c->remove(configmaps, "default", "a", foreground);
  st->deleted = del.has_value();
  auto missing = co_await c->get(configmaps, "default", "a");
  st->gone = !missing.has_value() && k8s::is_not_found(missing.error());
  st->connections = api->server->accepted_connections();
  api->server->stop();
}

}  // namespace

TEST_CASE("CRUD over a loopback API: values for AlreadyExists, Conflict and NotFound; pagination") {
  canaryd::log::set_level(canaryd::log::level::warn);
  asio::io_context io;
  fake_api api;
  crud_state st;
  run_io(io, crud(&api, &st));
  CHECK(st.created);
  CHECK(st.exists);
  CHECK(st.got);
  CHECK(st.conflict);
  CHECK(st.updated);
  CHECK(st.pages == 3);
  CHECK(st.paged_items == 7);
  CHECK(st.deleted);
  CHECK(st.gone);
  CHECK(st.connections == 1);  // ~20 sequential requests over one keep-alive connection
  bool saw_policy = false;
  for (const auto& l : api.log) saw_policy |= l == "DELETE " + collection + "/a?propagationPolicy=Foreground";
  CHECK(saw_policy);
}

namespace {
struct retry_state {
  bool got_after_429 = false;
  long waited_ms = 0;
  bool got_after_500s = false;
  bool post_failed_once = false;
  bool post_throttled_ok = false;
  std::string refused;
  long refused_ms = 0;
  k8s::request_stats stats;
};

asio::awaitable<void> retries(fake_api* api, retry_state* st) {
  auto ex = co_await asio::this_coro::executor;
  start(*api, ex);
  api->put("x", "1");
  auto c = make_client(ex, api->url);

  api->fail_next = {{429, 1}};
  auto t0 = std::chrono::steady_clock::now();
  auto r = co_await c->get(configmaps, "default", "x");
  st->waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  st->got_after_429 = r.has_value();

  api->fail_next = {{500}, {503}};
  auto r2 = co_await c->get(configmaps, "default", "x");
  st->got_after_500s = r2.has_value();

  // POST is not idempotent: a 500 comes back at once; a 429 is retried (nothing was done).
  api->fail_next = {{500}};
  const std::string body = cm("y", "1");
  auto p = co_await c->create(configmaps, "default", body);
  st->post_failed_once = !p.has_value() && p.error().http_status == 500;
  api->fail_next = {{429}};
  auto p2 = co_await c->create(configmaps, "default", body);
  st->post_throttled_ok = p2.has_value();
  st->stats = c->stats();
  api->server->stop();

  // Nobody listening: retried (connect failures are always safe), then a one-line error.
  auto dead = make_client(ex, "http://127.0.0.1:" + std::to_string(canaryd::test::free_port()));
  t0 = std::chrono::steady_clock::now();
  auto refused = co_await dead->get(configmaps, "default", "x");
  st->refused_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE_FALSE(refused.has_value());
  st->refused = refused.error().what();
}
}  // namespace

TEST_CASE("retries: 429 after Retry-After on any verb, 5xx on GET only, connect failures, as counted") {
  canaryd::log::set_level(canaryd::log::level::warn);
  asio::io_context io;
  fake_api api;
  retry_state st;
  run_io(io, retries(&api, &st));
  CHECK(st.got_after_429);
  CHECK(st.waited_ms >= 950);  // Retry-After: 1
  CHECK(st.got_after_500s);
  CHECK(st.post_failed_once);
  CHECK(st.post_throttled_ok);
  CHECK(count(st.stats, "GET", 429) == 1);
  CHECK(count(st.stats, "GET", 500) == 1);
  CHECK(count(st.stats, "GET", 503) == 1);
  CHECK(count(st.stats, "GET", 200) == 2);
  CHECK(count(st.stats, "POST", 500) == 1);
  CHECK(count(st.stats, "POST", 429) == 1);
  CHECK(count(st.stats, "POST", 201) == 1);
  CHECK(st.stats.retry_after_waits == 1);
  CHECK(st.stats.retries == 4);
  INFO(st.refused);
  CHECK(st.refused.find("GET http://127.0.0.1:") == 0);
  CHECK(st.refused.find("connection failed (after 5 attempts)") != std::string::npos);
  CHECK(st.refused.find('\n') == std::string::npos);
  CHECK(st.refused_ms < 3000);
}

namespace {
struct auth_state {
  bool ok = false;
  std::uint64_t refreshes = 0;
  std::uint64_t unauthorized = 0;
  std::string expired;
};

asio::awaitable<void> token_rotation(fake_api* api, std::filesystem::path token_file, auth_state* st) {
  auto ex = co_await asio::this_coro::executor;
  start(*api, ex);
  api->put("x", "1");
  k8s::cluster_config cfg;
  cfg.token_file = token_file;
  auto c = make_client(ex, api->url, fast_options(), cfg);
  api->required_token = "old";
  auto first = co_await c->get(configmaps, "default", "x");
  REQUIRE(first.has_value());

  // Rotate the token in place with the same size and mtime: only a 401 reveals the change.
  struct stat before{};
  ::stat(token_file.c_str(), &before);
  {
    std::fstream f(token_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f << "new";
  }
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  ::utimensat(AT_FDCWD, token_file.c_str(), times, 0);
  api->required_token = "new";
  auto second = co_await c->get(configmaps, "default", "x");
  st->ok = second.has_value();
  st->refreshes = c->stats().auth_refreshes;
  st->unauthorized = count(c->stats(), "GET", 401);

  // A token the server no longer accepts at all: one retry, then a one-line 401.
  api->required_token = "other";
  auto denied = co_await c->get(configmaps, "default", "x");
  REQUIRE_FALSE(denied.has_value());
  st->expired = denied.error().what();
  api->server->stop();
}
}  // namespace

TEST_CASE("a 401 makes the client re-read its token file once and retry") {
  canaryd::log::set_level(canaryd::log::level::warn);
  canaryd::test::temp_dir d;
  {
    std::ofstream(d.path() / "token") << "old";
  }
  asio::io_context io;
  fake_api api;
  auth_state st;
  run_io(io, token_rotation(&api, d.path() / "token", &st));
  CHECK(st.ok);
  CHECK(st.refreshes == 1);
  CHECK(st.unauthorized == 1);
  CHECK(st.expired.find(": 401 Unauthorized: Unauthorized") != std::string::npos);
  CHECK(st.expired.find("; rejected the bearer token in ") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Watch and cache.

namespace {

struct recorder {
  std::vector<std::string> events;  // "added a 101"
  std::map<std::string, std::string> view;  // the consumer's view: name -> value
  int synced = 0;
  bool consistent = true;  // no add of a present key, no update/delete of an absent one
  void on(const k8s::watch_event& ev) {
    const auto& name = std::string(ev.object->name());
    events.push_back(std::string(k8s::to_string(ev.type)) + " " + name + " " + ev.object->resource_version());
    auto value = std::string(ev.object->to_value().at("data").at("v").as_string());
    switch (ev.type) {
      case k8s::event_type::added:
        if (view.contains(name)) consistent = false;
        view[name] = value;
        break;
      case k8s::event_type::modified:
        if (!view.contains(name)) consistent = false;
        view[name] = value;
        break;
      case k8s::event_type::deleted:
        if (!view.erase(name)) consistent = false;
        break;
    }
  }
};

std::map<std::string, std::string> server_view(const fake_api& api) {
  std::map<std::string, std::string> m;
  for (const auto& [name, o] : api.objects) m[name] = o.at("data").at("v").as_string().c_str();
  return m;
}

k8s::watch_options fast_watch() {
  k8s::watch_options o;
  o.res = configmaps;
  o.namespace_name = "default";
  o.retry = {10ms, 100ms, 2.0, 0.0};
  o.idle_timeout = 10s;
  o.min_healthy_stream = 0ms;
  return o;
}

// Waits until `pred` holds (polling the loop), at most `limit`.
template <class Pred>
asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    co_await sleep_for(5ms);
  }
  co_return true;
}

struct watch_state {
  bool synced_initial = false, saw_live = false, resumed = false, relisted = false, converged = false;
  k8s::watch_stats stats;
  std::vector<std::string> relist_events;
};

asio::awaitable<void> watch_scenario(fake_api* api, k8s::watcher* w, recorder* rec, watch_state* st) {
  auto ex = co_await asio::this_coro::executor;
  auto& client_events = rec->events;
  // Start the watch (it runs until stopped).
  asio::co_spawn(ex, w->run(), [](std::exception_ptr e) { REQUIRE(!e); });
  st->synced_initial = co_await eventually([&] { return rec->synced == 1 && rec->view.size() == 2; });

  api->put("c", "1");
  api->put("a", "2");
  st->saw_live = co_await eventually([&] { return rec->view == server_view(*api); });

  // Cut every stream, change the world while the client is disconnected, let it resume.
  for (int round = 0; round < 3; ++round) {
    api->server->drop_connections();
    for (int i = 0; i < 5; ++i) api->put("d" + std::to_string(round) + std::to_string(i), "x");
    api->erase("c");
    api->put("c", "again" + std::to_string(round));
    co_await sleep_for(30ms);
  }
  st->resumed = co_await eventually([&] { return rec->view == server_view(*api) && api->open_watches == 1; });

  // Compaction: the resume point is gone; the client relists and delivers only the difference.
  api->silent_watches = true;  // hold events back so the changes are seen by the relist only
  co_await sleep_for(20ms);
  api->erase("b");                 // deleted while away
  api->put("a", "3");              // modified while away
  api->put("z", "new");            // added while away
  api->compact();
  const auto before = client_events.size();
  api->silent_watches = false;
  api->server->drop_connections();
  st->relisted = co_await eventually([&] { return w->stats().relists_gone >= 1 && rec->view == server_view(*api); });
  st->relist_events.assign(client_events.begin() + static_cast<std::ptrdiff_t>(before), client_events.end());

  st->converged = co_await eventually([&] { return rec->view == server_view(*api); });
  st->stats = w->stats();
  w->stop();
  co_await sleep_for(20ms);
  api->server->stop();
}

}  // namespace

TEST_CASE("a watch resumes after cuts and relists after 410 without losing or duplicating an event") {
  canaryd::log::set_level(canaryd::log::level::warn);
  asio::io_context io;
  fake_api api;
  start(api, io.get_executor());
  api.put("a", "1");
  api.put("b", "1");
  auto client = make_client(io.get_executor(), api.url);
  recorder rec;
  k8s::watcher w(
      *client, fast_watch(), [&rec](const k8s::watch_event& ev) { rec.on(ev); }, [&rec] { ++rec.synced; });
  watch_state st;
  run_io(io, watch_scenario(&api, &w, &rec, &st));
  CHECK(st.synced_initial);
  CHECK(st.saw_live);
  CHECK(st.resumed);
  CHECK(st.relisted);
  CHECK(st.converged);
  CHECK(rec.consistent);
  CHECK(rec.synced == 1);
  // Each server change was delivered exactly once: events delivered == changes the client could
  // observe. Through the cuts every write is observed (resume from the last resourceVersion).
  // The relist shows exactly three events: b deleted, a modified, z added.
  std::vector<std::string> kinds;
  for (const auto& e : st.relist_events) kinds.push_back(e.substr(0, e.find(' ', e.find(' ') + 1)));
  std::sort(kinds.begin(), kinds.end());
  CHECK(kinds == std::vector<std::string>{"added z", "deleted b", "modified a"});
  // Every resume asked for the last resourceVersion it had seen, never 0 (which would replay).
  for (std::size_t i = 1; i < api.watch_rvs.size(); ++i) CHECK(api.watch_rvs[i] != "0");
  CHECK(st.stats.relists_gone == 1);
  CHECK(st.stats.lists == 2);
  CHECK(st.stats.streams >= 5);
  CHECK(st.stats.duplicates_dropped == 0);
  // Events before the compaction: 2 initial adds + c added, a modified + 3 rounds of
  // (5 adds + c deleted + c added) = 4 + 21 = 25; then 3 from the relist.
  CHECK(rec.events.size() == 28);
}

namespace {
asio::awaitable<void> idle_scenario(fake_api* api, k8s::watcher* w, recorder* rec, bool* restarted, bool* delivered) {
  auto ex = co_await asio::this_coro::executor;
  api->silent_watches = true;
  asio::co_spawn(ex, w->run(), [](std::exception_ptr e) { REQUIRE(!e); });
  *restarted = co_await eventually([&] { return w->stats().idle_restarts >= 2; }, 5s);
  api->silent_watches = false;
  api->put("late", "1");
  *delivered = co_await eventually([&] { return rec->view.contains("late"); });
  w->stop();
  co_await sleep_for(20ms);
  api->server->stop();
}
}  // namespace

TEST_CASE("the idle watchdog restarts a silent watch stream") {
  canaryd::log::set_level(canaryd::log::level::warn);
  asio::io_context io;
  fake_api api;
  start(api, io.get_executor());
  auto client = make_client(io.get_executor(), api.url);
  recorder rec;
  auto opts = fast_watch();
  opts.idle_timeout = 150ms;
  k8s::watcher w(*client, opts, [&rec](const k8s::watch_event& ev) { rec.on(ev); });
  bool restarted = false, delivered = false;
  run_io(io, idle_scenario(&api, &w, &rec, &restarted, &delivered));
  CHECK(restarted);
  CHECK(delivered);
  CHECK(w.stats().lists == 1);  // an idle restart resumes; it does not relist
}

namespace {
struct cache_state {
  bool synced = false;
  std::vector<std::string> calls;
  std::size_t late_replayed = 0;
  bool get_ok = false;
  std::size_t listed = 0;
};

asio::awaitable<void> cache_scenario(fake_api* api, k8s::cache* c, cache_state* st) {
  auto ex = co_await asio::this_coro::executor;
  c->subscribe({[st](const k8s::object_ptr& o) { st->calls.push_back("add " + std::string(o->name())); },
                [st](const k8s::object_ptr& old, const k8s::object_ptr& now) {
                  st->calls.push_back("update " + std::string(now->name()) + " " + old->resource_version() + "->" +
                                      now->resource_version());
                },
                [st](const k8s::object_ptr& o) { st->calls.push_back("delete " + std::string(o->name())); }});
  asio::co_spawn(ex, c->run(), [](std::exception_ptr e) { REQUIRE(!e); });
  st->synced = co_await c->wait_synced(5s);
  api->put("one", "2");
  api->erase("two");
  co_await eventually([&] { return c->size() == 1 && c->get("default", "one")->resource_version() == std::to_string(api->rv - 1); });
  auto one = c->get("default", "one");
  st->get_ok = one && one->to_value().at("data").at("v").as_string() == "2" && !c->get("default", "two");
  st->listed = c->list("default").size() + c->list("elsewhere").size();
  std::size_t replayed = 0;
  c->subscribe({[&replayed](const k8s::object_ptr&) { ++replayed; }, {}, {}});
  st->late_replayed = replayed;
  c->stop();
  co_await sleep_for(20ms);
  api->server->stop();
}
}  // namespace

TEST_CASE("a cache syncs, serves reads, calls handlers and replays its contents to late subscribers") {
  canaryd::log::set_level(canaryd::log::level::warn);
  asio::io_context io;
  fake_api api;
  start(api, io.get_executor());
  api.put("one", "1");
  api.put("two", "1");
  auto client = make_client(io.get_executor(), api.url);
  k8s::cache c(*client, fast_watch());
  cache_state st;
  run_io(io, cache_scenario(&api, &c, &st));
  CHECK(st.synced);
  CHECK(st.get_ok);
  CHECK(st.listed == 1);
  CHECK(st.late_replayed == 1);
  CHECK(st.calls == std::vector<std::string>{"add one", "add two", "update one 101->103", "delete two"});
}
