#pragma once
// Which traffic provider a Canary names, as Flagger's router factory reads the string
// (router/factory.go, flagger-behaviour.md §5), and whether canaryd has a router for it.
//
// Flagger's factory, kept: `appmesh:v1beta2...` and exactly `appmesh`; `linkerd`; `istio`;
// `smi:<version>[:<mesh>]`; `contour`, `knative`, `gloo[:<upstream namespace>]`, `nginx`,
// `skipper`, `traefik`, `apisix`, `osm`, `kuma`; `gatewayapi:v1beta1...` and `gatewayapi:v1...`
// (prefixes, tested in that order); `kubernetes`. A trailing `:service` (Flagger's metrics
// observer name for a Service target) is recognised on any of them; has_router() follows
// Flagger's matching: routed for the prefix-matched gatewayapi, refused for the exactly matched
// kubernetes and istio, which Flagger would send to its Istio default.
// Difference: Flagger sends any other string (bare `gatewayapi` included) to the Istio router
// with a warning; canaryd refuses it, like a provider it has no router for, before it creates or
// scales anything (docs/compatibility.md).
//
// Thread affinity: none (pure).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/canary.hpp"
#include "core/field_error.hpp"

namespace canaryd::core {

// One per router Flagger has (its factory's cases).
enum class router_family {
  kubernetes,
  istio,
  gatewayapi,
  linkerd,  // SMI TrafficSplit v1alpha1
  smi,
  osm,  // SMI TrafficSplit v1alpha2
  appmesh,
  contour,
  gloo,
  nginx,
  skipper,
  traefik,
  apisix,
  kuma,
  knative,
};

struct provider_name {
  router_family family = router_family::kubernetes;
  std::string version;  // gatewayapi: v1 or v1beta1; smi: v1alpha1..3; appmesh: v1beta1 or v1beta2
  std::string option;   // smi: the mesh; gloo: the upstream discovery namespace
  bool service_target = false;  // written with the `:service` suffix
  friend bool operator==(const provider_name&, const provider_name&) = default;
};

// Flagger's factory; nullopt for a string it would hand to Istio with a warning.
std::optional<provider_name> parse_provider(std::string_view provider);

// The family's name as in Flagger's provider strings ("gatewayapi", "smi", ...).
std::string_view family_name(router_family f);

// Whether canaryd has a router for it (mesh/<family>_router ... see docs/providers.md).
bool has_router(const provider_name& p);

// The provider strings canaryd routes, for messages.
const std::vector<std::string_view>& routed_providers();

// The provider in force for `c`: spec.provider, or `mesh_provider` (-mesh-provider) when empty.
std::string effective_provider(const canary& c, std::string_view mesh_provider);

// A field error on spec.provider when canaryd cannot route the provider in force (unknown, or
// no router yet); nullopt when it can. decide() turns it into Promoted=False/InvalidSpec and a
// Warning event with nothing created or scaled.
std::optional<field_error> provider_error(const canary& c, std::string_view mesh_provider);

}  // namespace canaryd::core
