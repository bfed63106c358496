#include "daemon/config_tracker.hpp"

#include <boost/json.hpp>

#include <array>
#include <fmt/format.h>

#include "k8s/api_error.hpp"

namespace canaryd {

namespace {

namespace json = boost::json;

std::string api_text(const k8s::api_error& e) { return e.message.empty() ? e.what() : e.message; }

template <class... Args>
action_result error(fmt::format_string<Args...> f, Args&&... args) {
  return action_result(boost::system::in_place_error, fmt::format(f, std::forward<Args>(args)...));
}

// The fields of a config copy that matter for "already up to date".
json::value config_payload(std::string_view config_json) {
  boost::system::error_code ec;
  json::value v = json::parse(config_json, ec);
  json::object out;
  if (ec || !v.is_object()) return out;
  for (std::string_view k : {"data", "binaryData", "type"}) {
    if (const auto* f = v.as_object().if_contains(k)) out[k] = *f;
  }
  if (const auto* m = v.as_object().if_contains("metadata"); m && m->is_object()) {
    for (std::string_view k : {"labels", "annotations", "ownerReferences"}) {
      if (const auto* f = m->as_object().if_contains(k)) out[k] = *f;
    }
  }
  return out;
}

}  // namespace

std::string pod_template_json(std::string_view workload_json) {
  boost::system::error_code ec;
  json::value v = json::parse(workload_json, ec);
  if (ec || !v.is_object()) return {};
  const auto* spec = v.as_object().if_contains("spec");
  if (spec == nullptr || !spec->is_object()) return {};
  const auto* tmpl = spec->as_object().if_contains("template");
  return tmpl == nullptr ? std::string() : json::serialize(*tmpl);
}

config_tracker::config_tracker(cluster& k, const options& opts) : k_(k), opts_(opts), random_(std::random_device{}()) {}

core::text_result<std::vector<tracked_config>> config_tracker::tracked(
    const core::canary& c, bool has_template, const core::decoded<std::vector<core::config_ref>>& refs) const {
  std::vector<tracked_config> out;
  if (!opts_.enable_config_tracking || !has_template) return out;
  if (!refs.ok()) return std::string("the pod template's config references are not readable");
  const std::string& ns = c.metadata.namespace_;
  for (const auto& ref : refs.value) {
    const bool is_cm = ref.kind == core::config_ref::kind_t::config_map;
    const auto obj = (is_cm ? k_.configmaps : k_.secrets).get(ns, ref.name);
    if (!obj) {
      if (ref.optional) continue;
      return is_cm ? fmt::format("configmap {}.{} get query error: configmaps \"{}\" not found", ref.name, ns, ref.name)
                   : fmt::format("secret {}.{} get query error: secrets \"{}\" not found", ref.name, ns, ref.name);
    }
    if (!core::is_tracked_config(obj->json())) continue;
    auto sum = core::config_checksum(obj->json());
    if (!sum.ok()) continue;
    out.push_back({ref.key(), ref, obj, sum.value});
  }
  return out;
}

core::text_result<std::vector<tracked_config>> config_tracker::tracked(const core::canary& c,
                                                                       std::string_view template_json) const {
  if (!opts_.enable_config_tracking || template_json.empty()) return std::vector<tracked_config>{};
  return tracked(c, true, core::find_config_refs(template_json));
}

core::primary_options config_tracker::options_for(const std::vector<tracked_config>& configs) const {
  core::primary_options o;
  o.selector_labels = opts_.selector_labels;
  o.include_label_prefix = opts_.include_label_prefix;
  for (const auto& t : configs) o.tracked_configs.insert(t.key);
  return o;
}

boost::asio::awaitable<action_result> config_tracker::write_primary_copies(const core::canary& c,
                                                                           const std::vector<tracked_config>& configs,
                                                                           const core::primary_options& o) {
  const std::string& ns = c.metadata.namespace_;
  for (const auto& t : configs) {
    const bool is_cm = t.ref.kind == core::config_ref::kind_t::config_map;
    const k8s::resource& res = is_cm ? resources::configmaps : resources::secrets;
    const std::string_view kind = is_cm ? "configmap" : "secret";
    const std::string copy_name = t.ref.name + "-primary";
    auto body = core::make_primary_config(c, t.object->json(), o);
    if (!body) co_return action_result(boost::system::in_place_error, body.error());
    const auto existing = (is_cm ? k_.configmaps : k_.secrets).get(ns, copy_name);
    if (existing && config_payload(existing->json()) == config_payload(*body)) continue;
    ++writes_;
    if (existing) {
      auto r = co_await k_.client.update(res, ns, copy_name, *body);
      if (r) continue;
      if (!k8s::is_not_found(r.error())) co_return error("updating {} {}.{} failed: {}", kind, copy_name, ns, api_text(r.error()));
    }
    auto r = co_await k_.client.create(res, ns, *body);
    if (r) continue;
    if (k8s::is_already_exists(r.error())) {
      auto u = co_await k_.client.update(res, ns, copy_name, *body);
      if (u) continue;
      co_return error("updating {} {}.{} failed: {}", kind, copy_name, ns, api_text(u.error()));
    }
    co_return error("creating {} {}.{} failed: {}", kind, copy_name, ns, api_text(r.error()));
  }
  co_return action_result();
}

std::string config_tracker::new_flagger_id() {
  std::array<unsigned char, 16> b{};
  for (auto& x : b) x = static_cast<unsigned char>(random_() & 0xff);
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  std::string s;
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += fmt::format("{:02x}", b[i]);
  }
  return s;
}

}  // namespace canaryd
