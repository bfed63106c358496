#include "tests/e2e/harness.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

namespace json = boost::json;
using namespace std::chrono_literals;

namespace canaryd::test {

std::string canaryd_path() { return (build_root() / "daemon" / "canaryd").string(); }

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string podinfo_yaml() {
  auto ref = shared_reference();
  REQUIRE_MESSAGE(ref, "the shared Flagger reference is not available");
  return read_text(*ref / "flagger" / "workloads" / "podinfo-deployment.yaml");
}

std::string canary_yaml(const std::string& name, const std::string& target, const std::string& analysis_extra,
                        const std::string& spec_extra) {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider: kubernetes\n" + spec_extra +
         "  targetRef:\n"
         "    apiVersion: apps/v1\n"
         "    kind: Deployment\n"
         "    name: " + target + "\n"
         "  service:\n"
         "    port: 9898\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: 2\n"
         "    iterations: 3\n" + analysis_extra;
}

daemon_run start_canaryd(const kubesim_instance& sim, const std::vector<std::string>& extra_args,
                         const std::map<std::string, std::string>& env) {
  daemon_run d;
  d.port = free_port();
  std::vector<std::string> argv{canaryd_path(), "-listen-address=127.0.0.1", "-port", std::to_string(d.port),
                                "-kubeconfig", sim.kubeconfig().string(), "-log-level=info"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  d.proc = std::make_unique<child>(argv, env);
  auto synced = d.proc->wait_for_line("caches synced", 15s);
  REQUIRE_MESSAGE(synced, "canaryd did not sync; its output so far ended with: "
                              << (d.proc->lines().empty() ? "" : d.proc->lines().back()));
  return d;
}

namespace {

// The REST collection of the kinds the tests poll, as `kubectl get <name>` resolves them.
const char* collection_of(const std::string& resource) {
  static const std::map<std::string, const char*> paths{
      {"canary", "/apis/flagger.app/v1beta1/namespaces/demo/canaries"},
      {"canaries", "/apis/flagger.app/v1beta1/namespaces/demo/canaries"},
      {"deployment", "/apis/apps/v1/namespaces/demo/deployments"},
      {"deployments", "/apis/apps/v1/namespaces/demo/deployments"},
      {"service", "/api/v1/namespaces/demo/services"},
      {"services", "/api/v1/namespaces/demo/services"},
      {"configmap", "/api/v1/namespaces/demo/configmaps"},
      {"configmaps", "/api/v1/namespaces/demo/configmaps"},
      {"pod", "/api/v1/namespaces/demo/pods"},
      {"pods", "/api/v1/namespaces/demo/pods"},
      {"event", "/api/v1/namespaces/demo/events"},
      {"events", "/api/v1/namespaces/demo/events"},
      // Istio's published CRDs serve v1 first, the version kubectl reads.
      {"virtualservice", "/apis/networking.istio.io/v1/namespaces/demo/virtualservices"},
      {"virtualservices", "/apis/networking.istio.io/v1/namespaces/demo/virtualservices"},
      {"destinationrule", "/apis/networking.istio.io/v1/namespaces/demo/destinationrules"},
      {"destinationrules", "/apis/networking.istio.io/v1/namespaces/demo/destinationrules"},
  };
  auto it = paths.find(resource);
  return it == paths.end() ? nullptr : it->second;
}

// `kubectl get` of one of those kinds (optionally one object, optionally --field-selector), read
// straight from kubesim's API: a kubectl process costs ~0.1-0.3 s of CPU, and the tests poll
// several times a second, which on two shared cores made the canaries' own steps late. The
// answer is shaped as kubectl prints it: a list becomes a List whose items carry kind and
// apiVersion. Returns nothing when the request is not one of those (kubectl then reads it).
std::optional<json::value> get_direct(const kubesim_instance& sim, const std::vector<std::string>& what) {
  if (what.empty() || sim.api_url().rfind("http://", 0) != 0) return std::nullopt;
  const char* collection = collection_of(what[0]);
  if (!collection) return std::nullopt;
  std::string path = collection;
  std::size_t i = 1;
  bool single = false;
  if (i < what.size() && !what[i].starts_with("-")) {
    path += "/" + what[i++];
    single = true;
  }
  if (i + 2 == what.size() && what[i] == "--field-selector" && !single) {
    std::string sel;
    for (char c : what[i + 1]) sel += c == '=' ? std::string("%3D") : c == ',' ? std::string("%2C") : std::string(1, c);
    path += "?fieldSelector=" + sel;
    i += 2;
  }
  if (i != what.size()) return std::nullopt;
  auto r = http_call("GET", sim.api_url() + path, {}, 20s);
  if (!r || r->status != 200) return json::value(nullptr);
  json::value v = json::parse(r->body);
  if (single) return v;
  auto& list = v.as_object();
  std::string kind(list.at("kind").as_string());
  if (kind.ends_with("List")) kind.resize(kind.size() - 4);
  const json::value api_version = list.at("apiVersion");
  for (auto& item : list.at("items").as_array()) {
    auto& o = item.as_object();
    if (!o.contains("apiVersion")) o["apiVersion"] = api_version;
    if (!o.contains("kind")) o["kind"] = kind;
  }
  return json::value{{"apiVersion", "v1"}, {"items", std::move(list.at("items"))}, {"kind", "List"},
                     {"metadata", {{"resourceVersion", ""}}}};
}

}  // namespace

json::value get_json(const kubesim_instance& sim, const std::vector<std::string>& what) {
  if (auto direct = get_direct(sim, what)) return std::move(*direct);
  std::vector<std::string> args{"-n", "demo", "get"};
  args.insert(args.end(), what.begin(), what.end());
  args.insert(args.end(), {"-o", "json"});
  auto r = sim.kubectl(args);
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out);
}

std::string str_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto k : path) {
    if (!cur->is_object()) return {};
    auto* next = cur->as_object().if_contains(k);
    if (!next) return {};
    cur = next;
  }
  if (cur->is_string()) return std::string(cur->as_string());
  if (cur->is_int64()) return std::to_string(cur->as_int64());
  return {};
}

