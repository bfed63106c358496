// The reliability suite (docs/reliability.md): the real canaryd against kubesim with kubectl,
// several `provider: kubernetes` canaries, releases that deserve promotion and releases whose pods
// never become ready (they deserve a rollback at the progress deadline), and
//   - crash consistency: canaryd killed with SIGKILL at random moments and restarted at once;
//   - API faults: kubesim answers canaryd 10% 500s and 10% 429s, 100 ms late, and cuts every
//     watch every 3 s.
// What is checked (issue 11): every rollout ends as its release deserves; a ready pod serves
// every apex Service at every sampled moment; no step is repeated or skipped (canaryd's own log
// lines and the Events' counts); every wait between analysis steps is within [interval,
// interval + slack], the slack widened only by the time canaryd was down; under faults every
// rollout takes at most twice its fault-free time, and conflicts (409) per step are reported.
//
// CI runs a bounded version; the full run is RELIABILITY_ROLLOUTS=100 (and RELIABILITY_FAULT_ROUNDS)
// with this binary, as docs/reliability.md records.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "tests/e2e/harness.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;
using wall = std::chrono::system_clock;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

constexpr std::chrono::milliseconds interval = 1s;

// "2026-12-06T09:33:46.123Z" or without the fraction -> milliseconds since the epoch; -1 if bad.
std::int64_t parse_ms(const std::string& s) {
  std::tm tm{};
  if (s.size() < 20 || !strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
  std::int64_t ms = static_cast<std::int64_t>(timegm(&tm)) * 1000;
  if (s.size() > 20 && s[19] == '.') {
    int frac = 0, digits = 0;
    for (std::size_t i = 20; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && digits < 3; ++i, ++digits)
      frac = frac * 10 + (s[i] - '0');
    while (digits++ < 3) frac *= 10;
    ms += frac;
  }
  return ms;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(wall::now().time_since_epoch()).count();
}

std::string app_name(int i) { return "app" + std::to_string(i); }

// Flagger's podinfo Deployment renamed to `name`, rolling one new pod up before an old one goes
// (maxUnavailable 0): an unready release leaves it Available=False, which the progress deadline
// measures, and a promotion never leaves the primary without a ready pod.
std::string app_yaml(const std::string& name) {
  std::string y = podinfo_yaml();
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (std::size_t p = y.find(from); p != std::string::npos; p = y.find(from, p + to.size())) y.replace(p, from.size(), to);
  };
  replace_all("name: podinfo\n", "name: " + name + "\n");
  replace_all("app: podinfo\n", "app: " + name + "\n");
  replace_all("maxUnavailable: 1", "maxUnavailable: 0");
  return y;
}

// canaryd run through `sh -c exec ... >> log`: its pid is canaryd's (SIGKILL reaches it), and its
// output goes to one file across restarts, which nothing has to drain while the test waits.
class canaryd_runner {
 public:
  explicit canaryd_runner(const kubesim_instance& sim) : sim_(sim), log_(dir_.path() / "canaryd.log") {}

  void start() {
    const auto before = synced_count();
    std::vector<std::string> argv{"/bin/sh",
                                  "-c",
                                  "exec \"$0\" \"$@\" >>" + log_.string() + " 2>&1",
                                  binary(),
                                  "-listen-address=127.0.0.1",
                                  "-port",
                                  std::to_string(free_port()),
                                  "-kubeconfig",
                                  sim_.kubeconfig().string(),
                                  "-log-level=debug"};
    proc_ = std::make_unique<child>(argv);
    const bool synced = eventually([&] { return synced_count() > before; }, 20s);
    REQUIRE_MESSAGE(synced, "canaryd did not sync after a start");
  }
  void kill9() {
    proc_->signal(SIGKILL);
    proc_->wait(5s);
    proc_.reset();
  }
  void stop() {
    if (!proc_) return;
    proc_->signal(SIGTERM);
    if (!proc_->wait(10s)) proc_->signal(SIGKILL);
    proc_.reset();
  }
  std::vector<json::object> lines() const {
    std::vector<json::object> out;
    std::ifstream in(log_);
    std::string line;
    while (std::getline(in, line)) {
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (!ec && v.is_object()) out.push_back(std::move(v.as_object()));
    }
    return out;
  }
  // "caches synced" lines so far (reads only what was appended since the last call).
  std::size_t synced_count() {
    std::ifstream in(log_);
    in.seekg(static_cast<std::streamoff>(scanned_));
    std::string line;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a line still being written: read it whole next time
      scanned_ += line.size() + 1;
      synced_ += line.find("\"caches synced\"") != std::string::npos;
    }
    return synced_;
  }
  const std::filesystem::path& log_path() const { return log_; }
  // RELIABILITY_CANARYD runs another build (e.g. main's, to reproduce issue 11 before the fix).
  static std::string binary() {
    const char* other = std::getenv("RELIABILITY_CANARYD");
    return other && *other ? std::string(other) : canaryd_path();
  }

 private:
  const kubesim_instance& sim_;
  temp_dir dir_;
  std::filesystem::path log_;
  std::unique_ptr<child> proc_;
  std::size_t scanned_ = 0, synced_ = 0;
};

