#pragma once
// kubesim's Kubernetes API: the REST paths of a kube-apiserver over canaryd's HTTP server
// (k8s/http_server.hpp), on top of the object store.
//
// Serves discovery (/api, /apis, /version, /openapi/v2), health (/healthz, /livez, /readyz),
// every resource of the store with get, list, watch, create, update, patch (merge, JSON patch,
// strategic merge for built-in kinds), delete and deletecollection, the status and scale
// subresources, Table output (as=Table), schema validation and pruning of custom resources,
// and kubesim's admin endpoints:
//   GET/POST /kubesim/faults   fault settings (fault_settings as JSON) and the one-shot actions
//                              {"drop_watches":true} and {"compact":true}
//   GET/DELETE /kubesim/stats  request counters by verb, resource, client and code (DELETE resets)
//   POST /kubesim/tokens       {"name","token","expires"}: accept one more bearer token
// Errors are Status objects with a real server's codes, reasons and messages.
//
// Authentication (require_auth, kubesim --tls): a bearer token from `tokens` (not expired) or
// a client certificate the HTTP server verified against kubesim's CA; anything else is 401.
// /healthz, /livez, /readyz and /version are open to a request without credentials.
//
// Thread affinity: the io_context thread only; no locks. Cancellation: stop() ends every watch
// stream; requests in flight finish.
#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "k8s/http_server.hpp"
#include "sim/api/faults.hpp"
#include "sim/api/store.hpp"

namespace kubesim {

struct bearer_token {
  std::string user;   // the user name requests made with it are accounted to
  std::string token;
  std::optional<std::chrono::system_clock::time_point> expires;  // none: never
};

struct api_options {
  bool require_auth = false;
  std::vector<bearer_token> tokens;
  std::size_t max_body_bytes = 3u << 20;  // a real server's limit: 413 beyond
  std::chrono::milliseconds bookmark_interval{5'000};
  std::chrono::seconds default_watch_timeout{1'800};
  std::size_t max_watch_queue = 100'000;  // events buffered for a slow watcher before it is cut
  std::string request_log_path;           // one JSON line per request; "" for none
  std::uint64_t seed = 0;                 // for fault injection draws (0: random)
  std::function<std::chrono::system_clock::time_point()> now;  // for ages in tables
  // Called after POST /kubesim/faults changed the settings (main applies pause_controllers).
  std::function<void(const fault_settings&)> on_faults_changed;
};

class api_server {
 public:
  virtual ~api_server() = default;
  // The handler to give start_server(); valid while this object lives.
  virtual canaryd::http::handler handler() = 0;
  // host:port clients reach the server at (for /api's serverAddressByClientCIDRs).
  virtual void set_address(std::string host_port) = 0;
  virtual void add_token(bearer_token t) = 0;
  // Cuts every open watch stream now (fault injection).
  virtual void drop_watches() = 0;
  virtual std::size_t open_watches() const = 0;
  virtual boost::json::object stats() const = 0;
  // Ends every watch; later requests still work (stop the HTTP server to refuse them).
  virtual void stop() = 0;
};

std::unique_ptr<api_server> make_api_server(boost::asio::any_io_executor ex, store& s, fault_settings& faults,
                                            api_options opts);

}  // namespace kubesim
