#include "k8s/object.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "k8s/config.hpp"
#include "k8s/json_text.hpp"
#include "k8s/object_detail.hpp"

namespace canaryd::k8s {

std::string object_key(std::string_view namespace_name, std::string_view name) {
  if (namespace_name.empty()) return std::string(name);
  std::string k;
  k.reserve(namespace_name.size() + 1 + name.size());
  k.append(namespace_name).append("/").append(name);
  return k;
}

object::object(const object& o)
    : key_(o.key_), ns_len_(o.ns_len_), uid_(o.uid_), resource_version_(o.resource_version_), kind_(o.kind_),
      generation_(o.generation_), being_deleted_(o.being_deleted_) {
  json_.reserve(o.json_.size() + padding);
  json_.append(o.json_);
}

object& object::operator=(const object& o) {
  if (this != &o) *this = object(o);
  return *this;
}

// object has private members: a friend-free builder goes through this accessor type.
struct object_builder {
  static boost::system::result<object> build(simdjson::dom::element e, std::string_view default_api_version,
                                             std::string_view default_kind) {
    simdjson::dom::object root;
    if (e.get_object().get(root) != simdjson::SUCCESS) {
      return boost::system::error_code(EINVAL, boost::system::generic_category());
    }
    object o;
    thread_local std::string text;
    thread_local simdjson::internal::string_builder<> sb;
    text.clear();
    text.push_back('{');
    bool first = true;
    if (!default_kind.empty() && root["kind"].error() == simdjson::NO_SUCH_FIELD) {
      if (!default_api_version.empty() && root["apiVersion"].error() == simdjson::NO_SUCH_FIELD) {
        text.append("\"apiVersion\":");
        json_text::append_quoted(text, default_api_version);
        text.push_back(',');
      }
      text.append("\"kind\":");
      json_text::append_quoted(text, default_kind);
      o.kind_ = std::string(default_kind);
      first = false;
    }
    std::string_view ns, name;
    for (auto kv : root) {
      if (!first) text.push_back(',');
      first = false;
      if (kv.key == "metadata" && kv.value.is_object()) {
        text.append("\"metadata\":{");
        bool mfirst = true;
        for (auto m : simdjson::dom::object(kv.value)) {
          if (m.key == "managedFields") continue;
          if (!mfirst) text.push_back(',');
          mfirst = false;
          sb.clear();
          sb.append(m);
          text.append(sb.str());
          std::string_view sv;
          if (m.key == "namespace" && m.value.get_string().get(sv) == simdjson::SUCCESS) {
            ns = sv;
          } else if (m.key == "name" && m.value.get_string().get(sv) == simdjson::SUCCESS) {
            name = sv;
          } else if (m.key == "uid" && m.value.get_string().get(sv) == simdjson::SUCCESS) {
            o.uid_ = std::string(sv);
          } else if (m.key == "resourceVersion" && m.value.get_string().get(sv) == simdjson::SUCCESS) {
            o.resource_version_ = std::string(sv);
          } else if (m.key == "generation") {
            int64_t g = 0;
            if (m.value.get_int64().get(g) == simdjson::SUCCESS) o.generation_ = g;
          } else if (m.key == "deletionTimestamp") {
            o.being_deleted_ = !m.value.is_null();
          }
        }
        text.push_back('}');
        continue;
      }
      if (kv.key == "kind") {
        std::string_view sv;
        if (kv.value.get_string().get(sv) == simdjson::SUCCESS) o.kind_ = std::string(sv);
      }
      sb.clear();
      sb.append(kv);
      text.append(sb.str());
    }
    text.push_back('}');
    o.json_.reserve(text.size() + object::padding);
    o.json_.assign(text);
    o.key_ = object_key(ns, name);
    o.ns_len_ = ns.size();
    return o;
  }
};

namespace detail {
boost::system::result<object> object_from_element(simdjson::dom::element e, std::string_view default_api_version,
                                                  std::string_view default_kind) {
  return object_builder::build(e, default_api_version, default_kind);
}
}  // namespace detail

boost::system::result<object> object::parse(std::string_view json) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (parser.parse(padded).get(doc) != simdjson::SUCCESS) {
    return boost::system::error_code(EINVAL, boost::system::generic_category());
  }
  return object_builder::build(doc, {}, {});
}

boost::json::value object::to_value() const { return boost::json::parse(json_); }

std::optional<std::string> secret_value(const object& secret, std::string_view key) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(secret.json(), ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  if (const auto* data = o.if_contains("data"); data && data->is_object()) {
    if (const auto* item = data->get_object().if_contains(key); item && item->is_string())
      return base64_decode(std::string_view(item->get_string()));
  }
  if (const auto* data = o.if_contains("stringData"); data && data->is_object()) {
    if (const auto* item = data->get_object().if_contains(key); item && item->is_string()) return std::string(item->get_string());
  }
  return std::nullopt;
}

}  // namespace canaryd::k8s
