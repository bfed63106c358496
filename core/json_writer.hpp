#pragma once
// Writing JSON text by hand in core/ (status bodies, canonical forms), where pulling in a JSON
// library would cost more than it gives. k8s/json_text.hpp is the same idea for the I/O layer;
// core/ cannot include it (core depends on nothing of ours).
#include <string>
#include <string_view>

namespace canaryd::core {

// Appends `s` as a JSON string literal (quotes included) with the minimal escapes RFC 8259
// requires: \" \\ \b \f \n \r \t and \u00XX for other control characters; other bytes as they are.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

}  // namespace canaryd::core
