// End to end: the kubesim binary driven by the real kubectl (fresh HOME per instance, so the
// discovery cache is fresh) and by raw HTTP(S) requests, checking what a real API server does:
// Flagger's CRDs and manifests applied unchanged, printed columns, patches, watches, conflicts,
// 410 after compaction, finalizers, garbage collection, bad input, authentication and fault
// injection.
#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "k8s/http_client.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The bearer token kubesim wrote into its kubeconfig ("" without --tls).
std::string kubeconfig_token(const kubesim_instance& ks) {
  auto text = read_file(ks.kubeconfig());
  auto p = text.find("token: ");
  if (p == std::string::npos) return {};
  p += 7;
  return text.substr(p, text.find('\n', p) - p);
}

struct reply {
  int status = 0;
  std::string body;
  http::headers headers;
  json::value json() const {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    return ec ? json::value() : v;
  }
  std::string header(std::string_view name) const {
    auto v = http::find_header(headers, name);
    return v ? std::string(*v) : std::string();
  }
};

struct call_options {
  std::string token{};        // Authorization: Bearer
  bool client_cert = false;   // present kubesim's client certificate
  std::string user_agent = "kubesim-api-test";
  http::headers headers{};
};

http::client_options client_options_for(const kubesim_instance& ks, const call_options& o) {
  http::client_options co;
  co.user_agent = o.user_agent;
  if (ks.api_url().starts_with("https")) {
    auto base = ks.kubeconfig().string();
    co.tls.ca_pem = read_file(base + ".ca.crt");
    if (o.client_cert) {
      co.tls.cert_pem = read_file(base + ".client.crt");
      co.tls.key_pem = read_file(base + ".client.key");
    }
  }
  return co;
}

http::request make_request(std::string method, std::string path, std::string body, const call_options& o) {
  http::request req;
  req.method = std::move(method);
  req.target = std::move(path);
  req.body = std::move(body);
  req.headers = o.headers;
  if (!http::find_header(req.headers, "Content-Type") && !req.body.empty())
    req.headers.push_back({"Content-Type", "application/json"});
  if (!o.token.empty()) req.headers.push_back({"Authorization", "Bearer " + o.token});
  return req;
}

asio::awaitable<void> send_one(http::client& c, http::request req, reply& out) {
  auto r = co_await c.send(std::move(req), std::chrono::milliseconds(15'000));
  if (!r) co_return;
  out.status = r->status;
  out.body = std::move(r->body);
  out.headers = std::move(r->headers);
}

// One blocking request (its own io_context).
reply call(const kubesim_instance& ks, std::string method, std::string path, std::string body = {},
           call_options o = {}) {
  asio::io_context io;
  auto origin = http::parse_origin(ks.api_url());
  REQUIRE(origin.has_value());
  auto c = http::make_client(io.get_executor(), *origin, client_options_for(ks, o));
  REQUIRE(c.has_value());
  reply out;
  asio::co_spawn(io, send_one(**c, make_request(std::move(method), std::move(path), std::move(body), o), out),
                 [](std::exception_ptr e) {
                   if (e) std::rethrow_exception(e);
                 });
  io.run();
  return out;
}

struct stream_result {
  int status = 0;
  std::vector<std::string> lines;
  bool closed_by_server = false;  // the stream ended (cleanly or cut) rather than our time limit
};

// Reads a watch stream until `want` lines arrived, the stream ended, or `limit` passed. If
// `after_open` is given, it is sent (on a second connection) once the stream's head arrived.
asio::awaitable<void> read_stream(http::client& c, http::client& side, http::request req,
                                  std::optional<http::request> after_open, std::size_t want,
                                  std::chrono::milliseconds limit, stream_result& out) {
  auto s = co_await c.open_stream(std::move(req), std::chrono::milliseconds(10'000));
  if (!s) co_return;
  out.status = (*s)->head().status;
  if (after_open) {
    auto r = co_await side.send(std::move(*after_open), std::chrono::milliseconds(10'000));
    (void)r;
  }
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::string buf;
  while (out.lines.size() < want) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto piece = co_await (*s)->read_some(left);
    if (!piece || piece->empty()) {
      out.closed_by_server = !piece ? piece.error() == http::errc::closed : true;
      break;
    }
    buf += *piece;
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      out.lines.push_back(buf.substr(0, nl));
      buf.erase(0, nl + 1);
    }
  }
  (*s)->close();
}

stream_result watch(const kubesim_instance& ks, std::string path, std::size_t want,
                    std::chrono::milliseconds limit = 5s, std::optional<std::pair<std::string, std::string>> then_post = {},
                    call_options o = {}) {
  asio::io_context io;
  auto origin = http::parse_origin(ks.api_url());
  REQUIRE(origin.has_value());
  auto c = http::make_client(io.get_executor(), *origin, client_options_for(ks, o));
  auto side = http::make_client(io.get_executor(), *origin, client_options_for(ks, o));
  REQUIRE(c.has_value());
  REQUIRE(side.has_value());
  std::optional<http::request> after;
  if (then_post) after = make_request("POST", then_post->first, then_post->second, o);
  stream_result out;
  asio::co_spawn(io, read_stream(**c, **side, make_request("GET", std::move(path), {}, o), std::move(after), want, limit, out),
                 [](std::exception_ptr e) {
                   if (e) std::rethrow_exception(e);
                 });
  io.run();
  return out;
}

json::value parse(const std::string& s) {
  boost::system::error_code ec;
  auto v = json::parse(s, ec);
  INFO("json: " << s);
  REQUIRE_FALSE(ec);
  return v;
}

std::string str_at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto k : path) {
    if (!cur->is_object() || !cur->as_object().contains(k)) return {};
    cur = &cur->as_object().at(k);
  }
  if (cur->is_string()) return std::string(cur->as_string());
  return json::serialize(*cur);
}

std::map<std::string, std::string> kubectl_env(const kubesim_instance& ks) {
  return {{"HOME", (ks.dir() / "home").string()}, {"KUBECONFIG", ks.kubeconfig().string()}};
}

bool wait_until(const std::function<bool()>& f, std::chrono::milliseconds limit = 15s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return f();
}

const char* const configmap_json = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},"data":{"a":"1"}})";

