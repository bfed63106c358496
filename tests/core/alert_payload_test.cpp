// Alert payloads: each provider's body is the JSON Flagger's notifier posts (flagger-behaviour.md
// §8), byte for byte as Go's encoding/json writes it, and the severity filter follows the docs.
#include <doctest/doctest.h>

#include <string>

#include "core/alert_payload.hpp"
#include "core/alert_provider.hpp"
#include "core/canary.hpp"
#include "core/rollout.hpp"

using namespace canaryd::core;

namespace {

canary podinfo() {
  auto d = decode_canary(R"json({
    "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
    "metadata": {"name": "podinfo-canary", "namespace": "test"},
    "spec": {
      "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
      "service": {"port": 9898},
      "analysis": {"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50}
    }
  })json");
  REQUIRE(d.ok());
  return d.value;
}

alert_target target(std::string type) {
  alert_target t;
  t.type = std::move(type);
  t.address = "https://hooks.example.com/services/T0/B0/X";
  t.channel = "general";
  t.username = "flagger";
  return t;
}

const alert_field_list two_fields{{"Target", "Deployment/podinfo.test"}, {"Failed checks threshold", "5"}};

}  // namespace

TEST_CASE("the metadata fields are Flagger's, with Cluster first when -cluster-name is set") {
  const canary c = podinfo();
  send_alert a{"New revision detected, progressing canary analysis.", alert_severity::info, true};
  auto f = alert_message_fields(c, a, "prod-eu");
  REQUIRE(f.size() == 5);
  CHECK(f[0] == std::pair<std::string, std::string>{"Cluster", "prod-eu"});
  CHECK(f[1] == std::pair<std::string, std::string>{"Target", "Deployment/podinfo.test"});
  CHECK(f[2] == std::pair<std::string, std::string>{"Failed checks threshold", "5"});
  CHECK(f[3] == std::pair<std::string, std::string>{"Progress deadline", "600s"});
  CHECK(f[4] == std::pair<std::string, std::string>{"Traffic routing", "Weight step: 10 max: 50"});
  a.with_metadata = false;
  CHECK(alert_message_fields(c, a, "").empty());
  CHECK(alert_message_fields(c, a, "prod-eu").size() == 1);
}

TEST_CASE("a Slack payload is Flagger's SlackPayload with one attachment, good or danger") {
  const std::string info = alert_payload(target("slack"), "podinfo-canary.test", "Canary is waiting for approval.",
                                         two_fields, alert_severity::warn);
  CHECK(info ==
        R"({"channel":"general","username":"flagger","icon_url":"","icon_emoji":":rocket:","attachments":[{"color":"good",)"
        R"("author_name":"podinfo-canary.test","text":"Canary is waiting for approval.","mrkdwn_in":["text"],)"
        R"("fields":[{"title":"Target","value":"Deployment/podinfo.test","short":false},)"
        R"({"title":"Failed checks threshold","value":"5","short":false}]}]})");
  const std::string err =
      alert_payload(target("slack"), "podinfo-canary.test", "Failed checks threshold reached 5", {}, alert_severity::error);
  CHECK(err ==
        R"({"channel":"general","username":"flagger","icon_url":"","icon_emoji":":rocket:","attachments":[{"color":"danger",)"
        R"("author_name":"podinfo-canary.test","text":"Failed checks threshold reached 5","mrkdwn_in":["text"],"fields":[]}]})");
}

