#include "sim/api/external_metrics.hpp"

#include <boost/json/string.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <regex>
#include <set>

#include "sim/json/selector.hpp"

namespace kubesim::external_metrics {

namespace json = boost::json;

namespace {

std::string group_version() { return std::string(group) + "/" + std::string(version); }

const json::object* labels_of(const json::object& o) {
  auto* meta = o.if_contains("metadata");
  if (!meta || !meta->is_object()) return nullptr;
  auto* l = meta->as_object().if_contains("labels");
  return l && l->is_object() ? &l->as_object() : nullptr;
}

std::string label(const json::object& o, std::string_view key) {
  auto* l = labels_of(o);
  if (!l) return {};
  auto* v = l->if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

}  // namespace

bool is_quantity(std::string_view s) {
  // resource.ParseQuantity: <sign><number><suffix>, suffix binary SI, decimal SI or e<int>.
  static const std::regex re(R"(^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$)");
  return std::regex_match(s.begin(), s.end(), re);
}

json::object group_entry() {
  json::object gv{{"groupVersion", group_version()}, {"version", version}};
  return json::object{{"name", group}, {"versions", json::array{gv}}, {"preferredVersion", gv}};
}

json::object api_group() {
  json::object out{{"kind", "APIGroup"}, {"apiVersion", "v1"}};
  for (auto& kv : group_entry()) out[kv.key()] = kv.value();
  return out;
}

json::object resource_list(const std::vector<object_ptr>& configmaps) {
  std::set<std::string> names;
  for (const auto& cm : configmaps)
    if (auto m = label(*cm, metric_label); !m.empty()) names.insert(m);
  // Never empty: kubectl's discovery fails on a group version without resources ("received empty
  // response"), so with no metric yet the list holds the one entry KEDA's adapter always lists.
  if (names.empty()) names.insert("externalmetrics");
  json::array resources;
  for (const auto& n : names) {
    resources.push_back(json::object{{"name", n},
                                     {"singularName", ""},
                                     {"namespaced", true},
                                     {"kind", "ExternalMetricValueList"},
                                     {"verbs", json::array{"get"}}});
  }
  return json::object{
      {"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", group_version()}, {"resources", std::move(resources)}};
}

result<json::object> values(const std::vector<object_ptr>& configmaps, std::string_view metric,
                            std::string_view label_selector, std::chrono::system_clock::time_point now) {
  auto sel = parse_label_selector(label_selector);
  if (!sel) return bad_request_error(sel.error().message);
  std::vector<object_ptr> picked;
  for (const auto& cm : configmaps) {
    if (label(*cm, metric_label) != metric) continue;
    // The metric's labels: the ConfigMap's, without the one that names the metric.
    json::object labels;
    if (auto* l = labels_of(*cm)) labels = *l;
    labels.erase(metric_label);
    if (!sel->matches(&labels)) continue;
    picked.push_back(cm);
  }
  std::sort(picked.begin(), picked.end(),
            [](const object_ptr& a, const object_ptr& b) { return meta_string(*a, "name") < meta_string(*b, "name"); });
  json::array items;
  for (const auto& cm : picked) {
    json::object labels;
    if (auto* l = labels_of(*cm)) labels = *l;
    labels.erase(metric_label);
    std::string value;
    if (auto* data = cm->if_contains("data"); data && data->is_object()) {
      if (auto* v = data->as_object().if_contains("value"); v && v->is_string()) value = std::string(v->as_string());
    }
    while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
    if (!is_quantity(value)) {
      return api_error{500, "InternalError",
                       fmt::format("unable to fetch metrics from external metrics API: ConfigMap {}/{}: value \"{}\" "
                                   "is not a quantity",
                                   meta_string(*cm, "namespace"), meta_string(*cm, "name"), value),
                       {}};
    }
    items.push_back(json::object{{"metricName", metric},
                                 {"metricLabels", std::move(labels)},
                                 {"timestamp", rfc3339(now)},
                                 {"value", value}});
  }
  return json::object{{"kind", "ExternalMetricValueList"},
                      {"apiVersion", group_version()},
                      {"metadata", json::object{}},
                      {"items", std::move(items)}};
}

}  // namespace kubesim::external_metrics
