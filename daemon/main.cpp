// canaryd: wires the flags, the Kubernetes client, the caches, the HTTP endpoints and the
// signal handling together on one io_context. Everything it runs lives in the library.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/version.hpp"
#include "daemon/app.hpp"
#include "daemon/options.hpp"
#include "k8s/log.hpp"

int main(int argc, char** argv) {
  using namespace canaryd;
  options opts;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto err = parse_options(args, opts, [](std::string_view k) -> std::optional<std::string> {
    if (const char* v = std::getenv(std::string(k).c_str())) return std::string(v);
    return std::nullopt;
  });
  if (err) {
    std::fprintf(stderr, "canaryd: %s\n%s", err->c_str(), usage().c_str());
    return 2;
  }
  if (opts.help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (opts.version) {
    std::fputs(version_text(version()).c_str(), stdout);
    return 0;
  }
  log::level lvl{};
  log::parse_level(opts.log_level, lvl);
  log::set_level(lvl);
  log::set_sink(stdout);

  boost::asio::io_context io;
  // Startup errors (bad kubeconfig, port in use) end the process with one clear line.
  auto d = app::start(io.get_executor(), opts);
  if (!d) {
    log::error(d.error());
    std::fprintf(stderr, "canaryd: %s\n", d.error().c_str());
    return 1;
  }

  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> drain_deadline;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("shutting down", {{"signal", sig}});
    drain_deadline = clock::now() + std::chrono::milliseconds(1500);
    (*d)->stop();
  });
  // Runs until every task has drained after a stop, or abandons them at the drain deadline.
  for (;;) {
    io.run_for(std::chrono::milliseconds(50));
    if (io.stopped()) break;
    if ((*d)->stopping() && !drain_deadline) {  // a fatal error stopped the daemon
      signals.cancel();
      drain_deadline = clock::now() + std::chrono::milliseconds(1500);
    }
    if (drain_deadline && clock::now() >= *drain_deadline) {
      log::warn("drain deadline passed; abandoning unfinished tasks");
      break;
    }
  }
  log::info("stopped");
  return (*d)->exit_code();
}
