#include "core/provider.hpp"

#include <fmt/format.h>

namespace canaryd::core {

namespace {

constexpr std::string_view service_suffix = ":service";

}  // namespace

std::optional<provider_name> parse_provider(std::string_view s) {
  provider_name p;
  if (s.size() > service_suffix.size() && s.ends_with(service_suffix)) {
    p.service_target = true;
    s.remove_suffix(service_suffix.size());
  }
  auto is = [&](router_family f) {
    p.family = f;
    return std::optional<provider_name>(p);
  };
  if (s.starts_with("appmesh:v1beta2")) {
    p.version = "v1beta2";
    return is(router_family::appmesh);
  }
  if (s == "appmesh") {
    p.version = "v1beta1";
    return is(router_family::appmesh);
  }
  if (s == "linkerd") return is(router_family::linkerd);
  if (s == "istio") return is(router_family::istio);
  if (s.starts_with("smi:")) {
    std::string_view rest = s.substr(4);
    const auto colon = rest.find(':');
    const std::string_view version = rest.substr(0, colon);
    if (version != "v1alpha1" && version != "v1alpha2" && version != "v1alpha3") return std::nullopt;
    p.version = std::string(version);
    if (colon != std::string_view::npos) p.option = std::string(rest.substr(colon + 1));
    return is(router_family::smi);
  }
  if (s == "contour") return is(router_family::contour);
  if (s == "knative") return is(router_family::knative);
  if (s.starts_with("gloo")) {
    if (s.starts_with("gloo:")) p.option = std::string(s.substr(5));
    else if (s != "gloo") return std::nullopt;
    return is(router_family::gloo);
  }
  if (s == "nginx") return is(router_family::nginx);
  if (s == "skipper") return is(router_family::skipper);
  if (s == "traefik") return is(router_family::traefik);
  if (s == "apisix") return is(router_family::apisix);
  if (s == "osm") return is(router_family::osm);
  if (s == "kuma") return is(router_family::kuma);
  // Flagger tests the v1beta1 prefix first: "gatewayapi:v1" is a prefix of it.
  if (s.starts_with("gatewayapi:v1beta1")) {
    p.version = "v1beta1";
    return is(router_family::gatewayapi);
  }
  if (s.starts_with("gatewayapi:v1")) {
    p.version = "v1";
    return is(router_family::gatewayapi);
  }
  if (s == "kubernetes") return is(router_family::kubernetes);
  return std::nullopt;
}

std::string_view family_name(router_family f) {
  switch (f) {
    case router_family::kubernetes: return "kubernetes";
    case router_family::istio: return "istio";
    case router_family::gatewayapi: return "gatewayapi";
    case router_family::linkerd: return "linkerd";
    case router_family::smi: return "smi";
    case router_family::osm: return "osm";
    case router_family::appmesh: return "appmesh";
    case router_family::contour: return "contour";
    case router_family::gloo: return "gloo";
    case router_family::nginx: return "nginx";
    case router_family::skipper: return "skipper";
    case router_family::traefik: return "traefik";
    case router_family::apisix: return "apisix";
    case router_family::kuma: return "kuma";
    case router_family::knative: return "knative";
  }
  return "?";
}

bool has_router(const provider_name& p) {
  switch (p.family) {
    // Flagger's factory matches these exactly: with `:service` they fall to its Istio default,
    // which canaryd refuses (provider_error() says why).
    case router_family::kubernetes:
    case router_family::istio: return !p.service_target;
    // Matched by prefix in Flagger: `gatewayapi:v1:service` is the v1 router.
    case router_family::gatewayapi: return true;
    case router_family::knative: return !p.service_target;
    default: return false;
  }
}

const std::vector<std::string_view>& routed_providers() {
  static const std::vector<std::string_view> v{"kubernetes", "istio", "gatewayapi:v1", "gatewayapi:v1beta1", "knative"};
  return v;
}

std::string effective_provider(const canary& c, std::string_view mesh_provider) {
  return c.spec.provider.empty() ? std::string(mesh_provider) : c.spec.provider;
}

std::optional<field_error> provider_error(const canary& c, std::string_view mesh_provider) {
  const std::string provider = effective_provider(c, mesh_provider);
  const std::string from = c.spec.provider.empty() ? " (the -mesh-provider default, as spec.provider is empty)" : "";
  std::string supported;
  for (auto p : routed_providers()) {
    if (!supported.empty()) supported += ", ";
    supported += p;
  }
  auto parsed = parse_provider(provider);
  if (!parsed) {
    return field_error{"spec.provider",
                       fmt::format("unknown provider \"{}\"{}: canaryd routes {} (and, unlike Flagger, does not fall "
                                   "back to istio)",
                                   provider, from, supported)};
  }
  const bool exact_family = parsed->family == router_family::kubernetes || parsed->family == router_family::istio;
  if (parsed->service_target && exact_family) {
    const std::string_view bare = std::string_view(provider).substr(0, provider.size() - service_suffix.size());
    return field_error{"spec.provider",
                       fmt::format("provider \"{}\"{}: \"{}\" names the metrics observer of a Service target, not a "
                                   "router (Flagger's factory sends \"{}\" to its Istio default); use \"{}\": canaryd, "
                                   "as Flagger, appends \"{}\" to the observer of a Service target itself",
                                   provider, from, service_suffix, provider, bare, service_suffix)};
  }
  if (!has_router(*parsed)) {
    return field_error{"spec.provider", fmt::format("provider \"{}\"{} is not supported by canaryd yet: no router for "
                                                    "it; canaryd routes {}",
                                                    provider, from, supported)};
  }
  return std::nullopt;
}

}  // namespace canaryd::core