std::string configmap(const std::string& name) {
  std::string s = configmap_json;
  s.replace(s.find("NAME"), 4, name);
  return s;
}

}  // namespace

TEST_CASE("kubectl applies Flagger's CRDs, workloads and example Canaries unchanged and prints their columns") {
  auto ref = shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  auto flagger = *ref / "flagger";
  auto out = ks.kubectl_ok({"apply", "-f", (flagger / "crd.yaml").string()});
  CHECK(out.find("customresourcedefinition.apiextensions.k8s.io/canaries.flagger.app created") != std::string::npos);
  ks.kubectl_ok({"wait", "--for=condition=Established", "crd/canaries.flagger.app", "--timeout=20s"});
  ks.kubectl_ok({"create", "namespace", "test"});
  out = ks.kubectl_ok({"apply", "-n", "test", "-f", (flagger / "workloads").string()});
  CHECK(out.find("deployment.apps/podinfo created") != std::string::npos);
  CHECK(out.find("horizontalpodautoscaler.autoscaling/podinfo created") != std::string::npos);
  bool first = true;
  for (const auto& e : std::filesystem::directory_iterator(flagger / "examples")) {
    CAPTURE(e.path().string());
    out = ks.kubectl_ok({"apply", "-f", e.path().string()});
    CHECK(out.find(first ? "canary.flagger.app/podinfo created" : "canary.flagger.app/podinfo") != std::string::npos);
    first = false;
  }

  // Table output: the CRD's printer columns, and the built-in Deployment columns.
  out = ks.kubectl_ok({"get", "canaries", "-n", "test"});
  CHECK(out.find("NAME") == 0);
  for (auto col : {"STATUS", "WEIGHT", "LASTTRANSITIONTIME"}) CHECK(out.find(col) != std::string::npos);
  CHECK(out.find("podinfo") != std::string::npos);
  out = ks.kubectl_ok({"get", "canaries", "-n", "test", "-o", "wide"});
  for (auto col : {"SUSPENDED", "FAILEDCHECKS", "INTERVAL", "STEPWEIGHT", "MAXWEIGHT"}) CHECK(out.find(col) != std::string::npos);
  out = ks.kubectl_ok({"get", "deployment", "podinfo", "-n", "test"});
  auto header = out.substr(0, out.find('\n'));
  for (auto col : {"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}) CHECK(header.find(col) != std::string::npos);
  out = ks.kubectl_ok({"get", "hpa", "-n", "test"});
  CHECK(out.find("Deployment/podinfo") != std::string::npos);

  // -o json and -o jsonpath.
  auto obj = parse(ks.kubectl_ok({"get", "canary", "podinfo", "-n", "test", "-o", "json"}));
  CHECK(str_at(obj, {"kind"}) == "Canary");
  CHECK(str_at(obj, {"apiVersion"}) == "flagger.app/v1beta1");
  CHECK(str_at(obj, {"spec", "targetRef", "name"}) == "podinfo");
  CHECK_FALSE(str_at(obj, {"metadata", "uid"}).empty());
  CHECK(ks.kubectl_ok({"get", "canary", "podinfo", "-n", "test", "-o", "jsonpath={.spec.analysis.interval}"}) == "15s");
  auto list = parse(ks.kubectl_ok({"get", "crd", "-o", "json"}));
  CHECK(list.at("items").as_array().size() == 3);
  auto crd = parse(ks.kubectl_ok({"get", "crd", "canaries.flagger.app", "-o", "json"}));
  CHECK(crd.at("status").at("acceptedNames").at("kind").as_string() == "Canary");
  // Short names and categories come from discovery.
  CHECK(ks.kubectl_ok({"get", "deploy", "-n", "test", "-o", "name"}).find("deployment.apps/podinfo") != std::string::npos);
  CHECK(ks.kubectl_ok({"get", "all", "-n", "test", "-o", "name"}).find("canary.flagger.app/podinfo") != std::string::npos);
}

TEST_CASE("set image and patch merge, json and strategic change a Deployment; generation follows the spec") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"create", "deployment", "web", "--image=nginx:1.25"});
  auto gen = [&] { return ks.kubectl_ok({"get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"}); };
  CHECK(gen() == "1");
  ks.kubectl_ok({"set", "image", "deployment/web", "nginx=nginx:1.26"});
  CHECK(ks.kubectl_ok({"get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"}) == "nginx:1.26");
  CHECK(gen() == "2");
  ks.kubectl_ok({"label", "deploy", "web", "tier=front"});  // metadata only
  CHECK(gen() == "2");
  ks.kubectl_ok({"patch", "deploy", "web", "--type", "merge", "-p", R"({"spec":{"replicas":2}})"});
  ks.kubectl_ok({"patch", "deploy", "web", "--type", "json", "-p", R"([{"op":"replace","path":"/spec/replicas","value":3}])"});
  CHECK(ks.kubectl_ok({"get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"}) == "3");
  // Strategic merge adds env to the container named nginx instead of replacing the list.
  ks.kubectl_ok({"patch", "deploy", "web", "--type", "strategic", "-p",
                 R"({"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"MODE","value":"x"}]}]}}}})"});
  auto d = parse(ks.kubectl_ok({"get", "deploy", "web", "-o", "json"}));
  auto& c = d.at("spec").at("template").at("spec").at("containers").as_array();
  REQUIRE(c.size() == 1);
  CHECK(c[0].at("image").as_string() == "nginx:1.26");
  CHECK(c[0].at("env").at(0).at("name").as_string() == "MODE");
  CHECK(gen() == "5");
  // A JSON patch whose test fails is refused with 422.
  auto bad = ks.kubectl({"patch", "deploy", "web", "--type", "json", "-p", R"([{"op":"test","path":"/spec/replicas","value":9}])"});
  CHECK(bad.exit_code != 0);
  INFO("kubectl: " << bad.err);
  CHECK(bad.err.find("the server rejected our request") != std::string::npos);
  // The scale subresource.
  ks.kubectl_ok({"scale", "deploy", "web", "--replicas=1"});
  CHECK(ks.kubectl_ok({"get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"}) == "1");
  auto scale = call(ks, "GET", "/apis/apps/v1/namespaces/default/deployments/web/scale");
  CHECK(scale.status == 200);
  CHECK(str_at(scale.json(), {"kind"}) == "Scale");
  CHECK(str_at(scale.json(), {"status", "selector"}) == "app=web");
  // delete.
  CHECK(ks.kubectl_ok({"delete", "deploy", "web"}).find("deployment.apps \"web\" deleted") != std::string::npos);
  auto gone = ks.kubectl({"get", "deploy", "web"});
  CHECK(gone.exit_code != 0);
  CHECK(gone.err.find("deployments.apps \"web\" not found") != std::string::npos);
}

