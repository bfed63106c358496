// Hostile input (issue 11): the corpus in tests/e2e/hostile/corpus.json (Canary, MetricTemplate
// and AlertProvider cases, written by generate.py next to it) is applied in batches into one
// kubesim with one canaryd, next to a healthy canary. Every case must end in its expected outcome
// (refused by the CRD schema, Promoted=False naming the field, refused for ownership, a Promoted
// message naming the problem, or a Warning Event), none silent, none touching an object that is
// not its own, every message at most 1 KiB; and the healthy canary keeps promoting.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <stop_token>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

struct hostile_case {
  std::string name, canary, target, outcome, text;
  std::vector<json::value> objects;
};

std::vector<hostile_case> load_corpus() {
  const auto text = read_text(source_root() / "tests" / "e2e" / "hostile" / "corpus.json");
  std::vector<hostile_case> out;
  const json::value corpus = json::parse(text);  // named: a range-for does not keep an inner temporary alive
  for (const auto& c : corpus.at("cases").as_array()) {
    hostile_case h;
    h.name = str_at(c, {"name"});
    h.canary = str_at(c, {"canary"});
    h.target = str_at(c, {"target"});
    h.outcome = str_at(c, {"expect", "outcome"});
    h.text = str_at(c, {"expect", "text"});
    for (const auto& o : c.at("objects").as_array()) h.objects.push_back(o);
    out.push_back(std::move(h));
  }
  return out;
}

std::string fingerprint(const json::value& v) {
  if (v.is_null()) return "<missing>";
  json::object out;
  const auto& o = v.as_object();
  if (const auto* spec = o.if_contains("spec")) out["spec"] = *spec;
  if (const auto* meta = o.if_contains("metadata"); meta && meta->is_object()) {
    for (std::string_view k : {"labels", "annotations", "ownerReferences", "generation", "uid"}) {
      if (const auto* f = meta->as_object().if_contains(k)) out[k] = *f;
    }
  }
  return json::serialize(out);
}

std::map<std::string, std::string> podinfo_objects(const kubesim_instance& sim) {
  std::map<std::string, std::string> s;
  for (std::string d : {"podinfo", "podinfo-primary"}) s["deployment/" + d] = fingerprint(get_json(sim, {"deployment", d}));
  for (std::string svc : {"podinfo", "podinfo-primary", "podinfo-canary"})
    s["service/" + svc] = fingerprint(get_json(sim, {"service", svc}));
  return s;
}

std::string target_yaml(const std::string& name) {
  return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " + name + "\n  namespace: demo\n  labels:\n    app: " +
         name + "\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: " + name +
         "\n  template:\n    metadata:\n      labels:\n        app: " + name +
         "\n    spec:\n      containers:\n      - name: app\n        image: ghcr.io/stefanprodan/podinfo:6.0.0\n"
         "        ports:\n        - name: http\n          containerPort: 9898\n---\n";
}

std::string list_of(const std::vector<json::value>& items) {
  json::array a(items.begin(), items.end());
  return json::serialize(json::object{{"apiVersion", "v1"}, {"kind", "List"}, {"items", std::move(a)}});
}

struct seen {
  std::string status, reason, message;
  std::vector<std::string> warnings;
};

// Every Canary's Promoted condition and Warning Events, from two kubectl calls.
std::map<std::string, seen> observe(const kubesim_instance& sim) {
  std::map<std::string, seen> out;
  auto canaries = get_json(sim, {"canaries"});
  if (!canaries.is_null()) {
    for (const auto& c : canaries.at("items").as_array()) {
      auto& s = out[str_at(c, {"metadata", "name"})];
      boost::system::error_code ec;
      const auto* conds = c.find_pointer("/status/conditions", ec);
      if (!conds || !conds->is_array()) continue;
      for (const auto& x : conds->as_array()) {
        if (str_at(x, {"type"}) != "Promoted") continue;
        s.status = str_at(x, {"status"});
        s.reason = str_at(x, {"reason"});
        s.message = str_at(x, {"message"});
      }
    }
  }
  auto events = get_json(sim, {"events"});
  if (!events.is_null()) {
    for (const auto& e : events.at("items").as_array()) {
      if (str_at(e, {"involvedObject", "kind"}) != "Canary" || str_at(e, {"type"}) != "Warning") continue;
      out[str_at(e, {"involvedObject", "name"})].warnings.push_back(str_at(e, {"message"}));
    }
  }
  return out;
}

bool warned(const seen& s, const std::string& text) {
  for (const auto& w : s.warnings)
    if (w.find(text) != std::string::npos) return true;
  return false;
}

