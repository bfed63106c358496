#pragma once
// Discovery documents as a real API server serves them (legacy, non-aggregated discovery: a
// client asking for aggregated discovery gets plain JSON and falls back, as kubectl does).
//
// Pure functions over the store's resource registry.
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "sim/api/store.hpp"

namespace kubesim::discovery {

// The Kubernetes version kubesim claims. kubectl's dispatcher picks a kubectl by it.
inline constexpr std::string_view git_version = "v1.30.0";

boost::json::object version();
// /api
boost::json::object api_versions(std::string_view server_address);
// /apis
boost::json::object group_list(const std::vector<const resource_info*>& resources);
// /apis/<group>; empty if the group is not served.
boost::json::object group(const std::vector<const resource_info*>& resources, std::string_view group);
// /api/v1 and /apis/<group>/<version>; empty if not served.
boost::json::object resource_list(const std::vector<const resource_info*>& resources, std::string_view group,
                                  std::string_view version);
// GET /: the served paths.
boost::json::object root_paths(const std::vector<const resource_info*>& resources);

// Kubernetes version ordering (v1 > v1beta2 > v1beta1 > v1alpha1 > "foo"): true if a sorts first.
bool version_before(std::string_view a, std::string_view b);

}  // namespace kubesim::discovery
