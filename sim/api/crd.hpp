#pragma once
// CustomResourceDefinitions (apiextensions.k8s.io/v1): what a real server checks and fills in
// when one is written, and the resources it defines.
//
// Pure functions: the caller passes the time for condition timestamps.
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "sim/api/store.hpp"

namespace kubesim::crd {

// Defaults (conversion, names.singular, names.listKind, Age column when a version lists no
// printer columns is NOT added to the object: it is applied when serving) and validation of
// the CRD's spec; the errors are 422 causes.
void apply_defaults(boost::json::object& crd);
std::vector<field_error> validate(const boost::json::object& crd, const boost::json::object* old);

// The resources of every served version (group, plural, kind, scope, subresources, printer
// columns, schema). Requires a CRD that validated.
std::vector<resource_info> resources_of(const boost::json::object& crd);

// Sets status.acceptedNames, the NamesAccepted and Established conditions (keeping their
// lastTransitionTime from `old_status` when unchanged) and storedVersions. `now` is RFC 3339.
void set_status(boost::json::object& crd, const boost::json::object* old_status, std::string_view now,
                bool terminating);

}  // namespace kubesim::crd
