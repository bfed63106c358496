#include "core/version.hpp"

namespace canaryd {
std::string_view version() noexcept { return CANARYD_VERSION; }
}  // namespace canaryd
