#pragma once
// Errors of the Kubernetes API client, as values.
//
// An api_error carries an error_code (category "canaryd.k8s" for answers of the API server,
// canaryd.http or system for transport failures) plus the details of the Kubernetes Status the
// server sent (HTTP status, reason, message, Retry-After). Every API call returns
// api_result<T> = boost::system::result<T, api_error>; nothing throws except value() on an error
// (which throws api_exception: a bug at the call site, or startup code that wants to die).
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace canaryd::k8s {

// The reasons of metav1.Status the client distinguishes (k8s.io/apimachinery StatusReason).
enum class api_errc {
  bad_request = 1,      // 400 BadRequest
  unauthorized,         // 401 Unauthorized
  forbidden,            // 403 Forbidden
  not_found,            // 404 NotFound
  method_not_allowed,   // 405 MethodNotAllowed
  not_acceptable,       // 406 NotAcceptable
  already_exists,       // 409 AlreadyExists
  conflict,             // 409 Conflict
  gone,                 // 410 Gone / Expired (resourceVersion too old)
  request_too_large,    // 413 RequestEntityTooLarge
  unsupported_media,    // 415 UnsupportedMediaType
  invalid,              // 422 Invalid
  too_many_requests,    // 429 TooManyRequests
  internal_error,       // 500 InternalError
  service_unavailable,  // 503 ServiceUnavailable
  timeout,              // 504 Timeout / server-side timeout (reason Timeout or ServerTimeout)
  unexpected_status,    // any other non-2xx status
  bad_response,         // a 2xx whose body is not the JSON we expected
  credentials_failed,   // the token file or exec plugin could not produce credentials
};

const boost::system::error_category& api_category() noexcept;

inline boost::system::error_code make_error_code(api_errc e) noexcept {
  return {static_cast<int>(e), api_category()};
}

}  // namespace canaryd::k8s

template <>
struct boost::system::is_error_code_enum<canaryd::k8s::api_errc> : std::true_type {};

namespace canaryd::k8s {

struct api_error {
  boost::system::error_code code;  // api_errc for a server answer; http::errc/system for transport
  int http_status = 0;             // 0 when no response arrived
  std::string reason;              // Status.reason as sent ("NotFound"), empty if none
  std::string message;             // Status.message, or a description of the transport failure
  int retry_after_seconds = 0;     // Retry-After header or Status.details.retryAfterSeconds
  std::string request;             // "GET /api/v1/namespaces/x/pods/y" (set by the client)

  // One line: "GET /api/v1/...: 404 NotFound: pods \"y\" not found".
  std::string what() const;
  // True when no HTTP answer arrived (connect, TLS, timeout, closed stream).
  bool is_transport() const noexcept { return http_status == 0; }
};

template <class T>
using api_result = boost::system::result<T, api_error>;

class api_exception : public std::runtime_error {
 public:
  explicit api_exception(api_error e) : std::runtime_error(e.what()), error_(std::move(e)) {}
  const api_error& error() const noexcept { return error_; }

 private:
  api_error error_;
};

// Found by ADL from boost::system::result<T, api_error>::value().
[[noreturn]] void throw_exception_from_error(const api_error& e, const boost::source_location& loc);

// Builds the error for a non-2xx answer: decodes a metav1.Status body when there is one
// (reason wins over the HTTP code, as client-go does), else maps the HTTP status.
// `retry_after` is the Retry-After header value, if any (delta-seconds only).
api_error decode_status(int http_status, std::string_view body,
                        std::optional<std::string_view> retry_after = std::nullopt);
// Decodes a metav1.Status that arrived as a watch ERROR event's object.
api_error decode_status_object(std::string_view status_json);

api_error transport_error(boost::system::error_code ec, std::string message = {});

inline bool is_not_found(const api_error& e) noexcept { return e.code == api_errc::not_found; }
inline bool is_already_exists(const api_error& e) noexcept { return e.code == api_errc::already_exists; }
inline bool is_conflict(const api_error& e) noexcept { return e.code == api_errc::conflict; }
inline bool is_gone(const api_error& e) noexcept { return e.code == api_errc::gone; }
inline bool is_forbidden(const api_error& e) noexcept { return e.code == api_errc::forbidden; }
inline bool is_unauthorized(const api_error& e) noexcept { return e.code == api_errc::unauthorized; }
inline bool is_too_many_requests(const api_error& e) noexcept { return e.code == api_errc::too_many_requests; }
inline bool is_invalid(const api_error& e) noexcept { return e.code == api_errc::invalid; }
// A server-side Timeout Status or a transport deadline.
bool is_timeout_code(const boost::system::error_code& ec) noexcept;
inline bool is_timeout(const api_error& e) noexcept { return is_timeout_code(e.code); }
// Worth retrying on an idempotent request: 5xx, 429, and transport failures.
bool is_retryable(const api_error& e) noexcept;

}  // namespace canaryd::k8s
