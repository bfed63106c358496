#include "core/json_dom.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/json_writer.hpp"

namespace canaryd::core::detail {

void append_canonical(std::string& out, dom::element e) {
  switch (e.type()) {
    case dom::element_type::OBJECT: {
      dom::object obj = e.get_object().value_unsafe();
      std::vector<std::pair<std::string_view, dom::element>> members;
      for (dom::key_value_pair kv : obj) members.emplace_back(kv.key, kv.value);
      // Stable: if a (malformed) document repeats a key, the first occurrence comes first.
      std::stable_sort(members.begin(), members.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      bool first = true;
      for (const auto& [key, value] : members) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        append_canonical(out, value);
      }
      out += '}';
      return;
    }
    case dom::element_type::ARRAY: {
      out += '[';
      bool first = true;
      const dom::array arr = e.get_array().value_unsafe();
      for (dom::element item : arr) {
        if (!first) out += ',';
        first = false;
        append_canonical(out, item);
      }
      out += ']';
      return;
    }
    case dom::element_type::STRING:
      append_json_string(out, e.get_string().value_unsafe());
      return;
    case dom::element_type::INT64:
      out += std::to_string(e.get_int64().value_unsafe());
      return;
    case dom::element_type::UINT64:
      out += std::to_string(e.get_uint64().value_unsafe());
      return;
    case dom::element_type::DOUBLE: {
      const double d = e.get_double().value_unsafe();
      // An integral double prints as an integer, so 2.0 and 2 are the same canonical number.
      if (std::trunc(d) == d && std::fabs(d) < 1e15) {
        out += std::to_string(static_cast<long long>(d));
        return;
      }
      char buf[64];
      auto res = std::to_chars(buf, buf + sizeof buf, d);
      out.append(buf, res.ptr);
      return;
    }
    case dom::element_type::BOOL:
      out += e.get_bool().value_unsafe() ? "true" : "false";
      return;
    case dom::element_type::NULL_VALUE:
      out += "null";
      return;
  }
}

std::string canonical(dom::element e) {
  std::string out;
  append_canonical(out, e);
  return out;
}

std::string_view type_name(dom::element e) {
  switch (e.type()) {
    case dom::element_type::OBJECT: return "an object";
    case dom::element_type::ARRAY: return "an array";
    case dom::element_type::STRING: return "a string";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "a number";
    case dom::element_type::BOOL: return "a boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "a value";
}

bool parse_document(dom::parser& parser, std::string_view text, dom::element& doc, std::vector<field_error>& errors) {
  auto err = parser.parse(text.data(), text.size()).get(doc);
  if (err) {
    errors.push_back({"", fmt::format("not valid JSON: {}", simdjson::error_message(err))});
    return false;
  }
  return true;
}

void json_reader::error(std::string field, std::string message) {
  errors_.push_back({std::move(field), std::move(message)});
}

std::string json_reader::path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out = parent;
  out += '.';
  out += key;
  return out;
}

std::string json_reader::index(const std::string& parent, std::size_t i) { return fmt::format("{}[{}]", parent, i); }

std::optional<dom::element> json_reader::member(dom::object parent, std::string_view key) {
  dom::element e;
  if (parent.at_key(key).get(e)) return std::nullopt;
  if (e.is_null()) return std::nullopt;
  return e;
}

std::optional<dom::object> json_reader::as_object(dom::element e, const std::string& p) {
  dom::object obj;
  if (e.get_object().get(obj)) {
    error(p, fmt::format("must be an object, got {}", type_name(e)));
    return std::nullopt;
  }
  return obj;
}

std::optional<dom::array> json_reader::as_array(dom::element e, const std::string& p) {
  dom::array arr;
  if (e.get_array().get(arr)) {
    error(p, fmt::format("must be an array, got {}", type_name(e)));
    return std::nullopt;
  }
  return arr;
}

bool json_reader::as_string(dom::element e, const std::string& p, std::string& out) {
  std::string_view s;
  if (e.get_string().get(s)) {
    error(p, fmt::format("must be a string, got {}", type_name(e)));
    return false;
  }
  out.assign(s);
  return true;
}

bool json_reader::as_bool(dom::element e, const std::string& p, bool& out) {
  bool b = false;
  if (e.get_bool().get(b)) {
    error(p, fmt::format("must be a boolean, got {}", type_name(e)));
    return false;
  }
  out = b;
  return true;
}

bool json_reader::as_int(dom::element e, const std::string& p, int& out) {
  constexpr auto lo = std::numeric_limits<int>::min();
  constexpr auto hi = std::numeric_limits<int>::max();
  switch (e.type()) {
    case dom::element_type::INT64: {
      const auto v = e.get_int64().value_unsafe();
      if (v < lo || v > hi) break;
      out = static_cast<int>(v);
      return true;
    }
    case dom::element_type::UINT64:
      break;
    case dom::element_type::DOUBLE: {
      const double d = e.get_double().value_unsafe();
      if (std::trunc(d) != d || d < lo || d > hi) {
        error(p, fmt::format("must be an integer, got {}", canonical(e)));
        return false;
      }
      out = static_cast<int>(d);
      return true;
    }
    default:
      error(p, fmt::format("must be an integer, got {}", type_name(e)));
      return false;
  }
  error(p, fmt::format("must be an integer between {} and {}, got {}", lo, hi, canonical(e)));
  return false;
}

bool json_reader::as_double(dom::element e, const std::string& p, double& out) {
  switch (e.type()) {
    case dom::element_type::INT64: out = static_cast<double>(e.get_int64().value_unsafe()); return true;
    case dom::element_type::UINT64: out = static_cast<double>(e.get_uint64().value_unsafe()); return true;
    case dom::element_type::DOUBLE: out = e.get_double().value_unsafe(); return true;
    default:
      error(p, fmt::format("must be a number, got {}", type_name(e)));
      return false;
  }
}

std::optional<dom::object> json_reader::object_at(dom::object parent, std::string_view key, const std::string& pp) {
  auto e = member(parent, key);
  if (!e) return std::nullopt;
  return as_object(*e, path(pp, key));
}

std::optional<dom::array> json_reader::array_at(dom::object parent, std::string_view key, const std::string& pp) {
  auto e = member(parent, key);
  if (!e) return std::nullopt;
  return as_array(*e, path(pp, key));
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, std::string& out) {
  auto e = member(parent, key);
  return e && as_string(*e, path(pp, key), out);
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, bool& out) {
  auto e = member(parent, key);
  return e && as_bool(*e, path(pp, key), out);
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, int& out) {
  auto e = member(parent, key);
  return e && as_int(*e, path(pp, key), out);
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, std::optional<int>& out) {
  int v = 0;
  if (!read(parent, key, pp, v)) return false;
  out = v;
  return true;
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, double& out) {
  auto e = member(parent, key);
  return e && as_double(*e, path(pp, key), out);
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, std::optional<double>& out) {
  double v = 0;
  if (!read(parent, key, pp, v)) return false;
  out = v;
  return true;
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp,
                       std::map<std::string, std::string>& out) {
  auto obj = object_at(parent, key, pp);
  if (!obj) return false;
  const std::string p = path(pp, key);
  for (dom::key_value_pair kv : *obj) {
    std::string value;
    if (kv.value.is_null()) continue;
    if (as_string(kv.value, path(p, kv.key), value)) out[std::string(kv.key)] = std::move(value);
  }
  return true;
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, std::vector<std::string>& out) {
  auto arr = array_at(parent, key, pp);
  if (!arr) return false;
  const std::string p = path(pp, key);
  std::size_t i = 0;
  for (dom::element item : *arr) {
    std::string value;
    if (as_string(item, index(p, i), value)) out.push_back(std::move(value));
    ++i;
  }
  return true;
}

bool json_reader::read(dom::object parent, std::string_view key, const std::string& pp, std::vector<int>& out) {
  auto arr = array_at(parent, key, pp);
  if (!arr) return false;
  const std::string p = path(pp, key);
  std::size_t i = 0;
  for (dom::element item : *arr) {
    int value = 0;
    if (as_int(item, index(p, i), value)) out.push_back(value);
    ++i;
  }
  return true;
}

bool json_reader::read_raw(dom::object parent, std::string_view key, const std::string&, std::string& out) {
  auto e = member(parent, key);
  if (!e) return false;
  out = canonical(*e);
  return true;
}

}  // namespace canaryd::core::detail
