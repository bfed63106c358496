// core::proxy_for against the cases of Go's golang.org/x/net/http/httpproxy (Flagger's
// ProxyFromEnvironment): which outbound request goes through which proxy.
#include <doctest/doctest.h>

#include <map>

#include "core/proxy.hpp"

using canaryd::core::proxy_environment;
using canaryd::core::proxy_for;

namespace {
proxy_environment env_of(std::map<std::string, std::string> vars) {
  return canaryd::core::proxy_environment_from([&](std::string_view k) -> std::optional<std::string> {
    auto it = vars.find(std::string(k));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}
}  // namespace

TEST_CASE("HTTPS_PROXY for https, HTTP_PROXY for http, upper case first, http:// when no scheme") {
  auto e = env_of({{"HTTPS_PROXY", "secure-proxy:3128"}, {"https_proxy", "ignored:1"}, {"http_proxy", "http://plain:8080"}});
  CHECK(proxy_for(e, "https", "hooks.slack.com", "") == "http://secure-proxy:3128");
  CHECK(proxy_for(e, "http", "prometheus.monitoring", "9090") == "http://plain:8080");
  auto only_http = env_of({{"HTTP_PROXY", "http://plain:8080"}});
  CHECK(proxy_for(only_http, "https", "hooks.slack.com", "443").empty());
  CHECK(proxy_for(env_of({}), "http", "example.com", "80").empty());
}

TEST_CASE("localhost and loopback addresses never use the proxy") {
  auto e = env_of({{"HTTP_PROXY", "http://proxy:3128"}});
  CHECK(proxy_for(e, "http", "localhost", "8080").empty());
  CHECK(proxy_for(e, "http", "127.0.0.1", "8080").empty());
  CHECK(proxy_for(e, "http", "127.1.2.3", "8080").empty());
  CHECK(proxy_for(e, "http", "::1", "8080").empty());
  CHECK(proxy_for(e, "http", "10.0.0.1", "8080") == "http://proxy:3128");
}

TEST_CASE("NO_PROXY: *, domains with their subdomains, leading dots, ports, IPs and CIDR blocks") {
  auto all = env_of({{"HTTP_PROXY", "proxy:1"}, {"NO_PROXY", "*"}});
  CHECK(proxy_for(all, "http", "anything.example", "80").empty());

  auto e = env_of({{"HTTP_PROXY", "proxy:1"}, {"HTTPS_PROXY", "proxy:1"},
                   {"no_proxy", "cluster.local, .svc ,*.internal.example,foo.com:8080,10.0.0.0/8,192.168.1.7,fd00::/8"}});
  CHECK(proxy_for(e, "http", "cluster.local", "80").empty());
  CHECK(proxy_for(e, "http", "prometheus.monitoring.svc.cluster.local", "9090").empty());
  CHECK(proxy_for(e, "http", "notcluster.local", "80") == "http://proxy:1");
  CHECK(proxy_for(e, "http", "flagger-loadtester.test.svc", "80").empty());
  CHECK(proxy_for(e, "http", "svc", "80") == "http://proxy:1");  // a leading dot: subdomains only
  CHECK(proxy_for(e, "https", "api.internal.example", "443").empty());
  CHECK(proxy_for(e, "https", "internal.example", "443") == "http://proxy:1");
  CHECK(proxy_for(e, "http", "foo.com", "8080").empty());
  CHECK(proxy_for(e, "http", "foo.com", "80") == "http://proxy:1");
  CHECK(proxy_for(e, "http", "10.96.0.10", "9090").empty());
  CHECK(proxy_for(e, "http", "11.0.0.1", "9090") == "http://proxy:1");
  CHECK(proxy_for(e, "http", "192.168.1.7", "80").empty());
  CHECK(proxy_for(e, "http", "192.168.1.8", "80") == "http://proxy:1");
  CHECK(proxy_for(e, "http", "fd00::5", "80").empty());
  CHECK(proxy_for(e, "http", "fe80::5", "80") == "http://proxy:1");
  CHECK(proxy_for(e, "HTTP", "CLUSTER.LOCAL", "80").empty());  // case-insensitive
}
