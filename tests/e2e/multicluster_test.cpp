// -kubeconfig-service-mesh end to end: two kubesims, the real canaryd and kubectl. Cluster A
// holds the Canary, the workloads and the Services; cluster B (the service mesh's control
// plane) holds the VirtualService and DestinationRules, as Flagger's router factory puts them
// (meshClient for the mesh routers, kubeClient for the rest). Both have Istio's CRDs, so "A has
// no VirtualService" is a real observation, not a missing resource type.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <optional>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// An istio Canary without metrics: each 1 s interval moves the weight by 20 up to 60, then
// promotes.
std::string istio_canary() {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: podinfo\n"
         "  namespace: demo\n"
         "spec:\n"
         "  provider: istio\n"
         "  targetRef:\n"
         "    apiVersion: apps/v1\n"
         "    kind: Deployment\n"
         "    name: podinfo\n"
         "  service:\n"
         "    port: 9898\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: 2\n"
         "    maxWeight: 60\n"
         "    stepWeight: 20\n";
}

void setup_mesh_cluster(const kubesim_instance& mesh) {
  mesh.kubectl_ok({"create", "namespace", "demo"});
  REQUIRE(install_published_crds(mesh, "istio"));
}

// The canary weight of the VirtualService's first route on `sim` (-1 when absent).
int canary_weight(const kubesim_instance& sim) {
  auto vs = get_json(sim, {"virtualservice", "podinfo"});
  if (vs.is_null()) return -1;
  const json::value* http = vs.at_pointer("/spec").as_object().if_contains("http");
  if (!http || !http->is_array() || http->as_array().empty()) return -1;
  for (const auto& d : http->as_array()[0].at("route").as_array()) {
    if (str_at(d, {"destination", "host"}) != "podinfo-canary") continue;
    const auto* w = d.as_object().if_contains("weight");
    return w ? static_cast<int>(w->to_number<std::int64_t>()) : 0;
  }
  return -1;
}

bool has_owner_references(const json::value& o) {
  const auto* meta = o.as_object().if_contains("metadata");
  return meta && meta->is_object() && meta->as_object().contains("ownerReferences");
}

std::string names(const json::value& list) {
  std::string out;
  for (const auto& item : list.at("items").as_array()) out += str_at(item, {"metadata", "name"}) + " ";
  return out;
}

}  // namespace

