// libFuzzer target: an AlertProvider (JSON) decoded as canaryd reads it from its watch cache.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/alert_provider.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)canaryd::core::decode_alert_provider(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
