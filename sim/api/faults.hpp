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
  // Only requests whose path contains this ("" = every path) and whose method is this ("" =
  // every method), e.g. "/events" and "POST": a test can fail one kind of write.
  std::string path_contains;
  std::string method;
  // The next N requests that match are answered 500 InternalError, before the rates apply: a
  // deterministic count of failures (each consumes one).
  long long fail_next = 0;
  // The simulated controllers stand still while true (the world's controllers check it).
  bool pause_controllers = false;
};

}  // namespace kubesim
