// The graphite provider end to end against a real Graphite (Debian's graphite-carbon and
// graphite-web) on loopback: carbon-cache receives points over its plaintext protocol, writes
// whisper files, and graphite-web's render API answers canaryd. One Canary per scenario, at
// once: a good value promotes, a bad one rolls back, a series with no points, a NaN value and a
// Graphite that is down fail the checks (never pass) with Events that name the provider, the
// template and the reason.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <ctime>
#include <fstream>
#include <map>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// carbon-cache and graphite-web in a temporary directory, on free loopback ports.
struct graphite_server {
  temp_dir dir;
  int line_port = free_port();
  int pickle_port = free_port();
  int query_port = free_port();
  int web_port = free_port();
  std::unique_ptr<child> carbon;
  std::unique_ptr<child> web;

  graphite_server() {
    const auto root = dir.path();
    for (const char* d : {"conf", "storage/whisper", "storage/log/webapp", "storage/log/carbon", "storage/lists"})
      std::filesystem::create_directories(root / d);
    const std::string storage = (root / "storage").string();
    write_file(root / "conf" / "carbon.conf",
               "[cache]\n"
               "STORAGE_DIR = " + storage + "\n"
               "LOCAL_DATA_DIR = " + storage + "/whisper\n"
               "WHITELISTS_DIR = " + storage + "/lists\n"
               "CONF_DIR = " + (root / "conf").string() + "\n"
               "LOG_DIR = " + storage + "/log/carbon\n"
               "PID_DIR = " + storage + "\n"
               "ENABLE_LOGROTATION = False\n"
               "USER =\n"
               "MAX_CACHE_SIZE = inf\n"
               "MAX_UPDATES_PER_SECOND = 1000\n"
               "MAX_CREATES_PER_MINUTE = inf\n"
               "LINE_RECEIVER_INTERFACE = 127.0.0.1\n"
               "LINE_RECEIVER_PORT = " + std::to_string(line_port) + "\n"
               "ENABLE_UDP_LISTENER = False\n"
               "PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n"
               "PICKLE_RECEIVER_PORT = " + std::to_string(pickle_port) + "\n"
               "CACHE_QUERY_INTERFACE = 127.0.0.1\n"
               "CACHE_QUERY_PORT = " + std::to_string(query_port) + "\n"
               "LOG_UPDATES = False\n"
               "WHISPER_AUTOFLUSH = True\n");
    // One-second points kept for an hour.
    write_file(root / "conf" / "storage-schemas.conf", "[default]\npattern = .*\nretentions = 1s:1h\n");
    // graphite-web's settings module (GRAPHITE_SETTINGS_MODULE), reading carbon's whisper files
    // and asking carbon-cache for points it has not written yet.
    write_file(root / "canary_graphite.py",
               "SECRET_KEY = 'canaryd-e2e'\n"
               "STORAGE_DIR = '" + storage + "'\n"
               "WHISPER_DIR = '" + storage + "/whisper/'\n"
               "LOG_DIR = '" + storage + "/log/webapp'\n"
               "INDEX_FILE = '" + storage + "/index'\n"
               "CARBONLINK_HOSTS = ['127.0.0.1:" + std::to_string(query_port) + ":a']\n");
    carbon = std::make_unique<child>(
        std::vector<std::string>{"/usr/bin/carbon-cache", "--config=" + (root / "conf" / "carbon.conf").string(), "--debug",
                                 "start"},
        std::map<std::string, std::string>{}, root / "carbon.err");
    REQUIRE_MESSAGE(carbon->wait_for_line("starting on " + std::to_string(line_port), 30s),
                    "carbon-cache did not start: " << carbon->stderr_text());
    web = std::make_unique<child>(
        std::vector<std::string>{"/usr/bin/python3", "-m", "django", "runserver", "--noreload", "--nothreading",
                                 "127.0.0.1:" + std::to_string(web_port)},
        std::map<std::string, std::string>{{"PYTHONPATH", root.string()},
                                           {"GRAPHITE_SETTINGS_MODULE", "canary_graphite"},
                                           {"DJANGO_SETTINGS_MODULE", "graphite.settings"}},
        root / "web.err");
    REQUIRE_MESSAGE(eventually(
                        [&] {
                          auto r = http_call("GET", url() + "/render?target=test&format=json", "", 2s);
                          return r && r->status == 200;
                        },
                        60s),
                    "graphite-web did not answer: " << web->stderr_text());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(web_port); }

