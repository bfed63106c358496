// canary-loadtester: Flagger's load tester API (gates, rollback gates, webhook tasks) as a
// second binary. Wires the flags, logging, the server and signal handling on one io_context.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "core/version.hpp"
#include "k8s/log.hpp"
#include "loadtester/load_tester.hpp"
#include "loadtester/options.hpp"

int main(int argc, char** argv) {
  using namespace canaryd;
  loadtester::options opts;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (auto err = loadtester::parse_options(args, opts)) {
    std::fprintf(stderr, "canary-loadtester: %s\n%s", err->c_str(), loadtester::usage().c_str());
    return 2;
  }
  if (opts.help) {
    std::fputs(loadtester::usage().c_str(), stdout);
    return 0;
  }
  if (opts.version) {
    std::printf("%.*s\n", static_cast<int>(version().size()), version().data());
    return 0;
  }
  log::level lvl{};
  log::parse_level(opts.log_level, lvl);
  log::set_level(lvl);
  log::set_sink(stdout);

  boost::asio::io_context io;
  auto lt = loadtester::start(io.get_executor(), opts);
  if (!lt) {
    log::error(lt.error());
    std::fprintf(stderr, "canary-loadtester: %s\n", lt.error().c_str());
    return 1;
  }
  log::info("Starting load tester", {{"version", version()},
                                      {"listen", (*lt)->local_address()},
                                      {"timeout", static_cast<std::int64_t>(opts.timeout.count() / 1000)}});

  // SIGTERM/SIGINT: stop serving, kill running commands, let their coroutines reap them, exit 0.
  // Flagger waits up to a minute for in-flight requests; here the server closes their
  // connections at once (a blocking bash request gets no answer) and its command is killed.
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> drain_deadline;
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::info("shutting down", {{"signal", sig}});
    drain_deadline = clock::now() + std::chrono::seconds(5);
    (*lt)->stop();
  });
  for (;;) {
    io.run_for(std::chrono::milliseconds(50));
    if (io.stopped()) break;  // no work left: every connection and command has finished
    if (drain_deadline && clock::now() >= *drain_deadline) {
      // Coroutine frames still hold references into the load tester; do not unwind them.
      log::warn("drain deadline passed; abandoning unfinished requests");
      std::fflush(stdout);
      std::_Exit(0);
    }
  }
  log::info("stopped");
  return 0;
}
