// The canary engine end to end: the real canaryd against the real kubesim, driven with the real
// kubectl, on Flagger's podinfo Deployment and a `provider: kubernetes` Canary (blue/green).
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <csignal>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

TEST_CASE("a kubernetes-provider canary initializes, then promotes a new image through its iterations") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);

  // Initialization: the primary, the three Services, the target scaled to zero.
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  for (std::string svc : {"podinfo", "podinfo-primary", "podinfo-canary"}) {
    auto v = get_json(sim, {"service", svc});
    CHECK_MESSAGE(!v.is_null(), "service " << svc << " missing");
  }
  auto apex = get_json(sim, {"service", "podinfo"});
  if (!apex.is_null()) CHECK(str_at(apex, {"spec", "selector", "app"}) == "podinfo-primary");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  auto c = get_json(sim, {"canary", "podinfo"});
  CHECK(str_at(c, {"status", "lastAppliedSpec"}) != "");
  CHECK(str_at(c, {"status", "lastTransitionTime"}) != "");
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Initialization done! podinfo.demo"), dump(evs));

  // A new revision runs the analysis and promotes.
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.1"});
  std::vector<std::string> seen;
  bool done = wait_phase(sim, "podinfo", "Succeeded", 60s, &seen);
  std::string seen_text;
  for (const auto& p : seen) seen_text += p + " ";
  evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(done, "phases seen: " << seen_text << "\nevents:\n" << dump(evs));
  INFO("phases seen: " << seen_text);
  // Phases go forward only, in Flagger's order.
  const std::vector<std::string> order{"Initialized", "Progressing", "Promoting", "Finalising", "Succeeded"};
  std::size_t at = 0;
  for (const auto& p : seen) {
    auto it = std::find(order.begin() + at, order.end(), p);
    REQUIRE_MESSAGE(it != order.end(), "phase " << p << " out of order");
    at = it - order.begin();
  }
  CHECK(std::find(seen.begin(), seen.end(), "Progressing") != seen.end());

  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  c = get_json(sim, {"canary", "podinfo"});
  CHECK(str_at(c, {"status", "lastPromotedSpec"}) == str_at(c, {"status", "lastAppliedSpec"}));
  CHECK(has_event(evs, "Normal", "New revision detected! Scaling up podinfo.demo"));
  CHECK(has_event(evs, "Normal", "Starting canary analysis for podinfo.demo"));
  CHECK(has_event(evs, "Normal", "Advance podinfo.demo canary iteration 1/3"));
  CHECK(has_event(evs, "Normal", "Copying podinfo.demo template spec to podinfo-primary.demo"));
  CHECK(has_event(evs, "Normal", "Promotion completed! Scaling down podinfo.demo"));
  bool found_condition = false;
  for (const auto& cond : c.at_pointer("/status/conditions").as_array()) {
    if (str_at(cond, {"type"}) != "Promoted") continue;
    found_condition = true;
    CHECK(str_at(cond, {"status"}) == "True");
    CHECK(str_at(cond, {"reason"}) == "Succeeded");
  }
  CHECK(found_condition);

  // Every log line about the canary carries the `canary` field.
  CHECK(d.proc->wait_for_line("Promotion completed! Scaling down podinfo.demo", 1s));
  for (const auto& l : d.proc->lines()) {
    if (l.find("Promotion completed!") == std::string::npos) continue;
    CHECK(json::parse(l).as_object().at("canary").as_string() == "podinfo.demo");
  }
  d.proc->signal(SIGTERM);
  auto code = d.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
}

