#include "daemon/app.hpp"

#include <fmt/format.h>

#include "core/version.hpp"
#include "daemon/metrics_registry.hpp"
#include "k8s/http_server.hpp"
#include "k8s/log.hpp"

namespace canaryd {
namespace {

namespace asio = boost::asio;

// One process-wide instance. Thread affinity: the io_context thread.
class app_impl final : public app {
 public:
  app_impl(asio::any_io_executor ex, options opts) : ex_(std::move(ex)), opts_(std::move(opts)) {
    metrics_.gauge("flagger_info", "Flagger version and mesh provider information", {"version", "mesh_provider"})
        .set({std::string(version()), opts_.mesh_provider}, 1);
  }

  std::optional<std::string> start() {
    http::server_options so;
    so.listen = fmt::format("{}:{}", opts_.listen_address.empty() ? "0.0.0.0" : opts_.listen_address, opts_.port);
    so.header_timeout = std::chrono::seconds(10);
    auto srv = http::start_server(ex_, so, [this](const http::request& req, const http::peer_info&,
                                                 http::responder& out) { return serve(req, out); });
    if (!srv) return fmt::format("cannot listen on {}: {}", so.listen, srv.error().message());
    server_ = std::move(*srv);
    log::info("canaryd started", {{"version", version()}, {"listen", server_->local_address()}});
    return std::nullopt;
  }

  void stop() override {
    if (stopping_) return;
    stopping_ = true;
    if (server_) server_->stop();
  }

 private:
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
      bool ready = is_ready();
      res.status = ready ? 200 : 503;
      res.body = ready ? "OK\n" : "caches not synced\n";
    } else if (parts.path == "/metrics") {
      http::set_header(res.headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
      res.body = metrics_.render();
    } else {
      res.status = 404;
      res.body = "not found\n";
    }
    co_await out.send(std::move(res));
  }

  bool is_ready() const { return !stopping_; }

  asio::any_io_executor ex_;
  options opts_;
  metrics_registry metrics_;
  std::unique_ptr<http::server> server_;
  bool stopping_ = false;
};

}  // namespace

boost::system::result<std::unique_ptr<app>, std::string> app::start(asio::any_io_executor ex, const options& opts) {
  auto a = std::make_unique<app_impl>(ex, opts);
  if (auto err = a->start()) return *err;
  return std::unique_ptr<app>(std::move(a));
}

}  // namespace canaryd
