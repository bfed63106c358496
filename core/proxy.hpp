#pragma once
// Which proxy an outbound HTTP(S) request uses, as Go's http.ProxyFromEnvironment decides it
// (golang.org/x/net/http/httpproxy): Flagger's webhooks, alerts and metric providers honour
// HTTP_PROXY, HTTPS_PROXY and NO_PROXY that way, and so does canaryd. The Kubernetes API is not
// concerned (client-go's transport also uses the environment, but canaryd reaches the API server
// directly, as in-cluster pods do; compatibility.md).
// Pure: the environment is passed in.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace canaryd::core {

struct proxy_environment {
  std::string http_proxy;   // HTTP_PROXY, else http_proxy
  std::string https_proxy;  // HTTPS_PROXY, else https_proxy
  std::string no_proxy;     // NO_PROXY, else no_proxy
};

proxy_environment proxy_environment_from(const std::function<std::optional<std::string>(std::string_view)>& getenv);

// The proxy URL ("http://proxy:3128") for a request to scheme://host:port, or "" to connect
// directly. https uses HTTPS_PROXY and http HTTP_PROXY; a proxy given without a scheme is http://.
// Never proxied: "localhost" and loopback addresses; hosts NO_PROXY lists: "*" (all), an IP
// address, a CIDR block, a domain ("example.com" matches it and its subdomains, ".example.com"
// and "*.example.com" only subdomains), each optionally with ":port".
std::string proxy_for(const proxy_environment& env, std::string_view scheme, std::string_view host,
                      std::string_view port);

}  // namespace canaryd::core
