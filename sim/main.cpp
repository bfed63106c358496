// kubesim: a simulated Kubernetes cluster (API server, workload controllers, traffic and metrics
// emulator, optional Prometheus child) for canaryd's tests and for dry runs on a laptop.
//
//   kubesim --listen 127.0.0.1:0 --kubeconfig-out PATH [--tls] [--prometheus] [--nodes N] ...
//
// When ready it prints exactly one JSON line on stdout:
//   {"event":"ready","api":"https://127.0.0.1:40123","kubeconfig":"PATH",
//    "metrics":"http://127.0.0.1:40124/metrics","prometheus":"http://127.0.0.1:40125"}
// and logs JSON lines on stderr. SIGTERM or SIGINT: clean shutdown, exit 0. Bad flags: exit 2.
// A startup failure (port in use, unwritable kubeconfig, Prometheus not starting): exit 1.
//
// One thread, one io_context.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <sys/stat.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "k8s/http_server.hpp"
#include "k8s/log.hpp"
#include "k8s/tls_cert.hpp"
#include "sim/api/faults.hpp"
#include "sim/api/server.hpp"
#include "sim/api/store.hpp"
#include "sim/world/controllers.hpp"
#include "sim/world/emulator.hpp"
#include "sim/world/knative.hpp"
#include "sim/world/keda.hpp"
#include "sim/world/prometheus.hpp"

namespace {

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace json = boost::json;
namespace log = canaryd::log;

constexpr std::string_view usage = R"(usage: kubesim [flags]

A simulated Kubernetes cluster: API server, workload controllers, traffic/metrics emulator.

  --listen HOST:PORT            API address (default 127.0.0.1:0: a free port)
  --kubeconfig-out PATH         write a kubeconfig for the API there (with --tls also
                                PATH.ca.crt, PATH.client.crt and PATH.client.key)
  --tls                         serve HTTPS with a generated CA; require a bearer token or a
                                client certificate signed by that CA
  --token USER:TOKEN[:EXPIRES]  accept this bearer token too (EXPIRES: unix seconds); repeatable
  --prometheus                  run /usr/bin/prometheus scraping the emulator (ready waits for
                                its first scrape)
  --prometheus-binary PATH      the Prometheus binary (default /usr/bin/prometheus)
  --metrics-listen HOST:PORT    the emulator's /metrics address (default 127.0.0.1:0)
  --default-rps N               simulated requests/s of a Service without kubesim.dev/rps (default 20)
  --nodes N                     simulated nodes (default 3)
  --node-label KEY=VALUE        a label on every node; repeatable
  --ready-after DURATION        readiness delay of new pods (Go duration, default 500ms)
  --watch-history N             changes kept per resource for watch resumption (default 10000)
  --bookmark-interval DURATION  period of watch BOOKMARK events (default 5s)
  --request-log PATH            append one JSON line per API request
  --seed N                      seed for names, uids and fault draws (default: random)
  --log-level LEVEL             debug, info, warn, error (default info)
  --fault-error-rate F          share of API requests answered 500 (0..1)
  --fault-throttle-rate F       share of API requests answered 429 (0..1)
  --fault-retry-after SECONDS   Retry-After of those 429s (default 1)
  --fault-latency DURATION      added latency of every API request
  --fault-user-agent TEXT       faults hit only requests whose User-Agent contains TEXT
  --fault-pause-controllers     start with the controllers paused
  --help                        this text

Admin endpoints: GET/POST /kubesim/faults, GET/DELETE /kubesim/stats, POST /kubesim/tokens.
)";

struct flags {
  std::string listen = "127.0.0.1:0";
  std::string kubeconfig_out;
  bool tls = false;
  std::vector<kubesim::bearer_token> tokens;
  bool prometheus = false;
  std::string prometheus_binary = "/usr/bin/prometheus";
  std::string metrics_listen = "127.0.0.1:0";
  std::optional<double> default_rps;
  int nodes = 3;
  std::map<std::string, std::string> node_labels;
  std::chrono::milliseconds ready_after{500};
  std::size_t watch_history = 10'000;
  std::chrono::milliseconds bookmark_interval{5'000};
  std::string request_log;
  std::uint64_t seed = 0;
  log::level level = log::level::info;
  kubesim::fault_settings faults;
};

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T>
T parse_number(std::string_view flag, std::string_view v) {
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) throw usage_error(fmt::format("{}: not a number: {}", flag, v));
  return out;
}

