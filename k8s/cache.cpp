#include "k8s/cache.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "k8s/log.hpp"

namespace canaryd::k8s {
namespace asio = boost::asio;

struct cache::synced_waiter {
  explicit synced_waiter(asio::any_io_executor ex) : timer(std::move(ex)) {}
  asio::steady_timer timer;
};

cache::cache(api_client& client, watch_options opts)
    : watcher_(
          client, std::move(opts), [this](const watch_event& ev) { dispatch(ev); }, [this] { fire_synced(); }) {}

cache::~cache() = default;

std::uint64_t cache::subscribe(cache_handlers h) {
  const auto id = next_id_++;
  if (h.on_add) {
    // Replay in key order (deterministic for tests and logs).
    for (const auto& obj : list()) h.on_add(obj);
  }
  handlers_.emplace(id, std::move(h));
  return id;
}

void cache::unsubscribe(std::uint64_t id) noexcept { handlers_.erase(id); }

void cache::dispatch(const watch_event& ev) {
  // Copy the ids first: a handler may unsubscribe (itself or another) while we iterate.
  std::vector<std::uint64_t> ids;
  ids.reserve(handlers_.size());
  for (const auto& [id, h] : handlers_) ids.push_back(id);
  for (auto id : ids) {
    auto it = handlers_.find(id);
    if (it == handlers_.end()) continue;
    const cache_handlers& h = it->second;
    switch (ev.type) {
      case event_type::added:
        if (h.on_add) h.on_add(ev.object);
        break;
      case event_type::modified:
        if (h.on_update) h.on_update(ev.old, ev.object);
        break;
      case event_type::deleted:
        if (h.on_delete) h.on_delete(ev.object);
        break;
    }
  }
}

void cache::fire_synced() {
  auto callbacks = std::move(synced_callbacks_);
  synced_callbacks_.clear();
  for (auto& f : callbacks) f();
  for (auto& w : waiters_) {
    if (auto p = w.lock()) p->timer.cancel();
  }
  waiters_.clear();
}

void cache::on_synced(std::function<void()> f) {
  if (synced()) {
    f();
    return;
  }
  synced_callbacks_.push_back(std::move(f));
}

asio::awaitable<bool> cache::wait_synced(std::chrono::milliseconds timeout) {
  if (synced()) co_return true;
  auto ex = co_await asio::this_coro::executor;
  auto w = std::make_shared<synced_waiter>(ex);
  w->timer.expires_after(timeout);
  waiters_.push_back(w);
  co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return synced();
}

asio::awaitable<void> cache::run() { co_await watcher_.run(); }

void cache::stop() noexcept { watcher_.stop(); }

object_ptr cache::get(std::string_view ns, std::string_view name) const {
  return get_by_key(object_key(options().res.namespaced ? ns : std::string_view{}, name));
}

object_ptr cache::get_by_key(const std::string& key) const {
  auto it = watcher_.items().find(key);
  return it == watcher_.items().end() ? nullptr : it->second;
}

std::vector<object_ptr> cache::list(std::string_view ns) const {
  std::vector<object_ptr> out;
  out.reserve(watcher_.items().size());
  for (const auto& [key, obj] : watcher_.items()) {
    if (ns.empty() || obj->namespace_name() == ns) out.push_back(obj);
  }
  std::sort(out.begin(), out.end(), [](const object_ptr& a, const object_ptr& b) { return a->key() < b->key(); });
  return out;
}

}  // namespace canaryd::k8s
