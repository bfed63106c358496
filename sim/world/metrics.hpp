#pragma once
// The counting half of kubesim's traffic emulator: advances request counters along a traffic
// plan (traffic_model.hpp) deterministically with simulated time, and renders them in the
// Prometheus text exposition format with the families and labels Flagger's builtin queries read
// (shared/reference/flagger-behaviour.md §6.1):
//  - istio_requests_total{reporter="destination"|"source", destination_workload,
//    destination_workload_namespace, destination_service_name, destination_service, ...,
//    source_workload, response_code}
//  - istio_request_duration_milliseconds_{bucket,sum,count}{reporter="destination", ...}
//  - http_request_duration_seconds_{bucket,sum,count}{kubernetes_namespace,
//    kubernetes_pod_name, method, path, status} (what an app such as podinfo exports, with
//    the labels Prometheus's pod relabeling adds)
//
// Determinism: no randomness. Each leg of the plan accumulates fractional requests
// (rate x seconds) and counts the whole ones; each workload accumulates its error share
// (requests x error-rate) and answers that many with its error code. Every request takes the
// workload's configured mean latency, and the buckets are fine enough (ratios of at most 1.5,
// round numbers on the edges) that histogram_quantile(0.99, ...) lands in [mean, 1.5 x mean],
// and just below the mean itself for round values such as 50, 100, 250, 500 or 1000 ms.
// Buckets below the lowest one a series ever used (but one) are left out of the exposition:
// they are zero, so sums by `le` across series stay exact, and /metrics stays smaller.
//
// Pure: no Asio, no clock. Thread affinity: one thread.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "sim/world/traffic_model.hpp"

namespace kubesim::world {

// Bucket upper bounds in milliseconds (+Inf is implicit).
inline constexpr std::array<double, 37> latency_buckets_ms = {
    1,    2,    3,    5,    7.5,  10,   15,   20,   25,   30,    40,    50,    75,    100,   125,   150,   200,   250,   300,
    400,  500,  600,  750,  1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000, 15000, 20000, 30000, 60000};

struct histogram {
  std::uint64_t count = 0;
  double sum = 0;  // in the unit of the family (ms for istio, s for http)
  std::array<std::uint64_t, latency_buckets_ms.size()> buckets{};  // non-cumulative
  std::size_t lowest = latency_buckets_ms.size();                  // lowest bucket used so far
  // n samples of value_ms; the sum is kept in ms / unit_divisor (1 for ms, 1000 for seconds).
  void observe(double value_ms, std::uint64_t n, double unit_divisor);
};

struct istio_key {
  std::string reporter;
  std::string destination_workload;
  std::string destination_workload_namespace;
  std::string destination_service_name;
  std::string destination_service_namespace;
  std::string source_workload;
  std::string response_code;
  auto tie() const {
    return std::tie(reporter, destination_workload_namespace, destination_workload, destination_service_namespace,
                    destination_service_name, source_workload, response_code);
  }
  bool operator<(const istio_key& o) const { return tie() < o.tie(); }
};

struct http_key {
  std::string namespace_;
  std::string pod;
  std::string path;
  std::string status;
  auto tie() const { return std::tie(namespace_, pod, path, status); }
  bool operator<(const http_key& o) const { return tie() < o.tie(); }
};

// Envoy's upstream cluster statistics as Prometheus names them (Knative's Kourier gateway):
// envoy_cluster_upstream_rq{envoy_cluster_name, envoy_response_code} and
// envoy_cluster_upstream_rq_time_{bucket,sum,count}{envoy_cluster_name} in milliseconds.
struct envoy_key {
  std::string cluster;
  std::string response_code;
  std::string workload_key;  // the series lives while this workload does (not a label)
  auto tie() const { return std::tie(cluster, response_code, workload_key); }
  bool operator<(const envoy_key& o) const { return tie() < o.tie(); }
};

class traffic_counters {
 public:
  // Adds `seconds` of traffic along `plan`.
  void advance(const traffic_plan& plan, double seconds);
  // Drops the series of pods and workloads that no longer exist, and the accumulators of legs
  // that left the plan. Call whenever a new plan replaces the old one.
  void retain(const traffic_plan& plan);

  // The families above, in the text exposition format (version 0.0.4).
  void render(std::string& out) const;

  // Totals for tests and kubesim's own metrics.
  std::uint64_t requests_total() const { return requests_total_; }
  std::uint64_t requests(const std::string& reporter, const std::string& ns, const std::string& workload,
                         const std::string& code = {}) const;
  std::uint64_t pod_requests(const std::string& ns, const std::string& pod, const std::string& status = {}) const;
  const std::map<istio_key, histogram>& istio_series() const { return istio_; }
  const std::map<http_key, histogram>& http_series() const { return http_; }
  const std::map<envoy_key, histogram>& envoy_series() const { return envoy_; }
  // Requests counted for Envoy cluster `cluster` ("<ns>/<revision>"), optionally with one code.
  std::uint64_t envoy_requests(const std::string& cluster, const std::string& code = {}) const;

 private:
  // A leg's fractional requests and, resolved on first use, its series (std::map nodes stay
  // put until erased; retain() forgets every resolved pointer before erasing).
  struct leg_state {
    double credit = 0;
    int error_code = 0;
    std::array<histogram*, 2> istio_destination{}, istio_source{}, http{}, envoy{};  // [ok, error]
  };
  void count(const traffic_flow& f, const traffic_leg& leg, leg_state& st, std::uint64_t n);

  std::map<istio_key, histogram> istio_;
  std::map<http_key, histogram> http_;
  std::map<envoy_key, histogram> envoy_;
  std::unordered_map<std::string, leg_state> legs_;       // by traffic_leg::key / unrouted key
  std::unordered_map<std::string, double> error_credit_;  // fractional errors per workload
  std::uint64_t requests_total_ = 0;
};

// Escapes a label value for the text exposition format.
void append_label_value(std::string& out, std::string_view v);

}  // namespace kubesim::world