std::string phase_of(const kubesim_instance& sim, const std::string& canary) {
  return str_at(get_json(sim, {"canary", canary}), {"status", "phase"});
}

std::int64_t replicas_of(const kubesim_instance& sim, const std::string& deployment) {
  auto v = get_json(sim, {"deployment", deployment});
  if (v.is_null()) return -1;
  auto* r = v.as_object().at("spec").as_object().if_contains("replicas");
  return r ? r->to_number<std::int64_t>() : 1;
}

std::string image_of(const kubesim_instance& sim, const std::string& deployment) {
  auto v = get_json(sim, {"deployment", deployment});
  if (v.is_null()) return {};
  return std::string(v.at_pointer("/spec/template/spec/containers/0/image").as_string());
}

// Polls until `pred` holds or `limit` passes; returns whether it held.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return pred();
}

// Polls the canary's phase until it is `want` (or `limit` passes), recording each distinct
// phase seen, in order.
bool wait_phase(const kubesim_instance& sim, const std::string& canary, const std::string& want,
                std::chrono::milliseconds limit, std::vector<std::string>* seen) {
  return eventually(
      [&] {
        auto p = phase_of(sim, canary);
        if (seen && !p.empty() && (seen->empty() || seen->back() != p)) seen->push_back(p);
        return p == want;
      },
      limit);
}