std::string field(const json::object& o, std::string_view k) {
  auto* v = o.if_contains(k);
  if (!v) return {};
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  return {};
}

// A release of app i: a new image, ready or never ready.
void release_app(const kubesim_instance& sim, int i, const std::string& tag, bool bad) {
  const std::string patch = R"({"spec":{"template":{"metadata":{"annotations":{"kubesim.dev/ready":")" +
                            std::string(bad ? "false" : "true") +
                            R"("}},"spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:)" + tag +
                            R"("}]}}}})";
  sim.kubectl_ok({"-n", "demo", "patch", "deployment", app_name(i), "--type", "strategic", "-p", patch});
}

struct rollout {
  int app = 0;
  std::string tag;
  bool bad = false;
  std::string last_applied_before;
  std::int64_t released_ms = 0;
  std::int64_t finished_ms = 0;
  std::string phase;
  std::string primary_image;
};

// A ready pod behind every apex Service: one `kubectl get` of Services and Pods, the selector of
// each apex Service (appN) matched against the pods' labels. Returns the apps without one.
// Read straight from kubesim's API (no kubectl process per sample), so it samples every few ms.
std::optional<std::vector<std::string>> apex_without_ready_pod(const kubesim_instance& sim, int apps) {
  auto svcs = http_call("GET", sim.api_url() + "/api/v1/namespaces/demo/services");
  auto pods = http_call("GET", sim.api_url() + "/api/v1/namespaces/demo/pods");
  if (!svcs || !pods || svcs->status != 200 || pods->status != 200) return std::nullopt;  // not a sample
  json::array items;
  for (const auto* body : {&svcs->body, &pods->body}) {
    auto list = json::parse(*body);
    const std::string kind = body == &svcs->body ? "Service" : "Pod";
    for (auto& it : list.at("items").as_array()) {
      it.as_object()["kind"] = kind;
      items.push_back(std::move(it));
    }
  }
  std::vector<std::string> bad;
  for (int i = 0; i < apps; ++i) {
    const std::string name = app_name(i);
    const json::object* selector = nullptr;
    for (const auto& it : items) {
      if (str_at(it, {"kind"}) == "Service" && str_at(it, {"metadata", "name"}) == name) {
        if (auto* s = it.at("spec").as_object().if_contains("selector")) selector = &s->as_object();
      }
    }
    if (!selector) {
      bad.push_back(name + " (no apex Service)");
      continue;
    }
    bool served = false;
    for (const auto& it : items) {
      if (str_at(it, {"kind"}) != "Pod") continue;
      const auto& meta = it.at("metadata").as_object();
      if (meta.contains("deletionTimestamp")) continue;
      auto* labels = meta.if_contains("labels");
      if (!labels) continue;
      bool match = true;
      for (const auto& [k, val] : *selector) {
        auto* l = labels->as_object().if_contains(k);
        if (!l || *l != val) match = false;
      }
      if (!match) continue;
      auto* conds = it.at("status").as_object().if_contains("conditions");
      if (!conds) continue;
      for (const auto& c : conds->as_array()) {
        if (str_at(c, {"type"}) == "Ready" && str_at(c, {"status"}) == "True") served = true;
      }
    }
    if (!served) bad.push_back(name + " (selector " + json::serialize(*selector) + ")");
  }
  return bad;
}

// The cluster and canaries both suites use.
struct fleet {
  kubesim_instance sim;
  int apps;
  canaryd_runner canaryd{sim};
  explicit fleet(int n) : apps(n) {
    setup_cluster(sim);
    canaryd.start();
    for (int i = 0; i < apps; ++i) {
      sim.kubectl_ok({"-n", "demo", "apply", "-f", "-"}, app_yaml(app_name(i)));
      sim.kubectl_ok({"apply", "-f", "-"}, canary_yaml(app_name(i), app_name(i), {}, "  progressDeadlineSeconds: 4\n"));
    }
    for (int i = 0; i < apps; ++i) {
      REQUIRE_MESSAGE(wait_phase(sim, app_name(i), "Initialized", 60s), dump(canary_events(sim, app_name(i))));
    }
  }

