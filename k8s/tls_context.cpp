#include "k8s/tls_context.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "k8s/http_error.hpp"
#include "k8s/log.hpp"

namespace canaryd::http {
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace {

boost::system::error_code fail(std::string_view what, const boost::system::error_code& ec) {
  log::warn("TLS configuration failed", {{"step", what}, {"error", ec.message()}});
  return errc::bad_config;
}

constexpr auto tls_options = ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1 | ssl::context::single_dh_use;

// Advertises the CAs whose client certificates we accept: clients (Go's crypto/tls among them)
// pick the certificate to present from this list.
boost::system::error_code add_client_ca_names(SSL_CTX* ctx, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return errc::bad_config;
  for (;;) {
    std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                      &X509_free);
    if (!cert) break;
    if (SSL_CTX_add_client_CA(ctx, cert.get()) != 1) return errc::bad_config;
  }
  ERR_clear_error();  // the PEM "no start line" at the end of the text
  return {};
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

boost::system::result<ssl::context> make_server_context(const tls_server_config& c) {
  if (c.cert_pem.empty() || c.key_pem.empty()) {
    log::warn("TLS configuration failed", {{"error", "server certificate or key missing"}});
    return errc::bad_config;
  }
  ssl::context ctx(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx.set_options(tls_options, ec);
  if (ec) return fail("options", ec);
  ctx.use_certificate_chain(asio::buffer(c.cert_pem), ec);
  if (ec) return fail("server certificate", ec);
  ctx.use_private_key(asio::buffer(c.key_pem), ssl::context::pem, ec);
  if (ec) return fail("server key", ec);
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    ERR_clear_error();
    log::warn("TLS configuration failed", {{"error", "server key does not match its certificate"}});
    return errc::bad_config;
  }
  if (!c.client_ca_pem.empty()) {
    ctx.add_certificate_authority(asio::buffer(c.client_ca_pem), ec);
    if (ec) return fail("client CA", ec);
    if (auto e = add_client_ca_names(ctx.native_handle(), c.client_ca_pem)) return fail("client CA names", e);
    ctx.set_verify_mode(ssl::verify_peer, ec);
    if (ec) return fail("verify mode", ec);
  }
  return ctx;
}

boost::system::result<ssl::context> make_client_context(const tls_client_config& c) {
  ssl::context ctx(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_options(tls_options, ec);
  if (ec) return fail("options", ec);
  if (c.ca_pem.empty()) {
    ctx.set_default_verify_paths(ec);
    if (ec) return fail("system trust store", ec);
  } else {
    ctx.add_certificate_authority(asio::buffer(c.ca_pem), ec);
    if (ec) return fail("CA", ec);
  }
  if (c.cert_pem.empty() != c.key_pem.empty()) {
    log::warn("TLS configuration failed", {{"error", "client certificate without key, or key without certificate"}});
    return errc::bad_config;
  }
  if (!c.cert_pem.empty()) {
    ctx.use_certificate_chain(asio::buffer(c.cert_pem), ec);
    if (ec) return fail("client certificate", ec);
    ctx.use_private_key(asio::buffer(c.key_pem), ssl::context::pem, ec);
    if (ec) return fail("client key", ec);
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
      ERR_clear_error();
      log::warn("TLS configuration failed", {{"error", "client key does not match its certificate"}});
      return errc::bad_config;
    }
  }
  ctx.set_verify_mode(c.verify ? ssl::verify_peer : ssl::verify_none, ec);
  if (ec) return fail("verify mode", ec);
  return ctx;
}

boost::system::error_code set_client_identity(SSL* ssl, const std::string& host, bool verify) {
  bool ip = is_ip_address(host);
  if (!ip && !host.empty() && SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) {
    ERR_clear_error();
    return errc::bad_config;
  }
  if (!verify || host.empty()) return {};
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
              : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (ok != 1) {
    ERR_clear_error();
    return errc::bad_config;
  }
  if (!ip) X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return {};
}

std::string verify_result_text(SSL* ssl) {
  long r = SSL_get_verify_result(ssl);
  if (r == X509_V_OK) return "ok";
  return X509_verify_cert_error_string(r);
}

peer_subject verified_peer_subject(SSL* ssl) {
  peer_subject out;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return out;
  out.verified = true;
  X509_NAME* name = X509_get_subject_name(cert);
  auto text = [](X509_NAME_ENTRY* e) {
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    std::string s;
    if (n >= 0) s.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return s;
  };
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;)
    out.common_name = text(X509_NAME_get_entry(name, i));  // the last CN, as Go's crypto/x509 does
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_organizationName, i)) >= 0;)
    out.organizations.push_back(text(X509_NAME_get_entry(name, i)));
  return out;
}

}  // namespace canaryd::http
