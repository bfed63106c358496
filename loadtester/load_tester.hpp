#pragma once
// The load tester: Flagger's load tester HTTP API (gates, rollback gates, tasks) on the
// project's HTTP server. Gates live in memory, closed by default, keyed "<name>.<namespace>"
// (rollback gates "rollback.<name>.<namespace>"), as in Flagger.
//
// Thread affinity: one io_context thread; no locks. Background commands are coroutines on the
// same executor; each runs its child process asynchronously (loadtester/command.hpp).
#include <boost/asio/any_io_executor.hpp>
#include <boost/system/result.hpp>
#include <memory>
#include <optional>
#include <string>

#include "loadtester/options.hpp"

namespace canaryd::loadtester {

class load_tester {
 public:
  virtual ~load_tester() = default;
  // Stops accepting requests, closes connections and kills (SIGKILL, whole process group) every
  // command still running; their coroutines then reap them and finish. Idempotent.
  virtual void stop() noexcept = 0;
  // Commands running now (background and blocking).
  virtual std::size_t running_commands() const noexcept = 0;
  virtual std::string local_address() const = 0;
};

// Binds the listener and starts serving. An error (port in use, bad -namespace-regexp) is a
// message for the operator; the caller exits 1.
boost::system::result<std::unique_ptr<load_tester>, std::string> start(boost::asio::any_io_executor ex,
                                                                      const options& opts);

}  // namespace canaryd::loadtester
