#pragma once
// Plain HTTP/1.1 message types shared by the HTTP client, the HTTP server, the Kubernetes API
// client and kubesim. Deliberately free of Beast and Asio: this header is included widely and
// Beast costs 20-40 s per translation unit on two cores.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace canaryd::http {

struct header {
  std::string name;
  std::string value;
};

// Header names compare case-insensitively (RFC 9110 §5.1).
using headers = std::vector<header>;
std::optional<std::string_view> find_header(const headers& hs, std::string_view name) noexcept;
void set_header(headers& hs, std::string_view name, std::string value);

struct request {
  std::string method = "GET";   // upper case
  std::string target = "/";     // origin-form: path and query, percent-encoded
  http::headers headers;
  std::string body;

  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
};

struct response {
  int status = 200;
  http::headers headers;
  std::string body;

  std::optional<std::string_view> header(std::string_view name) const noexcept {
    return find_header(headers, name);
  }
};

// The standard reason phrase of a status code ("Not Found"), or "" if unknown.
std::string_view reason_phrase(int status) noexcept;

// Splits "path?query" into its path and its decoded query parameters, in order.
struct target_parts {
  std::string path;  // percent-decoded
  std::vector<std::pair<std::string, std::string>> query;  // percent-decoded, '+' is a space
  std::optional<std::string_view> param(std::string_view key) const noexcept;
};
target_parts split_target(std::string_view target);

std::string percent_encode(std::string_view s);  // encodes all but RFC 3986 unreserved characters
std::string percent_decode(std::string_view s, bool plus_is_space = false);

}  // namespace canaryd::http
