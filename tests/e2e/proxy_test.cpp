// Outbound requests honour HTTP_PROXY as Go's ProxyFromEnvironment (Flagger's): with the proxy set
// in canaryd's environment, a canary's pre-rollout webhook and the -event-webhook posts reach
// hosts that do not resolve (gate.example, events.example) only through the proxy, which gets
// the absolute URI and the origin's Host (RFC 9112 §3.2.2). The proxy here is a small HTTP
// server that records what it is asked and answers 200 in the origin's place. The Kubernetes
// API (kubesim on loopback) is reached directly.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <map>
#include <sstream>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

struct recording_proxy {
  temp_dir dir;
  std::filesystem::path log = dir.path() / "requests.jsonl";
  int port = free_port();
  std::unique_ptr<child> proc;

  recording_proxy() {
    const std::string server = R"(
import http.server, json, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with open(out, 'a') as f:
            f.write(json.dumps({'target': self.path, 'host': self.headers.get('Host')}) + '\n')
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
print('listening', flush=True)
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
)";
    proc = std::make_unique<child>(std::vector<std::string>{"python3", "-c", server, std::to_string(port), log.string()});
    REQUIRE(proc->wait_for_line("listening", 10s));
  }
  std::vector<json::value> requests() const {
    std::vector<json::value> out;
    std::istringstream in(read_text(log));
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) out.push_back(json::parse(l));
    return out;
  }
  bool saw(const std::string& target, const std::string& host) const {
    for (const auto& r : requests())
      if (r.at("target").as_string() == target && r.at("host").as_string() == host) return true;
    return false;
  }
};

}  // namespace

TEST_CASE("webhooks and event webhooks go through HTTP_PROXY, with the absolute URI and the origin's Host") {
  kubesim_instance sim;
  setup_cluster(sim);
  recording_proxy proxy;
  const int port = free_port();
  child canaryd({canaryd_path(), "-listen-address=127.0.0.1", "-port", std::to_string(port), "-kubeconfig",
                 sim.kubeconfig().string(), "-event-webhook=http://events.example/flagger"},
                {{"HTTP_PROXY", "http://127.0.0.1:" + std::to_string(proxy.port)}, {"NO_PROXY", ""}});
  REQUIRE_MESSAGE(canaryd.wait_for_line("caches synced", 15s), canaryd.stderr_text());
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    webhooks:\n"
                                "      - name: gate\n"
                                "        type: pre-rollout\n"
                                "        url: http://gate.example/approve?stage=pre\n"));
  CHECK(eventually([&] { return proxy.saw("http://events.example/flagger", "events.example"); }, 10s));
  release(sim, "6.0.1");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  CHECK(proxy.saw("http://gate.example/approve?stage=pre", "gate.example"));
  CHECK(has_event(canary_events(sim, "podinfo"), "Normal", "Pre-rollout check gate passed"));
}

TEST_CASE("NO_PROXY keeps a listed host off the proxy") {
  kubesim_instance sim;
  setup_cluster(sim);
  recording_proxy proxy;
  webhook_receiver direct;
  const int port = free_port();
  // The receiver is on loopback, which is never proxied; events.example is listed in NO_PROXY and
  // does not resolve, so its posts fail instead of reaching the proxy.
  child canaryd({canaryd_path(), "-listen-address=127.0.0.1", "-port", std::to_string(port), "-kubeconfig",
                 sim.kubeconfig().string(), "-event-webhook=http://events.example/flagger"},
                {{"HTTP_PROXY", "http://127.0.0.1:" + std::to_string(proxy.port)}, {"NO_PROXY", ".example"}});
  REQUIRE_MESSAGE(canaryd.wait_for_line("caches synced", 15s), canaryd.stderr_text());
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    webhooks:\n"
                                "      - name: gate\n"
                                "        type: pre-rollout\n"
                                "        url: " + direct.url() + "/gate\n"));
  release(sim, "6.0.1");
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  CHECK(!direct.received().empty());
  CHECK(proxy.requests().empty());
}
