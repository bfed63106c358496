#pragma once
// Decoding and validation errors that name the field they are about, e.g.
// "spec.analysis.maxWeight: must be at most 100, got 150". Decoders never throw and never stop at
// the first problem: they return every error they found next to the best value they could build.
#include <string>
#include <utility>
#include <vector>

namespace canaryd::core {

struct field_error {
  std::string field;    // dotted path with indices: "spec.analysis.metrics[1].interval"
  std::string message;  // what is wrong, in words a user can act on

  // "field: message" (or just the message when the error is about the whole document).
  std::string text() const { return field.empty() ? message : field + ": " + message; }
  friend bool operator==(const field_error&, const field_error&) = default;
};

// All errors joined with "; " — for a status condition or an event message.
std::string join_errors(const std::vector<field_error>& errors);

// The result of a decoder: the value (as complete as the input allowed) and every error found.
// ok() means the value can be acted on.
template <class T>
struct decoded {
  T value{};
  std::vector<field_error> errors;
  bool ok() const { return errors.empty(); }
};

}  // namespace canaryd::core
