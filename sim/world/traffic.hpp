#pragma once
// kubesim's traffic world: the store-bound half of the traffic and metrics emulator. It watches
// the store for changes of the objects that decide routing (Services, Pods, workloads, Istio
// VirtualServices and DestinationRules, Gateway API Gateways, HTTPRoutes and ReferenceGrants,
// Namespaces, CRDs), rebuilds the traffic plan (traffic_model.hpp)
// when one changed, and advances the request counters (metrics.hpp) by the time it is told.
// It renders /metrics: the emulated mesh and app families plus kubesim's own (kubesim_*).
//
// No Asio and no clock: emulator.hpp drives tick() from a timer with the real elapsed time, and
// tests call tick() with fixed steps, so counts are reproducible.
//
// Thread affinity: the io_context thread only (the store's). The store's change callback holds
// only a weak reference, so the world may die before the store.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "sim/api/store.hpp"
#include "sim/world/metrics.hpp"
#include "sim/world/traffic_model.hpp"

namespace kubesim::world {

class traffic_world : public std::enable_shared_from_this<traffic_world> {
 public:
  // Subscribes to `s` (which must outlive the world's use of it).
  static std::shared_ptr<traffic_world> create(store& s, double default_rps = world::default_rps);

  // Rebuilds the plan if a routing object changed since the last tick, then adds `seconds` of
  // traffic. With no traffic to emulate (default rps 0, no Service annotated kubesim.dev/rps and
  // an empty plan) the rebuild waits until there is: a plan is O(every Service, Pod and
  // workload), and bench/ runs kubesim so, with tens of thousands of objects changing.
  void tick(double seconds);

  // Prometheus text exposition (version 0.0.4) of every family.
  std::string metrics_text() const;

  const traffic_plan& plan() const { return plan_; }
  const traffic_counters& counters() const { return counters_; }
  std::uint64_t plan_rebuilds() const { return rebuilds_; }

  traffic_world(store& s, double default_rps) : store_(s), default_rps_(default_rps) {}  // use create()

 private:
  void on_change(const change& c);
  void rebuild();

  store& store_;
  double default_rps_;
  traffic_plan plan_;
  traffic_counters counters_;
  bool dirty_ = true;
  std::uint64_t rebuilds_ = 0;
  std::uint64_t ticks_ = 0;
  double simulated_seconds_ = 0;
  std::map<std::string, std::int64_t> objects_by_resource_;  // "group/resource" -> count
  std::set<std::string> logged_problems_;
  std::set<std::string> rps_services_;  // "services:ns/name" / "gateways:ns/name" annotated kubesim.dev/rps
};

}  // namespace kubesim::world
