#pragma once
// Server-side printing (Accept: application/json;as=Table;v=v1;g=meta.k8s.io): the columns and
// cells a real server computes for each built-in kind, and for custom resources the CRD's
// additionalPrinterColumns evaluated with JSONPath. kubectl prints these as they come.
//
// Pure functions: the caller passes the time ages are measured against.
#include <boost/json/object.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "sim/api/store.hpp"

namespace kubesim::table {

enum class include_object { none, metadata, object };

// "5m3s", "3h", "12d": Kubernetes' duration.HumanDuration.
std::string human_duration(std::chrono::seconds d);

boost::json::array column_definitions(const resource_info& r);
boost::json::array cells(const resource_info& r, const boost::json::object& obj,
                         std::chrono::system_clock::time_point now);

// A meta.k8s.io/v1 (or v1beta1) Table of `items`. `list_meta` goes to Table.metadata.
// `with_columns` false leaves columnDefinitions empty (watch events after the first).
boost::json::object make(const resource_info& r, const std::vector<object_ptr>& items, include_object inc,
                         bool with_columns, std::chrono::system_clock::time_point now,
                         boost::json::object list_meta, std::string_view api_version = "meta.k8s.io/v1");

// The object embedded in a row: PartialObjectMetadata for include_object::metadata.
boost::json::object partial_metadata(const boost::json::object& obj, std::string_view api_version = "meta.k8s.io/v1");

}  // namespace kubesim::table
