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
boost::system::result<origin> parse_origin(std::string_view url);

struct client_options {
  tls_client_config tls;
  std::size_t max_idle_connections = 4;
  std::size_t max_body_bytes = 64u << 20;
  std::string user_agent = "canaryd";
};

// A streamed response: the head is read, the body arrives piece by piece (chunked or not).
class body_stream {
 public:
  virtual ~body_stream() = default;
  virtual const response& head() const noexcept = 0;  // status and headers; body empty
  // Next piece of the body, decoded from chunked transfer encoding. An empty string means the
  // body ended cleanly; an error means the stream broke or `idle` passed with no data.
  virtual boost::asio::awaitable<boost::system::result<std::string>> read_some(
      std::chrono::milliseconds idle) = 0;
  // Closes the connection now (a watch is abandoned); safe to call twice.
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
  // Closes idle connections and makes every later call fail with errc::cancelled.
  virtual void shutdown() noexcept = 0;
};

// Fails with errc::bad_config if the TLS material cannot be loaded.
boost::system::result<std::unique_ptr<client>> make_client(
    boost::asio::any_io_executor ex, origin o, client_options opts = {});

}  // namespace canaryd::http
