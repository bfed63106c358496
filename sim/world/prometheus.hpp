#pragma once
// A real Prometheus server (Debian's /usr/bin/prometheus) run by kubesim as a child process,
// scraping the traffic emulator's /metrics every second, so canaryd's metric checks run real
// PromQL against real rate() over real scrapes.
//
// The child gets a temporary directory (its prometheus.yml, its TSDB and its log), listens on a
// free loopback port, and dies with kubesim: stop() sends SIGTERM then SIGKILL, the destructor
// does the same (bounded, blocking: it runs at exit), and PR_SET_PDEATHSIG sends it SIGTERM if
// kubesim is killed outright. The directory is removed when the object dies.
//
// Thread affinity: the io_context thread only. A timer reaps the child (waitpid WNOHANG) and
// logs an unexpected exit with the tail of Prometheus's log; no SIGCHLD handler is installed.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace kubesim::world {

struct prometheus_options {
  std::string binary = "/usr/bin/prometheus";
  std::string scrape_target;                           // "127.0.0.1:40124" (serving /metrics)
  std::string listen_host = "127.0.0.1";
  std::chrono::milliseconds scrape_interval{1000};
  std::chrono::milliseconds ready_timeout{60'000};     // until the first scrape is queryable
  int attempts = 3;                                    // a raced-away port is retried
};

class prometheus_child {
 public:
  virtual ~prometheus_child() = default;
  virtual std::string url() const = 0;  // "http://127.0.0.1:40125"
  virtual int pid() const = 0;          // -1 once reaped
  virtual bool running() const = 0;
  // SIGTERM, up to `grace` for it to exit, then SIGKILL. Idempotent.
  virtual boost::asio::awaitable<void> stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) = 0;
};

// Starts Prometheus and completes once `up` for the scrape target answers 1 through its HTTP
// API, i.e. the first scrape landed (a few seconds). Throws std::runtime_error with the reason
// (no binary, bad flags, early exit with its log's tail, not ready in time): a startup failure.
boost::asio::awaitable<std::unique_ptr<prometheus_child>> start_prometheus(boost::asio::any_io_executor ex,
                                                                           prometheus_options opts);

// The prometheus.yml that start_prometheus writes (exposed for tests).
std::string prometheus_config(const prometheus_options& opts);

}  // namespace kubesim::world
