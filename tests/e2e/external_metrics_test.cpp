// The externalmetrics provider end to end: kubesim serves external.metrics.k8s.io/v1beta1 (values
// from labelled ConfigMaps, docs/kubesim.md), real kubectl reads it with `get --raw`, and the real
// canaryd queries it through its Kubernetes API client as Flagger's provider does. A good value
// promotes; a bad one rolls back; a missing metric and a broken adapter fail the checks with an
// Event; a template written with Go's template language (variables, if/else, printf) renders
// the exact request kubesim logs; a template's address and secret token replace canaryd's own
// cluster credentials.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <sstream>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// One value of an external metric, as kubesim reads it: a ConfigMap labelled with the metric's name.
std::string metric_value(const std::string& name, const std::string& metric, const std::string& labels,
                         const std::string& value) {
  return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: demo\n  labels:\n"
         "    kubesim.dev/external-metric: " + metric + "\n" + labels + "data:\n  value: \"" + value + "\"\n";
}

std::string template_yaml(const std::string& name, const std::string& query, const std::string& provider_extra = {}) {
  return "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: " + name +
         "\n  namespace: demo\nspec:\n  provider:\n    type: externalmetrics\n" + provider_extra + "  query: |\n    " +
         replaced(query, "\n", "\n    ") + "\n";
}

std::vector<json::value> read_log(const std::filesystem::path& p) {
  std::vector<json::value> out;
  std::istringstream in(read_text(p));
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(json::parse(l));
  return out;
}

}  // namespace