bool met(const hostile_case& h, const seen& s) {
  const bool names = s.message.find(h.text) != std::string::npos;
  if (h.outcome == "field") return s.status == "False" && s.reason == "InvalidSpec" && names && warned(s, h.text);
  if (h.outcome == "refused") return s.status == "False" && s.reason == "Refused" && names && warned(s, h.text);
  if (h.outcome == "condition") return names && warned(s, h.text);
  if (h.outcome == "event") return warned(s, h.text);
  return false;
}

std::string describe(const seen& s) {
  std::string out = "Promoted=" + s.status + " reason=" + s.reason + " message=" + s.message.substr(0, 300);
  for (const auto& w : s.warnings) out += "\n    Warning: " + w.substr(0, 300);
  return out;
}

}  // namespace

TEST_CASE("the hostile corpus: every case refused or reported as expected, none silent, none touching another object") {
  const auto corpus = load_corpus();
  REQUIRE(corpus.size() >= 150);
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  // canaryd logs a line per Event; read its stdout all along (a full pipe would block it), and
  // keep the last lines for a failure message.
  std::mutex log_mutex;
  std::deque<std::string> log_tail;
  std::jthread drain([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      auto line = d.proc->read_line(200ms);
      if (!line) continue;
      std::lock_guard lock(log_mutex);
      log_tail.push_back(std::move(*line));
      if (log_tail.size() > 80) log_tail.pop_front();
    }
  });
  init_podinfo(sim);
  REQUIRE(eventually([&] { return replicas_of(sim, "podinfo") == 0; }, 20s));

  // The cases' own targets first.
  std::string targets;
  std::set<std::string> own_targets;
  for (const auto& h : corpus) {
    if (h.target.empty() || !own_targets.insert(h.target).second) continue;
    targets += target_yaml(h.target);
  }
  sim.kubectl_ok({"apply", "-f", "-"}, targets);
  const auto before = podinfo_objects(sim);
  // Targets of refused cases that no other (valid) Canary drives: they must stay as they are.
  std::map<std::string, std::string> refused_targets;
  for (const auto& h : corpus) {
    if (h.outcome == "refused" && !h.target.empty() && h.canary == h.name)
      refused_targets[h.target] = fingerprint(get_json(sim, {"deployment", h.target}));
  }

  // Admission: every case's object in one kubectl apply (kubectl goes on past a refused object and
  // prints one error per object, naming it: a process per case cost ~50 s on a loaded machine).
  // Each must be refused, its error naming the field, and none created.
  std::map<std::string, std::string> mismatches;
  std::map<std::string, int> by_outcome;
  {
    std::vector<json::value> objects;
    for (const auto& h : corpus)
      if (h.outcome == "admission") objects.push_back(h.objects.back());
    auto r = sim.kubectl({"apply", "-f", "-"}, list_of(objects));
    CHECK_MESSAGE(r.exit_code != 0, "kubectl admitted the whole admission batch: " << r.out);
    // One message per object: a line starting "Error from server" or "error:" and its continuation lines.
    std::vector<std::string> errors;
    std::istringstream err(r.err);
    for (std::string line; std::getline(err, line);) {
      if (errors.empty() || line.rfind("Error from server", 0) == 0 || line.rfind("error:", 0) == 0)
        errors.push_back(line);
      else
        errors.back() += "\n" + line;
    }
    for (const auto& h : corpus) {
      if (h.outcome != "admission") continue;
      const auto& o = h.objects.back();
      const std::string name = str_at(o, {"metadata", "name"});
      const std::string kind = str_at(o, {"kind"});
      std::string mine;
      for (const auto& e : errors)
        if (e.find("\"" + name + "\"") != std::string::npos) mine += e + "\n";
      const auto created = r.out.find("/" + name + " ");
      if (created != std::string::npos) {  // "<kind>.<group>/<name> created"
        mismatches[h.name] = "admitted: " + r.out.substr(r.out.rfind('\n', created) + 1, 200);
      } else if (mine.empty()) {
        mismatches[h.name] = "no error names " + kind + " " + name + ": " + r.err.substr(0, 2000);
      } else if (mine.find(h.text) == std::string::npos) {
        mismatches[h.name] = "refused without naming " + h.text + ": " + mine;
      } else {
        ++by_outcome["admission"];
      }
    }
  }

  // The rest in batches of about 40 objects.
  std::vector<json::value> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    auto r = sim.kubectl({"apply", "-f", "-"}, list_of(batch));
    CHECK_MESSAGE(r.exit_code == 0, "kubectl apply of a batch failed: " << r.err);
    batch.clear();
  };
  for (const auto& h : corpus) {
    if (h.outcome == "admission") continue;
    for (const auto& o : h.objects) batch.push_back(o);
    if (batch.size() >= 40) flush();
  }
  flush();

  std::map<std::string, seen> state;
  auto pending = [&] {
    int n = 0;
    for (const auto& h : corpus) {
      if (h.outcome != "admission" && !met(h, state[h.canary])) ++n;
    }
    return n;
  };
  eventually(
      [&] {
        state = observe(sim);
        return pending() == 0;
      },
      90s);

  int silent = 0;
  std::size_t longest = 0;
  for (const auto& h : corpus) {
    if (h.outcome == "admission") continue;
    const seen& s = state[h.canary];
    if (met(h, s)) {
      ++by_outcome[h.outcome];
    } else {
      mismatches[h.name] = "expected " + h.outcome + " naming \"" + h.text + "\"; got " + describe(s);
    }
    if (s.warnings.empty() && s.status != "False") ++silent;
    longest = std::max(longest, s.message.size());
    for (const auto& w : s.warnings) longest = std::max(longest, w.size());
  }
  std::string report;
  for (const auto& [name, why] : mismatches) report += name + ": " + why + "\n";
  CHECK_MESSAGE(mismatches.empty(), mismatches.size() << " cases did not end as expected:\n" << report);
  CHECK(silent == 0);
  CHECK(longest <= 1024);

  // Nothing of another application was touched, and refused/invalid canaries created nothing.
  int touching = 0;
  std::string touched;
  const auto after = podinfo_objects(sim);
  for (const auto& [key, value] : before) {
    if (after.at(key) == value) continue;
    ++touching;
    touched += key + " changed:\nbefore: " + value + "\nafter:  " + after.at(key) + "\n";
  }
  for (const auto& [target, value] : refused_targets) {
    const auto now = fingerprint(get_json(sim, {"deployment", target}));
    if (now == value) continue;
    ++touching;
    touched += "deployment/" + target + " changed:\nbefore: " + value + "\nafter:  " + now + "\n";
  }
  std::set<std::string> must_not_act;
  for (const auto& h : corpus)
    if (h.outcome == "field" || h.outcome == "refused") must_not_act.insert(h.canary);
  for (std::string kind : {"deployments", "services", "configmaps"}) {
    auto list = get_json(sim, {kind});
    if (list.is_null()) continue;
    for (const auto& o : list.at("items").as_array()) {
      boost::system::error_code ec;
      const auto* refs = o.find_pointer("/metadata/ownerReferences", ec);
      if (!refs || !refs->is_array()) continue;
      for (const auto& ref : refs->as_array()) {
        if (str_at(ref, {"kind"}) != "Canary" || !must_not_act.contains(str_at(ref, {"name"}))) continue;
        ++touching;
        touched += kind + "/" + str_at(o, {"metadata", "name"}) + " is controlled by refused Canary " + str_at(ref, {"name"}) + "\n";
      }
    }
  }
  CHECK_MESSAGE(touching == 0, touched);

  // The healthy canary keeps promoting with the whole corpus in place.
  release(sim, "6.0.1");
  const bool promoted_ok = wait_phase(sim, "podinfo", "Succeeded", 60s);
  if (!promoted_ok) {
    std::string log;
    {
      std::lock_guard lock(log_mutex);
      for (const auto& l : log_tail) log += l + "\n";
    }
    FAIL_CHECK("podinfo did not promote; events:\n" << dump(canary_events(sim, "podinfo")) << "canaryd's last lines:\n" << log);
  }
  CHECK(image_of(sim, "podinfo-primary") == "ghcr.io/stefanprodan/podinfo:6.0.1");

  // Deleting the corpus changes nothing of podinfo.
  const auto promoted = podinfo_objects(sim);
  std::vector<std::string> names{"-n", "demo", "delete", "canary", "--wait=false", "--ignore-not-found"};
  for (const auto& h : corpus)
    for (const auto& o : h.objects)
      if (str_at(o, {"kind"}) == "Canary" && h.outcome != "admission") names.push_back(str_at(o, {"metadata", "name"}));
  sim.kubectl_ok(names);
  CHECK(eventually(
      [&] {
        auto v = get_json(sim, {"canaries"});
        return !v.is_null() && v.at("items").as_array().size() == 1;
      },
      30s));
  std::this_thread::sleep_for(2s);
  const auto after_delete = podinfo_objects(sim);
  for (const auto& [key, value] : promoted) CHECK_MESSAGE(after_delete.at(key) == value, key << " changed after the deletions");

  std::string figures = std::to_string(corpus.size()) + " cases:";
  for (const auto& [outcome, n] : by_outcome) figures += " " + outcome + " " + std::to_string(n);
  figures += "; silent " + std::to_string(silent) + "; touching another object " + std::to_string(touching) +
             "; longest message " + std::to_string(longest) + " bytes";
  MESSAGE("hostile corpus: " << figures);
}
