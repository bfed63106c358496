#pragma once
// Internal to core/*.cpp (never included by a public header: simdjson.h is heavy): simdjson DOM
// helpers shared by the decoders, and the canonical JSON form used for hashing and for keeping
// opaque sub-objects (service.trafficPolicy, match, ...) as text.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "core/field_error.hpp"

namespace canaryd::core::detail {

namespace dom = simdjson::dom;

// Canonical JSON: object members sorted by key (bytewise), no whitespace, strings with minimal
// escapes, integers as integers, other numbers in shortest round-trip form. Two documents that
// differ only in key order or spacing have the same canonical text.
void append_canonical(std::string& out, dom::element e);
std::string canonical(dom::element e);

// "a string", "a number", "a boolean", "an object", "an array", "null": for type errors.
std::string_view type_name(dom::element e);

// Parses `text` into `doc` (owned by `parser`); on failure appends "not valid JSON: ..." to
// errors and returns false.
bool parse_document(dom::parser& parser, std::string_view text, dom::element& doc, std::vector<field_error>& errors);

// Reads typed members and records a field_error (with the member's path) for every value of the
// wrong type; absent or null members leave the output untouched, as Go's decoder does.
class json_reader {
 public:
  explicit json_reader(std::vector<field_error>& errors) : errors_(errors) {}

  void error(std::string field, std::string message);
  std::vector<field_error>& errors() { return errors_; }

  static std::string path(const std::string& parent, std::string_view key);
  static std::string index(const std::string& parent, std::size_t i);

  // parent[key], or nullopt when absent or null.
  static std::optional<dom::element> member(dom::object parent, std::string_view key);

  std::optional<dom::object> as_object(dom::element e, const std::string& path);
  std::optional<dom::array> as_array(dom::element e, const std::string& path);
  bool as_string(dom::element e, const std::string& path, std::string& out);
  bool as_bool(dom::element e, const std::string& path, bool& out);
  bool as_int(dom::element e, const std::string& path, int& out);
  bool as_double(dom::element e, const std::string& path, double& out);

  std::optional<dom::object> object_at(dom::object parent, std::string_view key, const std::string& parent_path);
  std::optional<dom::array> array_at(dom::object parent, std::string_view key, const std::string& parent_path);

  // Each returns true when the member was present (and of the right type).
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, std::string& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, bool& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, int& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, std::optional<int>& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, double& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, std::optional<double>& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path,
            std::map<std::string, std::string>& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, std::vector<std::string>& out);
  bool read(dom::object parent, std::string_view key, const std::string& parent_path, std::vector<int>& out);
  // The member's canonical JSON text ("" when absent or null).
  bool read_raw(dom::object parent, std::string_view key, const std::string& parent_path, std::string& out);

 private:
  std::vector<field_error>& errors_;
};

}  // namespace canaryd::core::detail
