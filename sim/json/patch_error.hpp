#pragma once
// The failure of a patch, worded and coded the way kube-apiserver answers it, so the API layer
// can turn it into a Status object without knowing which patch format failed.
#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>

namespace kubesim {

struct patch_error {
  int code = 422;          // HTTP status: 400 BadRequest, 413 RequestEntityTooLarge, 422 Invalid, 500
  std::string reason;      // Status.reason: "BadRequest", "RequestEntityTooLarge", "Invalid", "InternalError"
  std::string message;     // Status.message, exactly as a real server words it
  std::string detail;      // the specific cause ("testing value /spec/replicas failed: test failed");
                           // a real server hides it for JSON patch failures, it is kept for logs and tests
};

template <class T>
using patch_result = boost::system::result<T, patch_error>;

// For boost::system::result<T, patch_error>::value() on an error (a bug in the caller).
[[noreturn]] inline void throw_exception_from_error(const patch_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

inline patch_error bad_request(std::string message) {
  return {400, "BadRequest", message, message};
}

// kube-apiserver wraps a failed JSON patch (and a strategic merge patch that cannot apply) in
// NewGenericServerResponse(422, ...), whose message is fixed and whose details carry no cause.
inline patch_error unprocessable(std::string detail) {
  return {422, "Invalid", "the server rejected our request due to an error in our request", std::move(detail)};
}

}  // namespace kubesim
