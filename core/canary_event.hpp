#pragma once
// A Kubernetes Event about a Canary, as Flagger records them: involvedObject = the Canary,
// reason always "Synced", type Normal (info) or Warning (warning and error; error only changes the
// log level). `phase` is the phase the event webhooks report with it (Flagger sends the
// canary's in-memory phase, which some events set ahead of the status write).
#include <string>

#include "core/canary.hpp"

namespace canaryd::core {

enum class event_severity { info, warning, error };

struct canary_event {
  event_severity severity = event_severity::info;
  std::string message;
  canary_phase phase = canary_phase::none;

  // "Normal" or "Warning".
  const char* type() const { return severity == event_severity::info ? "Normal" : "Warning"; }
  friend bool operator==(const canary_event&, const canary_event&) = default;
};

inline constexpr const char* canary_event_reason = "Synced";

}  // namespace canaryd::core
