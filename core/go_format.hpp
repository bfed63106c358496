#pragma once
// Go's fmt renderings that appear in Flagger's event messages, so ours read the same:
// time.Duration.String() at nanosecond precision ("Halt ... request duration 1.5s > 500ms",
// "123.456µs") and %v of a float64 ("success rate 97.50% < 99%", "1e+06").
// (core/duration.hpp parses Go durations and formats whole milliseconds for specs and flags.)
#include <chrono>
#include <string>

namespace canaryd::core {

// time.Duration.String(): "0s", "1.5µs", "500ms", "1m30s", "2h0m0s".
std::string format_go_duration_ns(std::chrono::nanoseconds d);

// fmt's %v of a float64: shortest representation, exponent form below 1e-4 and from 1e6 on
// ("99", "0.5", "1e+06", "NaN", "+Inf").
std::string format_go_float(double v);

}  // namespace canaryd::core
