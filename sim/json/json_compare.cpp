#include "sim/json/json_compare.hpp"

#include <cmath>

namespace kubesim {
namespace json = boost::json;

namespace {

bool number_equal(const json::value& a, const json::value& b) noexcept {
  if (a.is_double() || b.is_double()) return a.to_number<double>() == b.to_number<double>();
  if (a.is_int64() && b.is_int64()) return a.get_int64() == b.get_int64();
  if (a.is_uint64() && b.is_uint64()) return a.get_uint64() == b.get_uint64();
  // One signed, one unsigned.
  const auto s = a.is_int64() ? a.get_int64() : b.get_int64();
  const auto u = a.is_uint64() ? a.get_uint64() : b.get_uint64();
  return s >= 0 && static_cast<std::uint64_t>(s) == u;
}

bool is_number(const json::value& v) noexcept { return v.is_int64() || v.is_uint64() || v.is_double(); }

}  // namespace

bool json_equal(const json::value& a, const json::value& b) noexcept {
  if (is_number(a) && is_number(b)) return number_equal(a, b);
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::object: {
      const auto& oa = a.get_object();
      const auto& ob = b.get_object();
      if (oa.size() != ob.size()) return false;
      for (const auto& kv : oa) {
        auto it = ob.find(kv.key());
        if (it == ob.end() || !json_equal(kv.value(), it->value())) return false;
      }
      return true;
    }
    case json::kind::array: {
      const auto& aa = a.get_array();
      const auto& ab = b.get_array();
      if (aa.size() != ab.size()) return false;
      for (std::size_t i = 0; i < aa.size(); ++i)
        if (!json_equal(aa[i], ab[i])) return false;
      return true;
    }
    default:
      return a == b;
  }
}

bool json_is_integer(const json::value& v) noexcept {
  if (v.is_int64() || v.is_uint64()) return true;
  if (!v.is_double()) return false;
  const double d = v.get_double();
  return std::isfinite(d) && std::trunc(d) == d;
}

const char* json_type_name(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return json_is_integer(v) ? "integer" : "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
  }
  return "null";
}

}  // namespace kubesim
