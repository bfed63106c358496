// kubesim's KEDA, in process: a real store with KEDA's published ScaledObject CRD, the workload
// controllers and the KEDA emulation on one io_context, and a loopback HTTP server answering
// Prometheus' /api/v1/query with a value the test sets (the e2e test uses a real Prometheus).
#include "sim/world/keda.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "k8s/http_server.hpp"
#include "sim/api/store.hpp"
#include "sim/api/yaml_json.hpp"
#include "sim/world/controllers.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
namespace asio = boost::asio;
namespace http = canaryd::http;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct world {
  asio::io_context ioc;
  std::unique_ptr<kubesim::store> st = kubesim::make_store();
  std::unique_ptr<kubesim::world::controllers> ctl;
  std::unique_ptr<kubesim::world::keda_operator> keda;
  std::unique_ptr<http::server> prometheus;
  std::string value = "12";  // what the fake Prometheus answers
  int queries = 0;
  std::string last_query;

  bool install_crd() {
    auto ref = canaryd::test::shared_reference();
    if (!ref) return false;
    auto crd = kubesim::yaml_to_json(read_file(*ref / "crds" / "keda" / "keda.sh_scaledobjects.yaml"));
    REQUIRE(crd.has_value());
    const auto* crds = st->find("apiextensions.k8s.io", "v1", "customresourcedefinitions");
    REQUIRE(crds != nullptr);
    REQUIRE(st->create(*crds, "", crd->as_object()).has_value());
    return st->find("keda.sh", "v1alpha1", "scaledobjects") != nullptr;
  }

  void start() {
    ctl = std::make_unique<kubesim::world::controllers>(ioc.get_executor(), *st);
    keda = kubesim::world::start_keda(ioc.get_executor(), *st);
    auto srv = http::start_server(ioc.get_executor(), http::server_options{},
                                  [this](const http::request& req, const http::peer_info&, http::responder& out) -> asio::awaitable<void> {
                                    ++queries;
                                    last_query = req.target;
                                    http::response res;
                                    res.body = R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,")" +
                                               value + R"("]}]}})";
                                    co_await out.send(std::move(res));
                                  });
    REQUIRE(srv.has_value());
    prometheus = std::move(*srv);
  }

  ~world() {
    if (keda) keda->stop();
    if (prometheus) prometheus->stop();
    ctl.reset();
    ioc.restart();
    ioc.run_for(100ms);
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 8s) {
    if (ioc.stopped()) ioc.restart();
    auto guard = asio::make_work_guard(ioc);
    const auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
      if (done()) return true;
      ioc.run_for(5ms);
    }
    return done();
  }

  kubesim::object_ptr get(std::string_view group, std::string_view version, std::string_view resource, std::string_view name) {
    const auto* r = st->find(group, version, resource);
    if (r == nullptr) return nullptr;
    auto o = st->get(*r, "demo", name);
    return o ? *o : nullptr;
  }
  std::int64_t replicas(std::string_view deployment) {
    auto d = get("apps", "v1", "deployments", deployment);
    if (!d) return -1;
    boost::system::error_code ec;
    json::value v = *d;
    auto* r = v.find_pointer("/spec/replicas", ec);
    return r && r->is_int64() ? r->as_int64() : -1;
  }
  std::string condition(std::string_view so, std::string_view type) {
    auto o = get("keda.sh", "v1alpha1", "scaledobjects", so);
    if (!o) return {};
    json::value v = *o;
    boost::system::error_code ec;
    auto* conds = v.find_pointer("/status/conditions", ec);
    if (!conds || !conds->is_array()) return {};
    for (const auto& c : conds->as_array()) {
      if (c.at("type").as_string() == type) return std::string(c.at("status").as_string());
    }
    return {};
  }
  void set_paused(std::optional<std::string> n) {
    const auto* r = st->find("keda.sh", "v1alpha1", "scaledobjects");
    auto o = st->get(*r, "demo", "app-so");
    REQUIRE(o.has_value());
    json::object so = **o;
    auto& meta = so["metadata"].as_object();
    if (!meta.contains("annotations")) meta["annotations"] = json::object{};
    if (n) {
      meta["annotations"].as_object()["autoscaling.keda.sh/paused-replicas"] = *n;
    } else {
      meta["annotations"].as_object().erase("autoscaling.keda.sh/paused-replicas");
    }
    REQUIRE(st->update(*r, "demo", "app-so", std::move(so), false).has_value());
  }
};

void create(kubesim::store& st, std::string_view group, std::string_view version, std::string_view resource, std::string_view yaml) {
  const auto* r = st.find(group, version, resource);
  REQUIRE(r != nullptr);
  auto v = kubesim::yaml_to_json(yaml);
  REQUIRE(v.has_value());
  auto res = st.create(*r, r->namespaced ? "demo" : "", v->as_object());
  REQUIRE_MESSAGE(res.has_value(), res.error().message);
}

const char* const deployment = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: app:1
)";