double parse_rate(std::string_view flag, std::string_view v) {
  char* end = nullptr;
  std::string s(v);
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(d >= 0 && d <= 1)) throw usage_error(fmt::format("{}: not a share in [0, 1]: {}", flag, v));
  return d;
}

std::chrono::milliseconds parse_duration(std::string_view flag, std::string_view v) {
  std::chrono::nanoseconds ns{};
  if (!kubesim::world::parse_go_duration(v, ns)) throw usage_error(fmt::format("{}: not a duration (like 500ms, 2s): {}", flag, v));
  return std::chrono::duration_cast<std::chrono::milliseconds>(ns);
}

kubesim::bearer_token parse_token(std::string_view v) {
  auto c1 = v.find(':');
  if (c1 == std::string_view::npos || c1 == 0 || c1 + 1 == v.size())
    throw usage_error(fmt::format("--token: expected USER:TOKEN[:EXPIRES_UNIX], got {}", v));
  kubesim::bearer_token t;
  t.user = std::string(v.substr(0, c1));
  auto rest = v.substr(c1 + 1);
  auto c2 = rest.find(':');
  t.token = std::string(rest.substr(0, c2));
  if (t.token.empty()) throw usage_error("--token: empty token");
  if (c2 != std::string_view::npos) {
    auto secs = parse_number<std::int64_t>("--token expiry", rest.substr(c2 + 1));
    t.expires = std::chrono::system_clock::time_point(std::chrono::seconds(secs));
  }
  return t;
}

// Returns nullopt when --help was given.
std::optional<flags> parse_flags(int argc, char** argv) {
  flags f;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) throw usage_error(fmt::format("{} needs a value", arg));
      return args[++i];
    };
    auto no_value = [&] {
      if (inline_value) throw usage_error(fmt::format("{} takes no value", arg));
    };
    if (arg == "--help" || arg == "-h") return std::nullopt;
    else if (arg == "--listen") f.listen = value();
    else if (arg == "--kubeconfig-out") f.kubeconfig_out = value();
    else if (arg == "--tls") no_value(), f.tls = true;
    else if (arg == "--token") f.tokens.push_back(parse_token(value()));
    else if (arg == "--prometheus") no_value(), f.prometheus = true;
    else if (arg == "--prometheus-binary") f.prometheus_binary = value();
    else if (arg == "--metrics-listen") f.metrics_listen = value();
    else if (arg == "--default-rps") {
      auto v = value();
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || d < 0) throw usage_error(fmt::format("--default-rps: not a rate: {}", v));
      f.default_rps = d;
    } else if (arg == "--nodes") {
      f.nodes = parse_number<int>(arg, value());
      if (f.nodes < 0 || f.nodes > 10'000) throw usage_error("--nodes: must be in [0, 10000]");
    } else if (arg == "--node-label") {
      auto v = value();
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0) throw usage_error(fmt::format("--node-label: expected KEY=VALUE, got {}", v));
      f.node_labels[v.substr(0, eq)] = v.substr(eq + 1);
    } else if (arg == "--ready-after") f.ready_after = parse_duration(arg, value());
    else if (arg == "--watch-history") {
      f.watch_history = parse_number<std::size_t>(arg, value());
      if (f.watch_history == 0) throw usage_error("--watch-history: must be positive");
    } else if (arg == "--bookmark-interval") {
      f.bookmark_interval = parse_duration(arg, value());
      if (f.bookmark_interval.count() <= 0) throw usage_error("--bookmark-interval: must be positive");
    } else if (arg == "--request-log") f.request_log = value();
    else if (arg == "--seed") f.seed = parse_number<std::uint64_t>(arg, value());
    else if (arg == "--log-level") {
      auto v = value();
      if (!log::parse_level(v, f.level)) throw usage_error(fmt::format("--log-level: unknown level {}", v));
    } else if (arg == "--fault-error-rate") f.faults.error_rate = parse_rate(arg, value());
    else if (arg == "--fault-throttle-rate") f.faults.throttle_rate = parse_rate(arg, value());
    else if (arg == "--fault-retry-after") f.faults.retry_after_seconds = parse_number<int>(arg, value());
    else if (arg == "--fault-latency") f.faults.latency = parse_duration(arg, value());
    else if (arg == "--fault-user-agent") f.faults.user_agent = value();
    else if (arg == "--fault-pause-controllers") no_value(), f.faults.pause_controllers = true;
    else throw usage_error(fmt::format("unknown flag {}", args[i]));
  }
  if (f.faults.error_rate + f.faults.throttle_rate > 1)
    throw usage_error("--fault-error-rate and --fault-throttle-rate add up to more than 1");
  return f;
}

