#include "sim/world/emulator.hpp"

#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <stdexcept>

#include "k8s/http_server.hpp"
#include "k8s/log.hpp"

namespace kubesim::world {

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace log = canaryd::log;
using clock = std::chrono::steady_clock;

namespace {

// After a stall (a stopped process, a loaded machine) at most this much time is caught up at
// once, so counters never jump by minutes.
constexpr double max_catch_up_seconds = 10;

struct ticker {
  ticker(asio::any_io_executor ex, std::shared_ptr<traffic_world> w, std::chrono::milliseconds p)
      : world(std::move(w)), timer(std::move(ex)), period(p) {}
  std::shared_ptr<traffic_world> world;
  asio::steady_timer timer;
  std::chrono::milliseconds period;
  clock::time_point last = clock::now();
};

// The handler holds a weak reference: once the emulator (and so the ticker and its timer) is
// gone, a late completion does nothing.
void schedule(const std::shared_ptr<ticker>& t) {
  t->timer.expires_after(t->period);
  t->timer.async_wait([weak = std::weak_ptr<ticker>(t)](boost::system::error_code ec) {
    auto t = weak.lock();
    if (!t || ec) return;
    auto now = clock::now();
    double dt = std::chrono::duration<double>(now - t->last).count();
    t->last = now;
    t->world->tick(std::min(dt, max_catch_up_seconds));
    schedule(t);
  });
}

asio::awaitable<void> serve_metrics(std::shared_ptr<traffic_world> world, std::string method, std::string path,
                                    http::responder& out) {
  http::response res;
  if (path != "/metrics") {
    res.status = 404;
    res.body = "404 page not found: kubesim serves /metrics here\n";
    http::set_header(res.headers, "Content-Type", "text/plain; charset=utf-8");
  } else if (method != "GET" && method != "HEAD") {
    res.status = 405;
    res.body = "method not allowed\n";
    http::set_header(res.headers, "Allow", "GET, HEAD");
  } else {
    if (method == "GET") res.body = world->metrics_text();
    http::set_header(res.headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  }
  auto ec = co_await out.send(std::move(res));
  if (ec) log::debug("metrics: response not sent", {{"error", ec.message()}});
}

class emulator_impl final : public traffic_emulator {
 public:
  emulator_impl(asio::any_io_executor ex, store& s, const emulator_options& opts)
      : world_(traffic_world::create(s, opts.default_rps)), ticker_(std::make_shared<ticker>(ex, world_, opts.tick)) {
    http::server_options so;
    so.listen = opts.metrics_listen;
    so.max_body_bytes = 64 * 1024;
    so.header_timeout = std::chrono::seconds(30);
    auto world = world_;
    auto srv = http::start_server(ex, so, [world](const http::request& req, const http::peer_info&, http::responder& out) {
      return serve_metrics(world, req.method, http::split_target(req.target).path, out);
    });
    if (!srv)
      throw std::runtime_error("cannot serve metrics on " + opts.metrics_listen + ": " + srv.error().message());
    server_ = std::move(*srv);
    world_->tick(0);  // the first plan, so the first scrape already sees the flows
    schedule(ticker_);
  }
  ~emulator_impl() override { stop(); }

  std::string metrics_address() const override { return server_->local_address(); }
  std::string metrics_url() const override { return "http://" + server_->local_address() + "/metrics"; }
  traffic_world& world() override { return *world_; }
  void stop() noexcept override {
    if (ticker_) ticker_->timer.cancel();
    ticker_.reset();
    if (server_) server_->stop();
  }

 private:
  std::shared_ptr<traffic_world> world_;
  std::shared_ptr<ticker> ticker_;
  std::unique_ptr<http::server> server_;
};

}  // namespace

std::unique_ptr<traffic_emulator> start_traffic_emulator(asio::any_io_executor ex, store& s, emulator_options opts) {
  return std::make_unique<emulator_impl>(std::move(ex), s, opts);
}

}  // namespace kubesim::world
