// Metric analysis end to end: the real canaryd queries a real Prometheus that scrapes kubesim's
// emulated traffic (the kubernetes provider: the app's own http_request_duration_seconds), for
// the built-in request-success-rate and request-duration and for a MetricTemplate with
// templateVariables; a healthy release is promoted, a failing one rolled back; with Prometheus
// down every check fails and the events say why.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// Five failed checks at a 2 s interval: room for the first ticks of a fresh canary, whose
// pods have had no scrape yet ("no values" counts as a failed check, as in Flagger).
const std::string analysis_metrics =
    "    metrics:\n"
    "    - name: request-success-rate\n"
    "      thresholdRange:\n"
    "        min: 99\n"
    "      interval: 15s\n"
    "    - name: request-duration\n"
    "      thresholdRange:\n"
    "        max: 500\n"
    "      interval: 15s\n"
    "    - name: server-errors\n"
    "      templateRef:\n"
    "        name: server-errors\n"
    "      templateVariables:\n"
    "        codes: \"5..\"\n"
    "      thresholdRange:\n"
    "        max: 1\n"
    "      interval: 15s\n";

const std::string server_errors_template = R"yaml(apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: server-errors
  namespace: demo
spec:
  provider:
    type: prometheus
    address: PROMETHEUS
  query: |
    sum(
      rate(
        http_request_duration_seconds_count{
          kubernetes_namespace="{{ namespace }}",
          kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
          status=~"{{ variables.codes }}"
        }[{{ interval }}]
      )
    ) or on() vector(0)
)yaml";

void replace_once_in(std::string& text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "no " << from);
  text.replace(at, from.size(), to);
}

std::string with_prometheus(std::string text, const std::string& url) {
  replace_once_in(text, "PROMETHEUS", url);
  return text;
}

std::string canary_with_metrics(const std::string& threshold) {
  std::string c = canary_yaml("podinfo", "podinfo", analysis_metrics);
  auto at = c.find("    threshold: 2\n");
  c.replace(at, 17, "    threshold: " + threshold + "\n");
  at = c.find("    interval: 1s\n");
  c.replace(at, 17, "    interval: 2s\n");
  return c;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + " ";
  return s;
}

}  // namespace

