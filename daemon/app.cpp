#include "daemon/app.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <optional>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/version.hpp"
#include "daemon/alert_sender.hpp"
#include "daemon/canary_runner.hpp"
#include "daemon/cluster.hpp"
#include "daemon/leader_elector.hpp"
#include "daemon/metrics_registry.hpp"
#include "daemon/sd_notify.hpp"
#include "k8s/api_client.hpp"
#include "k8s/cache.hpp"
#include "k8s/config.hpp"
#include "k8s/http_server.hpp"
#include "k8s/log.hpp"

namespace canaryd {
namespace {

namespace asio = boost::asio;

const k8s::resource canaries_resource{"flagger.app", "v1beta1", "canaries", true};

// canaryd's own port serves a few clients (Prometheus, kubelet probes): beyond this many open
// connections it stops accepting until one closes, so a burst cannot grow the heap by ~10 KiB a
// connection (a probe of 10,000 connections took RSS from 9 to 127 MiB).
constexpr std::size_t max_http_connections = 256;
// How often freed heap memory is handed back to the system (see trim_memory()).
constexpr std::chrono::seconds trim_period{10};

// "name.namespace", Flagger's `canary` log field.
std::string canary_id(const k8s::object& o) {
  return fmt::format("{}.{}", o.name(), o.namespace_name());
}

// One process-wide instance. Thread affinity: the io_context thread.
class app_impl final : public app {
 public:
  app_impl(asio::any_io_executor ex, options opts) : ex_(std::move(ex)), opts_(std::move(opts)) {
    metrics_.include_process_metrics(true);  // as Flagger's default registry's process collector
    metrics_.gauge("flagger_info", "Flagger version and mesh provider information", {"version", "mesh_provider"})
        .set({std::string(version()), opts_.mesh_provider}, 1);
  }

