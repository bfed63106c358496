#pragma once
// AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html),
// the parts that are text: the canonical request, the string to sign and the Authorization
// header. Pure; the HMAC chain that turns the string to sign into a signature needs a MAC
// (OpenSSL), so it lives at the edge (daemon/aws_sign.hpp). Checked against AWS's published
// SigV4 test suite (tests/core/aws_sigv4_test.cpp).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/wall_time.hpp"

namespace canaryd::core {

struct sigv4_request {
  std::string method;  // "GET", "POST"
  std::string path;    // as sent, percent-encoded or not ("/" when empty)
  std::string query;   // the raw query string as sent, without '?' ("" for none)
  // The headers to sign, as sent; host and x-amz-date (and x-amz-security-token, when there
  // is one) must be among them.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload;  // the body
};

struct sigv4_scope {
  std::string date;     // "20150830"
  std::string region;   // "us-east-1"
  std::string service;  // "monitoring"
  std::string text() const { return date + "/" + region + "/" + service + "/aws4_request"; }
};

// "20150830T123600Z" (X-Amz-Date) and "20150830" (the scope's date) of `t`, in UTC.
std::string amz_date(wall_time t);
std::string amz_day(wall_time t);

// Lowercase header names, sorted, ';'-joined: "host;x-amz-date".
std::string sigv4_signed_headers(const sigv4_request& r);
// Method, canonical URI, canonical query, canonical headers, signed headers, payload hash.
std::string sigv4_canonical_request(const sigv4_request& r);
// "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of the canonical request>".
std::string sigv4_string_to_sign(std::string_view amz_date, const sigv4_scope& scope, std::string_view canonical_request);
// "AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=<...>, Signature=<hex>".
std::string sigv4_authorization(std::string_view access_key_id, const sigv4_scope& scope, std::string_view signed_headers,
                                std::string_view signature_hex);

// RFC 3986 encoding as SigV4 wants it: all but A-Z a-z 0-9 - _ . ~ as %XX (upper case).
std::string sigv4_uri_encode(std::string_view s, bool keep_slash = false);

}  // namespace canaryd::core
