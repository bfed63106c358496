#include "k8s/tls_cert.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "k8s/http_error.hpp"
#include "k8s/log.hpp"

namespace canaryd::tls {
namespace {

struct pkey_free { void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); } };
struct x509_free { void operator()(X509* p) const noexcept { X509_free(p); } };
struct bio_free { void operator()(BIO* p) const noexcept { BIO_free(p); } };
struct bn_free { void operator()(BIGNUM* p) const noexcept { BN_free(p); } };
struct ext_free { void operator()(X509_EXTENSION* p) const noexcept { X509_EXTENSION_free(p); } };
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

// Logs why OpenSSL failed (the whole error queue) and returns the value callers get.
boost::system::error_code fail(std::string_view what) {
  std::string reason;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!reason.empty()) reason += "; ";
    reason += buf;
  }
  log::warn("certificate generation failed", {{"step", what}, {"error", reason}});
  return http::errc::bad_config;
}

pkey_ptr new_key() { return pkey_ptr(EVP_EC_gen("P-256")); }

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ext_free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool add_name(X509_NAME* name, const char* field, std::string_view value) {
  return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0) == 1;
}

// A new certificate with a random positive 127-bit serial, the validity window and the public key.
x509_ptr new_cert(EVP_PKEY* key, std::chrono::seconds not_before, std::chrono::seconds not_after) {
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return {};
  std::unique_ptr<BIGNUM, bn_free> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
    return {};
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(not_before.count())) ||
      !X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(not_after.count())) ||
      X509_set_pubkey(cert.get(), key) != 1)
    return {};
  return cert;
}

boost::system::result<key_pair> to_pem(X509* cert, EVP_PKEY* key) {
  bio_ptr cb(BIO_new(BIO_s_mem())), kb(BIO_new(BIO_s_mem()));
  if (!cb || !kb || PEM_write_bio_X509(cb.get(), cert) != 1 ||
      PEM_write_bio_PrivateKey(kb.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail("write PEM");
  auto text = [](BIO* b) {
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    return std::string(data, static_cast<std::size_t>(n));
  };
  return key_pair{text(cb.get()), text(kb.get())};
}

// A comma or newline would inject more entries into OpenSSL's configuration syntax.
bool plain_name(std::string_view s) {
  return !s.empty() && s.find_first_of(",\n\r") == std::string_view::npos;
}

}  // namespace

boost::system::result<key_pair> make_ca(std::string_view common_name, std::chrono::seconds validity) {
  ERR_clear_error();
  if (common_name.empty()) {
    log::warn("certificate generation failed", {{"error", "empty CA common name"}});
    return http::errc::bad_config;
  }
  pkey_ptr key = new_key();
  if (!key) return fail("generate CA key");
  x509_ptr cert = new_cert(key.get(), -std::chrono::hours(1), validity);
  if (!cert) return fail("new CA certificate");
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!add_name(name, "CN", common_name) || X509_set_issuer_name(cert.get(), name) != 1)
    return fail("CA subject");
  if (!add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(cert.get(), cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign") ||
      !add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash"))
    return fail("CA extensions");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return fail("sign CA");
  return to_pem(cert.get(), key.get());
}

boost::system::result<key_pair> make_leaf(const key_pair& ca, const leaf_options& opts) {
  ERR_clear_error();
  bio_ptr cab(BIO_new_mem_buf(ca.cert_pem.data(), static_cast<int>(ca.cert_pem.size())));
  bio_ptr kb(BIO_new_mem_buf(ca.key_pem.data(), static_cast<int>(ca.key_pem.size())));
  if (!cab || !kb) return fail("read CA");
  x509_ptr ca_cert(PEM_read_bio_X509(cab.get(), nullptr, nullptr, nullptr));
  if (!ca_cert) return fail("read CA certificate");
  pkey_ptr ca_key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!ca_key) return fail("read CA key");
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) return fail("CA key does not match");

  std::string san;
  for (const auto& d : opts.dns_names) {
    if (!plain_name(d)) {
      log::warn("certificate generation failed", {{"error", "bad DNS name"}, {"name", d}});
      return http::errc::bad_config;
    }
    san += (san.empty() ? "DNS:" : ",DNS:") + d;
  }
  for (const auto& ip : opts.ip_addresses) {
    if (!plain_name(ip)) {
      log::warn("certificate generation failed", {{"error", "bad IP address"}, {"address", ip}});
      return http::errc::bad_config;
    }
    san += (san.empty() ? "IP:" : ",IP:") + ip;
  }
  if (opts.common_name.empty() && san.empty()) {
    log::warn("certificate generation failed", {{"error", "a leaf needs a common name or a subject alternative name"}});
    return http::errc::bad_config;
  }

  pkey_ptr key = new_key();
  if (!key) return fail("generate key");
  x509_ptr cert = new_cert(key.get(), opts.not_before_offset, opts.validity);
  if (!cert) return fail("new certificate");
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& o : opts.organizations)
    if (!add_name(name, "O", o)) return fail("subject O");
  if (!opts.common_name.empty() && !add_name(name, "CN", opts.common_name)) return fail("subject CN");
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1) return fail("issuer");

  std::string eku;
  if (opts.server) eku = "serverAuth";
  if (opts.client) eku += eku.empty() ? "clientAuth" : ",clientAuth";
  X509* issuer = ca_cert.get();
  if (!add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
      (!eku.empty() && !add_ext(cert.get(), issuer, NID_ext_key_usage, eku)) ||
      !add_ext(cert.get(), issuer, NID_subject_key_identifier, "hash") ||
      !add_ext(cert.get(), issuer, NID_authority_key_identifier, "keyid:always"))
    return fail("extensions");
  if (!san.empty() && !add_ext(cert.get(), issuer, NID_subject_alt_name, san)) return fail("subjectAltName");
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) return fail("sign");
  return to_pem(cert.get(), key.get());
}

}  // namespace canaryd::tls
