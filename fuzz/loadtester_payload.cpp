// libFuzzer target: the JSON body Flagger posts to the load tester (CanaryWebhookPayload).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "loadtester/payload.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto p = canaryd::loadtester::parse_payload(std::string_view(reinterpret_cast<const char*>(data), size));
  if (p) (void)p->canary();
  return 0;
}
