// The HTTP/1.1 + TLS layer against a real server on 127.0.0.1:0 in the same io_context.
// Each test case runs a fresh io_context to completion; the test bodies are free coroutines
// (no capturing coroutine lambdas), and their shared state lives in the TEST_CASE frame, which
// outlives io.run().
#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "k8s/http_client.hpp"
#include "k8s/http_server.hpp"
#include "k8s/log.hpp"
#include "k8s/tls_cert.hpp"
#include "k8s/tls_context.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace tls = canaryd::tls;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_tuple);
}

// Runs `body` on a fresh io_context until every coroutine (the server's too) has finished.
void run_io(std::function<asio::awaitable<void>(asio::any_io_executor)> body,
            std::chrono::seconds limit = 30s) {
  asio::io_context io;
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, body(io.get_executor()), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(limit);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  CHECK_MESSAGE(io.stopped(), "coroutines were still running after the test body ended");
  if (failure) std::rethrow_exception(failure);
}

// Reads until the peer closes (or `limit` passes) and returns everything read.
template <class Stream>
asio::awaitable<std::string> read_all(Stream& s, std::chrono::milliseconds limit) {
  std::string out;
  asio::steady_timer deadline(co_await asio::this_coro::executor, limit);
  for (;;) {
    char buf[4096];
    auto r = co_await (s.async_read_some(asio::buffer(buf), use_tuple) || deadline.async_wait(use_tuple));
    if (r.index() == 1) break;
    auto [ec, n] = std::get<0>(r);
    out.append(buf, n);
    if (ec) break;
  }
  co_return out;
}

// Sends raw bytes on a new plain connection and returns all the server answered before closing.
asio::awaitable<std::string> raw_exchange(unsigned short port, std::string bytes,
                                          std::chrono::milliseconds limit = 5s) {
  tcp::socket s(co_await asio::this_coro::executor);
  auto [cec] = co_await s.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), use_tuple);
  REQUIRE(!cec);
  auto [wec, wn] = co_await asio::async_write(s, asio::buffer(bytes), use_tuple);
  REQUIRE(!wec);
  co_return co_await read_all(s, limit);
}

http::server_options plain_options() {
  http::server_options o;
  o.listen = "127.0.0.1:0";
  return o;
}

// Echo: method, target, body and a header the client sent.
asio::awaitable<void> echo_handler(const http::request& req, const http::peer_info& peer, http::responder& out) {
  http::response res;
  res.headers.push_back(http::header{"Content-Type", "text/plain"});
  res.headers.push_back(http::header{"X-Peer-Tls", peer.tls ? "yes" : "no"});
  res.body = req.method + " " + req.target + " " + std::string(req.header("X-Test").value_or("-")) + " " + req.body;
  co_await out.send(std::move(res));
}

struct server_test_state {
  std::string answer_get, answer_bad, answer_big, answer_throw, answer_silent, answer_after;
  std::string listen_error;
};

