#pragma once
// Kubernetes Events about Canaries, as Flagger's recordEventf: involvedObject = the Canary,
// reason "Synced", type Normal/Warning, source.component "flagger", plus the JSON log line with
// the `canary` field. Repeats of the same (canary, type, message) are aggregated like client-go's
// recorder: one Event whose count and lastTimestamp are patched.
//
// Thread affinity: the io_context thread. Errors: a failed write is logged, never returned
// (events are best effort, as in client-go).
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>

#include "core/canary.hpp"
#include "core/canary_event.hpp"
#include "k8s/api_client.hpp"

namespace canaryd {

class event_recorder {
 public:
  explicit event_recorder(k8s::api_client& client) : client_(client) {}

  // Logs the event (info, warn or error by severity) and writes or updates its Event.
  boost::asio::awaitable<void> record(const core::canary& c, const core::canary_event& e);

  // Forgets the aggregation state of a canary that is gone.
  void forget(const std::string& canary_key);

  // Called with every recorded event (Flagger's event webhooks); must not block.
  void on_event(std::function<void(const core::canary&, const core::canary_event&)> f) { forward_ = std::move(f); }

 private:
  struct seen {
    std::string name;
    std::int64_t count = 0;
  };
  k8s::api_client& client_;
  // (canary key, type, message) -> the Event written for it.
  std::map<std::tuple<std::string, std::string, std::string>, seen> seen_;
  std::uint64_t sequence_ = 0;
  std::function<void(const core::canary&, const core::canary_event&)> forward_;
};

}  // namespace canaryd
