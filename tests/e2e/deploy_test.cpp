// deploy/: our CRDs against Flagger's, the kustomization built and applied into kubesim with
// the real kubectl, printer columns, status round trips and Flagger's example Canaries.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "tests/core/yaml_to_json.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;

namespace {

std::vector<json::value> yaml_docs(const std::string& yaml) {
  std::vector<json::value> out;
  for (const auto& text : yaml_to_json(yaml)) {
    auto v = json::parse(text);
    if (v.is_object()) out.push_back(std::move(v));
  }
  return out;
}

std::vector<json::value> yaml_file_docs(const std::filesystem::path& p) {
  std::vector<json::value> out;
  for (const auto& text : yaml_file_to_json(p.string())) {
    auto v = json::parse(text);
    if (v.is_object()) out.push_back(std::move(v));
  }
  return out;
}

std::string kind_of(const json::value& v) {
  const auto* k = v.as_object().if_contains("kind");
  return k && k->is_string() ? std::string(k->as_string()) : std::string();
}

// Every field path of a schema: "Canary.spec.analysis.metrics[].name", maps as "{}".
void walk(const std::string& path, const json::object& schema, std::set<std::string>& out) {
  out.insert(path);
  if (const auto* props = schema.if_contains("properties"))
    for (const auto& [name, child] : props->as_object()) walk(path + "." + std::string(name), child.as_object(), out);
  if (const auto* items = schema.if_contains("items"); items && items->is_object())
    walk(path + "[]", items->as_object(), out);
  if (const auto* extra = schema.if_contains("additionalProperties"); extra && extra->is_object())
    walk(path + "{}", extra->as_object(), out);
}

struct crd_facts {
  std::set<std::string> paths;
  std::set<std::string> open;                   // paths with x-kubernetes-preserve-unknown-fields
  std::map<std::string, std::string> types;     // path -> type ("" for int-or-string)
  std::map<std::string, std::set<std::string>> enums;
};

void collect(const std::string& path, const json::object& s, crd_facts& f) {
  f.paths.insert(path);
  if (const auto* t = s.if_contains("type"); t && t->is_string()) f.types[path] = std::string(t->as_string());
  if (const auto* p = s.if_contains("x-kubernetes-preserve-unknown-fields"); p && p->is_bool() && p->as_bool())
    f.open.insert(path);
  if (const auto* e = s.if_contains("enum"))
    for (const auto& v : e->as_array()) f.enums[path].insert(json::serialize(v));
  if (const auto* props = s.if_contains("properties"))
    for (const auto& [name, child] : props->as_object()) collect(path + "." + std::string(name), child.as_object(), f);
  if (const auto* items = s.if_contains("items"); items && items->is_object()) collect(path + "[]", items->as_object(), f);
  if (const auto* extra = s.if_contains("additionalProperties"); extra && extra->is_object())
    collect(path + "{}", extra->as_object(), f);
}

crd_facts facts_of(const std::filesystem::path& file) {
  crd_facts f;
  for (const auto& d : yaml_file_docs(file)) {
    if (kind_of(d) != "CustomResourceDefinition") continue;
    auto kind = std::string(d.at("spec").at("names").at("kind").as_string());
    collect(kind, d.at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema").as_object(), f);
  }
  return f;
}

const json::object* find_doc(const std::vector<json::value>& docs, const std::string& kind, const std::string& name) {
  for (const auto& d : docs)
    if (kind_of(d) == kind && d.at("metadata").at("name").as_string() == name) return &d.as_object();
  return nullptr;
}

bool rbac_served(const kubesim_instance& ks) {
  auto r = ks.kubectl({"api-resources", "--api-group=rbac.authorization.k8s.io", "-o", "name"});
  return r.exit_code == 0 && r.out.find("clusterroles") != std::string::npos;
}

}  // namespace

TEST_CASE("the committed CRDs are what scripts/gen-crds makes of deploy/crds/fields.txt") {
  auto r = run({"python3", (source_root() / "scripts" / "gen-crds").string(), "--check"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
}

TEST_CASE("our CRDs have every field path of Flagger's, with its types, enums and open objects") {
  auto ref = shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  auto theirs = facts_of(*ref / "flagger" / "crd.yaml");
  auto ours = facts_of(source_root() / "deploy" / "crds" / "flagger.app.yaml");
  REQUIRE(theirs.paths.size() > 300);
  for (const auto& p : theirs.paths) {
    CAPTURE(p);
    CHECK(ours.paths.count(p) == 1);
    if (!ours.paths.count(p)) continue;
    CHECK(ours.types[p] == theirs.types[p]);
    if (theirs.enums.count(p)) {
      auto want = theirs.enums[p];
      // canaryd's own target kind (docs/targets.md): the one enum value Flagger's CRD lacks.
      if (p == "Canary.spec.targetRef.kind") want.insert("\"StatefulSet\"");
      CHECK(ours.enums[p] == want);
    }
    if (theirs.open.count(p)) CHECK(ours.open.count(p) == 1);
  }
  // The status fields canaryd writes are all declared, so kubesim (like a real API server) keeps them.
  for (auto p : {"Canary.status.phase", "Canary.status.failedChecks", "Canary.status.canaryWeight",
                 "Canary.status.iterations", "Canary.status.trackedConfigs{}", "Canary.status.lastAppliedSpec",
                 "Canary.status.lastPromotedSpec", "Canary.status.lastTransitionTime",
                 "Canary.status.sessionAffinityCookie", "Canary.status.previousSessionAffinityCookie",
                 "Canary.status.conditions[].lastUpdateTime", "Canary.status.conditions[].message"})
    CHECK(ours.paths.count(p) == 1);
}

TEST_CASE("kubectl kustomize builds deploy/ into CRDs, namespace, least-privilege RBAC, a hardened two-replica Deployment, its PDB and metrics Service") {
  kubesim_instance ks;  // kubectl's dispatcher asks a server for its version first
  auto out = ks.kubectl_ok({"kustomize", (source_root() / "deploy").string()});
  auto docs = yaml_docs(out);
  std::multiset<std::string> kinds;
  for (const auto& d : docs) kinds.insert(kind_of(d));
  CHECK(kinds.count("CustomResourceDefinition") == 3);
  for (auto k : {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
                 "PodDisruptionBudget", "Service"})
    CHECK(kinds.count(k) == 1);

  const auto* dep = find_doc(docs, "Deployment", "canaryd");
  REQUIRE(dep);
  CHECK(dep->at("metadata").at("namespace").as_string() == "canaryd");
  CHECK(dep->at("spec").at("replicas").as_int64() == 2);
  const auto& pod = dep->at("spec").at("template").at("spec");
  CHECK(pod.at("serviceAccountName").as_string() == "canaryd");
  CHECK(pod.at("securityContext").at("runAsNonRoot").as_bool());
  const auto& c = pod.at("containers").at(0);
  CHECK(c.at("image").as_string() == "canaryd:latest");
  CHECK(c.at("securityContext").at("readOnlyRootFilesystem").as_bool());
  CHECK(c.at("securityContext").at("runAsUser").as_int64() == 10001);
  CHECK_FALSE(c.at("securityContext").at("allowPrivilegeEscalation").as_bool());
  CHECK(c.at("livenessProbe").at("httpGet").at("path").as_string() == "/healthz");
  // A synced standby is ready (tests/e2e/rollout_test.cpp: the rolling update can proceed).
  CHECK(c.at("readinessProbe").at("httpGet").at("path").as_string() == "/readyz?standby=true");
  CHECK(c.at("ports").at(0).at("containerPort").as_int64() == 8080);
  CHECK(c.at("resources").at("requests").as_object().contains("memory"));
  std::vector<std::string> args;
  for (const auto& a : c.at("args").as_array()) args.emplace_back(a.as_string());
  CHECK(std::count(args.begin(), args.end(), "-enable-leader-election=true") == 1);
  // Flagger's default Lease namespace: canaryd and a leader-electing Flagger exclude each other.
  CHECK(std::count(args.begin(), args.end(), "-leader-election-namespace=kube-system") == 1);

  // canaryd's flags accept the Deployment's arguments (-help lists every flag it knows).
  auto help = run({(build_root() / "daemon" / "canaryd").string(), "-help"});
  for (const auto& a : args) {
    auto name = a.substr(1, a.find('=') - 1);
    CAPTURE(name);
    CHECK((help.out + help.err).find("-" + name) != std::string::npos);
  }

  // RBAC: no wildcards; status and finalizers of Canaries; Leases only in the Lease's namespace.
  const auto* role = find_doc(docs, "ClusterRole", "canaryd");
  REQUIRE(role);
  std::set<std::string> granted;
  for (const auto& rule : role->at("rules").as_array()) {
    for (const auto& g : rule.at("apiGroups").as_array())
      for (const auto& r : rule.at("resources").as_array()) {
        // External metrics are named by the user's MetricTemplates, so only that read-only group
        // is granted by wildcard (as Kubernetes' own HPA controller role is).
        if (g.as_string() != "external.metrics.k8s.io") CHECK(r.as_string() != "*");
        granted.insert(std::string(g.as_string()) + "/" + std::string(r.as_string()));
      }
    for (const auto& v : rule.at("verbs").as_array()) CHECK(v.as_string() != "*");
  }
  for (auto r : {"/events", "/configmaps", "/secrets", "/services", "apps/deployments", "apps/daemonsets", "apps/statefulsets",
                 "autoscaling/horizontalpodautoscalers", "networking.k8s.io/ingresses", "flagger.app/canaries",
                 "flagger.app/canaries/status", "flagger.app/canaries/finalizers", "flagger.app/metrictemplates",
                 "flagger.app/alertproviders", "networking.istio.io/virtualservices",
                 "networking.istio.io/destinationrules", "keda.sh/scaledobjects",
                 "serving.knative.dev/services", "gateway.networking.k8s.io/httproutes",
                 "metrics.keptn.sh/keptnmetrics", "metrics.keptn.sh/analyses", "external.metrics.k8s.io/*"})
    CHECK(granted.count(r) == 1);
  CHECK(granted.count("coordination.k8s.io/leases") == 0);
  const auto* lease_role = find_doc(docs, "Role", "canaryd-leader-election");
  REQUIRE(lease_role);
  CHECK(lease_role->at("metadata").at("namespace").as_string() == "kube-system");
  const auto* pdb = find_doc(docs, "PodDisruptionBudget", "canaryd");
  REQUIRE(pdb);
  CHECK(pdb->at("spec").at("minAvailable").as_int64() == 1);
}

TEST_CASE("deploy/ applies into kubesim and kubectl get canaries prints Status, Weight and LastTransitionTime") {
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  auto deploy_dir = source_root() / "deploy";
  REQUIRE(rbac_served(ks));
  auto out = ks.kubectl_ok({"apply", "-k", deploy_dir.string()});
  CHECK(out.find("customresourcedefinition.apiextensions.k8s.io/canaries.flagger.app created") != std::string::npos);
  CHECK(out.find("clusterrole.rbac.authorization.k8s.io/canaryd created") != std::string::npos);
  CHECK(out.find("deployment.apps/canaryd created") != std::string::npos);
  ks.kubectl_ok({"wait", "--for=condition=Established", "crd/canaries.flagger.app", "--timeout=20s"});
  CHECK(ks.kubectl_ok({"get", "deployment", "canaryd", "-n", "canaryd", "-o", "jsonpath={.spec.replicas}"}) == "2");

  ks.kubectl_ok({"create", "namespace", "demo"});
  ks.kubectl_ok({"apply", "-f", (deploy_dir / "examples" / "canary-kubernetes.yaml").string()});
  // Everything canaryd writes in status survives the schema (pruning would drop undeclared fields).
  const std::string status = R"({"status":{"phase":"Progressing","failedChecks":1,"canaryWeight":10,"iterations":2,)"
                             R"("lastAppliedSpec":"abc","lastPromotedSpec":"def","trackedConfigs":{"configmap/cfg":"123"},)"
                             R"("sessionAffinityCookie":"c1","previousSessionAffinityCookie":"c0",)"
                             R"("lastTransitionTime":"2026-01-02T03:04:05Z","conditions":[{"type":"Promoted",)"
                             R"("status":"Unknown","lastUpdateTime":"2026-01-02T03:04:05Z",)"
                             R"("lastTransitionTime":"2026-01-02T03:04:05Z","reason":"Progressing",)"
                             R"("message":"New revision detected, progressing canary analysis."}]}})";
  ks.kubectl_ok({"patch", "canary", "podinfo", "-n", "demo", "--subresource=status", "--type=merge", "-p", status});
  auto got = json::parse(ks.kubectl_ok({"get", "canary", "podinfo", "-n", "demo", "-o", "json"}));
  CHECK(got.at("status") == json::parse(status).at("status"));

  auto table = ks.kubectl_ok({"get", "canaries", "-n", "demo"});
  auto header = table.substr(0, table.find('\n'));
  for (auto col : {"NAME", "STATUS", "WEIGHT", "LASTTRANSITIONTIME"}) CHECK(header.find(col) != std::string::npos);
  auto row = table.substr(table.find('\n') + 1);
  CHECK(row.find("podinfo") == 0);
  CHECK(row.find("Progressing") != std::string::npos);
  CHECK(row.find("10") != std::string::npos);
  CHECK(row.find("2026-01-02T03:04:05Z") != std::string::npos);
  auto wide = ks.kubectl_ok({"get", "canaries", "-n", "demo", "-o", "wide"});
  for (auto col : {"SUSPENDED", "FAILEDCHECKS", "INTERVAL", "MIRROR", "STEPWEIGHT", "STEPWEIGHTS", "MAXWEIGHT"})
    CHECK(wide.find(col) != std::string::npos);
  CHECK(ks.kubectl_ok({"get", "metrictemplates", "-A"}).find("No resources") == std::string::npos);
}

TEST_CASE("Flagger's example Canaries apply against our CRDs and keep every field of their spec") {
  auto ref = shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  kubesim_instance ks;
  INFO("kubesim log:\n" << ks.log());
  ks.kubectl_ok({"apply", "-f", (source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
  ks.kubectl_ok({"wait", "--for=condition=Established", "crd/canaries.flagger.app", "--timeout=20s"});
  std::set<std::string> namespaces;
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(*ref / "flagger" / "examples")) {
    for (const auto& doc : yaml_file_docs(e.path())) {
      auto api = std::string(doc.at("apiVersion").as_string());
      if (api.find("flagger.app/") != 0) continue;
      CAPTURE(e.path().string());
      const auto& meta = doc.at("metadata").as_object();
      auto ns = meta.contains("namespace") ? std::string(meta.at("namespace").as_string()) : std::string("default");
      if (ns != "default" && namespaces.insert(ns).second) ks.kubectl_ok({"create", "namespace", ns});
      auto name = std::string(meta.at("name").as_string());
      // Fresh object per file: the examples share a name.
      ks.kubectl({"delete", kind_of(doc), name, "-n", ns, "--ignore-not-found"});
      ks.kubectl_ok({"apply", "-f", "-"}, json::serialize(doc));
      auto got = json::parse(ks.kubectl_ok({"get", kind_of(doc), name, "-n", ns, "-o", "json"}));
      CHECK(got.at("spec") == doc.at("spec"));
      ++checked;
    }
  }
  CHECK(checked >= 5);
}
