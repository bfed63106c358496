#pragma once
// asio::ssl::context construction from in-memory PEM (tls_config.hpp), shared by the HTTP client
// and server. Internal to the HTTP layer: only http_client.cpp and http_server.cpp include it.
//
// Errors: errc::bad_config when the PEM material cannot be loaded; the OpenSSL reason is logged.
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/result.hpp>
#include <string>
#include <vector>

#include "k8s/tls_config.hpp"

namespace canaryd::http {

// TLS 1.2+. If client_ca_pem is set, clients may present a certificate, which must then verify
// against it (verify_peer without fail_if_no_peer_cert: a client without one still connects and
// authenticates another way, as with kube-apiserver).
boost::system::result<boost::asio::ssl::context> make_server_context(const tls_server_config& c);

// TLS 1.2+. Trusts ca_pem (or the system store when empty), presents cert_pem/key_pem if set,
// verifies the peer unless c.verify is false. Host name checks are per connection
// (see set_client_identity).
boost::system::result<boost::asio::ssl::context> make_client_context(const tls_client_config& c);

// Sets SNI (names only, never addresses: RFC 6066) and, when verifying, the name or IP address
// the server's certificate must match. `ssl` is the connection's SSL*.
boost::system::error_code set_client_identity(SSL* ssl, const std::string& host, bool verify);

// The OpenSSL verification result of a finished or failed handshake, as text ("ok" if none).
std::string verify_result_text(SSL* ssl);

// The subject CN and O entries of the verified peer certificate, if one was presented and verified.
struct peer_subject {
  bool verified = false;
  std::string common_name;
  std::vector<std::string> organizations;
};
peer_subject verified_peer_subject(SSL* ssl);

}  // namespace canaryd::http
