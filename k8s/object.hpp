#pragma once
// A Kubernetes object as the client hands it out: its identity (namespace, name, uid,
// resourceVersion, generation) decoded once, and its body kept as compact JSON text.
//
// Why text: canaryd holds every watched object (10,000 canaries and their workloads) in caches
// and must stay under 300 MiB. Minified JSON costs its size plus ~200 bytes; a parsed tree
// (Boost.JSON, a simdjson DOM) costs 4-10x that. Consumers parse on demand, which simdjson
// does at GB/s:
//   - simdjson: the text is followed by at least `padding` readable bytes, so
//       simdjson::padded_string_view(o.json().data(), o.json().size(), o.json().size() + object::padding)
//     can be handed to an ondemand or DOM parser without a copy;
//   - Boost.JSON (for objects to edit and write back): o.to_value().
// metadata.managedFields is dropped when an object is built (it is large and unused by canaryd).
//
// Objects are immutable once built; caches and watch events share them by shared_ptr.
#include <boost/system/result.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boost::json {
class value;
}

namespace canaryd::k8s {

class object {
 public:
  static constexpr std::size_t padding = 64;  // >= simdjson::SIMDJSON_PADDING

  object() = default;
  object(object&&) noexcept = default;
  object& operator=(object&&) noexcept = default;
  // Copies keep the padding guarantee (a plain std::string copy would not).
  object(const object& o);
  object& operator=(const object& o);
  // Parses one JSON object (any kind, metadata optional), drops metadata.managedFields and
  // minifies. Errors: the simdjson error as a boost error_code (generic category, EINVAL) —
  // callers turn it into an api_error with the context they know.
  static boost::system::result<object> parse(std::string_view json);

  std::string_view json() const noexcept { return json_; }
  std::string_view namespace_name() const noexcept { return std::string_view(key_).substr(0, ns_len_); }
  std::string_view name() const noexcept {
    return ns_len_ == 0 ? std::string_view(key_) : std::string_view(key_).substr(ns_len_ + 1);
  }
  // "namespace/name", or "name" for cluster-scoped objects (client-go's MetaNamespaceKeyFunc).
  const std::string& key() const noexcept { return key_; }
  const std::string& uid() const noexcept { return uid_; }
  const std::string& resource_version() const noexcept { return resource_version_; }
  std::int64_t generation() const noexcept { return generation_; }
  bool being_deleted() const noexcept { return being_deleted_; }
  const std::string& kind() const noexcept { return kind_; }

  // Parses the text into a Boost.JSON value (include <boost/json/value.hpp> to use it).
  boost::json::value to_value() const;

 private:
  friend struct object_builder;
  std::string json_;  // capacity() >= size() + padding
  std::string key_;
  std::size_t ns_len_ = 0;
  std::string uid_;
  std::string resource_version_;
  std::string kind_;
  std::int64_t generation_ = 0;
  bool being_deleted_ = false;
};

using object_ptr = std::shared_ptr<const object>;

std::string object_key(std::string_view namespace_name, std::string_view name);

// A Secret's value for `key`: data[key] base64-decoded, else stringData[key] (which an API server
// converts into data, but a Secret read from elsewhere may still carry). nullopt when absent,
// not a string, or not valid base64.
std::optional<std::string> secret_value(const object& secret, std::string_view key);

}  // namespace canaryd::k8s
