#pragma once
// How to reach and authenticate to a Kubernetes API server: from kubeconfig files or from the
// in-cluster service account.
//
// Errors: configuration is read once at startup, so every loader throws config_error, whose
// what() is one line naming the file and what is wrong, e.g.
//   kubeconfig /x: context "foo" not found
//   kubeconfig /x: cannot read certificate-authority /y: No such file or directory
// (STYLE.md: a bad configuration at startup is an exception that ends the process.) What can
// change at runtime — the token file, exec plugin output — is read by credentials.hpp and
// fails as values.
//
// Files named by the kubeconfig (certificate-authority, client-certificate, client-key) are
// read here, once, and their PEM text is checked with OpenSSL so a wrong file is reported at
// startup rather than as an opaque TLS failure later. tokenFile is read here once (to fail
// early) and re-read by credentials.hpp whenever it changes.
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "k8s/tls_config.hpp"

namespace canaryd::k8s {

class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// users[].user.exec of a kubeconfig (client.authentication.k8s.io ExecConfig).
struct exec_plugin_config {
  std::string api_version;  // client.authentication.k8s.io/v1 or /v1beta1
  std::string command;      // a relative path containing '/' is resolved against the kubeconfig's dir
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string install_hint;           // shown when the command cannot be run
  bool provide_cluster_info = false;  // pass spec.cluster in KUBERNETES_EXEC_INFO
  std::string interactive_mode;       // informational: canaryd never has a terminal
};

struct basic_auth {
  std::string username;
  std::string password;
};

struct cluster_config {
  std::string server;              // "https://host:port[/prefix]" (validated: http or https)
  http::tls_client_config tls;     // CA / client certificate PEM, verify flag, tls-server-name
  std::string token;               // static bearer token (kubeconfig user.token)
  std::filesystem::path token_file;  // re-read when it changes and on a 401 (wins over token)
  std::optional<basic_auth> basic;
  std::optional<exec_plugin_config> exec;
  std::string namespace_name = "default";  // the context's namespace, or the in-cluster one
  bool in_cluster = false;
  // Where this came from, for messages: "kubeconfig /x (context \"c\")", "in-cluster", "-master".
  std::string source;
  // Names from the kubeconfig (empty in-cluster), for logs and exec cluster info.
  std::string context_name;
  std::string cluster_name;
  std::string user_name;
};

// The daemon's flags (Flagger's -kubeconfig, -master, and kubectl's --context).
struct config_flags {
  std::string kubeconfig;  // a path, or ':'-separated paths merged (the first definition wins)
  std::string master;      // overrides the server URL
  std::string context;     // instead of current-context
  // The service-account directory (token, ca.crt, namespace). Empty: the environment variable
  // CANARYD_SA_DIR, else /var/run/secrets/kubernetes.io/serviceaccount.
  std::filesystem::path service_account_dir;
};

// Picks the source like client-go's BuildConfigFromFlags (which Flagger uses), then kubectl:
//  1. -kubeconfig given: those files; -master overrides their server.
//  2. neither given and KUBERNETES_SERVICE_HOST set: in-cluster.
//  3. only -master given: that server, no credentials, TLS verified against the system store.
//  4. otherwise $KUBECONFIG (':'-separated), else ~/.kube/config, else an error saying so.
cluster_config load_config(const config_flags& flags);

// Loads and merges kubeconfig files (first definition of a name wins; current-context from the
// first file that sets it) and resolves `context` (empty: current-context).
cluster_config load_kubeconfig(const std::vector<std::filesystem::path>& files,
                               const std::string& context = {}, const std::string& master = {});

// In-cluster: KUBERNETES_SERVICE_HOST/PORT, `sa_dir`/token, `sa_dir`/ca.crt, `sa_dir`/namespace.
cluster_config load_in_cluster(const std::filesystem::path& sa_dir);

// Splits a KUBECONFIG-style list (':'-separated; empty entries skipped).
std::vector<std::filesystem::path> split_path_list(const std::string& list);

// Standard base64 (whitespace ignored); nullopt if malformed.
std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

}  // namespace canaryd::k8s
