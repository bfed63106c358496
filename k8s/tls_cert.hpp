#pragma once
// In-memory X.509 certificate generation (OpenSSL 3 EVP APIs, EC P-256 keys, SHA-256
// signatures): a self-signed CA and leaf certificates it signs. kubesim makes its CA, serving
// certificate and client certificates with it at start; tests make good and wrong CAs.
//
// Thread affinity: none (pure functions over OpenSSL's thread-safe APIs).
// Errors: values. errc::bad_config when the input cannot be used (a CA whose PEM does not parse,
// an IP address that is not one, a name with a comma); the OpenSSL reason is logged at warn.
#include <boost/system/result.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace canaryd::tls {

struct key_pair {
  std::string cert_pem;  // one "-----BEGIN CERTIFICATE-----" block
  std::string key_pem;   // its private key, PKCS#8 "-----BEGIN PRIVATE KEY-----"
};

// A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign), valid from one hour ago
// (clock skew) for `validity`.
boost::system::result<key_pair> make_ca(std::string_view common_name,
                                        std::chrono::seconds validity = std::chrono::hours(24 * 3650));

struct leaf_options {
  std::string common_name;                 // Kubernetes reads a client cert's CN as the user name
  std::vector<std::string> organizations;  // ... and its O entries as the groups
  std::vector<std::string> dns_names;      // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;   // subjectAltName IP entries ("127.0.0.1", "::1")
  bool server = true;                      // extendedKeyUsage serverAuth
  bool client = false;                     // extendedKeyUsage clientAuth
  // Valid from now + not_before_offset until now + validity. A negative validity makes an
  // expired certificate (for tests).
  std::chrono::seconds validity = std::chrono::hours(24 * 365);
  std::chrono::seconds not_before_offset = -std::chrono::hours(1);  // clock skew
};

// A leaf certificate signed by `ca` (as returned by make_ca).
boost::system::result<key_pair> make_leaf(const key_pair& ca, const leaf_options& opts);

}  // namespace canaryd::tls
