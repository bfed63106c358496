#pragma once
// AlertProvider of flagger.app/v1beta1 (Slack, MS Teams, Discord, Rocket, Google Chat), and the
// severity filter that decides which alerts reach a provider.
#include <string>
#include <string_view>

#include "core/canary.hpp"
#include "core/field_error.hpp"

namespace canaryd::core {

struct alert_provider {
  std::string api_version;
  std::string kind;
  object_metadata metadata;
  std::string type;        // slack, msteams, discord, rocket, gchat
  std::string channel;     // as written; effective_channel() applies "general"
  std::string username;    // as written; effective_username() applies "flagger"
  std::string address;     // the webhook URL (or from the secret's "address" key)
  std::string proxy;       // HTTP proxy URL
  std::string secret_ref;  // secretRef.name: keys "address" (required) and "token" (optional)

  std::string effective_channel() const { return channel.empty() ? "general" : channel; }
  std::string effective_username() const { return username.empty() ? "flagger" : username; }
};

decoded<alert_provider> decode_alert_provider(std::string_view json);

enum class alert_severity { info, warn, error };
std::string_view to_string(alert_severity s);  // "info", "warn", "error"

// Whether an alert of `message` severity goes to a canary alert configured with `configured`,
// as Flagger's docs describe it: "info" gets all, "warn" gets warn and error, "error" gets error
// only. [quirk] Flagger's code differs from its docs: an empty severity matches nothing (the docs
// say the default is info), "error" also receives warn alerts and "warn" does not receive error
// alerts. Fixed: we follow the docs.
bool alert_matches(std::string_view configured, alert_severity message);

}  // namespace canaryd::core
