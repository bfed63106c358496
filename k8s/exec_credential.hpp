#pragma once
// Exec credential plugins (client.authentication.k8s.io/v1 and v1beta1 ExecCredential):
// building KUBERNETES_EXEC_INFO, running the plugin, parsing what it prints.
//
// Running a plugin must not block the io_context: run_exec_plugin() spawns the process with
// posix_spawn, reads its stdout and stderr through asio::posix::stream_descriptor on pipes, and
// reaps it with waitpid(WNOHANG) polled on a short timer once the pipes closed (no SIGCHLD
// handler, which would belong to the whole process). A plugin that outlives its deadline is
// killed (SIGKILL) and reaped. Thread affinity: the io_context thread of `ex`.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "k8s/api_error.hpp"
#include "k8s/config.hpp"

namespace canaryd::k8s {

struct exec_credential {
  std::string token;
  std::string client_cert_pem;  // status.clientCertificateData (PEM text, not base64)
  std::string client_key_pem;   // status.clientKeyData
  // status.expirationTimestamp; nullopt: valid until the server says 401.
  std::optional<std::chrono::system_clock::time_point> expiry;
};

// The KUBERNETES_EXEC_INFO value: an ExecCredential with spec.interactive=false and, when
// provideClusterInfo is set, spec.cluster (server, tls-server-name, insecure-skip-tls-verify,
// certificate-authority-data).
std::string exec_info_json(const exec_plugin_config& plugin, const cluster_config& cluster);

// Parses the plugin's stdout. The apiVersion must equal the configured one; the status must
// hold a token or a client certificate and key. Errors have code credentials_failed.
api_result<exec_credential> parse_exec_credential(std::string_view json, std::string_view expected_api_version);

// RFC 3339 ("2024-05-01T10:00:00Z", fractional seconds and offsets allowed).
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s);

// Runs the plugin with `exec_info` in KUBERNETES_EXEC_INFO and the configured env added to
// canaryd's own, stdin from /dev/null, within `timeout`. Errors (credentials_failed) are one
// line: the command, the exit status or signal, the first line of its stderr, and the
// installHint when the command is missing.
boost::asio::awaitable<api_result<exec_credential>> run_exec_plugin(boost::asio::any_io_executor ex,
                                                                    exec_plugin_config plugin,
                                                                    std::string exec_info,
                                                                    std::chrono::milliseconds timeout);

}  // namespace canaryd::k8s