TEST_CASE("kubectl wait --for=condition=Available succeeds once the Deployment controller made it ready") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"create", "deployment", "web", "--image=nginx:1.25", "--replicas=2"});
  ks.kubectl_ok({"wait", "--for=condition=Available", "deployment/web", "--timeout=30s"});
  CHECK(ks.kubectl_ok({"get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas}"}) == "2");
}

TEST_CASE("custom objects are validated against the CRD schema, unknown fields are pruned, status is a subresource") {
  auto ref = shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"apply", "-f", (*ref / "flagger" / "crd.yaml").string()});
  const std::string canary = R"(
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: app
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: app}
  service: {port: 80, inventedServiceField: true}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
  inventedSpecField: 1
status:
  phase: Succeeded
)";
  ks.kubectl_ok({"apply", "-f", "-"}, canary);
  auto obj = parse(ks.kubectl_ok({"get", "canary", "app", "-o", "json"}));
  CHECK_FALSE(obj.at("spec").as_object().contains("inventedSpecField"));
  CHECK_FALSE(obj.at("spec").at("service").as_object().contains("inventedServiceField"));
  CHECK_FALSE(obj.as_object().contains("status"));  // dropped on create: status is a subresource

  // Wrong type: 422 Invalid with the field.
  auto bad = ks.kubectl({"patch", "canary", "app", "--type", "merge", "-p", R"({"spec":{"analysis":{"threshold":"x"}}})"});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("is invalid") != std::string::npos);
  CHECK(bad.err.find("spec.analysis.threshold") != std::string::npos);
  auto raw = call(ks, "PATCH", "/apis/flagger.app/v1beta1/namespaces/default/canaries/app",
                  R"({"spec":{"analysis":{"threshold":"x"}}})", {.headers = {{"Content-Type", "application/merge-patch+json"}}});
  CHECK(raw.status == 422);
  CHECK(str_at(raw.json(), {"reason"}) == "Invalid");
  CHECK(str_at(raw.json(), {"details", "kind"}) == "Canary");
  CHECK(raw.json().at("details").at("causes").at(0).at("field").as_string() == "spec.analysis.threshold");
  // Strategic merge is not for custom resources: 415.
  auto smp = call(ks, "PATCH", "/apis/flagger.app/v1beta1/namespaces/default/canaries/app", R"({"spec":{}})",
                  {.headers = {{"Content-Type", "application/strategic-merge-patch+json"}}});
  CHECK(smp.status == 415);
  CHECK(str_at(smp.json(), {"reason"}) == "UnsupportedMediaType");

  // The status subresource keeps declared status fields and drops invented ones.
  auto st = call(ks, "PATCH", "/apis/flagger.app/v1beta1/namespaces/default/canaries/app/status",
                 R"({"status":{"phase":"Progressing","canaryWeight":10,"inventedStatus":"x"}})",
                 {.headers = {{"Content-Type", "application/merge-patch+json"}}});
  CHECK(st.status == 200);
  CHECK(str_at(st.json(), {"status", "phase"}) == "Progressing");
  CHECK_FALSE(st.json().at("status").as_object().contains("inventedStatus"));
  // The main resource ignores status writes.
  auto main = call(ks, "PATCH", "/apis/flagger.app/v1beta1/namespaces/default/canaries/app",
                   R"({"status":{"phase":"Failed"}})", {.headers = {{"Content-Type", "application/merge-patch+json"}}});
  CHECK(main.status == 200);
  CHECK(str_at(main.json(), {"status", "phase"}) == "Progressing");
  CHECK(ks.kubectl_ok({"get", "canary", "app"}).find("Progressing") != std::string::npos);

  // Deleting the CRD stops serving the resource and deletes its objects.
  ks.kubectl_ok({"delete", "crd", "canaries.flagger.app"});
  auto list = call(ks, "GET", "/apis/flagger.app/v1beta1/canaries");
  CHECK(list.status == 404);
}

