#pragma once
// Kubernetes Events about Canaries, as Flagger's recordEventf: involvedObject = the Canary,
// reason "Synced", type Normal/Warning, source.component "flagger", plus the JSON log line with
// the `canary` field. Repeats of the same (canary, type, message) are aggregated like client-go's
// recorder: one Event whose count and lastTimestamp are patched.
//
// Asynchronous like client-go's recorder (Flagger's ticks never wait for an Event either):
// record() logs, hands the event to the event webhooks and queues the Event write, then returns.
// One write is in flight at a time, in record() order, as client-go's single sink goroutine
// (so Events keep their order and a repeat finds the Event it aggregates into); a queue of
// `max_queued` events is full and a further event is dropped (logged at debug, counted in
// canaryd_events_dropped_total), as client-go's broadcaster drops past 1,000 queued events. So a canary's reaction to a release
// costs its own writes only, and an initialisation storm of thousands of canaries does not hold
// each task on its Events.
//
// Thread affinity: the io_context thread. Errors: a write that fails with a 5xx, a 429 or no
// answer is retried in place (at most 5 tries, 200 ms doubling, none begun 10 s after the first;
// later events wait behind it, in order); a write that still fails is logged, never returned
// (events are best effort, as in client-go). Lifetime: stop() drops the queue; writes in flight
// finish on their own (their coroutines share the queue's state); the client must outlive them
// (the app's drain).
#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/canary.hpp"
#include "core/canary_event.hpp"
#include "core/wall_time.hpp"
#include "k8s/api_client.hpp"

namespace canaryd {

class metrics_registry;

class event_recorder {
 public:
  event_recorder(boost::asio::any_io_executor ex, k8s::api_client& client, metrics_registry& metrics,
                 std::size_t max_queued = 1000);
  ~event_recorder();
  event_recorder(const event_recorder&) = delete;
  event_recorder& operator=(const event_recorder&) = delete;

  // Logs the event (info, warn or error by severity) and queues the write or update of its
  // Event; returns at once. `decided_at`: the time of the decision (the analysis step) that
  // produced the event, logged as "decidedAt" with milliseconds: the step's instant, which the
  // pacing keeps an interval apart (the line's own ts trails it by the time the step's writes
  // took).
  void record(const core::canary& c, const core::canary_event& e,
              std::optional<core::wall_time> decided_at = std::nullopt);

  // Forgets the aggregation state of a canary that is gone.
  void forget(const std::string& canary_key);

  // Called with every recorded event (Flagger's event webhooks); must not block.
  void on_event(std::function<void(const core::canary&, const core::canary_event&)> f) { forward_ = std::move(f); }

  // Drops the queued events; later record() calls log only.
  void stop();

  struct state;  // internal, shared with the writer coroutines

 private:
  std::shared_ptr<state> state_;
  std::function<void(const core::canary&, const core::canary_event&)> forward_;
};

}  // namespace canaryd
