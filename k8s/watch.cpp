#include "k8s/watch.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <unordered_set>
#include <utility>

#include "k8s/log.hpp"
#include "k8s/object_detail.hpp"

namespace canaryd::k8s {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

std::string_view to_string(event_type t) noexcept {
  switch (t) {
    case event_type::added: return "added";
    case event_type::modified: return "modified";
    case event_type::deleted: return "deleted";
  }
  return "unknown";
}

struct watcher::impl {
  impl(backoff_policy p, std::function<double()> r) : bo(p, r), jitter(std::move(r)) {
    if (!jitter) {
      jitter = [rng = std::minstd_rand(std::random_device{}())]() mutable {
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      };
    }
  }
  simdjson::dom::parser parser;
  backoff bo;
  std::function<double()> jitter;
  http::body_stream* stream = nullptr;  // the open stream, for stop()
  asio::steady_timer* timer = nullptr;  // the backoff wait, for stop()
  std::string buffer;                   // bytes of an event line not yet complete
};

namespace {
asio::awaitable<bool> cancelled() {
  auto cs = co_await asio::this_coro::cancellation_state;
  co_return cs.cancelled() != asio::cancellation_type::none;
}
}  // namespace

watcher::watcher(api_client& client, watch_options opts, event_handler on_event, std::function<void()> on_synced)
    : client_(client), opts_(std::move(opts)), on_event_(std::move(on_event)), on_synced_(std::move(on_synced)),
      impl_(std::make_unique<impl>(opts_.retry, opts_.random01)) {}

watcher::~watcher() = default;

void watcher::stop() noexcept {
  stopped_ = true;
  if (impl_->stream) impl_->stream->close();
  if (impl_->timer) impl_->timer->cancel();
}

void watcher::deliver(event_type t, object_ptr obj, object_ptr old) {
  ++stats_.events;
  if (!on_event_) return;
  watch_event ev{t, std::move(obj), std::move(old)};
  try {
    on_event_(ev);
  } catch (const std::exception& e) {
    // A throwing handler is a bug in the consumer; the watch must go on for the others.
    log::error("watch event handler threw", {{"resource", opts_.res.plural}, {"error", e.what()}});
  }
}

asio::awaitable<bool> watcher::sleep(std::chrono::milliseconds d) {
  if (stopped_) co_return false;
  asio::steady_timer timer(client_.get_executor(), d);
  impl_->timer = &timer;
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  impl_->timer = nullptr;
  co_return !ec && !stopped_;
}

asio::awaitable<bool> watcher::relist() {
  list_options lo;
  lo.label_selector = opts_.label_selector;
  lo.field_selector = opts_.field_selector;
  ++stats_.lists;
  auto res = co_await client_.list_all(opts_.res, opts_.namespace_name, lo, opts_.page_size);
  if (!res) {
    log::warn("list failed; retrying", {{"resource", opts_.res.plural}, {"error", res.error().what()}});
    co_return false;
  }
  // Deliver the difference between what the consumer has and the list.
  std::unordered_set<std::string_view> listed;
  listed.reserve(res->items.size());
  for (auto& item : res->items) {
    auto now = std::make_shared<const object>(std::move(item));
    auto it = store_.find(now->key());
    if (it == store_.end()) {
      auto& slot = store_[now->key()];
      slot = now;
      listed.insert(slot->key());
      deliver(event_type::added, now, nullptr);
      continue;
    }
    object_ptr old = it->second;
    if (old->uid() != now->uid()) {
      // Deleted and recreated while we were not watching.
      it->second = now;
      listed.insert(now->key());
      deliver(event_type::deleted, old, old);
      deliver(event_type::added, now, nullptr);
    } else if (old->resource_version() != now->resource_version()) {
      it->second = now;
      listed.insert(now->key());
      deliver(event_type::modified, now, old);
    } else {
      listed.insert(old->key());
    }
  }
  std::vector<object_ptr> gone;
  for (const auto& [key, obj] : store_) {
    if (!listed.contains(obj->key())) gone.push_back(obj);
  }
  for (auto& obj : gone) {
    store_.erase(obj->key());
    deliver(event_type::deleted, obj, obj);
  }
  resource_version_ = res->resource_version;
  log::debug("listed", {{"resource", opts_.res.plural}, {"items", store_.size()},
                        {"resourceVersion", resource_version_}});
  if (!synced_) {
    synced_ = true;
    if (on_synced_) on_synced_();
  }
  co_return true;
}

watcher::stream_end watcher::apply_line(std::string_view line, bool& delivered) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return stream_end::clean;
  simdjson::padded_string padded(line);
  simdjson::dom::element doc;
  if (impl_->parser.parse(padded).get(doc) != simdjson::SUCCESS) {
    log::warn("undecodable watch event; restarting the watch", {{"resource", opts_.res.plural}});
    return stream_end::broken;
  }
  std::string_view type;
  simdjson::dom::element obj;
  if (doc["type"].get_string().get(type) != simdjson::SUCCESS || doc["object"].get(obj) != simdjson::SUCCESS) {
    log::warn("watch event without type or object; restarting the watch", {{"resource", opts_.res.plural}});
    return stream_end::broken;
  }
  if (type == "ERROR") {
    api_error e = decode_status_object(simdjson::to_string(obj));
    if (e.http_status == 410 || is_gone(e)) return stream_end::gone;
    log::warn("watch ERROR event; restarting the watch", {{"resource", opts_.res.plural}, {"error", e.what()}});
    return stream_end::broken;
  }
  if (type == "BOOKMARK") {
    std::string_view rv;
    if (obj.at_pointer("/metadata/resourceVersion").get_string().get(rv) == simdjson::SUCCESS && !rv.empty()) {
      resource_version_ = std::string(rv);
    }
    ++stats_.bookmarks;
    return stream_end::clean;
  }
  auto built = detail::object_from_element(obj);
  if (!built) {
    log::warn("watch event object is not a JSON object; restarting the watch", {{"resource", opts_.res.plural}});
    return stream_end::broken;
  }
  auto now = std::make_shared<const object>(std::move(*built));
  if (!now->resource_version().empty()) resource_version_ = now->resource_version();
  auto it = store_.find(now->key());
  if (type == "ADDED" || type == "MODIFIED") {
    if (it == store_.end()) {
      store_.emplace(now->key(), now);
      delivered = true;
      deliver(event_type::added, now, nullptr);
    } else if (it->second->resource_version() == now->resource_version()) {
      ++stats_.duplicates_dropped;
    } else if (it->second->uid() != now->uid() && !it->second->uid().empty()) {
      object_ptr old = it->second;
      it->second = now;
      delivered = true;
      deliver(event_type::deleted, old, old);
      deliver(event_type::added, now, nullptr);
    } else {
      object_ptr old = it->second;
      it->second = now;
      delivered = true;
      deliver(event_type::modified, now, old);
    }
  } else if (type == "DELETED") {
    if (it == store_.end()) {
      ++stats_.duplicates_dropped;
    } else {
      object_ptr old = it->second;
      store_.erase(it);
      delivered = true;
      deliver(event_type::deleted, now, old);
    }
  } else {
    log::warn("unknown watch event type; ignored", {{"resource", opts_.res.plural}, {"type", type}});
  }
  return stream_end::clean;
}