TEST_CASE("kubectl get --watch prints changes as they happen") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"create", "configmap", "watched", "--from-literal=a=1"});
  std::vector<std::string> argv{"kubectl", "--kubeconfig", ks.kubeconfig().string(), "get", "configmaps", "--watch"};
  child w(argv, kubectl_env(ks), ks.dir() / "watch.err");
  auto header = w.read_line(20s);
  REQUIRE(header);
  CHECK(header->find("NAME") == 0);
  CHECK(header->find("DATA") != std::string::npos);
  auto row = w.wait_for_line("watched", 10s);
  REQUIRE(row);
  // Wait for the watch to be open before changing things.
  REQUIRE(wait_until([&] { return str_at(call(ks, "GET", "/kubesim/stats").json(), {"watches_open"}) != "0"; }));
  ks.kubectl_ok({"create", "configmap", "second", "--from-literal=a=1", "--from-literal=b=2"});
  auto added = w.wait_for_line("second", 10s);
  REQUIRE(added);
  CHECK(added->find(" 2 ") != std::string::npos);  // the DATA column
  w.signal(SIGTERM);
}

TEST_CASE("raw watches: ADDED/MODIFIED/DELETED with selectors, bookmarks, and 410 Gone after compaction") {
  kubesim_instance ks({.extra_args = {"--bookmark-interval", "200ms"}});
  INFO("kubesim log:\n" << ks.log());
  REQUIRE(call(ks, "POST", "/api/v1/namespaces/default/configmaps", configmap("a")).status == 201);
  auto list = call(ks, "GET", "/api/v1/namespaces/default/configmaps");
  REQUIRE(list.status == 200);
  auto rv = str_at(list.json(), {"metadata", "resourceVersion"});
  REQUIRE_FALSE(rv.empty());
  // Built-in list items carry no apiVersion/kind, as a real server's typed lists.
  CHECK_FALSE(list.json().at("items").at(0).as_object().contains("kind"));

  // Changes after rv, including one that leaves the label selection.
  REQUIRE(call(ks, "POST", "/api/v1/namespaces/default/configmaps",
               R"({"metadata":{"name":"b","labels":{"x":"y"}},"data":{}})").status == 201);
  REQUIRE(call(ks, "PATCH", "/api/v1/namespaces/default/configmaps/b", R"({"metadata":{"labels":{"x":"z"}}})",
               {.headers = {{"Content-Type", "application/merge-patch+json"}}}).status == 200);
  REQUIRE(call(ks, "DELETE", "/api/v1/namespaces/default/configmaps/a").status == 200);
  auto w = watch(ks, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + rv, 3);
  CHECK(w.status == 200);
  REQUIRE(w.lines.size() == 3);
  CHECK(str_at(parse(w.lines[0]), {"type"}) == "ADDED");
  CHECK(str_at(parse(w.lines[1]), {"type"}) == "MODIFIED");
  CHECK(str_at(parse(w.lines[2]), {"type"}) == "DELETED");
  CHECK(str_at(parse(w.lines[2]), {"object", "metadata", "name"}) == "a");
  auto sel = watch(ks, "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=x%3Dy&resourceVersion=" + rv, 2);
  REQUIRE(sel.lines.size() == 2);
  CHECK(str_at(parse(sel.lines[0]), {"type"}) == "ADDED");
  CHECK(str_at(parse(sel.lines[1]), {"type"}) == "DELETED");  // left the selection

  // Bookmarks carry only the resourceVersion.
  auto bm = watch(ks, "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=" +
                          std::to_string(std::stoull(rv) + 3), 1, 3s);
  REQUIRE(bm.lines.size() == 1);
  CHECK(str_at(parse(bm.lines[0]), {"type"}) == "BOOKMARK");
  CHECK(str_at(parse(bm.lines[0]), {"object", "kind"}) == "ConfigMap");
  CHECK_FALSE(str_at(parse(bm.lines[0]), {"object", "metadata", "resourceVersion"}).empty());

  // timeoutSeconds ends the stream cleanly.
  auto t = watch(ks, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&resourceVersion=" +
                         str_at(call(ks, "GET", "/api/v1/namespaces/default/configmaps").json(), {"metadata", "resourceVersion"}),
                 5, 5s);
  CHECK(t.closed_by_server);

  // Compaction: the old resourceVersion is gone.
  auto f = call(ks, "POST", "/kubesim/faults", R"({"compact":true})");
  REQUIRE(f.status == 200);
  auto gone = watch(ks, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + rv, 1);
  CHECK(gone.status == 200);
  REQUIRE(gone.lines.size() == 1);
  auto ev = parse(gone.lines[0]);
  CHECK(str_at(ev, {"type"}) == "ERROR");
  CHECK(str_at(ev, {"object", "code"}) == "410");
  CHECK(str_at(ev, {"object", "reason"}) == "Expired");
}

