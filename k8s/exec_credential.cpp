#include "k8s/exec_credential.hpp"

#include <fcntl.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fmt/format.h>
#include <vector>

#include "k8s/json_text.hpp"

extern char** environ;

namespace canaryd::k8s {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

api_error cred_error(std::string msg) {
  api_error e;
  e.code = api_errc::credentials_failed;
  e.message = std::move(msg);
  return e;
}

std::string first_line(std::string_view s) {
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r' || s.front() == ' ')) s.remove_prefix(1);
  auto nl = s.find_first_of("\r\n");
  if (nl != std::string_view::npos) s = s.substr(0, nl);
  if (s.size() > 300) s = s.substr(0, 300);
  return std::string(s);
}

// Reads a pipe to EOF (at most 4 MiB: an ExecCredential is a few KiB).
asio::awaitable<std::string> read_all(asio::posix::stream_descriptor& d) {
  std::string out;
  std::array<char, 4096> buf{};
  for (;;) {
    auto [ec, n] = co_await d.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    out.append(buf.data(), n);
    if (ec || out.size() > (4u << 20)) break;
  }
  co_return out;
}

// Kills and reaps the child unless it was reaped normally (error paths and cancellation).
struct child_guard {
  pid_t pid = -1;
  bool reaped = false;
  ~child_guard() {
    if (pid <= 0 || reaped) return;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
};

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  auto digits = [&](std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
  };
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(5, 2, mon) || s[7] != '-' ||
      !digits(8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, hour) ||
      s[13] != ':' || !digits(14, 2, min) || s[16] != ':' || !digits(17, 2, sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return std::nullopt;
  std::size_t pos = 19;
  std::chrono::nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::int64_t scale = 100'000'000;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac += std::chrono::nanoseconds((s[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(pos + 4, 2, om)) {
      return std::nullopt;
    }
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  std::time_t t = ::timegm(&tm);
  // system_clock counts nanoseconds in 64 bits, from 1677 to 2262: a timestamp outside (a plugin's
  // "never expires" as year 9999, found by fuzz/exec_credential) is the first or last instant it
  // can hold instead of a signed overflow in from_time_t.
  using sys = std::chrono::system_clock;
  // Less a week: room for any ±HH:MM offset and fraction added below.
  constexpr auto limit = std::chrono::duration_cast<std::chrono::seconds>(sys::duration::max()).count() - 604'800;
  if (t > limit) return sys::time_point::max();
  if (t < -limit) return sys::time_point::min();
  auto tp = std::chrono::system_clock::from_time_t(t) - std::chrono::minutes(offset_min);
  return tp + std::chrono::duration_cast<std::chrono::system_clock::duration>(frac);
}

std::string exec_info_json(const exec_plugin_config& plugin, const cluster_config& cluster) {
  std::string out = "{\"apiVersion\":";
  json_text::append_quoted(out, plugin.api_version);
  out += ",\"kind\":\"ExecCredential\",\"spec\":{";
  if (plugin.provide_cluster_info) {
    out += "\"cluster\":{\"server\":";
    json_text::append_quoted(out, cluster.server);
    if (!cluster.tls.server_name.empty()) {
      out += ",\"tls-server-name\":";
      json_text::append_quoted(out, cluster.tls.server_name);
    }
    if (!cluster.tls.verify) out += ",\"insecure-skip-tls-verify\":true";
    if (!cluster.tls.ca_pem.empty()) {
      out += ",\"certificate-authority-data\":";
      json_text::append_quoted(out, base64_encode(cluster.tls.ca_pem));
    }
    out += "},";
  }
  out += "\"interactive\":false}}";
  return out;
}

api_result<exec_credential> parse_exec_credential(std::string_view json, std::string_view expected_api_version) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element doc;
  if (auto err = parser.parse(padded).get(doc); err != simdjson::SUCCESS) {
    return cred_error(fmt::format("exec plugin output is not JSON ({}): {}", simdjson::error_message(err),
                                  first_line(json)));
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return cred_error("exec plugin output is not a JSON object");
  std::string_view sv;
  if (obj["kind"].get_string().get(sv) != simdjson::SUCCESS || sv != "ExecCredential") {
    return cred_error("exec plugin output is not an ExecCredential (kind is missing or wrong)");
  }
  if (obj["apiVersion"].get_string().get(sv) != simdjson::SUCCESS || sv != expected_api_version) {
    return cred_error(fmt::format("exec plugin returned apiVersion \"{}\", expected \"{}\"", sv, expected_api_version));
  }
  simdjson::dom::object status;
  if (obj["status"].get_object().get(status) != simdjson::SUCCESS) {
    return cred_error("exec plugin output has no status");
  }
  exec_credential c;
  if (status["token"].get_string().get(sv) == simdjson::SUCCESS) c.token = std::string(sv);
  if (status["clientCertificateData"].get_string().get(sv) == simdjson::SUCCESS) c.client_cert_pem = std::string(sv);
  if (status["clientKeyData"].get_string().get(sv) == simdjson::SUCCESS) c.client_key_pem = std::string(sv);
  if (status["expirationTimestamp"].get_string().get(sv) == simdjson::SUCCESS && !sv.empty()) {
    c.expiry = parse_rfc3339(sv);
    if (!c.expiry) return cred_error(fmt::format("exec plugin returned a malformed expirationTimestamp \"{}\"", sv));
  }
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return cred_error("exec plugin returned clientCertificateData without clientKeyData or the reverse");
  }
  if (c.token.empty() && c.client_cert_pem.empty()) {
    return cred_error("exec plugin returned neither a token nor a client certificate");
  }
  return c;
}

asio::awaitable<api_result<exec_credential>> run_exec_plugin(asio::any_io_executor ex, exec_plugin_config plugin,
                                                             std::string exec_info,
                                                             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string who = fmt::format("exec plugin \"{}\"", plugin.command);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) co_return cred_error(who + ": pipe: " + std::strerror(errno));
  fd_guard out_r{out_pipe[0]}, out_w{out_pipe[1]};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) co_return cred_error(who + ": pipe: " + std::strerror(errno));
  fd_guard err_r{err_pipe[0]}, err_w{err_pipe[1]};

