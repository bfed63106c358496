#pragma once
// The Kubernetes API client: typed-free CRUD for any group/version/resource over one
// http::client (keep-alive connections reused), with authentication per cluster_config,
// client-side rate limiting, retries and a deadline on every operation.
//
// Thread affinity: one io_context thread (the executor given to create()); no strands, no
// mutexes. Many coroutines may use one client at once.
// Deadlines: every operation (including its retries, rate-limit waits and backoff) ends within
// options.timeout; a watch stream's head too (its body is the caller's: see watch.hpp).
// Cancellation: cancelling the awaiting coroutine (e.g. `op || timer`) cancels the request in
// flight (the HTTP layer closes that connection) and returns errc::cancelled.
// Errors: values (api_error), never exceptions.
// Retries (with jittered exponential backoff, at most options.max_attempts tries):
//   - 429 on every verb (the server did not process it), after Retry-After; only that request
//     waits, as in client-go (the rate limiter is not paused for everyone);
//   - 5xx and transport failures on idempotent verbs: GET, LIST, DELETE, and PUT carrying
//     metadata.resourceVersion (a replay can only succeed once or get 409);
//   - a failed connect on every verb (nothing was sent);
//   - 401 once per operation when the credentials can change (token file, exec plugin).
//
// Arguments: `resource` is taken by reference and strings by string_view. They must outlive the
// co_await (always true for `co_await client.get(r, ns, name)`); never co_spawn these calls with
// temporaries. Never pass a braced temporary (`{}`, `{...}`) for an options or resource argument:
// GCC 12 destroys such temporaries twice when they are bound inside a co_await, even through a
// const reference. Name the argument, or use the overloads without options.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "k8s/api_error.hpp"
#include "k8s/backoff.hpp"
#include "k8s/config.hpp"
#include "k8s/http.hpp"
#include "k8s/http_client.hpp"
#include "k8s/object.hpp"

namespace canaryd::k8s {

// A group/version/resource and its scope.
struct resource {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string plural;   // "deployments"
  bool namespaced = true;

