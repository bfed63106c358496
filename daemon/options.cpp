#include "daemon/options.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <fmt/format.h>

#include "core/duration.hpp"

namespace canaryd {
namespace {

enum class kind { string, boolean, integer, number, duration, list, value, uinteger };

struct flag_def {
  std::string_view name;
  kind k;
  std::string_view help;
  std::function<std::optional<std::string>(options&, std::string_view)> set;
  std::string_view env = {};  // Flagger's environment fallback, used when the flag is not given
};

std::vector<std::string> split_list(std::string_view v) {
  std::vector<std::string> out;
  while (!v.empty()) {
    auto c = v.find(',');
    auto item = v.substr(0, c);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (c == std::string_view::npos) break;
    v.remove_prefix(c + 1);
  }
  return out;
}

std::optional<bool> parse_bool(std::string_view v) {
  // Go's strconv.ParseBool.
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") return false;
  return std::nullopt;
}

template <class T>
std::optional<T> parse_number(std::string_view v) {
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size()) return std::nullopt;
  return out;
}

auto str(std::string options::*m) {
  return [m](options& o, std::string_view v) -> std::optional<std::string> {
    o.*m = std::string(v);
    return std::nullopt;
  };
}
auto boolean(bool options::*m) {
  return [m](options& o, std::string_view v) -> std::optional<std::string> {
    auto b = parse_bool(v);
    if (!b) return fmt::format("invalid boolean value \"{}\"", v);
    o.*m = *b;
    return std::nullopt;
  };
}
auto duration(std::chrono::milliseconds options::*m) {
  return [m](options& o, std::string_view v) -> std::optional<std::string> {
    auto d = parse_go_duration(v);
    if (!d || d->count() <= 0) return fmt::format("invalid duration \"{}\"", v);
    o.*m = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    return std::nullopt;
  };
}
auto list(std::vector<std::string> options::*m) {
  return [m](options& o, std::string_view v) -> std::optional<std::string> {
    o.*m = split_list(v);
    return std::nullopt;
  };
}

// A flag whose value is checked (as its Go type would be) and then dropped.
auto ignored(kind k) {
  return [k](options&, std::string_view v) -> std::optional<std::string> {
    if (k == kind::boolean && !parse_bool(v)) return fmt::format("invalid boolean value \"{}\"", v);
    if (k == kind::integer && !parse_number<int>(v)) return fmt::format("invalid integer \"{}\"", v);
    if (k == kind::uinteger && !parse_number<unsigned long long>(v)) return fmt::format("invalid unsigned integer \"{}\"", v);
    return std::nullopt;
  };
}

// What Go's flag.PrintDefaults shows after a flag's usage: its default, unless it is the type's
// zero value. Written out because these are the defaults of `options` and of klog's flags;
// tests/daemon/options_test.cpp checks them against a default `options`.
const std::map<std::string_view, std::string_view>& go_defaults() {
  static const std::map<std::string_view, std::string_view> m = {
      {"log-level", "\"info\""},
      {"port", "8080"},
      {"metrics-server", "\"http://prometheus:9090\""},
      {"mesh-provider", "\"istio\""},
      {"selector-labels", "\"app,name,app.kubernetes.io/name\""},
      {"leader-election-namespace", "\"kube-system\""},
      {"leader-election-lease-duration", "1m0s"},
      {"leader-election-renew-deadline", "15s"},
      {"leader-election-retry-period", "5s"},
      {"kubeconfig-qps", "100"},
      {"kubeconfig-burst", "250"},
      {"slack-user", "\"flagger\""},
      {"enable-config-tracking", "true"},
      {"control-loop-interval", "10s"},
      {"threadiness", "2"},
      {"max-concurrent-ticks", "256"},
      {"zap-encoding", "\"json\""},
      {"ingress-annotations-prefix", "\"nginx.ingress.kubernetes.io\""},
      {"logtostderr", "true"},
      {"stderrthreshold", "2"},
      {"log_file_max_size", "1800"},
      {"log_backtrace_at", ":0"},
  };
  return m;
}

const std::vector<flag_def>& flags() {
  static const std::vector<flag_def> defs = {
      {"kubeconfig", kind::string, "Path to a kubeconfig. Only required if out-of-cluster.", str(&options::kubeconfig)},
      {"master", kind::string, "The address of the Kubernetes API server. Overrides any value in kubeconfig.", str(&options::master)},
      {"context", kind::string, "The kubeconfig context to use instead of current-context.", str(&options::context)},
      {"namespace", kind::string, "Namespace that canaryd would watch canary objects (default: all).", str(&options::namespace_)},
      {"log-level", kind::string, "Log level: debug, info, warn, error.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         if (v != "debug" && v != "info" && v != "warn" && v != "warning" && v != "error" && v != "fatal" && v != "panic")
           return fmt::format("invalid log level \"{}\" (want debug, info, warn or error)", v);
         o.log_level = std::string(v);
         return std::nullopt;
       }},
      {"port", kind::integer, "Port to listen on for /metrics, /healthz and /readyz.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto n = parse_number<int>(v);
         if (!n || *n < 0 || *n > 65535) return fmt::format("invalid port \"{}\"", v);
         o.port = *n;
         return std::nullopt;
       }},
      {"listen-address", kind::string, "Address to bind -port on (default: all interfaces).", str(&options::listen_address)},
      {"metrics-server", kind::string, "Prometheus URL used for the builtin metrics.", str(&options::metrics_server)},
      {"mesh-provider", kind::string, "Service mesh provider.", str(&options::mesh_provider)},
      {"selector-labels", kind::list, "Comma-separated list of labels used to select the target's pods.", list(&options::selector_labels)},
      {"include-label-prefix", kind::list, "Comma-separated label prefixes copied to primary objects; * for all.", list(&options::include_label_prefix)},
      {"enable-leader-election", kind::boolean, "Enable leader election.", boolean(&options::enable_leader_election)},
      {"leader-election-namespace", kind::string, "Namespace of the leader election Lease.", str(&options::leader_election_namespace)},
      {"leader-election-lease-duration", kind::duration, "How long a Lease holds without renewal (ours; Flagger: 60s).",
       duration(&options::leader_election_lease_duration)},
      {"leader-election-renew-deadline", kind::duration,
       "How long a leader keeps writing without a successful renewal; shorter than the lease (ours; Flagger: 15s).",
       duration(&options::leader_election_renew_deadline)},
      {"leader-election-retry-period", kind::duration, "How often the Lease is renewed or tried (ours; Flagger: 5s).",
       duration(&options::leader_election_retry_period)},
      {"kubeconfig-qps", kind::number, "Client-side QPS limit towards the API server.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto n = parse_number<double>(v);
         if (!n || *n <= 0) return fmt::format("invalid kubeconfig-qps \"{}\" (want a positive number)", v);
         o.kubeconfig_qps = *n;
         return std::nullopt;
       }},
      {"kubeconfig-burst", kind::integer, "Client-side burst towards the API server.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto n = parse_number<int>(v);
         if (!n || *n <= 0) return fmt::format("invalid kubeconfig-burst \"{}\" (want a positive integer)", v);
         o.kubeconfig_burst = *n;
         return std::nullopt;
       }},
      {"slack-url", kind::string, "Slack hook URL.", str(&options::slack_url), "SLACK_URL"},
      {"slack-token", kind::string, "Slack bot token.", str(&options::slack_token), "SLACK_TOKEN"},
      {"slack-proxy-url", kind::string, "Slack proxy URL.", str(&options::slack_proxy_url), "SLACK_PROXY_URL"},
      {"slack-user", kind::string, "Slack user name.", str(&options::slack_user)},
      {"slack-channel", kind::string, "Slack channel.", str(&options::slack_channel)},
      {"msteams-url", kind::string, "MS Teams incoming webhook URL.", str(&options::msteams_url), "MSTEAMS_URL"},
      {"msteams-proxy-url", kind::string, "MS Teams proxy URL.", str(&options::msteams_proxy_url), "MSTEAMS_PROXY_URL"},
      {"event-webhook", kind::string, "Webhook that receives every canary event.", str(&options::event_webhook), "EVENT_WEBHOOK_URL"},
      {"enable-config-tracking", kind::boolean, "Track ConfigMaps and Secrets referenced by targets.", boolean(&options::enable_config_tracking)},
      {"control-loop-interval", kind::duration, "Accepted for compatibility: canaryd wakes on events and due times, not on a loop.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto d = parse_go_duration(v);
         if (!d || d->count() <= 0) return fmt::format("invalid duration \"{}\"", v);
         o.control_loop_interval = *d;
         return std::nullopt;
       }},
      {"threadiness", kind::integer, "Accepted for compatibility: canaryd runs one thread.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto n = parse_number<int>(v);
         if (!n || *n <= 0) return fmt::format("invalid threadiness \"{}\"", v);
         o.threadiness = *n;
         return std::nullopt;
       }},
      {"max-concurrent-ticks", kind::integer,
       "Canary decisions in progress at once; the others queue in order (ours: bounds memory and API load when "
       "thousands of canaries start together).",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         auto n = parse_number<int>(v);
         if (!n || *n <= 0) return fmt::format("invalid max-concurrent-ticks \"{}\" (want a positive integer)", v);
         o.max_concurrent_ticks = *n;
         return std::nullopt;
       }},
      {"zap-encoding", kind::string, "Accepted for compatibility: logs are always JSON lines.",
       [](options& o, std::string_view v) -> std::optional<std::string> {
         if (v != "json" && v != "console") return fmt::format("invalid zap-encoding \"{}\"", v);
         o.zap_encoding = std::string(v);
         return std::nullopt;
       }},
      {"zap-replace-globals", kind::boolean, "Accepted for compatibility.", boolean(&options::zap_replace_globals)},
      {"ingress-annotations-prefix", kind::string, "Annotations prefix for NGINX ingresses.", str(&options::ingress_annotations_prefix)},
      {"ingress-class", kind::string, "Ingress class used for annotating HTTPProxy objects.", str(&options::ingress_class)},
      {"kubeconfig-service-mesh", kind::string, "Path to a kubeconfig for the service mesh control plane.", str(&options::kubeconfig_service_mesh)},
      {"cluster-name", kind::string, "Cluster name added to alerts.", str(&options::cluster_name)},
      {"no-cross-namespace-refs", kind::boolean, "Reject cross-namespace references in Canaries.", boolean(&options::no_cross_namespace_refs)},
      {"version", kind::boolean, "Print the version and exit.", boolean(&options::version)},
      {"help", kind::boolean, "Print this help and exit.", boolean(&options::help)},
      {"h", kind::boolean, "Print this help and exit.", boolean(&options::help)},
      // klog's flags (Flagger calls klog.InitFlags): accepted with their types checked, and
      // ignored, because canaryd has one logger (-log-level) and no klog.
      {"v", kind::value, "number for the log level verbosity (klog; accepted and ignored)", ignored(kind::integer)},
      {"vmodule", kind::value, "comma-separated list of pattern=N settings for file-filtered logging (klog; accepted and ignored)",
       ignored(kind::string)},
      {"logtostderr", kind::boolean, "log to standard error instead of files (klog; accepted and ignored)", ignored(kind::boolean)},
      {"alsologtostderr", kind::boolean, "log to standard error as well as files (klog; accepted and ignored)",
       ignored(kind::boolean)},
      {"stderrthreshold", kind::value, "logs at or above this threshold go to stderr (klog; accepted and ignored)",
       ignored(kind::string)},
      {"log_dir", kind::string, "If non-empty, write log files in this directory (klog; accepted and ignored)",
       ignored(kind::string)},
      {"log_file", kind::string, "If non-empty, use this log file (klog; accepted and ignored)", ignored(kind::string)},
      {"log_file_max_size", kind::uinteger, "Defines the maximum size a log file can grow to in MB (klog; accepted and ignored)",
       ignored(kind::uinteger)},
      {"log_backtrace_at", kind::value, "when logging hits line file:N, emit a stack trace (klog; accepted and ignored)",
       ignored(kind::string)},
      {"add_dir_header", kind::boolean, "If true, adds the file directory to the header of the log messages (klog; accepted and ignored)",
       ignored(kind::boolean)},
      {"skip_headers", kind::boolean, "If true, avoid header prefixes in the log messages (klog; accepted and ignored)",
       ignored(kind::boolean)},
      {"skip_log_headers", kind::boolean, "If true, avoid headers when opening log files (klog; accepted and ignored)",
       ignored(kind::boolean)},
      {"one_output", kind::boolean, "If true, only write logs to their native severity level (klog; accepted and ignored)",
       ignored(kind::boolean)},
  };
  return defs;
}

