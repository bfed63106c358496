// libFuzzer target: a kubeconfig file, loaded as canaryd loads -kubeconfig at startup. The
// loader's contract is that every problem is a config_error naming the file; any other
// exception escaping it is a bug, and so reaches libFuzzer as a crash.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "k8s/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("canaryd-fuzz-kubeconfig-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    (void)canaryd::k8s::load_kubeconfig({file});
  } catch (const canaryd::k8s::config_error&) {
  }
  return 0;
}
