#pragma once
// Go's time.ParseDuration syntax, which Flagger's CRD fields (analysis.interval, metric
// intervals, webhook timeouts) and flags (-control-loop-interval) use: a sequence of decimal
// numbers with units ns, us (µs), ms, s, m, h, e.g. "300ms", "1.5h", "2h45m", "-1m" (negative
// durations are parsed; callers decide whether they are valid).
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace canaryd {

using duration = std::chrono::milliseconds;

// nullopt if `s` is not a Go duration. Sub-millisecond parts are truncated.
std::optional<duration> parse_go_duration(std::string_view s) noexcept;

// Formats like Go's Duration.String() for whole milliseconds: "1m0s", "1.5s", "0s".
std::string format_go_duration(duration d);

}  // namespace canaryd