const flag_def* find_flag(std::string_view name) {
  for (const auto& f : flags())
    if (f.name == name) return &f;
  return nullptr;
}

}  // namespace

std::optional<std::string> parse_options(const std::vector<std::string>& args, options& out, const env_lookup& env) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a.size() < 2 || a[0] != '-') return fmt::format("unexpected argument \"{}\"", a);
    a.remove_prefix(a[1] == '-' ? 2 : 1);
    if (a.empty() || a[0] == '-' || a[0] == '=') return fmt::format("bad flag syntax: {}", args[i]);
    std::string_view name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    const flag_def* f = find_flag(name);
    if (f == nullptr) return fmt::format("flag provided but not defined: -{}", name);
    if (!has_value) {
      if (f->k == kind::boolean) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) return fmt::format("flag needs an argument: -{}", name);
        value = args[++i];
      }
    }
    if (auto err = f->set(out, value)) return fmt::format("invalid value \"{}\" for flag -{}: {}", value, name, *err);
  }
  // Flagger's fromEnv(): a non-empty environment variable wins over its flag.
  if (env) {
    for (const auto& f : flags()) {
      if (f.env.empty()) continue;
      if (auto v = env(f.env); v && !v->empty()) {
        if (auto err = f.set(out, *v)) return fmt::format("invalid value in ${}: {}", f.env, *err);
      }
    }
  }
  // client-go refuses a renew deadline that is not shorter than the lease: fencing needs the gap.
  if (out.leader_election_renew_deadline >= out.leader_election_lease_duration) {
    return std::string("-leader-election-renew-deadline must be shorter than -leader-election-lease-duration");
  }
  // Flagger (cmd/flagger/main.go): -namespace, when set, overrides -leader-election-namespace.
  if (!out.namespace_.empty()) out.leader_election_namespace = out.namespace_;
  return std::nullopt;
}

