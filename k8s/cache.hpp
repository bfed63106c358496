#pragma once
// An informer-like cache of one resource type (optionally one namespace and/or label selector):
// a watcher (watch.hpp) keeps an in-memory store keyed by "namespace/name", subscribers get
// add/update/delete callbacks, and a "synced" signal says the first list is in.
//
// Storage: objects are immutable compact JSON text without metadata.managedFields plus their
// decoded identity (object.hpp), shared by shared_ptr between the store, events and readers.
// That is about 1.2x the object's JSON size; 10,000 Canaries (~3 KiB each) take ~40 MiB.
// Readers parse on demand: simdjson for reading (object::padding makes the text directly
// usable), Boost.JSON (object::to_value()) for objects to edit and write back.
//
// Reads come from here; writes go to the API server (api_client), and the change comes back
// through the watch. Handlers see the store already updated.
//
// Thread affinity: the io_context thread of the client; callbacks run on it, synchronously,
// and must not block. No locking.
// Cancellation: run() returns when cancelled or after stop().
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "k8s/watch.hpp"

namespace canaryd::k8s {

struct cache_handlers {
  std::function<void(const object_ptr& obj)> on_add;
  std::function<void(const object_ptr& old, const object_ptr& now)> on_update;
  // `last` is the final state (from the DELETED event, or the cached one after a relist).
  std::function<void(const object_ptr& last)> on_delete;
};

class cache {
 public:
  cache(api_client& client, watch_options opts);
  ~cache();
  cache(const cache&) = delete;
  cache& operator=(const cache&) = delete;

  // Registers handlers. Objects already cached are replayed to on_add at once (like client-go's
  // AddEventHandler), so a late subscriber misses nothing. Returns an id for unsubscribe().
  std::uint64_t subscribe(cache_handlers h);
  void unsubscribe(std::uint64_t id) noexcept;

  // List+watch until cancelled or stopped. Call once.
  boost::asio::awaitable<void> run();
  void stop() noexcept;

  bool synced() const noexcept { return watcher_.synced(); }
  // Runs `f` once the first list is in (at once if it already is).
  void on_synced(std::function<void()> f);
  // Waits until synced or `timeout`; returns synced().
  boost::asio::awaitable<bool> wait_synced(std::chrono::milliseconds timeout);

  // Reads (null / empty when absent). `ns` is ignored for cluster-scoped resources.
  object_ptr get(std::string_view ns, std::string_view name) const;
  object_ptr get_by_key(const std::string& key) const;
  // A snapshot of every cached object, or of one namespace's ("" = all), in key order.
  std::vector<object_ptr> list(std::string_view ns = {}) const;
  std::size_t size() const noexcept { return watcher_.items().size(); }

  const watcher& source() const noexcept { return watcher_; }
  const watch_options& options() const noexcept { return watcher_.options(); }

 private:
  void dispatch(const watch_event& ev);
  void fire_synced();

  struct synced_waiter;
  watcher watcher_;
  std::map<std::uint64_t, cache_handlers> handlers_;
  std::uint64_t next_id_ = 1;
  std::vector<std::function<void()>> synced_callbacks_;
  std::vector<std::weak_ptr<synced_waiter>> waiters_;
};

}  // namespace canaryd::k8s
