#pragma once
// The running daemon: HTTP endpoints (/healthz, /readyz, /metrics), the Kubernetes client,
// the watch caches and the per-canary tasks.
//
// Thread affinity: the io_context thread only. Cancellation: stop() cancels every task and
// closes every connection; the io_context then runs out of work within the drain bound.
#include <boost/asio/any_io_executor.hpp>
#include <boost/system/result.hpp>

#include <memory>
#include <string>

#include "daemon/options.hpp"

namespace canaryd {

class app {
 public:
  virtual ~app() = default;
  // Starts everything. A configuration error (kubeconfig, TLS material, port in use) comes
  // back as a one-line message; nothing is left running then.
  static boost::system::result<std::unique_ptr<app>, std::string> start(boost::asio::any_io_executor ex,
                                                                       const options& opts);
  // Graceful stop: cancel every task and close connections, so the io_context runs out of
  // work. The caller bounds the drain (main abandons what is left after two seconds).
  virtual void stop() = 0;
  // 0, or 1 once a fatal error (the API server unreachable or not serving Canaries at start)
  // has stopped the daemon.
  virtual int exit_code() const = 0;
  // True once stop() was called, by a signal or by a fatal error.
  virtual bool stopping() const = 0;
};

}  // namespace canaryd
