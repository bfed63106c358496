// libFuzzer target: the bytes a Prometheus server or a webhook answers canaryd with, through
// the real HTTP client (k8s/http_client.cpp: Beast's response parser, chunked bodies, limits)
// and, for a response that parses, the Prometheus answer reader. Each input is one exchange on
// loopback with a fake server that reads the request and writes the input back.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "core/prometheus_answer.hpp"
#include "k8s/http_client.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace canaryd;

namespace {

struct fixture {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::unique_ptr<http::client> client;

  fixture() {
    http::origin o;
    o.host = "127.0.0.1";
    o.port = std::to_string(acceptor.local_endpoint().port());
    http::client_options opts;
    opts.max_idle_connections = 0;  // one connection per exchange
    opts.max_body_bytes = 1 << 20;
    auto c = http::make_client(ioc.get_executor(), o, opts);
    if (!c) std::abort();
    client = std::move(*c);
  }
};

asio::awaitable<void> answer(tcp::acceptor& acceptor, std::string bytes, bool& done) {
  auto [aec, s] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
  if (!aec) {
    asio::streambuf req;
    auto [rec, n] = co_await asio::async_read_until(s, req, "\r\n\r\n", asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (!rec) co_await asio::async_write(s, asio::buffer(bytes), asio::as_tuple(asio::use_awaitable));
    boost::system::error_code ec;
    s.shutdown(tcp::socket::shutdown_both, ec);
    s.close(ec);
  }
  done = true;
}

asio::awaitable<void> ask(http::client& client, bool& done) {
  http::request req;
  req.target = "/api/v1/query?query=vector(1)";
  auto res = co_await client.send(std::move(req), std::chrono::seconds(2));
  if (res) (void)core::read_prometheus_answer(res->status, res->body);
  done = true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture f;
  // The previous input ended when its last handler ran; that left the io_context out of work,
  // which stops it, and a stopped io_context's run_one() returns at once without running anything.
  f.ioc.restart();
  bool served = false, asked = false;
  asio::co_spawn(f.ioc, answer(f.acceptor, std::string(reinterpret_cast<const char*>(data), size), served), asio::detached);
  asio::co_spawn(f.ioc, ask(*f.client, asked), asio::detached);
  while (!asked) f.ioc.run_one();
  // The client has its answer or gave up (2 s). If it never connected for this input (it may
  // still hold a connection from an earlier one), the accept would wait forever: cancel it.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (!served && std::chrono::steady_clock::now() < give_up) f.ioc.run_one_for(std::chrono::milliseconds(50));
  if (!served) {
    boost::system::error_code ec;
    f.acceptor.cancel(ec);
    while (!served) f.ioc.run_one();
  }
  return 0;
}
