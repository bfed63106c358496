#include "loadtester/payload.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/json/kind.hpp>
#include <cctype>
#include <optional>
#include <fmt/format.h>

namespace canaryd::loadtester {
namespace json = boost::json;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// Sets `out` from a string or null; anything else is an error.
std::optional<std::string> take_string(const json::value& v, std::string_view field, std::string& out) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_string()) return fmt::format("json: cannot unmarshal {} into field {} of type string", json::to_string(v.kind()), field);
  out = std::string(v.get_string());
  return std::nullopt;
}

using payload_result = boost::system::result<webhook_payload, std::string>;
payload_result fail(std::string msg) { return payload_result(boost::system::in_place_error, std::move(msg)); }

}  // namespace

boost::system::result<webhook_payload, std::string> parse_payload(std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec) return fail(fmt::format("invalid JSON: {}", ec.message()));
  webhook_payload p;
  if (doc.is_null()) return p;  // Go: null into a struct is a no-op
  if (!doc.is_object()) return fail(fmt::format("json: cannot unmarshal {} into a CanaryWebhookPayload", json::to_string(doc.kind())));
  for (const auto& kv : doc.get_object()) {
    std::string_view k = kv.key();
    std::optional<std::string> err;
    if (iequals(k, "name")) {
      err = take_string(kv.value(), "name", p.name);
    } else if (iequals(k, "namespace")) {
      err = take_string(kv.value(), "namespace", p.namespace_);
    } else if (iequals(k, "phase")) {
      err = take_string(kv.value(), "phase", p.phase);
    } else if (iequals(k, "checksum")) {
      err = take_string(kv.value(), "checksum", p.checksum);
    } else if (iequals(k, "metadata")) {
      const auto& m = kv.value();
      if (m.is_null()) continue;
      if (!m.is_object()) return fail(fmt::format("json: cannot unmarshal {} into field metadata of type map[string]string", json::to_string(m.kind())));
      for (const auto& e : m.get_object()) {
        std::string v;
        if (auto e2 = take_string(e.value(), fmt::format("metadata.{}", std::string_view(e.key())), v)) return fail(*e2);
        p.metadata[std::string(e.key())] = std::move(v);
      }
    }
    if (err) return fail(*err);
  }
  return p;
}

}  // namespace canaryd::loadtester
