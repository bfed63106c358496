// Providers canaryd has no router for, end to end: the real canaryd, kubesim and kubectl. A
// Canary naming one (in spec.provider, or through the -mesh-provider default) is refused with
// Promoted=False and a Warning Event naming the provider, and nothing in the namespace changes:
// the target keeps its replicas, the user's apex Service stays as it was, and no primary,
// Service or route object appears. Checked object by object against a snapshot taken first.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <map>
#include <thread>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// The Service the user already has in front of podinfo (the apex a Canary would take over).
const char* const apex_service = R"(apiVersion: v1
kind: Service
metadata:
  name: podinfo
  namespace: demo
  labels:
    owner: user
spec:
  selector:
    app: podinfo
  ports:
  - name: http
    port: 9898
    targetPort: http
)";

std::string canary_with(const std::string& name, const std::string& provider) {
  return "apiVersion: flagger.app/v1beta1\n"
         "kind: Canary\n"
         "metadata:\n"
         "  name: " + name + "\n"
         "  namespace: demo\n"
         "spec:\n" +
         (provider.empty() ? std::string() : "  provider: \"" + provider + "\"\n") +
         "  targetRef:\n"
         "    apiVersion: apps/v1\n"
         "    kind: Deployment\n"
         "    name: podinfo\n"
         "  service:\n"
         "    port: 9898\n"
         "  analysis:\n"
         "    interval: 1s\n"
         "    threshold: 2\n"
         "    maxWeight: 50\n"
         "    stepWeight: 10\n";
}

// Every object of the kinds a Canary could create or change in namespace demo, by kind/name:
// the whole object as the API server returns it (resourceVersion included, so any write shows).
std::map<std::string, json::value> snapshot(const kubesim_instance& sim) {
  std::map<std::string, json::value> out;
  auto list = get_json(sim, {"deployments,services,configmaps,secrets,horizontalpodautoscalers"});
  REQUIRE(!list.is_null());
  for (const auto& item : list.at("items").as_array()) {
    out[str_at(item, {"kind"}) + "/" + str_at(item, {"metadata", "name"})] = item;
  }
  return out;
}

void check_unchanged(const std::map<std::string, json::value>& before, const std::map<std::string, json::value>& after) {
  for (const auto& [key, obj] : before) {
    CAPTURE(key);
    auto it = after.find(key);
    REQUIRE_MESSAGE(it != after.end(), key << " was deleted");
    CHECK_MESSAGE(it->second == obj, key << " changed:\nbefore " << json::serialize(obj) << "\nafter  "
                                         << json::serialize(it->second));
  }
  for (const auto& [key, obj] : after) {
    CHECK_MESSAGE(before.contains(key), key << " was created: " << json::serialize(obj));
  }
}

// Waits for the refusal on `canary`: Promoted=False with a message and a Warning Event, both
// naming `provider`, and no phase.
void expect_refused(const kubesim_instance& sim, const std::string& canary, const std::string& provider) {
  CAPTURE(canary);
  CAPTURE(provider);
  const std::string named = "\"" + provider + "\"";
  std::string message;
  bool refused = eventually(
      [&] {
        auto v = get_json(sim, {"canary", canary});
        if (v.is_null()) return false;
        boost::system::error_code ec;
        auto* cond = v.find_pointer("/status/conditions/0", ec);
        if (!cond) return false;
        message = str_at(*cond, {"message"});
        return str_at(*cond, {"type"}) == "Promoted" && str_at(*cond, {"status"}) == "False" &&
               str_at(*cond, {"reason"}) == "InvalidSpec";
      },
      20s);
  auto evs = canary_events(sim, canary);
  REQUIRE_MESSAGE(refused, "no Promoted=False on " << canary << "; events:\n" << dump(evs));
  CHECK_MESSAGE(message.find("spec.provider") != std::string::npos, message);
  CHECK_MESSAGE(message.find(named) != std::string::npos, message);
  CHECK(eventually([&] { return has_event(canary_events(sim, canary), "Warning", named); }, 10s));
  CHECK(phase_of(sim, canary).empty());
  // No finalizer either: nothing was handed to canaryd to restore.
  CHECK(str_at(get_json(sim, {"canary", canary}), {"metadata", "finalizers"}).empty());
}

void setup_podinfo(const kubesim_instance& sim) {
  setup_cluster(sim);
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, podinfo_yaml());
  sim.kubectl_ok({"apply", "-f", "-"}, apex_service);
  REQUIRE(eventually([&] { return str_at(get_json(sim, {"deployment", "podinfo"}), {"status", "readyReplicas"}) != ""; },
                     20s));
}

}  // namespace

TEST_CASE("Canaries naming a provider without a router are refused and touch nothing") {
  kubesim_instance sim;
  setup_podinfo(sim);
  auto d = start_canaryd(sim, {"-mesh-provider", "kubernetes"});
  const auto before = snapshot(sim);
  const auto replicas = replicas_of(sim, "podinfo");
  REQUIRE(replicas > 0);

  // Every enum value of Flagger's CRD that canaryd cannot route yet.
  const std::vector<std::string> providers{"linkerd", "smi:v1alpha1", "smi:v1alpha2", "smi:v1alpha3", "osm",
                                           "appmesh", "appmesh:v1beta2", "contour", "gloo", "nginx", "skipper",
                                           "traefik", "apisix", "kuma"};
  for (std::size_t i = 0; i < providers.size(); ++i) {
    sim.kubectl_ok({"apply", "-f", "-"}, canary_with("c" + std::to_string(i), providers[i]));
  }
  for (std::size_t i = 0; i < providers.size(); ++i) expect_refused(sim, "c" + std::to_string(i), providers[i]);
  // Several analysis intervals more: still nothing.
  std::this_thread::sleep_for(3s);
  check_unchanged(before, snapshot(sim));
  CHECK(replicas_of(sim, "podinfo") == replicas);
  CHECK(str_at(get_json(sim, {"service", "podinfo"}), {"metadata", "labels", "owner"}) == "user");
}

// An unknown string in spec.provider never reaches canaryd: the Canary CRD's enum makes the API
// server refuse it. It can come through the -mesh-provider default.
TEST_CASE("an unknown -mesh-provider default is refused, not sent to Istio as Flagger does") {
  kubesim_instance sim;
  setup_podinfo(sim);
  auto d = start_canaryd(sim, {"-mesh-provider", "nosuch"});
  const auto before = snapshot(sim);
  sim.kubectl_ok({"apply", "-f", "-"}, canary_with("podinfo", ""));
  expect_refused(sim, "podinfo", "nosuch");
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Warning", "unknown provider \"nosuch\""), dump(evs));
  std::this_thread::sleep_for(3s);
  check_unchanged(before, snapshot(sim));

  // Fixing the Canary (a provider with a router) lets it initialize as usual.
  sim.kubectl_ok({"apply", "-f", "-"}, canary_with("podinfo", "kubernetes"));
  CHECK_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s), dump(canary_events(sim, "podinfo")));
}
