// Provider strings as Flagger's router factory reads them (flagger-behaviour.md §5), and the
// refusal of every provider canaryd has no router for, as pure tables.
#include <doctest/doctest.h>

#include <string>

#include "core/canary.hpp"
#include "core/provider.hpp"

using namespace canaryd::core;

namespace {

canary with_provider(const std::string& provider) {
  std::string text = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
    "metadata":{"name":"podinfo","namespace":"default","uid":"uid-1"},
    "spec":{)" + (provider.empty() ? std::string() : R"("provider":")" + provider + R"(",)") +
                     R"("targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},
      "service":{"port":9898},"analysis":{"interval":"1m","threshold":5,"iterations":3}}})";
  return decode_canary(text).value;
}

}  // namespace

TEST_CASE("every provider string of Flagger's factory is recognised") {
  struct row {
    const char* text;
    router_family family;
    const char* version;
    const char* option;
    bool service;
  };
  const row rows[] = {
      {"kubernetes", router_family::kubernetes, "", "", false},
      {"istio", router_family::istio, "", "", false},
      {"gatewayapi:v1", router_family::gatewayapi, "v1", "", false},
      {"gatewayapi:v1beta1", router_family::gatewayapi, "v1beta1", "", false},
      {"gatewayapi:v1:service", router_family::gatewayapi, "v1", "", true},
      {"linkerd", router_family::linkerd, "", "", false},
      {"smi:v1alpha1", router_family::smi, "v1alpha1", "", false},
      {"smi:v1alpha2:linkerd", router_family::smi, "v1alpha2", "linkerd", false},
      {"smi:v1alpha3:istio", router_family::smi, "v1alpha3", "istio", false},
      {"osm", router_family::osm, "", "", false},
      {"appmesh", router_family::appmesh, "v1beta1", "", false},
      {"appmesh:v1beta2", router_family::appmesh, "v1beta2", "", false},
      {"contour", router_family::contour, "", "", false},
      {"gloo", router_family::gloo, "", "", false},
      {"gloo:gloo-system", router_family::gloo, "", "gloo-system", false},
      {"nginx", router_family::nginx, "", "", false},
      {"skipper", router_family::skipper, "", "", false},
      {"traefik", router_family::traefik, "", "", false},
      {"apisix", router_family::apisix, "", "", false},
      {"kuma", router_family::kuma, "", "", false},
      {"knative", router_family::knative, "", "", false},
      {"kubernetes:service", router_family::kubernetes, "", "", true},
      {"istio:service", router_family::istio, "", "", true},
  };
  for (const auto& r : rows) {
    CAPTURE(r.text);
    auto p = parse_provider(r.text);
    REQUIRE(p);
    CHECK(p->family == r.family);
    CHECK(p->version == r.version);
    CHECK(p->option == r.option);
    CHECK(p->service_target == r.service);
  }
}

TEST_CASE("strings Flagger would send to Istio with a warning are unknown to canaryd") {
  for (const char* s : {"", "nosuch", "gatewayapi", "smi", "smi:v1alpha9", "Istio", "supergloo:istio", "none",
                        "gloox", ":service"}) {
    CAPTURE(s);
    CHECK_FALSE(parse_provider(s));
  }
}

TEST_CASE("only the providers with a router pass; the others are refused naming the provider") {
  CHECK_FALSE(provider_error(with_provider("kubernetes"), "istio"));
  CHECK_FALSE(provider_error(with_provider("istio"), "kubernetes"));
  CHECK_FALSE(provider_error(with_provider(""), "istio"));
  CHECK_FALSE(provider_error(with_provider(""), "kubernetes"));
  CHECK_FALSE(provider_error(with_provider("gatewayapi:v1"), "istio"));
  CHECK_FALSE(provider_error(with_provider("gatewayapi:v1beta1"), "istio"));
  CHECK_FALSE(provider_error(with_provider("knative"), "istio"));

  for (const char* p : {"linkerd", "smi:v1alpha3", "osm", "appmesh", "appmesh:v1beta2", "contour", "gloo", "nginx",
                        "skipper", "traefik", "apisix", "kuma", "knative:service"}) {
    CAPTURE(p);
    auto e = provider_error(with_provider(p), "istio");
    REQUIRE(e);
    CHECK(e->field == "spec.provider");
    CHECK(e->message.find(std::string("provider \"") + p + "\" is not supported by canaryd yet") != std::string::npos);
  }

  auto unknown = provider_error(with_provider(""), "nosuch");
  REQUIRE(unknown);
  CHECK(unknown->text() ==
        "spec.provider: unknown provider \"nosuch\" (the -mesh-provider default, as spec.provider is empty): canaryd "
        "routes kubernetes, istio, gatewayapi:v1, gatewayapi:v1beta1, knative (and, unlike Flagger, does not fall back to istio)");

  auto mesh_default = provider_error(with_provider(""), "smi:v1alpha3:linkerd");
  REQUIRE(mesh_default);
  CHECK(mesh_default->message.find("provider \"smi:v1alpha3:linkerd\" (the -mesh-provider default") == 0);

  // `:service` (the observer name of a Service target): Flagger's factory matches gatewayapi by
  // prefix, so "gatewayapi:v1:service" is its v1 router; "kubernetes" and "istio" are matched
  // exactly, and with the suffix fall to Flagger's Istio default, which canaryd refuses saying
  // what to write instead.
  CHECK_FALSE(provider_error(with_provider(""), "gatewayapi:v1:service"));
  CHECK_FALSE(provider_error(with_provider(""), "gatewayapi:v1beta1:service"));
  auto svc = provider_error(with_provider(""), "kubernetes:service");
  REQUIRE(svc);
  CHECK(svc->text() ==
        "spec.provider: provider \"kubernetes:service\" (the -mesh-provider default, as spec.provider is empty): "
        "\":service\" names the metrics observer of a Service target, not a router (Flagger's factory sends "
        "\"kubernetes:service\" to its Istio default); use \"kubernetes\": canaryd, as Flagger, appends \":service\" to "
        "the observer of a Service target itself");
  auto istio_svc = provider_error(with_provider(""), "istio:service");
  REQUIRE(istio_svc);
  CHECK(istio_svc->message.find("use \"istio\"") != std::string::npos);
}
