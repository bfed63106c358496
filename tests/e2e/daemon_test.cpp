// The real canaryd binary against the real kubesim, driven with the real kubectl.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

std::string canaryd_path() { return (build_root() / "daemon" / "canaryd").string(); }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// Milliseconds since the epoch of an RFC 3339 UTC time with milliseconds ("...T12:34:56.789Z").
std::int64_t epoch_ms(const std::string& ts) {
  std::tm tm{};
  int ms = 0;
  REQUIRE(std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                      &tm.tm_min, &tm.tm_sec, &ms) == 7);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

const char* canary_yaml = R"(apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: demo
spec:
  provider: kubernetes
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 2s
    threshold: 2
    iterations: 3
)";

kubesim_options tls_sim(std::vector<std::string> extra = {}) {
  kubesim_options o;
  o.tls = true;
  o.extra_args = std::move(extra);
  return o;
}

struct daemon_run {
  std::unique_ptr<child> proc;
  int port = 0;
};

daemon_run start_canaryd(const std::vector<std::string>& extra, const std::map<std::string, std::string>& env = {}) {
  daemon_run d;
  d.port = free_port();
  std::vector<std::string> argv{canaryd_path(), "-listen-address=127.0.0.1", "-port", std::to_string(d.port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  d.proc = std::make_unique<child>(argv, env);
  return d;
}

}  // namespace

TEST_CASE("canaryd reports a Canary created with kubectl, answers its health endpoints and exits 0 on SIGTERM") {
  temp_dir tmp;
  auto request_log = tmp.path() / "requests.jsonl";
  kubesim_instance sim(tls_sim({"--request-log", request_log.string()}));
  sim.kubectl_ok({"apply", "-f", (source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
  sim.kubectl_ok({"create", "namespace", "demo"});

  auto d = start_canaryd({"-kubeconfig", sim.kubeconfig().string(), "-log-level=debug"});
  auto synced = d.proc->wait_for_line("caches synced", 10s);
  REQUIRE_MESSAGE(synced, "canaryd did not sync; its output so far ended with: "
                              << (d.proc->lines().empty() ? "" : d.proc->lines().back()));

  auto health = http_call("GET", "http://127.0.0.1:" + std::to_string(d.port) + "/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  auto ready = http_call("GET", "http://127.0.0.1:" + std::to_string(d.port) + "/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  auto metrics = http_call("GET", "http://127.0.0.1:" + std::to_string(d.port) + "/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("flagger_info{") != std::string::npos);

  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml);
  auto added = d.proc->wait_for_line("canary podinfo.demo added", 5s);
  REQUIRE(added);
  auto line = json::parse(*added).as_object();
  CHECK(line.at("canary").as_string() == "podinfo.demo");
  CHECK(line.at("level").as_string() == "info");

  // Latency from kubesim answering the create to canaryd logging it, both wall clocks on this
  // machine with millisecond resolution. The figure is printed; the bound only proves canaryd is
  // driven by the watch, not by a poll (bench/ measures the real distribution).
  std::int64_t created_at = 0;
  std::istringstream log(read_file(request_log));
  for (std::string l; std::getline(log, l);) {
    auto r = json::parse(l).as_object();
    if (r.at("method").as_string() == "POST" && r.at("path").as_string().ends_with("/canaries"))
      created_at = epoch_ms(std::string(r.at("time").as_string()));
  }
  REQUIRE(created_at > 0);
  auto latency = epoch_ms(std::string(line.at("ts").as_string())) - created_at;
  MESSAGE("create -> canaryd log: " << latency << " ms");
  CHECK(latency < 1000);

  sim.kubectl_ok({"-n", "demo", "annotate", "canary", "podinfo", "team=blue"});
  CHECK(d.proc->wait_for_line("canary podinfo.demo updated", 5s));
  sim.kubectl_ok({"-n", "demo", "delete", "canary", "podinfo"});
  CHECK(d.proc->wait_for_line("canary podinfo.demo deleted", 5s));

  auto before = std::chrono::steady_clock::now();
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  auto took = std::chrono::steady_clock::now() - before;
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(took < 2s);

  // Every line canaryd wrote is one JSON object with Flagger's keys.
  while (d.proc->read_line(1s)) {
  }
  for (const auto& l : d.proc->lines()) {
    INFO(l);
    auto v = json::parse(l);
    REQUIRE(v.is_object());
    CHECK(v.as_object().contains("ts"));
    CHECK(v.as_object().contains("level"));
    CHECK(v.as_object().contains("msg"));
  }
}

TEST_CASE("canaryd runs in-cluster with a service-account token and CA from files") {
  kubesim_instance sim(tls_sim());
  sim.kubectl_ok({"apply", "-f", (source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
  // The token and CA the kubeconfig carries, laid out as a mounted service account.
  auto kc = read_file(sim.kubeconfig());
  auto token_at = kc.find("token:");
  REQUIRE(token_at != std::string::npos);
  auto token_end = kc.find('\n', token_at);
  std::string token = kc.substr(token_at + 6, token_end - token_at - 6);
  token.erase(0, token.find_first_not_of(" \"'"));
  token.erase(token.find_last_not_of(" \"'") + 1);
  temp_dir sa;
  write_file(sa.path() / "token", token);
  write_file(sa.path() / "ca.crt", read_file(sim.kubeconfig().string() + ".ca.crt"));
  write_file(sa.path() / "namespace", "default");
  auto hostport = sim.api_url().substr(std::string("https://").size());
  auto colon = hostport.rfind(':');

  auto d = start_canaryd({}, {{"KUBERNETES_SERVICE_HOST", hostport.substr(0, colon)},
                              {"KUBERNETES_SERVICE_PORT", hostport.substr(colon + 1)},
                              {"CANARYD_SA_DIR", sa.path().string()},
                              {"KUBECONFIG", ""},
                              {"HOME", sa.path().string()}});
  auto started = d.proc->wait_for_line("canaryd starting", 10s);
  REQUIRE(started);
  CHECK(started->find("in-cluster") != std::string::npos);
  REQUIRE(d.proc->wait_for_line("caches synced", 10s));
  sim.kubectl_ok({"create", "namespace", "demo"});
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml);
  CHECK(d.proc->wait_for_line("canary podinfo.demo added", 5s));
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

namespace {
// Runs canaryd to its exit and returns (exit code, everything it printed).
std::pair<int, std::string> run_to_exit(const std::vector<std::string>& args,
                                        const std::map<std::string, std::string>& env = {}) {
  std::vector<std::string> argv{canaryd_path(), "-listen-address=127.0.0.1", "-port",
                                std::to_string(free_port())};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv, 30s, env);
  REQUIRE_FALSE(r.timed_out);
  return {r.exit_code, r.out + r.err};
}
}  // namespace

TEST_CASE("bad connection settings end canaryd with one clear line, not a crash") {
  temp_dir tmp;
  SUBCASE("a malformed kubeconfig") {
    write_file(tmp.path() / "kc", "apiVersion: v1\nclusters: [this is: not: yaml\n");
    auto [code, out] = run_to_exit({"-kubeconfig", (tmp.path() / "kc").string()});
    CHECK(code == 1);
    CHECK(out.find("kubeconfig") != std::string::npos);
  }
  SUBCASE("a kubeconfig context that does not exist") {
    kubesim_instance sim;
    auto [code, out] = run_to_exit({"-kubeconfig", sim.kubeconfig().string(), "-context", "nope"});
    CHECK(code == 1);
    CHECK(out.find("\"nope\"") != std::string::npos);
    CHECK(out.find("not found") != std::string::npos);
  }
  SUBCASE("an unreachable server") {
    kubesim_instance sim;
    auto kc = read_file(sim.kubeconfig());
    auto dead = "http://127.0.0.1:" + std::to_string(free_port());
    auto at = kc.find(sim.api_url());
    REQUIRE(at != std::string::npos);
    kc.replace(at, sim.api_url().size(), dead);
    write_file(tmp.path() / "kc", kc);
    auto [code, out] = run_to_exit({"-kubeconfig", (tmp.path() / "kc").string()});
    CHECK(code == 1);
    CHECK(out.find("cannot reach the API server") != std::string::npos);
  }
  SUBCASE("a CA that did not sign the server's certificate") {
    kubesim_instance sim(tls_sim());
    kubesim_instance other(tls_sim());
    auto kc = read_file(sim.kubeconfig());
    auto other_kc = read_file(other.kubeconfig());
    auto ca_of = [](const std::string& k) {
      auto a = k.find("certificate-authority-data:");
      REQUIRE(a != std::string::npos);
      auto e = k.find('\n', a);
      return k.substr(a, e - a);
    };
    auto mine = ca_of(kc);
    kc.replace(kc.find(mine), mine.size(), ca_of(other_kc));
    write_file(tmp.path() / "kc", kc);
    auto [code, out] = run_to_exit({"-kubeconfig", (tmp.path() / "kc").string()});
    CHECK(code == 1);
    CHECK(out.find("TLS") != std::string::npos);
  }
  SUBCASE("an expired token") {
    kubesim_instance sim(tls_sim({"--token", "old:expired-token-123:1000"}));
    auto kc = read_file(sim.kubeconfig());
    auto a = kc.find("token:");
    REQUIRE(a != std::string::npos);
    auto e = kc.find('\n', a);
    kc.replace(a, e - a, "token: expired-token-123");
    write_file(tmp.path() / "kc", kc);
    auto [code, out] = run_to_exit({"-kubeconfig", (tmp.path() / "kc").string()});
    CHECK(code == 1);
    CHECK(out.find("Unauthorized") != std::string::npos);
  }
  SUBCASE("an API server without the Canary CRD") {
    kubesim_instance sim;
    auto [code, out] = run_to_exit({"-kubeconfig", sim.kubeconfig().string()});
    CHECK(code == 1);
    CHECK(out.find("canaries.flagger.app") != std::string::npos);
  }
}

TEST_CASE("an unknown flag or a bad flag value exits with code 2") {
  auto [code, out] = run_to_exit({"-no-such-flag"});
  CHECK(code == 2);
  CHECK(out.find("flag provided but not defined: -no-such-flag") != std::string::npos);
  auto [code2, out2] = run_to_exit({"-kubeconfig-burst=lots"});
  CHECK(code2 == 2);
  CHECK(out2.find("-kubeconfig-burst") != std::string::npos);
}
