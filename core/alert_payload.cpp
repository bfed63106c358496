#include "core/alert_payload.hpp"

#include <fmt/format.h>

namespace canaryd::core {

namespace {

// Field writers in Go's struct order; Go's json.Marshal writes no spaces.
void key(std::string& out, std::string_view k) {
  append_go_json_string(out, k);
  out += ':';
}

void str(std::string& out, std::string_view k, std::string_view v) {
  key(out, k);
  append_go_json_string(out, v);
}

// SlackPayload {channel, username, icon_url, icon_emoji, text (omitempty), attachments}, with
// one SlackAttachment {color, author_name, text, mrkdwn_in, fields[{title, value, short}]}.
// Used by slack, discord and rocket, which differ only in colours.
std::string slack_payload(const alert_target& t, std::string_view subject, std::string_view message,
                          const alert_field_list& fields, std::string_view color) {
  std::string out = "{";
  str(out, "channel", t.channel);
  out += ',';
  str(out, "username", t.username);
  out += ',';
  str(out, "icon_url", "");
  out += ',';
  str(out, "icon_emoji", ":rocket:");
  out += ",\"attachments\":[{";
  str(out, "color", color);
  out += ',';
  str(out, "author_name", subject);
  out += ',';
  str(out, "text", message);
  out += ",\"mrkdwn_in\":[\"text\"],\"fields\":[";
  bool first = true;
  for (const auto& [name, value] : fields) {
    if (!first) out += ',';
    first = false;
    out += '{';
    str(out, "title", name);
    out += ',';
    str(out, "value", value);
    out += ",\"short\":false}";
  }
  out += "]}]}";
  return out;
}

// MSTeamsPayload: a MessageCard with one section whose facts are the fields.
std::string msteams_payload(std::string_view subject, std::string_view message, const alert_field_list& fields,
                            alert_severity severity) {
  std::string out = "{";
  str(out, "@type", "MessageCard");
  out += ',';
  str(out, "@context", "http://schema.org/extensions");
  out += ',';
  str(out, "themeColor", severity == alert_severity::error ? "FF0000" : "0076D7");
  out += ',';
  str(out, "summary", subject);
  out += ",\"sections\":[{";
  str(out, "activityTitle", message);
  out += ',';
  str(out, "activitySubtitle", subject);
  out += ",\"facts\":[";
  bool first = true;
  for (const auto& [name, value] : fields) {
    if (!first) out += ',';
    first = false;
    out += '{';
    str(out, "name", name);
    out += ',';
    str(out, "value", value);
    out += '}';
  }
  out += "]}]}";
  return out;
}

// GChatPayload: one card with a header and one section per paragraph: the message first, then
// one per field, in Flagger's grey-bold markup.
std::string gchat_payload(std::string_view subject, std::string_view message, const alert_field_list& fields) {
  std::string out = "{\"cards\":[{\"header\":{";
  str(out, "title", "Flagger");
  out += ',';
  str(out, "subtitle", subject);
  out += ',';
  str(out, "imageUrl", "https://flagger.app/favicon.png");
  out += "},\"sections\":[";
  auto paragraph = [&out](const std::string& text) {
    out += "{\"widgets\":[{\"textParagraph\":{";
    str(out, "text", text);
    out += "}}]}";
  };
  paragraph(fmt::format("<font color=#848484><strong>{}</strong></font>", message));
  for (const auto& [name, value] : fields) {
    out += ',';
    paragraph(fmt::format("{}<br><font color=#848484><strong>{}</strong></font>", name, value));
  }
  out += "]}]}";
  return out;
}

}  // namespace

void append_go_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '<':
      case '>':
      case '&':
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xf];
        continue;
      default: break;
    }
    if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xf];
      continue;
    }
    // U+2028 and U+2029 (E2 80 A8/A9): Go escapes them so the JSON is also valid JavaScript.
    if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out += static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
      continue;
    }
    out += s[i];
  }
  out += '"';
}

alert_field_list alert_message_fields(const canary& c, const send_alert& a, std::string_view cluster_name) {
  alert_field_list out;
  if (!cluster_name.empty()) out.emplace_back("Cluster", std::string(cluster_name));
  if (a.with_metadata) {
    for (auto& f : alert_fields(c)) out.push_back(std::move(f));
  }
  return out;
}

std::string alert_payload(const alert_target& target, std::string_view subject, std::string_view message,
                          const alert_field_list& fields, alert_severity severity) {
  const bool error = severity == alert_severity::error;
  if (target.type == "slack" || target.type == "discord")
    return slack_payload(target, subject, message, fields, error ? "danger" : "good");
  if (target.type == "rocket") return slack_payload(target, subject, message, fields, error ? "#FF0000" : "#0076D7");
  if (target.type == "msteams") return msteams_payload(subject, message, fields, severity);
  if (target.type == "gchat") return gchat_payload(subject, message, fields);
  return {};
}

std::string alert_post_url(const alert_target& target) {
  const std::string& a = target.address;
  if (target.type != "discord" || a.ends_with("/slack")) return a;
  // Go: webhook.Path = path.Join(webhook.Path, "slack"); the query and fragment stay.
  std::size_t path_start = 0;
  if (auto scheme = a.find("://"); scheme != std::string::npos) {
    path_start = a.find_first_of("/?#", scheme + 3);
    if (path_start == std::string::npos) path_start = a.size();
  }
  std::size_t path_end = a.find_first_of("?#", path_start);
  if (path_end == std::string::npos) path_end = a.size();
  std::string path = a.substr(path_start, path_end - path_start);
  while (!path.empty() && path.back() == '/') path.pop_back();
  return a.substr(0, path_start) + path + "/slack" + a.substr(path_end);
}

std::string alert_target_error(const alert_target& target) {
  static constexpr std::string_view names[][2] = {
      {"slack", "Slack"}, {"discord", "Discord"}, {"rocket", "Rocket"}, {"msteams", "MS Teams"}, {"gchat", "Google Chat"}};
  std::string_view label;
  for (const auto& n : names)
    if (target.type == n[0]) label = n[1];
  if (label.empty()) return fmt::format("provider {} not supported", target.type);
  if (target.address.find("://") == std::string::npos) return fmt::format("invalid {} hook URL {}", label, target.address);
  if (target.type == "msteams" || target.type == "gchat") return {};
  if (target.username.empty()) return fmt::format("empty {} username", label);
  if (target.channel.empty()) return fmt::format("empty {} channel", label);
  return {};
}

}  // namespace canaryd::core
