// SigV4's text parts against AWS's published Signature Version 4 test suite (credential scope
// 20150830/us-east-1/service/aws4_request, X-Amz-Date 20150830T123600Z): the canonical request
// and the string to sign, byte for byte. The signatures are in tests/daemon/aws_sign_test.cpp.
#include <doctest/doctest.h>

#include "core/aws_sigv4.hpp"

using namespace canaryd::core;

namespace {

sigv4_request suite_request(std::string method, std::string path, std::string query = {}) {
  sigv4_request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  return r;
}

const sigv4_scope suite_scope{"20150830", "us-east-1", "service"};
constexpr const char* empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

}  // namespace

TEST_CASE("get-vanilla: the canonical request and the string to sign are the suite's") {
  auto r = suite_request("GET", "/");
  const std::string canonical = sigv4_canonical_request(r);
  CHECK(canonical == std::string("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n") +
                         empty_sha256);
  CHECK(sigv4_signed_headers(r) == "host;x-amz-date");
  CHECK(sigv4_string_to_sign("20150830T123600Z", suite_scope, canonical) ==
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

TEST_CASE("get-vanilla-query-order-key-case: query parameters are sorted by name") {
  auto r = suite_request("GET", "/", "Param2=value2&Param1=value1");
  CHECK(sigv4_canonical_request(r) ==
        std::string("GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                    "host;x-amz-date\n") +
            empty_sha256);
}

TEST_CASE("get-utf8: the path is UTF-8, percent-encoded in upper case") {
  auto r = suite_request("GET", "/\xe1\x88\xb4");
  CHECK(sigv4_canonical_request(r) ==
        std::string("GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n") +
            empty_sha256);
}

TEST_CASE("header names are lower-cased and sorted, values trimmed and their runs of spaces collapsed") {
  auto r = suite_request("POST", "/");
  r.headers.push_back({"My-Header1", "  value1   value2 "});
  r.headers.push_back({"my-header1", "value3"});
  r.payload = "Param1=value1";
  const std::string canonical = sigv4_canonical_request(r);
  CHECK(canonical.find("host:example.amazonaws.com\nmy-header1:value1 value2,value3\nx-amz-date:20150830T123600Z\n\n"
                       "host;my-header1;x-amz-date\n") != std::string::npos);
  // The payload's hash ends the canonical request.
  CHECK(canonical.ends_with("\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"));
}

TEST_CASE("the Authorization header and the dates are written as AWS documents them") {
  CHECK(sigv4_authorization("AKIDEXAMPLE", suite_scope, "host;x-amz-date", "abc") ==
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc");
  auto t = wall_clock::time_point(std::chrono::seconds(1440938160));  // 2015-08-30T12:36:00Z
  CHECK(amz_date(t) == "20150830T123600Z");
  CHECK(amz_day(t) == "20150830");
}