  // Releases every app (`bad(i)` decides which releases deserve a rollback) and waits until each
  // rollout ended: a terminal phase with a new lastAppliedSpec. `during` runs between polls.
  std::vector<rollout> round(const std::string& tag, const std::function<bool(int)>& bad,
                             const std::function<void()>& during, std::chrono::seconds limit = 90s) {
    std::vector<rollout> rs(static_cast<std::size_t>(apps));
    for (int i = 0; i < apps; ++i) {
      auto& r = rs[static_cast<std::size_t>(i)];
      r.app = i;
      r.tag = tag;
      r.bad = bad(i);
      r.last_applied_before = str_at(get_json(sim, {"canary", app_name(i)}), {"status", "lastAppliedSpec"});
    }
    for (auto& r : rs) {
      // Before the patch: canaryd reacts to it before kubectl has even exited.
      r.released_ms = now_ms();
      release_app(sim, r.app, tag, r.bad);
    }
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (during) during();
      bool all = true;
      auto list = get_json(sim, {"canaries"});
      if (!list.is_null()) {
        for (auto& r : rs) {
          if (r.finished_ms) continue;
          for (const auto& c : list.at("items").as_array()) {
            if (str_at(c, {"metadata", "name"}) != app_name(r.app)) continue;
            const auto phase = str_at(c, {"status", "phase"});
            const auto applied = str_at(c, {"status", "lastAppliedSpec"});
            if ((phase == "Succeeded" || phase == "Failed") && applied != r.last_applied_before) {
              r.phase = phase;
              r.finished_ms = now_ms();
            }
          }
          if (!r.finished_ms) all = false;
        }
      } else {
        all = false;
      }
      if (all || std::chrono::steady_clock::now() > end) break;
      std::this_thread::sleep_for(100ms);
    }
    for (auto& r : rs) r.primary_image = image_of(sim, app_name(r.app) + "-primary");
    return rs;
  }
};

void check_outcomes(const std::vector<rollout>& all, const std::map<int, std::string>& primary_before_round) {
  (void)primary_before_round;
  for (const auto& r : all) {
    const std::string deserved = r.bad ? "Failed" : "Succeeded";
    INFO(app_name(r.app) << " release " << r.tag << " deserves " << deserved);
    CHECK(r.finished_ms > 0);
    CHECK(r.phase == deserved);
    if (!r.bad) CHECK(r.primary_image == "ghcr.io/stefanprodan/podinfo:" + r.tag);
    if (r.bad) CHECK(r.primary_image != "ghcr.io/stefanprodan/podinfo:" + r.tag);
  }
}

struct step_line {
  std::int64_t at = 0;  // decidedAt, ms
  std::string phase;
  int iterations = 0;
  // The step wrote its time into the status. One that did not (a wait whose reason the
  // condition already says, written once) lives only in the process that took it.
  bool written = true;
};

struct pacing_report {
  std::size_t waits = 0;
  std::int64_t min_gap = 1 << 30, max_gap = 0, max_excess_up = 0;  // excess over the interval, downtime excluded
  std::vector<std::string> violations;
  std::size_t unseen = 0;  // steps whose log line a SIGKILL lost (the waits around them still checked)
};