TEST_CASE("a release whose pods never become ready rolls back to Failed at the progress deadline, primary untouched") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo", {}, "  progressDeadlineSeconds: 3\n"));

  // podinfo runs one replica with maxUnavailable 1, so it never reports MinimumReplicasUnavailable:
  // as with Flagger, the rollback comes from the Deployment's own ProgressDeadlineExceeded, so the
  // release shortens that deadline too.
  // maxUnavailable 0: the unready pod leaves the Deployment Available=False
  // (MinimumReplicasUnavailable), whose age Flagger measures against the Canary's
  // progressDeadlineSeconds. (With podinfo's maxUnavailable 1 and one replica, Kubernetes and
  // kubesim report Available and the scale-up never counts as progress, so only the
  // Deployment's own deadline could fail it.)
  const std::string patch =
      R"({"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":0}},"template":{"metadata":{"annotations":{"kubesim.dev/ready":"false"}},)"
      R"("spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:6.0.2"}]}}}})";
  sim.kubectl_ok({"-n", "demo", "patch", "deployment", "podinfo", "--type", "strategic", "-p", patch});
  bool failed = wait_phase(sim, "podinfo", "Failed", 60s);
  auto evs = canary_events(sim, "podinfo");
  REQUIRE_MESSAGE(failed, "phase " << phase_of(sim, "podinfo") << "; events:\n"
                                   << dump(evs) << "target: " << json::serialize(get_json(sim, {"deployment", "podinfo"})));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.0");
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  CHECK_MESSAGE(has_event(evs, "Warning", "progress deadline exceeded"), dump(evs));
  CHECK(has_event(evs, "Warning", "Canary failed! Scaling down podinfo.demo"));
}

TEST_CASE("an invalid Canary gets Promoted=False naming the field and a Warning Event while another canary keeps working") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);

  // maxWeight 150: the schema allows it (Flagger's CRD has no maximum), validation does not.
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("broken", "podinfo", "    maxWeight: 150\n"));
  json::value bad;
  bool reported = eventually(
      [&] {
        bad = get_json(sim, {"canary", "broken"});
        if (bad.is_null()) return false;
        auto* conds = bad.as_object().contains("status") ? bad.at("status").as_object().if_contains("conditions") : nullptr;
        return conds && conds->is_array() && !conds->as_array().empty();
      },
      20s);
  REQUIRE_MESSAGE(reported, "no condition on the invalid canary; events:\n" << dump(canary_events(sim, "broken")));
  const auto& cond = bad.at_pointer("/status/conditions/0");
  CHECK(str_at(cond, {"type"}) == "Promoted");
  CHECK(str_at(cond, {"status"}) == "False");
  CHECK(str_at(cond, {"message"}).find("maxWeight") != std::string::npos);
  auto evs = canary_events(sim, "broken");
  CHECK_MESSAGE(has_event(evs, "Warning", "maxWeight"), dump(evs));
  // stepWeight 0 with neither iterations nor stepWeights: the analysis could never move.
  const std::string no_steps = R"(apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: stuck
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
    interval: 1s
    threshold: 2
    stepWeight: 0
)";
  sim.kubectl_ok({"apply", "-f", "-"}, no_steps);
  std::string stuck_message;
  bool stuck_reported = eventually(
      [&] {
        auto v = get_json(sim, {"canary", "stuck"});
        if (v.is_null()) return false;
        boost::system::error_code ec;
        auto* cond = v.find_pointer("/status/conditions/0", ec);
        if (!cond) return false;
        stuck_message = str_at(*cond, {"message"});
        return str_at(*cond, {"status"}) == "False";
      },
      20s);
  CHECK_MESSAGE(stuck_reported, dump(canary_events(sim, "stuck")));
  CHECK(stuck_message.find("spec.analysis.stepWeight") != std::string::npos);
  CHECK_MESSAGE(has_event(canary_events(sim, "stuck"), "Warning", "spec.analysis.stepWeight"),
                dump(canary_events(sim, "stuck")));

  // The invalid canaries touched nothing: the valid one still promotes.
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.3"});
  CHECK_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.3");
}

