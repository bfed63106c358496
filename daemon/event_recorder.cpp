#include "daemon/event_recorder.hpp"

#include "core/message.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <tuple>

#include "core/wall_time.hpp"
#include "daemon/cluster.hpp"
#include "daemon/metrics_registry.hpp"
#include "k8s/log.hpp"

namespace canaryd {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

std::string now_text() { return core::format_rfc3339(core::wall_clock::now()); }

using event_key = std::tuple<std::string, std::string, std::string>;  // canary key, type, message

// What an Event write needs of the canary and the event, copied: the task's canary is gone by
// the time the write runs.
struct pending_event {
  event_key key;
  std::string id;  // name.namespace, for the log
  std::string namespace_, name, uid, resource_version, api_version;
  std::string timestamp;  // when it was recorded
};

}  // namespace

struct event_recorder::state {
  state(asio::any_io_executor e, k8s::api_client& c, metrics_registry& m, std::size_t q)
      : ex(std::move(e)),
        client(c),
        max_queued(q),
        dropped(m.counter("canaryd_events_dropped_total",
                          "Kubernetes Events not written because the event queue was full")) {
    dropped.add({}, 0);
  }
  asio::any_io_executor ex;
  k8s::api_client& client;
  const std::size_t max_queued;
  metric_family& dropped;
  std::deque<pending_event> queue;
  bool writing = false;  // the writer coroutine runs
  bool stopped = false;
  // (canary key, type, message) -> the Event written for it.
  struct seen {
    std::string name;
    std::int64_t count = 0;
  };
  std::map<event_key, seen> seen_events;
  std::uint64_t sequence = 0;
};

namespace {

using state = event_recorder::state;

// Retries of one Event write (its create, or the patch of its count) that failed in a way
// worth another try (k8s::is_retryable: a 5xx, a 429 past the client's own retries, no answer):
// at most `event_tries` tries, `first_retry` doubling in between, and none begun after
// `retry_deadline` from the first (the client's own deadline bounds each try). client-go's
// recorder tries 12 times 10 s apart, but only on transport errors (a 5xx is "Server rejected
// event (will not retry!)"); canaryd also retries 5xx and 429, on a scale of seconds, because the
// writer is one queue: while it retries, the events behind it wait, in order.
constexpr int event_tries = 5;
constexpr std::chrono::milliseconds first_retry{200};
constexpr std::chrono::seconds retry_deadline{10};

// Sleeps before try `tries` + 1 of a write begun at `began`; false when there is none to make
// (the tries or the deadline are used up, the error is not worth a retry, the recorder stopped).
asio::awaitable<bool> retry_after(const std::shared_ptr<state>& st, const k8s::api_error& e, int tries,
                                  std::chrono::steady_clock::time_point began) {
  if (st->stopped || tries >= event_tries || !k8s::is_retryable(e)) co_return false;
  auto delay = first_retry;
  for (int i = 1; i < tries; ++i) delay *= 2;
  if (std::chrono::steady_clock::now() + delay > began + retry_deadline) co_return false;
  asio::steady_timer timer(st->ex, delay);
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return !st->stopped;
}

asio::awaitable<void> write(std::shared_ptr<state> st, pending_event p) {
  const std::string& ns = p.namespace_;
  const auto began = std::chrono::steady_clock::now();
  if (auto it = st->seen_events.find(p.key); it != st->seen_events.end()) {
    // No iterator lives across the co_await: another write or forget() may change the map
    // meanwhile (holding one was a use-after-free, then a double erase, under load).
    const std::string name = it->second.name;
    const std::int64_t count = it->second.count + 1;
    json::object patch;
    patch["count"] = count;
    patch["lastTimestamp"] = p.timestamp;
    const std::string body = json::serialize(patch);
    // The count is absolute: a retry of a patch that landed after all writes the same.
    auto r = co_await st->client.patch(resources::events, ns, name, k8s::patch_type::merge, body);
    int tries = 1;
    while (!r && co_await retry_after(st, r.error(), tries, began)) {
      ++tries;
      log::debug(fmt::format("retrying the update of event {}: {}", name, r.error().what()), {{"canary", p.id}});
      r = co_await st->client.patch(resources::events, ns, name, k8s::patch_type::merge, body);
    }
    auto again = st->seen_events.find(p.key);
    const bool same = again != st->seen_events.end() && again->second.name == name;
    if (r) {
      if (same) again->second.count = std::max(again->second.count, count);
      co_return;
    }
    if (!k8s::is_not_found(r.error())) {
      log::warn(fmt::format("cannot update event {} after {} tries: {}", name, tries, r.error().what()),
                {{"canary", p.id}});
      co_return;
    }
    if (same) st->seen_events.erase(again);  // deleted (TTL): write a new one
  }
  auto now = std::chrono::system_clock::now().time_since_epoch();
  std::string name = fmt::format("{}.{:x}{:04x}", p.name,
                                 std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                                 ++st->sequence & 0xffff);
  json::object ev;
  ev["apiVersion"] = "v1";
  ev["kind"] = "Event";
  ev["metadata"] = json::object{{"name", name}, {"namespace", ns}};
  ev["involvedObject"] = json::object{{"apiVersion", p.api_version},
                                      {"kind", "Canary"},
                                      {"name", p.name},
                                      {"namespace", ns},
                                      {"uid", p.uid},
                                      {"resourceVersion", p.resource_version}};
  ev["reason"] = core::canary_event_reason;
  ev["message"] = std::get<2>(p.key);
  ev["type"] = std::get<1>(p.key);
  ev["source"] = json::object{{"component", "flagger"}};
  ev["count"] = 1;
  ev["firstTimestamp"] = p.timestamp;
  ev["lastTimestamp"] = p.timestamp;
  ev["reportingComponent"] = "flagger";
  const std::string body = json::serialize(ev);
  // Every try creates the same name: a retry after a create that landed unanswered finds it
  // (409 AlreadyExists) instead of making a second Event.
  auto r = co_await st->client.create(resources::events, ns, body);
  int tries = 1;
  while (!r && co_await retry_after(st, r.error(), tries, began)) {
    ++tries;
    log::debug(fmt::format("retrying event {}: {}", name, r.error().what()), {{"canary", p.id}});
    r = co_await st->client.create(resources::events, ns, body);
  }
  const bool landed_before = !r && tries > 1 && k8s::is_already_exists(r.error());
  if (!r && !landed_before) {
    log::warn(fmt::format("cannot write event after {} tries: {}", tries, r.error().what()), {{"canary", p.id}});
    co_return;
  }
  st->seen_events[p.key] = state::seen{std::move(name), 1};
}

// The writer: takes queued events in order until the queue is empty or the recorder stopped.
// `st` by value: the coroutine shares the state and may outlive the recorder.
asio::awaitable<void> writer(std::shared_ptr<state> st) {
  while (!st->stopped && !st->queue.empty()) {
    pending_event p = std::move(st->queue.front());
    st->queue.pop_front();
    co_await write(st, std::move(p));
  }
  // Here, in the turn that saw the queue empty: a completion handler may run later, after a
  // record() that would then find `writing` still set and its event stranded.
  st->writing = false;
}

}  // namespace

