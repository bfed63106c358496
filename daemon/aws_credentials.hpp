#pragma once
// AWS credentials as the SDKs' default chain finds them, in its order:
//  1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//  2. web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (AWS_ROLE_SESSION_NAME
//     optional), exchanged with STS AssumeRoleWithWebIdentity (unsigned) for temporary keys;
//     STS is https://sts.<region>.amazonaws.com, or AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL;
//  3. the container credentials endpoint (ECS task roles, EKS Pod Identity), when
//     AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2 + it; wins) or
//     AWS_CONTAINER_CREDENTIALS_FULL_URI is set: GET it, with `Authorization:` the contents of
//     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read every fetch; wins) or
//     AWS_CONTAINER_AUTHORIZATION_TOKEN. A full URI must be https, or http to a loopback address
//     or to the ECS (169.254.170.2) or EKS (169.254.170.23, fd00:ec2::23) agents, as the SDKs
//     require. When set, this is the last source: the chain does not go on to IMDS;
//  4. the EC2 instance metadata service, IMDSv2 (unless AWS_EC2_METADATA_DISABLED=true):
//     PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds: 21600), then with
//     X-aws-ec2-metadata-token GET /latest/meta-data/iam/security-credentials/ (the role) and
//     .../<role> (the keys). The endpoint is AWS_EC2_METADATA_SERVICE_ENDPOINT, else
//     http://169.254.169.254 (http://[fd00:ec2::254] when AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE
//     is IPv6). The session token is kept until a minute before its TTL, and dropped on a 401.
//     There is no IMDSv1 fallback.
// Temporary credentials (2-4) are kept until five minutes before they expire, then fetched
// again. Requests to STS, the container endpoint and IMDS are retried as the SDKs' standard
// retryer does, bounded: at most 3 attempts, on a transport error, a 5xx or a 429, after an
// exponential backoff with full jitter (base 100 ms, so at most 100 + 200 ms of waiting).
//
// Thread affinity: the io_context thread. Errors: values.
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include <map>
#include <optional>
#include <string>

#include "core/wall_time.hpp"
#include "daemon/aws_sign.hpp"

namespace canaryd {

class provider_env;

class aws_credential_chain {
 public:
  boost::asio::awaitable<boost::system::result<aws_credentials, std::string>> get(provider_env& env,
                                                                                  const std::string& region);

 private:
  struct cached {
    aws_credentials creds;
    core::wall_time expires;
  };
  using creds_result = boost::system::result<aws_credentials, std::string>;
  boost::asio::awaitable<creds_result> web_identity(provider_env& env, const std::string& region);
  boost::asio::awaitable<creds_result> container(provider_env& env);
  boost::asio::awaitable<creds_result> imds(provider_env& env);

  std::map<std::string, cached> cache_;  // by source: "web|<role>|<region>", "container|<uri>", "imds|<endpoint>"
  std::string imds_token_;
  core::wall_time imds_token_expires_{};
};

// The text of <tag>...</tag> in an XML answer (STS), unescaped; nullopt when absent.
std::optional<std::string> xml_text(std::string_view xml, std::string_view tag);

// Temporary credentials from the JSON the container endpoint and IMDS answer
// ({"AccessKeyId", "SecretAccessKey", "Token", "Expiration": RFC 3339}; IMDS adds
// "Code": "Success"), or why not.
struct aws_temporary_credentials {
  aws_credentials creds;
  core::wall_time expires;
};
boost::system::result<aws_temporary_credentials, std::string> read_aws_credentials_json(std::string_view body);

// Whether a full container credentials URI may be used (https, or http to a loopback address or
// the ECS/EKS agents' addresses).
bool allowed_container_uri(std::string_view uri);

}  // namespace canaryd
