// Credentials: ExecCredential parsing, running real exec plugins (shell scripts) without
// blocking the io_context, caching until expiry, and token files re-read when they change.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>

#include "k8s/credentials.hpp"
#include "k8s/exec_credential.hpp"
#include "tests/support/process.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace k8s = canaryd::k8s;
using canaryd::test::temp_dir;
using namespace std::chrono_literals;

namespace {

void write(const fs::path& p, const std::string& text, bool executable = false) {
  fs::create_directories(p.parent_path());
  {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
  }
  if (executable) fs::permissions(p, fs::perms::owner_all, fs::perm_options::replace);
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void run_io(asio::io_context& io, asio::awaitable<void> body, std::chrono::seconds limit = 20s) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(body), [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  io.run_for(limit);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish");
  if (failure) std::rethrow_exception(failure);
}

k8s::exec_plugin_config plugin(const fs::path& script, std::string api_version = "client.authentication.k8s.io/v1") {
  k8s::exec_plugin_config p;
  p.api_version = std::move(api_version);
  p.command = script.string();
  p.interactive_mode = "Never";
  return p;
}

// Prints an ExecCredential with the token given as $1, counting runs in $COUNT_FILE.
const char* token_script = R"SH(#!/bin/sh
echo run >> "$COUNT_FILE"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$INFO_FILE"
cat <<EOF
{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"$1-$(wc -l < "$COUNT_FILE" | tr -d ' ')"$EXTRA}}
EOF
)SH";

int count_runs(const fs::path& count_file) {
  std::ifstream in(count_file);
  int n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

struct exec_result {
  std::optional<k8s::api_result<k8s::exec_credential>> result;
};

asio::awaitable<void> run_plugin(k8s::exec_plugin_config p, std::string info, std::chrono::milliseconds timeout,
                                 exec_result* out) {
  auto ex = co_await asio::this_coro::executor;
  out->result = co_await k8s::run_exec_plugin(ex, std::move(p), std::move(info), timeout);
}

}  // namespace

TEST_CASE("ExecCredential output: token, client certificate, expiry, and the errors") {
  const std::string v1 = "client.authentication.k8s.io/v1";
  auto ok = k8s::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t0k","expirationTimestamp":"2030-01-02T03:04:05Z"}})",
      v1);
  REQUIRE(ok.has_value());
  CHECK(ok->token == "t0k");
  REQUIRE(ok->expiry);
  CHECK(std::chrono::system_clock::to_time_t(*ok->expiry) == 1893553445);

  auto cert = k8s::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"clientCertificateData":"CERT","clientKeyData":"KEY"}})",
      "client.authentication.k8s.io/v1beta1");
  REQUIRE(cert.has_value());
  CHECK(cert->client_cert_pem == "CERT");
  CHECK(cert->client_key_pem == "KEY");
  CHECK_FALSE(cert->expiry);

  auto wrong_version = k8s::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"x"}})", v1);
  REQUIRE_FALSE(wrong_version.has_value());
  CHECK(wrong_version.error().code == k8s::api_errc::credentials_failed);
  CHECK(wrong_version.error().message.find("expected \"client.authentication.k8s.io/v1\"") != std::string::npos);

  CHECK_FALSE(k8s::parse_exec_credential("not json", v1).has_value());
  CHECK_FALSE(k8s::parse_exec_credential(R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"})", v1).has_value());
  CHECK_FALSE(k8s::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}})", v1).has_value());
  CHECK_FALSE(k8s::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"C"}})", v1).has_value());
  CHECK_FALSE(k8s::parse_exec_credential(
      R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"soon"}})", v1).has_value());
}

TEST_CASE("RFC 3339 timestamps with fractions and offsets") {
  using std::chrono::system_clock;
  auto t = k8s::parse_rfc3339("1970-01-01T00:01:00Z");
  REQUIRE(t.has_value());
  CHECK(system_clock::to_time_t(*t) == 60);
  auto off = k8s::parse_rfc3339("1970-01-01T02:00:00+02:00");
  REQUIRE(off.has_value());
  CHECK(system_clock::to_time_t(*off) == 0);
  auto frac = k8s::parse_rfc3339("1970-01-01T00:00:01.5Z");
  REQUIRE(frac.has_value());
  CHECK(std::chrono::duration_cast<std::chrono::milliseconds>(frac->time_since_epoch()).count() == 1500);
  CHECK_FALSE(k8s::parse_rfc3339("1970-01-01 00:00:00").has_value());
  CHECK_FALSE(k8s::parse_rfc3339("1970-13-01T00:00:00Z").has_value());
  CHECK_FALSE(k8s::parse_rfc3339("1970-01-01T00:00:00Zjunk").has_value());
}

