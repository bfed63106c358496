#include "core/metric_template.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "core/json_dom.hpp"
#include "core/json_writer.hpp"

namespace canaryd::core {

namespace {

constexpr std::array<std::string_view, 11> metric_providers{
    "prometheus", "influxdb", "datadog",   "externalmetrics", "stackdriver", "cloudwatch",
    "newrelic",   "graphite", "dynatrace", "keptn",           "splunk"};

}  // namespace

bool is_known_metric_provider(std::string_view type) {
  return std::find(metric_providers.begin(), metric_providers.end(), type) != metric_providers.end();
}

decoded<metric_template> decode_metric_template(std::string_view json) {
  using detail::json_reader;
  decoded<metric_template> out;
  detail::dom::parser parser;
  detail::dom::element doc;
  if (!detail::parse_document(parser, json, doc, out.errors)) return out;
  detail::dom::object root;
  if (doc.get_object().get(root)) {
    out.errors.push_back({"", fmt::format("a MetricTemplate must be a JSON object, got {}", detail::type_name(doc))});
    return out;
  }
  json_reader r(out.errors);
  metric_template& t = out.value;
  r.read(root, "apiVersion", "", t.api_version);
  r.read(root, "kind", "", t.kind);
  if (auto meta = r.object_at(root, "metadata", "")) {
    r.read(*meta, "name", "metadata", t.metadata.name);
    r.read(*meta, "namespace", "metadata", t.metadata.namespace_);
    r.read(*meta, "uid", "metadata", t.metadata.uid);
    r.read(*meta, "resourceVersion", "metadata", t.metadata.resource_version);
    r.read(*meta, "labels", "metadata", t.metadata.labels);
    r.read(*meta, "annotations", "metadata", t.metadata.annotations);
  }
  if (t.metadata.name.empty()) r.error("metadata.name", "required");
  auto spec = r.object_at(root, "spec", "");
  if (!spec) {
    if (!json_reader::member(root, "spec")) r.error("spec", "required");
    return out;
  }
  if (auto p = r.object_at(*spec, "provider", "spec")) {
    const std::string pp = "spec.provider";
    r.read(*p, "type", pp, t.provider.type);
    r.read(*p, "address", pp, t.provider.address);
    if (auto s = r.object_at(*p, "secretRef", pp)) {
      r.read(*s, "name", "spec.provider.secretRef", t.provider.secret_ref);
      if (t.provider.secret_ref.empty()) r.error("spec.provider.secretRef.name", "required");
    }
    r.read(*p, "region", pp, t.provider.region);
    r.read(*p, "insecureSkipVerify", pp, t.provider.insecure_skip_verify);
    if (auto h = r.object_at(*p, "headers", pp)) {
      for (detail::dom::key_value_pair kv : *h) {
        const std::string hp = json_reader::path("spec.provider.headers", kv.key);
        auto values = r.as_array(kv.value, hp);
        if (!values) continue;
        auto& list = t.provider.headers[std::string(kv.key)];
        std::size_t i = 0;
        for (detail::dom::element v : *values) {
          std::string s;
          if (r.as_string(v, json_reader::index(hp, i++), s)) list.push_back(std::move(s));
        }
      }
    }
    if (t.provider.type.empty()) {
      r.error("spec.provider.type", "required");
    } else if (!is_known_metric_provider(t.provider.type)) {
      std::string all;
      for (auto n : metric_providers) all += (all.empty() ? "" : ", ") + std::string(n);
      r.error("spec.provider.type", fmt::format("must be one of {}; got {}", all, json_string(t.provider.type)));
    }
  } else if (!json_reader::member(*spec, "provider")) {
    r.error("spec.provider", "required");
  }
  r.read(*spec, "query", "spec", t.query);
  if (t.query.empty()) r.error("spec.query", "required");
  return out;
}

}  // namespace canaryd::core
