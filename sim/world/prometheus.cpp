#include "sim/world/prometheus.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "k8s/http_client.hpp"
#include "k8s/log.hpp"

namespace kubesim::world {

namespace asio = boost::asio;
namespace http = canaryd::http;
namespace log = canaryd::log;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string go_duration(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

fs::path make_temp_dir() {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t && *t ? t : "/tmp") + "/kubesim-prometheus-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    throw std::runtime_error("prometheus: cannot create a temporary directory from " + tmpl + ": " + std::strerror(errno));
  return fs::path(buf.data());
}

// A port that was free a moment ago (the child binds it; a lost race is retried).
int pick_port(const std::string& host) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("prometheus: socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    ::close(fd);
    throw std::runtime_error("prometheus: listen host must be an IPv4 address: " + host);
  }
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("prometheus: cannot find a free port on " + host + ": " + std::strerror(e));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string log_tail(const fs::path& p, std::size_t max = 3000) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = ss.str();
  if (s.size() > max) s = "..." + s.substr(s.size() - max);
  return s;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// fork + exec, because posix_spawn cannot set PR_SET_PDEATHSIG. Between fork and exec only
// async-signal-safe calls: everything is prepared before the fork.
int spawn(const std::vector<std::string>& argv, int log_fd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("prometheus: fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);  // a terminal's Ctrl-C reaches kubesim, which then stops Prometheus itself
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // kubesim died before prctl took effect
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // kubesim's sockets are not all close-on-exec: keep the API and metrics ports out of the child.
    if (::close_range(3, ~0U, 0) != 0)
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// The child process and its directory, shared with the reaper timer's handler.
struct child_state {
  int pid = -1;
  int status = 0;
  bool exited = false;
  bool stopping = false;  // exit expected: not logged as an error
  fs::path dir;
  fs::path log;

  // Collects the child if it exited; true when there is no child running.
  bool reap() {
    if (pid < 0) return true;
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      exited = true;
      status = r == pid ? st : 0;
      pid = -1;
      return true;
    }
    return false;
  }

  // At exit, when no event loop runs: SIGTERM, a bounded wait, SIGKILL.
  void terminate_blocking(std::chrono::milliseconds grace) {
    if (reap()) return;
    stopping = true;
    ::kill(pid, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      if (reap()) return;
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    exited = true;
  }
};

struct reaper {
  explicit reaper(asio::any_io_executor ex, std::shared_ptr<child_state> c) : timer(std::move(ex)), child(std::move(c)) {}
  asio::steady_timer timer;
  std::shared_ptr<child_state> child;
};

void watch_child(const std::shared_ptr<reaper>& r) {
  r->timer.expires_after(500ms);
  r->timer.async_wait([weak = std::weak_ptr<reaper>(r)](boost::system::error_code ec) {
    auto r = weak.lock();
    if (!r || ec) return;
    auto& c = *r->child;
    if (c.pid < 0) return;
    if (c.reap()) {
      if (!c.stopping)
        log::error("prometheus exited unexpectedly",
                   {{"status", describe_status(c.status)}, {"log_tail", log_tail(c.log, 1500)}});
      return;
    }
    watch_child(r);
  });
}

class prometheus_impl final : public prometheus_child {
 public:
  prometheus_impl(asio::any_io_executor ex, fs::path dir)
      : ex_(std::move(ex)), state_(std::make_shared<child_state>()) {
    state_->dir = std::move(dir);
    state_->log = state_->dir / "prometheus.log";
  }
  ~prometheus_impl() override {
    if (reaper_) reaper_->timer.cancel();
    reaper_.reset();
    state_->terminate_blocking(3s);
    std::error_code ec;
    fs::remove_all(state_->dir, ec);
  }

  child_state& state() { return *state_; }
  void set_url(std::string u) { url_ = std::move(u); }
  void watch() {
    reaper_ = std::make_shared<reaper>(ex_, state_);
    watch_child(reaper_);
  }

  std::string url() const override { return url_; }
  int pid() const override { return state_->pid; }
  bool running() const override { return !state_->reap(); }

  asio::awaitable<void> stop(std::chrono::milliseconds grace) override {
    auto st = state_;  // the object may die while this coroutine waits
    if (st->reap()) co_return;
    st->stopping = true;
    ::kill(st->pid, SIGTERM);
    asio::steady_timer t(co_await asio::this_coro::executor);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      if (st->reap()) {
        log::info("prometheus stopped", {{"status", describe_status(st->status)}});
        co_return;
      }
      t.expires_after(50ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    log::warn("prometheus did not stop after SIGTERM; killing it", {{"pid", st->pid}});
    st->terminate_blocking(0ms);
  }

 private:
  asio::any_io_executor ex_;
  std::shared_ptr<child_state> state_;  // mutable through const running(): reaping is bookkeeping
  std::shared_ptr<reaper> reaper_;
  std::string url_;
};

// True when the response to `up` holds a sample with value 1.
bool up_is_one(const std::string& body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return false;
  const auto* data = v.get_object().if_contains("data");
  const auto* result = data && data->is_object() ? data->get_object().if_contains("result") : nullptr;
  if (!result || !result->is_array()) return false;
  for (const auto& sample : result->get_array()) {
    const auto* value = sample.is_object() ? sample.get_object().if_contains("value") : nullptr;
    if (value && value->is_array() && value->get_array().size() == 2 && value->get_array()[1] == "1") return true;
  }
  return false;
}

}  // namespace

std::string prometheus_config(const prometheus_options& opts) {
  auto interval = go_duration(opts.scrape_interval);
  std::string s;
  s += "# Written by kubesim: scrape the traffic emulator's /metrics.\n";
  s += "global:\n";
  s += "  scrape_interval: " + interval + "\n";
  s += "  scrape_timeout: " + interval + "\n";
  s += "  evaluation_interval: " + interval + "\n";
  s += "scrape_configs:\n";
  s += "  - job_name: kubesim\n";
  s += "    honor_labels: true\n";
  s += "    metrics_path: /metrics\n";
  s += "    static_configs:\n";
  s += "      - targets: [\"" + opts.scrape_target + "\"]\n";
  return s;
}

asio::awaitable<std::unique_ptr<prometheus_child>> start_prometheus(asio::any_io_executor ex, prometheus_options opts) {
  if (opts.scrape_target.empty()) throw std::runtime_error("prometheus: no scrape target");
  if (::access(opts.binary.c_str(), X_OK) != 0)
    throw std::runtime_error("prometheus: " + opts.binary + " is not an executable (" + std::strerror(errno) +
                             "); install Debian's prometheus package (scripts/setup)");
  auto child = std::make_unique<prometheus_impl>(ex, make_temp_dir());
  auto& st = child->state();
  {
    std::ofstream cfg(st.dir / "prometheus.yml");
    cfg << prometheus_config(opts);
    if (!cfg) throw std::runtime_error("prometheus: cannot write " + (st.dir / "prometheus.yml").string());
  }
  asio::steady_timer timer(ex);
  for (int attempt = 1;; ++attempt) {
    int port = pick_port(opts.listen_host);
    std::string listen = opts.listen_host + ":" + std::to_string(port);
    std::vector<std::string> argv{opts.binary,
                                  "--config.file=" + (st.dir / "prometheus.yml").string(),
                                  "--storage.tsdb.path=" + (st.dir / "data").string(),
                                  "--storage.tsdb.retention.time=1d",
                                  "--web.listen-address=" + listen,
                                  "--log.level=info"};
    int log_fd = ::open(st.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("prometheus: cannot open " + st.log.string() + ": " + std::strerror(errno));
    st.stopping = false;
    st.exited = false;
    try {
      st.pid = spawn(argv, log_fd);
    } catch (...) {
      ::close(log_fd);
      throw;
    }
    ::close(log_fd);
    log::info("prometheus starting", {{"pid", st.pid}, {"listen", listen}, {"dir", st.dir.string()}});

    http::client_options co;
    co.user_agent = "kubesim";
    auto client = http::make_client(ex, http::origin{"http", opts.listen_host, std::to_string(port)}, co);
    if (!client) throw std::runtime_error("prometheus: cannot make an HTTP client: " + client.error().message());

    auto started = std::chrono::steady_clock::now();
    auto deadline = started + opts.ready_timeout;
    bool retry = false;
    while (std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(250ms);
      co_await timer.async_wait(asio::use_awaitable);
      if (st.reap()) {
        auto tail = log_tail(st.log);
        if (attempt < opts.attempts && tail.find("address already in use") != std::string::npos) {
          log::warn("prometheus lost its port to another process; retrying", {{"listen", listen}});
          retry = true;
          break;
        }
        throw std::runtime_error("prometheus exited before it was ready (" + describe_status(st.status) +
                                 "); its log:\n" + tail);
      }
      http::request req;
      req.target = "/api/v1/query?query=up";
      auto res = co_await (*client)->send(std::move(req), 1s);
      if (res && res->status == 200 && up_is_one(res->body)) {
        (*client)->shutdown();
        child->set_url("http://" + listen);
        child->watch();
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        log::info("prometheus ready", {{"url", child->url()}, {"pid", st.pid}, {"after_ms", ms.count()}});
        co_return child;
      }
    }
    (*client)->shutdown();
    if (retry) continue;
    auto tail = log_tail(st.log);
    throw std::runtime_error("prometheus was not ready (no successful scrape of " + opts.scrape_target + ") within " +
                             go_duration(opts.ready_timeout) + "; its log:\n" + tail);
  }
}

}  // namespace kubesim::world
