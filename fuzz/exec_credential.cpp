// libFuzzer target: what an exec credential plugin prints (an ExecCredential), as canaryd parses
// it for both API versions.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "k8s/exec_credential.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)canaryd::k8s::parse_exec_credential(text, "client.authentication.k8s.io/v1");
  (void)canaryd::k8s::parse_exec_credential(text, "client.authentication.k8s.io/v1beta1");
  (void)canaryd::k8s::parse_rfc3339(text);
  return 0;
}
