// Revision identity: canonical-JSON pod template hashes, Flagger-compatible tracked-config
// checksums, the config references of a pod template, and the small text helpers behind them.
#include <doctest/doctest.h>

#include <string>

#include "core/duration.hpp"
#include "core/go_format.hpp"
#include "core/hash.hpp"
#include "core/revision.hpp"
#include "core/wall_time.hpp"

using namespace canaryd::core;
using namespace std::chrono_literals;

namespace {

const char* const podinfo_template = R"({
  "metadata": {"labels": {"app": "podinfo"}, "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9797"}},
  "spec": {"containers": [{"name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                           "ports": [{"name": "http", "containerPort": 9898, "protocol": "TCP"}],
                           "resources": {"limits": {"cpu": "2000m"}, "requests": {"cpu": "100m", "memory": 64}}}]}
})";

std::string revision(const std::string& json, revision_options options = {}) {
  auto r = pod_template_revision(json, options);
  REQUIRE(r.ok());
  return r.value;
}

}  // namespace

TEST_CASE("SHA-256 matches the FIPS 180-2 test vectors") {
  auto hex = [](std::string_view s) {
    auto d = sha256(s);
    return to_hex(d.data(), d.size());
  };
  CHECK(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(hex(std::string(1'000'000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  CHECK(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // Lengths around the padding boundary (55, 56, 63, 64 bytes) must not collide or crash.
  CHECK(hex(std::string(55, 'x')) != hex(std::string(56, 'x')));
  CHECK(hex(std::string(63, 'x')) != hex(std::string(64, 'x')));
}

TEST_CASE("FNV-1a 64 matches its reference values") {
  CHECK(fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ull);
  CHECK(to_hex(std::uint64_t{0x00ab}) == "00000000000000ab");
}

TEST_CASE("the template hash ignores key order and whitespace") {
  const std::string reordered = R"({"spec":{"containers":[{"resources":{"requests":{"memory":64,"cpu":"100m"},"limits":{"cpu":"2000m"}},
      "ports":[{"protocol":"TCP","containerPort":9898,"name":"http"}],"image":"ghcr.io/stefanprodan/podinfo:6.0.0","name":"podinfod"}]},
      "metadata":{"annotations":{"prometheus.io/port":"9797","prometheus.io/scrape":"true"},"labels":{"app":"podinfo"}}})";
  CHECK(revision(podinfo_template) == revision(reordered));
  CHECK(is_canaryd_revision(revision(podinfo_template)));
  CHECK(revision(podinfo_template).size() == 16);
}

TEST_CASE("the template hash changes with any value") {
  const std::string base = revision(podinfo_template);
  auto changed = [&](const std::string& from, const std::string& to) {
    std::string t = podinfo_template;
    t.replace(t.find(from), from.size(), to);
    return revision(t);
  };
  CHECK(changed("podinfo:6.0.0", "podinfo:6.0.1") != base);
  CHECK(changed("\"9797\"", "\"9798\"") != base);
  CHECK(changed("9898", "9899") != base);
  CHECK(changed("\"memory\": 64", "\"memory\": \"64\"") != base);  // a number is not a string
  CHECK(changed("\"TCP\"", "\"UDP\"") != base);
  // Array order is meaningful (containers, ports, args).
  const std::string two = R"({"spec":{"containers":[{"name":"a"},{"name":"b"}]}})";
  const std::string swapped = R"({"spec":{"containers":[{"name":"b"},{"name":"a"}]}})";
  CHECK(revision(two) != revision(swapped));
  // An integral number is the same number however it is written.
  CHECK(revision(R"({"a": 2})") == revision(R"({"a": 2.0})"));
  CHECK(revision(R"({"a": 2})") != revision(R"({"a": 2.5})"));
}

TEST_CASE("a DaemonSet's scale-to-zero nodeSelector does not count as a change") {
  revision_options ds{.daemonset = true};
  const std::string plain = R"({"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c"}]}})";
  const std::string zero =
      R"({"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c"}],"nodeSelector":{"flagger.app/scale-to-zero":"true"}}})";
  const std::string empty = R"({"metadata":{"labels":{"app":"d"}},"spec":{"nodeSelector":{},"containers":[{"name":"c"}]}})";
  const std::string real = R"({"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c"}],"nodeSelector":{"disk":"ssd"}}})";
  const std::string real_zero =
      R"({"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c"}],"nodeSelector":{"flagger.app/scale-to-zero":"true","disk":"ssd"}}})";
  CHECK(revision(plain, ds) == revision(zero, ds));
  CHECK(revision(plain, ds) == revision(empty, ds));
  CHECK(revision(real, ds) == revision(real_zero, ds));
  CHECK(revision(real, ds) != revision(plain, ds));
  CHECK(revision(plain) != revision(zero));  // a Deployment has no such exception
}

