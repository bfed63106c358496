#pragma once
// An HTTP/1.1 server (plain or TLS) that runs one coroutine per connection and calls a handler
// for each request. Used by kubesim (the API server), canaryd (/healthz, /metrics) and the
// load tester.
//
// Thread affinity: one io_context thread. Cancellation: stop() closes the listener and every
// connection; running handlers see their writes fail with errc::cancelled and must return.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "k8s/http.hpp"
#include "k8s/http_error.hpp"
#include "k8s/tls_config.hpp"

namespace canaryd::http {

// What the server knows about the peer of a request.
struct peer_info {
  std::string address;                // "127.0.0.1:53412"
  bool tls = false;
  // Subject of a client certificate that verified against client_ca_pem, if any.
  std::optional<std::string> cert_common_name;
  std::vector<std::string> cert_organizations;
};

// How a handler answers: either one whole response, or a streamed one (chunked encoding), used
// for watches and long polls. Exactly one of send() / begin_stream() is called per request;
// a handler that returns without either gets a 500.
class responder {
 public:
  virtual ~responder() = default;
  virtual boost::asio::awaitable<boost::system::error_code> send(response res) = 0;
  // Sends the head (status, headers; Transfer-Encoding: chunked is added).
  virtual boost::asio::awaitable<boost::system::error_code> begin_stream(
      int status, headers hs) = 0;
  // Sends one chunk and flushes it. Fails when the client went away or the server stops.
  virtual boost::asio::awaitable<boost::system::error_code> write_chunk(std::string_view data) = 0;
  // Ends the chunked body; the connection may be reused afterwards.
  virtual boost::asio::awaitable<boost::system::error_code> end_stream() = 0;
  // Closes the connection without a clean end (a watch cut by fault injection).
  virtual void abort() noexcept = 0;
};

using handler = std::function<boost::asio::awaitable<void>(
    const request& req, const peer_info& peer, responder& out)>;

struct server_options {
  std::string listen = "127.0.0.1:0";      // host:port; port 0 picks a free one
  std::optional<tls_server_config> tls;
  std::size_t max_body_bytes = 3u << 20;    // the API server's own limit is 3 MiB; 413 beyond
  std::chrono::milliseconds header_timeout{30'000};  // idle keep-alive / slow client limit
  std::chrono::milliseconds write_timeout{30'000};
};

class server {
 public:
  virtual ~server() = default;
  virtual std::string local_address() const = 0;  // "127.0.0.1:40123"
  virtual unsigned short port() const = 0;
  // Stops accepting and closes every connection. Idempotent.
  virtual void stop() noexcept = 0;
  // Closes every open connection but keeps listening (fault injection: cut all watches).
  virtual void drop_connections() noexcept = 0;
};

// Binds and starts accepting at once. Errors (address in use, bad TLS material) are values.
boost::system::result<std::unique_ptr<server>> start_server(
    boost::asio::any_io_executor ex, server_options opts, handler h);

}  // namespace canaryd::http
