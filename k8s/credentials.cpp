#include "k8s/credentials.hpp"

#include <sys/stat.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "k8s/log.hpp"

namespace canaryd::k8s {
namespace asio = boost::asio;

namespace {
api_error cred_error(std::string msg) {
  api_error e;
  e.code = api_errc::credentials_failed;
  e.message = std::move(msg);
  return e;
}

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
}  // namespace

// Callers waiting for an exec plugin run that another caller started.
struct credentials::waiters {
  explicit waiters(asio::any_io_executor ex) : timer(std::move(ex), asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  std::optional<api_error> error;
};

credentials::credentials(asio::any_io_executor ex, cluster_config cfg, std::chrono::milliseconds exec_timeout)
    : ex_(std::move(ex)), cfg_(std::move(cfg)), exec_timeout_(exec_timeout), tls_(cfg_.tls) {}

credentials::~credentials() = default;

api_result<std::string> credentials::file_token() {
  struct stat st{};
  if (::stat(cfg_.token_file.c_str(), &st) != 0) {
    int err = errno;
    // Keep using the last good token: the file may be mid-rotation; the server will say 401.
    if (!file_token_.empty()) return file_token_;
    return cred_error(fmt::format("cannot read token file {}: {}", cfg_.token_file.string(), std::strerror(err)));
  }
  file_state now{st.st_mtim.tv_sec, st.st_mtim.tv_nsec, static_cast<std::uintmax_t>(st.st_size),
                 static_cast<std::uintmax_t>(st.st_ino), true};
  if (file_state_.valid && now.mtime_sec == file_state_.mtime_sec && now.mtime_nsec == file_state_.mtime_nsec &&
      now.size == file_state_.size && now.inode == file_state_.inode && !file_token_.empty()) {
    return file_token_;
  }
  std::ifstream in(cfg_.token_file, std::ios::binary);
  std::ostringstream ss;
  if (in) ss << in.rdbuf();
  std::string token = trim(ss.str());
  ++token_reads_;
  if (!in || token.empty()) {
    if (!file_token_.empty()) return file_token_;
    return cred_error(fmt::format("token file {} is {}", cfg_.token_file.string(), in ? "empty" : "unreadable"));
  }
  if (!file_token_.empty() && token != file_token_) {
    log::info("token file changed; using the new token", {{"path", cfg_.token_file.string()}});
  }
  file_token_ = std::move(token);
  file_state_ = now;
  return file_token_;
}

asio::awaitable<api_result<std::string>> credentials::exec_token() {
  for (;;) {
    if (exec_cached_) {
      const bool fresh = !exec_cached_->expiry ||
                         std::chrono::system_clock::now() + std::chrono::seconds(10) < *exec_cached_->expiry;
      if (fresh) co_return exec_cached_->token.empty() ? std::string() : "Bearer " + exec_cached_->token;
      exec_cached_.reset();
    }
    if (exec_running_) {
      auto w = exec_waiters_;
      co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (w->error) co_return *w->error;
      continue;
    }
    exec_running_ = true;
    auto w = std::make_shared<waiters>(ex_);
    exec_waiters_ = w;
    // Whatever happens (error, cancellation), release the waiters.
    struct release {
      credentials* self;
      std::shared_ptr<waiters> w;
      ~release() {
        self->exec_running_ = false;
        if (!self->exec_cached_ && !w->error) w->error = cred_error("exec plugin run was cancelled");
        w->timer.cancel();
      }
    } guard{this, w};
    ++exec_runs_;
    auto r = co_await run_exec_plugin(ex_, *cfg_.exec, exec_info_json(*cfg_.exec, cfg_), exec_timeout_);
    if (!r) {
      w->error = r.error();
      co_return r.error();
    }
    if (r->client_cert_pem != tls_.cert_pem || r->client_key_pem != tls_.key_pem) {
      if (!r->client_cert_pem.empty()) {
        tls_.cert_pem = r->client_cert_pem;
        tls_.key_pem = r->client_key_pem;
        ++tls_generation_;
      }
    }
    // Used at least once even if it expires within the margin (else a short-lived credential
    // would make us loop); the next call re-runs the plugin.
    std::string header = r->token.empty() ? std::string() : "Bearer " + r->token;
    exec_cached_ = std::move(*r);
    co_return header;
  }
}

asio::awaitable<api_result<std::string>> credentials::authorization() {
  if (cfg_.exec) co_return co_await exec_token();
  if (!cfg_.token_file.empty()) {
    auto t = file_token();
    if (!t) co_return t.error();
    co_return "Bearer " + *t;
  }
  if (!cfg_.token.empty()) co_return "Bearer " + cfg_.token;
  if (cfg_.basic) co_return "Basic " + base64_encode(cfg_.basic->username + ":" + cfg_.basic->password);
  co_return std::string();
}

std::string credentials::describe() const {
  std::string what;
  if (cfg_.exec) {
    what = "the token from exec plugin \"" + cfg_.exec->command + "\"";
  } else if (!cfg_.token_file.empty()) {
    what = "the bearer token in " + cfg_.token_file.string();
  } else if (!cfg_.token.empty()) {
    what = "the bearer token";
  } else if (cfg_.basic) {
    what = "the username/password";
  } else if (!tls_.cert_pem.empty()) {
    what = "the client certificate";
  } else {
    return "no credentials were presented (" + cfg_.source + ")";
  }
  if (!cfg_.user_name.empty()) what += " of user \"" + cfg_.user_name + "\"";
  return what + " from " + cfg_.source;
}

bool credentials::invalidate() noexcept {
  if (cfg_.exec) {
    if (exec_running_) return true;  // a fresh run is under way
    exec_cached_.reset();
    return true;
  }
  if (!cfg_.token_file.empty()) {
    file_state_.valid = false;  // re-read even if stat() shows no change
    return true;
  }
  return false;
}

}  // namespace canaryd::k8s
