#pragma once
// TLS settings, as PEM text (files are read by the caller: kubeconfig and in-cluster config
// resolve paths, kubesim generates its certificates in memory).
#include <string>

namespace canaryd::http {

struct tls_client_config {
  bool verify = true;            // false only when a kubeconfig says insecure-skip-tls-verify
  std::string ca_pem;            // trust anchors; empty means the system store
  std::string cert_pem;          // client certificate (optional)
  std::string key_pem;           // its private key
  std::string server_name;       // SNI and name to verify; empty means the URL's host
};

struct tls_server_config {
  std::string cert_pem;          // serving certificate chain
  std::string key_pem;
  std::string client_ca_pem;     // if set, client certificates signed by it are verified (optional)
};

}  // namespace canaryd::http
