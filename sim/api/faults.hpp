#pragma once
// Fault injection settings, shared by the API server (which applies them to requests) and the
// simulated controllers (which read pause_controllers). Set from kubesim's --fault-* flags and
// from the admin endpoint POST /kubesim/faults.
//
// Thread affinity: the io_context thread only. Plain data: readers look at it when they act.
#include <chrono>
#include <string>

namespace kubesim {

struct fault_settings {
  double error_rate = 0;          // share of API requests answered 500 InternalError
  double throttle_rate = 0;       // share answered 429 TooManyRequests with Retry-After
  int retry_after_seconds = 1;    // the Retry-After of those 429s
  std::chrono::milliseconds latency{0};  // added before every API request is handled
  // Only requests whose User-Agent contains this are affected ("" = every request), so a test
  // can disturb canaryd while its own kubectl calls go through.
  std::string user_agent;
  // The simulated controllers stand still while true (the world's controllers check it).
  bool pause_controllers = false;
};

}  // namespace kubesim