TEST_CASE("a stale update gets 409 Conflict, a duplicate create 409 AlreadyExists, a missing namespace 404") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"create", "configmap", "c", "--from-literal=a=1"});
  auto old = ks.kubectl_ok({"get", "configmap", "c", "-o", "json"});
  ks.kubectl_ok({"label", "configmap", "c", "x=y"});
  auto stale = ks.kubectl({"replace", "-f", "-"}, old);
  CHECK(stale.exit_code != 0);
  CHECK(stale.err.find("the object has been modified; please apply your changes to the latest version and try again") !=
        std::string::npos);
  auto raw = call(ks, "PUT", "/api/v1/namespaces/default/configmaps/c", old);
  CHECK(raw.status == 409);
  CHECK(str_at(raw.json(), {"reason"}) == "Conflict");
  CHECK(str_at(raw.json(), {"details", "name"}) == "c");

  auto dup = call(ks, "POST", "/api/v1/namespaces/default/configmaps", configmap("c"));
  CHECK(dup.status == 409);
  CHECK(str_at(dup.json(), {"reason"}) == "AlreadyExists");
  CHECK(str_at(dup.json(), {"message"}) == "configmaps \"c\" already exists");

  auto nons = call(ks, "POST", "/api/v1/namespaces/nope/configmaps", configmap("c"));
  CHECK(nons.status == 404);
  CHECK(str_at(nons.json(), {"message"}) == "namespaces \"nope\" not found");

  auto missing = call(ks, "PUT", "/api/v1/namespaces/default/configmaps/zzz", configmap("zzz"));
  CHECK(missing.status == 404);
  CHECK(str_at(missing.json(), {"message"}) == "configmaps \"zzz\" not found");
}

TEST_CASE("a Secret's stringData is written into data, base64-encoded, and never stored") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"apply", "-f", "-"}, R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
    "data":{"keep":"eHl6","password":"b2xk"},"stringData":{"password":"s3cret","token":"abc"}})");
  auto v = json::parse(ks.kubectl_ok({"get", "secret", "s", "-o", "json"}));
  CHECK(str_at(v, {"data", "keep"}) == "eHl6");
  CHECK(str_at(v, {"data", "password"}) == "czNjcmV0");  // stringData wins over data
  CHECK(str_at(v, {"data", "token"}) == "YWJj");
  CHECK(str_at(v, {"type"}) == "Opaque");
  CHECK(!v.as_object().contains("stringData"));
  ks.kubectl_ok({"patch", "secret", "s", "--type", "merge", "-p", R"({"stringData":{"password":"new"}})"});
  v = json::parse(ks.kubectl_ok({"get", "secret", "s", "-o", "json"}));
  CHECK(str_at(v, {"data", "password"}) == "bmV3");
  CHECK(!v.as_object().contains("stringData"));
  auto bad = call(ks, "POST", "/api/v1/namespaces/default/secrets",
                  R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"},"stringData":{"n":1}})");
  CHECK(bad.status == 422);
}

TEST_CASE("a finalizer holds a delete until it is removed") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"apply", "-f", "-"}, R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","finalizers":["example.com/hold"]}})");
  auto del = call(ks, "DELETE", "/api/v1/namespaces/default/configmaps/held");
  CHECK(del.status == 202);
  auto obj = parse(ks.kubectl_ok({"get", "configmap", "held", "-o", "json"}));
  CHECK_FALSE(str_at(obj, {"metadata", "deletionTimestamp"}).empty());
  ks.kubectl_ok({"patch", "configmap", "held", "--type", "json", "-p", R"([{"op":"remove","path":"/metadata/finalizers"}])"});
  auto gone = ks.kubectl({"get", "configmap", "held"});
  CHECK(gone.exit_code != 0);
  CHECK(gone.err.find("not found") != std::string::npos);
}