TEST_CASE("canaryd killed with SIGKILL mid-run finishes the run after a restart") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo", "    iterations: 5\n"));

  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.4"});
  REQUIRE(eventually(
      [&] {
        auto c = get_json(sim, {"canary", "podinfo"});
        auto it = str_at(c, {"status", "iterations"});
        if (str_at(c, {"status", "phase"}) != "Progressing" || it.empty() || std::stoi(it) < 1) return false;
        // Kill once the iteration's Event has landed too: Events are written from a queue after
        // the status, and one still queued at a SIGKILL is lost (best effort, as client-go's);
        // this case counts Events to find repeated iterations, so it must not lose one.
        auto evs = get_json(sim, {"events", "--field-selector", "involvedObject.name=podinfo"});
        int advances = 0;
        for (const auto& e : evs.at("items").as_array())
          if (str_at(e, {"message"}).find("canary iteration") != std::string::npos) ++advances;
        return advances == std::stoi(it);
      },
      30s));
  d.proc->signal(SIGKILL);
  d.proc->wait(5s);
  auto before = get_json(sim, {"canary", "podinfo"});
  INFO("status at the kill: " << json::serialize(before.at("status")));
  CHECK(str_at(before, {"status", "phase"}) == "Progressing");

  auto again = start_canaryd(sim);
  CHECK_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.4");
  // No iteration was done twice: each "Advance ... iteration n/5" message was recorded once
  // (one Event with count 1; a repeat would raise the count or add a second Event).
  auto v = get_json(sim, {"events", "--field-selector", "involvedObject.name=podinfo"});
  std::map<std::string, std::int64_t> counts;
  for (const auto& e : v.at("items").as_array()) {
    auto msg = str_at(e, {"message"});
    if (msg.find("canary iteration") != std::string::npos) counts[msg] += e.at("count").to_number<std::int64_t>();
  }
  CHECK(counts.size() == 5);
  for (const auto& [msg, n] : counts) {
    INFO(msg);
    CHECK(n == 1);
  }
}

TEST_CASE("a ConfigMap change starts a run that promotes the -primary copy") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  sim.kubectl_ok({"-n", "demo", "create", "configmap", "podinfo-config", "--from-literal=color=blue"});
  const std::string deployment = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels:
    app: podinfo
spec:
  replicas: 2
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
      - name: podinfod
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports:
        - name: http
          containerPort: 9898
        envFrom:
        - configMapRef:
            name: podinfo-config
)";
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, deployment);
  sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml("podinfo", "podinfo"));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Initialized", 30s), dump(canary_events(sim, "podinfo")));
  auto copy = get_json(sim, {"configmap", "podinfo-config-primary"});
  REQUIRE_MESSAGE(!copy.is_null(), "no podinfo-config-primary");
  CHECK(str_at(copy, {"data", "color"}) == "blue");

  sim.kubectl_ok({"-n", "demo", "patch", "configmap", "podinfo-config", "--type", "merge", "-p",
                  R"({"data":{"color":"green"}})"});
  CHECK_MESSAGE(wait_phase(sim, "podinfo", "Progressing", 20s), dump(canary_events(sim, "podinfo")));
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  copy = get_json(sim, {"configmap", "podinfo-config-primary"});
  CHECK(str_at(copy, {"data", "color"}) == "green");
  auto primary = get_json(sim, {"deployment", "podinfo-primary"});
  CHECK(str_at(primary.at_pointer("/spec/template/spec/containers/0/envFrom/0"), {"configMapRef", "name"}) ==
        "podinfo-config-primary");
}

TEST_CASE("revertOnDeletion gives the target its replicas back before the finalizer is removed") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo", {}, "  revertOnDeletion: true\n"));
  CHECK(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 10s));
  auto c = get_json(sim, {"canary", "podinfo"});
  bool has_finalizer = false;
  if (auto* f = c.at("metadata").as_object().if_contains("finalizers"))
    for (const auto& x : f->as_array()) has_finalizer |= x.as_string() == "finalizer.flagger.app";
  CHECK(has_finalizer);

  sim.kubectl_ok({"-n", "demo", "delete", "canary", "podinfo", "--wait=false"});
  CHECK_MESSAGE(eventually([&] { return get_json(sim, {"canary", "podinfo"}).is_null(); }, 30s),
                dump(canary_events(sim, "podinfo")));
  CHECK(replicas_of(sim, "podinfo") > 0);
  auto apex = get_json(sim, {"service", "podinfo"});
  if (!apex.is_null()) CHECK(str_at(apex, {"spec", "selector", "app"}) == "podinfo");
  CHECK(d.proc->wait_for_line("Terminated canary podinfo.demo", 1s));
}

namespace {

std::int64_t epoch_ms(const std::string& ts) {
  std::tm tm{};
  int ms = 0;
  REQUIRE(std::sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                      &tm.tm_min, &tm.tm_sec, &ms) == 7);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000 + ms;
}

bool from_canaryd(const json::object& r) {
  auto verb = std::string(r.at("verb").as_string());
  for (auto& ch : verb) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return std::string_view(r.at("user_agent").as_string()).starts_with("canaryd") && verb != "watch";
}

}  // namespace