std::string base64(std::string_view in) {
  static constexpr char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out += {t[(n >> 18) & 63], t[(n >> 12) & 63], t[(n >> 6) & 63], t[n & 63]};
  }
  if (i + 1 == in.size()) {
    std::uint32_t n = std::uint8_t(in[i]) << 16;
    out += {t[(n >> 18) & 63], t[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    std::uint32_t n = (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out += {t[(n >> 18) & 63], t[(n >> 12) & 63], t[(n >> 6) & 63], '='};
  }
  return out;
}

std::string random_token() {
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 4; ++i) s += fmt::format("{:08x}", rd());
  return s;
}

void write_file(const std::filesystem::path& p, const std::string& text, bool secret) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(fmt::format("cannot write {}", p.string()));
  f << text;
  f.close();
  if (!f) throw std::runtime_error(fmt::format("cannot write {}", p.string()));
  ::chmod(p.c_str(), secret ? 0600 : 0644);
}

struct tls_material {
  canaryd::tls::key_pair ca, server, client;
};

tls_material make_tls_material(const std::string& listen_host) {
  auto fail = [](std::string_view what, const boost::system::error_code& ec) {
    return std::runtime_error(fmt::format("cannot make the {}: {}", what, ec.message()));
  };
  tls_material m;
  auto ca = canaryd::tls::make_ca("kubesim-ca");
  if (!ca) throw fail("CA", ca.error());
  m.ca = *ca;
  canaryd::tls::leaf_options server;
  server.common_name = "kubesim";
  server.dns_names = {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"};
  server.ip_addresses = {"127.0.0.1", "::1"};
  if (!listen_host.empty() && listen_host != "127.0.0.1" && listen_host != "localhost" &&
      listen_host.find_first_not_of("0123456789.") == std::string::npos && listen_host != "0.0.0.0")
    server.ip_addresses.push_back(listen_host);
  auto s = canaryd::tls::make_leaf(m.ca, server);
  if (!s) throw fail("serving certificate", s.error());
  m.server = *s;
  canaryd::tls::leaf_options client;
  client.common_name = "kubesim-admin";
  client.organizations = {"system:masters"};
  client.server = false;
  client.client = true;
  auto c = canaryd::tls::make_leaf(m.ca, client);
  if (!c) throw fail("client certificate", c.error());
  m.client = *c;
  return m;
}

std::string kubeconfig_text(const std::string& server_url, const tls_material* tls, const std::string& token) {
  std::string cluster = fmt::format("    server: {}\n", server_url);
  std::string users;
  std::string contexts;
  if (tls) {
    cluster += fmt::format("    certificate-authority-data: {}\n", base64(tls->ca.cert_pem));
    users = fmt::format(
        "- name: kubesim-admin\n  user:\n    token: {}\n"
        "- name: kubesim-cert\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        token, base64(tls->client.cert_pem), base64(tls->client.key_pem));
    contexts =
        "- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim-admin\n    namespace: default\n"
        "- name: kubesim-cert\n  context:\n    cluster: kubesim\n    user: kubesim-cert\n    namespace: default\n";
  } else {
    users = "- name: kubesim-admin\n  user: {}\n";
    contexts = "- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim-admin\n    namespace: default\n";
  }
  return fmt::format(
      "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n{}contexts:\n{}current-context: kubesim\n"
      "preferences: {{}}\nusers:\n{}",
      cluster, contexts, users);
}

// Everything kubesim runs, owned by main's frame; destroyed after the io_context stops.
struct app {
  flags f;
  asio::io_context io;
  std::unique_ptr<kubesim::store> store;
  kubesim::fault_settings faults;
  std::unique_ptr<kubesim::api_server> api;
  std::unique_ptr<http::server> server;
  // World (sim/world): controllers, traffic emulator with /metrics, Prometheus child.
  std::unique_ptr<kubesim::world::controllers> controllers;
  std::unique_ptr<kubesim::world::knative_serving> knative;  // Knative Serving, once its CRDs exist
  std::unique_ptr<kubesim::world::keda_operator> keda;
  std::unique_ptr<kubesim::world::traffic_emulator> emulator;
  std::unique_ptr<kubesim::world::prometheus_child> prometheus;
  std::string api_url;
  int exit_code = 0;
  bool shutting_down = false;
};

// Runs after the synchronous setup: starts what needs awaiting (Prometheus), then prints the
// ready line. An exception here is a startup failure (exit 1).
asio::awaitable<void> finish_startup(app& a) {
  json::object ready{{"event", "ready"}, {"api", a.api_url}};
  if (!a.f.kubeconfig_out.empty()) ready["kubeconfig"] = a.f.kubeconfig_out;
  if (a.emulator) ready["metrics"] = a.emulator->metrics_url();
  // World hook: the Prometheus child scrapes the emulator; the ready line waits for its first scrape.
  if (a.f.prometheus && a.emulator) {
    kubesim::world::prometheus_options po;
    po.binary = a.f.prometheus_binary;
    po.scrape_target = a.emulator->metrics_address();
    auto ex = a.io.get_executor();
    a.prometheus = co_await kubesim::world::start_prometheus(ex, po);
    ready["prometheus"] = a.prometheus->url();
  }
  if (a.shutting_down) co_return;
  auto line = json::serialize(ready) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  log::info("kubesim ready", {{"api", a.api_url}});
}

asio::awaitable<void> shutdown(app& a) {
  if (a.shutting_down) co_return;
  a.shutting_down = true;
  // Stop serving first, then the world; Prometheus gets SIGTERM and a grace period.
  log::info("kubesim stopping");
  if (a.api) a.api->stop();
  if (a.server) a.server->stop();
  if (a.emulator) a.emulator->stop();
  a.knative.reset();
  if (a.keda) a.keda->stop();
  a.controllers.reset();
  if (a.prometheus) co_await a.prometheus->stop();
  a.io.stop();
}

void spawn_logged(app& a, asio::awaitable<void> task, std::string_view what, bool fatal) {
  asio::co_spawn(a.io, std::move(task), [&a, what = std::string(what), fatal](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      log::error(what, {{"error", x.what()}});
    }
    if (fatal) {
      a.exit_code = 1;
      a.io.stop();
    }
  });
}

int run(flags f) {
  log::set_sink(stderr);
  log::set_level(f.level);
  app a;
  a.f = std::move(f);
  a.faults = a.f.faults;

  kubesim::store_options so;
  so.history_limit = a.f.watch_history;
  so.seed = a.f.seed;
  a.store = kubesim::make_store(so);

  std::optional<tls_material> tls;
  std::string token;
  kubesim::api_options ao;
  ao.bookmark_interval = a.f.bookmark_interval;
  ao.request_log_path = a.f.request_log;
  ao.seed = a.f.seed;
  ao.tokens = a.f.tokens;
  // Fault injection reaches the controllers: POST /kubesim/faults {"pause_controllers":true}.
  ao.on_faults_changed = [&a](const kubesim::fault_settings& fs) {
    if (a.controllers && a.controllers->paused() != fs.pause_controllers) a.controllers->pause(fs.pause_controllers);
  };
  auto host = a.f.listen.substr(0, a.f.listen.rfind(':'));
  if (a.f.tls) {
    tls = make_tls_material(host);
    token = random_token();
    ao.require_auth = true;
    ao.tokens.push_back({"kubesim-admin", token, std::nullopt});
  }
  a.api = kubesim::make_api_server(a.io.get_executor(), *a.store, a.faults, ao);

  http::server_options hso;
  hso.listen = a.f.listen;
  // The API answers bodies over 3 MiB with a 413 Status itself; the transport limit is only a
  // guard against absurd uploads.
  hso.max_body_bytes = 64u << 20;
  if (tls) hso.tls = http::tls_server_config{tls->server.cert_pem, tls->server.key_pem, tls->ca.cert_pem};
  auto srv = http::start_server(a.io.get_executor(), hso, a.api->handler());
  if (!srv) throw std::runtime_error(fmt::format("cannot listen on {}: {}", a.f.listen, srv.error().message()));
  a.server = std::move(*srv);
  a.api->set_address(a.server->local_address());
  a.api_url = fmt::format("{}://{}", tls ? "https" : "http", a.server->local_address());

  // World hook: the simulated controllers (Deployments, ReplicaSets, DaemonSets, StatefulSets,
  // HPAs) and the traffic emulator serving /metrics.
  kubesim::world::controller_options co;
  co.nodes = a.f.nodes;
  co.node_labels = a.f.node_labels;
  co.ready_after = a.f.ready_after;
  co.seed = a.f.seed;
  a.controllers = std::make_unique<kubesim::world::controllers>(a.io.get_executor(), *a.store, co);
  if (a.faults.pause_controllers) a.controllers->pause(true);
  a.knative = std::make_unique<kubesim::world::knative_serving>(a.io.get_executor(), *a.store);
  // KEDA (sim/world/keda.hpp): acts once the ScaledObject CRD is installed.
  a.keda = kubesim::world::start_keda(a.io.get_executor(), *a.store);
  kubesim::world::emulator_options eo;
  eo.metrics_listen = a.f.metrics_listen;
  if (a.f.default_rps) eo.default_rps = *a.f.default_rps;
  a.emulator = kubesim::world::start_traffic_emulator(a.io.get_executor(), *a.store, eo);
  if (!a.f.kubeconfig_out.empty()) {
    std::filesystem::path p(a.f.kubeconfig_out);
    write_file(p, kubeconfig_text(a.api_url, tls ? &*tls : nullptr, token), true);
    if (tls) {
      write_file(p.string() + ".ca.crt", tls->ca.cert_pem, false);
      write_file(p.string() + ".client.crt", tls->client.cert_pem, false);
      write_file(p.string() + ".client.key", tls->client.key_pem, true);
    }
  }

  asio::signal_set signals(a.io, SIGTERM, SIGINT);
  signals.async_wait([&a](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("signal received", {{"signal", sig}});
    spawn_logged(a, shutdown(a), "shutdown failed", false);
  });

  spawn_logged(a, finish_startup(a), "kubesim failed to start", true);
  a.io.run();  // until shutdown() or a startup failure stops it

  // Let cancelled operations complete so every coroutine unwinds before the objects it uses
  // are destroyed; if something does not finish in time, leave without destructors.
  signals.cancel();
  a.shutting_down = true;
  if (a.api) a.api->stop();
  if (a.server) a.server->stop();
  if (a.emulator) a.emulator->stop();
  if (a.keda) a.keda->stop();
  a.controllers.reset();
  a.io.restart();
  a.io.run_for(std::chrono::seconds(3));
  if (!a.io.stopped()) {
    log::warn("shutdown did not drain in time; exiting without cleanup");
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(a.exit_code);
  }
  return a.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<flags> f;
  try {
    f = parse_flags(argc, argv);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "kubesim: %s\n(see kubesim --help)\n", e.what());
    return 2;
  }
  if (!f) {
    std::fwrite(usage.data(), 1, usage.size(), stdout);
    return 0;
  }
  try {
    return run(std::move(*f));
  } catch (const std::exception& e) {
    log::set_sink(stderr);
    log::error("kubesim failed to start", {{"error", e.what()}});
    return 1;
  }
}
