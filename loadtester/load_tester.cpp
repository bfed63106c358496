#include "loadtester/load_tester.hpp"

#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>
#include <cctype>
#include <regex>
#include <unordered_set>

#include "core/duration.hpp"
#include "k8s/http_server.hpp"
#include "k8s/log.hpp"
#include "loadtester/command.hpp"
#include "loadtester/payload.hpp"

namespace canaryd::loadtester {
namespace asio = boost::asio;

namespace {

http::response text(int status, std::string body) {
  http::response r;
  r.status = status;
  r.body = std::move(body);
  // What Go's http.ResponseWriter sniffs for these bodies.
  http::set_header(r.headers, "Content-Type", "text/plain; charset=utf-8");
  return r;
}

bool truthy(const std::map<std::string, std::string>& md, const std::string& key) {
  // Go's strconv.ParseBool; anything else is false, as Flagger ignores the parse error.
  auto it = md.find(key);
  if (it == md.end()) return false;
  const auto& v = it->second;
  return v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True";
}

// Go's strings.Fields: split on runs of whitespace.
std::vector<std::string> fields(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

class load_tester_impl final : public load_tester {
 public:
  load_tester_impl(asio::any_io_executor ex, const options& o) : ex_(std::move(ex)), opts_(o) {}

  std::optional<std::string> start() {
    if (!opts_.namespace_regexp.empty()) {
      try {
        namespace_re_ = std::regex(opts_.namespace_regexp);
      } catch (const std::regex_error& e) {
        return fmt::format("invalid -namespace-regexp \"{}\": {}", opts_.namespace_regexp, e.what());
      }
    }
    http::server_options so;
    std::string host = opts_.listen_address.empty() ? "0.0.0.0" : opts_.listen_address;
    if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
    so.listen = fmt::format("{}:{}", host, opts_.port);
    so.header_timeout = std::chrono::seconds(10);
    // A blocking (bash) task answers only when its command ends, up to -timeout later; the
    // write of that answer still has its own deadline.
    auto srv = http::start_server(ex_, so, [this](const http::request& req, const http::peer_info&,
                                                 http::responder& out) { return serve(req, out); });
    if (!srv) return fmt::format("cannot listen on {}: {}", so.listen, srv.error().message());
    server_ = std::move(*srv);
    return std::nullopt;
  }

  void stop() noexcept override {
    if (stopped_) return;
    stopped_ = true;
    if (server_) server_->stop();
    if (children_.size() > 0) log::info("killing running commands", {{"count", children_.size()}});
    children_.signal_all(SIGKILL);
  }

  std::size_t running_commands() const noexcept override { return children_.size(); }
  std::string local_address() const override { return server_ ? server_->local_address() : std::string(); }

 private:
  asio::awaitable<void> serve(const http::request& req, http::responder& out) {
    auto parts = http::split_target(req.target);
    // Named, not passed as a temporary: GCC 12 destroys aggregate temporaries passed by value
    // into a coroutine inside co_await twice.
    http::response res = co_await route(parts.path, req);
    if (auto ec = co_await out.send(std::move(res)))
      log::debug("answer not sent", {{"path", parts.path}, {"error", ec.message()}});
  }

  // Paths and answers as Flagger's pkg/loadtester/server.go: any method; every path that is not
  // one of the fixed ones is a task request (Go's ServeMux "/" pattern).
  asio::awaitable<http::response> route(const std::string& path, const http::request& req) {
    if (path == "/healthz") co_return text(200, "OK");
    if (path == "/metrics") co_return metrics();
    if (path == "/gate/approve") co_return text(200, "OK");
    if (path == "/gate/halt") co_return text(403, "Forbidden");

    auto payload = parse_payload(req.body);
    if (!payload) {
      log::error("decoding the request body failed", {{"path", path}, {"error", payload.error()}});
      co_return text(400, payload.error());
    }
    const auto& p = *payload;
    if (path == "/gate/check") co_return check(p.canary(), "gate check");
    if (path == "/gate/open") co_return set_gate(p.canary(), true, "gate opened");
    if (path == "/gate/close") co_return set_gate(p.canary(), false, "gate closed");
    if (path == "/rollback/check") co_return check("rollback." + p.canary(), "rollback check");
    if (path == "/rollback/open") co_return set_gate("rollback." + p.canary(), true, "rollback opened");
    if (path == "/rollback/close") co_return set_gate("rollback." + p.canary(), false, "rollback closed");
    co_return co_await task(p);
  }

  http::response check(const std::string& key, std::string_view what) {
    bool approved = open_gates_.contains(key);
    log::info(fmt::format("{} {}: approved {}", key, what, approved), {{"canary", key}});
    return approved ? text(200, "Approved") : text(403, "Forbidden");
  }

  http::response set_gate(const std::string& key, bool open, std::string_view what) {
    if (open) {
      open_gates_.insert(key);
    } else {
      open_gates_.erase(key);
    }
    log::info(fmt::format("{} {}", key, what), {{"canary", key}});
    return text(202, "");
  }

  http::response metrics() const {
    std::string s;
    s += "# HELP canary_loadtester_commands_started_total Commands started.\n";
    s += "# TYPE canary_loadtester_commands_started_total counter\n";
    s += fmt::format("canary_loadtester_commands_started_total {}\n", started_);
    s += "# HELP canary_loadtester_commands_failed_total Commands that failed, timed out or could not start.\n";
    s += "# TYPE canary_loadtester_commands_failed_total counter\n";
    s += fmt::format("canary_loadtester_commands_failed_total {}\n", failed_);
    s += "# HELP canary_loadtester_commands_running Commands running now.\n";
    s += "# TYPE canary_loadtester_commands_running gauge\n";
    s += fmt::format("canary_loadtester_commands_running {}\n", children_.size());
    auto r = text(200, std::move(s));
    http::set_header(r.headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return r;
  }

  // POST / : Flagger's HandleNewTask.
  asio::awaitable<http::response> task(const webhook_payload& p) {
    if (p.metadata.empty()) co_return text(400, "metadata not found in payload");
    if (namespace_re_ && !std::regex_search(p.namespace_, *namespace_re_)) {
      log::warn("task refused: namespace does not match -namespace-regexp", {{"canary", p.canary()}});
      co_return text(403, fmt::format("namespace {} is not allowed", p.namespace_));
    }
    std::string type = "cmd";
    if (auto it = p.metadata.find("type"); it != p.metadata.end()) type = it->second;
    bool is_tool = type == "kubectl" || type == "helm" || type == "helmv3";
    if (type != "cmd" && type != "bash" && !is_tool) co_return text(400, fmt::format("unknown task type {}", type));
    auto cmd_it = p.metadata.find("cmd");
    // Flagger answers 400 for a `cmd` task without cmd but runs `bash -c ""` for a `bash` one;
    // an empty command is always a mistake, so every type answers 400 here.
    if (cmd_it == p.metadata.end() || cmd_it->second.empty()) co_return text(400, "cmd not found in metadata");
    const std::string& cmd = cmd_it->second;
    const bool log_output = truthy(p.metadata, "logCmdOutput");

    if (type == "cmd") co_return start_background(p.canary(), cmd, log_output);

    // Blocking: bash -c <cmd>, or <tool> <fields of cmd>; the answer waits for the exit.
    std::vector<std::string> argv;
    if (type == "bash") {
      argv = {"bash", "-c", cmd};
    } else {
      argv = fields(cmd);
      argv.insert(argv.begin(), type);
    }
    std::string canary = p.canary();  // named: GCC 12 destroys temporaries in co_await twice
    auto res = co_await run(canary, cmd, std::move(argv), log_output);
    if (!res.ok) co_return text(500, fmt::format("command {} failed: {}: {}", cmd, res.output, res.error));
    co_return text(200, truthy(p.metadata, "returnCmdOutput") ? res.output : std::string());
  }

  // `cmd` tasks: sh -c in the background, answered 202 at once. An identical command (same
  // canary, same text) that is still running is not started again, as Flagger's task runner
  // skips it; the request is still answered 202.
  http::response start_background(const std::string& canary, const std::string& cmd, bool log_output) {
    std::string key = canary + '\n' + cmd;
    if (!background_.insert(key).second) {
      log::info(fmt::format("command skipped {} is already running", cmd), {{"canary", canary}});
      return text(202, "");
    }
    asio::co_spawn(
        ex_,
        [this, canary, cmd, log_output, key]() -> asio::awaitable<void> {
          std::vector<std::string> argv{"sh", "-c", cmd};
          co_await run(canary, cmd, std::move(argv), log_output);
          background_.erase(key);
        },
        [this, key, canary](std::exception_ptr e) {
          if (!e) return;
          background_.erase(key);
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            log::error("background command failed unexpectedly", {{"canary", canary}, {"error", ex.what()}});
          }
        });
    return text(202, "");
  }

  struct run_outcome {
    bool ok = false;
    std::string output;
    std::string error;  // Go's error text: "exit status 1", "signal: killed", the spawn error
  };

  // Runs one command to its end, logging as Flagger does ("command starting/finished/failed").
  asio::awaitable<run_outcome> run(std::string canary, std::string cmd, std::vector<std::string> argv,
                                   bool log_output) {
    run_outcome out;
    if (stopped_) {
      out.error = "the load tester is shutting down";
      co_return out;
    }
    ++started_;
    log::info(fmt::format("command starting {}", cmd), {{"canary", canary}});
    command_spec spec;
    spec.argv = std::move(argv);
    spec.timeout = opts_.timeout;
    spec.registry = &children_;
    auto res = co_await run_command(std::move(spec));
    if (!res) {
      ++failed_;
      out.error = fmt::format("cannot start: {}", res.error().message());
      log::error(fmt::format("command failed {} {}", cmd, out.error), {{"canary", canary}});
      co_return out;
    }
    out.output = std::move(res->output);
    if (res->truncated) out.output += "\n[output truncated]";
    if (!res->ok()) {
      ++failed_;
      out.error = res->describe();
      if (res->timed_out) out.error += fmt::format(" (timeout {} exceeded)", format_go_duration(opts_.timeout));
      log::error(fmt::format("command failed {} {}", cmd, out.error), {{"canary", canary}, {"output", out.output}});
      co_return out;
    }
    out.ok = true;
    if (log_output) log::info(out.output, {{"canary", canary}});
    log::info(fmt::format("command finished {}", cmd), {{"canary", canary}});
    co_return out;
  }

  asio::any_io_executor ex_;
  options opts_;
  std::optional<std::regex> namespace_re_;
  std::unique_ptr<http::server> server_;
  std::unordered_set<std::string> open_gates_;   // "<name>.<ns>" and "rollback.<name>.<ns>"
  std::unordered_set<std::string> background_;   // "<canary>\n<cmd>" of running `cmd` tasks
  child_registry children_;
  std::uint64_t started_ = 0;
  std::uint64_t failed_ = 0;
  bool stopped_ = false;
};

}  // namespace

boost::system::result<std::unique_ptr<load_tester>, std::string> start(asio::any_io_executor ex, const options& opts) {
  auto lt = std::make_unique<load_tester_impl>(std::move(ex), opts);
  if (auto err = lt->start()) return {boost::system::in_place_error, *err};
  return std::unique_ptr<load_tester>(std::move(lt));
}

}  // namespace canaryd::loadtester