TEST_CASE("with -kubeconfig-service-mesh the VirtualService and DestinationRules live on the mesh cluster, "
          "the weights shift there and the promotion completes") {
  kubesim_instance main_cluster;
  kubesim_instance mesh_cluster;
  setup_cluster(main_cluster);
  REQUIRE(install_published_crds(main_cluster, "istio"));
  setup_mesh_cluster(mesh_cluster);

  auto d = start_canaryd(main_cluster, {"-mesh-provider", "istio", "-kubeconfig-service-mesh",
                                        mesh_cluster.kubeconfig().string()});
  // (logged before the caches synced, so among the lines start_canaryd read)
  CHECK(std::any_of(d.proc->lines().begin(), d.proc->lines().end(), [&](const std::string& l) {
    return l.find("service mesh objects are on their own cluster") != std::string::npos &&
           l.find(mesh_cluster.api_url()) != std::string::npos;
  }));
  init_podinfo(main_cluster, istio_canary());

  // The mesh objects on B, without ownerReferences (no Canary exists there to own them) ...
  auto vs = get_json(mesh_cluster, {"virtualservice", "podinfo"});
  REQUIRE_MESSAGE(!vs.is_null(), "no VirtualService on the mesh cluster; events:\n"
                                     << dump(canary_events(main_cluster, "podinfo")));
  CHECK_FALSE(has_owner_references(vs));
  CHECK(canary_weight(mesh_cluster) == 0);
  auto drs = get_json(mesh_cluster, {"destinationrules"});
  REQUIRE(!drs.is_null());
  CHECK(names(drs) == "podinfo-canary podinfo-primary ");
  for (const auto& dr : drs.at("items").as_array()) CHECK_FALSE(has_owner_references(dr));

  // ... and none on A, where the Services and workloads are (and none of those on B).
  auto main_vs = get_json(main_cluster, {"virtualservices"});
  REQUIRE(!main_vs.is_null());
  CHECK(main_vs.at("items").as_array().empty());
  auto main_drs = get_json(main_cluster, {"destinationrules"});
  REQUIRE(!main_drs.is_null());
  CHECK(main_drs.at("items").as_array().empty());
  CHECK(names(get_json(main_cluster, {"services"})) == "podinfo podinfo-canary podinfo-primary ");
  CHECK(names(get_json(mesh_cluster, {"services"})).empty());
  CHECK(names(get_json(mesh_cluster, {"deployments"})).empty());

  // A release on A: the weights move on B, step by step, and the promotion completes.
  release(main_cluster, "6.0.1");
  std::vector<int> seen;
  const bool succeeded = eventually(
      [&] {
        const int w = canary_weight(mesh_cluster);
        if (w >= 0 && (seen.empty() || seen.back() != w)) seen.push_back(w);
        return phase_of(main_cluster, "podinfo") == "Succeeded";
      },
      60s);
  std::string trail;
  for (int w : seen) trail += std::to_string(w) + " ";
  REQUIRE_MESSAGE(succeeded, "weights seen on the mesh cluster: " << trail << "\nevents:\n"
                                                                  << dump(canary_events(main_cluster, "podinfo")));
  REQUIRE(!seen.empty());
  // kubectl polls more slowly than the 1 s steps, so not every step is seen; those seen are the
  // steps of 20 up to maxWeight 60, rising, then 0 after the promotion.
  CHECK_MESSAGE(std::any_of(seen.begin(), seen.end(), [](int w) { return w > 0; }), trail);
  CHECK_MESSAGE(std::all_of(seen.begin(), seen.end(), [](int w) { return w % 20 == 0 && w <= 60; }), trail);
  CHECK_MESSAGE(std::is_sorted(seen.begin(), seen.end() - 1), trail);
  CHECK(canary_weight(mesh_cluster) == 0);
  CHECK(image_of(main_cluster, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(get_json(main_cluster, {"virtualservices"}).at("items").as_array().empty());
}

TEST_CASE("a mesh cluster that does not answer at start ends canaryd with a message naming it") {
  kubesim_instance main_cluster;
  setup_cluster(main_cluster);
  // The mesh kubeconfig: kubesim's own, pointed at a port where nothing listens.
  temp_dir dir;
  std::string text = read_text(main_cluster.kubeconfig());
  const std::string down = "http://127.0.0.1:" + std::to_string(free_port());
  const auto at = text.find(main_cluster.api_url());
  REQUIRE(at != std::string::npos);
  text.replace(at, main_cluster.api_url().size(), down);
  const auto mesh_kubeconfig = dir.path() / "mesh.kubeconfig";
  std::ofstream(mesh_kubeconfig) << text;

  child proc({canaryd_path(), "-listen-address=127.0.0.1", "-port", std::to_string(free_port()), "-kubeconfig",
              main_cluster.kubeconfig().string(), "-mesh-provider", "istio", "-kubeconfig-service-mesh",
              mesh_kubeconfig.string()});
  auto line = proc.wait_for_line("cannot reach the service mesh cluster", 40s);
  REQUIRE_MESSAGE(line, "canaryd's output ended with: " << (proc.lines().empty() ? "" : proc.lines().back()));
  CHECK(line->find(down) != std::string::npos);
  CHECK(line->find(mesh_kubeconfig.string()) != std::string::npos);
  CHECK(proc.wait(10s) == std::optional<int>(1));
  // Nothing was created on the main cluster before it ended.
  CHECK(names(get_json(main_cluster, {"services"})).empty());
}

TEST_CASE("an unreadable -kubeconfig-service-mesh is refused before canaryd serves anything") {
  kubesim_instance main_cluster;
  auto r = run({canaryd_path(), "-listen-address=127.0.0.1", "-port", std::to_string(free_port()), "-kubeconfig",
                main_cluster.kubeconfig().string(), "-kubeconfig-service-mesh", "/nonexistent/mesh.kubeconfig"},
               20s);
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE((r.out + r.err).find("-kubeconfig-service-mesh") != std::string::npos, r.out << r.err);
}
