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
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "k8s/http_server.hpp"
#include "k8s/log.hpp"
#include "k8s/tls_cert.hpp"
#include "k8s/tls_context.hpp"

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace tls = canaryd::tls;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

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