asio::awaitable<watcher::stream_end> watcher::watch_once(bool& delivered) {
  watch_params p;
  p.label_selector = opts_.label_selector;
  p.field_selector = opts_.field_selector;
  p.resource_version = resource_version_;
  p.allow_bookmarks = true;
  // Spread reconnects of many watchers over [t, 2t), as client-go does.
  const double r = std::clamp(impl_->jitter(), 0.0, 1.0);
  p.timeout = std::chrono::seconds(
      static_cast<std::int64_t>(static_cast<double>(opts_.server_timeout.count()) * (1.0 + r)));
  ++stats_.streams;
  auto s = co_await client_.open_watch(opts_.res, opts_.namespace_name, p);
  if (stopped_) co_return stream_end::stopped;
  if (!s) {
    if (is_gone(s.error())) co_return stream_end::gone;
    if (s.error().code == http::errc::cancelled) co_return stream_end::stopped;
    ++stats_.stream_errors;
    log::warn("watch failed; retrying", {{"resource", opts_.res.plural}, {"error", s.error().what()}});
    if (s.error().retry_after_seconds > 0) {
      if (!co_await sleep(std::chrono::seconds(s.error().retry_after_seconds))) co_return stream_end::stopped;
    }
    co_return stream_end::broken;
  }
  std::unique_ptr<http::body_stream> stream = std::move(*s);
  impl_->stream = stream.get();
  struct clear_on_exit {
    impl* i;
    ~clear_on_exit() { i->stream = nullptr; }
  } guard{impl_.get()};
  impl_->buffer.clear();
  for (;;) {
    auto piece = co_await stream->read_some(opts_.idle_timeout);
    if (stopped_ || co_await cancelled()) co_return stream_end::stopped;
    if (!piece) {
      if (piece.error() == http::errc::timeout) {
        ++stats_.idle_restarts;
        log::info("watch idle; restarting it", {{"resource", opts_.res.plural},
                                                {"idle_ms", static_cast<std::int64_t>(opts_.idle_timeout.count())}});
        co_return stream_end::idle;
      }
      if (piece.error() == http::errc::cancelled) co_return stream_end::stopped;
      ++stats_.stream_errors;
      log::info("watch stream broke; resuming", {{"resource", opts_.res.plural},
                                                 {"resourceVersion", resource_version_},
                                                 {"error", piece.error().message()}});
      co_return stream_end::broken;
    }
    if (piece->empty()) {
      if (!impl_->buffer.empty()) {
        auto end = apply_line(impl_->buffer, delivered);
        impl_->buffer.clear();
        if (end != stream_end::clean) co_return end;
      }
      co_return stream_end::clean;
    }
    impl_->buffer += *piece;
    std::size_t start = 0;
    for (;;) {
      auto nl = impl_->buffer.find('\n', start);
      if (nl == std::string::npos) break;
      auto end = apply_line(std::string_view(impl_->buffer).substr(start, nl - start), delivered);
      start = nl + 1;
      if (end != stream_end::clean) co_return end;
    }
    impl_->buffer.erase(0, start);
  }
}

