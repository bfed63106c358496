#include "core/alert_provider.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "core/json_dom.hpp"
#include "core/json_writer.hpp"

namespace canaryd::core {

std::string_view to_string(alert_severity s) {
  switch (s) {
    case alert_severity::info: return "info";
    case alert_severity::warn: return "warn";
    case alert_severity::error: return "error";
  }
  return "info";
}

bool alert_matches(std::string_view configured, alert_severity message) {
  if (configured.empty() || configured == "info") return true;
  if (configured == "warn") return message == alert_severity::warn || message == alert_severity::error;
  if (configured == "error") return message == alert_severity::error;
  return false;
}

decoded<alert_provider> decode_alert_provider(std::string_view json) {
  using detail::json_reader;
  decoded<alert_provider> out;
  detail::dom::parser parser;
  detail::dom::element doc;
  if (!detail::parse_document(parser, json, doc, out.errors)) return out;
  detail::dom::object root;
  if (doc.get_object().get(root)) {
    out.errors.push_back({"", fmt::format("an AlertProvider must be a JSON object, got {}", detail::type_name(doc))});
    return out;
  }
  json_reader r(out.errors);
  alert_provider& a = out.value;
  r.read(root, "apiVersion", "", a.api_version);
  r.read(root, "kind", "", a.kind);
  if (auto meta = r.object_at(root, "metadata", "")) {
    r.read(*meta, "name", "metadata", a.metadata.name);
    r.read(*meta, "namespace", "metadata", a.metadata.namespace_);
    r.read(*meta, "uid", "metadata", a.metadata.uid);
    r.read(*meta, "resourceVersion", "metadata", a.metadata.resource_version);
    r.read(*meta, "labels", "metadata", a.metadata.labels);
    r.read(*meta, "annotations", "metadata", a.metadata.annotations);
  }
  if (a.metadata.name.empty()) r.error("metadata.name", "required");
  auto spec = r.object_at(root, "spec", "");
  if (!spec) {
    if (!json_reader::member(root, "spec")) r.error("spec", "required");
    return out;
  }
  r.read(*spec, "type", "spec", a.type);
  r.read(*spec, "channel", "spec", a.channel);
  r.read(*spec, "username", "spec", a.username);
  r.read(*spec, "address", "spec", a.address);
  r.read(*spec, "proxy", "spec", a.proxy);
  if (auto s = r.object_at(*spec, "secretRef", "spec")) {
    r.read(*s, "name", "spec.secretRef", a.secret_ref);
    if (a.secret_ref.empty()) r.error("spec.secretRef.name", "required");
  }
  static constexpr std::array<std::string_view, 5> types{"slack", "msteams", "discord", "rocket", "gchat"};
  if (a.type.empty()) {
    r.error("spec.type", "required");
  } else if (std::find(types.begin(), types.end(), a.type) == types.end()) {
    r.error("spec.type", fmt::format("must be one of slack, msteams, discord, rocket, gchat; got {}", json_string(a.type)));
  }
  // The CRD's oneOf: {type, address} or {type, secretRef}.
  if (a.address.empty() && a.secret_ref.empty()) r.error("spec.address", "required unless secretRef is set");
  return out;
}

}  // namespace canaryd::core
