// libFuzzer target: the bytes a client sends to canaryd's metrics/health port or to the load
// tester, through the real HTTP server (k8s/http_server.cpp: Beast's request parser, our head
// and body limits, keep-alive) and the handlers' own parsing (split_target, the load tester's
// webhook payload). Each input is one connection on loopback: written, half-closed, and read
// until the server closes it.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "k8s/http_server.hpp"
#include "loadtester/payload.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace canaryd;

namespace {

asio::awaitable<void> serve(const http::request& req, const http::peer_info&, http::responder& out) {
  auto parts = http::split_target(req.target);
  http::response res;
  if (req.method == "POST") {
    // The load tester: /, /gate/*, /rollback/* take a webhook payload.
    auto p = loadtester::parse_payload(req.body);
    res.status = p ? 200 : 400;
    res.body = p ? p->canary() : p.error();
  } else if (parts.path == "/metrics" || parts.path == "/healthz") {
    res.body = "ok\n";
    for (const auto& [k, v] : parts.query) res.body += k + "=" + v + "\n";
  } else {
    res.status = 404;
  }
  co_await out.send(std::move(res));
}

struct fixture {
  asio::io_context ioc;
  std::unique_ptr<http::server> server;
  tcp::endpoint endpoint;

  fixture() {
    http::server_options so;
    so.listen = "127.0.0.1:0";
    so.header_timeout = std::chrono::seconds(2);
    so.max_body_bytes = 64 * 1024;
    auto s = http::start_server(ioc.get_executor(), so, serve);
    if (!s) std::abort();
    server = std::move(*s);
    endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port());
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture f;
  tcp::socket s(f.ioc);
  // Every step is asynchronous and driven by run_one(): a blocking connect() or send() returns
  // EINTR when libFuzzer's SIGALRM (its -timeout watchdog) lands during it, and the reactor
  // retries that where a blocking call would fail the input.
  boost::system::error_code ec;
  bool done = false;
  s.async_connect(f.endpoint, [&](boost::system::error_code e) { ec = e; done = true; });
  while (!done) f.ioc.run_one();
  if (ec) {
    std::fprintf(stderr, "connect to the server under test failed: %s\n", ec.message().c_str());
    std::abort();
  }
  done = false;
  asio::async_write(s, asio::buffer(data, size), [&](boost::system::error_code, std::size_t) { done = true; });
  while (!done) f.ioc.run_one();  // the server may answer and close early: a short write is fine
  s.shutdown(tcp::socket::shutdown_send, ec);
  done = false;
  asio::streambuf answer;
  asio::async_read(s, answer, [&](boost::system::error_code, std::size_t) { done = true; });
  while (!done) f.ioc.run_one();
  // Each input leaves this side in TIME_WAIT (it half-closed first); Linux reuses such ports for
  // new loopback connections (net.ipv4.tcp_tw_reuse, 2 by default), so the range does not run out.
  s.close(ec);
  return 0;
}