TEST_CASE("deleting an owner deletes its dependents; orphan keeps them") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  auto owner_uid = [&](const std::string& name) {
    return ks.kubectl_ok({"get", "configmap", name, "-o", "jsonpath={.metadata.uid}"});
  };
  auto dependent = [&](const std::string& name, const std::string& owner) {
    return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
           R"(","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":")" + owner + R"(","uid":")" +
           owner_uid(owner) + R"("}]}})";
  };
  ks.kubectl_ok({"create", "configmap", "owner"});
  ks.kubectl_ok({"apply", "-f", "-"}, dependent("dep", "owner"));
  ks.kubectl_ok({"delete", "configmap", "owner"});
  CHECK(wait_until([&] { return ks.kubectl({"get", "configmap", "dep"}).exit_code != 0; }));

  ks.kubectl_ok({"create", "configmap", "owner2"});
  ks.kubectl_ok({"apply", "-f", "-"}, dependent("dep2", "owner2"));
  ks.kubectl_ok({"delete", "configmap", "owner2", "--cascade=orphan"});
  CHECK(ks.kubectl_ok({"get", "configmap", "dep2", "-o", "jsonpath={.metadata.ownerReferences}"}).empty());

  // Through the controllers: a Deployment's ReplicaSets and pods go with it.
  ks.kubectl_ok({"create", "deployment", "web", "--image=nginx:1.25"});
  REQUIRE(wait_until([&] { return !ks.kubectl_ok({"get", "pods", "-o", "name"}).empty(); }));
  ks.kubectl_ok({"delete", "deployment", "web"});
  CHECK(wait_until([&] {
    return ks.kubectl_ok({"get", "replicasets", "-o", "name"}).empty() && ks.kubectl_ok({"get", "pods", "-o", "name"}).empty();
  }));
}

TEST_CASE("bad input gets the Status a real server sends and kubesim keeps serving") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  auto malformed = call(ks, "POST", "/api/v1/namespaces/default/configmaps", "{\"metadata\": ");
  CHECK(malformed.status == 400);
  CHECK(str_at(malformed.json(), {"kind"}) == "Status");
  CHECK(str_at(malformed.json(), {"reason"}) == "BadRequest");

  auto yaml = call(ks, "POST", "/api/v1/namespaces/default/configmaps", "metadata: [unclosed\n",
                   {.headers = {{"Content-Type", "application/yaml"}}});
  CHECK(yaml.status == 400);
  CHECK(str_at(yaml.json(), {"reason"}) == "BadRequest");
  auto good_yaml = call(ks, "POST", "/api/v1/namespaces/default/configmaps",
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  n: \"1\"\n",
                        {.headers = {{"Content-Type", "application/yaml"}}});
  CHECK(good_yaml.status == 201);

  auto unknown = call(ks, "GET", "/apis/apps/v1/namespaces/default/widgets");
  CHECK(unknown.status == 404);
  CHECK(str_at(unknown.json(), {"reason"}) == "NotFound");
  auto kunknown = ks.kubectl({"get", "widgets"});
  CHECK(kunknown.exit_code != 0);
  CHECK(kunknown.err.find("the server doesn't have a resource type \"widgets\"") != std::string::npos);

  auto selector = call(ks, "GET", "/api/v1/pods?labelSelector=a%20in%20(b");
  CHECK(selector.status == 400);
  CHECK(str_at(selector.json(), {"reason"}) == "BadRequest");
  auto field = call(ks, "GET", "/api/v1/configmaps?fieldSelector=spec.bogus%3Dx");
  CHECK(field.status == 400);
  CHECK(str_at(field.json(), {"message"}).find("field label not supported") != std::string::npos);
  auto kselector = ks.kubectl({"get", "pods", "-l", "a in (b"});
  CHECK(kselector.exit_code != 0);

  std::string big = R"({"metadata":{"name":"big"},"data":{"a":")" + std::string(4u << 20, 'x') + "\"}}";
  auto large = call(ks, "POST", "/api/v1/namespaces/default/configmaps", big);
  CHECK(large.status == 413);
  CHECK(str_at(large.json(), {"reason"}) == "RequestEntityTooLarge");

  auto kind = call(ks, "POST", "/api/v1/namespaces/default/configmaps",
                   R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}})");
  CHECK(kind.status == 400);
  auto invalid = call(ks, "POST", "/api/v1/namespaces/default/configmaps", configmap("Not_A_Name"));
  CHECK(invalid.status == 422);
  CHECK(str_at(invalid.json(), {"reason"}) == "Invalid");
  auto method = call(ks, "POST", "/api/v1/namespaces/default/configmaps/x");
  CHECK(method.status == 405);
  auto patch_type = call(ks, "PATCH", "/api/v1/namespaces/default/configmaps/from-yaml", "{}",
                         {.headers = {{"Content-Type", "text/plain"}}});
  CHECK(patch_type.status == 415);
  auto bad_json_patch = call(ks, "PATCH", "/api/v1/namespaces/default/configmaps/from-yaml", R"({"op":"add"})",
                             {.headers = {{"Content-Type", "application/json-patch+json"}}});
  CHECK(bad_json_patch.status == 400);
  auto policy = call(ks, "DELETE", "/api/v1/namespaces/default/configmaps/from-yaml?propagationPolicy=Sideways");
  CHECK(policy.status == 422);
  auto rv = call(ks, "GET", "/api/v1/configmaps?watch=1&resourceVersion=abc");
  CHECK(rv.status == 400);
  auto garbage = call(ks, "GET", "/api/v1/configmaps?limit=2&continue=%21%21%21");
  CHECK(garbage.status == 400);

  CHECK(call(ks, "GET", "/healthz").body == "ok");
  CHECK(ks.process().running());
}

