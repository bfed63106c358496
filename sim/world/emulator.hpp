#pragma once
// Drives kubesim's traffic world (traffic.hpp) in real time and serves its /metrics over plain
// HTTP on a port of its own (through k8s/http_server.hpp), for Prometheus to scrape.
//
// Thread affinity: the io_context thread only. Cancellation: stop() (or the destructor) cancels
// the tick timer and closes the server; a /metrics response in flight fails and ends.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "sim/api/store.hpp"
#include "sim/world/traffic.hpp"

namespace kubesim::world {

struct emulator_options {
  std::string metrics_listen = "127.0.0.1:0";  // host:port of the /metrics server
  std::chrono::milliseconds tick{250};          // how often counters advance
  double default_rps = world::default_rps;      // for Services without kubesim.dev/rps
};

class traffic_emulator {
 public:
  virtual ~traffic_emulator() = default;
  virtual std::string metrics_address() const = 0;  // "127.0.0.1:40124"
  virtual std::string metrics_url() const = 0;      // "http://127.0.0.1:40124/metrics"
  virtual traffic_world& world() = 0;
  virtual void stop() noexcept = 0;                 // idempotent
};

// Subscribes to the store, starts ticking and serving. The store must outlive the emulator.
// Throws std::runtime_error when the metrics listener cannot be bound (a startup failure).
std::unique_ptr<traffic_emulator> start_traffic_emulator(boost::asio::any_io_executor ex, store& s,
                                                         emulator_options opts = {});

}  // namespace kubesim::world