// Waits between analysis steps from canaryd's "analysis step" lines: every step of a run but its
// first (the reaction to the release) follows the previous one by [interval, interval + slack],
// plus the part of the wait canaryd spent dead (`down`: [killed, synced again] in ms).
pacing_report measure_pacing(const std::vector<json::object>& lines, std::int64_t slack_ms,
                             const std::vector<std::pair<std::int64_t, std::int64_t>>& down) {
  std::map<std::string, std::vector<step_line>> steps;
  for (const auto& l : lines) {
    if (field(l, "msg") != "analysis step") continue;
    step_line s;
    s.at = parse_ms(field(l, "decidedAt"));
    s.phase = field(l, "phase");
    auto it = field(l, "iterations");
    s.iterations = it.empty() ? 0 : std::stoi(it);
    if (const auto* w = l.if_contains("written"); w && w->is_bool()) s.written = w->as_bool();
    steps[field(l, "canary")].push_back(s);
  }
  // A canaryd without those lines (one from before issue 11): its "Advance ... iteration" lines,
  // stamped when logged, are the steps to measure.
  bool fallback = false;
  if (steps.empty()) {
    for (const auto& l : lines) {
      const std::string msg = field(l, "msg");
      const auto at = msg.find(" canary iteration ");
      if (!msg.starts_with("Advance ") || at == std::string::npos) continue;
      step_line s;
      s.at = parse_ms(field(l, "ts"));
      s.phase = "Progressing";
      s.iterations = std::atoi(msg.c_str() + at + 18);
      steps[field(l, "canary")].push_back(s);
      fallback = true;
    }
  }
  static const std::set<std::string> in_run{"Progressing", "Promoting", "Finalising", "WaitingPromotion"};
  pacing_report rep;
  for (auto& [canary, list] : steps) {
    std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
    for (std::size_t k = 1; k < list.size(); ++k) {
      const auto& p = list[k - 1];
      const auto& q = list[k];
      if (!in_run.contains(p.phase)) continue;  // q starts a run (or initializes): a reaction, not paced
      // A run never goes back from Promoting or Finalising to Progressing: q starts the next run,
      // and the step that ended p's run (Succeeded) lost its line to a SIGKILL. Not a wait.
      if ((p.phase == "Promoting" || p.phase == "Finalising") && q.phase == "Progressing") continue;
      if (fallback && q.iterations != p.iterations + 1) continue;  // only iteration n -> n+1 of one run
      const std::int64_t gap = q.at - p.at;
      std::int64_t dead = 0;
      for (const auto& [from, to] : down) dead += std::max<std::int64_t>(0, std::min(to, q.at) - std::max(from, p.at));
      if (dead > 0 && !p.written) {
        // p died with the process that took it: the restarted one paces q from the last step
        // whose time the status kept, which q must still follow by at least an interval.
        const step_line* w = nullptr;
        for (std::size_t j = k; j-- > 0;) {
          if (!in_run.contains(list[j].phase)) break;
          if (list[j].written) {
            w = &list[j];
            break;
          }
        }
        if (w && q.at - w->at < interval.count()) {
          rep.violations.push_back(canary + ": " + w->phase + "/" + std::to_string(w->iterations) + " -> " + q.phase +
                                   "/" + std::to_string(q.iterations) + " after " + std::to_string(q.at - w->at) +
                                   " ms across a restart");
        }
        continue;
      }
      // A SIGKILL between a step's status write and its log line loses the line, not the step:
      // then q follows p by n whole intervals (n - 1 steps unseen).
      std::int64_t n = 1;
      if (dead > 0) n = std::max<std::int64_t>(1, (gap - dead + interval.count() / 2) / interval.count());
      if (n > 1) rep.unseen += static_cast<std::size_t>(n - 1);
      ++rep.waits;
      rep.min_gap = std::min(rep.min_gap, gap);
      rep.max_gap = std::max(rep.max_gap, gap / n);
      const std::int64_t excess = gap - dead - n * interval.count();
      rep.max_excess_up = std::max(rep.max_excess_up, excess);
      if (gap < n * interval.count() || excess > slack_ms) {
        rep.violations.push_back(canary + ": " + p.phase + "/" + std::to_string(p.iterations) + " -> " + q.phase + "/" +
                                 std::to_string(q.iterations) + " after " + std::to_string(gap) + " ms (" +
                                 std::to_string(dead) + " ms down)");
      }
    }
  }
  return rep;
}