TEST_CASE("RFC 3339 timestamps outside system_clock's range read as its first or last instant, without overflow") {
  using std::chrono::system_clock;
  // fuzz/exec_credential/corpus/crash-expiry-year-6388: a signed overflow in from_time_t before.
  auto late = k8s::parse_rfc3339("6388-05-01T10:00:00.123+02:00");
  REQUIRE(late.has_value());
  CHECK(*late == system_clock::time_point::max());
  auto early = k8s::parse_rfc3339("0100-01-01T00:00:00-99:59");
  REQUIRE(early.has_value());
  CHECK(*early == system_clock::time_point::min());
  auto inside = k8s::parse_rfc3339("2200-01-01T00:00:00Z");
  REQUIRE(inside.has_value());
  CHECK(system_clock::to_time_t(*inside) == 7258118400);
}

TEST_CASE("KUBERNETES_EXEC_INFO carries the cluster only with provideClusterInfo") {
  k8s::cluster_config c;
  c.server = "https://10.0.0.1:6443";
  c.tls.ca_pem = "PEM";
  auto p = plugin("/bin/true");
  auto without = k8s::exec_info_json(p, c);
  CHECK(without ==
        R"({"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}})");
  p.provide_cluster_info = true;
  auto with = k8s::exec_info_json(p, c);
  CHECK(with.find(R"("cluster":{"server":"https://10.0.0.1:6443","certificate-authority-data":")" +
                  k8s::base64_encode("PEM") + "\"}") != std::string::npos);
}

TEST_CASE("an exec plugin runs without blocking the io_context and its output is parsed") {
  temp_dir d;
  write(d.path() / "plugin.sh", token_script, true);
  auto p = plugin(d.path() / "plugin.sh");
  p.args = {"hello"};
  p.env = {{"COUNT_FILE", (d.path() / "count").string()}, {"INFO_FILE", (d.path() / "info").string()}};
  asio::io_context io;
  exec_result r;
  // A ticker proves the loop keeps turning while the plugin runs.
  int ticks = 0;
  asio::steady_timer ticker(io, 1ms);
  std::function<void(boost::system::error_code)> tick = [&](boost::system::error_code ec) {
    if (ec || r.result) return;
    ++ticks;
    ticker.expires_after(1ms);
    ticker.async_wait(tick);
  };
  ticker.async_wait(tick);
  run_io(io, run_plugin(p, R"({"kind":"ExecCredential"})", 10s, &r));
  REQUIRE(r.result);
  REQUIRE_MESSAGE(r.result->has_value(), r.result->error().what());
  CHECK((*r.result)->token == "hello-1");
  CHECK(read(d.path() / "info") == R"({"kind":"ExecCredential"})");
  CHECK(ticks >= 1);
}

