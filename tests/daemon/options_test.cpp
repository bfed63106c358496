#include <doctest/doctest.h>

#include <map>

#include "daemon/metrics_registry.hpp"
#include "daemon/options.hpp"

using canaryd::options;
using canaryd::parse_options;

namespace {
std::optional<std::string> parse(std::vector<std::string> args, options& o,
                                 std::map<std::string, std::string> env = {}) {
  return parse_options(args, o, [&](std::string_view k) -> std::optional<std::string> {
    auto it = env.find(std::string(k));
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}
}  // namespace

TEST_CASE("no flags give Flagger's defaults") {
  options o;
  CHECK_FALSE(parse({}, o));
  CHECK(o.port == 8080);
  CHECK(o.metrics_server == "http://prometheus:9090");
  CHECK(o.mesh_provider == "istio");
  CHECK(o.selector_labels == std::vector<std::string>{"app", "name", "app.kubernetes.io/name"});
  CHECK(o.kubeconfig_qps == 100);
  CHECK(o.kubeconfig_burst == 250);
  CHECK(o.enable_config_tracking);
  CHECK_FALSE(o.enable_leader_election);
  CHECK(o.leader_election_namespace == "kube-system");
  CHECK(o.slack_user == "flagger");
}

TEST_CASE("Flagger's chart arguments parse in both spellings") {
  options o;
  auto err = parse({"-log-level=info", "--mesh-provider=kubernetes", "-metrics-server", "http://prom:9090",
                    "--selector-labels=app,name", "-enable-leader-election", "-leader-election-namespace=flagger",
                    "-include-label-prefix=app.kubernetes.io,team", "-kubeconfig-qps=50.5", "--kubeconfig-burst", "90",
                    "-enable-config-tracking=false", "-port=9999", "-control-loop-interval=5s", "-threadiness=4"},
                   o);
  REQUIRE_FALSE(err);
  CHECK(o.log_level == "info");
  CHECK(o.mesh_provider == "kubernetes");
  CHECK(o.metrics_server == "http://prom:9090");
  CHECK(o.selector_labels == std::vector<std::string>{"app", "name"});
  CHECK(o.include_label_prefix == std::vector<std::string>{"app.kubernetes.io", "team"});
  CHECK(o.enable_leader_election);
  CHECK(o.leader_election_namespace == "flagger");
  CHECK(o.kubeconfig_qps == 50.5);
  CHECK(o.kubeconfig_burst == 90);
  CHECK_FALSE(o.enable_config_tracking);
  CHECK(o.port == 9999);
  CHECK(o.control_loop_interval == std::chrono::seconds(5));
  CHECK(o.threadiness == 4);
}

TEST_CASE("an unknown flag, a missing value and a bad value are errors that name the flag") {
  options o;
  auto e1 = parse({"-no-such-flag"}, o);
  REQUIRE(e1);
  CHECK(e1->find("no-such-flag") != std::string::npos);
  auto e2 = parse({"-kubeconfig"}, o);
  REQUIRE(e2);
  CHECK(e2->find("needs an argument") != std::string::npos);
  auto e3 = parse({"-port=http"}, o);
  REQUIRE(e3);
  CHECK(e3->find("-port") != std::string::npos);
  auto e4 = parse({"-log-level=loud"}, o);
  REQUIRE(e4);
  CHECK(e4->find("log level") != std::string::npos);
  auto e5 = parse({"-enable-leader-election=maybe"}, o);
  REQUIRE(e5);
  auto e6 = parse({"stray"}, o);
  REQUIRE(e6);
  CHECK(e6->find("stray") != std::string::npos);
  auto e7 = parse({"-kubeconfig-qps=0"}, o);
  REQUIRE(e7);
  auto e8 = parse({"-control-loop-interval=10"}, o);
  REQUIRE(e8);
}

TEST_CASE("the environment fills Slack and event webhook settings unless a flag was given") {
  options o;
  REQUIRE_FALSE(parse({"-event-webhook=http://flag"}, o,
                      {{"SLACK_URL", "http://env-slack"}, {"EVENT_WEBHOOK_URL", "http://env-hook"}}));
  CHECK(o.slack_url == "http://env-slack");
  CHECK(o.event_webhook == "http://flag");
}

TEST_CASE("-namespace also scopes the leader election lease, as in Flagger") {
  options o;
  REQUIRE_FALSE(parse({"-namespace=test"}, o));
  CHECK(o.namespace_ == "test");
  CHECK(o.leader_election_namespace == "test");
}

TEST_CASE("the usage text lists every Flagger flag") {
  auto u = canaryd::usage();
  for (auto f : {"-kubeconfig", "-master", "-namespace", "-log-level", "-port", "-metrics-server", "-mesh-provider",
                 "-selector-labels", "-include-label-prefix", "-enable-leader-election", "-leader-election-namespace",
                 "-kubeconfig-qps", "-kubeconfig-burst", "-slack-url", "-slack-channel", "-slack-user", "-event-webhook",
                 "-enable-config-tracking", "-version"})
    CHECK_MESSAGE((u.find("  " + std::string(f) + " ") != std::string::npos ||
                   u.find("  " + std::string(f) + "\n") != std::string::npos),
                  std::string(f));
}

TEST_CASE("the metrics registry renders the Prometheus text format") {
  canaryd::metrics_registry r;
  auto& info = r.gauge("flagger_info", "Flagger version and mesh provider information", {"version", "mesh_provider"});
  info.set({"0.1.0", "istio"}, 1);
  auto& req = r.counter("canaryd_api_requests_total", "API requests", {"verb", "code"});
  req.add({"GET", "200"});
  req.add({"GET", "200"});
  auto& h = r.histogram("flagger_canary_duration_seconds", "Seconds taken by the canary analysis", {"name", "namespace"},
                        {1, 5});
  h.observe({"podinfo", "test"}, 2);
  auto text = r.render();
  CHECK(text.find("# TYPE flagger_info gauge\n") != std::string::npos);
  CHECK(text.find("flagger_info{version=\"0.1.0\",mesh_provider=\"istio\"} 1\n") != std::string::npos);
  CHECK(text.find("canaryd_api_requests_total{verb=\"GET\",code=\"200\"} 2\n") != std::string::npos);
  CHECK(text.find("flagger_canary_duration_seconds_bucket{name=\"podinfo\",namespace=\"test\",le=\"1\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("flagger_canary_duration_seconds_bucket{name=\"podinfo\",namespace=\"test\",le=\"5\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("flagger_canary_duration_seconds_bucket{name=\"podinfo\",namespace=\"test\",le=\"+Inf\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("flagger_canary_duration_seconds_count{name=\"podinfo\",namespace=\"test\"} 1\n") != std::string::npos);
  CHECK(req.value({"GET", "200"}) == 2);
}

TEST_CASE("label values are escaped") {
  canaryd::metrics_registry r;
  r.gauge("g", "help", {"l"}).set({"a\"b\\c\nd"}, 1);
  CHECK(r.render().find("g{l=\"a\\\"b\\\\c\\nd\"} 1\n") != std::string::npos);
}
