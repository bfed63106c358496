#pragma once
// Test support: instant queries against a real Prometheus's HTTP API.
#include <map>
#include <string>

namespace canaryd::test {

// Instant query: value by the given label ("" when the result has one unlabelled sample).
// The calling test fails when Prometheus does not answer 200.
std::map<std::string, double> prom_query(const std::string& prom, const std::string& promql, const std::string& label = {});

}  // namespace canaryd::test