event_recorder::event_recorder(asio::any_io_executor ex, k8s::api_client& client, metrics_registry& metrics,
                               std::size_t max_queued)
    : state_(std::make_shared<state>(std::move(ex), client, metrics, max_queued)) {}

event_recorder::~event_recorder() { stop(); }

void event_recorder::record(const core::canary& c, const core::canary_event& e,
                            std::optional<core::wall_time> decided_at) {
  const std::string id = c.id();
  const log::level l = e.severity == core::event_severity::info      ? log::level::info
                       : e.severity == core::event_severity::warning ? log::level::warn
                                                                     : log::level::error;
  if (log::enabled(l)) {
    if (decided_at) {
      const std::string at = core::format_rfc3339_ms(*decided_at);
      log::write(l, e.message, {{"canary", id}, {"decidedAt", at}});
    } else {
      log::write(l, e.message, {{"canary", id}});
    }
  }
  if (forward_) forward_(c, e);
  auto& st = *state_;
  if (st.stopped) return;
  if (st.queue.size() >= st.max_queued) {
    st.dropped.add({});
    log::debug(fmt::format("event queue full ({} events); dropped: {}", st.queue.size(), e.message), {{"canary", id}});
    return;
  }
  pending_event p;
  // One line of at most 1 KiB (core/message.hpp): an Event is no place for a receiver's page.
  p.key = event_key(c.metadata.namespace_ + "/" + c.metadata.name, std::string(e.type()), core::one_line(e.message));
  p.id = id;
  p.namespace_ = c.metadata.namespace_;
  p.name = c.metadata.name;
  p.uid = c.metadata.uid;
  p.resource_version = c.metadata.resource_version;
  p.api_version = c.api_version.empty() ? "flagger.app/v1beta1" : c.api_version;
  p.timestamp = now_text();
  st.queue.push_back(std::move(p));
  if (!st.writing) {
    st.writing = true;
    asio::co_spawn(st.ex, writer(state_), [st = state_](std::exception_ptr ex) {
      if (!ex) return;
      st->writing = false;
      try {
        std::rethrow_exception(ex);
      } catch (const std::exception& err) {
        log::error(fmt::format("event writer failed: {}", err.what()));
      }
    });
  }
}

void event_recorder::forget(const std::string& canary_key) {
  std::erase_if(state_->seen_events, [&](const auto& kv) { return std::get<0>(kv.first) == canary_key; });
}

void event_recorder::stop() {
  state_->stopped = true;
  state_->queue.clear();
}

}  // namespace canaryd
