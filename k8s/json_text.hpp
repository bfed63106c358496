#pragma once
// Small helpers for writing JSON text by hand (log lines, Status bodies, watch events) where
// building a Boost.JSON value would be wasted work.
#include <string>
#include <string_view>

namespace canaryd::json_text {

// Appends `s` as a JSON string literal, quotes included, escaping per RFC 8259.
void append_quoted(std::string& out, std::string_view s);
std::string quoted(std::string_view s);

}  // namespace canaryd::json_text