namespace {

bool in_list(const event_list& evs, const std::string& type, const std::string& text) {
  for (const auto& [t, m] : evs)
    if (t == type && m.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

event_list canary_events(const kubesim_instance& sim, const std::string& canary) {
  event_list out;
  out.sim = &sim;
  out.canary = canary;
  auto v = get_json(sim, {"events", "--field-selector", "involvedObject.name=" + canary});
  if (v.is_null()) return out;
  for (const auto& e : v.as_object().at("items").as_array()) {
    if (str_at(e, {"involvedObject", "kind"}) != "Canary") continue;
    out.emplace_back(str_at(e, {"type"}), str_at(e, {"message"}));
  }
  return out;
}

bool has_event(const event_list& evs, const std::string& type, const std::string& text) {
  if (in_list(evs, type, text)) return true;
  if (!evs.sim) return false;
#ifdef __SANITIZE_ADDRESS__
  constexpr std::chrono::seconds wait{90};  // canaryd runs about three times slower under ASan
#else
  constexpr std::chrono::seconds wait{30};
#endif
  return eventually([&] { return in_list(canary_events(*evs.sim, evs.canary), type, text); }, wait);
}

bool lacks_event(const event_list& evs, const std::string& type, const std::string& text) {
  return !in_list(evs, type, text);
}

std::string dump(const event_list& evs) {
  std::string s;
  for (const auto& [t, m] : evs) s += t + ": " + m + "\n";
  return s;
}

void setup_cluster(const kubesim_instance& sim) {
  sim.kubectl_ok({"apply", "-f", (source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
  sim.kubectl_ok({"create", "namespace", "demo"});
}

bool install_published_crds(const kubesim_instance& sim, const std::string& provider) {
  auto ref = shared_reference();
  const auto dir = ref ? *ref / "crds" / provider : std::filesystem::path();
  if (!ref || !std::filesystem::is_directory(dir)) {
    MESSAGE("skipped: the published " << provider << " CRDs (../shared/reference/crds/" << provider
                                      << ") are not available");
    return false;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".yaml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    sim.kubectl_ok({"create", "-f", f.string()});
    sim.kubectl_ok({"wait", "--for=condition=Established", "-f", f.string(), "--timeout=30s"});
  }
  return true;
}

// Deploys podinfo, its Canary, and waits for Initialized.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) text.replace(at, from.size(), to);
  return text;
}

std::vector<json::object> requests(const std::filesystem::path& log) {
  std::vector<json::object> out;
  std::istringstream in(read_text(log));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(json::parse(l).as_object());
  return out;
}

std::string metric_target_yaml(const std::string& name) {
  return replaced(R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  namespace: demo
  labels:
    app: NAME
spec:
  replicas: 1
  selector:
    matchLabels:
      app: NAME
  template:
    metadata:
      labels:
        app: NAME
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports:
        - name: http
          containerPort: 9898
)",
                  "NAME", name);
}

void release(const kubesim_instance& sim, const std::string& tag) {
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:" + tag});
}

void init_podinfo(const kubesim_instance& sim, const std::string& canary) {
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, podinfo_yaml());
  sim.kubectl_ok({"apply", "-f", "-"}, canary);
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s),
                  "phase " << phase_of(sim, "podinfo") << "; events:\n" << dump(canary_events(sim, "podinfo")));
}

webhook_receiver::webhook_receiver() {
  const std::string server = R"(
import http.server, json, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with open(out, 'a') as f:
            f.write(json.dumps({'path': self.path, 'body': json.loads(body)}) + '\n')
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()
    def log_message(self, *a):
        pass
print('listening', flush=True)
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
)";
  proc = std::make_unique<child>(std::vector<std::string>{"python3", "-c", server, std::to_string(port), payloads.string()});
  REQUIRE(proc->wait_for_line("listening", 10s));
}

std::vector<json::value> webhook_receiver::received() const {
  std::vector<json::value> out;
  std::istringstream in(read_text(payloads));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(json::parse(l));
  return out;
}

std::string loadtester_path() { return (build_root() / "loadtester" / "canary-loadtester").string(); }

loadtester::loadtester(std::vector<std::string> extra) {
  std::vector<std::string> argv{loadtester_path(), "--listen-address",
                                "127.0.0.1", "-port=" + std::to_string(port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  proc = std::make_unique<child>(argv, std::map<std::string, std::string>{}, dir.path() / "stderr.log");
  auto started = proc->wait_for_line("Starting load tester", 10s);
  REQUIRE_MESSAGE(started, "canary-loadtester did not start: " << proc->stderr_text());
  REQUIRE(started->find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
}

http_reply loadtester::post(const std::string& path, const std::string& body, std::chrono::milliseconds limit) {
  auto r = http_call("POST", url() + path, body, limit);
  REQUIRE_MESSAGE(r, "no answer from canary-loadtester for " << path);
  return *r;
}

}  // namespace canaryd::test
