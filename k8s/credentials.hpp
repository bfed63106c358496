#pragma once
// The credentials a client presents: an Authorization header (static token, token file, basic
// auth or exec plugin token) and possibly a client certificate from an exec plugin.
//
// Refresh rules (the same as client-go's):
//  - token file (kubeconfig tokenFile, in-cluster service-account token): stat()ed before each
//    request and re-read when its mtime, size or inode changed (kubelet rotates bound tokens
//    hourly by swapping a symlink), and re-read unconditionally after a 401;
//  - exec plugin: run on first use, cached until expirationTimestamp (minus a 10 s margin) and
//    re-run after a 401. Concurrent callers share one run of the plugin.
//
// Thread affinity: the io_context thread of the executor; no locking.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "k8s/api_error.hpp"
#include "k8s/config.hpp"
#include "k8s/exec_credential.hpp"

namespace canaryd::k8s {

class credentials {
 public:
  credentials(boost::asio::any_io_executor ex, cluster_config cfg,
              std::chrono::milliseconds exec_timeout = std::chrono::seconds(30));
  ~credentials();
  credentials(const credentials&) = delete;
  credentials& operator=(const credentials&) = delete;

  // The Authorization header value ("Bearer …", "Basic …"), or "" when the config has none.
  // Errors: credentials_failed (token file unreadable or empty, exec plugin failed).
  boost::asio::awaitable<api_result<std::string>> authorization();

  // A request was answered 401: forget what may be stale. Returns true when the next
  // authorization() may differ (token file, exec plugin), i.e. one retry is worthwhile.
  bool invalidate() noexcept;

  // The TLS client configuration to use now: the config's, plus an exec plugin's client
  // certificate when it returned one. tls_generation() changes whenever it changes.
  const http::tls_client_config& tls() const noexcept { return tls_; }
  std::uint64_t tls_generation() const noexcept { return tls_generation_; }

  const cluster_config& config() const noexcept { return cfg_; }
  // What is presented and where it comes from, for a 401's message: "the bearer token of user
  // \"u\" in kubeconfig /x (context \"c\")", "no credentials", ...
  std::string describe() const;
  std::uint64_t exec_runs() const noexcept { return exec_runs_; }
  std::uint64_t token_file_reads() const noexcept { return token_reads_; }

 private:
  api_result<std::string> file_token();
  boost::asio::awaitable<api_result<std::string>> exec_token();

  struct file_state {
    std::time_t mtime_sec = 0;
    long mtime_nsec = 0;
    std::uintmax_t size = 0;
    std::uintmax_t inode = 0;
    bool valid = false;
  };
  struct waiters;

  boost::asio::any_io_executor ex_;
  cluster_config cfg_;
  std::chrono::milliseconds exec_timeout_;
  http::tls_client_config tls_;
  std::uint64_t tls_generation_ = 0;

  std::string file_token_;
  file_state file_state_;
  std::uint64_t token_reads_ = 0;

  std::optional<exec_credential> exec_cached_;
  bool exec_running_ = false;
  std::shared_ptr<waiters> exec_waiters_;
  std::uint64_t exec_runs_ = 0;
};

}  // namespace canaryd::k8s
