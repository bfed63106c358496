#pragma once
// Helpers for end-to-end tests that run the real canaryd against kubesim with kubectl:
// Flagger's podinfo workload, Canary manifests, polling for phases, reading Events.
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

namespace canaryd::test {

std::string canaryd_path();
std::string read_text(const std::filesystem::path& p);
// Flagger's podinfo Deployment from ../shared/reference (the calling test fails without it).
std::string podinfo_yaml();
// A `provider: kubernetes` Canary in namespace demo: interval 1s, threshold 2, iterations 3.
std::string canary_yaml(const std::string& name, const std::string& target, const std::string& analysis_extra = {},
                        const std::string& spec_extra = {});

struct daemon_run {
  std::unique_ptr<child> proc;
  int port = 0;
};
// Starts canaryd against `sim` and waits until its caches are synced; `env` is added to its
// environment.
daemon_run start_canaryd(const kubesim_instance& sim, const std::vector<std::string>& extra_args = {},
                         const std::map<std::string, std::string>& env = {});

// `kubectl -n demo get <what> -o json`, or null when kubectl fails.
boost::json::value get_json(const kubesim_instance& sim, const std::vector<std::string>& what);
std::string str_at(const boost::json::value& v, std::initializer_list<std::string_view> path);
std::string phase_of(const kubesim_instance& sim, const std::string& canary);
std::int64_t replicas_of(const kubesim_instance& sim, const std::string& deployment);
std::string image_of(const kubesim_instance& sim, const std::string& deployment);

// Polls until `pred` holds or `limit` passes; returns whether it held.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit);
// Polls the canary's phase until it is `want` (or `limit` passes), recording each distinct
// phase seen, in order.
bool wait_phase(const kubesim_instance& sim, const std::string& canary, const std::string& want,
                std::chrono::milliseconds limit, std::vector<std::string>* seen = nullptr);

// The (type, message) of a Canary's Events, in creation order. One read from canary_events()
// remembers where it came from, so that has_event() can wait for an Event that is still on its
// way: canaryd writes Events from a queue after the status change they report (as client-go's
// recorder does), so a test that has just seen a phase or condition can read before it lands.
struct event_list : std::vector<std::pair<std::string, std::string>> {
  const kubesim_instance* sim = nullptr;
  std::string canary;
};
event_list canary_events(const kubesim_instance& sim, const std::string& canary);
// Whether an Event of `type` whose message contains `text` is in `evs`, or — for a list read by
// canary_events() — appears within 30 s (90 s under ASan; re-read every 100 ms). For "no such Event", use
// lacks_event(), which judges the list as read and does not wait.
bool has_event(const event_list& evs, const std::string& type, const std::string& text);
bool lacks_event(const event_list& evs, const std::string& type, const std::string& text);
std::string dump(const event_list& evs);

// Applies canaryd's CRDs and creates namespace demo.
void setup_cluster(const kubesim_instance& sim);
// Installs a provider's published CRDs (../shared/reference/crds/<provider>/*.yaml, the default
// set) with `kubectl create` (the HTTPRoute and DestinationRule CRDs are larger than
// client-side apply's last-applied annotation allows) and waits until they are Established.
// Returns false, with a message, when ../shared is missing: the calling test then skips.
bool install_published_crds(const kubesim_instance& sim, const std::string& provider);
// A new revision of podinfo: `kubectl set image` to ghcr.io/stefanprodan/podinfo:<tag>.
void release(const kubesim_instance& sim, const std::string& tag);
// `text` with every `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from, const std::string& to);
// A one-replica podinfo 6.0.0 Deployment `name` in namespace demo (label app=<name>, port http
// 9898): the target of the metric provider tests' canaries, one per scenario.
std::string metric_target_yaml(const std::string& name);
// kubesim's request log (--request-log): one object per request, in order (time, verb, method,
// path, query, resource, namespace, user, user_agent, code, duration_ms).
std::vector<boost::json::object> requests(const std::filesystem::path& log);
// Deploys podinfo, its Canary, and waits for Initialized.
void init_podinfo(const kubesim_instance& sim, const std::string& canary = canary_yaml("podinfo", "podinfo"));

// A webhook receiver (python3's http.server) on 127.0.0.1 that answers 200 and appends each
// POST, as {"path": ..., "body": <the JSON posted>}, to a JSON-lines file.
struct webhook_receiver {
  temp_dir dir;
  std::filesystem::path payloads = dir.path() / "payloads.jsonl";
  int port = free_port();
  std::unique_ptr<child> proc;

  webhook_receiver();
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  // The payloads received so far, in order.
  std::vector<boost::json::value> received() const;
};

std::string loadtester_path();
// A canary-loadtester (Flagger's load tester API) on 127.0.0.1; ready once it logged its start.
struct loadtester {
  int port = free_port();
  temp_dir dir;
  std::unique_ptr<child> proc;

  explicit loadtester(std::vector<std::string> extra = {});
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  // POSTs `body` to `path`; the calling test fails when there is no answer.
  http_reply post(const std::string& path, const std::string& body,
                  std::chrono::milliseconds limit = std::chrono::seconds(10));
};

}  // namespace canaryd::test