TEST_CASE("exec plugin failures are one-line errors") {
  temp_dir d;
  asio::io_context io;
  exec_result r;
  SUBCASE("a missing command names it and adds the installHint") {
    auto p = plugin(d.path() / "nope");
    p.install_hint = "brew install nope\nsecond line";
    run_io(io, run_plugin(p, "{}", 5s, &r));
    REQUIRE_FALSE(r.result->has_value());
    auto msg = r.result->error().what();
    CHECK(msg.find("exec plugin \"" + (d.path() / "nope").string() + "\": cannot run: No such file or directory") !=
          std::string::npos);
    CHECK(msg.find("(brew install nope)") != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
  SUBCASE("a non-zero exit reports the status and the first line of stderr") {
    write(d.path() / "fail.sh", "#!/bin/sh\necho 'error: you must log in' >&2\necho more >&2\nexit 3\n", true);
    run_io(io, run_plugin(plugin(d.path() / "fail.sh"), "{}", 5s, &r));
    REQUIRE_FALSE(r.result->has_value());
    CHECK(r.result->error().what().find("exit status 3: error: you must log in") != std::string::npos);
  }
  SUBCASE("a plugin that hangs is killed at its deadline") {
    write(d.path() / "hang.sh", "#!/bin/sh\nexec sleep 30\n", true);
    auto start = std::chrono::steady_clock::now();
    run_io(io, run_plugin(plugin(d.path() / "hang.sh"), "{}", 300ms, &r));
    REQUIRE_FALSE(r.result->has_value());
    CHECK(r.result->error().what().find("no answer within 300 ms; killed") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  SUBCASE("garbage on stdout") {
    write(d.path() / "junk.sh", "#!/bin/sh\necho hello\n", true);
    run_io(io, run_plugin(plugin(d.path() / "junk.sh"), "{}", 5s, &r));
    REQUIRE_FALSE(r.result->has_value());
    CHECK(r.result->error().what().find("exec plugin output is not JSON") != std::string::npos);
  }
}

namespace {
struct auth_log {
  std::vector<std::string> headers;
  std::vector<std::string> errors;
};

asio::awaitable<void> authorize(k8s::credentials* c, auth_log* log) {
  auto a = co_await c->authorization();
  if (a) {
    log->headers.push_back(*a);
  } else {
    log->errors.push_back(a.error().what());
  }
}

asio::awaitable<void> authorize_n(k8s::credentials* c, auth_log* log, int n) {
  for (int i = 0; i < n; ++i) co_await authorize(c, log);
}

asio::awaitable<void> authorize_concurrently(k8s::credentials* c, auth_log* log) {
  using namespace asio::experimental::awaitable_operators;
  co_await (authorize(c, log) && authorize(c, log) && authorize(c, log));
}
}  // namespace

TEST_CASE("exec credentials are cached until expiry, shared by concurrent callers, re-run after a 401") {
  temp_dir d;
  write(d.path() / "plugin.sh", token_script, true);
  k8s::cluster_config cfg;
  cfg.server = "https://127.0.0.1:1";
  cfg.exec = plugin(d.path() / "plugin.sh");
  cfg.exec->args = {"tok"};
  cfg.exec->env = {{"COUNT_FILE", (d.path() / "count").string()}, {"INFO_FILE", (d.path() / "info").string()}};
  asio::io_context io;
  k8s::credentials creds(io.get_executor(), cfg);
  auth_log log;

  run_io(io, authorize_concurrently(&creds, &log));
  io.restart();
  run_io(io, authorize_n(&creds, &log, 3));
  CHECK(log.errors.empty());
  CHECK(log.headers == std::vector<std::string>(6, "Bearer tok-1"));
  CHECK(count_runs(d.path() / "count") == 1);
  CHECK(creds.exec_runs() == 1);

  CHECK(creds.invalidate());
  io.restart();
  run_io(io, authorize(&creds, &log));
  CHECK(log.headers.back() == "Bearer tok-2");
  CHECK(count_runs(d.path() / "count") == 2);

  SUBCASE("an expired credential is fetched again") {
    k8s::cluster_config expiring = cfg;
    expiring.exec->env.emplace_back("EXTRA", R"(,"expirationTimestamp":"2001-01-01T00:00:00Z")");
    k8s::credentials short_lived(io.get_executor(), expiring);
    io.restart();
    run_io(io, authorize_n(&short_lived, &log, 2));
    CHECK(short_lived.exec_runs() == 2);
    CHECK(count_runs(d.path() / "count") == 4);
  }
}

TEST_CASE("a token file is re-read when it changes and after a 401, and kept if it vanishes") {
  temp_dir d;
  write(d.path() / "token", "first\n");
  k8s::cluster_config cfg;
  cfg.server = "https://127.0.0.1:1";
  cfg.token_file = d.path() / "token";
  asio::io_context io;
  k8s::credentials creds(io.get_executor(), cfg);
  auth_log log;

  run_io(io, authorize_n(&creds, &log, 3));
  CHECK(creds.token_file_reads() == 1);
  write(d.path() / "token", "second-token\n");  // a different size: detected even within one mtime tick
  io.restart();
  run_io(io, authorize(&creds, &log));
  CHECK(log.headers.back() == "Bearer second-token");
  CHECK(creds.token_file_reads() == 2);

  CHECK(creds.invalidate());
  io.restart();
  run_io(io, authorize(&creds, &log));
  CHECK(creds.token_file_reads() == 3);

  // kubelet swaps the file by renaming a new one in place (new inode, maybe same size and mtime).
  write(d.path() / "token.new", "third--token\n");
  fs::rename(d.path() / "token.new", d.path() / "token");
  io.restart();
  run_io(io, authorize(&creds, &log));
  CHECK(log.headers.back() == "Bearer third--token");

  fs::remove(d.path() / "token");
  io.restart();
  run_io(io, authorize(&creds, &log));
  CHECK(log.headers.back() == "Bearer third--token");
  CHECK(log.errors.empty());
}

TEST_CASE("a static token and basic auth become Authorization headers") {
  asio::io_context io;
  auth_log log;
  k8s::cluster_config tok;
  tok.token = "abc";
  k8s::credentials a(io.get_executor(), tok);
  k8s::cluster_config basic;
  basic.basic = k8s::basic_auth{"admin", "pw"};
  k8s::credentials b(io.get_executor(), basic);
  k8s::cluster_config none;
  k8s::credentials n(io.get_executor(), none);
  run_io(io, authorize(&a, &log));
  io.restart();
  run_io(io, authorize(&b, &log));
  io.restart();
  run_io(io, authorize(&n, &log));
  CHECK(log.headers == std::vector<std::string>{"Bearer abc", "Basic YWRtaW46cHc=", ""});
  CHECK_FALSE(a.invalidate());
}