  std::optional<std::string> start() {
    k8s::cluster_config cfg;
    try {
      cfg = k8s::load_config({opts_.kubeconfig, opts_.master, opts_.context, {}});
    } catch (const k8s::config_error& e) {
      return std::string(e.what());
    }
    // Flagger's -kubeconfig-service-mesh: the mesh objects (VirtualServices, DestinationRules,
    // HTTPRoutes...) live on the cluster that kubeconfig names, read and written with a client of
    // their own; Services and workloads stay on the main cluster. As Flagger's
    // BuildConfigFromFlags(masterURL, kubeconfigServiceMesh), -master overrides its server too.
    // On another API server the created mesh objects carry no ownerReference (Flagger's
    // setOwnerRefs = the hosts are equal).
    std::optional<k8s::cluster_config> mesh_cfg;
    if (!opts_.kubeconfig_service_mesh.empty()) {
      try {
        mesh_cfg = k8s::load_config({opts_.kubeconfig_service_mesh, opts_.master, {}, {}});
      } catch (const k8s::config_error& e) {
        return fmt::format("-kubeconfig-service-mesh: {}", e.what());
      }
      mesh_owner_references_ = mesh_cfg->server == cfg.server;
    }
    k8s::api_client_options co;
    co.qps = opts_.kubeconfig_qps;
    co.burst = opts_.kubeconfig_burst;
    co.user_agent = fmt::format("canaryd/{}", version());
    const std::string identity = opts_.enable_leader_election ? leader_identity() : std::string();
    if (!identity.empty()) co.user_agent += " (" + identity + ")";  // which replica sent a request
    auto client = k8s::api_client::create(ex_, cfg, co);
    if (!client) return fmt::format("cannot use the cluster configuration from {}: {}", cfg.source, client.error().what());
    client_ = std::move(*client);
    if (mesh_cfg) {
      auto mesh = k8s::api_client::create(ex_, *mesh_cfg, co);
      if (!mesh) {
        return fmt::format("-kubeconfig-service-mesh: cannot use the cluster configuration from {}: {}", mesh_cfg->source,
                           mesh.error().what());
      }
      mesh_client_ = std::move(*mesh);
    }
    if (opts_.enable_leader_election) {
      core::lease_timing timing{opts_.leader_election_lease_duration, opts_.leader_election_renew_deadline,
                                opts_.leader_election_retry_period};
      elector_ = std::make_unique<leader_elector>(*client_, opts_.leader_election_namespace, identity, timing);
      // The fence: only the leader, within its renew deadline, writes; reads and the Lease pass.
      client_->set_fence([this](const http::request& r) {
        return r.method == "GET" || r.target.starts_with("/apis/coordination.k8s.io/") || elector_->may_write();
      });
      if (mesh_client_) {
        mesh_client_->set_fence([this](const http::request& r) { return r.method == "GET" || elector_->may_write(); });
      }
    }

    http::server_options so;
    so.listen = fmt::format("{}:{}", opts_.listen_address.empty() ? "0.0.0.0" : opts_.listen_address, opts_.port);
    so.header_timeout = std::chrono::seconds(10);
    so.max_connections = max_http_connections;
    auto srv = http::start_server(ex_, so, [this](const http::request& req, const http::peer_info&,
                                                 http::responder& out) { return serve(req, out); });
    if (!srv) return fmt::format("cannot listen on {}: {}", so.listen, srv.error().message());
    server_ = std::move(*srv);
    log::info("canaryd starting", {{"version", version()},
                                   {"listen", server_->local_address()},
                                   {"server", cfg.server},
                                   {"source", cfg.source}});
    if (mesh_client_) {
      log::info("service mesh objects are on their own cluster",
                {{"server", mesh_client_->config().server},
                 {"source", mesh_client_->config().source},
                 {"ownerReferences", mesh_owner_references_ ? "set" : "not set (another API server)"}});
    }
    asio::co_spawn(ex_, trim_memory(), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::warn(fmt::format("memory trimming stopped: {}", ex.what()));
      }
    });
    asio::co_spawn(ex_, run(), [this](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        fail(fmt::format("internal error: {}", ex.what()));
      }
    });
    return std::nullopt;
  }

  void stop() override {
    if (stopping_) return;
    stopping_ = true;
    if (elector_) elector_->stop();
    notify("STOPPING=1");  // systemd Type=notify: the drain has begun
    if (runner_) runner_->stop();
    if (alerts_) alerts_->stop();
    for (auto* c : all_caches()) c->stop();
    if (server_) server_->stop();
    if (client_) client_->shutdown();
    if (mesh_client_) mesh_client_->shutdown();
    trim_timer_.cancel();
  }

  int exit_code() const override { return exit_code_; }
  bool stopping() const override { return stopping_; }

 private:
  // Checks that the API server answers and serves Canaries (as Flagger does at start: a
  // one-item list), then keeps the Canary cache running until stop().
  asio::awaitable<void> run() {
    k8s::list_options probe;
    probe.limit = 1;
    auto first = co_await client_->list(canaries_resource, opts_.namespace_, probe);
    if (stopping_) co_return;
    if (!first) {
      const auto& err = first.error();
      if (k8s::is_not_found(err))
        fail("the API server does not serve canaries.flagger.app/v1beta1: apply the CRDs in deploy/crds first");
      else
        fail(fmt::format("cannot reach the API server at {}: {}", client_->config().server, err.what()));
      co_return;
    }
    // The mesh cluster answers too, or the process ends now with its name rather than failing
    // every canary's reconcile later.
    if (mesh_client_) {
      auto version = co_await mesh_client_->request("GET", "/version");
      if (stopping_) co_return;
      if (!version) {
        fail(fmt::format("cannot reach the service mesh cluster at {} (-kubeconfig-service-mesh {}): {}",
                         mesh_client_->config().server, opts_.kubeconfig_service_mesh, version.error().what()));
        co_return;
      }
    }
    canaries_ = make_cache(resources::canaries);
    deployments_ = make_cache(resources::deployments);
    services_ = make_cache(resources::services);
    configmaps_ = make_cache(resources::configmaps);
    secrets_ = make_cache(resources::secrets);
    hpas_ = make_cache(resources::hpas);
    metric_templates_ = make_cache(resources::metric_templates);
    daemonsets_ = make_cache(resources::daemonsets);
    statefulsets_ = make_cache(resources::statefulsets);
    alert_providers_ = make_cache(resources::alert_providers);
    cluster_ = std::make_unique<cluster>(cluster{*client_, *canaries_, *deployments_, *services_, *configmaps_,
                                                 *secrets_, *hpas_, *metric_templates_, *daemonsets_,
                                                 *statefulsets_, mesh_client_.get(), mesh_owner_references_});
    alerts_ = std::make_unique<alert_sender>(ex_, *alert_providers_, *secrets_, opts_, metrics_);
    runner_ = std::make_unique<canary_runner>(ex_, *cluster_, opts_, *alerts_, metrics_);

    // Canary tasks start once every cache holds its first list: before that a task would see
    // a primary or Service as missing and try to create it.
    canaries_->subscribe({
        [this](const k8s::object_ptr& o) {
          log::info(fmt::format("canary {} added", canary_id(*o)),
                    {{"canary", canary_id(*o)}, {"resourceVersion", o->resource_version()}});
          if (all_synced_ && active()) runner_->add(o->key());
        },
        [this](const k8s::object_ptr&, const k8s::object_ptr& o) {
          log::info(fmt::format("canary {} updated", canary_id(*o)),
                    {{"canary", canary_id(*o)}, {"resourceVersion", o->resource_version()}});
          if (all_synced_ && active()) runner_->wake(o->key());
        },
        [this](const k8s::object_ptr& o) {
          log::info(fmt::format("canary {} deleted", canary_id(*o)), {{"canary", canary_id(*o)}});
          runner_->remove(o->key());
        },
    });
    route_changes(*deployments_, canary_runner::source::deployment);
    route_changes(*configmaps_, canary_runner::source::configmap);
    route_changes(*secrets_, canary_runner::source::secret);
    route_changes(*daemonsets_, canary_runner::source::daemonset);
    route_changes(*statefulsets_, canary_runner::source::statefulset);
    route_changes(*services_, canary_runner::source::service);
    for (auto* c : all_caches()) {
      c->on_synced([this] {
        if (++synced_caches_ != all_caches().size() || stopping_) return;
        all_synced_ = true;
        log::info("caches synced", {{"canaries", static_cast<std::int64_t>(canaries_->size())}});
        notify("READY=1");  // systemd Type=notify: ready once every cache holds its first list
        if (active()) start_canaries();
      });
    }
    for (auto* c : all_caches()) {
      if (c == canaries_.get()) continue;
      asio::co_spawn(ex_, c->run(), [this, what = c->options().res.plural](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          fail(fmt::format("internal error in the {} cache: {}", what, ex.what()));
        }
      });
    }
    if (elector_) {
      // A standby keeps its caches warm (they run already) and starts the canaries on taking over.
      asio::co_spawn(
          ex_,
          elector_->run([this] { if (all_synced_) start_canaries(); },
                        [this] { fail("leader election lost"); }),
          [this](std::exception_ptr e) {
            if (!e) return;
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              fail(fmt::format("internal error in leader election: {}", ex.what()));
            }
          });
    }
    co_await canaries_->run();
  }

  // glibc's free() returns memory to the system only from the top of the heap: after a burst
  // (connections, a large List, big Canaries deleted) the freed middle stays resident for good.
  // malloc_trim(0) gives back every free page; it costs a walk of the free lists, so it runs on
  // a period, not after each free. Ends when stop() cancels the timer.
  asio::awaitable<void> trim_memory() {
    while (!stopping_) {
      trim_timer_.expires_after(trim_period);
      auto [ec] = co_await trim_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec || stopping_) co_return;
#if defined(__GLIBC__)
      malloc_trim(0);
#endif
    }
  }

  // Whether this replica drives canaries: always, or while it holds the lease.
  bool active() const { return !elector_ || elector_->leading(); }

  void start_canaries() {
    for (const auto& o : canaries_->list()) runner_->add(o->key());
  }

  std::unique_ptr<k8s::cache> make_cache(const k8s::resource& r) {
    k8s::watch_options wo;
    wo.res = r;
    wo.namespace_name = opts_.namespace_;
    return std::make_unique<k8s::cache>(*client_, wo);
  }

  // Workload/Service/ConfigMap/Secret changes wake the canaries that depend on them.
  void route_changes(k8s::cache& c, canary_runner::source s) {
    auto touch = [this, s](const k8s::object_ptr& o) {
      if (all_synced_ && active()) runner_->changed(s, o->namespace_name(), o->name());
    };
    c.subscribe({touch, [touch](const k8s::object_ptr&, const k8s::object_ptr& o) { touch(o); }, touch});
  }

  std::vector<k8s::cache*> all_caches() const {
    std::vector<k8s::cache*> out;
    for (auto* p : {&canaries_, &deployments_, &services_, &configmaps_, &secrets_, &hpas_, &metric_templates_,
                    &alert_providers_, &daemonsets_, &statefulsets_})
      if (*p) out.push_back(p->get());
    return out;
  }

  // Tells systemd (if it started us with Type=notify) about a state change; a failure is logged
  // and otherwise ignored: systemd then times the start out, which names the problem.
  static void notify(std::string_view state) {
    if (auto err = sd_notify(state); !err.empty()) log::warn(err);
  }

  void fail(std::string message) {
    log::error(message);
    exit_code_ = 1;
    stop();
  }

  asio::awaitable<void> serve(const http::request& req, http::responder& out) {
    auto parts = http::split_target(req.target);
    http::response res;
    http::set_header(res.headers, "Content-Type", "text/plain; charset=utf-8");
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.body = "method not allowed\n";
    } else if (parts.path == "/healthz") {
      res.body = "OK\n";
    } else if (parts.path == "/readyz") {
      // /readyz: this replica drives canaries (synced and leading). /readyz?standby=true: it
      // drives them or is a synced standby that can take over at once; the manifests' readiness
      // probe uses it, so a rolling update can count a standby as available and proceed
      // (tests/e2e/rollout_test.cpp).
      const bool standby_ok = parts.param("standby") == std::optional<std::string_view>("true");
      const bool ready = standby_ok ? (!stopping_ && all_synced_) : is_ready();
      res.status = ready ? 200 : 503;
      res.body = ready ? "OK\n" : !all_synced_ ? "caches not synced\n" : stopping_ ? "stopping\n" : "standby\n";
    } else if (parts.path == "/metrics") {
      http::set_header(res.headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      res.body = metrics_.render();
    } else {
      res.status = 404;
      res.body = "not found\n";
    }
    co_await out.send(std::move(res));
  }

  // A standby is alive (/healthz) but not ready: it drives nothing.
  bool is_ready() const { return !stopping_ && all_synced_ && active(); }

  asio::any_io_executor ex_;
  options opts_;
  metrics_registry metrics_;
  std::unique_ptr<k8s::api_client> client_;
  std::unique_ptr<k8s::api_client> mesh_client_;  // -kubeconfig-service-mesh; null without it
  bool mesh_owner_references_ = true;
  std::unique_ptr<leader_elector> elector_;
  std::unique_ptr<http::server> server_;
  asio::steady_timer trim_timer_{ex_};
  std::unique_ptr<k8s::cache> canaries_, deployments_, services_, configmaps_, secrets_, hpas_, metric_templates_,
      alert_providers_, daemonsets_, statefulsets_;
  std::unique_ptr<cluster> cluster_;
  std::unique_ptr<alert_sender> alerts_;  // before runner_: the runner holds a reference
  std::unique_ptr<canary_runner> runner_;
  std::size_t synced_caches_ = 0;
  bool all_synced_ = false;
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace

boost::system::result<std::unique_ptr<app>, std::string> app::start(asio::any_io_executor ex, const options& opts) {
  auto a = std::make_unique<app_impl>(ex, opts);
  if (auto err = a->start()) return *err;
  return std::unique_ptr<app>(std::move(a));
}

}  // namespace canaryd
