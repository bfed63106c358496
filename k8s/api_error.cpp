#include "k8s/api_error.hpp"

#include <simdjson.h>

#include <boost/throw_exception.hpp>
#include <charconv>
#include <fmt/format.h>

#include "k8s/http.hpp"
#include "k8s/http_error.hpp"

namespace canaryd::k8s {
namespace {

class category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "canaryd.k8s"; }
  std::string message(int ev) const override {
    switch (static_cast<api_errc>(ev)) {
      case api_errc::bad_request: return "bad request";
      case api_errc::unauthorized: return "unauthorized";
      case api_errc::forbidden: return "forbidden";
      case api_errc::not_found: return "not found";
      case api_errc::method_not_allowed: return "method not allowed";
      case api_errc::not_acceptable: return "not acceptable";
      case api_errc::already_exists: return "already exists";
      case api_errc::conflict: return "conflict";
      case api_errc::gone: return "gone (resource version too old)";
      case api_errc::request_too_large: return "request entity too large";
      case api_errc::unsupported_media: return "unsupported media type";
      case api_errc::invalid: return "invalid";
      case api_errc::too_many_requests: return "too many requests";
      case api_errc::internal_error: return "internal error";
      case api_errc::service_unavailable: return "service unavailable";
      case api_errc::timeout: return "server timeout";
      case api_errc::unexpected_status: return "unexpected HTTP status";
      case api_errc::bad_response: return "malformed response";
      case api_errc::credentials_failed: return "credentials could not be obtained";
    }
    return "unknown Kubernetes API error";
  }
};

struct reason_entry {
  std::string_view reason;
  api_errc code;
};
constexpr reason_entry reasons[] = {
    {"BadRequest", api_errc::bad_request},
    {"Unauthorized", api_errc::unauthorized},
    {"Forbidden", api_errc::forbidden},
    {"NotFound", api_errc::not_found},
    {"MethodNotAllowed", api_errc::method_not_allowed},
    {"NotAcceptable", api_errc::not_acceptable},
    {"AlreadyExists", api_errc::already_exists},
    {"Conflict", api_errc::conflict},
    {"Gone", api_errc::gone},
    {"Expired", api_errc::gone},
    {"RequestEntityTooLarge", api_errc::request_too_large},
    {"UnsupportedMediaType", api_errc::unsupported_media},
    {"Invalid", api_errc::invalid},
    {"TooManyRequests", api_errc::too_many_requests},
    {"InternalError", api_errc::internal_error},
    {"ServiceUnavailable", api_errc::service_unavailable},
    {"ServerTimeout", api_errc::timeout},
    {"Timeout", api_errc::timeout},
};

api_errc from_http_status(int status) {
  switch (status) {
    case 400: return api_errc::bad_request;
    case 401: return api_errc::unauthorized;
    case 403: return api_errc::forbidden;
    case 404: return api_errc::not_found;
    case 405: return api_errc::method_not_allowed;
    case 406: return api_errc::not_acceptable;
    case 409: return api_errc::conflict;
    case 410: return api_errc::gone;
    case 413: return api_errc::request_too_large;
    case 415: return api_errc::unsupported_media;
    case 422: return api_errc::invalid;
    case 429: return api_errc::too_many_requests;
    case 500: return api_errc::internal_error;
    case 503: return api_errc::service_unavailable;
    case 504: return api_errc::timeout;
    default: return api_errc::unexpected_status;
  }
}

int parse_retry_after(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  int n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0) return 0;  // HTTP-date: ignored
  return n;
}

// Fills reason/message/code/retry from a Status object; false if `body` is not a Status.
bool fill_from_status(api_error& e, std::string_view body) {
  if (body.empty()) return false;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) return false;
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return false;
  std::string_view kind;
  if (obj["kind"].get_string().get(kind) != simdjson::SUCCESS || kind != "Status") return false;
  std::string_view sv;
  if (obj["reason"].get_string().get(sv) == simdjson::SUCCESS) e.reason = std::string(sv);
  if (obj["message"].get_string().get(sv) == simdjson::SUCCESS) e.message = std::string(sv);
  int64_t code = 0;
  if (obj["code"].get_int64().get(code) == simdjson::SUCCESS && code > 0 && e.http_status == 0) {
    e.http_status = static_cast<int>(code);
  }
  int64_t retry = 0;
  if (obj.at_pointer("/details/retryAfterSeconds").get_int64().get(retry) == simdjson::SUCCESS &&
      retry > 0 && e.retry_after_seconds == 0) {
    e.retry_after_seconds = static_cast<int>(retry);
  }
  return true;
}

void classify(api_error& e) {
  for (const auto& r : reasons) {
    if (r.reason == e.reason) {
      e.code = r.code;
      return;
    }
  }
  e.code = from_http_status(e.http_status);
  // A 409 without a reason is a Conflict; AlreadyExists only when the server says so.
}

std::string first_line(std::string_view s, std::size_t max = 300) {
  auto nl = s.find_first_of("\r\n");
  if (nl != std::string_view::npos) s = s.substr(0, nl);
  if (s.size() > max) return std::string(s.substr(0, max)) + "...";
  return std::string(s);
}

}  // namespace

const boost::system::error_category& api_category() noexcept {
  static const category_impl c;
  return c;
}

void throw_exception_from_error(const api_error& e, const boost::source_location& loc) {
  boost::throw_exception(api_exception(e), loc);
}

std::string api_error::what() const {
  std::string out = request;
  if (!out.empty()) out += ": ";
  if (http_status != 0) {
    out += fmt::format("{} {}", http_status, reason.empty() ? std::string(http::reason_phrase(http_status)) : reason);
    if (!message.empty()) out += ": " + first_line(message);
  } else {
    out += message.empty() ? code.message() : first_line(message);
  }
  return out;
}

api_error decode_status(int http_status, std::string_view body, std::optional<std::string_view> retry_after) {
  api_error e;
  e.http_status = http_status;
  if (retry_after) e.retry_after_seconds = parse_retry_after(*retry_after);
  if (!fill_from_status(e, body)) {
    // Not a Status (a proxy's HTML page, plain text): keep a short excerpt as the message.
    e.message = first_line(body, 200);
  }
  e.http_status = http_status;  // the HTTP status is authoritative over Status.code
  classify(e);
  return e;
}

api_error decode_status_object(std::string_view status_json) {
  api_error e;
  if (!fill_from_status(e, status_json)) {
    e.code = api_errc::bad_response;
    e.message = "watch ERROR event without a Status: " + first_line(status_json, 200);
    return e;
  }
  classify(e);
  return e;
}

api_error transport_error(boost::system::error_code ec, std::string message) {
  api_error e;
  e.code = ec;
  e.message = message.empty() ? ec.message() : std::move(message);
  return e;
}

bool is_timeout_code(const boost::system::error_code& ec) noexcept {
  return ec == api_errc::timeout || ec == http::errc::timeout;
}

bool is_retryable(const api_error& e) noexcept {
  if (e.is_transport()) {
    return e.code != http::errc::cancelled && e.code != http::errc::bad_config &&
           e.code != api_errc::credentials_failed;
  }
  return e.http_status == 429 || (e.http_status >= 500 && e.http_status != 501);
}

}  // namespace canaryd::k8s
