#pragma once
// RFC 6902 JSON patch (Content-Type application/json-patch+json) with RFC 6901 pointers, as
// kube-apiserver applies it through evanphx/json-patch v4:
//  - ops add, remove, replace, move, copy, test; "~1" is '/', "~0" is '~'; "-" appends;
//  - a negative array index counts from the end (evanphx's SupportNegativeIndices default);
//  - `test` compares numbers by value; a `test` for null passes on a missing member (v4 quirk);
//  - at most 10000 operations.
// Errors, as the apiserver maps them: a body that is not an array of objects is 400 BadRequest;
// too many operations 413; an operation that cannot apply (failed test, missing path, bad
// index, unknown op) 422 Invalid with the fixed message "the server rejected our request due
// to an error in our request" (the specific cause is in patch_error::detail).
#include "sim/json/patch_error.hpp"

#include <boost/json/value.hpp>

#include <cstddef>

namespace kubesim {

inline constexpr std::size_t max_json_patch_operations = 10000;

// Applies `patch` (the decoded request body) to a copy of `document`; the input is untouched.
patch_result<boost::json::value> apply_json_patch(const boost::json::value& document,
                                                  const boost::json::value& patch);

}  // namespace kubesim
