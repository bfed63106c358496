#pragma once
// Strategic merge patch (Content-Type application/strategic-merge-patch+json) for the built-in
// kinds kubesim serves, following k8s.io/apimachinery/pkg/util/strategicpatch on the server
// side (MergeParallelList and IgnoreUnmatchedNulls on):
//  - maps merge member by member; null deletes; a new member has its nulls and directives
//    stripped;
//  - lists whose Go field carries patchStrategy "merge" merge: lists of objects by their
//    patchMergeKey (containers by name, container ports by containerPort, service ports by
//    port, volumeMounts by mountPath, ownerReferences by uid, conditions by type, ...), lists of
//    scalars (finalizers) as sets; every other list is replaced;
//  - directives: {"$patch": "replace"|"delete"} in a map, list elements {"$patch": "delete",
//    <key>: v} and {"$patch": "replace"}, "$retainKeys", "$setElementOrder/<list>",
//    "$deleteFromPrimitiveList/<list>";
//  - merged lists are ordered like the real server: patch items in $setElementOrder (or patch)
//    order, live-only items interleaved in their live order, new items first.
// Deliberate leniencies: a $setElementOrder list that disagrees with its patch list orders
// best-effort instead of failing; fields unknown to the type tables merge maps and replace
// lists (a real server never holds unknown fields in built-in objects, so it never meets them);
// unknown "$"-prefixed keys are dropped, as decoding into the Go type would drop them.
//
// Custom resources have no Go types: a real server refuses strategic merge for them with 415
// UnsupportedMediaType. strategic_schema() returns null for them, so the API layer can do the
// same.
#include "sim/json/patch_error.hpp"

#include <boost/json/value.hpp>

#include <string_view>

namespace kubesim {

// The patch metadata of one Go struct type (opaque; see strategic_merge.cpp).
struct smp_type;

// The root type of a built-in kind ("apps/v1", "Deployment"), or null if kubesim does not
// know it as a built-in (custom resources).
const smp_type* strategic_schema(std::string_view api_version, std::string_view kind) noexcept;

// Applies `patch` to a copy of `original`. Errors as kube-apiserver maps them: a patch that
// is not an object, or a malformed directive list, is 400; lists of lists 422 Invalid; other
// failures (a merge-list element without its merge key, an unknown $patch value) 500 with an
// empty reason, as the real server answers for errors it does not classify.
patch_result<boost::json::value> strategic_merge(const boost::json::value& original, const boost::json::value& patch,
                                                 const smp_type& schema);

}  // namespace kubesim
