#pragma once
// A resuming watch of one resource type (a "reflector"): list, then watch from the list's
// resourceVersion, and keep the consumer's view equal to the server's without losing or
// duplicating an event.
//
//  - Bookmarks are requested (allowWatchBookmarks) and advance the resume point.
//  - A stream that ends (server timeoutSeconds) is reopened at once from the last seen
//    resourceVersion; one that breaks is reopened after a jittered backoff.
//  - 410 Gone (an HTTP answer or an ERROR event: the resume point was compacted away) triggers a
//    relist; the relist is delivered as a diff against what the consumer was given — added,
//    modified (resourceVersion differs), deleted (no longer listed) — so it sees every change
//    once and nothing twice. An object recreated under the same name (new uid) is delivered as
//    deleted then added.
//  - An idle watchdog: no byte (event or bookmark) for idle_timeout restarts the stream.
//  - Events are de-duplicated against the store: an ADDED/MODIFIED carrying the resourceVersion
//    the consumer already has is dropped; MODIFIED of an unknown object is delivered as added;
//    DELETED of an unknown object is dropped.
//
// The watcher keeps the objects it delivered (shared, immutable; see object.hpp), which is what
// makes the relist diff possible; cache.hpp exposes that store to readers.
//
// Thread affinity: the io_context thread of the client. Callbacks run synchronously on it and
// must not block; they may not destroy the watcher.
// Cancellation: run() returns when the awaiting coroutine is cancelled or stop() is called.
// Errors: none escape; failures are logged (JSON lines), counted and retried.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "k8s/api_client.hpp"
#include "k8s/backoff.hpp"
#include "k8s/object.hpp"

namespace canaryd::k8s {

enum class event_type { added, modified, deleted };
std::string_view to_string(event_type t) noexcept;

struct watch_event {
  event_type type;
  object_ptr object;  // the new state (for deleted: the last state the server reported)
  object_ptr old;     // the previous state the consumer had (modified, deleted); null for added
};

struct watch_options {
  resource res;
  std::string namespace_name;   // "" = all namespaces
  std::string label_selector;
  std::string field_selector;
  std::chrono::seconds server_timeout{300};  // timeoutSeconds, randomised in [t, 2t) per stream
  std::chrono::milliseconds idle_timeout{180'000};  // watchdog: no byte for this long -> restart
  std::int64_t page_size = 500;  // list paging
  backoff_policy retry{std::chrono::milliseconds(200), std::chrono::milliseconds(30'000), 2.0, 0.5};
  std::function<double()> random01;  // jitter source; empty: seeded PRNG
  // A stream that ends this soon after opening without any event counts as a failure (backoff).
  std::chrono::milliseconds min_healthy_stream{1'000};
};

struct watch_stats {
  std::uint64_t lists = 0;          // initial list and relists
  std::uint64_t relists_gone = 0;   // relists caused by 410 Gone
  std::uint64_t streams = 0;        // watch streams opened
  std::uint64_t stream_errors = 0;  // broken streams and failed opens
  std::uint64_t idle_restarts = 0;  // restarts by the watchdog
  std::uint64_t events = 0;         // events delivered to the consumer
  std::uint64_t duplicates_dropped = 0;
  std::uint64_t bookmarks = 0;
};

class watcher {
 public:
  using event_handler = std::function<void(const watch_event&)>;
  using store = std::unordered_map<std::string, object_ptr>;  // key: "ns/name" or "name"

  // `on_synced` runs once, after the events of the first list were delivered.
  watcher(api_client& client, watch_options opts, event_handler on_event, std::function<void()> on_synced = {});
  ~watcher();
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  // List+watch until cancelled or stopped. Call once.
  boost::asio::awaitable<void> run();
  // Makes run() return soon (closes the stream, cancels a backoff wait). Idempotent.
  void stop() noexcept;

  const store& items() const noexcept { return store_; }
  bool synced() const noexcept { return synced_; }
  const std::string& resource_version() const noexcept { return resource_version_; }
  const watch_stats& stats() const noexcept { return stats_; }
  const watch_options& options() const noexcept { return opts_; }

 private:
  struct impl;
  enum class stream_end { clean, broken, idle, gone, stopped };

  boost::asio::awaitable<bool> relist();
  boost::asio::awaitable<stream_end> watch_once(bool& delivered);
  boost::asio::awaitable<bool> sleep(std::chrono::milliseconds d);
  void deliver(event_type t, object_ptr obj, object_ptr old);
  // Applies one decoded watch event line; returns false if it was an ERROR 410.
  stream_end apply_line(std::string_view line, bool& delivered);

  api_client& client_;
  watch_options opts_;
  event_handler on_event_;
  std::function<void()> on_synced_;
  std::unique_ptr<impl> impl_;
  store store_;
  std::string resource_version_;
  bool synced_ = false;
  bool stopped_ = false;
  watch_stats stats_;
};

}  // namespace canaryd::k8s
