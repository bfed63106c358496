#pragma once
// Test support for end-to-end canary scenarios: the real canaryd against kubesim on Flagger's
// podinfo Deployment and a `provider: kubernetes` Canary, read back through kubectl. Shared by
// tests/e2e/engine_test.cpp and tests/e2e/alerts_test.cpp. Blocking, for tests only; failures
// to set up fail the calling test (doctest REQUIRE).
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
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
// Flagger's podinfo Deployment from ../shared/reference (REQUIREd).
std::string podinfo_yaml();
// A blue/green (iterations 3, interval 1s, threshold 2) kubernetes-provider Canary in namespace
// demo; `analysis_extra` and `spec_extra` are YAML lines appended to spec.analysis and spec.
std::string canary_yaml(const std::string& name, const std::string& target, const std::string& analysis_extra = {},
                        const std::string& spec_extra = {});

struct daemon_run {
  std::unique_ptr<child> proc;
  int port = 0;
};
// canaryd on 127.0.0.1:<free port> with -log-level=info and `extra` flags; waits for "caches synced".
daemon_run start_canaryd(const kubesim_instance& sim, const std::vector<std::string>& extra = {});

// `kubectl -n demo get <what> -o json`, or null if kubectl fails.
boost::json::value get_json(const kubesim_instance& sim, const std::vector<std::string>& what);
// The string (or integer, as text) at `path`, or "".
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

// The (type, message) of the Events about a Canary, in creation order.
std::vector<std::pair<std::string, std::string>> canary_events(const kubesim_instance& sim, const std::string& canary);
bool has_event(const std::vector<std::pair<std::string, std::string>>& evs, const std::string& type,
               const std::string& text);
std::string dump(const std::vector<std::pair<std::string, std::string>>& evs);

// Applies canaryd's CRDs and creates namespace demo.
void setup_cluster(const kubesim_instance& sim);
// Deploys podinfo and the Canary (default: canary_yaml("podinfo", "podinfo")) and waits for Initialized.
void init_podinfo(const kubesim_instance& sim, const std::string& canary = canary_yaml("podinfo", "podinfo"));

}  // namespace canaryd::test