TEST_CASE("a template that is not JSON is an error, not a crash") {
  CHECK_FALSE(pod_template_revision("{\"spec\": [").ok());
  CHECK_FALSE(pod_template_revision("").ok());
  CHECK_FALSE(is_canaryd_revision("5f7b8c9d4d"));        // Flagger's safe-encoded hash
  CHECK_FALSE(is_canaryd_revision("0123456789ABCDEF"));  // not ours: uppercase
  CHECK(is_canaryd_revision("0123456789abcdef"));
}

TEST_CASE("config checksums are Flagger's: sha256 of Go's JSON of data, first 8 bytes") {
  auto sum = [](const std::string& json) {
    auto r = config_checksum(json);
    REQUIRE(r.ok());
    return r.value;
  };
  // Expected values computed independently: sha256 of json.Marshal's output.
  CHECK(sum(R"({"kind":"ConfigMap","metadata":{"name":"c"},"data":{"ui":"<b>&</b>","color":"blue"}})") == "0a1a41a92e4461ea");
  CHECK(sum(R"({"kind":"Secret","metadata":{"name":"s"},"type":"Opaque","data":{"apiKey":"c2VjcmV0"}})") == "7af53497a7b054bc");
  CHECK(sum(R"({"kind":"ConfigMap","metadata":{"name":"c"}})") == "74234e98afe7498f");  // nil map: "null"
  CHECK(sum(R"({"kind":"ConfigMap","metadata":{"name":"c"},"data":{}})") == "74234e98afe7498f");
  CHECK(sum(R"({"kind":"ConfigMap","data":{"\u00fc":"\u00df\u2028"}})") == "a051577645cbdc45");
  // Key order and metadata do not matter; values do; binaryData counts (our fix).
  CHECK(sum(R"({"data":{"color":"blue","ui":"<b>&</b>"},"metadata":{"name":"other","labels":{"x":"y"}}})") == "0a1a41a92e4461ea");
  CHECK(sum(R"({"data":{"color":"red","ui":"<b>&</b>"}})") != "0a1a41a92e4461ea");
  CHECK(sum(R"({"data":{"color":"blue","ui":"<b>&</b>"},"binaryData":{"b":"AAE="}})") != "0a1a41a92e4461ea");
  CHECK_FALSE(config_checksum(R"({"data":{"a":1}})").ok());
  CHECK_FALSE(config_checksum("[]").ok());
}

TEST_CASE("only trackable configs are tracked") {
  CHECK(is_tracked_config(R"({"kind":"ConfigMap","metadata":{"name":"c"}})"));
  CHECK_FALSE(is_tracked_config(R"({"kind":"ConfigMap","metadata":{"name":"c","annotations":{"flagger.app/config-tracking":"disabled"}}})"));
  CHECK(is_tracked_config(R"({"kind":"ConfigMap","metadata":{"name":"c","annotations":{"flagger.app/config-tracking":"enabled"}}})"));
  CHECK(is_tracked_config(R"({"kind":"Secret","type":"Opaque"})"));
  CHECK(is_tracked_config(R"({"kind":"Secret"})"));
  CHECK(is_tracked_config(R"({"kind":"Secret","type":"kubernetes.io/tls"})"));
  CHECK(is_tracked_config(R"({"kind":"Secret","type":"kubernetes.io/basic-auth"})"));
  CHECK(is_tracked_config(R"({"kind":"Secret","type":"kubernetes.io/ssh-auth"})"));
  CHECK_FALSE(is_tracked_config(R"({"kind":"Secret","type":"kubernetes.io/dockerconfigjson"})"));
  CHECK_FALSE(is_tracked_config(R"({"kind":"Secret","type":"kubernetes.io/service-account-token"})"));
  CHECK_FALSE(is_tracked_config("not json"));
}

