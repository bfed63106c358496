#pragma once
// JSON value equality as Kubernetes' Go code sees it after decoding: numbers compare by value
// (1, 1.0 and 1u are equal), objects compare as unordered maps, arrays element by element.
// Boost.JSON's operator== keeps int64, uint64 and double apart, which would make a JSON patch
// `test` of {"value": 1} fail against a stored 1.0.
#include <boost/json/value.hpp>

namespace kubesim {

bool json_equal(const boost::json::value& a, const boost::json::value& b) noexcept;

// The JSON type name used in OpenAPI messages: "null", "boolean", "integer", "number",
// "string", "array", "object". A double with an integral value counts as "integer", as in
// Kubernetes, which decodes 1.0 and 1 alike.
const char* json_type_name(const boost::json::value& v) noexcept;

// True for int64/uint64 and for doubles with an integral value.
bool json_is_integer(const boost::json::value& v) noexcept;

}  // namespace kubesim