  // Sends "path value timestamp" lines to carbon's plaintext receiver.
  void feed(const std::string& lines) const {
    auto r = run({"python3", "-c",
                  "import socket,sys\n"
                  "s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n"
                  "s.sendall(sys.stdin.read().encode())\n"
                  "s.close()\n",
                  std::to_string(line_port)},
                 10s, {}, lines);
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  }
};

}  // namespace

TEST_CASE("graphite templates on a real Graphite promote on a good value, roll back on a bad one and never pass without data") {
  graphite_server graphite;
  kubesim_instance sim;
  setup_cluster(sim);
  const std::string down_url = "http://127.0.0.1:" + std::to_string(free_port());

  // A minute of one-second points per series, to now; refreshed before the release.
  const std::map<std::string, std::string> values = {{"good", "0.5"}, {"bad", "5"}, {"nan", "nan"}};
  auto feed = [&] {
    std::string lines;
    const auto now = std::time(nullptr);
    for (const auto& [scen, v] : values)
      for (int i = 0; i < 60; ++i)
        lines += "canary." + scen + ".graphite-" + scen + ".errors " + v + " " + std::to_string(now - i) + "\n";
    graphite.feed(lines);
  };
  feed();
  // A series that exists but has no points in the window: an old point only.
  graphite.feed("canary.empty.graphite-empty.errors 0.1 " + std::to_string(std::time(nullptr) - 1800) + "\n");

  const std::vector<std::string> scenarios{"good", "bad", "empty", "nan", "down"};
  std::string manifests;
  for (const auto& s : scenarios) {
    const std::string name = "graphite-" + s;
    manifests += "---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: " + name +
                 "\n  namespace: demo\nspec:\n  provider:\n    type: graphite\n    address: " +
                 (s == "down" ? down_url : graphite.url()) +
                 "\n  query: \"target=canary." + (s == "down" ? "good" : s) +
                 ".{{ target }}.errors&from=-{{ interval }}\"\n";
    manifests += "---\n" + metric_target_yaml(name);
  }
  sim.kubectl_ok({"apply", "-f", "-"}, manifests);
  auto d = start_canaryd(sim);
  std::string canaries;
  for (const auto& s : scenarios) {
    const std::string name = "graphite-" + s;
    canaries += "---\n" + canary_yaml(name, name,
                                      "    metrics:\n"
                                      "    - name: errors\n"
                                      "      templateRef:\n"
                                      "        name: " + name + "\n"
                                      "      thresholdRange:\n"
                                      "        max: 1\n"
                                      "      interval: 30s\n");
  }
  sim.kubectl_ok({"apply", "-f", "-"}, canaries);
  for (const auto& s : scenarios)
    REQUIRE_MESSAGE(wait_phase(sim, "graphite-" + s, "Initialized", 60s), dump(canary_events(sim, "graphite-" + s)));
  // Graphite answered the IsOnline query (target=test, no values) at initialisation.
  CHECK(lacks_event(canary_events(sim, "graphite-good"), "Warning", "Error checking metric providers"));
  CHECK(has_event(canary_events(sim, "graphite-down"), "Warning",
                  "Error checking metric providers: graphite in metric template graphite-down.demo not available: "
                  "running query failed: request failed"));

  feed();
  std::vector<std::string> set_image{"-n", "demo", "set", "image"};
  for (const auto& s : scenarios) set_image.push_back("deployment/graphite-" + s);
  set_image.push_back("podinfod=ghcr.io/stefanprodan/podinfo:6.0.1");
  sim.kubectl_ok(set_image);

  for (const auto& s : scenarios) {
    const std::string name = "graphite-" + s;
    const std::string want = s == "good" ? "Succeeded" : "Failed";
    bool ended = wait_phase(sim, name, want, 60s);
    auto evs = canary_events(sim, name);
    INFO(name << " phase " << phase_of(sim, name) << " events:\n" << dump(evs));
    CHECK(ended);
    const std::string tmpl = "(graphite provider, metric template " + name + ".demo)";
    if (s == "good") {
      CHECK(has_event(evs, "Normal", "Advance " + name + ".demo canary iteration 3/3"));
      CHECK(lacks_event(evs, "Warning", "Halt"));
      CHECK(image_of(sim, name + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
      continue;
    }
    CHECK(image_of(sim, name + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
    if (s == "bad") CHECK(has_event(evs, "Warning", "Halt " + name + ".demo advancement errors 5.00 > 1"));
    if (s == "empty" || s == "nan") {
      CHECK(has_event(evs, "Warning", "Halt advancement no values found for custom metric: errors: no values found " + tmpl));
    }
    if (s == "down") CHECK(has_event(evs, "Warning", "Metric query failed for errors: request failed: "));
  }

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}
