#pragma once
// YAML request bodies (Content-Type application/yaml) to JSON, resolving plain scalars as the
// API server's YAML decoder does (go-yaml v2 via sigs.k8s.io/yaml): null/~/empty, booleans
// (true/false and YAML 1.1's yes/no/on/off), integers, floats; quoted scalars stay strings.
//
// Pure; never throws: malformed YAML is an error value carrying yaml-cpp's message.
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <string_view>

namespace kubesim {

struct yaml_error {
  std::string message;
};

// The first (only) document of `text`; more than one document is an error.
boost::system::result<boost::json::value, yaml_error> yaml_to_json(std::string_view text);

[[noreturn]] void throw_exception_from_error(const yaml_error& e, const boost::source_location& loc);

}  // namespace kubesim
