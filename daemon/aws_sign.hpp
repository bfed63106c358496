#pragma once
// AWS Signature Version 4 signing: the HMAC-SHA256 chain (OpenSSL) over core/aws_sigv4's
// string to sign, and a helper that signs a whole request. Pure functions of their inputs.
#include <string>
#include <string_view>

#include "core/aws_sigv4.hpp"

namespace canaryd {

struct aws_credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // "" for long-term keys
};

// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request");
// the signature is hex(HMAC(kSigning, string_to_sign)).
std::string sigv4_signature(std::string_view secret_access_key, const core::sigv4_scope& scope,
                            std::string_view string_to_sign);

// Adds X-Amz-Date (and X-Amz-Security-Token when the credentials have one) to `r.headers`,
// signs every header in it, and returns the Authorization header's value.
std::string sigv4_sign(core::sigv4_request& r, const aws_credentials& creds, std::string_view region,
                       std::string_view service, core::wall_time now);

}  // namespace canaryd
