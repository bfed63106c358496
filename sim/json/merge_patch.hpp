#pragma once
// RFC 7386 JSON merge patch (Content-Type application/merge-patch+json).
//
// A patch object merges into the target member by member: null removes a member, an object
// recurses, anything else (arrays included) replaces. A patch that is not an object replaces
// the whole target. Never fails: every pair of JSON values has a merge result.
#include <boost/json/value.hpp>

namespace kubesim {

// Applies `patch` to `target` in place.
void apply_merge_patch(boost::json::value& target, const boost::json::value& patch);

// Returns `target` with `patch` applied.
boost::json::value merge_patch(boost::json::value target, const boost::json::value& patch);

}  // namespace kubesim
