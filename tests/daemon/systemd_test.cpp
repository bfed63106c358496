// systemd integration: the unit in systemd/ verifies, and canaryd speaks the notify protocol
// (READY=1 once its caches are synced, STOPPING=1 when it drains) to a socket the test binds.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "daemon/sd_notify.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

using namespace canaryd::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// A bound AF_UNIX datagram socket standing in for systemd's notify socket.
class notify_listener {
 public:
  explicit notify_listener(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof(addr.sun_path));
    std::memcpy(addr.sun_path, path_.data(), path_.size());
    if (path_[0] == '@') addr.sun_path[0] = '\0';
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size());
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0);
  }
  ~notify_listener() { ::close(fd_); }
  notify_listener(const notify_listener&) = delete;
  notify_listener& operator=(const notify_listener&) = delete;

  // The next datagram, or nullopt when none arrives within `limit`.
  std::optional<std::string> receive(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return std::nullopt;
    char buf[4096];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Sets an environment variable for one scope.
struct scoped_env {
  scoped_env(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~scoped_env() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("sd_notify sends one datagram to a NOTIFY_SOCKET path or abstract name and explains bad values") {
  temp_dir tmp;
  auto path = (tmp.path() / "notify").string();
  notify_listener sock(path);
  {
    scoped_env env("NOTIFY_SOCKET", path);
    CHECK(canaryd::sd_notify("READY=1\nSTATUS=synced") == "");
    CHECK(sock.receive(2s) == "READY=1\nSTATUS=synced");
  }
  {
    auto abstract = "@canaryd-test-" + std::to_string(::getpid());
    notify_listener asock(abstract);
    scoped_env env("NOTIFY_SOCKET", abstract);
    CHECK(canaryd::sd_notify("STOPPING=1") == "");
    CHECK(asock.receive(2s) == "STOPPING=1");
  }
  {
    scoped_env env("NOTIFY_SOCKET", "");
    CHECK(canaryd::sd_notify("READY=1") == "");  // not under systemd: nothing to do
  }
  {
    scoped_env env("NOTIFY_SOCKET", "relative/path");
    CHECK(canaryd::sd_notify("READY=1").find("not an absolute path") != std::string::npos);
  }
  {
    scoped_env env("NOTIFY_SOCKET", (tmp.path() / "nobody-listens").string());
    CHECK(canaryd::sd_notify("READY=1").find("cannot notify") != std::string::npos);
  }
}

TEST_CASE("systemd-analyze verify accepts systemd/canaryd.service with no warnings") {
  auto probe = run({"systemd-analyze", "--version"});
  if (probe.exit_code != 0) {
    MESSAGE("skipped: systemd-analyze cannot run here: " << probe.err);
    return;
  }
  // verify checks that ExecStart's binary exists, so it runs against a root directory holding
  // the unit, the real canaryd at the unit's path and the distribution's units (sysinit.target...).
  temp_dir root;
  auto unit_dir = root.path() / "etc" / "systemd" / "system";
  fs::create_directories(unit_dir);
  fs::create_directories(root.path() / "usr" / "local" / "bin");
  fs::create_directories(root.path() / "usr" / "lib" / "systemd");
  fs::copy(source_root() / "systemd" / "canaryd.service", unit_dir / "canaryd.service");
  fs::copy(build_root() / "daemon" / "canaryd", root.path() / "usr" / "local" / "bin" / "canaryd");
  std::error_code ec;
  fs::copy("/usr/lib/systemd/system", root.path() / "usr" / "lib" / "systemd" / "system", fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (ec) {
    MESSAGE("skipped: no systemd units to verify against: " << ec.message());
    return;
  }
  auto r = run({"systemd-analyze", "--root=" + root.path().string(), "verify",
                (unit_dir / "canaryd.service").string()});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_code == 0);
  // Unknown or malformed settings are only warnings for systemd: none may appear.
  CHECK(r.err.find("canaryd.service") == std::string::npos);

  // A broken unit fails the same check, so the check can fail.
  {
    std::ofstream broken(unit_dir / "broken.service");
    broken << "[Service]\nType=notify\nExecStart=/usr/local/bin/canaryd\nProtectHome=bogus\n";
  }
  auto bad = run({"systemd-analyze", "--root=" + root.path().string(), "verify", (unit_dir / "broken.service").string()});
  INFO("broken unit: exit " << bad.exit_code << ", stderr: " << bad.err);
  CHECK(bad.err.find("broken.service:4") != std::string::npos);  // the bad line is named
}

TEST_CASE("canaryd under Type=notify sends READY=1 once its caches are synced and STOPPING=1 on SIGTERM") {
  kubesim_instance sim;
  INFO("kubesim log:\n" << sim.log());
  sim.kubectl_ok({"apply", "-f", (source_root() / "deploy" / "crds" / "flagger.app.yaml").string()});
  temp_dir tmp;
  auto path = (tmp.path() / "notify").string();
  notify_listener sock(path);
  child d({(build_root() / "daemon" / "canaryd").string(), "-kubeconfig", sim.kubeconfig().string(),
           "-listen-address=127.0.0.1", "-port", std::to_string(free_port())},
          {{"NOTIFY_SOCKET", path}});
  auto ready = sock.receive(20s);
  REQUIRE_MESSAGE(ready, "no notification from canaryd; its output: "
                             << (d.lines().empty() ? std::string() : d.lines().back()));
  CHECK(*ready == "READY=1");
  // READY=1 follows the sync, never precedes it.
  CHECK(d.wait_for_line("caches synced", 5s));
  d.signal(SIGTERM);
  auto stopping = sock.receive(10s);
  REQUIRE(stopping);
  CHECK(*stopping == "STOPPING=1");
  CHECK(d.wait(20s) == 0);
}