TEST_CASE("an idle canary makes no API request, and a new revision reaches Progressing within milliseconds") {
  temp_dir tmp;
  auto request_log = tmp.path() / "requests.jsonl";
  kubesim_options so;
  so.extra_args = {"--request-log", request_log.string()};
  kubesim_instance sim(so);
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);
  std::this_thread::sleep_for(1500ms);  // let the last writes of the initialization settle

  auto count = [&] {
    std::size_t n = 0;
    for (const auto& r : requests(request_log)) n += from_canaryd(r) ? 1 : 0;
    return n;
  };
  auto before = count();
  std::this_thread::sleep_for(3500ms);  // three analysis intervals
  auto after = count();
  MESSAGE("canaryd requests during 3 idle intervals: " << after - before);
  CHECK(after == before);

  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.5"});
  REQUIRE(wait_phase(sim, "podinfo", "Progressing", 20s));
  std::int64_t changed_at = 0, progressing_at = 0;
  for (const auto& r : requests(request_log)) {
    std::string path(r.at("path").as_string());
    std::string method(r.at("method").as_string());
    if (changed_at == 0 && method == "PATCH" && path.ends_with("/deployments/podinfo") &&
        !from_canaryd(r))
      changed_at = epoch_ms(std::string(r.at("time").as_string()));
    else if (changed_at != 0 && progressing_at == 0 && from_canaryd(r) && path.ends_with("/canaries/podinfo/status"))
      progressing_at = epoch_ms(std::string(r.at("time").as_string()));
  }
  REQUIRE(changed_at > 0);
  REQUIRE(progressing_at > 0);
  MESSAGE("new revision -> Progressing status written: " << progressing_at - changed_at << " ms");
  CHECK(progressing_at - changed_at < 1000);  // not one interval later (bench/ measures the p99)
}

TEST_CASE("confirm-rollout and post-rollout webhooks are POSTed Flagger's payload") {
  webhook_receiver receiver;
  const auto& payloads = receiver.payloads;
  const int port = receiver.port;

  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  init_podinfo(sim, canary_yaml("podinfo", "podinfo",
                                "    webhooks:\n"
                                "    - name: gate\n"
                                "      type: confirm-rollout\n"
                                "      url: " + url + "/gate/check\n"
                                "      metadata:\n"
                                "        team: blue\n"
                                "    - name: notify\n"
                                "      type: post-rollout\n"
                                "      url: " + url + "/done\n"));
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.6"});
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));
  auto evs = canary_events(sim, "podinfo");
  CHECK_MESSAGE(has_event(evs, "Normal", "Confirm-rollout check gate passed"), dump(evs));
  CHECK(eventually([&] { return read_text(payloads).find("/done") != std::string::npos; }, 5s));

  bool saw_gate = false, saw_post = false;
  std::istringstream in(read_text(payloads));
  for (std::string l; std::getline(in, l);) {
    auto v = json::parse(l);
    auto path = str_at(v, {"path"});
    INFO(l);
    CHECK(str_at(v, {"body", "name"}) == "podinfo");
    CHECK(str_at(v, {"body", "namespace"}) == "demo");
    CHECK(str_at(v, {"body", "checksum"}) != "");
    if (path == "/gate/check") {
      saw_gate = true;
      CHECK(str_at(v, {"body", "metadata", "team"}) == "blue");
      CHECK(str_at(v, {"body", "phase"}) != "");  // the phase core chose (Flagger's in-memory phase)
    } else if (path == "/done") {
      saw_post = true;
      CHECK(str_at(v, {"body", "phase"}) == "Succeeded");
    }
  }
  CHECK(saw_gate);
  CHECK(saw_post);
}

