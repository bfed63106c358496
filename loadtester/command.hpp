#pragma once
// Runs a command as a child process without blocking the io_context: posix_spawn into its own
// process group, stdout and stderr combined into one pipe read asynchronously, the child reaped
// by polling waitpid(WNOHANG) on a timer (no SIGCHLD handler, so nothing else in the process is
// disturbed). A command still running at its deadline is killed with its whole process group.
//
// Thread affinity: the io_context thread. No shared state except the optional child_registry.
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_set>
#include <vector>

namespace canaryd::loadtester {

// The children running now, so shutdown can kill them. One thread; no locking.
class child_registry {
 public:
  void add(int pid) { pids_.insert(pid); }
  void remove(int pid) { pids_.erase(pid); }
  std::size_t size() const noexcept { return pids_.size(); }
  // Sends `sig` to the process group of every running child. Their run_command coroutines then
  // see the exit and finish normally.
  void signal_all(int sig) const noexcept;

 private:
  std::unordered_set<int> pids_;
};

struct command_spec {
  std::vector<std::string> argv;          // argv[0] is looked up in PATH; stdin is /dev/null
  std::chrono::milliseconds timeout{std::chrono::hours(1)};
  std::size_t max_output = 1u << 20;      // output beyond this is read and dropped
  child_registry* registry = nullptr;     // optional
};

struct command_result {
  int exit_code = -1;       // the exit status if the child exited, else -1
  int term_signal = 0;      // the signal that ended it, else 0
  bool timed_out = false;   // it was killed because the timeout passed
  bool truncated = false;   // output passed max_output
  std::string output;       // stdout and stderr, interleaved as written

  bool ok() const noexcept { return !timed_out && term_signal == 0 && exit_code == 0; }
  // Go's os/exec error text, which Flagger puts in its responses: "exit status 2",
  // "signal: killed" (also after a timeout; the caller says which).
  std::string describe() const;
};

// Completes when the child has exited and been reaped (or, after a timeout, been killed and
// reaped). Errors (a value): the command could not be started (ENOENT for a missing program,
// EMFILE...). Not cancellable: the timeout, or a registry signal, ends it. If the coroutine is
// destroyed before the child is reaped (the io_context went away), the child's group is killed.
boost::asio::awaitable<boost::system::result<command_result>> run_command(command_spec spec);

}  // namespace canaryd::loadtester
