#pragma once
// canary-loadtester's command line: the flags of Flagger's cmd/loadtester, so a Flagger
// load tester Deployment's args work unchanged, plus -listen-address.
// Go's flag syntax: `-name value`, `-name=value`, `--name value`, `--name=value`; a boolean flag
// alone means true and takes a value only as `-name=false`.
// Pure: no I/O.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace canaryd::loadtester {

struct options {
  int port = 9090;                     // Flagger's binary default (its Helm chart passes -port=8080)
  std::string listen_address;          // ours: address for -port ("" = all interfaces)
  std::chrono::milliseconds timeout{std::chrono::hours(1)};  // per command
  // Flagger's binary defaults to debug; we default to info like canaryd (its chart sets info).
  std::string log_level = "info";
  std::string namespace_regexp;        // "" = every namespace may submit tasks
  std::string zap_encoding = "json";   // accepted for compatibility; logs are always JSON lines
  bool zap_replace_globals = false;    // accepted for compatibility
  bool version = false;
  bool help = false;
};

// Parses argv[1..]. Returns the error message for an unknown flag, a missing or bad value, or a
// stray argument; the caller prints it with the usage and exits 2.
std::optional<std::string> parse_options(const std::vector<std::string>& args, options& out);

// The -help text: every flag and what it does.
std::string usage();

}  // namespace canaryd::loadtester