TEST_CASE("externalmetrics templates read the External Metrics API kubesim serves: good promotes, bad rolls back, missing fails with an Event") {
  temp_dir dir;
  const auto requests = dir.path() / "requests.jsonl";
  // TLS and tokens: canaryd authenticates with its kubeconfig, the ext-token template with the
  // token in its secret (a different user in kubesim's request log).
  kubesim_instance sim({.tls = true,
                        .prometheus = false,
                        .extra_args = {"--request-log", requests.string(), "--token", "metrics-reader:ext-tok-5e1f"}});
  setup_cluster(sim);

  // Values: errors{app=...} for four canaries, errors_total{app,window} for the template-language
  // one, and a broken one (an adapter that fails).
  std::string manifests;
  manifests += "---\n" + metric_value("errors-good", "errors", "    app: ext-good\n", "500m");
  manifests += "---\n" + metric_value("errors-bad", "errors", "    app: ext-bad\n", "5");
  manifests += "---\n" + metric_value("errors-token", "errors", "    app: ext-token\n", "0.25");
  manifests += "---\n" + metric_value("errors-other", "errors", "    app: someone-else\n", "99");
  manifests += "---\n" + metric_value("errors-tmpl", "errors_total", "    app: ext-tmpl\n    window: 30s\n", "1e-1");
  manifests += "---\n" + metric_value("broken-value", "broken", "    app: ext-broken\n", "lots");
  sim.kubectl_ok({"apply", "-f", "-"}, manifests);

  // Real kubectl reads the API: discovery lists the group, and the list endpoint selects by label.
  CHECK(sim.kubectl_ok({"api-versions"}).find("external.metrics.k8s.io/v1beta1") != std::string::npos);
  auto listed = json::parse(
      sim.kubectl_ok({"get", "--raw", "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/errors?labelSelector=app%3Dext-good"}));
  CHECK(str_at(listed, {"kind"}) == "ExternalMetricValueList");
  REQUIRE(listed.at("items").as_array().size() == 1);
  CHECK(str_at(listed.at("items").as_array()[0], {"value"}) == "500m");
  CHECK(str_at(listed.at("items").as_array()[0], {"metricLabels", "app"}) == "ext-good");
  auto all = json::parse(sim.kubectl_ok({"get", "--raw", "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/errors"}));
  CHECK(all.at("items").as_array().size() == 4);
  auto none = json::parse(sim.kubectl_ok({"get", "--raw", "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/absent"}));
  CHECK(none.at("items").as_array().empty());
  auto resources = json::parse(sim.kubectl_ok({"get", "--raw", "/apis/external.metrics.k8s.io/v1beta1"}));
  CHECK(json::serialize(resources).find("\"name\":\"errors_total\"") != std::string::npos);

  sim.kubectl_ok({"-n", "demo", "create", "secret", "generic", "metrics-token", "--from-literal=token=ext-tok-5e1f"});
  // The template-language case: a variable, if/else, printf and a pipeline, rendered by
  // core/go_template; kubesim's request log must show exactly
  // demo/errors_total?labelSelector=app%3Dext-tmpl%2Cwindow%3D30s.
  const std::string tmpl_query =
      "{{- $ns := namespace -}}\n"
      "{{- $sel := printf \"app=%s,window=%s\" target interval -}}\n"
      "{{- if eq $ns \"demo\" }}{{ $ns }}{{ else }}default{{ end -}}\n"
      "/{{ printf \"%s_%s\" \"errors\" \"total\" }}?labelSelector={{ $sel | urlquery }}";
  struct ext_case {
    std::string name, query, provider_extra, want;
  };
  const std::vector<ext_case> cases = {
      {"ext-good", "demo/errors?labelSelector=app%3D{{ target }}", "", "Succeeded"},
      {"ext-bad", "demo/errors?labelSelector=app%3D{{ target }}", "", "Failed"},
      {"ext-missing", "demo/absent?labelSelector=app%3D{{ target }}", "", "Failed"},
      {"ext-broken", "demo/broken", "", "Failed"},
      {"ext-tmpl", tmpl_query, "", "Succeeded"},
      {"ext-token", "{{ namespace }}/errors?labelSelector=app%3D{{ target }}",
       "    address: " + sim.api_url() + "\n    insecureSkipVerify: true\n    secretRef:\n      name: metrics-token\n",
       "Succeeded"},
  };
  manifests.clear();
  for (const auto& c : cases) {
    manifests += "---\n" + template_yaml(c.name, c.query, c.provider_extra);
    manifests += "---\n" + metric_target_yaml(c.name);
  }
  sim.kubectl_ok({"apply", "-f", "-"}, manifests);
  auto d = start_canaryd(sim);
  std::string canaries;
  for (const auto& c : cases) {
    canaries += "---\n" + canary_yaml(c.name, c.name,
                                      "    metrics:\n"
                                      "    - name: errors\n"
                                      "      templateRef:\n"
                                      "        name: " + c.name + "\n"
                                      "      thresholdRange:\n"
                                      "        max: 1\n"
                                      "      interval: 30s\n");
  }
  sim.kubectl_ok({"apply", "-f", "-"}, canaries);
  for (const auto& c : cases) REQUIRE_MESSAGE(wait_phase(sim, c.name, "Initialized", 30s), dump(canary_events(sim, c.name)));
  std::vector<std::string> set_image{"-n", "demo", "set", "image"};
  for (const auto& c : cases) set_image.push_back("deployment/" + c.name);
  set_image.push_back("podinfod=ghcr.io/stefanprodan/podinfo:6.0.1");
  sim.kubectl_ok(set_image);

  for (const auto& c : cases) {
    bool ended = wait_phase(sim, c.name, c.want, 40s);
    auto evs = canary_events(sim, c.name);
    INFO(c.name << " phase " << phase_of(sim, c.name) << " events:\n" << dump(evs));
    CHECK(ended);
    const std::string tmpl = "(externalmetrics provider, metric template " + c.name + ".demo)";
    CHECK(lacks_event(evs, "Warning", "Error checking metric providers"));
    if (c.want == "Succeeded") {
      CHECK(has_event(evs, "Normal", "Advance " + c.name + ".demo canary iteration 3/3"));
      CHECK(lacks_event(evs, "Warning", "Halt"));
      CHECK(image_of(sim, c.name + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
      continue;
    }
    CHECK(image_of(sim, c.name + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
    CHECK(has_event(evs, "Warning", "Rolling back " + c.name + ".demo failed checks threshold reached 2"));
    if (c.name == "ext-bad") CHECK(has_event(evs, "Warning", "Halt ext-bad.demo advancement errors 5.00 > 1"));
    if (c.name == "ext-missing") {
      CHECK(has_event(evs, "Warning", "Halt advancement no values found for custom metric: errors: "));
      CHECK(has_event(evs, "Warning", "no external metrics found: no values found " + tmpl));
    }
    if (c.name == "ext-broken") {
      CHECK(has_event(evs, "Warning", "Metric query failed for errors: error querying external metrics API: "));
      CHECK(has_event(evs, "Warning", "ConfigMap demo/broken-value: value \"lots\" is not a quantity"));
    }
  }

  // The requests canaryd sent, from kubesim's log: each case's exact target, by whom.
  std::map<std::string, int> seen;
  for (const auto& r : read_log(requests)) {
    const std::string path(r.at("path").as_string());
    if (path.rfind("/apis/external.metrics.k8s.io/", 0) != 0) continue;
    const std::string query(r.at("query").as_string());
    const std::string user(r.at("user").as_string());
    const std::string agent(r.at("user_agent").as_string());
    if (agent.rfind("canaryd", 0) != 0) continue;  // kubectl's own reads above
    INFO(json::serialize(r));
    CHECK(r.at("method").as_string() == "GET");
    if (path == "/apis/external.metrics.k8s.io/v1beta1/namespaces/kube-system/dummy-metric") {
      ++seen["online"];  // IsOnline, as Flagger asks it
      continue;
    }
    if (path == "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/errors_total") {
      CHECK(query == "labelSelector=app%3Dext-tmpl%2Cwindow%3D30s");
      ++seen["tmpl"];
    }
    if (query == "labelSelector=app%3Dext-token") {
      CHECK(user == "metrics-reader");
      ++seen["token"];
    } else {
      CHECK(user != "metrics-reader");
    }
    if (path == "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/errors" && query == "labelSelector=app%3Dext-good")
      ++seen["good"];
  }
  for (const char* k : {"online", "tmpl", "token", "good"}) CHECK_MESSAGE(seen[k] >= 1, "no request seen: " << k);
  CHECK(seen["tmpl"] >= 3);

  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(10s);
  REQUIRE(code);
  CHECK(*code == 0);
}
