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
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

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
// a handler that returns without either gets a 500. One write at a time (await each before the
// next). Write errors: errc::closed (peer gone, abort(), drop_connections()), errc::cancelled
// (stop()), errc::timeout (write_timeout passed; the connection is then closed),
// errc::protocol_error (a call out of order, e.g. write_chunk before begin_stream: a bug, logged).
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

  // True once the connection is gone: the peer closed it (noticed even while the handler does
  // not write), abort(), drop_connections() or stop(). Later writes fail at once.
  virtual bool closed() const noexcept = 0;
  // Completes when the connection closes (at once if it already has). A handler that waits for
  // something else (a watch waiting for its next event) races the two so a cut wakes it up:
  //   auto r = co_await (next_event() || out.wait_closed());
  // Honours per-operation cancellation, so the `||` above cancels it cleanly when the event wins.
  virtual boost::asio::awaitable<void> wait_closed() = 0;
};

// Called once per request. `req`, `peer` and `out` live until the returned coroutine finishes
// (not longer: do not keep references). The std::function itself lives as long as the server's
// last connection, so a capturing lambda coroutine is safe here as long as what it captures
// outlives the server. An exception escaping the handler is logged and answered with 500 (or,
// once streaming has begun, closes the connection). Requests on one connection are handled one
// after another; connections run concurrently on the one thread.
using handler = std::function<boost::asio::awaitable<void>(
    const request& req, const peer_info& peer, responder& out)>;

struct server_options {
  // "127.0.0.1:0", "[::1]:0", "0.0.0.0:8080", "localhost:8080", ":8080" (all IPv4 interfaces);
  // port 0 picks a free one.
  std::string listen = "127.0.0.1:0";
  std::optional<tls_server_config> tls;
  std::size_t max_body_bytes = 3u << 20;    // the API server's own limit is 3 MiB; 413 beyond
  // Limit for reading one whole request (head and body), and so for an idle keep-alive
  // connection; the connection is closed when it passes. Also the TLS handshake's limit.
  std::chrono::milliseconds header_timeout{30'000};
  std::chrono::milliseconds write_timeout{30'000};  // per write (a response, a head, one chunk)
  // Open connections at most (0: no limit). At the limit the server stops accepting until one
  // closes: a burst of clients waits in the kernel's listen backlog instead of costing memory
  // here (each connection holds buffers and a coroutine frame, ~10 KiB).
  std::size_t max_connections = 0;
};

class server {
 public:
  virtual ~server() = default;
  virtual std::string local_address() const = 0;  // "127.0.0.1:40123"
  virtual unsigned short port() const = 0;
  // Stops accepting and closes every connection. Idempotent.
  virtual void stop() noexcept = 0;
  // Closes every open connection but keeps listening (fault injection: cut all watches).
  // Handlers of those connections see closed() and wait_closed(), and their writes fail with
  // errc::closed (errc::cancelled after stop()).
  virtual void drop_connections() noexcept = 0;
  // Counters for /metrics and tests: connections accepted since start, and open now.
  virtual std::uint64_t accepted_connections() const noexcept = 0;
  virtual std::size_t open_connections() const noexcept = 0;
};

// Binds and starts accepting at once. Errors (address in use, bad TLS material) are values.
// The server answers on its own, without calling the handler: 400 and close for a malformed
// request, 413 and close for a body over max_body_bytes, 431 and close for a head over 64 KiB.
// A failed TLS handshake is logged at debug and closes the connection.
boost::system::result<std::unique_ptr<server>> start_server(
    boost::asio::any_io_executor ex, server_options opts, handler h);

}  // namespace canaryd::http