TEST_CASE("Discord gets the Slack payload at <address>/slack; Rocket gets it with blue or red") {
  auto d = target("discord");
  CHECK(alert_payload(d, "a.b", "m", {}, alert_severity::info) == alert_payload(target("slack"), "a.b", "m", {}, alert_severity::info));
  d.address = "https://discord.com/api/webhooks/1/abc";
  CHECK(alert_post_url(d) == "https://discord.com/api/webhooks/1/abc/slack");
  d.address = "https://discord.com/api/webhooks/1/abc/slack";
  CHECK(alert_post_url(d) == "https://discord.com/api/webhooks/1/abc/slack");
  d.address = "https://discord.com/api/webhooks/1/abc/?wait=true";
  CHECK(alert_post_url(d) == "https://discord.com/api/webhooks/1/abc/slack?wait=true");
  d.address = "http://127.0.0.1:8080";
  CHECK(alert_post_url(d) == "http://127.0.0.1:8080/slack");
  auto s = target("slack");
  s.address = "http://127.0.0.1:8080/hook";
  CHECK(alert_post_url(s) == "http://127.0.0.1:8080/hook");

  const std::string rocket = alert_payload(target("rocket"), "a.b", "m", {}, alert_severity::info);
  CHECK(rocket.find(R"("color":"#0076D7")") != std::string::npos);
  CHECK(rocket.find(R"("icon_emoji":":rocket:")") != std::string::npos);
  CHECK(alert_payload(target("rocket"), "a.b", "m", {}, alert_severity::error).find(R"("color":"#FF0000")") !=
        std::string::npos);
}

TEST_CASE("an MS Teams payload is a MessageCard whose facts are the fields") {
  CHECK(alert_payload(target("msteams"), "podinfo-canary.test", "New revision detected, progressing canary analysis.",
                      two_fields, alert_severity::info) ==
        R"({"@type":"MessageCard","@context":"http://schema.org/extensions","themeColor":"0076D7",)"
        R"("summary":"podinfo-canary.test","sections":[{"activityTitle":"New revision detected, progressing canary analysis.",)"
        R"("activitySubtitle":"podinfo-canary.test","facts":[{"name":"Target","value":"Deployment/podinfo.test"},)"
        R"({"name":"Failed checks threshold","value":"5"}]}]})");
  CHECK(alert_payload(target("msteams"), "a.b", "m", {}, alert_severity::error).find(R"("themeColor":"FF0000")") !=
        std::string::npos);
}

TEST_CASE("a Google Chat payload is one card: the Flagger header, the message, then one paragraph per field") {
  CHECK(alert_payload(target("gchat"), "podinfo-canary.test", "Canary analysis completed successfully, promotion finished.",
                      {{"Target", "Deployment/podinfo.test"}}, alert_severity::info) ==
        R"({"cards":[{"header":{"title":"Flagger","subtitle":"podinfo-canary.test","imageUrl":"https://flagger.app/favicon.png"},)"
        R"("sections":[{"widgets":[{"textParagraph":{"text":"\u003cfont color=#848484\u003e\u003cstrong\u003e)"
        R"(Canary analysis completed successfully, promotion finished.\u003c/strong\u003e\u003c/font\u003e"}}]},)"
        R"({"widgets":[{"textParagraph":{"text":"Target\u003cbr\u003e\u003cfont color=#848484\u003e\u003cstrong\u003e)"
        R"(Deployment/podinfo.test\u003c/strong\u003e\u003c/font\u003e"}}]}]}]})");
}

TEST_CASE("strings are escaped as Go's encoding/json escapes them") {
  std::string out;
  append_go_json_string(out, "a\"b\\c\nd\te<f>&g\x01h\xE2\x80\xA8i\xC3\xA9");
  CHECK(out == "\"a\\\"b\\\\c\\nd\\te\\u003cf\\u003e\\u0026g\\u0001h\\u2028i\xC3\xA9\"");
}

TEST_CASE("a target Flagger's notifier constructors would reject names the reason") {
  CHECK(alert_target_error(target("slack")).empty());
  auto t = target("slack");
  t.channel.clear();
  CHECK(alert_target_error(t) == "empty Slack channel");
  t = target("rocket");
  t.username.clear();
  CHECK(alert_target_error(t) == "empty Rocket username");
  t = target("msteams");
  t.username.clear();
  t.channel.clear();
  CHECK(alert_target_error(t).empty());
  t.address = "not a url";
  CHECK(alert_target_error(t) == "invalid MS Teams hook URL not a url");
  t.type = "pagerduty";
  CHECK(alert_target_error(t) == "provider pagerduty not supported");
}

TEST_CASE("the severity filter follows Flagger's docs: info gets all, warn gets warn and error, error gets error") {
  using s = alert_severity;
  CHECK(alert_matches("info", s::info));
  CHECK(alert_matches("info", s::warn));
  CHECK(alert_matches("info", s::error));
  CHECK(alert_matches("", s::info));
  CHECK_FALSE(alert_matches("warn", s::info));
  CHECK(alert_matches("warn", s::warn));
  CHECK(alert_matches("warn", s::error));
  CHECK_FALSE(alert_matches("error", s::info));
  CHECK_FALSE(alert_matches("error", s::warn));
  CHECK(alert_matches("error", s::error));
}
