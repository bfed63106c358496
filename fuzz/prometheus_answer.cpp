// libFuzzer target: the body of a Prometheus /api/v1/query answer, read as Flagger's prometheus
// provider reads it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/prometheus_answer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)canaryd::core::read_prometheus_answer(200, body);
  (void)canaryd::core::read_prometheus_answer(500, body);
  return 0;
}