TEST_CASE("discovery, version and openapi answer as kubectl expects") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  auto v = call(ks, "GET", "/version");
  CHECK(str_at(v.json(), {"gitVersion"}).starts_with("v1."));
  auto apis = call(ks, "GET", "/apis");
  CHECK(str_at(apis.json(), {"kind"}) == "APIGroupList");
  auto apps = call(ks, "GET", "/apis/apps/v1");
  CHECK(apps.body.find("\"deployments/scale\"") != std::string::npos);
  auto core = call(ks, "GET", "/api/v1");
  CHECK(core.body.find("\"shortNames\":[\"svc\"]") != std::string::npos);
  auto openapi = call(ks, "GET", "/openapi/v2");
  CHECK(openapi.status == 200);
  CHECK(openapi.body.empty());
  CHECK(ks.kubectl_ok({"api-resources"}).find("horizontalpodautoscalers") != std::string::npos);
  CHECK(ks.kubectl_ok({"api-versions"}).find("coordination.k8s.io/v1") != std::string::npos);
  // Paging.
  for (int i = 0; i < 5; ++i) REQUIRE(call(ks, "POST", "/api/v1/namespaces/default/configmaps", configmap("p" + std::to_string(i))).status == 201);
  auto page = call(ks, "GET", "/api/v1/namespaces/default/configmaps?limit=2");
  CHECK(page.json().at("items").as_array().size() == 2);
  auto token = str_at(page.json(), {"metadata", "continue"});
  REQUIRE_FALSE(token.empty());
  CHECK(str_at(page.json(), {"metadata", "remainingItemCount"}) == "3");
  auto next = call(ks, "GET", "/api/v1/namespaces/default/configmaps?limit=2&continue=" + http::percent_encode(token));
  CHECK(str_at(next.json(), {"items"}).find("p2") != std::string::npos);
  // deletecollection with a label selector answers the deleted objects.
  REQUIRE(call(ks, "POST", "/api/v1/namespaces/default/configmaps", R"({"metadata":{"name":"doomed","labels":{"x":"1"}}})").status == 201);
  auto dc = call(ks, "DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=x%3D1");
  CHECK(dc.status == 200);
  CHECK(dc.json().at("items").as_array().size() == 1);
  CHECK(call(ks, "GET", "/api/v1/namespaces/default/configmaps/doomed").status == 404);
  CHECK(call(ks, "GET", "/api/v1/namespaces/default/configmaps/p0").status == 200);
  // kubectl pages with --chunk-size.
  CHECK(ks.kubectl_ok({"get", "configmaps", "--chunk-size=2", "-o", "name"}).find("configmap/p4") != std::string::npos);
}

TEST_CASE("with --tls, kubectl uses the token; no or bad credentials get 401; client certificates work") {
  auto expired = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch()).count() - 60);
  kubesim_instance ks({.tls = true, .extra_args = {"--token", "ci:extra-token", "--token", "old:old-token:" + expired}});
  INFO("kubesim log:\n" << ks.log());
  CHECK(ks.api_url().starts_with("https://127.0.0.1:"));
  CHECK(ks.kubectl_ok({"get", "namespaces"}).find("kube-system") != std::string::npos);
  CHECK(ks.kubectl_ok({"--context", "kubesim-cert", "get", "namespaces"}).find("default") != std::string::npos);

  auto anonymous = call(ks, "GET", "/api/v1/namespaces");
  CHECK(anonymous.status == 401);
  CHECK(str_at(anonymous.json(), {"reason"}) == "Unauthorized");
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.token = "wrong"}).status == 401);
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.token = "old-token"}).status == 401);
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.token = "extra-token"}).status == 200);
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.token = kubeconfig_token(ks)}).status == 200);
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.client_cert = true}).status == 200);
  CHECK(call(ks, "GET", "/healthz").status == 200);
  // A token added through the admin endpoint works at once.
  CHECK(call(ks, "POST", "/kubesim/tokens", R"({"name":"late","token":"late-token"})", {.token = kubeconfig_token(ks)}).status == 201);
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.token = "late-token"}).status == 200);

  // kubectl with a kubeconfig whose token is wrong.
  auto text = read_file(ks.kubeconfig());
  auto token = kubeconfig_token(ks);
  REQUIRE_FALSE(token.empty());
  text.replace(text.find(token), token.size(), "not-the-token");
  auto bare = ks.dir() / "bad-kubeconfig";
  std::ofstream(bare) << text;
  auto r = run({"kubectl", "--kubeconfig", bare.string(), "get", "namespaces"}, 30s,
               {{"HOME", (ks.dir() / "home2").string()}});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("You must be logged in to the server") != std::string::npos);
}

