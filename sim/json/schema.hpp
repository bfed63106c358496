#pragma once
// OpenAPI v3 structural schemas of CustomResourceDefinitions, applied to custom objects the way
// kube-apiserver (apiextensions-apiserver + kube-openapi) does on create and update:
//   1. prune(): drop every field the schema does not declare, except under
//      x-kubernetes-preserve-unknown-fields and, at the root and in embedded resources,
//      apiVersion, kind and metadata;
//   2. apply_defaults(): set `default` values of missing (or null, non-nullable) fields, and drop
//      non-nullable nulls that have no default;
//   3. validate(): type (integer vs number, x-kubernetes-int-or-string), nullable, enum, pattern
//      (std::regex ECMAScript), minimum/maximum/exclusive*, multipleOf, min/maxLength (in
//      characters), min/maxItems, uniqueItems, min/maxProperties, required, properties, items,
//      additionalProperties (bool or schema), anyOf/oneOf/allOf/not, and the apiVersion/kind of
//      x-kubernetes-embedded-resource objects.
// Errors carry kube-openapi's wording, e.g.
//   spec.analysis.maxWeight: Invalid value: 101: spec.analysis.maxWeight in body should be less than or equal to 100
//   spec.targetRef: Required value
//   spec.provider: Unsupported value: "x": supported values: "istio", "linkerd"
// `format` is not checked (kube-openapi only checks a few string formats; CRDs in use here
// declare none that matter). x-kubernetes-validations (CEL) are not evaluated.
//
// The schema is the CRD version's schema.openAPIV3Schema, as JSON.
#include <boost/json/value.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace kubesim {

// One cause of a 422 Invalid, as in Status.details.causes.
struct schema_error {
  std::string reason;   // FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid,
                        // FieldValueTooLong, FieldValueTooMany
  std::string field;    // "spec.analysis.maxWeight" ("<nil>" for anyOf/oneOf failures, as the real server says)
  std::string message;  // "Invalid value: 101: spec.analysis.maxWeight in body should be less than or equal to 100"

  // "field: message", the form used in the Status message.
  std::string text() const { return field + ": " + message; }
};

// Removes undeclared fields from `object` (a whole custom object) in place.
void prune(const boost::json::value& schema, boost::json::value& object);

// Applies defaults to `object` in place.
void apply_defaults(const boost::json::value& schema, boost::json::value& object);

// Validates `object`; empty when valid.
std::vector<schema_error> validate(const boost::json::value& schema, const boost::json::value& object);

// The Status message of a 422 for these errors: `Canary.flagger.app "podinfo" is invalid: <e>`
// for one error, `... is invalid: [<e1>, <e2>]` for several. `qualified_kind` is Kind.group.
std::string invalid_message(std::string_view qualified_kind, std::string_view name, const std::vector<schema_error>& errors);

}  // namespace kubesim