std::string scaled_object(const std::string& server, int min_count) {
  return "apiVersion: keda.sh/v1alpha1\n"
         "kind: ScaledObject\n"
         "metadata:\n"
         "  name: app-so\n"
         "spec:\n"
         "  scaleTargetRef: {name: app}\n"
         "  pollingInterval: 1\n"
         "  cooldownPeriod: 1\n"
         "  minReplicaCount: " + std::to_string(min_count) + "\n"
         "  maxReplicaCount: 4\n"
         "  triggers:\n"
         "  - type: prometheus\n"
         "    metadata:\n"
         "      serverAddress: http://" + server + "\n"
         "      query: sum(rate(requests{app=\"app\"}[1m]))\n"
         "      threshold: \"5\"\n";
}

}  // namespace

TEST_CASE("kubesim's KEDA makes the ScaledObject's HPA, scales the target by its Prometheus trigger and honours paused-replicas") {
  world w;
  if (!w.install_crd()) {
    MESSAGE("skipped: ../shared/reference/crds/keda is not available");
    return;
  }
  w.start();
  const auto* ns = w.st->find("", "v1", "namespaces");
  REQUIRE(w.st->create(*ns, "", json::parse(R"({"metadata":{"name":"demo"}})").as_object()).has_value());
  create(*w.st, "apps", "v1", "deployments", deployment);
  create(*w.st, "keda.sh", "v1alpha1", "scaledobjects", scaled_object(w.prometheus->local_address(), 1));

  // The HPA keda-hpa-<name>, controlled by the ScaledObject; the target at ceil(12 / 5) = 3.
  REQUIRE(w.run_until([&] { return w.get("autoscaling", "v2", "horizontalpodautoscalers", "keda-hpa-app-so") != nullptr; }));
  json::value hpa = *w.get("autoscaling", "v2", "horizontalpodautoscalers", "keda-hpa-app-so");
  CHECK(hpa.at("metadata").at("ownerReferences").at(0).at("kind") == "ScaledObject");
  CHECK(hpa.at("spec").at("scaleTargetRef").at("name") == "app");
  CHECK(hpa.at("spec").at("minReplicas") == 1);
  CHECK(hpa.at("spec").at("maxReplicas") == 4);
  CHECK(hpa.at("spec").at("metrics").at(0).at("external").at("metric").at("name") == "s0-prometheus");
  CHECK(hpa.at("spec").at("metrics").at(0).at("external").at("target").at("averageValue") == "5");
  CHECK(w.run_until([&] { return w.replicas("app") == 3; }));
  CHECK(w.last_query.find("/api/v1/query?query=sum%28rate%28requests%7Bapp%3D%22app%22%7D%5B1m%5D%29%29") == 0);
  CHECK(w.condition("app-so", "Ready") == "True");
  CHECK(w.condition("app-so", "Active") == "True");
  CHECK(w.condition("app-so", "Paused") == "False");

  // The metric rises: clamped to maxReplicaCount.
  w.value = "40";
  CHECK(w.run_until([&] { return w.replicas("app") == 4; }));

  // Paused at 0: the HPA goes, the target is pinned.
  w.set_paused("0");
  CHECK(w.run_until([&] { return w.replicas("app") == 0; }));
  CHECK(w.run_until([&] { return w.get("autoscaling", "v2", "horizontalpodautoscalers", "keda-hpa-app-so") == nullptr; }));
  CHECK(w.run_until([&] { return w.condition("app-so", "Paused") == "True"; }));
  const int before = w.queries;
  w.run_until([] { return false; }, 1500ms);
  CHECK(w.replicas("app") == 0);
  CHECK(w.queries == before);  // a paused ScaledObject's triggers are not polled

  // Resumed: the HPA is back and the target follows the trigger again.
  w.value = "7";
  w.set_paused(std::nullopt);
  CHECK(w.run_until([&] { return w.get("autoscaling", "v2", "horizontalpodautoscalers", "keda-hpa-app-so") != nullptr; }));
  CHECK(w.run_until([&] { return w.replicas("app") == 2; }));
  CHECK(w.run_until([&] { return w.condition("app-so", "Paused") == "False"; }));
}

TEST_CASE("with minReplicaCount 0 kubesim's KEDA scales an inactive target to zero after the cooldown and back when active") {
  world w;
  if (!w.install_crd()) {
    MESSAGE("skipped: ../shared/reference/crds/keda is not available");
    return;
  }
  w.start();
  const auto* ns = w.st->find("", "v1", "namespaces");
  REQUIRE(w.st->create(*ns, "", json::parse(R"({"metadata":{"name":"demo"}})").as_object()).has_value());
  create(*w.st, "apps", "v1", "deployments", deployment);
  w.value = "0";
  create(*w.st, "keda.sh", "v1alpha1", "scaledobjects", scaled_object(w.prometheus->local_address(), 0));
  CHECK(w.run_until([&] { return w.replicas("app") == 0; }));
  CHECK(w.condition("app-so", "Active") == "False");
  w.value = "9";
  CHECK(w.run_until([&] { return w.replicas("app") == 2; }));
  CHECK(w.run_until([&] { return w.condition("app-so", "Active") == "True"; }));
}
