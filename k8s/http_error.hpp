#pragma once
// Error codes of the HTTP layer, as values (boost::system::error_code) — expected failures,
// never exceptions.
#include <boost/system/error_code.hpp>
#include <type_traits>

namespace canaryd::http {

enum class errc {
  timeout = 1,        // the operation's deadline passed
  connect_failed,     // resolve or TCP connect failed
  tls_failed,         // TLS handshake or certificate verification failed
  protocol_error,     // the peer sent something that is not HTTP/1.1
  body_too_large,     // a body exceeded the configured limit
  closed,             // the peer or the server closed the connection / stream ended
  cancelled,          // the caller or a shutdown cancelled the operation
  bad_config,         // a TLS or endpoint configuration could not be used
};

const boost::system::error_category& category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

}  // namespace canaryd::http

template <>
struct boost::system::is_error_code_enum<canaryd::http::errc> : std::true_type {};
