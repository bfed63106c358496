#pragma once
// Internal to canaryd_k8s: building objects from an already parsed simdjson DOM element (a list's
// item, a watch event's object) without parsing the text twice. Includes simdjson.h, so only
// the client's .cpp files include it.
#include <simdjson.h>

#include "k8s/object.hpp"

namespace canaryd::k8s::detail {

// Builds an object from a DOM element that must be a JSON object; drops metadata.managedFields.
// When the element has no "kind" (items of built-in lists), `default_api_version` and
// `default_kind` are written in (if non-empty).
boost::system::result<object> object_from_element(simdjson::dom::element e, std::string_view default_api_version = {},
                                                  std::string_view default_kind = {});

}  // namespace canaryd::k8s::detail
