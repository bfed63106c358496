// canaryd gives memory back: after a burst of connections to its metrics/health port, and after
// large objects it caches are deleted, its resident set (VmRSS) returns to within 2x of what it
// was before (issue 11 item 5: a probe once saw 9 -> 127 MiB that never came back).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"
#include "tests/support/kubesim.hpp"
#include "tests/support/process.hpp"

using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// VmRSS of a process, in KiB (0 if it cannot be read).
long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kib = 0;
      in >> kib;
      return kib;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

// Opens `n` connections to 127.0.0.1:port at once (non-blocking), sends a request for
// /metrics on each as it connects, holds them all for `hold`, sampling the server's RSS, then
// closes them. Returns the largest RSS seen.
long connection_burst(int port, int n, std::chrono::milliseconds hold, int server_pid) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<pollfd> fds;
  fds.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) break;
    ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);  // EINPROGRESS
    fds.push_back({fd, POLLOUT, 0});
  }
  REQUIRE(fds.size() == static_cast<std::size_t>(n));
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: canaryd\r\n\r\n";
  long peak = rss_kib(server_pid);
  const auto until = std::chrono::steady_clock::now() + hold;
  while (std::chrono::steady_clock::now() < until) {
    ::poll(fds.data(), fds.size(), 100);
    for (auto& p : fds) {
      if (p.revents & POLLOUT) {
        (void)!::write(p.fd, req.data(), req.size());
        p.events = 0;  // one request per connection; the answer is left unread
      }
      p.revents = 0;
    }
    peak = std::max(peak, rss_kib(server_pid));
  }
  for (auto& p : fds) ::close(p.fd);
  return peak;
}

std::string big_configmaps(int count, std::size_t bytes_each) {
  const std::string value(bytes_each, 'x');
  std::string yaml;
  for (int i = 0; i < count; ++i) {
    yaml += "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big-" + std::to_string(i) +
            "\n  namespace: demo\ndata:\n  payload: " + value + "\n";
  }
  return yaml;
}

}  // namespace

TEST_CASE("after 10,000 connections to its port and large objects deleted, canaryd's RSS returns within 2x") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  const int pid = d.proc->pid();
  std::this_thread::sleep_for(2s);  // past start-up allocations
  const long before = rss_kib(pid);
  REQUIRE(before > 0);

  const long peak = connection_burst(d.port, 10'000, 4s, pid);
  MESSAGE("RSS before " << before / 1024.0 << " MiB, peak during 10,000 connections " << peak / 1024.0 << " MiB");
  // canaryd still answers once the burst is over.
  CHECK(eventually([&] { return d.proc->running(); }, 1s));
  bool back = eventually([&] { return rss_kib(pid) <= 2 * before; }, 30s);
  const long after_burst = rss_kib(pid);
  MESSAGE("RSS after the burst " << after_burst / 1024.0 << " MiB");
  CHECK_MESSAGE(back, "RSS " << after_burst << " KiB > 2 x " << before << " KiB");

  // 40 ConfigMaps of 256 KiB each (canaryd caches ConfigMaps), then deleted. `create`, not
  // `apply`: apply's last-applied annotation would exceed the 256 KiB annotation limit.
  sim.kubectl_ok({"create", "-f", "-"}, big_configmaps(40, 256 * 1024));
  long grown = 0;
  eventually([&] { return (grown = rss_kib(pid)) > before + 8 * 1024; }, 10s);
  MESSAGE("RSS with 10 MiB of ConfigMaps cached " << grown / 1024.0 << " MiB");
  std::vector<std::string> del{"-n", "demo", "delete", "configmap", "--wait=false"};
  for (int i = 0; i < 40; ++i) del.push_back("big-" + std::to_string(i));
  sim.kubectl_ok(del);
  back = eventually([&] { return rss_kib(pid) <= 2 * before; }, 30s);
  const long after_delete = rss_kib(pid);
  MESSAGE("RSS after the ConfigMaps were deleted " << after_delete / 1024.0 << " MiB");
  CHECK_MESSAGE(back, "RSS " << after_delete << " KiB > 2 x " << before << " KiB");
}
