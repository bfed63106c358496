#pragma once
// Test helper: YAML documents (Flagger's example manifests) as JSON text, resolving plain
// scalars the way Kubernetes' YAML decoder does (null, booleans, integers, floats; anything
// quoted stays a string).
#include <string>
#include <vector>

namespace canaryd::test {

// Every document of a YAML file, as JSON. Throws YAML::Exception on unreadable YAML.
std::vector<std::string> yaml_file_to_json(const std::string& path);
std::vector<std::string> yaml_to_json(const std::string& yaml);

}  // namespace canaryd::test