asio::awaitable<void> server_answers_raw_requests(asio::any_io_executor ex, server_test_state& st) {
  auto opts = plain_options();
  opts.max_body_bytes = 1024;
  http::handler h = [](const http::request& req, const http::peer_info& peer,
                       http::responder& out) -> asio::awaitable<void> {
    if (req.target == "/throw") throw std::runtime_error("handler bug");
    if (req.target == "/silent") co_return;
    co_await echo_handler(req, peer, out);
  };
  auto srv = http::start_server(ex, opts, h);
  REQUIRE(srv.has_value());
  auto port = (*srv)->port();
  CHECK((*srv)->local_address() == "127.0.0.1:" + std::to_string(port));

  st.answer_get = co_await raw_exchange(
      port, "POST /things?x=1 HTTP/1.1\r\nHost: a\r\nX-Test: hi\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
  st.answer_bad = co_await raw_exchange(port, "THIS IS NOT HTTP\r\n\r\n");
  st.answer_big = co_await raw_exchange(
      port, "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x'));
  st.answer_throw = co_await raw_exchange(port, "GET /throw HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  st.answer_silent = co_await raw_exchange(port, "GET /silent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  st.answer_after = co_await raw_exchange(port, "GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");

  // A second server on the same port fails as a value.
  auto again = plain_options();
  again.listen = "127.0.0.1:" + std::to_string(port);
  auto clash = http::start_server(ex, again, h);
  CHECK(!clash);
  if (!clash) st.listen_error = clash.error().message();
  (*srv)->stop();
  (*srv)->stop();  // idempotent
}

bool starts_with(const std::string& s, std::string_view p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

TEST_CASE("the server answers requests, rejects bad and oversize ones, and survives handler failures") {
  canaryd::log::set_level(canaryd::log::level::error);
  server_test_state st;
  run_io([&st](asio::any_io_executor ex) { return server_answers_raw_requests(ex, st); });
  CHECK(starts_with(st.answer_get, "HTTP/1.1 200 OK\r\n"));
  CHECK(ends_with(st.answer_get, "\r\n\r\nPOST /things?x=1 hi hello"));
  CHECK(st.answer_get.find("X-Peer-Tls: no") != std::string::npos);
  CHECK(starts_with(st.answer_bad, "HTTP/1.1 400 "));
  CHECK(starts_with(st.answer_big, "HTTP/1.1 413 "));
  CHECK(starts_with(st.answer_throw, "HTTP/1.1 500 "));
  CHECK(starts_with(st.answer_silent, "HTTP/1.1 500 "));
  CHECK(ends_with(st.answer_after, "GET /after - "));
  CHECK(!st.listen_error.empty());
}

TEST_CASE("listen addresses: IPv4, IPv6 in brackets, an empty host, and nonsense") {
  run_io([](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto h = http::handler(echo_handler);
    const std::vector<std::string> good = {"127.0.0.1:0", "[::1]:0", ":0", "localhost:0"};
    for (const auto& listen : good) {
      http::server_options o;
      o.listen = listen;
      auto s = http::start_server(ex, o, h);
      if (!s && listen == "[::1]:0") continue;  // no IPv6 loopback on this machine
      REQUIRE_MESSAGE(s.has_value(), listen);
      CHECK((*s)->port() != 0);
      if (listen == "[::1]:0") CHECK(starts_with((*s)->local_address(), "[::1]:"));
      (*s)->stop();
    }
    const std::vector<std::string> bad = {"", "127.0.0.1", "127.0.0.1:99999", "nohost.invalid:80", "1.2.3.4:x"};
    for (const auto& listen : bad) {
      http::server_options o;
      o.listen = listen;
      auto s = http::start_server(ex, o, h);
      CHECK_MESSAGE(!s, listen);
    }
    co_return;
  });
}

namespace {

struct tls_test_state {
  tls::key_pair ca, server, client;
  std::string with_cert, without_cert;
  bool wrong_ca_failed = false;
};

asio::awaitable<std::string> tls_raw_get(unsigned short port, http::tls_client_config cfg, bool* handshake_failed) {
  auto ctx = http::make_client_context(cfg);
  REQUIRE(ctx.has_value());
  asio::ssl::stream<tcp::socket> s(co_await asio::this_coro::executor, *ctx);
  REQUIRE(!http::set_client_identity(s.native_handle(), "127.0.0.1", cfg.verify));
  auto [cec] = co_await s.next_layer().async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), use_tuple);
  REQUIRE(!cec);
  auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (handshake_failed) *handshake_failed = static_cast<bool>(hec);
  if (hec) co_return std::string();
  std::string req = "GET /who HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  auto [wec, wn] = co_await asio::async_write(s, asio::buffer(req), use_tuple);
  REQUIRE(!wec);
  co_return co_await read_all(s, 5s);
}

asio::awaitable<void> who_handler(const http::request&, const http::peer_info& peer, http::responder& out) {
  http::response res;
  res.body = std::string(peer.tls ? "tls " : "plain ") + peer.cert_common_name.value_or("<none>");
  for (const auto& o : peer.cert_organizations) res.body += " " + o;
  co_await out.send(std::move(res));
}

asio::awaitable<void> tls_server_sees_client_certs(asio::any_io_executor ex, tls_test_state& st) {
  http::server_options o;
  o.tls = http::tls_server_config{st.server.cert_pem, st.server.key_pem, st.ca.cert_pem};
  auto srv = http::start_server(ex, o, http::handler(who_handler));
  REQUIRE(srv.has_value());
  http::tls_client_config with;
  with.ca_pem = st.ca.cert_pem;
  with.cert_pem = st.client.cert_pem;
  with.key_pem = st.client.key_pem;
  st.with_cert = co_await tls_raw_get((*srv)->port(), with, nullptr);
  http::tls_client_config without;
  without.ca_pem = st.ca.cert_pem;
  st.without_cert = co_await tls_raw_get((*srv)->port(), without, nullptr);
  auto other_ca = tls::make_ca("other");
  REQUIRE(other_ca.has_value());
  http::tls_client_config wrong;
  wrong.ca_pem = other_ca->cert_pem;
  co_await tls_raw_get((*srv)->port(), wrong, &st.wrong_ca_failed);
  (*srv)->stop();
}

}  // namespace

TEST_CASE("a TLS server reports the verified client certificate's CN and O, and serves clients without one") {
  canaryd::log::set_level(canaryd::log::level::error);
  tls_test_state st;
  auto ca = tls::make_ca("test-ca");
  REQUIRE(ca.has_value());
  st.ca = *ca;
  tls::leaf_options so;
  so.common_name = "server";
  so.ip_addresses = {"127.0.0.1"};
  so.dns_names = {"localhost"};
  auto server = tls::make_leaf(st.ca, so);
  REQUIRE(server.has_value());
  st.server = *server;
  tls::leaf_options co;
  co.common_name = "alice";
  co.organizations = {"system:masters", "dev"};
  co.server = false;
  co.client = true;
  auto client = tls::make_leaf(st.ca, co);
  REQUIRE(client.has_value());
  st.client = *client;

  run_io([&st](asio::any_io_executor ex) { return tls_server_sees_client_certs(ex, st); });
  CHECK(starts_with(st.with_cert, "HTTP/1.1 200 OK"));
  CHECK(ends_with(st.with_cert, "\r\n\r\ntls alice system:masters dev"));
  CHECK(ends_with(st.without_cert, "\r\n\r\ntls <none>"));
  CHECK(st.wrong_ca_failed);
}

TEST_CASE("certificate generation rejects unusable input as values") {
  canaryd::log::set_level(canaryd::log::level::error);
  CHECK(!tls::make_ca(""));
  auto ca = tls::make_ca("ca");
  REQUIRE(ca.has_value());
  CHECK(ca->cert_pem.find("-----BEGIN CERTIFICATE-----") == 0);
  CHECK(ca->key_pem.find("-----BEGIN PRIVATE KEY-----") == 0);
  tls::leaf_options bad_ip;
  bad_ip.common_name = "x";
  bad_ip.ip_addresses = {"300.1.1.1"};
  CHECK(!tls::make_leaf(*ca, bad_ip));
  tls::leaf_options injected;
  injected.dns_names = {"a,IP:1.2.3.4"};
  CHECK(!tls::make_leaf(*ca, injected));
  tls::leaf_options empty;
  CHECK(!tls::make_leaf(*ca, empty));
  tls::key_pair garbage{"not a cert", "not a key"};
  tls::leaf_options fine;
  fine.common_name = "x";
  CHECK(!tls::make_leaf(garbage, fine));
  auto other = tls::make_ca("other");
  REQUIRE(other.has_value());
  tls::key_pair mismatched{ca->cert_pem, other->key_pem};
  CHECK(!tls::make_leaf(mismatched, fine));
  CHECK(tls::make_leaf(*ca, fine).has_value());
}

// ---------------------------------------------------------------------------------------------
// The client against the server.

namespace {

using steady = std::chrono::steady_clock;

http::request make_request(std::string method, std::string target, std::string body = {}) {
  http::request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}

std::unique_ptr<http::client> plain_client(asio::any_io_executor ex, const http::server& srv,
                                           http::client_options opts = {}) {
  auto o = http::parse_origin("http://" + srv.local_address());
  REQUIRE(o.has_value());
  auto c = http::make_client(ex, *o, std::move(opts));
  REQUIRE(c.has_value());
  return std::move(*c);
}

long ms_since(steady::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count());
}

struct client_state {
  std::vector<std::string> seen_headers;
  int requests = 0;
};

asio::awaitable<void> round_trips_and_keep_alive(asio::any_io_executor ex, client_state& st) {
  http::handler h = [&st](const http::request& req, const http::peer_info&,
                          http::responder& out) -> asio::awaitable<void> {
    ++st.requests;
    st.seen_headers.push_back(std::string(req.header("Host").value_or("")) + "|" +
                              std::string(req.header("User-Agent").value_or("")) + "|" +
                              std::string(req.header("Content-Length").value_or("-")));
    http::response res;
    res.status = req.target == "/created" ? 201 : 200;
    res.headers.push_back(http::header{"X-Echo-Method", req.method});
    res.body = req.body.empty() ? req.target : req.body;
    co_await out.send(std::move(res));
  };
  auto srv = http::start_server(ex, plain_options(), h);
  REQUIRE(srv.has_value());
  http::client_options co;
  co.user_agent = "canaryd-test/1";
  auto c = plain_client(ex, **srv, co);

  auto get = co_await c->send(make_request("GET", "/a?b=c"), 2s);
  REQUIRE(get.has_value());
  CHECK(get->status == 200);
  CHECK(get->body == "/a?b=c");
  CHECK(get->header("X-Echo-Method") == std::optional<std::string_view>("GET"));

  auto post = co_await c->send(make_request("POST", "/created", R"({"x":1})"), 2s);
  REQUIRE(post.has_value());
  CHECK(post->status == 201);
  CHECK(post->body == R"({"x":1})");

  auto empty_post = co_await c->send(make_request("POST", "/e"), 2s);
  REQUIRE(empty_post.has_value());

  auto head = co_await c->send(make_request("HEAD", "/head"), 2s);
  REQUIRE(head.has_value());
  CHECK(head->status == 200);
  CHECK(head->body.empty());
  CHECK(head->header("Content-Length") == std::optional<std::string_view>("5"));

  for (int i = 0; i < 5; ++i) {
    auto r = co_await c->send(make_request("GET", "/again"), 2s);
    REQUIRE(r.has_value());
  }
  CHECK((*srv)->accepted_connections() == 1);  // one keep-alive connection for all nine requests

  // Concurrent requests need connections of their own; afterwards at most max_idle stay open.
  http::client_options two;
  two.max_idle_connections = 2;
  auto c2 = plain_client(ex, **srv, two);
  auto r = co_await (c2->send(make_request("GET", "/p1"), 2s) && c2->send(make_request("GET", "/p2"), 2s) &&
                     c2->send(make_request("GET", "/p3"), 2s));
  CHECK(std::get<0>(r).has_value());
  CHECK(std::get<2>(r).has_value());
  CHECK((*srv)->accepted_connections() == 4);
  co_await sleep_for(50ms);
  CHECK((*srv)->open_connections() == 3);  // c's one, and c2's two idle ones
  c2->shutdown();
  auto after = co_await c2->send(make_request("GET", "/late"), 2s);
  CHECK(after.error() == http::errc::cancelled);
  co_await sleep_for(50ms);
  CHECK((*srv)->open_connections() == 1);
  (*srv)->stop();
}

}  // namespace

TEST_CASE("the client round-trips GET, POST and HEAD and reuses one keep-alive connection") {
  canaryd::log::set_level(canaryd::log::level::error);
  client_state st;
  run_io([&st](asio::any_io_executor ex) { return round_trips_and_keep_alive(ex, st); });
  REQUIRE(st.seen_headers.size() >= 3);
  CHECK(st.seen_headers[0].rfind("127.0.0.1:", 0) == 0);
  CHECK(st.seen_headers[0].find("|canaryd-test/1|-") != std::string::npos);  // no length on a GET
  CHECK(st.seen_headers[1].find("|canaryd-test/1|7") != std::string::npos);
  CHECK(st.seen_headers[2].find("|canaryd-test/1|0") != std::string::npos);  // POST without body
}

namespace {

asio::awaitable<void> limits(asio::any_io_executor ex) {
  http::handler h = [](const http::request& req, const http::peer_info&,
                       http::responder& out) -> asio::awaitable<void> {
    http::response res;
    res.body = std::string(req.target == "/big" ? 5000 : 10, 'y');
    co_await out.send(std::move(res));
  };
  auto opts = plain_options();
  opts.max_body_bytes = 1024;
  auto srv = http::start_server(ex, opts, h);
  REQUIRE(srv.has_value());
  http::client_options co;
  co.max_body_bytes = 1000;
  auto c = plain_client(ex, **srv, co);
  auto too_big = co_await c->send(make_request("POST", "/up", std::string(200'000, 'x')), 3s);
  REQUIRE(too_big.has_value());
  CHECK(too_big->status == 413);
  auto fine = co_await c->send(make_request("POST", "/up", std::string(1000, 'x')), 3s);
  REQUIRE(fine.has_value());
  CHECK(fine->status == 200);
  auto big_answer = co_await c->send(make_request("GET", "/big"), 3s);
  CHECK(big_answer.error() == http::errc::body_too_large);
  auto bad = co_await c->send(make_request("GET", "/x\r\nInjected: 1"), 3s);
  CHECK(bad.error() == http::errc::bad_config);
  auto bad_header = make_request("GET", "/x");
  bad_header.headers.push_back(http::header{"X-A", "1\r\nInjected: 1"});
  auto bad2 = co_await c->send(std::move(bad_header), 3s);
  CHECK(bad2.error() == http::errc::bad_config);
  (*srv)->stop();
}

}  // namespace

TEST_CASE("body limits: the server answers 413, the client refuses a response over its limit") {
  canaryd::log::set_level(canaryd::log::level::error);
  run_io(limits);
}

namespace {

struct tls_client_state {
  tls::key_pair ca, server, client, other_ca, localhost_only;
};

asio::awaitable<std::string> tls_get(asio::any_io_executor ex, unsigned short port, http::tls_client_config cfg,
                                     http::errc* failure) {
  http::origin o;
  o.scheme = "https";
  o.host = "127.0.0.1";
  o.port = std::to_string(port);
  http::client_options co;
  co.tls = std::move(cfg);
  auto c = http::make_client(ex, o, co);
  REQUIRE(c.has_value());
  auto r = co_await (*c)->send(make_request("GET", "/who"), 3s);
  if (!r) {
    if (failure) *failure = static_cast<http::errc>(r.error().value());
    CHECK(r.error().category() == http::category());
    co_return std::string();
  }
  co_return r->body;
}

asio::awaitable<void> tls_client(asio::any_io_executor ex, tls_client_state& st) {
  http::server_options so;
  so.tls = http::tls_server_config{st.server.cert_pem, st.server.key_pem, st.ca.cert_pem};
  auto srv = http::start_server(ex, so, http::handler(who_handler));
  REQUIRE(srv.has_value());
  const auto port = (*srv)->port();

  http::tls_client_config good;
  good.ca_pem = st.ca.cert_pem;
  CHECK(co_await tls_get(ex, port, good, nullptr) == "tls <none>");

  http::tls_client_config with_cert = good;
  with_cert.cert_pem = st.client.cert_pem;
  with_cert.key_pem = st.client.key_pem;
  CHECK(co_await tls_get(ex, port, with_cert, nullptr) == "tls alice system:masters dev");

  http::tls_client_config wrong;
  wrong.ca_pem = st.other_ca.cert_pem;
  http::errc e{};
  CHECK(co_await tls_get(ex, port, wrong, &e) == "");
  CHECK(e == http::errc::tls_failed);

  http::tls_client_config skip = wrong;
  skip.verify = false;
  CHECK(co_await tls_get(ex, port, skip, nullptr) == "tls <none>");

  // The system store does not trust our CA.
  http::tls_client_config system_store;
  e = {};
  CHECK(co_await tls_get(ex, port, system_store, &e) == "");
  CHECK(e == http::errc::tls_failed);

  // Name checks: a certificate for "localhost" only does not match 127.0.0.1 ...
  http::server_options lo;
  lo.tls = http::tls_server_config{st.localhost_only.cert_pem, st.localhost_only.key_pem, ""};
  auto srv2 = http::start_server(ex, lo, http::handler(who_handler));
  REQUIRE(srv2.has_value());
  e = {};
  CHECK(co_await tls_get(ex, (*srv2)->port(), good, &e) == "");
  CHECK(e == http::errc::tls_failed);
  // ... unless the configuration names the server (kubeconfig tls-server-name).
  http::tls_client_config named = good;
  named.server_name = "localhost";
  CHECK(co_await tls_get(ex, (*srv2)->port(), named, nullptr) == "tls <none>");

  // Unusable TLS material is a value at construction.
  http::client_options broken;
  broken.tls.ca_pem = "garbage";
  http::origin o;
  o.scheme = "https";
  o.host = "127.0.0.1";
  o.port = "1";
  CHECK(http::make_client(ex, o, broken).error() == http::errc::bad_config);
  http::client_options half;
  half.tls.cert_pem = st.client.cert_pem;
  CHECK(http::make_client(ex, o, half).error() == http::errc::bad_config);
  http::server_options bad_server;
  bad_server.tls = http::tls_server_config{st.server.cert_pem, st.client.key_pem, ""};
  CHECK(http::start_server(ex, bad_server, http::handler(who_handler)).error() == http::errc::bad_config);
  (*srv)->stop();
  (*srv2)->stop();
}

}  // namespace

TEST_CASE("TLS client: CA verification, IP and DNS names, client certificates, verification off") {
  canaryd::log::set_level(canaryd::log::level::error);
  tls_client_state st;
  auto ca = tls::make_ca("test-ca");
  auto other = tls::make_ca("other-ca");
  REQUIRE(ca.has_value());
  REQUIRE(other.has_value());
  st.ca = *ca;
  st.other_ca = *other;
  tls::leaf_options so;
  so.common_name = "kubesim";
  so.ip_addresses = {"127.0.0.1"};
  auto server = tls::make_leaf(st.ca, so);
  REQUIRE(server.has_value());
  st.server = *server;
  tls::leaf_options lo;
  lo.common_name = "localhost";
  lo.dns_names = {"localhost"};
  auto localhost_only = tls::make_leaf(st.ca, lo);
  REQUIRE(localhost_only.has_value());
  st.localhost_only = *localhost_only;
  tls::leaf_options co;
  co.common_name = "alice";
  co.organizations = {"system:masters", "dev"};
  co.server = false;
  co.client = true;
  auto client = tls::make_leaf(st.ca, co);
  REQUIRE(client.has_value());
  st.client = *client;
  run_io([&st](asio::any_io_executor ex) { return tls_client(ex, st); });
}

namespace {

struct stream_state {
  std::vector<long> piece_ms;
  std::vector<std::string> pieces;
  bool handler_saw_close = false;
  bool handler_write_failed = false;
  long drop_read_ms = -1;
  std::string drop_error;
  bool peer_close_seen = false;
};

// Three chunks 150 ms apart, then a clean end; /watch sends one chunk and then waits for the
// connection to be closed; /silent waits for the connection to close without writing.
asio::awaitable<void> streaming_handler(stream_state& st, const http::request& req, http::responder& out) {
  if (req.target == "/chunks") {
    http::headers hs;
    hs.push_back(http::header{"Content-Type", "application/json"});
    if (co_await out.begin_stream(200, std::move(hs))) co_return;
    for (int i = 0; i < 3; ++i) {
      co_await sleep_for(150ms);
      if (co_await out.write_chunk("{\"n\":" + std::to_string(i) + "}\n")) co_return;
    }
    co_await out.end_stream();
  } else if (req.target == "/watch") {
    http::headers hs;
    if (co_await out.begin_stream(200, std::move(hs))) co_return;
    co_await out.write_chunk("first\n");
    co_await out.wait_closed();
    st.handler_saw_close = out.closed();
    st.handler_write_failed = static_cast<bool>(co_await out.write_chunk("after\n"));
  } else if (req.target == "/silent") {
    co_await out.wait_closed();
    st.peer_close_seen = out.closed();
  }
}

asio::awaitable<void> streaming(asio::any_io_executor ex, stream_state& st) {
  http::handler h = [&st](const http::request& req, const http::peer_info&,
                          http::responder& out) -> asio::awaitable<void> {
    return streaming_handler(st, req, out);
  };
  auto srv = http::start_server(ex, plain_options(), h);
  REQUIRE(srv.has_value());
  auto c = plain_client(ex, **srv);

  auto s = co_await c->open_stream(make_request("GET", "/chunks"), 2s);
  REQUIRE(s.has_value());
  CHECK((*s)->head().status == 200);
  CHECK((*s)->head().header("Transfer-Encoding") == std::optional<std::string_view>("chunked"));
  const auto start = steady::now();
  for (;;) {
    auto piece = co_await (*s)->read_some(2s);
    REQUIRE(piece.has_value());
    if (piece->empty()) break;
    st.pieces.push_back(*piece);
    st.piece_ms.push_back(ms_since(start));
  }
  auto again = co_await (*s)->read_some(2s);  // stays ended
  CHECK((again.has_value() && again->empty()));
  s->reset();
  // The stream's connection went back to the pool.
  auto after = co_await c->send(make_request("GET", "/chunks"), 3s);
  REQUIRE(after.has_value());
  CHECK(after->body == "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n");
  CHECK((*srv)->accepted_connections() == 1);

  // A cut: the client's read fails at once instead of hanging, and the handler wakes up.
  auto w = co_await c->open_stream(make_request("GET", "/watch"), 2s);
  REQUIRE(w.has_value());
  auto first = co_await (*w)->read_some(2s);
  REQUIRE(first.has_value());
  CHECK(*first == "first\n");
  (*srv)->drop_connections();
  const auto cut = steady::now();
  auto broken = co_await (*w)->read_some(5s);
  st.drop_read_ms = ms_since(cut);
  CHECK(!broken.has_value());
  if (!broken) st.drop_error = broken.error().message();
  auto still_broken = co_await (*w)->read_some(5s);
  CHECK(!still_broken.has_value());
  co_await sleep_for(20ms);

  // The server notices a client that goes away while its handler only waits.
  auto quiet = co_await c->open_stream(make_request("GET", "/silent"), 300ms);
  CHECK(quiet.error() == http::errc::timeout);
  co_await sleep_for(100ms);
  CHECK(st.peer_close_seen);

  // An idle stream times out.
  auto idle = co_await c->open_stream(make_request("GET", "/watch"), 2s);
  REQUIRE(idle.has_value());
  auto one = co_await (*idle)->read_some(2s);
  CHECK(one.has_value());
  const auto idle_start = steady::now();
  auto nothing = co_await (*idle)->read_some(200ms);
  CHECK(nothing.error() == http::errc::timeout);
  CHECK(ms_since(idle_start) < 1000);
  (*idle)->close();
  (*idle)->close();
  (*srv)->stop();
}

}  // namespace

TEST_CASE("streaming: chunks arrive as they are sent, a cut fails the reader, closes wake handlers") {
  canaryd::log::set_level(canaryd::log::level::error);
  stream_state st;
  run_io([&st](asio::any_io_executor ex) { return streaming(ex, st); });
  REQUIRE(st.pieces.size() == 3);
  CHECK(st.pieces[0] == "{\"n\":0}\n");
  CHECK(st.pieces[2] == "{\"n\":2}\n");
  // Each piece comes when it is written (150 ms apart), not all at the end.
  CHECK(st.piece_ms[0] >= 100);
  CHECK(st.piece_ms[0] < 300);
  CHECK(st.piece_ms[1] - st.piece_ms[0] >= 100);
  CHECK(st.piece_ms[2] - st.piece_ms[1] >= 100);
  CHECK(st.drop_read_ms >= 0);
  CHECK(st.drop_read_ms < 1000);
  CHECK(st.handler_saw_close);
  CHECK(st.handler_write_failed);
}

namespace {

struct deadline_state {
  long timeout_ms = -1;
  long connect_ms = -1;
  long cancel_ms = -1;
  http::errc timeout_error{}, connect_error{}, stream_error{};
  bool retried_ok = false;
  bool handler_released = false;
};

asio::awaitable<void> deadlines(asio::any_io_executor ex, deadline_state& st) {
  http::handler h = [&st](const http::request& req, const http::peer_info&,
                          http::responder& out) -> asio::awaitable<void> {
    if (req.target == "/never") {
      co_await out.wait_closed();  // never answers; released when the client gives up
      st.handler_released = true;
      co_return;
    }
    http::response res;
    res.body = "ok";
    co_await out.send(std::move(res));
  };
  auto opts = plain_options();
  opts.header_timeout = 200ms;  // idle keep-alive connections are closed quickly
  auto srv = http::start_server(ex, opts, h);
  REQUIRE(srv.has_value());
  auto c = plain_client(ex, **srv);

  auto t0 = steady::now();
  auto r = co_await c->send(make_request("GET", "/never"), 300ms);
  st.timeout_ms = ms_since(t0);
  REQUIRE(!r.has_value());
  st.timeout_error = static_cast<http::errc>(r.error().value());

  auto s = co_await c->open_stream(make_request("GET", "/never"), 200ms);
  REQUIRE(!s.has_value());
  st.stream_error = static_cast<http::errc>(s.error().value());

  // A keep-alive connection the server closed meanwhile (idle timeout): the next call still works.
  auto first = co_await c->send(make_request("GET", "/ok"), 1s);
  REQUIRE(first.has_value());
  co_await sleep_for(400ms);
  auto second = co_await c->send(make_request("GET", "/ok"), 1s);
  st.retried_ok = second.has_value() && second->body == "ok";

  // Cancellation by the caller ends the call promptly.
  asio::steady_timer t(ex, 100ms);
  t0 = steady::now();
  auto raced = co_await (c->send(make_request("GET", "/never"), 10s) || t.async_wait(use_tuple));
  st.cancel_ms = ms_since(t0);
  CHECK(raced.index() == 1);

  (*srv)->stop();

  // Nobody listens on a free port.
  http::origin o;
  o.host = "127.0.0.1";
  o.port = std::to_string(canaryd::test::free_port());
  auto closed = http::make_client(ex, o);
  REQUIRE(closed.has_value());
  t0 = steady::now();
  auto refused = co_await (*closed)->send(make_request("GET", "/"), 2s);
  st.connect_ms = ms_since(t0);
  REQUIRE(!refused.has_value());
  st.connect_error = static_cast<http::errc>(refused.error().value());
  auto nowhere = http::make_client(ex, *http::parse_origin("http://no-such-host.invalid:80"));
  REQUIRE(nowhere.has_value());
  auto unresolved = co_await (*nowhere)->send(make_request("GET", "/"), 5s);
  CHECK((unresolved.error() == http::errc::connect_failed || unresolved.error() == http::errc::timeout));
}

}  // namespace

TEST_CASE("deadlines: a silent server times out, a closed port fails to connect, stale keep-alive is retried") {
  canaryd::log::set_level(canaryd::log::level::error);
  deadline_state st;
  run_io([&st](asio::any_io_executor ex) { return deadlines(ex, st); });
  CHECK(st.timeout_error == http::errc::timeout);
  CHECK(st.timeout_ms >= 250);
  CHECK(st.timeout_ms < 1000);
  CHECK(st.stream_error == http::errc::timeout);
  CHECK(st.handler_released);
  CHECK(st.retried_ok);
  CHECK(st.cancel_ms < 1000);
  CHECK(st.connect_error == http::errc::connect_failed);
  CHECK(st.connect_ms < 1000);
}

TEST_CASE("origins parse from URLs") {
  auto a = http::parse_origin("https://127.0.0.1:6443/api/v1?x=y");
  REQUIRE(a.has_value());
  CHECK(a->scheme == "https");
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == "6443");
  auto b = http::parse_origin("HTTP://example.com");
  REQUIRE(b.has_value());
  CHECK(b->scheme == "http");
  CHECK(b->port == "80");
  auto c = http::parse_origin("https://[::1]:8443");
  REQUIRE(c.has_value());
  CHECK(c->host == "::1");
  CHECK(c->port == "8443");
  CHECK(http::parse_origin("https://kubernetes.default.svc")->port == "443");
  const std::vector<std::string> bad = {"", "127.0.0.1:80", "ftp://x", "http://", "http://:80", "http://h:0",
                                        "http://h:99999", "http://h:8x", "http://u@h", "http://[::1", "http://[::1]x"};
  for (const auto& u : bad) CHECK_MESSAGE(!http::parse_origin(u), u);
}

namespace {

// A scripted peer for failure injection: for each connection, reads the request head and then
// writes scripts[i] and closes. Lets the client meet every way a response can break.
asio::awaitable<void> scripted_server(tcp::acceptor& acc, std::vector<std::string> scripts) {
  for (const auto& script : scripts) {
    auto [aec, sock] = co_await acc.async_accept(use_tuple);
    if (aec) co_return;
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char buf[1024];
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), use_tuple);
      if (ec) break;
      head.append(buf, n);
    }
    if (script == "<hang>") {
      co_await sleep_for(600ms);
      continue;
    }
    co_await asio::async_write(sock, asio::buffer(script), use_tuple);
    error_code ignored;
    sock.shutdown(tcp::socket::shutdown_send, ignored);
    co_await sleep_for(20ms);
  }
}

struct injection_case {
  std::string script;
  std::optional<http::errc> error;  // nullopt: success expected
};

asio::awaitable<void> failure_injection(asio::any_io_executor ex, std::vector<std::string>& failures) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const std::vector<injection_case> cases = {
      {"", http::errc::closed},                                                      // closed at once
      {"HTTP/1.1 200 OK\r\nContent-Len", http::errc::closed},                        // head cut short
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", http::errc::closed},      // body cut short
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", http::errc::closed},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http::errc::protocol_error},
      {"SSH-2.0-OpenSSH_9.2\r\n\r\n", http::errc::protocol_error},                   // not HTTP
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", http::errc::protocol_error},
      {"<hang>", http::errc::timeout},
      {"HTTP/1.1 204 No Content\r\n\r\n", std::nullopt},
      {"HTTP/1.1 200 OK\r\n\r\nbody until close", std::nullopt},                     // no length: EOF ends it
      {ok, std::nullopt},
  };
  tcp::acceptor acc(ex, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::vector<std::string> scripts;
  for (const auto& c : cases) scripts.push_back(c.script);
  asio::co_spawn(ex, scripted_server(acc, std::move(scripts)), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  http::origin o;
  o.host = "127.0.0.1";
  o.port = std::to_string(acc.local_endpoint().port());
  http::client_options co;
  co.max_idle_connections = 0;  // every case on a fresh connection, so no retry hides a failure
  auto c = http::make_client(ex, o, co);
  REQUIRE(c.has_value());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto r = co_await (*c)->send(make_request("GET", "/"), 400ms);
    std::string got = r ? "ok" : r.error().message();
    std::string want = cases[i].error ? http::make_error_code(*cases[i].error).message() : "ok";
    if (got != want) failures.push_back("case " + std::to_string(i) + ": got " + got + ", want " + want);
  }
  acc.close();
}

}  // namespace

