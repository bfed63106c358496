#include "core/router.hpp"

#include <boost/json.hpp>
#include "core/knative.hpp"

namespace canaryd::core {

std::string set_cookie_value(const session_affinity& a, const std::string& cookie, long max_age) {
  std::string v = cookie + "; Max-Age=" + std::to_string(max_age);
  if (!a.domain.empty()) v += "; Domain=" + a.domain;
  if (a.http_only) v += "; HttpOnly";
  if (a.partitioned) v += "; Partitioned";
  if (!a.path.empty()) v += "; Path=" + a.path;
  if (!a.same_site.empty()) v += "; SameSite=" + a.same_site;
  if (a.secure) v += "; Secure";
  return v;
}

service_result<std::string> without_owner_references(std::string_view body) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return service_result<std::string>(boost::system::in_place_error, "the object to create is not a JSON object");
  }
  if (auto* meta = v.as_object().if_contains("metadata"); meta && meta->is_object()) {
    meta->as_object().erase("ownerReferences");
  }
  return service_result<std::string>(boost::system::in_place_value, boost::json::serialize(v));
}

std::unique_ptr<route_provider> make_route_provider(const provider_name& p) {
  if (!has_router(p)) return nullptr;
  switch (p.family) {
    case router_family::istio: return make_istio_provider();
    case router_family::gatewayapi: return make_gatewayapi_provider(p.version);
    case router_family::knative: return make_knative_provider();
    default: return nullptr;
  }
}

}  // namespace canaryd::core