TEST_CASE("fault injection: 500s, 429s with Retry-After, latency, cut watches, paused controllers; stats per client") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  // Faults aimed at one client leave the others alone.
  auto set = call(ks, "POST", "/kubesim/faults", R"({"error_rate":1,"user_agent":"victim"})");
  REQUIRE(set.status == 200);
  auto err = call(ks, "GET", "/api/v1/namespaces", {}, {.user_agent = "victim/1.0"});
  CHECK(err.status == 500);
  CHECK(str_at(err.json(), {"reason"}) == "InternalError");
  CHECK(call(ks, "GET", "/api/v1/namespaces").status == 200);
  REQUIRE(call(ks, "POST", "/kubesim/faults", R"({"error_rate":0,"throttle_rate":1,"retry_after_seconds":3})").status == 200);
  auto throttled = call(ks, "GET", "/api/v1/namespaces", {}, {.user_agent = "victim/1.0"});
  CHECK(throttled.status == 429);
  CHECK(throttled.header("Retry-After") == "3");
  CHECK(str_at(throttled.json(), {"details", "retryAfterSeconds"}) == "3");
  REQUIRE(call(ks, "POST", "/kubesim/faults", R"({"throttle_rate":0,"latency_ms":300})").status == 200);
  auto start = std::chrono::steady_clock::now();
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.user_agent = "victim/1.0"}).status == 200);
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  auto settings = call(ks, "GET", "/kubesim/faults");
  CHECK(str_at(settings.json(), {"latency_ms"}) == "300");
  REQUIRE(call(ks, "POST", "/kubesim/faults", R"({"latency_ms":0,"user_agent":""})").status == 200);
  CHECK(call(ks, "POST", "/kubesim/faults", R"({"error_rate":2})").status == 400);

  // drop_watches cuts an open watch.
  auto rv = str_at(call(ks, "GET", "/api/v1/configmaps").json(), {"metadata", "resourceVersion"});
  auto cut = watch(ks, "/api/v1/configmaps?watch=1&resourceVersion=" + rv, 10, 10s,
                   std::pair<std::string, std::string>{"/kubesim/faults", R"({"drop_watches":true})"});
  CHECK(cut.status == 200);
  CHECK(cut.closed_by_server);

  // Paused controllers leave a new Deployment without ReplicaSets until resumed.
  REQUIRE(call(ks, "POST", "/kubesim/faults", R"({"pause_controllers":true})").status == 200);
  ks.kubectl_ok({"create", "deployment", "frozen", "--image=nginx:1.25"});
  std::this_thread::sleep_for(700ms);
  CHECK(ks.kubectl_ok({"get", "replicasets", "-o", "name"}).empty());
  REQUIRE(call(ks, "POST", "/kubesim/faults", R"({"pause_controllers":false})").status == 200);
  CHECK(wait_until([&] { return !ks.kubectl_ok({"get", "replicasets", "-o", "name"}).empty(); }));

  // Stats count requests per client.
  auto stats = call(ks, "GET", "/kubesim/stats").json();
  CHECK(stats.at("by_client").as_object().contains("victim"));
  CHECK(stats.at("by_client").as_object().contains("kubectl"));
  CHECK(stats.at("by_verb").at("watch").to_number<int>() >= 1);
  CHECK(stats.at("by_code").as_object().contains("429"));
  CHECK(call(ks, "DELETE", "/kubesim/stats").status == 200);
  CHECK(str_at(call(ks, "GET", "/kubesim/stats").json(), {"total"}) == "1");
}

TEST_CASE("flags: faults from the command line, a request log, --help, and unknown flags exit 2") {
  temp_dir dir;
  auto log = dir.path() / "requests.jsonl";
  kubesim_instance ks({.extra_args = {"--request-log", log.string(), "--fault-throttle-rate", "1",
                                      "--fault-user-agent", "victim"}});
  INFO("kubesim log:\n" << ks.log());
  CHECK(call(ks, "GET", "/api/v1/namespaces", {}, {.user_agent = "victim/2"}).status == 429);
  CHECK(call(ks, "GET", "/api/v1/namespaces/default/configmaps").status == 200);
  std::ifstream f(log);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  REQUIRE(lines.size() >= 2);
  auto last = parse(lines.back());
  CHECK(str_at(last, {"verb"}) == "list");
  CHECK(str_at(last, {"path"}) == "/api/v1/namespaces/default/configmaps");
  CHECK(str_at(last, {"code"}) == "200");
  CHECK(str_at(last, {"user_agent"}) == "kubesim-api-test");

  auto bin = (build_root() / "sim" / "kubesim").string();
  auto bad = run({bin, "--no-such-flag"}, 10s);
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("unknown flag --no-such-flag") != std::string::npos);
  auto help = run({bin, "--help"}, 10s);
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--kubeconfig-out") != std::string::npos);
  auto bad_value = run({bin, "--fault-error-rate", "7"}, 10s);
  CHECK(bad_value.exit_code == 2);

  // SIGTERM: clean exit 0.
  ks.process().signal(SIGTERM);
  auto code = ks.process().wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}
