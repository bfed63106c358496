#pragma once
// canaryd's command line: Flagger's flags, so a Flagger Deployment's args work unchanged.
// Go's flag syntax: `-name value`, `-name=value`, `--name value`, `--name=value`; a boolean
// flag alone means true and takes a value only as `-name=false`.
// Pure: no I/O; the environment is passed in (Flagger reads SLACK_URL etc. as fallbacks).
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace canaryd {

struct options {
  std::string kubeconfig;
  std::string master;
  std::string context;                 // ours: a kubeconfig context other than current-context
  std::string namespace_;              // watch only this namespace ("" = all)
  std::string log_level = "info";      // Flagger's binary defaults to debug; its chart sets info
  int port = 8080;
  std::string listen_address;          // ours: address for -port ("" = all interfaces)
  std::string metrics_server = "http://prometheus:9090";
  std::string mesh_provider = "istio";
  std::vector<std::string> selector_labels{"app", "name", "app.kubernetes.io/name"};
  std::vector<std::string> include_label_prefix;
  bool enable_leader_election = false;
  std::string leader_election_namespace = "kube-system";
  // Ours (Flagger's are fixed at client-go's 60 s / 15 s / 5 s): shorter ones make tests fast.
  std::chrono::milliseconds leader_election_lease_duration{60'000};
  std::chrono::milliseconds leader_election_renew_deadline{15'000};
  std::chrono::milliseconds leader_election_retry_period{5'000};
  double kubeconfig_qps = 100;
  int kubeconfig_burst = 250;
  std::string slack_url, slack_token, slack_proxy_url, slack_channel;
  std::string slack_user = "flagger";
  std::string msteams_url, msteams_proxy_url;
  std::string event_webhook;
  bool enable_config_tracking = true;
  std::chrono::milliseconds control_loop_interval{10'000};
  int threadiness = 2;                 // accepted for compatibility; canaryd is single-threaded
  int max_concurrent_ticks = 256;      // ours: canary ticks in progress at once (bench/README.md)
  std::string zap_encoding = "json";
  bool zap_replace_globals = false;
  std::string ingress_annotations_prefix = "nginx.ingress.kubernetes.io";
  std::string ingress_class;
  std::string kubeconfig_service_mesh;
  std::string cluster_name;
  bool no_cross_namespace_refs = false;
  bool version = false;
  bool help = false;
};

using env_lookup = std::function<std::optional<std::string>(std::string_view)>;

// Parses argv[1..]. Returns the error message for an unknown flag, a missing or bad value, or a
// stray argument; the caller prints it with the usage and exits 2.
std::optional<std::string> parse_options(const std::vector<std::string>& args, options& out,
                                         const env_lookup& env = {});

// The -help text as Go's flag package prints it: every flag, sorted, with its default.
std::string usage();

// The Flagger release whose behaviour canaryd follows (docs/compatibility.md).
inline constexpr std::string_view flagger_compatible_version = "1.44.0";

// The -version text: canaryd's version, what it is, and the Flagger version it is compatible with.
std::string version_text(std::string_view version);


}  // namespace canaryd
