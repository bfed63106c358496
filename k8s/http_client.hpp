#pragma once
// An HTTP/1.1 client for one origin (scheme, host, port), with keep-alive connection reuse.
//
// Thread affinity: one io_context thread; no strands, no mutexes. Every operation has a deadline.
// Cancellation: per-operation cancellation (asio cancellation slots) closes the connection used.
// Errors: values (http::errc, or the system error), never exceptions.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "k8s/http.hpp"
#include "k8s/http_error.hpp"
#include "k8s/tls_config.hpp"

namespace canaryd::http {

struct origin {
  std::string scheme = "http";  // "http" or "https"
  std::string host;             // name or address; IPv6 without brackets
  std::string port;             // defaults to 80/443 when empty
};

// Parses "https://host:port[/...]" (any path is ignored; callers keep their own prefix).
// The scheme is lower-cased; an empty port becomes 80/443; user info is refused (bad_config).
boost::system::result<origin> parse_origin(std::string_view url);

struct client_options {
  tls_client_config tls;                   // used for https origins only
  std::size_t max_idle_connections = 4;    // kept for reuse; idle ones older than 25 s are dropped
  std::size_t max_body_bytes = 64u << 20;
  std::string user_agent = "canaryd";
  // https origins only: reach the origin through this HTTP proxy with a CONNECT tunnel
  // (RFC 9110 §9.3.6), then TLS to the origin inside it. A proxy answer other than 2xx fails
  // the call with connect_failed. (Plain http through a proxy is the caller's absolute-form
  // request to a client of the proxy's origin.)
  std::optional<origin> connect_proxy;
};

// A streamed response: the head is read, the body arrives piece by piece (chunked or not).
class body_stream {
 public:
  virtual ~body_stream() = default;
  virtual const response& head() const noexcept = 0;  // status and headers; body empty
  // Next piece of the body, decoded from chunked transfer encoding. An empty string means the
  // body ended cleanly; an error means the stream broke or `idle` passed with no data.
  // Pieces are what has arrived (at most 16 KiB each); they are NOT aligned to the sender's
  // chunks, so a consumer frames its own records (watch events: one JSON object per line).
  // Errors: errc::timeout (idle passed), errc::closed (the server closed or cut the connection,
  // or close() was called), errc::protocol_error, errc::cancelled (shutdown, or the caller's
  // cancellation). After any error the stream stays failed. The total body is not limited
  // (a watch runs for hours). After a clean end the connection returns to the client's pool.
  // One read_some at a time; do not destroy the stream while one is pending (close() first).
  virtual boost::asio::awaitable<boost::system::result<std::string>> read_some(
      std::chrono::milliseconds idle) = 0;
  // Closes the connection now (a watch is abandoned); safe to call twice, and while a
  // read_some is pending (it then fails with errc::closed).
  virtual void close() noexcept = 0;
};

class client {
 public:
  virtual ~client() = default;
  // One request, one whole response, within `timeout` (connect + TLS + write + read).
  // Idempotent callers retry; this layer never retries except once on a reused keep-alive
  // connection that the server had closed before any byte of the response arrived.
  virtual boost::asio::awaitable<boost::system::result<response>> send(
      request req, std::chrono::milliseconds timeout) = 0;
  // Sends the request and returns once the response head is read within `head_timeout`.
  // The connection belongs to the stream until it is destroyed.
  virtual boost::asio::awaitable<boost::system::result<std::unique_ptr<body_stream>>> open_stream(
      request req, std::chrono::milliseconds head_timeout) = 0;
  // Closes idle connections and makes every later call fail with errc::cancelled. Calls and
  // streams in flight have their connections closed and fail with errc::cancelled too.
  // Destroying the client does the same; streams it opened may outlive it.
  virtual void shutdown() noexcept = 0;
};

// Errors of send() and open_stream(): errc::timeout (the deadline passed), connect_failed
// (resolve or TCP connect), tls_failed (handshake or verification; the OpenSSL verify reason is
// logged at warn), closed (connection closed or reset mid-response), protocol_error (not
// HTTP/1.1), body_too_large (over max_body_bytes; send() only), cancelled, bad_config (a
// method, target or header with characters that would corrupt the request).
// Defaults: Host (the origin, port omitted when default), User-Agent (options), Content-Length
// (when there is a body, and always for POST/PUT/PATCH); headers the caller sets win, except
// Content-Length and Transfer-Encoding, which this layer owns.

// Fails with errc::bad_config if the TLS material cannot be loaded.
boost::system::result<std::unique_ptr<client>> make_client(
    boost::asio::any_io_executor ex, origin o, client_options opts = {});

}  // namespace canaryd::http
