#include "loadtester/command.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>

extern char** environ;

namespace canaryd::loadtester {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

namespace {

// Closes a file descriptor unless released.
struct fd_guard {
  int fd = -1;
  fd_guard() = default;
  explicit fd_guard(int f) : fd(f) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

// Owns a spawned child until it is reaped. If the coroutine frame dies first (io_context
// destroyed at exit), kills the group and reaps without blocking: at worst a zombie remains
// until this process exits a moment later.
struct child_guard {
  pid_t pid = -1;
  bool reaped = false;
  child_registry* registry = nullptr;
  child_guard() = default;
  child_guard(const child_guard&) = delete;
  child_guard& operator=(const child_guard&) = delete;
  ~child_guard() {
    if (pid <= 0) return;
    if (registry != nullptr) registry->remove(pid);
    if (reaped) return;
    ::kill(-pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, WNOHANG);
  }
};

// posix_spawn attributes and file actions, destroyed on every path.
struct spawn_setup {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attr{};
  spawn_setup() {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attr);
  }
  spawn_setup(const spawn_setup&) = delete;
  spawn_setup& operator=(const spawn_setup&) = delete;
  ~spawn_setup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attr);
  }
};

std::string signal_name(int sig) {
  // Go's syscall.Signal.String() for the usual ones.
  switch (sig) {
    case SIGKILL: return "killed";
    case SIGTERM: return "terminated";
    case SIGINT: return "interrupt";
    case SIGSEGV: return "segmentation fault";
    case SIGABRT: return "aborted";
    case SIGPIPE: return "broken pipe";
    case SIGHUP: return "hangup";
    default: return fmt::format("signal {}", sig);
  }
}

}  // namespace

void child_registry::signal_all(int sig) const noexcept {
  for (int pid : pids_) ::kill(-pid, sig);
}

std::string command_result::describe() const {
  return term_signal != 0 ? "signal: " + signal_name(term_signal) : fmt::format("exit status {}", exit_code);
}

asio::awaitable<boost::system::result<command_result>> run_command(command_spec spec) {
  using boost::system::error_code;
  using boost::system::system_category;
  if (spec.argv.empty()) co_return error_code(EINVAL, system_category());
  auto ex = co_await asio::this_coro::executor;

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) co_return error_code(errno, system_category());
  fd_guard read_end(fds[0]), write_end(fds[1]);

  spawn_setup setup;
  // The child's stdout and stderr are the pipe's write end (dup2 clears O_CLOEXEC on 1 and 2;
  // both original ends close at exec). stdin is /dev/null: nobody types into a canary hook.
  ::posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&setup.actions, write_end.fd, 1);
  ::posix_spawn_file_actions_adddup2(&setup.actions, write_end.fd, 2);
  // Its own process group, so a timeout kills `sh` and whatever it started (Go's
  // exec.CommandContext kills only `sh`, and a `sleep` it started keeps the pipe open).
  // Signals back to their defaults and unblocked, whatever this process did with them.
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  ::posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  ::posix_spawnattr_setpgroup(&setup.attr, 0);
  ::posix_spawnattr_setsigmask(&setup.attr, &none);
  ::posix_spawnattr_setsigdefault(&setup.attr, &defaults);

  std::vector<char*> argv;
  argv.reserve(spec.argv.size() + 1);
  for (auto& a : spec.argv) argv.push_back(a.data());
  argv.push_back(nullptr);

  child_guard child;
  pid_t pid = -1;
  if (int rc = ::posix_spawnp(&pid, argv[0], &setup.actions, &setup.attr, argv.data(), environ); rc != 0)
    co_return error_code(rc, system_category());
  child.pid = pid;
  child.registry = spec.registry;
  if (spec.registry != nullptr) spec.registry->add(pid);
  ::close(write_end.release());  // else the read below never sees EOF

  // The deadline covers the whole run: reading the output and waiting for the exit.
  const auto deadline = clock::now() + spec.timeout;
  command_result res;
  asio::steady_timer timer(ex);
  auto kill_on_timeout = [&] {
    if (res.timed_out) return;
    res.timed_out = true;
    ::kill(-pid, SIGKILL);
  };

  {
    asio::posix::stream_descriptor pipe(ex, read_end.release());
    std::array<char, 4096> buf{};
    for (;;) {
      timer.expires_at(deadline);
      auto r = co_await (pipe.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable)) ||
                         timer.async_wait(asio::as_tuple(asio::use_awaitable)));
      if (r.index() == 1) {
        // The deadline passed with the pipe still open. Killing the group closes it (unless a
        // grandchild left the group); stop reading either way.
        kill_on_timeout();
        break;
      }
      auto [ec, n] = std::get<0>(r);
      std::size_t room = spec.max_output - std::min(spec.max_output, res.output.size());
      res.output.append(buf.data(), std::min(n, room));
      if (n > room) res.truncated = true;
      if (ec) break;  // EOF: every writer closed the pipe (normally: the child exited)
    }
  }

  // Reap. The pipe usually reaches EOF as the child exits, so this polls once or twice; a child
  // that closed its output but keeps running is polled (up to every 50 ms) until its deadline.
  auto delay = std::chrono::milliseconds(1);
  for (;;) {
    int status = 0;
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      child.reaped = true;
      if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) res.term_signal = WTERMSIG(status);
      break;
    }
    if (w < 0 && errno != EINTR) {
      // ECHILD: someone else reaped it (a bug: nothing else in this process calls waitpid).
      child.reaped = true;
      co_return error_code(errno, system_category());
    }
    if (clock::now() >= deadline) kill_on_timeout();
    timer.expires_after(delay);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) kill_on_timeout();  // cancelled: shutting down; the child must not outlive us
    delay = std::min(delay * 2, std::chrono::milliseconds(50));
  }
  co_return res;
}

}  // namespace canaryd::loadtester
