#include "daemon/outbound.hpp"

#include <boost/url/parse.hpp>

#include <cstdlib>
#include <fmt/format.h>

namespace canaryd {
namespace {

using routed = boost::system::result<std::string, std::string>;
// The value and the error are both strings: say which.
routed to(std::string origin_url) { return routed(boost::system::in_place_value, std::move(origin_url)); }
routed fail(std::string why) { return routed(boost::system::in_place_error, std::move(why)); }

}  // namespace

const core::proxy_environment& process_proxy_environment() {
  static const core::proxy_environment env = core::proxy_environment_from([](std::string_view k) -> std::optional<std::string> {
    if (const char* v = std::getenv(std::string(k).c_str())) return std::string(v);
    return std::nullopt;
  });
  return env;
}

boost::system::result<std::string, std::string> route_outbound(const std::string& url, std::string_view explicit_proxy,
                                                               http::client_options& co, http::request& req,
                                                               const core::proxy_environment& env) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return fail(fmt::format("invalid URL: {}", parsed.error().message()));
  const std::string scheme(parsed->scheme());
  std::string proxy(explicit_proxy);
  if (proxy.empty()) {
    std::string port(parsed->port());
    proxy = core::proxy_for(env, scheme, std::string(parsed->host_address()), port);
  }
  if (proxy.empty()) return to(url);
  auto origin = http::parse_origin(proxy);
  if (!origin) return fail(fmt::format("invalid proxy URL: {}", origin.error().message()));
  if (scheme == "https") {
    co.connect_proxy = std::move(*origin);
    return to(url);
  }
  req.target = url.substr(0, url.find('#'));
  http::set_header(req.headers, "Host", std::string(parsed->encoded_authority()));
  return to(proxy);
}

}  // namespace canaryd
