#include "daemon/event_recorder.hpp"

#include <algorithm>

#include <boost/json.hpp>

#include <fmt/format.h>

#include <chrono>

#include "core/wall_time.hpp"
#include "daemon/cluster.hpp"
#include "k8s/log.hpp"

namespace canaryd {
namespace {

namespace json = boost::json;

std::string now_text() { return core::format_rfc3339(core::wall_clock::now()); }

}  // namespace

boost::asio::awaitable<void> event_recorder::record(const core::canary& c, const core::canary_event& e) {
  const std::string id = c.id();
  switch (e.severity) {
    case core::event_severity::info: log::info(e.message, {{"canary", id}}); break;
    case core::event_severity::warning: log::warn(e.message, {{"canary", id}}); break;
    case core::event_severity::error: log::error(e.message, {{"canary", id}}); break;
  }
  if (forward_) forward_(c, e);
  const std::string ns = c.metadata.namespace_;
  const std::string ts = now_text();
  auto key = std::make_tuple(ns + "/" + c.metadata.name, std::string(e.type()), e.message);
  if (auto it = seen_.find(key); it != seen_.end()) {
    // No iterator lives across the co_await: another record() or forget() may change seen_
    // meanwhile (holding one was a use-after-free, then a double erase, under load).
    const std::string name = it->second.name;
    const std::int64_t count = it->second.count + 1;
    json::object p;
    p["count"] = count;
    p["lastTimestamp"] = ts;
    const std::string body = json::serialize(p);
    auto r = co_await client_.patch(resources::events, ns, name, k8s::patch_type::merge, body);
    auto again = seen_.find(key);
    const bool same = again != seen_.end() && again->second.name == name;
    if (r) {
      if (same) again->second.count = std::max(again->second.count, count);
      co_return;
    }
    if (!k8s::is_not_found(r.error())) {
      log::warn(fmt::format("cannot update event {}: {}", name, r.error().what()), {{"canary", id}});
      co_return;
    }
    if (same) seen_.erase(again);  // deleted (TTL): write a new one
  }
  auto now = std::chrono::system_clock::now().time_since_epoch();
  std::string name = fmt::format("{}.{:x}{:04x}", c.metadata.name,
                                 std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                                 ++sequence_ & 0xffff);
  json::object ev;
  ev["apiVersion"] = "v1";
  ev["kind"] = "Event";
  ev["metadata"] = json::object{{"name", name}, {"namespace", ns}};
  ev["involvedObject"] = json::object{{"apiVersion", c.api_version.empty() ? "flagger.app/v1beta1" : c.api_version},
                                      {"kind", "Canary"},
                                      {"name", c.metadata.name},
                                      {"namespace", ns},
                                      {"uid", c.metadata.uid},
                                      {"resourceVersion", c.metadata.resource_version}};
  ev["reason"] = core::canary_event_reason;
  ev["message"] = e.message;
  ev["type"] = e.type();
  ev["source"] = json::object{{"component", "flagger"}};
  ev["count"] = 1;
  ev["firstTimestamp"] = ts;
  ev["lastTimestamp"] = ts;
  ev["reportingComponent"] = "flagger";
  const std::string body = json::serialize(ev);
  auto r = co_await client_.create(resources::events, ns, body);
  if (!r) {
    log::warn(fmt::format("cannot write event: {}", r.error().what()), {{"canary", id}});
    co_return;
  }
  seen_[key] = seen{name, 1};
}

void event_recorder::forget(const std::string& canary_key) {
  std::erase_if(seen_, [&](const auto& kv) { return std::get<0>(kv.first) == canary_key; });
}

}  // namespace canaryd