TEST_CASE("failure injection: every way a response can break maps to one error value, never a hang") {
  canaryd::log::set_level(canaryd::log::level::error);
  std::vector<std::string> failures;
  run_io([&failures](asio::any_io_executor ex) { return failure_injection(ex, failures); });
  for (const auto& f : failures) FAIL_CHECK(f);
  CHECK(failures.empty());
}

namespace {

// Reads one request head from `sock` (true if one came).
asio::awaitable<bool> read_head(tcp::socket& sock) {
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    char buf[1024];
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), use_tuple);
    if (ec) co_return false;
    head.append(buf, n);
  }
  co_return true;
}

// First connection: answers one request with keep-alive, then takes the next request and closes
// without a byte of response (the race a keep-alive client meets when the server times it out).
// Second connection: answers normally.
asio::awaitable<void> closing_keep_alive_server(tcp::acceptor& acc, int& connections) {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  auto [aec, first] = co_await acc.async_accept(use_tuple);
  if (aec) co_return;
  ++connections;
  if (!co_await read_head(first)) co_return;
  co_await asio::async_write(first, asio::buffer(ok), use_tuple);
  if (!co_await read_head(first)) co_return;
  first.close();
  auto [aec2, second] = co_await acc.async_accept(use_tuple);
  if (aec2) co_return;
  ++connections;
  if (!co_await read_head(second)) co_return;
  co_await asio::async_write(second, asio::buffer(ok), use_tuple);
  co_await read_head(second);  // until the client closes
}

