#pragma once
// Wall-clock instants as Kubernetes writes them (RFC 3339, metav1.Time): status.lastTransitionTime,
// condition times, deletionTimestamp. core/ never reads a clock: `now` is always passed in.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace canaryd::core {

using wall_clock = std::chrono::system_clock;
using wall_time = wall_clock::time_point;

// "2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123456Z", "2024-05-01T12:00:00+02:00" (also a
// lowercase t/z). nullopt for anything else, including impossible dates and years outside
// 1678..2261 (what a nanosecond system_clock can hold).
std::optional<wall_time> parse_rfc3339(std::string_view text);

// Seconds precision with "Z", as metav1.Time serializes: "2024-05-01T10:00:00Z".
std::string format_rfc3339(wall_time t);

// Milliseconds precision when there is a fraction ("2024-05-01T10:00:00.250Z"), else as
// format_rfc3339. Still an RFC 3339 date-time (the CRD's `format: date-time`), which metav1.Time
// parses (and Flagger then rewrites at seconds precision). Used for status.lastTransitionTime,
// the anchor of the analysis pacing that a restarted daemon resumes from (core/rollout.hpp).
std::string format_rfc3339_ms(wall_time t);

}  // namespace canaryd::core