  // Environment: ours, then the plugin's env entries (replacing ours), then KUBERNETES_EXEC_INFO.
  std::vector<std::string> env_strings;
  auto overridden = [&](std::string_view entry) {
    auto eq = entry.find('=');
    std::string_view name = entry.substr(0, eq);
    if (name == "KUBERNETES_EXEC_INFO") return true;
    for (const auto& [k, v] : plugin.env) {
      if (k == name) return true;
    }
    return false;
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e)) env_strings.emplace_back(*e);
  }
  for (const auto& [k, v] : plugin.env) env_strings.push_back(k + "=" + v);
  env_strings.push_back("KUBERNETES_EXEC_INFO=" + exec_info);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings{plugin.command};
  argv_strings.insert(argv_strings.end(), plugin.args.begin(), plugin.args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, plugin.command.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    std::string msg = fmt::format("{}: cannot run: {}", who, std::strerror(rc));
    if (!plugin.install_hint.empty()) msg += " (" + first_line(plugin.install_hint) + ")";
    co_return cred_error(std::move(msg));
  }
  child_guard child{pid};
  ::close(out_w.release());
  ::close(err_w.release());

  asio::posix::stream_descriptor out(ex, out_r.release());
  asio::posix::stream_descriptor err(ex, err_r.release());
  asio::steady_timer timer(ex, deadline);
  auto outcome = co_await ((read_all(out) && read_all(err)) ||
                           timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (outcome.index() == 1) {
    co_return cred_error(fmt::format("{}: no answer within {} ms; killed", who, timeout.count()));
  }
  auto [out_text, err_text] = std::get<0>(std::move(outcome));

  // The pipes closed: the plugin is exiting. Reap it without blocking the thread.
  int status = 0;
  auto poll = std::chrono::milliseconds(1);
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) {
      child.reaped = true;  // not our child any more (someone reaped it): nothing to kill
      co_return cred_error(fmt::format("{}: waitpid: {}", who, std::strerror(errno)));
    }
    if (std::chrono::steady_clock::now() + poll > deadline) {
      co_return cred_error(fmt::format("{}: closed its output but did not exit within {} ms; killed", who,
                                       timeout.count()));
    }
    timer.expires_after(poll);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return cred_error(who + ": cancelled");
    poll = std::min(poll * 2, std::chrono::milliseconds(50));
  }
  child.reaped = true;
  if (WIFSIGNALED(status)) {
    co_return cred_error(fmt::format("{}: killed by signal {}{}{}", who, WTERMSIG(status),
                                     err_text.empty() ? "" : ": ", first_line(err_text)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    std::string msg = fmt::format("{}: exit status {}", who, WEXITSTATUS(status));
    if (!err_text.empty()) msg += ": " + first_line(err_text);
    if (WEXITSTATUS(status) == 127 && !plugin.install_hint.empty()) msg += " (" + first_line(plugin.install_hint) + ")";
    co_return cred_error(std::move(msg));
  }
  auto cred = parse_exec_credential(out_text, plugin.api_version);
  if (!cred) {
    api_error e = cred.error();
    e.message = who + ": " + e.message;
    co_return e;
  }
  co_return cred;
}

}  // namespace canaryd::k8s