asio::awaitable<void> retry_once(asio::any_io_executor ex, int& connections, std::string& outcome) {
  tcp::acceptor acc(ex, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  asio::co_spawn(ex, closing_keep_alive_server(acc, connections), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  http::origin o;
  o.host = "127.0.0.1";
  o.port = std::to_string(acc.local_endpoint().port());
  auto c = http::make_client(ex, o);
  REQUIRE(c.has_value());
  auto a = co_await (*c)->send(make_request("POST", "/a", "x"), 2s);
  auto b = co_await (*c)->send(make_request("POST", "/b", "y"), 2s);
  outcome = std::string(a ? a->body : a.error().message()) + " " + (b ? b->body : b.error().message());
  (*c)->shutdown();
  acc.close();
}

}  // namespace

TEST_CASE("a reused keep-alive connection closed before any response byte is retried once on a new one") {
  canaryd::log::set_level(canaryd::log::level::error);
  int connections = 0;
  std::string outcome;
  run_io([&](asio::any_io_executor ex) { return retry_once(ex, connections, outcome); });
  CHECK(outcome == "ok ok");
  CHECK(connections == 2);
}

namespace {

// A one-connection CONNECT proxy: records the request head, refuses with 403 or answers 200
// and pipes bytes both ways until both sides have closed.
struct proxy_state {
  bool refuse = false;
  std::string request;
};

asio::awaitable<void> pipe_bytes(tcp::socket& from, tcp::socket& to) {
  char buf[4096];
  for (;;) {
    auto [rec, n] = co_await from.async_read_some(asio::buffer(buf), use_tuple);
    if (rec) break;
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf, n), use_tuple);
    if (wec) break;
  }
  boost::system::error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> proxy_once(tcp::acceptor& acc, proxy_state& st) {
  auto [aec, down] = co_await acc.async_accept(use_tuple);
  REQUIRE(!aec);
  std::string head;
  auto [rec, n] = co_await asio::async_read_until(down, asio::dynamic_buffer(head), "\r\n\r\n", use_tuple);
  REQUIRE(!rec);
  st.request = head.substr(0, n);
  if (st.refuse) {
    const std::string no = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    co_await asio::async_write(down, asio::buffer(no), use_tuple);
    co_return;
  }
  // "CONNECT 127.0.0.1:<port> HTTP/1.1"
  const auto sp1 = head.find(' ');
  const auto sp2 = head.find(' ', sp1 + 1);
  const std::string authority = head.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto colon = authority.rfind(':');
  const tcp::endpoint origin(asio::ip::make_address(authority.substr(0, colon)),
                             static_cast<unsigned short>(std::stoi(authority.substr(colon + 1))));
  tcp::socket up(co_await asio::this_coro::executor);
  auto [cec] = co_await up.async_connect(origin, use_tuple);
  REQUIRE(!cec);
  const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
  co_await asio::async_write(down, asio::buffer(ok), use_tuple);
  co_await (pipe_bytes(down, up) && pipe_bytes(up, down));
}

struct tunnel_state {
  tls::key_pair ca, server;
  proxy_state tunnelled, refused;
  std::string body;
  int status = 0;
  boost::system::error_code refused_error;
};

// GET /who: the first call records the answer, later ones the error.
asio::awaitable<void> get_who(http::client& client, tunnel_state& st) {
  http::request req;
  req.target = "/who";
  auto res = co_await client.send(std::move(req), 5000ms);
  if (st.status == 0) {
    REQUIRE(res.has_value());
    st.status = res->status;
    st.body = res->body;
    co_return;
  }
  REQUIRE(!res.has_value());
  st.refused_error = res.error();
}

asio::awaitable<void> https_through_connect_proxy(asio::any_io_executor ex, tunnel_state& st) {
  http::server_options o;
  o.tls = http::tls_server_config{st.server.cert_pem, st.server.key_pem, {}};
  auto srv = http::start_server(ex, o, http::handler(who_handler));
  REQUIRE(srv.has_value());
  tcp::acceptor acc(ex, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const std::string proxy_port = std::to_string(acc.local_endpoint().port());

  http::client_options co;
  co.tls.ca_pem = st.ca.cert_pem;
  co.max_idle_connections = 0;
  co.connect_proxy = http::origin{"http", "127.0.0.1", proxy_port};
  http::origin target{"https", "127.0.0.1", std::to_string((*srv)->port())};
  auto client = http::make_client(ex, target, co);
  REQUIRE(client.has_value());
  co_await (proxy_once(acc, st.tunnelled) && get_who(**client, st));
  st.refused.refuse = true;
  co_await (proxy_once(acc, st.refused) && get_who(**client, st));
  (*client)->shutdown();
  (*srv)->stop();
}

}  // namespace

TEST_CASE("an https call through a CONNECT proxy reaches the origin over TLS; a refusing proxy fails it as connect_failed") {
  canaryd::log::set_level(canaryd::log::level::error);
  tunnel_state st;
  auto ca = tls::make_ca("test-ca");
  REQUIRE(ca.has_value());
  st.ca = *ca;
  tls::leaf_options so;
  so.common_name = "server";
  so.ip_addresses = {"127.0.0.1"};
  auto server = tls::make_leaf(st.ca, so);
  REQUIRE(server.has_value());
  st.server = *server;

  run_io([&st](asio::any_io_executor ex) { return https_through_connect_proxy(ex, st); });
  CHECK(starts_with(st.tunnelled.request, "CONNECT 127.0.0.1:"));
  CHECK(st.tunnelled.request.find("\r\nHost: 127.0.0.1:") != std::string::npos);
  CHECK(st.status == 200);
  CHECK(st.body == "tls <none>");  // TLS end to end: the proxy saw only the CONNECT head
  CHECK(starts_with(st.refused.request, "CONNECT 127.0.0.1:"));
  CHECK(st.refused_error == http::errc::connect_failed);
}