// Repeats and skips from canaryd's log: the lines of each rollout (from its release to the
// next release of that canary) must hold each of its step messages exactly once. A report is
// logged only after its step's status write landed, so a SIGKILL between the write and the log
// line loses it (the step itself is done: the status says so); such a loss is allowed only in
// a rollout during which canaryd was killed, and is counted in `lost`. More than once is always
// a repeated step.
std::vector<std::string> repeated_or_skipped(const std::vector<json::object>& lines, const std::vector<rollout>& all,
                                             int apps, const std::vector<std::pair<std::int64_t, std::int64_t>>& down,
                                             std::size_t* lost = nullptr) {
  std::vector<std::string> problems;
  for (int i = 0; i < apps; ++i) {
    const std::string id = app_name(i) + ".demo";
    std::vector<const rollout*> mine;
    for (const auto& r : all)
      if (r.app == i) mine.push_back(&r);
    std::vector<std::map<std::string, int>> counts(mine.size());
    int inits = 0;
    for (const auto& l : lines) {
      if (field(l, "canary") != id || field(l, "level") == "debug") continue;
      const std::string msg = field(l, "msg");
      if (msg.starts_with("Initialization done!")) ++inits;
      const std::int64_t at = parse_ms(field(l, "ts"));
      for (std::size_t k = 0; k < mine.size(); ++k) {
        const std::int64_t until = k + 1 < mine.size() ? mine[k + 1]->released_ms : (std::int64_t{1} << 62);
        if (at >= mine[k]->released_ms && at < until) counts[k][msg]++;
      }
    }
    if (inits != 1) problems.push_back(id + ": \"Initialization done!\" logged " + std::to_string(inits) + " times");
    for (std::size_t k = 0; k < mine.size(); ++k) {
      const auto& r = *mine[k];
      bool killed = false;
      for (const auto& [from, to] : down) killed = killed || (from < r.finished_ms && to > r.released_ms);
      auto expect = [&](const std::string& msg, int n) {
        const int got = counts[k][msg];
        if (got == n) return;
        if (got == 0 && n == 1 && killed) {
          if (lost) ++*lost;
          return;
        }
        problems.push_back(id + " release " + r.tag + ": \"" + msg + "\" logged " + std::to_string(got) + " times, not " +
                           std::to_string(n));
      };
      expect("New revision detected! Scaling up " + app_name(i) + ".demo", 1);
      if (r.bad) {
        expect("Canary failed! Scaling down " + id, 1);
        expect("Promotion completed! Scaling down " + id, 0);
        for (int it = 1; it <= 3; ++it) expect("Advance " + id + " canary iteration " + std::to_string(it) + "/3", 0);
      } else {
        for (int it = 1; it <= 3; ++it) expect("Advance " + id + " canary iteration " + std::to_string(it) + "/3", 1);
        expect("Copying " + id + " template spec to " + app_name(i) + "-primary.demo", 1);
        expect("Promotion completed! Scaling down " + id, 1);
        expect("Canary failed! Scaling down " + id, 0);
      }
    }
  }
  return problems;
}

// Events: each step message's Events (one per canaryd process that aggregated it) count it at
// most as often as the releases that deserved it. Events are best effort (a SIGKILL or an API
// fault can lose one), so fewer is allowed; more is a repeated step.
std::vector<std::string> repeated_events(const kubesim_instance& sim, const std::vector<rollout>& all, int apps) {
  std::vector<std::string> problems;
  auto v = get_json(sim, {"events"});
  if (v.is_null()) return {"cannot list Events"};
  std::map<std::string, std::int64_t> counts;
  for (const auto& e : v.at("items").as_array()) {
    if (str_at(e, {"involvedObject", "kind"}) != "Canary") continue;
    counts[str_at(e, {"message"})] += e.at("count").to_number<std::int64_t>();
  }
  for (int i = 0; i < apps; ++i) {
    const std::string id = app_name(i) + ".demo";
    std::int64_t good = 0, bad = 0;
    for (const auto& r : all) {
      if (r.app == i) (r.bad ? bad : good)++;
    }
    auto at_most = [&](const std::string& msg, std::int64_t n) {
      if (counts[msg] > n)
        problems.push_back("Event \"" + msg + "\" counted " + std::to_string(counts[msg]) + " times, at most " +
                           std::to_string(n) + " deserved");
    };
    at_most("Initialization done! " + id, 1);
    at_most("New revision detected! Scaling up " + app_name(i) + ".demo", good + bad);
    for (int it = 1; it <= 3; ++it) at_most("Advance " + id + " canary iteration " + std::to_string(it) + "/3", good);
    at_most("Promotion completed! Scaling down " + id, good);
    at_most("Canary failed! Scaling down " + id, bad);
  }
  return problems;
}

std::string join(const std::vector<std::string>& v, std::size_t max = 30) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) s += v[i] + "\n";
  if (v.size() > max) s += "... " + std::to_string(v.size() - max) + " more\n";
  return s;
}

double seconds(std::int64_t ms) { return static_cast<double>(ms) / 1000.0; }

}  // namespace

