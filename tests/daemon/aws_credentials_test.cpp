// The pure parts of daemon/aws_credentials: the JSON the container credentials endpoint and
// IMDS answer, and which full container URIs the chain accepts (as the AWS SDKs do).
#include <doctest/doctest.h>

#include "daemon/aws_credentials.hpp"

#include <ostream>

namespace canaryd {
// For doctest's messages (boost's result prints its value).
std::ostream& operator<<(std::ostream& os, const aws_temporary_credentials& t) { return os << t.creds.access_key_id; }
}  // namespace canaryd

using namespace canaryd;

TEST_CASE("container and IMDS credentials are read from their documented JSON, Expiration included") {
  auto c = read_aws_credentials_json(R"({"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t","Token":"tok",
                                         "Expiration":"2026-12-06T13:00:00Z","RoleArn":"arn:aws:iam::1:role/r"})");
  REQUIRE(c);
  CHECK(c->creds.access_key_id == "ASIAEXAMPLE");
  CHECK(c->creds.secret_access_key == "s3cr3t");
  CHECK(c->creds.session_token == "tok");
  CHECK(canaryd::core::parse_rfc3339("2026-12-06T13:00:00Z") == c->expires);
  // IMDS adds Code, which must be Success.
  CHECK(read_aws_credentials_json(R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"A","SecretAccessKey":"S",
                                      "Token":"T","Expiration":"2026-12-06T13:00:00Z"})"));
  auto failed = read_aws_credentials_json(R"({"Code":"Failed","Message":"no role","AccessKeyId":"A",
                                              "SecretAccessKey":"S","Expiration":"2026-12-06T13:00:00Z"})");
  REQUIRE(!failed);
  CHECK(failed.error().find("no role") != std::string::npos);
  CHECK(!read_aws_credentials_json(R"({"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"tomorrow"})"));
  CHECK(!read_aws_credentials_json(R"({"AccessKeyId":"A","Expiration":"2026-12-06T13:00:00Z"})"));
  CHECK(!read_aws_credentials_json("not json"));
  CHECK(!read_aws_credentials_json("[]"));
}

TEST_CASE("a full container credentials URI is https, or http to loopback or the ECS/EKS agents") {
  for (const char* ok : {"https://creds.example.com/v1/credentials", "http://127.0.0.1:8080/v1/credentials",
                         "http://127.9.9.9/x", "http://localhost/creds", "http://[::1]:9000/creds",
                         "http://169.254.170.2/v2/credentials/abc", "http://169.254.170.23/v1/credentials",
                         "http://[fd00:ec2::23]/v1/credentials"}) {
    INFO(ok);
    CHECK(allowed_container_uri(ok));
  }
  for (const char* bad : {"http://10.0.0.5/creds", "http://evil.example.com/creds", "http://169.254.169.254/latest",
                          "ftp://127.0.0.1/x", "not a url", ""}) {
    INFO(bad);
    CHECK(!allowed_container_uri(bad));
  }
}
