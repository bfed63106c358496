// SigV4 signatures (the HMAC chain, OpenSSL) against AWS's published Signature Version 4 test
// suite: secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, key id AKIDEXAMPLE, us-east-1,
// service "service", 2015-08-30T12:36:00Z.
#include <doctest/doctest.h>

#include "daemon/aws_sign.hpp"

using namespace canaryd;

namespace {

const aws_credentials suite_creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const auto suite_time = core::wall_clock::time_point(std::chrono::seconds(1440938160));

std::string sign(std::string method, std::string path, std::string query = {}) {
  core::sigv4_request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}};
  return sigv4_sign(r, suite_creds, "us-east-1", "service", suite_time);
}

const std::string prefix =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
    "Signature=";

}  // namespace

TEST_CASE("get-vanilla is signed with the suite's signature") {
  CHECK(sigv4_signature(suite_creds.secret_access_key, {"20150830", "us-east-1", "service"},
                        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63") ==
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  CHECK(sign("GET", "/") == prefix + "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("post-vanilla, get-vanilla-query-order-key-case and get-utf8 carry the suite's signatures") {
  CHECK(sign("POST", "/") == prefix + "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  CHECK(sign("GET", "/", "Param2=value2&Param1=value1") ==
        prefix + "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  CHECK(sign("GET", "/\xe1\x88\xb4") == prefix + "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST_CASE("temporary credentials add and sign X-Amz-Security-Token") {
  core::sigv4_request r;
  r.method = "GET";
  r.path = "/";
  r.headers = {{"Host", "example.amazonaws.com"}};
  aws_credentials c = suite_creds;
  c.session_token = "token-from-sts";
  std::string auth = sigv4_sign(r, c, "us-east-1", "service", suite_time);
  CHECK(auth.find("SignedHeaders=host;x-amz-date;x-amz-security-token, ") != std::string::npos);
  bool has_token = false;
  for (const auto& [k, v] : r.headers) has_token = has_token || (k == "X-Amz-Security-Token" && v == "token-from-sts");
  CHECK(has_token);
}
