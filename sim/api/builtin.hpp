#pragma once
// The built-in kinds kubesim serves, and what a real API server does to them on write:
// defaulting (as the kinds' SetDefaults_* functions) and the validation canaryd could trip
// over (names, labels, selectors that must match the template, immutable fields).
//
// Pure functions: no clock, no I/O.
#include <boost/json/object.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "sim/api/store.hpp"

namespace kubesim::builtin {

// Every built-in resource, in discovery order.
std::vector<resource_info> resources();

// Fills defaults into `obj` (the whole object, metadata included) of built-in resource `r`.
// `old` is the stored object on update (allocated values such as a Service's clusterIP are
// kept from it), null on create. `next_ip` hands out cluster IPs.
void apply_defaults(const resource_info& r, boost::json::object& obj, const boost::json::object* old,
                    std::uint32_t& next_ip);

// The validation of built-in kinds (spec only; metadata is checked by validate_metadata).
std::vector<field_error> validate(const resource_info& r, const boost::json::object& obj,
                                  const boost::json::object* old);

// Metadata rules common to every kind: name syntax, label keys and values, annotation keys,
// ownerReferences. `name_rule` is how the kind validates names.
enum class name_rule { dns_subdomain, dns_label, dns1035_label, path_segment };
name_rule name_rule_of(const resource_info& r);
std::vector<field_error> validate_metadata(const resource_info& r, const boost::json::object& meta);

// Single checks, reused by the CRD code and tests.
std::string check_name(name_rule rule, std::string_view name);  // "" if valid, else the reason
std::string check_label_value(std::string_view v);
std::string check_qualified_name(std::string_view k);

}  // namespace kubesim::builtin
