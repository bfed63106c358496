#pragma once
// What canaryd POSTs to an alert provider: Flagger's notifier payloads (pkg/notifier: Slack,
// Discord, Rocket, MS Teams, Google Chat), byte for byte as Go's encoding/json writes them, and
// the URL each is posted to. Pure: the daemon resolves providers and secrets and does the I/O
// (daemon/alert_sender.hpp).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/alert_provider.hpp"
#include "core/canary.hpp"
#include "core/rollout.hpp"

namespace canaryd::core {

using alert_field_list = std::vector<std::pair<std::string, std::string>>;

// The fields of one alert, in Flagger's order: "Cluster" (when -cluster-name is set), then
// alert_fields(c) when the alert is sent with_metadata.
alert_field_list alert_message_fields(const canary& c, const send_alert& a, std::string_view cluster_name);

// Where and how to post for one provider.
struct alert_target {
  std::string type;      // slack, msteams, discord, rocket, gchat
  std::string address;   // the hook URL as configured (spec.address, the secret's address, -slack-url)
  std::string token;     // Slack only: "Authorization: Bearer <token>" when set
  std::string proxy;     // HTTP proxy URL, "" for none
  std::string channel;   // effective channel (slack, discord, rocket)
  std::string username;  // effective username (slack, discord, rocket)
};

// The request body for `target.type`. `subject` is "<canary name>.<namespace>" (Flagger posts
// the Canary's name, not the target's). Colours: slack/discord "good"/"danger", rocket
// "#0076D7"/"#FF0000", msteams themeColor "0076D7"/"FF0000" (the second for error severity).
// An unknown type renders "" (decode_alert_provider rejects unknown types).
std::string alert_payload(const alert_target& target, std::string_view subject, std::string_view message,
                          const alert_field_list& fields, alert_severity severity);

// The URL to post to: the address, except for discord, which gets Slack-compatible payloads at
// "<address>/slack" (path-joined, query kept) unless the address already ends in "/slack".
std::string alert_post_url(const alert_target& target);

// Why a target cannot be posted to (Flagger's notifier constructors): an empty address, or an
// empty username/channel for slack, discord and rocket. "" when it is fine.
std::string alert_target_error(const alert_target& target);

// A string as Go's encoding/json writes it: HTML-safe escapes for <, > and & (\u003c, \u003e,
// \u0026), \u2028 and \u2029, \n \r \t, \u00XX for other control characters.
void append_go_json_string(std::string& out, std::string_view s);

}  // namespace canaryd::core
