#pragma once
// The per-canary tasks: one coroutine per Canary in the cache, driving core::decide() (see
// core/rollout.hpp's top comment for the loop) and applying its steps through the target
// controller, the routers, the status subresource and Events.
//
// Scheduling: a task sleeps until its decision's wake_at, or until something it depends on
// changes: its Canary, its target Deployment, the <target>-primary Deployment, or a tracked
// ConfigMap/Secret. The app routes cache callbacks here (changed()); an index from object key
// to interested canaries wakes exactly the right tasks, at once. An idle task makes no API
// request: every read comes from the caches.
//
// Concurrency: at most -max-concurrent-ticks tasks are inside a decision at once (a tick holds
// its slot across its API writes, webhooks and metric queries); the others wait in FIFO order.
// Without the bound, 10,000 canaries starting together each held a decoded Canary, a decision
// and requests in flight at once: a transient peak that left canaryd's heap fragmented at twice
// its live size (bench/README.md), and a queue of writes that outlived the rate limit's deadline.
//
// Lifetime: add() starts a task, remove() (the Canary left the cache, i.e. after its finalizer
// work) stops it; stop() stops them all. Tasks hold their state by shared_ptr, so a stopped
// task's coroutine finishes safely on its next resumption.
//
// Thread affinity: the io_context thread only. Errors: a failing cluster action becomes a
// Warning Event and a log line; the task goes on at its next wake. Internal failures of a task
// are logged by its completion handler.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "daemon/cluster.hpp"
#include "daemon/options.hpp"

namespace canaryd {

class alert_sender;
class event_recorder;
class target_controller;
class service_router;
class mesh_router;
struct router_context;
class metric_runner;
class canary_metrics;
class metrics_registry;
class metric_family;
class ownership;

class canary_runner {
 public:
  // Which cache a change came from (for the interest index).
  enum class source { deployment, configmap, secret, daemonset, statefulset, service, knative_service };

  // `alerts` delivers send_alert steps; `registry` receives the task metrics
  // (canaryd_canary_tasks, canaryd_canaries_resumed_total, canaryd_timer_lag_seconds). Both must
  // outlive the runner.
  canary_runner(boost::asio::any_io_executor ex, cluster& k, const options& opts, alert_sender& alerts,
                metrics_registry& registry);
  ~canary_runner();
  canary_runner(const canary_runner&) = delete;
  canary_runner& operator=(const canary_runner&) = delete;

  // A Canary appeared in the cache ("namespace/name"): start its task (no-op if running).
  void add(const std::string& key);
  // The Canary changed: wake its task.
  void wake(const std::string& key);
  // The Canary is gone from the cache: stop its task.
  void remove(const std::string& key);
  // A Deployment/ConfigMap/Secret changed: wake every task that depends on it.
  void changed(source s, std::string_view namespace_name, std::string_view name);
  // Stops every task.
  void stop();

  std::size_t running() const { return tasks_.size(); }

  struct task;  // internal

 private:
  void set_interests(task& t, std::set<std::string> keys);
  // Wakes every task that recorded the interest `key` (interest_key()) in its last tick.
  void wake_interested(const std::string& key);
  // Tick slots: a waiter's timer is cancelled when release_slot() hands it the slot.
  bool try_take_slot();
  void release_slot();

  boost::asio::any_io_executor ex_;
  cluster& k_;
  const options& opts_;
  std::unique_ptr<router_context> routing_;  // what the routers see of k_ and opts_
  alert_sender& alerts_;
  std::unique_ptr<event_recorder> events_;
  std::unique_ptr<target_controller> deployments_;
  std::unique_ptr<target_controller> daemonsets_;
  std::unique_ptr<target_controller> statefulsets_;
  std::unique_ptr<target_controller> service_targets_;
  std::unique_ptr<target_controller> knative_;  // its own caches, started by the first Knative Canary
  std::unique_ptr<service_router> services_;
  std::unique_ptr<metric_runner> metrics_;
  std::unique_ptr<canary_metrics> flagger_metrics_;  // Flagger's flagger_canary_* families
  std::unique_ptr<ownership> owners_;  // who may touch what (daemon/ownership.hpp)
  std::map<std::string, std::unique_ptr<mesh_router>, std::less<>> meshes_;
  std::map<std::string, std::shared_ptr<task>> tasks_;
  // "<source>/<namespace>/<name>" -> canary keys.
  std::map<std::string, std::set<std::string>, std::less<>> interests_;
  bool stopped_ = false;
  std::size_t busy_slots_ = 0;
  std::deque<boost::asio::steady_timer*> slot_waiters_;  // timers in the waiting tasks' frames
  // Task metrics, for bench/ and operators: running tasks; tasks whose first decision since
  // start was applied (equal to the canary count once a cold start has resumed every canary);
  // how late each timer wake fired against its due time.
  metric_family& tasks_gauge_;
  metric_family& resumed_;
  metric_family& timer_lag_;

  friend struct runner_access;
};

}  // namespace canaryd