asio::awaitable<void> watcher::run() {
  bool need_list = true;
  bool just_listed = false;
  while (!stopped_ && !co_await cancelled()) {
    if (need_list) {
      const bool ok = co_await relist();
      if (stopped_ || co_await cancelled()) break;
      if (!ok) {
        if (!co_await sleep(impl_->bo.next())) break;
        continue;
      }
      need_list = false;
      just_listed = true;
    }
    const bool after_list = std::exchange(just_listed, false);
    bool delivered = false;
    const auto started = clock::now();
    const auto end = co_await watch_once(delivered);
    const bool healthy = delivered || clock::now() - started >= opts_.min_healthy_stream;
    if (healthy && end != stream_end::gone) impl_->bo.reset();
    switch (end) {
      case stream_end::stopped: co_return;
      case stream_end::gone:
        ++stats_.relists_gone;
        log::info("watch resourceVersion expired (410); relisting",
                  {{"resource", opts_.res.plural}, {"resourceVersion", resource_version_}});
        need_list = true;
        // Gone right after a list: the server is inconsistent; do not spin on list+watch.
        if (after_list && !delivered && !co_await sleep(impl_->bo.next())) co_return;
        break;
      case stream_end::idle: break;
      case stream_end::clean:
        if (!healthy && !co_await sleep(impl_->bo.next())) co_return;
        break;
      case stream_end::broken:
        if (!co_await sleep(impl_->bo.next())) co_return;
        break;
    }
  }
}

}  // namespace canaryd::k8s
