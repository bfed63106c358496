#include <doctest/doctest.h>

#include <algorithm>
#include <ctime>
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

TEST_CASE("the environment wins over Slack, MS Teams and event webhook flags, as Flagger's fromEnv()") {
  options o;
  REQUIRE_FALSE(parse({"-event-webhook=http://flag", "-slack-url=http://flag-slack", "-msteams-url=http://flag-teams"}, o,
                      {{"SLACK_URL", "http://env-slack"}, {"EVENT_WEBHOOK_URL", "http://env-hook"},
                       {"MSTEAMS_URL", ""}}));
  CHECK(o.slack_url == "http://env-slack");
  CHECK(o.event_webhook == "http://env-hook");
  CHECK(o.msteams_url == "http://flag-teams");  // an empty variable does not count
  options none;
  REQUIRE_FALSE(parse({}, none, {{"SLACK_TOKEN", "xoxb"}, {"SLACK_PROXY_URL", "http://proxy:3128"}}));
  CHECK(none.slack_token == "xoxb");
  CHECK(none.slack_proxy_url == "http://proxy:3128");
}

TEST_CASE("klog's flags are accepted, type-checked and ignored") {
  options o;
  CHECK_FALSE(parse({"-v=4", "-logtostderr", "-alsologtostderr=false", "--vmodule=controller=2", "-stderrthreshold=INFO",
                     "-log_dir", "/tmp", "-log_file=/tmp/x.log", "-log_file_max_size=10", "-skip_headers",
                     "-add_dir_header=true", "-one_output", "-skip_log_headers", "-log_backtrace_at=main.go:1"},
                    o));
  CHECK(o.log_level == "info");
  CHECK(parse({"-v=loud"}, o));
  CHECK(parse({"-logtostderr=maybe"}, o));
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

TEST_CASE("-help is Go's flag.PrintDefaults: sorted, typed, with the defaults of a default options") {
  auto u = canaryd::usage();
  CHECK(u.starts_with("Usage of canaryd:\n"));
  std::vector<std::string> names;
  for (std::size_t at = u.find("\n  -"); at != std::string::npos; at = u.find("\n  -", at + 1)) {
    auto end = u.find_first_of(" \t\n", at + 4);
    names.push_back(u.substr(at + 4, end - at - 4));
  }
  CHECK(names.size() > 50);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(u.find("  -port int\n    \tPort to listen on for /metrics, /healthz and /readyz. (default 8080)\n") !=
        std::string::npos);
  CHECK(u.find("  -v value\n") != std::string::npos);
  CHECK(u.find("  -h\tPrint this help and exit.\n") != std::string::npos);
  // Every default printed is the one a default `options` has: parsing it back changes nothing.
  options defaults;
  for (auto [flag, text] : std::vector<std::pair<std::string, std::string>>{
           {"log-level", "info"}, {"port", "8080"}, {"metrics-server", "http://prometheus:9090"},
           {"mesh-provider", "istio"}, {"selector-labels", "app,name,app.kubernetes.io/name"},
           {"leader-election-namespace", "kube-system"}, {"leader-election-lease-duration", "1m0s"},
           {"leader-election-renew-deadline", "15s"}, {"leader-election-retry-period", "5s"},
           {"kubeconfig-qps", "100"}, {"kubeconfig-burst", "250"}, {"slack-user", "flagger"},
           {"enable-config-tracking", "true"}, {"control-loop-interval", "10s"}, {"threadiness", "2"},
           {"max-concurrent-ticks", "256"}, {"zap-encoding", "json"},
           {"ingress-annotations-prefix", "nginx.ingress.kubernetes.io"}}) {
    CAPTURE(flag);
    auto shown = u.find("(default " + (text.find_first_not_of("0123456789") == std::string::npos || text == "true" ||
                                               text.ends_with("s")
                                           ? text
                                           : "\"" + text + "\"") +
                        ")");
    CHECK(shown != std::string::npos);
    options o;
    REQUIRE_FALSE(parse({"-" + flag + "=" + text}, o));
    CHECK(o.log_level == defaults.log_level);
    CHECK(o.port == defaults.port);
    CHECK(o.metrics_server == defaults.metrics_server);
    CHECK(o.mesh_provider == defaults.mesh_provider);
    CHECK(o.selector_labels == defaults.selector_labels);
    CHECK(o.leader_election_namespace == defaults.leader_election_namespace);
    CHECK(o.leader_election_lease_duration == defaults.leader_election_lease_duration);
    CHECK(o.leader_election_renew_deadline == defaults.leader_election_renew_deadline);
    CHECK(o.leader_election_retry_period == defaults.leader_election_retry_period);
    CHECK(o.kubeconfig_qps == defaults.kubeconfig_qps);
    CHECK(o.kubeconfig_burst == defaults.kubeconfig_burst);
    CHECK(o.slack_user == defaults.slack_user);
    CHECK(o.control_loop_interval == defaults.control_loop_interval);
    CHECK(o.threadiness == defaults.threadiness);
    CHECK(o.max_concurrent_ticks == defaults.max_concurrent_ticks);
    CHECK(o.zap_encoding == defaults.zap_encoding);
    CHECK(o.ingress_annotations_prefix == defaults.ingress_annotations_prefix);
  }
}

TEST_CASE("-version says what canaryd is and which Flagger it is compatible with") {
  auto v = canaryd::version_text("9.9.9");
  CHECK(v.starts_with("canaryd 9.9.9\n"));
  CHECK(v.find("Flagger-compatible") != std::string::npos);
  CHECK(v.find("Flagger 1.44.0") != std::string::npos);
  CHECK(v.find("flagger.app/v1beta1") != std::string::npos);
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

TEST_CASE("process_* metrics, as Prometheus' process collector, when asked for") {
  canaryd::metrics_registry r;
  CHECK(r.render().find("process_") == std::string::npos);
  r.include_process_metrics(true);
  auto text = r.render();
  auto value = [&](const std::string& name) {
    auto at = text.find("\n" + name + " ");
    REQUIRE_MESSAGE(at != std::string::npos, name);
    return std::stod(text.substr(at + name.size() + 2));
  };
  CHECK(text.find("# TYPE process_cpu_seconds_total counter\n") != std::string::npos);
  CHECK(value("process_cpu_seconds_total") >= 0);
  CHECK(value("process_resident_memory_bytes") > 1e6);
  CHECK(value("process_virtual_memory_bytes") > value("process_resident_memory_bytes"));
  CHECK(value("process_open_fds") >= 3);
  CHECK(value("process_max_fds") >= value("process_open_fds"));
  const double now = static_cast<double>(std::time(nullptr));
  CHECK(value("process_start_time_seconds") > now - 600);
  CHECK(value("process_start_time_seconds") <= now + 1);
}