TEST_CASE("a healthy release passes the Prometheus checks and is promoted; a failing one is rolled back") {
  kubesim_options ko;
  ko.prometheus = true;
  kubesim_instance sim(ko);
  REQUIRE(!sim.prometheus_url().empty());
  setup_cluster(sim);
  sim.kubectl_ok({"apply", "-f", "-"}, with_prometheus(server_errors_template, sim.prometheus_url()));
  auto d = start_canaryd(sim, {"-metrics-server", sim.prometheus_url()});
  init_podinfo(sim, canary_with_metrics("5"));
  // Initialization checked that the providers answer: no "Error checking metric providers".
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(lacks_event(evs, "Warning", "Error checking metric providers"), dump(evs));

  // A healthy release: every check passes, the run goes through its iterations and promotes.
  release(sim, "6.0.1");
  std::vector<std::string> seen;
  bool promoted = wait_phase(sim, "podinfo", "Succeeded", 90s, &seen);
  evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(promoted, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(has_event(evs, "Normal", "Advance podinfo.demo canary iteration 3/3"));
  CHECK(lacks_event(evs, "Warning", "success rate"));
  CHECK(lacks_event(evs, "Warning", "request duration"));
  CHECK(lacks_event(evs, "Warning", "server-errors"));

  // A release that answers 30 % of requests with 500: request-success-rate fails every check
  // until the threshold, then the canary is rolled back and the primary keeps 6.0.1.
  sim.kubectl_ok({"-n", "demo", "patch", "deployment/podinfo", "--type", "merge", "-p",
                  R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/error-rate":"0.3"}}}}})"});
  seen.clear();
  bool failed = wait_phase(sim, "podinfo", "Failed", 90s, &seen);
  evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK_MESSAGE(has_event(evs, "Warning", "Halt podinfo.demo advancement success rate"), dump(evs));
  CHECK(has_event(evs, "Warning", "Rolling back podinfo.demo failed checks threshold reached 5"));
  CHECK(has_event(evs, "Warning", "Canary failed! Scaling down podinfo.demo"));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  // The success rate the event reports is the 500 share kubesim was told to produce, mixed
  // with at most the last seconds of the healthy pods that served before.
  for (const auto& [type, msg] : evs) {
    auto at = msg.find("advancement success rate ");
    if (at == std::string::npos) continue;
    double rate = std::stod(msg.substr(at + 25));
    CHECK(rate < 99);
    CHECK(rate > 50);
  }

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("with Prometheus down the checks fail, never pass, and the events say why") {
  kubesim_instance sim;
  setup_cluster(sim);
  const std::string nowhere = "http://127.0.0.1:" + std::to_string(free_port());
  auto d = start_canaryd(sim, {"-metrics-server", nowhere});
  std::string c = canary_yaml("podinfo", "podinfo",
                              "    metrics:\n"
                              "    - name: request-success-rate\n"
                              "      thresholdRange:\n"
                              "        min: 99\n"
                              "      interval: 1m\n");
  init_podinfo(sim, c);
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Error checking metric providers: prometheus not available"), dump(evs));

  release(sim, "6.0.1");
  std::vector<std::string> seen;
  bool failed = wait_phase(sim, "podinfo", "Failed", 60s, &seen);
  evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "phases seen: " << join(seen) << "\nevents:\n" << dump(evs));
  CHECK(std::find(seen.begin(), seen.end(), "Succeeded") == seen.end());
  CHECK_MESSAGE(has_event(evs, "Warning", "Prometheus query failed: running query failed: request failed"), dump(evs));
  // As in Flagger, the first iteration (no traffic yet at weight 0, iteration 0) advances without
  // analysis; every later one needs the checks, which cannot pass.
  CHECK_MESSAGE(lacks_event(evs, "Normal", "Advance podinfo.demo canary iteration 2/3"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

// fuzz/metric_query found a query template that held canaryd's one thread for minutes (a printf
// padded to millions of bytes, in a loop); canaryd's template limits now make it an error.
TEST_CASE("a MetricTemplate whose query would render for minutes fails its check at once, and canaryd keeps answering") {
  kubesim_instance sim;
  setup_cluster(sim);
  const std::string nowhere = "http://127.0.0.1:" + std::to_string(free_port());
  auto d = start_canaryd(sim, {"-metrics-server", nowhere});
  sim.kubectl_ok({"apply", "-f", "-"},
                 "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: runaway\n  namespace: demo\n"
                 "spec:\n  provider:\n    type: prometheus\n    address: " + nowhere + "\n"
                 "  query: '{{ range 1000 }}{{ $x := printf \"%8888888d\" 1 }}{{ end }}vector(0)'\n");
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    metrics:\n"
                                "    - name: runaway\n"
                                "      templateRef:\n"
                                "        name: runaway\n"
                                "      thresholdRange:\n"
                                "        max: 1\n"
                                "      interval: 1m\n"));
  release(sim, "6.0.1");
  // Each check fails on the render, before any request: the release is rolled back within
  // seconds (the render alone took 166 s before the limits), and /healthz answers throughout.
  int slow_health = 0;
  bool failed = eventually(
      [&] {
        const auto t0 = std::chrono::steady_clock::now();
        auto h = http_call("GET", "http://127.0.0.1:" + std::to_string(d.port) + "/healthz", {}, 5s);
        if (!h || std::chrono::steady_clock::now() - t0 > 1s) ++slow_health;
        return phase_of(sim, "podinfo") == "Failed";
      },
      60s);
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, dump(evs));
  CHECK(slow_health == 0);
  CHECK_MESSAGE(has_event(evs, "Warning", "error calling printf: width 8888888 exceeds 1048576 (canaryd's limit)"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("a MetricTemplate behind basic auth is rendered with its templateVariables and queried with the secretRef's credentials") {
  kubesim_options ko;
  ko.prometheus = true;
  kubesim_instance sim(ko);
  // A reverse proxy that demands basic auth in front of Prometheus, logging each query it passes.
  const int proxy_port = free_port();
  const std::string proxy = R"(
import base64, http.server, sys, urllib.request, urllib.error
port, upstream = int(sys.argv[1]), sys.argv[2]
want = 'Basic ' + base64.b64encode(b'flagger:s3cret').decode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get('Authorization') != want:
            body = b'Unauthorized'
            self.send_response(401)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            print('denied', self.path, flush=True)
            return
        try:
            with urllib.request.urlopen(upstream + self.path, timeout=5) as r:
                code, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read()
        self.send_response(code)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print('passed', urllib.parse.unquote_plus(self.path), flush=True)
    def log_message(self, *a):
        pass
print('listening', flush=True)
http.server.ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()
)";
  child auth_proxy({"python3", "-c", proxy, std::to_string(proxy_port), sim.prometheus_url()});
  REQUIRE(auth_proxy.wait_for_line("listening", 10s));
  const std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy_port);

  setup_cluster(sim);
  sim.kubectl_ok({"-n", "demo", "create", "secret", "generic", "prom-auth", "--from-literal=username=flagger",
                  "--from-literal=password=s3cret"});
  std::string tmpl = server_errors_template;
  replace_once_in(tmpl, "    address: PROMETHEUS\n", "    address: " + proxy_url + "\n    secretRef:\n      name: prom-auth\n");
  sim.kubectl_ok({"apply", "-f", "-"}, tmpl);
  auto d = start_canaryd(sim, {"-metrics-server", sim.prometheus_url()});
  std::string c = canary_yaml("podinfo", "podinfo",
                              "    metrics:\n"
                              "    - name: server-errors\n"
                              "      templateRef:\n"
                              "        name: server-errors\n"
                              "        namespace: demo\n"
                              "      templateVariables:\n"
                              "        codes: \"5..\"\n"
                              "      thresholdRange:\n"
                              "        max: 1\n"
                              "      interval: 15s\n");
  c.replace(c.find("    threshold: 2\n"), 17, "    threshold: 5\n");
  init_podinfo(sim, c);

  release(sim, "6.0.1");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  // The proxy passed the rendered query: the variable and the canary's target filled in.
  auto passed = auth_proxy.wait_for_line(R"(status=~"5..")", 5s);
  REQUIRE_MESSAGE(passed, "the proxy passed no template query");
  CHECK(passed->rfind("passed /api/v1/query?query=", 0) == 0);
  CHECK(passed->find(R"q(kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)")q") != std::string::npos);
  CHECK(passed->find("[15s]") != std::string::npos);
  // Initialization checked the template's provider through the proxy too.
  bool online_checked = false;
  for (const auto& l : auth_proxy.lines()) online_checked = online_checked || l == "passed /api/v1/query?query=vector(1)";
  CHECK(online_checked);

  // A wrong password: every check fails with the proxy's answer, and the release is rolled back.
  sim.kubectl_ok({"-n", "demo", "patch", "secret", "prom-auth", "--type", "merge", "-p",
                  R"({"stringData":{"password":"wrong"}})"});
  release(sim, "6.0.2");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Failed", 60s),
                  "phase " << phase_of(sim, "podinfo") << "\n" << dump(canary_events(sim, "podinfo")));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "Metric query failed for server-errors: error response: Unauthorized"), dump(evs));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
}
