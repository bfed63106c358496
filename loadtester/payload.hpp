#pragma once
// Flagger's CanaryWebhookPayload as the load tester reads it. Pure: no I/O.
#include <boost/system/result.hpp>
#include <map>
#include <string>
#include <string_view>

namespace canaryd::loadtester {

struct webhook_payload {
  std::string name;
  std::string namespace_;
  std::string phase;
  std::string checksum;
  std::map<std::string, std::string> metadata;

  // The key Flagger's load tester files gates and tasks under: "<name>.<namespace>".
  std::string canary() const { return name + "." + namespace_; }
};

// Decodes the way Go's json.Unmarshal into CanaryWebhookPayload does: unknown fields are
// ignored, field names match case-insensitively, null leaves a field empty, and a value of the
// wrong type (a number for name, a non-string metadata value) is an error. The error is a
// one-line message for the log; the caller answers 400.
boost::system::result<webhook_payload, std::string> parse_payload(std::string_view body);

}  // namespace canaryd::loadtester