TEST_CASE("canaryd killed with SIGKILL at random moments: every rollout ends as deserved, paced exactly, no step twice") {
  const int apps = env_int("RELIABILITY_CANARIES", 4);
  const int rollouts = env_int("RELIABILITY_ROLLOUTS", 20);
  const std::int64_t slack_ms = env_int("RELIABILITY_SLACK_MS", 300);
  const int rounds = (rollouts + apps - 1) / apps;
  std::mt19937 rng(static_cast<unsigned>(env_int("RELIABILITY_SEED", static_cast<int>(std::random_device{}()))));

  fleet f(apps);
  std::vector<rollout> all;
  std::vector<std::pair<std::int64_t, std::int64_t>> down;
  // The sampler: a ready pod behind every apex Service, checked continuously from its own thread.
  std::atomic<bool> sampling{true};
  std::atomic<int> round_no{0};
  std::size_t samples = 0;
  std::vector<std::string> unserved;
  std::thread sampler([&] {
    while (sampling) {
      if (auto missing = apex_without_ready_pod(f.sim, apps)) {
        ++samples;
        for (auto& m : *missing) unserved.push_back("round " + std::to_string(round_no.load()) + ": " + m);
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  std::uniform_int_distribution<int> between_kills(300, 2500);
  auto next_kill = std::chrono::steady_clock::now() + std::chrono::milliseconds(between_kills(rng));
  for (int r = 0; r < rounds; ++r) {
    const std::string tag = "6.1." + std::to_string(r + 1);
    // One release in four deserves a rollback, a different app each round.
    auto bad = [&](int i) { return (r + i) % 4 == 3; };
    round_no = r + 1;
    auto rs = f.round(tag, bad, [&] {
      if (std::chrono::steady_clock::now() < next_kill) return;
      const std::int64_t killed = now_ms();
      f.canaryd.kill9();
      f.canaryd.start();
      down.emplace_back(killed, now_ms());
      next_kill = std::chrono::steady_clock::now() + std::chrono::milliseconds(between_kills(rng));
    });
    all.insert(all.end(), rs.begin(), rs.end());
  }
  sampling = false;
  sampler.join();
  f.canaryd.stop();
  const auto lines = f.canaryd.lines();

  check_outcomes(all, {});
  CHECK_MESSAGE(unserved.empty(), join(unserved));
  std::size_t lost = 0;
  const auto repeats = repeated_or_skipped(lines, all, apps, down, &lost);
  CHECK_MESSAGE(repeats.empty(), join(repeats));
  const auto event_repeats = repeated_events(f.sim, all, apps);
  CHECK_MESSAGE(event_repeats.empty(), join(event_repeats));
  const auto pacing = measure_pacing(lines, slack_ms, down);
  CHECK_MESSAGE(pacing.violations.empty(), join(pacing.violations));
  CHECK(pacing.waits >= all.size());
  std::int64_t downtime = 0;
  for (const auto& [a, b] : down) downtime += b - a;
  MESSAGE("crash consistency: " << all.size() << " rollouts over " << apps << " canaries, " << down.size()
                                << " SIGKILLs (down " << seconds(downtime) << " s in all), " << samples
                                << " apex samples, " << unserved.size() << " unserved; " << pacing.waits
                                << " waits: min " << pacing.min_gap << " ms, max " << pacing.max_gap
                                << " ms, max excess over the interval with downtime excluded " << pacing.max_excess_up
                                << " ms; " << repeats.size() + event_repeats.size() << " repeated or skipped steps; "
                                << lost + pacing.unseen
                                << " step reports lost to a SIGKILL between the step's write and its log line");
}

TEST_CASE("under 10% 500s, 10% 429s, 100 ms latency and watch cuts every 3 s rollouts take at most twice as long, no step twice") {
  const int apps = env_int("RELIABILITY_CANARIES", 4);
  const int fault_rounds = env_int("RELIABILITY_FAULT_ROUNDS", 2);
  fleet f(apps);
  auto bad = [](int i) { return i % 4 == 3; };

  // Fault-free: each app's time from release to its terminal phase.
  auto baseline = f.round("6.2.0", bad, {});
  check_outcomes(baseline, {});
  std::map<int, std::int64_t> fault_free;
  for (const auto& r : baseline) fault_free[r.app] = r.finished_ms - r.released_ms;

  const std::string api = f.sim.api_url();
  auto faults = [&](const std::string& body) {
    auto r = http_call("POST", api + "/kubesim/faults", body);
    REQUIRE_MESSAGE((r && r->status == 200), "POST /kubesim/faults " << body << ": " << (r ? r->body : "no answer"));
  };
  auto stats = [&]() {
    auto r = http_call("GET", api + "/kubesim/stats");
    REQUIRE(r);
    return json::parse(r->body);
  };
  REQUIRE(http_call("DELETE", api + "/kubesim/stats"));
  const auto steps_before = f.canaryd.lines().size();
  faults(R"({"error_rate":0.1,"throttle_rate":0.1,"latency_ms":100,"user_agent":"canaryd"})");
  std::vector<rollout> faulted;
  auto next_cut = std::chrono::steady_clock::now() + 3s;
  int cuts = 0;
  for (int k = 0; k < fault_rounds; ++k) {
    auto rs = f.round("6.2." + std::to_string(k + 1), bad, [&] {
      if (std::chrono::steady_clock::now() < next_cut) return;
      faults(R"({"drop_watches":true})");
      ++cuts;
      next_cut += 3s;
    });
    faulted.insert(faulted.end(), rs.begin(), rs.end());
  }
  auto st = stats();
  faults(R"({"error_rate":0,"throttle_rate":0,"latency_ms":0,"user_agent":""})");
  f.canaryd.stop();
  const auto lines = f.canaryd.lines();

  check_outcomes(faulted, {});
  std::vector<rollout> every = baseline;
  every.insert(every.end(), faulted.begin(), faulted.end());
  const auto repeats = repeated_or_skipped(lines, every, apps, {});
  CHECK_MESSAGE(repeats.empty(), join(repeats));
  const auto event_repeats = repeated_events(f.sim, every, apps);
  CHECK_MESSAGE(event_repeats.empty(), join(event_repeats));

  double worst = 0;
  for (const auto& r : faulted) {
    const double ratio = static_cast<double>(r.finished_ms - r.released_ms) / static_cast<double>(fault_free[r.app]);
    worst = std::max(worst, ratio);
    INFO(app_name(r.app) << " release " << r.tag << ": " << (r.finished_ms - r.released_ms) << " ms, fault-free "
                         << fault_free[r.app] << " ms");
    CHECK(ratio <= 2.0);
  }
  std::size_t steps = 0;
  for (std::size_t k = steps_before; k < lines.size(); ++k) steps += field(lines[k], "msg") == "analysis step";
  const auto& codes = st.at("by_code").as_object();
  auto code = [&](const char* c) { return codes.contains(c) ? codes.at(c).to_number<std::int64_t>() : 0; };
  const std::int64_t conflicts = code("409");
  const double per_step = steps ? static_cast<double>(conflicts) / static_cast<double>(steps) : 0;
  const auto pacing = measure_pacing(lines, 1 << 20, {});
  MESSAGE("API faults: " << faulted.size() << " rollouts over " << apps << " canaries, " << cuts
                         << " watch cuts; requests: " << st.at("total").to_number<std::int64_t>() << " (" << code("500")
                         << " 500s, " << code("429") << " 429s, " << conflicts << " 409s); " << steps << " steps, "
                         << per_step << " conflicts per step; slowest rollout " << worst
                         << "x its fault-free time; waits min " << pacing.min_gap << " ms, max " << pacing.max_gap
                         << " ms");
  CHECK(per_step <= 1.0);
  CHECK(pacing.min_gap >= interval.count());
}

namespace {

// The Canary Events of `app`, oldest first (kubesim's resourceVersions grow with every write):
// (message, count) pairs.
std::vector<std::pair<std::string, std::int64_t>> events_in_order(const kubesim_instance& sim, const std::string& app) {
  std::vector<std::tuple<std::int64_t, std::string, std::int64_t>> rows;
  auto v = get_json(sim, {"events"});
  if (v.is_null()) return {};
  for (const auto& e : v.at("items").as_array()) {
    if (str_at(e, {"involvedObject", "kind"}) != "Canary" || str_at(e, {"involvedObject", "name"}) != app) continue;
    const std::string rv = str_at(e, {"metadata", "resourceVersion"});
    rows.emplace_back(rv.empty() ? 0 : std::stoll(rv), str_at(e, {"message"}), e.at("count").to_number<std::int64_t>());
  }
  std::sort(rows.begin(), rows.end());
  std::vector<std::pair<std::string, std::int64_t>> out;
  for (auto& [_, m, n] : rows) out.emplace_back(std::move(m), n);
  return out;
}

// The run's step Events of a good release of app0, in the order canaryd records them.
std::vector<std::string> good_run_events() {
  return {"New revision detected! Scaling up app0.demo", "Advance app0.demo canary iteration 1/3",
          "Advance app0.demo canary iteration 2/3", "Advance app0.demo canary iteration 3/3",
          "Copying app0.demo template spec to app0-primary.demo", "Promotion completed! Scaling down app0.demo"};
}

// Whether `want` appear in `events`, in this order, each with count n (Events aggregate by message).
std::string check_run_events(const std::vector<std::pair<std::string, std::int64_t>>& events,
                             const std::vector<std::string>& want, std::int64_t n) {
  std::size_t at = 0;
  std::string problems;
  for (const auto& w : want) {
    std::int64_t count = 0;
    std::size_t first = events.size();
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (events[i].first != w) continue;
      count += events[i].second;
      first = std::min(first, i);
    }
    if (count != n) problems += "\"" + w + "\" counted " + std::to_string(count) + ", not " + std::to_string(n) + "\n";
    if (first < events.size()) {
      if (first < at) problems += "\"" + w + "\" out of order\n";
      at = first;
    }
  }
  return problems;
}

}  // namespace

TEST_CASE("Event writes answered 500 are retried in order, a few times, without holding the canary back") {
  fleet f(1);
  const std::string api = f.sim.api_url();
  auto faults = [&](const std::string& body) {
    auto r = http_call("POST", api + "/kubesim/faults", body);
    REQUIRE_MESSAGE((r && r->status == 200), "POST /kubesim/faults " << body << ": " << (r ? r->body : "no answer"));
    return json::parse(r->body);
  };
  auto fault_state = [&]() { return json::parse(http_call("GET", api + "/kubesim/faults")->body); };
  auto none = [](int) { return false; };

  // The next three Event creates of canaryd get a 500: the first of the run's Events is tried
  // four times, and those behind it wait for it.
  faults(R"({"user_agent":"canaryd","path_contains":"/events","method":"POST","fail_next":3})");
  auto first = f.round("6.3.1", none, {});
  check_outcomes(first, {});
  CHECK(fault_state().at("fail_next").to_number<std::int64_t>() == 0);  // all three were Event creates of canaryd
  std::string problems;
  const bool written = eventually(
      [&] {
        problems = check_run_events(events_in_order(f.sim, "app0"), good_run_events(), 1);
        return problems.empty();
      },
      20s);
  CHECK_MESSAGE(written, problems);

  // Every Event write fails (creates and the count patches of repeats): each is tried a
  // bounded number of times, and the canary goes on at its own pace.
  REQUIRE(http_call("DELETE", api + "/kubesim/stats"));
  faults(R"({"method":"","error_rate":1})");
  const std::size_t lines_before = f.canaryd.lines().size();
  auto second = f.round("6.3.2", none, {});
  check_outcomes(second, {});
  const auto baseline = first[0].finished_ms - first[0].released_ms;
  const auto blocked = second[0].finished_ms - second[0].released_ms;
  INFO("fault-free run " << baseline << " ms, with every Event write failing " << blocked << " ms");
  CHECK(blocked <= baseline + 3000);
  // The writer works through what was recorded meanwhile, one Event's tries after another: wait
  // until no 500 came for 4 s.
  auto failed_writes = [&]() -> std::int64_t {
    auto stats = json::parse(http_call("GET", api + "/kubesim/stats")->body);
    const auto& codes = stats.at("by_code").as_object();
    return codes.contains("500") ? codes.at("500").to_number<std::int64_t>() : 0;
  };
  std::int64_t failed = failed_writes();
  for (int quiet = 0; quiet < 8;) {
    std::this_thread::sleep_for(500ms);
    const auto now = failed_writes();
    quiet = now == failed ? quiet + 1 : 0;
    failed = now;
  }
  faults(R"({"error_rate":0,"path_contains":"","method":"","user_agent":""})");
  // Each Event given up logs its tries: together they are every 500 kubesim answered.
  std::int64_t given_up = 0, tries = 0, most = 0;
  const auto lines = f.canaryd.lines();
  for (std::size_t k = lines_before; k < lines.size(); ++k) {
    const std::string msg = field(lines[k], "msg");
    if (!msg.starts_with("cannot write event after ") && !msg.starts_with("cannot update event ")) continue;
    const auto at = msg.find(" after ");
    REQUIRE(at != std::string::npos);
    const std::int64_t n = std::atoll(msg.c_str() + at + 7);
    ++given_up;
    tries += n;
    most = std::max(most, n);
  }
  MESSAGE("a total Event outage during a run: " << given_up << " Events given up after " << tries
                                                << " tries in all (at most " << most << " each); kubesim answered "
                                                << failed << " 500s");
  CHECK(given_up >= static_cast<std::int64_t>(good_run_events().size()));
  CHECK(most <= 5);
  CHECK(tries == failed);

  // Once Event writes work again, the next run's Events are all there, once each, in order.
  auto third = f.round("6.3.3", none, {});
  check_outcomes(third, {});
  const bool later = eventually(
      [&] {
        auto evs = events_in_order(f.sim, "app0");
        problems = check_run_events(evs, {"Advance app0.demo canary iteration 1/3"}, 2);
        problems += check_run_events(evs, {"Promotion completed! Scaling down app0.demo"}, 2);
        return problems.empty();
      },
      30s);
  CHECK_MESSAGE(later, problems);
  f.canaryd.stop();
}
