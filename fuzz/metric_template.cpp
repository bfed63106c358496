// libFuzzer target: a MetricTemplate (JSON) decoded as canaryd reads it from its watch cache.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/metric_template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)canaryd::core::decode_metric_template(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