  // "/api/v1/namespaces/<ns>/<plural>[/<name>[/<sub>]]", "/apis/<g>/<v>/...", or the
  // cluster-scoped form; `ns` empty on a namespaced resource means all namespaces (lists and
  // watches only). Names are percent-encoded.
  std::string path(std::string_view ns, std::string_view name = {}, std::string_view subresource = {}) const;
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
};

struct list_options {
  std::string label_selector;
  std::string field_selector;
  std::int64_t limit = 0;          // 0: everything in one page
  std::string continue_token;
  std::string resource_version;    // "": a consistent read; "0": any cached state
};

struct object_list {
  std::string resource_version;    // of the list: where a watch continues from
  std::string continue_token;      // non-empty when more pages follow
  std::int64_t remaining_item_count = -1;
  std::vector<object> items;
};

enum class patch_type { merge, json, strategic, apply };
std::string_view content_type(patch_type t) noexcept;

enum class propagation { unset, background, foreground, orphan };

struct delete_options {
  propagation policy = propagation::unset;
  std::optional<std::int64_t> grace_period_seconds;
  std::string precondition_uid;
  std::string precondition_resource_version;
};

// Query parameters of a watch request (see watch.hpp for the resuming watcher).
struct watch_params {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;
  bool allow_bookmarks = true;
  std::chrono::seconds timeout{300};  // timeoutSeconds: the server ends the stream after it
};

struct api_client_options {
  double qps = 100;    // Flagger's -kubeconfig-qps default
  int burst = 250;     // Flagger's -kubeconfig-burst default
  std::chrono::milliseconds timeout{30'000};  // per operation, retries included
  int max_attempts = 5;
  backoff_policy retry_backoff{std::chrono::milliseconds(100), std::chrono::milliseconds(5'000), 2.0, 0.5};
  std::function<double()> random01;   // jitter source; empty: seeded PRNG
  std::chrono::milliseconds max_retry_after{60'000};  // a longer Retry-After is capped
  std::string user_agent = "canaryd/0.1.0";
  std::string field_manager = "canaryd";  // for server-side apply patches
  std::size_t max_idle_connections = 8;
  std::chrono::milliseconds exec_timeout{30'000};  // an exec credential plugin's deadline
};

// Request counters for /metrics. verb is GET, LIST, WATCH, POST, PUT, PATCH or DELETE; code is
// the HTTP status, or 0 when no answer arrived.
struct request_stats {
  std::map<std::pair<std::string, int>, std::uint64_t> requests;
  std::uint64_t retries = 0;          // attempts beyond the first
  std::uint64_t throttled = 0;        // requests that waited for the rate limiter
  std::uint64_t retry_after_waits = 0;
  std::uint64_t auth_refreshes = 0;   // 401s answered by re-reading the token / re-running exec
};

class credentials;

class api_client {
 public:
  // Fails (bad_config) only if the TLS material cannot be loaded.
  static api_result<std::unique_ptr<api_client>> create(boost::asio::any_io_executor ex, cluster_config cfg,
                                                        api_client_options opts = {});
  ~api_client();
  api_client(const api_client&) = delete;
  api_client& operator=(const api_client&) = delete;

  boost::asio::awaitable<api_result<object>> get(const resource& r, std::string_view ns, std::string_view name);
  // One page (or everything when options.limit is 0). ns "" lists all namespaces.
  boost::asio::awaitable<api_result<object_list>> list(const resource& r, std::string_view ns,
                                                       const list_options& opts);
  boost::asio::awaitable<api_result<object_list>> list(const resource& r, std::string_view ns);
  // Every page, `page_size` at a time; if a continue token expires (410) the list restarts
  // without paging, like client-go's pager. The result's continue_token is empty.
  boost::asio::awaitable<api_result<object_list>> list_all(const resource& r, std::string_view ns,
                                                           const list_options& opts,
                                                           std::int64_t page_size = 500);
  boost::asio::awaitable<api_result<object_list>> list_all(const resource& r, std::string_view ns);
  boost::asio::awaitable<api_result<object>> create(const resource& r, std::string_view ns, std::string_view body);
  boost::asio::awaitable<api_result<object>> update(const resource& r, std::string_view ns, std::string_view name,
                                                    std::string_view body);
  boost::asio::awaitable<api_result<object>> update_status(const resource& r, std::string_view ns,
                                                           std::string_view name, std::string_view body);
  boost::asio::awaitable<api_result<object>> patch(const resource& r, std::string_view ns, std::string_view name,
                                                   patch_type type, std::string_view body);
  boost::asio::awaitable<api_result<object>> patch_status(const resource& r, std::string_view ns,
                                                          std::string_view name, patch_type type,
                                                          std::string_view body);
  // Returns what the server returns: the object (still present while finalizers run) or a
  // Status (kind "Status") for an immediate deletion.
  boost::asio::awaitable<api_result<object>> remove(const resource& r, std::string_view ns, std::string_view name,
                                                    const delete_options& opts);
  boost::asio::awaitable<api_result<object>> remove(const resource& r, std::string_view ns, std::string_view name);

  // Any request (discovery, /version, subresources). `verb` names it in the stats. The body of a
  // 2xx answer is returned as is; other statuses come back as api_error.
  boost::asio::awaitable<api_result<http::response>> request(std::string method, std::string target,
                                                             std::string body = {},
                                                             std::string content_type = "application/json",
                                                             std::string verb = {});

  // Opens a watch stream (GET ...?watch=1) and returns it once a 200 head arrived. The stream's
  // body is newline-delimited watch events; the caller reads it with its own idle deadline.
  boost::asio::awaitable<api_result<std::unique_ptr<http::body_stream>>> open_watch(const resource& r,
                                                                                    std::string_view ns,
                                                                                    const watch_params& p);

  const cluster_config& config() const noexcept;
  const api_client_options& options() const noexcept { return opts_; }
  const request_stats& stats() const noexcept { return stats_; }
  credentials& creds() noexcept { return *creds_; }
  boost::asio::any_io_executor get_executor() const noexcept { return ex_; }
  // Closes idle connections; every later call fails with errc::cancelled.
  void shutdown() noexcept;

  // A fence (leader election): a request for which `allowed` returns false is not sent and fails
  // with errc::cancelled ("fenced: ..."). Checked at every attempt, retries included.
  void set_fence(std::function<bool(const http::request&)> allowed) { fence_ = std::move(allowed); }

 private:
  struct impl;
  api_client(boost::asio::any_io_executor ex, api_client_options opts);

  boost::asio::awaitable<api_result<http::response>> execute(http::request req, std::string verb, bool idempotent,
                                                             std::string_view description);
  boost::asio::awaitable<api_result<object>> object_call(std::string method, std::string target,
                                                         std::string_view body, std::string content_type,
                                                         std::string verb, bool idempotent);
  api_result<http::client*> http_client();

  boost::asio::any_io_executor ex_;
  api_client_options opts_;
  std::unique_ptr<credentials> creds_;
  std::unique_ptr<impl> impl_;
  request_stats stats_;
  bool shut_down_ = false;
  std::function<bool(const http::request&)> fence_;
};

}  // namespace canaryd::k8s
