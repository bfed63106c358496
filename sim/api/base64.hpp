#pragma once
// Standard base64 (RFC 4648, with padding), for continue tokens and Secret data.
#include <optional>
#include <string>
#include <string_view>

namespace kubesim {

std::string base64_encode(std::string_view in);
// Stops at the first '='; nullopt on a character outside the alphabet.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace kubesim
