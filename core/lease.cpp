#include "core/lease.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

namespace canaryd::core {

namespace json = boost::json;

namespace {

// metav1.MicroTime: RFC 3339 with exactly six fraction digits, as the API server requires.
std::string micro_time(wall_time t) {
  std::string s = format_rfc3339(t);  // "...T10:00:00Z"
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() % 1'000'000;
  s.insert(s.size() - 1, fmt::format(".{:06d}", us < 0 ? us + 1'000'000 : us));
  return s;
}

std::optional<wall_time> time_at(const json::object& spec, std::string_view key) {
  const json::value* v = spec.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return parse_rfc3339(std::string_view(v->as_string()));
}

}  // namespace

std::optional<lease_record> read_lease(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  lease_record r;
  if (const json::value* meta = v.as_object().if_contains("metadata"); meta && meta->is_object()) {
    if (const json::value* rv = meta->as_object().if_contains("resourceVersion"); rv && rv->is_string())
      r.resource_version = std::string(rv->as_string());
  }
  const json::value* spec = v.as_object().if_contains("spec");
  if (!spec || !spec->is_object()) return r;
  const json::object& s = spec->as_object();
  if (const json::value* h = s.if_contains("holderIdentity"); h && h->is_string()) r.holder = std::string(h->as_string());
  if (const json::value* d = s.if_contains("leaseDurationSeconds"); d && d->is_number()) r.duration_seconds = d->to_number<int>();
  if (const json::value* t = s.if_contains("leaseTransitions"); t && t->is_number()) r.transitions = t->to_number<int>();
  r.acquire_time = time_at(s, "acquireTime");
  r.renew_time = time_at(s, "renewTime");
  return r;
}

lease_action next_lease_action(const std::optional<lease_record>& current, std::string_view me, wall_time now) {
  if (!current) return lease_action::create;
  if (current->holder == me) return lease_action::renew;
  if (current->holder.empty()) return lease_action::acquire;
  // client-go: expired when renewTime + leaseDurationSeconds is in the past (no renew time: expired).
  if (!current->renew_time) return lease_action::acquire;
  if (*current->renew_time + std::chrono::seconds(current->duration_seconds) < now) return lease_action::acquire;
  return lease_action::wait;
}

std::string lease_body(std::string_view name, std::string_view ns, const std::optional<lease_record>& current,
                       lease_action action, std::string_view me, wall_time now, const lease_timing& timing) {
  json::object meta{{"name", name}, {"namespace", ns}};
  if (current && !current->resource_version.empty()) meta["resourceVersion"] = current->resource_version;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timing.lease_duration).count();
  json::object spec{{"holderIdentity", me}, {"leaseDurationSeconds", seconds}, {"renewTime", micro_time(now)}};
  int transitions = current ? current->transitions : 0;
  if (action == lease_action::renew && current && current->acquire_time) {
    spec["acquireTime"] = micro_time(*current->acquire_time);
  } else {
    spec["acquireTime"] = micro_time(now);
    if (action == lease_action::acquire && current && !current->holder.empty()) ++transitions;
  }
  spec["leaseTransitions"] = transitions;
  json::object obj{{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"}, {"metadata", std::move(meta)},
                   {"spec", std::move(spec)}};
  return json::serialize(obj);
}

}  // namespace canaryd::core