TEST_CASE("a pod template's ConfigMap and Secret references are found everywhere Flagger looks") {
  auto refs = find_config_refs(R"({"spec": {
    "volumes": [{"name": "v1", "configMap": {"name": "cm-vol"}},
                {"name": "v2", "secret": {"secretName": "sec-vol", "optional": true}},
                {"name": "v3", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}, {"secret": {"name": "sec-proj"}},
                                                         {"downwardAPI": {}}]}},
                {"name": "v4", "emptyDir": {}}],
    "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "a"}}},
                                         {"name": "B", "valueFrom": {"secretKeyRef": {"name": "sec-env", "key": "b", "optional": true}}},
                                         {"name": "C", "value": "plain"}],
                    "envFrom": [{"configMapRef": {"name": "cm-from"}}, {"secretRef": {"name": "sec-from"}}]}],
    "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm-init", "optional": true}},
                                                  {"configMapRef": {"name": "cm-vol", "optional": true}}]}]
  }})");
  REQUIRE(refs.ok());
  std::vector<std::string> keys;
  for (const auto& r : refs.value) keys.push_back(r.key() + (r.optional ? "?" : ""));
  CHECK(keys == std::vector<std::string>{"configmap/cm-env", "configmap/cm-from", "configmap/cm-init?", "configmap/cm-proj",
                                         "configmap/cm-vol", "secret/sec-env?", "secret/sec-from", "secret/sec-proj",
                                         "secret/sec-vol?"});
  CHECK(find_config_refs(R"({"metadata": {}})").value.empty());
  CHECK_FALSE(find_config_refs("{").ok());
}

TEST_CASE("the webhook checksum follows lastAppliedSpec and trackedConfigs") {
  canary_status a;
  a.last_applied_spec = "0123456789abcdef";
  canary_status b = a;
  CHECK(webhook_checksum(a) == webhook_checksum(b));
  b.tracked_configs = std::map<std::string, std::string>{{"configmap/x", "1"}};
  CHECK(webhook_checksum(a) != webhook_checksum(b));
  b = a;
  b.canary_weight = 30;  // not part of the revision
  CHECK(webhook_checksum(a) == webhook_checksum(b));
}

TEST_CASE("Go durations format like time.Duration.String") {
  CHECK(format_go_duration_ns(0ns) == "0s");
  CHECK(format_go_duration_ns(1500ns) == "1.5\xC2\xB5s");
  CHECK(format_go_duration_ns(500ms) == "500ms");
  CHECK(format_go_duration_ns(123456789ns) == "123.456789ms");
  CHECK(format_go_duration_ns(1500ms) == "1.5s");
  CHECK(format_go_duration_ns(90s) == "1m30s");
  CHECK(format_go_duration_ns(2h) == "2h0m0s");
  CHECK(format_go_duration_ns(-1s) == "-1s");
  CHECK(canaryd::parse_go_duration("1m30s") == std::chrono::milliseconds(90'000));
  CHECK_FALSE(canaryd::parse_go_duration("1x"));
}

TEST_CASE("floats format like Go's %v") {
  CHECK(format_go_float(99) == "99");
  CHECK(format_go_float(99.5) == "99.5");
  CHECK(format_go_float(0.5) == "0.5");
  CHECK(format_go_float(0) == "0");
  CHECK(format_go_float(123456) == "123456");
  CHECK(format_go_float(1e6) == "1e+06");
  CHECK(format_go_float(1234567) == "1.234567e+06");
  CHECK(format_go_float(0.0001) == "0.0001");
  CHECK(format_go_float(0.00001) == "1e-05");
  CHECK(format_go_float(-2.25) == "-2.25");
  CHECK(format_go_float(1.0 / 0.0) == "+Inf");
}

TEST_CASE("RFC 3339 times parse in every form Kubernetes writes and format like metav1.Time") {
  auto t = parse_rfc3339("2024-05-01T10:00:00Z");
  REQUIRE(t);
  CHECK(format_rfc3339(*t) == "2024-05-01T10:00:00Z");
  CHECK(parse_rfc3339("2024-05-01T12:00:00+02:00") == t);
  CHECK(parse_rfc3339("2024-05-01T09:30:00-00:30") == t);
  auto frac = parse_rfc3339("2024-05-01T10:00:00.250Z");
  REQUIRE(frac);
  CHECK(*frac - *t == 250ms);
  CHECK(format_rfc3339(*frac) == "2024-05-01T10:00:00Z");
  CHECK(parse_rfc3339("2024-02-29T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2023-02-29T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2024-05-01 10:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2024-05-01T10:00:00"));
  CHECK_FALSE(parse_rfc3339("yesterday"));
  CHECK_FALSE(parse_rfc3339("2624-05-01T10:00:00Z"));  // out of system_clock's range, not an overflow
  CHECK_FALSE(parse_rfc3339(""));
  CHECK(format_rfc3339(wall_time{}) == "1970-01-01T00:00:00Z");
}
