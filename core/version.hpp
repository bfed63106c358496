#pragma once
#include <string_view>

namespace canaryd {
// The version canaryd reports in -version, flagger_info and its User-Agent.
std::string_view version() noexcept;
}  // namespace canaryd
