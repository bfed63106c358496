#pragma once
// How canaryd's outbound HTTP(S) requests (webhooks, alerts, metric providers) reach their
// server: directly, through an explicit proxy (AlertProvider.spec.proxy, -slack-proxy-url), or
// through the proxy that HTTP_PROXY/HTTPS_PROXY/NO_PROXY name for it, as Go's
// http.ProxyFromEnvironment (Flagger's default transport) does. The Kubernetes API client does
// not use this.
#include <boost/system/result.hpp>

#include <string>
#include <string_view>

#include "core/proxy.hpp"
#include "k8s/http.hpp"
#include "k8s/http_client.hpp"

namespace canaryd {

// The process's proxy environment, read once from its environment variables.
const core::proxy_environment& process_proxy_environment();

// Routes a request to `url`, whose target (path and query) `req` already holds. With a proxy:
// for https, a CONNECT tunnel (co.connect_proxy) and TLS to the server inside it; for http, the
// proxy is the origin, the target becomes the absolute URI (without fragment) and Host the
// server's (RFC 9112 §3.2.2). `explicit_proxy` wins over the environment. Returns the URL of the
// origin to connect to, or what is wrong with a URL.
boost::system::result<std::string, std::string> route_outbound(const std::string& url, std::string_view explicit_proxy,
                                                               http::client_options& co, http::request& req,
                                                               const core::proxy_environment& env =
                                                                   process_proxy_environment());

}  // namespace canaryd
