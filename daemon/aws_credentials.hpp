#pragma once
// AWS credentials as the SDKs' default chain finds them, in its order:
//  1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//  2. web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (AWS_ROLE_SESSION_NAME
//     optional), exchanged with STS AssumeRoleWithWebIdentity (unsigned) for temporary keys;
//     STS is https://sts.<region>.amazonaws.com, or AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL.
// Temporary credentials are kept until five minutes before they expire, then fetched again.
// (The container credentials endpoint and IMDSv2 are not implemented yet: without either of
// the above, the chain answers "no AWS credentials".)
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
  std::map<std::string, cached> web_identity_;  // by role ARN and region
};

// The text of <tag>...</tag> in an XML answer (STS), unescaped; nullopt when absent.
std::optional<std::string> xml_text(std::string_view xml, std::string_view tag);

}  // namespace canaryd