TEST_CASE("canaryd's /metrics has Flagger's families following a rollout, and a real Prometheus scrapes them") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  init_podinfo(sim);
  sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/podinfo", "podinfod=ghcr.io/stefanprodan/podinfo:6.0.9"});
  REQUIRE_MESSAGE(wait_phase(sim, "podinfo", "Succeeded", 60s), dump(canary_events(sim, "podinfo")));

  const std::string target = "127.0.0.1:" + std::to_string(d.port);
  // canaryd counts a tick after its writes land, so the Succeeded status can be seen a moment
  // before the counter moves (CI's ASan build saw it): read /metrics until the tick is counted.
  std::string m;
  eventually(
      [&] {
        auto metrics = http_call("GET", "http://" + target + "/metrics");
        if (metrics) m = metrics->body;
        return m.find("flagger_canary_successes_total{name=\"podinfo\"") != std::string::npos;
      },
      10s);
  INFO(m);
  CHECK(m.find("flagger_info{version=\"") != std::string::npos);
  CHECK(m.find("flagger_canary_total{namespace=\"demo\"} 1") != std::string::npos);
  CHECK(m.find("flagger_canary_status{name=\"podinfo\",namespace=\"demo\"} 1") != std::string::npos);
  CHECK(m.find("flagger_canary_weight{workload=\"podinfo-primary\",namespace=\"demo\"} 100") != std::string::npos);
  CHECK(m.find("flagger_canary_weight{workload=\"podinfo\",namespace=\"demo\"} 0") != std::string::npos);
  CHECK(m.find("flagger_canary_successes_total{name=\"podinfo\",namespace=\"demo\",deployment_strategy=\"blue-green\","
               "analysis_status=\"completed\"} 1") != std::string::npos);
  CHECK(m.find("flagger_canary_duration_seconds_count{name=\"podinfo\",namespace=\"demo\"}") != std::string::npos);

  // A real Prometheus scrapes canaryd's /metrics.
  temp_dir prom_dir;
  {
    std::ofstream cfg(prom_dir.path() / "prometheus.yml");
    cfg << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: canaryd\n    static_configs:\n"
           "      - targets: [\"" << target << "\"]\n";
  }
  const int prom_port = free_port();
  child prom({"/usr/bin/prometheus", "--config.file=" + (prom_dir.path() / "prometheus.yml").string(),
              "--storage.tsdb.path=" + (prom_dir.path() / "data").string(),
              "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
             {}, prom_dir.path() / "prometheus.log");
  const std::string prom_url = "http://127.0.0.1:" + std::to_string(prom_port);
  bool scraped = eventually(
      [&] {
        auto r = http_call("GET", prom_url + "/api/v1/query?query=flagger_canary_successes_total");
        return r && r->status == 200 && r->body.find("\"podinfo\"") != std::string::npos;
      },
      30s);
  CHECK_MESSAGE(scraped, "Prometheus never had flagger_canary_successes_total; its log:\n" << read_text(prom_dir.path() / "prometheus.log"));
}

TEST_CASE("with -max-concurrent-ticks 1 the canaries take turns and every one initializes and promotes") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim, {"-max-concurrent-ticks", "1"});
  // Three targets, each its own copy of podinfo, and a Canary for each, created together.
  const std::vector<std::string> names{"podinfo", "web", "api"};
  std::string yaml;
  for (const auto& n : names) {
    std::string dep = podinfo_yaml();
    // The Deployment's name and its app labels become n; the container and image stay podinfo's.
    for (const std::string from : {"name: podinfo\n", "app: podinfo\n"}) {
      const std::string to = from.substr(0, from.find("podinfo")) + n + "\n";
      for (std::size_t at = 0; (at = dep.find(from, at)) != std::string::npos; at += to.size()) dep.replace(at, from.size(), to);
    }
    yaml += dep + "\n---\n" + canary_yaml(n, n) + "\n---\n";
  }
  sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, yaml);
  for (const auto& n : names)
    CHECK_MESSAGE(wait_phase(sim, n, "Initialized", 30s), n << ": " << phase_of(sim, n) << "\n" << dump(canary_events(sim, n)));
  for (const auto& n : names)
    sim.kubectl_ok({"-n", "demo", "set", "image", "deployment/" + n, "podinfod=ghcr.io/stefanprodan/podinfo:6.0.7"});
  for (const auto& n : names) {
    CHECK_MESSAGE(wait_phase(sim, n, "Succeeded", 60s), n << ": " << phase_of(sim, n) << "\n" << dump(canary_events(sim, n)));
    CHECK(image_of(sim, n + "-primary") == "ghcr.io/stefanprodan/podinfo:6.0.7");
  }
}
