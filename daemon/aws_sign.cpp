#include "daemon/aws_sign.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cassert>

#include "core/hash.hpp"

namespace canaryd {

namespace {

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const unsigned char* r = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  assert(r != nullptr);
  (void)r;
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

std::string sigv4_signature(std::string_view secret_access_key, const core::sigv4_scope& scope,
                            std::string_view string_to_sign) {
  std::string k = hmac("AWS4" + std::string(secret_access_key), scope.date);
  k = hmac(k, scope.region);
  k = hmac(k, scope.service);
  k = hmac(k, "aws4_request");
  std::string sig = hmac(k, string_to_sign);
  return core::to_hex(reinterpret_cast<const std::uint8_t*>(sig.data()), sig.size());
}

std::string sigv4_sign(core::sigv4_request& r, const aws_credentials& creds, std::string_view region,
                       std::string_view service, core::wall_time now) {
  const std::string date = core::amz_date(now);
  r.headers.emplace_back("X-Amz-Date", date);
  if (!creds.session_token.empty()) r.headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  core::sigv4_scope scope{core::amz_day(now), std::string(region), std::string(service)};
  const std::string canonical = core::sigv4_canonical_request(r);
  const std::string to_sign = core::sigv4_string_to_sign(date, scope, canonical);
  return core::sigv4_authorization(creds.access_key_id, scope, core::sigv4_signed_headers(r),
                                   sigv4_signature(creds.secret_access_key, scope, to_sign));
}

}  // namespace canaryd