std::string usage() {
  // Go's flag.PrintDefaults: sorted by name; "  -name type" then the usage on the next line
  // after "    \t" (on the same line after a tab for a one-letter flag without a type),
  // and " (default X)" unless X is the zero value.
  std::vector<const flag_def*> sorted;
  for (const auto& f : flags()) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(), [](const flag_def* a, const flag_def* b) { return a->name < b->name; });
  std::string s = "Usage of canaryd:\n";
  for (const auto* f : sorted) {
    std::string_view type;
    switch (f->k) {
      case kind::string: type = " string"; break;
      case kind::integer: type = " int"; break;
      case kind::uinteger: type = " uint"; break;
      case kind::number: type = " float"; break;
      case kind::duration: type = " duration"; break;
      case kind::list: type = " string"; break;
      case kind::value: type = " value"; break;
      case kind::boolean: type = ""; break;
    }
    std::string line = fmt::format("  -{}{}", f->name, type);
    line += line.size() <= 4 ? "\t" : "\n    \t";
    line += f->help;
    if (!f->env.empty()) line += fmt::format(" (env ${} wins over the flag)", f->env);
    if (auto d = go_defaults().find(f->name); d != go_defaults().end()) line += fmt::format(" (default {})", d->second);
    s += line + "\n";
  }
  return s;
}

std::string version_text(std::string_view version) {
  return fmt::format(
      "canaryd {}\n"
      "A progressive delivery operator, Flagger-compatible: it reads flagger.app/v1beta1 Canary, MetricTemplate and "
      "AlertProvider resources unchanged and behaves as Flagger {} does, with Flagger's flags.\n",
      version, flagger_compatible_version);
}

}  // namespace canaryd
