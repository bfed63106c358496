// The Canary, MetricTemplate and AlertProvider models: every field of Flagger's CRD decodes,
// defaults are Flagger's, each validation error names its field, and no input crashes a decoder.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>

#include "core/alert_provider.hpp"
#include "core/canary.hpp"
#include "core/message.hpp"
#include "core/metric_template.hpp"
#include "tests/core/yaml_to_json.hpp"
#include "tests/support/process.hpp"

using namespace canaryd::core;
using namespace std::chrono_literals;

namespace {

// Every field of the CRD's Canary schema, each with a non-default value.
const char* const kitchen_sink = R"json({
  "apiVersion": "flagger.app/v1beta1",
  "kind": "Canary",
  "metadata": {
    "name": "podinfo", "namespace": "test", "uid": "u-1", "resourceVersion": "42", "generation": 3,
    "deletionTimestamp": "2024-05-01T10:00:00Z", "finalizers": ["finalizer.flagger.app"],
    "labels": {"app": "podinfo"}, "annotations": {"kuma.io/mesh": "default"}
  },
  "spec": {
    "provider": "gatewayapi:v1",
    "metricsServer": "http://prometheus.istio-system:9090",
    "progressDeadlineSeconds": 120,
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
    "autoscalerRef": {
      "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "podinfo-so",
      "primaryScalerQueries": {"prom-trigger": "sum(rate(http_requests_total{app=\"podinfo-primary\"}[2m]))"},
      "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 5}
    },
    "ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "podinfo-ing"},
    "routeRef": {"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute", "name": "podinfo-route"},
    "upstreamRef": {"apiVersion": "gloo.solo.io/v1", "kind": "Upstream", "name": "podinfo-up", "namespace": "gloo"},
    "service": {
      "name": "podinfo-svc", "port": 80, "portName": "http-web", "targetPort": "http",
      "appProtocol": "http", "trafficDistribution": "PreferClose", "portDiscovery": true, "headless": false,
      "timeout": "30s", "backendTimeout": "10s", "meshName": "global", "backends": ["backend.test"],
      "hosts": ["app.example.com"], "delegation": false, "gateways": ["public-gateway", "mesh"],
      "gatewayRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "istio-ingress",
                       "sectionName": "https", "port": 443}],
      "match": [{"name": "api", "uri": {"prefix": "/api"}, "scheme": {"exact": "https"}, "method": {"exact": "GET"},
                 "authority": {"regex": ".*example.com"}, "headers": {"x-canary": {"exact": "insider"}},
                 "queryParams": {"v": {"prefix": "2"}}, "withoutHeaders": {"x-skip": {"exact": "1"}}, "port": 8080,
                 "sourceLabels": {"app": "frontend"}, "gateways": ["mesh"], "ignoreUriCase": true,
                 "sourceNamespace": "web"}],
      "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
      "rewrite": {"uri": "/", "authority": "podinfo.test", "type": "ReplacePrefixMatch"},
      "mirror": [{"backendRef": {"name": "shadow", "port": 9898, "namespace": "test"}, "percent": 20,
                  "fraction": {"numerator": 1, "denominator": 5}}],
      "headers": {"request": {"add": {"x-a": "1"}, "set": {"x-s": "2"}, "remove": ["x-r"]},
                  "response": {"add": {"x-b": "3"}, "set": {"x-t": "4"}, "remove": ["x-q"]}},
      "corsPolicy": {"allowOrigin": ["https://a.example.com"], "allowOrigins": [{"exact": "https://b.example.com"}],
                     "allowMethods": ["GET", "POST"], "allowHeaders": ["x-h"], "exposeHeaders": ["x-e"],
                     "maxAge": "24h", "allowCredentials": true},
      "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "loadBalancer": {"simple": "LEAST_REQUEST"}},
      "apex": {"labels": {"tier": "apex"}, "annotations": {"a": "apex"}},
      "primary": {"labels": {"tier": "primary"}, "annotations": {"a": "primary"}},
      "canary": {"labels": {"tier": "canary"}, "annotations": {"a": "canary"}},
      "unmanagedMetadata": {"labels": ["team"], "annotations": ["owner"]}
    },
    "skipAnalysis": true,
    "revertOnDeletion": true,
    "suspend": true,
    "analysis": {
      "interval": "1m30s", "iterations": 0, "threshold": 5, "maxWeight": 60, "stepWeight": 0,
      "stepWeights": [1, 10, 60], "stepWeightPromotion": 30, "mirror": true, "mirrorWeight": 25,
      "primaryReadyThreshold": 80, "canaryReadyThreshold": 90,
      "match": [{"headers": {"user-agent": {"suffix": "Firefox"}, "cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}},
                 "queryParams": {"beta": {"exact": "1"}}, "sourceLabels": {"app": "web"}}],
      "metrics": [
        {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}},
        {"name": "request-duration", "thresholdRange": {"max": 500.5}},
        {"name": "error-rate", "interval": "30s", "threshold": 1.5,
         "templateRef": {"name": "error-rate", "namespace": "flagger-system"},
         "templateVariables": {"direction": "inbound"}},
        {"name": "inline", "query": "sum(up)", "thresholdRange": {"min": 0, "max": 10}}
      ],
      "alerts": [{"name": "on-call", "severity": "error", "providerRef": {"name": "slack", "namespace": "flagger"}}],
      "webhooks": [
        {"name": "gate", "type": "confirm-rollout", "url": "http://loadtester.test/gate/approve", "timeout": "5s",
         "retries": 2, "muteAlert": true, "disableTLS": true, "metadata": {"type": "bash", "cmd": "true"}},
        {"name": "load", "url": "http://loadtester.test/"},
        {"name": "pre", "type": "pre-rollout", "url": "http://loadtester.test/"},
        {"name": "promote", "type": "confirm-promotion", "url": "http://loadtester.test/"},
        {"name": "post", "type": "post-rollout", "url": "http://loadtester.test/"},
        {"name": "events", "type": "event", "url": "http://events.test/"},
        {"name": "rb", "type": "rollback", "url": "http://loadtester.test/rollback/check"},
        {"name": "step", "type": "confirm-traffic-increase", "url": "http://loadtester.test/"},
        {"name": "explicit", "type": "rollout", "url": "https://loadtester.test/", "timeout": "1"}
      ],
      "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "domain": "example.com",
                          "httpOnly": true, "maxAge": 3600, "partitioned": true, "path": "/", "sameSite": "Lax",
                          "secure": true}
    }
  },
  "status": {
    "phase": "WaitingPromotion", "failedChecks": 2, "canaryWeight": 60, "iterations": 4,
    "trackedConfigs": {"configmap/podinfo-config": "0123456789abcdef", "secret/podinfo-secret": "fedcba9876543210"},
    "lastAppliedSpec": "5f7b8c9d4d", "lastPromotedSpec": "6c8d9f5b7", "lastTransitionTime": "2024-05-01T09:59:00Z",
    "sessionAffinityCookie": "flagger-cookie=abcdefghij", "primarySessionAffinityCookie": "primary-cookie=klmnopqrst",
    "previousSessionAffinityCookie": "flagger-cookie=zyxwvutsrq",
    "conditions": [{"type": "Promoted", "status": "Unknown", "lastUpdateTime": "2024-05-01T09:59:00Z",
                    "lastTransitionTime": "2024-05-01T09:00:00Z", "reason": "WaitingPromotion",
                    "message": "Waiting for approval."}]
  }
})json";

// The smallest valid canary; tests edit it into invalid ones.
std::string minimal(const std::string& analysis = R"("interval": "10s", "threshold": 2, "stepWeight": 10)",
                    const std::string& extra_spec = "") {
  return R"({"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": "podinfo", "namespace": "test"},
             "spec": {)" +
         extra_spec + R"("targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
             "service": {"port": 9898}, "analysis": {)" +
         analysis + "}}}";
}

std::vector<std::string> error_texts(const std::vector<field_error>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.text());
  return out;
}

bool has_error(const decoded<canary>& d, const std::string& text) {
  for (const auto& e : d.errors) {
    if (e.text() == text) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a Canary with every field of the CRD decodes each of them") {
  auto d = decode_canary(kitchen_sink);
  INFO(join_errors(d.errors));
  REQUIRE(d.ok());
  const canary& c = d.value;
  CHECK(c.api_version == "flagger.app/v1beta1");
  CHECK(c.kind == "Canary");
  CHECK(c.metadata.name == "podinfo");
  CHECK(c.metadata.namespace_ == "test");
  CHECK(c.metadata.uid == "u-1");
  CHECK(c.metadata.resource_version == "42");
  CHECK(c.metadata.generation == 3);
  REQUIRE(c.metadata.deletion_timestamp);
  CHECK(format_rfc3339(*c.metadata.deletion_timestamp) == "2024-05-01T10:00:00Z");
  CHECK(c.has_finalizer());
  CHECK(c.metadata.labels.at("app") == "podinfo");
  CHECK(c.metadata.annotations.at("kuma.io/mesh") == "default");

  const canary_spec& s = c.spec;
  CHECK(s.provider == "gatewayapi:v1");
  CHECK(s.metrics_server == "http://prometheus.istio-system:9090");
  CHECK(c.progress_deadline_seconds() == 120);
  CHECK(s.target_ref.api_version == "apps/v1");
  CHECK(s.target_ref.kind == "Deployment");
  CHECK(s.target_ref.name == "podinfo");
  REQUIRE(s.autoscaler_ref);
  CHECK(s.autoscaler_ref->api_version == "keda.sh/v1alpha1");
  CHECK(s.autoscaler_ref->kind == "ScaledObject");
  CHECK(s.autoscaler_ref->name == "podinfo-so");
  CHECK(s.autoscaler_ref->primary_scaler_queries.at("prom-trigger") ==
        "sum(rate(http_requests_total{app=\"podinfo-primary\"}[2m]))");
  REQUIRE(s.autoscaler_ref->primary_scaler_replicas);
  CHECK(s.autoscaler_ref->primary_scaler_replicas->min_replicas == 2);
  CHECK(s.autoscaler_ref->primary_scaler_replicas->max_replicas == 5);
  REQUIRE(s.ingress_ref);
  CHECK(s.ingress_ref->kind == "Ingress");
  CHECK(s.ingress_ref->name == "podinfo-ing");
  REQUIRE(s.route_ref);
  CHECK(s.route_ref->kind == "ApisixRoute");
  CHECK(s.route_ref->api_version == "apisix.apache.org/v2");
  REQUIRE(s.upstream_ref);
  CHECK(s.upstream_ref->name == "podinfo-up");
  CHECK(s.upstream_ref->namespace_ == "gloo");
  CHECK(s.skip_analysis);
  CHECK(s.revert_on_deletion);
  CHECK(s.suspend);

  const canary_service& sv = s.service;
  CHECK(sv.name == "podinfo-svc");
  CHECK(c.apex_service_name() == "podinfo-svc");
  CHECK(c.primary_service_name() == "podinfo-svc-primary");
  CHECK(c.canary_service_name() == "podinfo-svc-canary");
  CHECK(c.primary_workload_name() == "podinfo-primary");
  CHECK(sv.port == 80);
  CHECK(c.port_name() == "http-web");
  REQUIRE(sv.target_port);
  CHECK(sv.target_port->is_string);
  CHECK(sv.target_port->string_value == "http");
  CHECK(sv.app_protocol == "http");
  CHECK(sv.traffic_distribution == "PreferClose");
  CHECK(sv.port_discovery);
  CHECK_FALSE(sv.headless);
  CHECK(sv.timeout == "30s");
  CHECK(sv.backend_timeout == "10s");
  CHECK(sv.mesh_name == "global");
  CHECK(sv.backends == std::vector<std::string>{"backend.test"});
  CHECK(sv.hosts == std::vector<std::string>{"app.example.com"});
  CHECK_FALSE(sv.delegation);
  CHECK(sv.gateways == std::vector<std::string>{"public-gateway", "mesh"});
  REQUIRE(sv.gateway_refs.size() == 1);
  CHECK(sv.gateway_refs[0].name == "gw");
  CHECK(sv.gateway_refs[0].namespace_ == "istio-ingress");
  CHECK(sv.gateway_refs[0].section_name == "https");
  CHECK(sv.gateway_refs[0].port == 443);
  REQUIRE(sv.match.size() == 1);
  const http_match_request& m = sv.match[0];
  CHECK(m.name == "api");
  CHECK(m.uri->prefix == "/api");
  CHECK(m.scheme->exact == "https");
  CHECK(m.method->exact == "GET");
  CHECK(m.authority->regex == ".*example.com");
  CHECK(m.headers.at("x-canary").exact == "insider");
  CHECK(m.query_params.at("v").prefix == "2");
  CHECK(m.without_headers.at("x-skip").exact == "1");
  CHECK(m.port == 8080);
  CHECK(m.source_labels.at("app") == "frontend");
  CHECK(m.gateways == std::vector<std::string>{"mesh"});
  CHECK(m.ignore_uri_case);
  CHECK(m.source_namespace == "web");
  CHECK(sv.match_json.find(R"("uri":{"prefix":"/api"})") != std::string::npos);
  REQUIRE(sv.retries);
  CHECK(sv.retries->attempts == 3);
  CHECK(sv.retries->per_try_timeout == "1s");
  CHECK(sv.retries->retry_on == "gateway-error,connect-failure");
  CHECK(sv.retries_json == R"({"attempts":3,"perTryTimeout":"1s","retryOn":"gateway-error,connect-failure"})");
  REQUIRE(sv.rewrite);
  CHECK(sv.rewrite->uri == "/");
  CHECK(sv.rewrite->authority == "podinfo.test");
  CHECK(sv.rewrite->type == "ReplacePrefixMatch");
  CHECK(sv.rewrite_json == R"({"authority":"podinfo.test","type":"ReplacePrefixMatch","uri":"/"})");
  REQUIRE(sv.mirror.size() == 1);
  CHECK(sv.mirror[0].backend_ref.name == "shadow");
  CHECK(sv.mirror[0].backend_ref.kind == "Service");
  CHECK(sv.mirror[0].backend_ref.port == 9898);
  CHECK(sv.mirror[0].backend_ref.namespace_ == "test");
  CHECK(sv.mirror[0].percent == 20);
  REQUIRE(sv.mirror[0].fraction);
  CHECK(sv.mirror[0].fraction->numerator == 1);
  CHECK(sv.mirror[0].fraction->denominator == 5);
  CHECK_FALSE(sv.mirror_json.empty());
  REQUIRE(sv.headers);
  CHECK(sv.headers->request.add.at("x-a") == "1");
  CHECK(sv.headers->request.set.at("x-s") == "2");
  CHECK(sv.headers->request.remove == std::vector<std::string>{"x-r"});
  CHECK(sv.headers->response.add.at("x-b") == "3");
  CHECK(sv.headers->response.set.at("x-t") == "4");
  CHECK(sv.headers->response.remove == std::vector<std::string>{"x-q"});
  CHECK_FALSE(sv.headers_json.empty());
  REQUIRE(sv.cors);
  CHECK(sv.cors->allow_origin == std::vector<std::string>{"https://a.example.com"});
  REQUIRE(sv.cors->allow_origins.size() == 1);
  CHECK(sv.cors->allow_origins[0].exact == "https://b.example.com");
  CHECK(sv.cors->allow_methods == std::vector<std::string>{"GET", "POST"});
  CHECK(sv.cors->allow_headers == std::vector<std::string>{"x-h"});
  CHECK(sv.cors->expose_headers == std::vector<std::string>{"x-e"});
  CHECK(sv.cors->max_age == "24h");
  CHECK(sv.cors->allow_credentials == true);
  CHECK_FALSE(sv.cors_policy_json.empty());
  CHECK(sv.traffic_policy_json == R"({"loadBalancer":{"simple":"LEAST_REQUEST"},"tls":{"mode":"ISTIO_MUTUAL"}})");
  CHECK(sv.apex->labels.at("tier") == "apex");
  CHECK(sv.apex->annotations.at("a") == "apex");
  CHECK(sv.primary->labels.at("tier") == "primary");
  CHECK(sv.canary->annotations.at("a") == "canary");
  REQUIRE(sv.unmanaged);
  CHECK(sv.unmanaged->labels == std::vector<std::string>{"team"});
  CHECK(sv.unmanaged->annotations == std::vector<std::string>{"owner"});

  REQUIRE(s.analysis);
  const canary_analysis& a = *s.analysis;
  CHECK(c.analysis_interval() == 90s);
  CHECK(a.iterations == 0);
  CHECK(c.analysis_threshold() == 5);
  CHECK(a.max_weight == 60);
  CHECK(a.step_weight == 0);
  CHECK(a.step_weights == std::vector<int>{1, 10, 60});
  CHECK(a.step_weight_promotion == 30);
  CHECK(a.mirror);
  CHECK(a.mirror_weight == 25);
  CHECK(c.primary_ready_threshold() == 80);
  CHECK(c.canary_ready_threshold() == 90);
  REQUIRE(a.match.size() == 1);
  CHECK(a.match[0].headers.at("user-agent").suffix == "Firefox");
  CHECK(a.match[0].headers.at("cookie").regex == "^(.*?;)?(type=insider)(;.*)?$");
  CHECK(a.match[0].query_params.at("beta").exact == "1");
  CHECK(a.match[0].source_labels.at("app") == "web");
  CHECK_FALSE(a.match_json.empty());
  REQUIRE(a.metrics.size() == 4);
  CHECK(a.metrics[0].name == "request-success-rate");
  CHECK(a.metrics[0].range->min == 99);
  CHECK_FALSE(a.metrics[0].range->max);
  CHECK(a.metrics[1].effective_interval() == "1m");
  CHECK(a.metrics[1].range->max == 500.5);
  CHECK(a.metrics[2].interval == "30s");
  CHECK(a.metrics[2].threshold == 1.5);
  CHECK(a.metrics[2].template_ref->name == "error-rate");
  CHECK(a.metrics[2].template_ref->namespace_ == "flagger-system");
  CHECK(a.metrics[2].template_variables.at("direction") == "inbound");
  CHECK(a.metrics[3].query == "sum(up)");
  CHECK(a.metrics[3].range->min == 0);
  CHECK(a.metrics[3].range->max == 10);
  REQUIRE(a.alerts.size() == 1);
  CHECK(a.alerts[0].name == "on-call");
  CHECK(a.alerts[0].severity == "error");
  CHECK(a.alerts[0].provider_ref.name == "slack");
  CHECK(a.alerts[0].provider_ref.namespace_ == "flagger");
  REQUIRE(a.webhooks.size() == 9);
  const canary_webhook& gate = a.webhooks[0];
  CHECK(gate.name == "gate");
  CHECK(gate.type == webhook_type::confirm_rollout);
  CHECK(gate.url == "http://loadtester.test/gate/approve");
  CHECK(gate.effective_timeout() == 5s);
  CHECK(gate.retries == 2);
  CHECK(gate.mute_alert);
  CHECK(gate.disable_tls);
  CHECK(gate.metadata.at("cmd") == "true");
  CHECK(a.webhooks[1].type == webhook_type::rollout);
  CHECK(a.webhooks[1].effective_timeout() == 10s);
  CHECK(a.webhooks[2].type == webhook_type::pre_rollout);
  CHECK(a.webhooks[3].type == webhook_type::confirm_promotion);
  CHECK(a.webhooks[4].type == webhook_type::post_rollout);
  CHECK(a.webhooks[5].type == webhook_type::event);
  CHECK(a.webhooks[6].type == webhook_type::rollback);
  CHECK(a.webhooks[7].type == webhook_type::confirm_traffic_increase);
  CHECK(a.webhooks[8].type == webhook_type::rollout);
  CHECK(a.webhooks[8].effective_timeout() == 10s);  // shorter than two characters: Flagger's default
  REQUIRE(a.affinity);
  CHECK(a.affinity->cookie_name == "flagger-cookie");
  CHECK(a.affinity->primary_cookie_name == "primary-cookie");
  CHECK(a.affinity->domain == "example.com");
  CHECK(a.affinity->http_only);
  CHECK(a.affinity->max_age == 3600);
  CHECK(a.affinity->partitioned);
  CHECK(a.affinity->path == "/");
  CHECK(a.affinity->same_site == "Lax");
  CHECK(a.affinity->secure);
  CHECK(c.strategy() == deployment_strategy::canary);
  CHECK(c.skip_analysis());

  const canary_status& st = c.status;
  CHECK(st.phase == canary_phase::waiting_promotion);
  CHECK(st.failed_checks == 2);
  CHECK(st.canary_weight == 60);
  CHECK(st.iterations == 4);
  REQUIRE(st.tracked_configs);
  CHECK(st.tracked_configs->at("configmap/podinfo-config") == "0123456789abcdef");
  CHECK(st.tracked_configs->at("secret/podinfo-secret") == "fedcba9876543210");
  CHECK(st.last_applied_spec == "5f7b8c9d4d");
  CHECK(st.last_promoted_spec == "6c8d9f5b7");
  CHECK(format_rfc3339(*st.last_transition_time) == "2024-05-01T09:59:00Z");
  CHECK(st.session_affinity_cookie == "flagger-cookie=abcdefghij");
  CHECK(st.primary_session_affinity_cookie == "primary-cookie=klmnopqrst");
  CHECK(st.previous_session_affinity_cookie == "flagger-cookie=zyxwvutsrq");
  REQUIRE(st.conditions.size() == 1);
  const canary_condition* promoted = st.condition("Promoted");
  REQUIRE(promoted);
  CHECK(promoted->status == "Unknown");
  CHECK(promoted->reason == "WaitingPromotion");
  CHECK(promoted->message == "Waiting for approval.");
  CHECK(format_rfc3339(*promoted->last_transition_time) == "2024-05-01T09:00:00Z");
  CHECK(format_rfc3339(*promoted->last_update_time) == "2024-05-01T09:59:00Z");
}

TEST_CASE("the status encodes with Flagger's field names and decodes back to the same value") {
  auto d = decode_canary(kitchen_sink);
  REQUIRE(d.ok());
  const std::string json = encode_status(d.value.status);
  CHECK(json.find(R"("phase":"WaitingPromotion","failedChecks":2,"canaryWeight":60,"iterations":4)") != std::string::npos);
  CHECK(json.find(R"("lastTransitionTime":"2024-05-01T09:59:00Z")") != std::string::npos);
  auto back = decode_canary(minimal().insert(minimal().size() - 1, R"(,"status":)" + json));
  INFO(join_errors(back.errors));
  REQUIRE(back.ok());
  CHECK(back.value.status == d.value.status);
}

TEST_CASE("an empty status encodes only the fields Flagger always writes") {
  canary_status st;
  CHECK(encode_status(st) == R"({"phase":"","failedChecks":0,"canaryWeight":0,"iterations":0})");
}

TEST_CASE("unset fields take Flagger's defaults") {
  auto d = decode_canary(
      R"({"metadata": {"name": "podinfo", "namespace": "test"},
          "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                   "service": {"port": 9898}, "analysis": {"stepWeight": 10, "metrics": [{"name": "request-success-rate"}],
                   "webhooks": [{"name": "w", "url": "http://w/"}]}}})");
  INFO(join_errors(d.errors));
  REQUIRE(d.ok());
  const canary& c = d.value;
  CHECK(c.analysis_interval() == 60s);
  CHECK(c.analysis_threshold() == 1);
  CHECK(c.progress_deadline_seconds() == 600);
  CHECK(c.primary_ready_threshold() == 100);
  CHECK(c.canary_ready_threshold() == 100);
  CHECK(c.port_name() == "http");
  CHECK(c.apex_service_name() == "podinfo");
  CHECK(c.primary_service_name() == "podinfo-primary");
  CHECK(c.canary_service_name() == "podinfo-canary");
  CHECK_FALSE(c.skip_analysis());
  CHECK_FALSE(c.spec.suspend);
  CHECK_FALSE(c.spec.revert_on_deletion);
  CHECK(c.spec.provider.empty());
  CHECK(c.strategy() == deployment_strategy::canary);
  CHECK(c.spec.analysis->metrics[0].effective_interval() == "1m");
  CHECK(c.spec.analysis->webhooks[0].type == webhook_type::rollout);
  CHECK(c.spec.analysis->webhooks[0].effective_timeout() == 10s);
  CHECK(c.status.phase == canary_phase::none);
  CHECK_FALSE(c.status.tracked_configs);
  CHECK(c.id() == "podinfo.test");
  CHECK(c.target_id() == "podinfo.test");
}

TEST_CASE("iterations choose Blue/Green and iterations with match choose A/B testing") {
  auto bg = decode_canary(minimal(R"("interval": "1m", "threshold": 2, "iterations": 5)"));
  REQUIRE(bg.ok());
  CHECK(bg.value.strategy() == deployment_strategy::blue_green);
  CHECK(to_string(bg.value.strategy()) == "blue-green");
  auto ab = decode_canary(
      minimal(R"("interval": "1m", "threshold": 2, "iterations": 5, "match": [{"headers": {"x": {"exact": "1"}}}])"));
  REQUIRE(ab.ok());
  CHECK(ab.value.strategy() == deployment_strategy::ab_testing);
  CHECK(to_string(ab.value.strategy()) == "ab-testing");
}

TEST_CASE("intervals down to one second are accepted and Go duration forms parse") {
  for (const char* interval : {"1s", "30s", "1m", "1m30s", "1h", "1500ms"}) {
    auto d = decode_canary(minimal(std::string(R"("interval": ")") + interval + R"(", "stepWeight": 10)"));
    INFO(interval << ": " << join_errors(d.errors));
    CHECK(d.ok());
  }
  auto d = decode_canary(minimal(R"("interval": "1s", "stepWeight": 10)"));
  CHECK(d.value.analysis_interval() == 1s);  // Flagger would clamp this to 10s
  auto h = decode_canary(minimal(R"("interval": "1m30s", "stepWeight": 10)"));
  CHECK(h.value.analysis_interval() == 90s);
}

TEST_CASE("each validation error names its field") {
  struct row {
    std::string json;
    std::string error;
  };
  const std::vector<row> rows = {
      {minimal(R"("interval": "1m", "stepWeight": 0)"),
       "spec.analysis.stepWeight: must be greater than 0 when neither iterations nor stepWeights is set"},
      {minimal(R"("interval": "1m", "threshold": 2)"),
       "spec.analysis.stepWeight: must be greater than 0 when neither iterations nor stepWeights is set"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "maxWeight": 150)"),
       "spec.analysis.maxWeight: must be at most 100, got 150"},
      {minimal(R"("interval": "1m", "stepWeight": 101)"), "spec.analysis.stepWeight: must be at most 100, got 101"},
      {minimal(R"("interval": "1m", "stepWeight": -5)"), "spec.analysis.stepWeight: must not be negative, got -5"},
      {minimal(R"("interval": "soon", "stepWeight": 10)"),
       R"(spec.analysis.interval: invalid duration "soon" (Go syntax: "1m", "30s", "1m30s", "500ms", "1h"))"},
      {minimal(R"("interval": "10", "stepWeight": 10)"),
       R"(spec.analysis.interval: invalid duration "10" (Go syntax: "1m", "30s", "1m30s", "500ms", "1h"))"},
      {minimal(R"("interval": "500ms", "stepWeight": 10)"), R"(spec.analysis.interval: must be at least 1s, got "500ms")"},
      {minimal(R"("interval": "9000h", "stepWeight": 10)"), R"(spec.analysis.interval: must be at most 8760h, got "9000h")"},
      {minimal(R"("interval": "1m", "stepWeights": [10, 5])"),
       "spec.analysis.stepWeights[1]: must be greater than the previous step (10), got 5"},
      {minimal(R"("interval": "1m", "stepWeights": [0, 50])"), "spec.analysis.stepWeights[0]: must be at least 1, got 0"},
      {minimal(R"("interval": "1m", "iterations": -1, "stepWeight": 5)"), "spec.analysis.iterations: must not be negative, got -1"},
      {minimal(R"("interval": "1m", "iterations": 3, "mirrorWeight": 120)"),
       "spec.analysis.mirrorWeight: must be at most 100, got 120"},
      {minimal(R"("interval": "1m", "iterations": 3, "primaryReadyThreshold": 101)"),
       "spec.analysis.primaryReadyThreshold: must be at most 100, got 101"},
      {minimal(R"("interval": "1m", "iterations": 3, "canaryReadyThreshold": -1)"),
       "spec.analysis.canaryReadyThreshold: must not be negative, got -1"},
      {minimal(R"("interval": "1m", "stepWeight": "ten")"), "spec.analysis.stepWeight: must be an integer, got a string"},
      {minimal(R"("interval": "1m", "stepWeight": 2.5)"), "spec.analysis.stepWeight: must be an integer, got 2.5"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"interval": "1m"}])"), "spec.analysis.metrics[0].name: required"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"name": "request-duration"}])"),
       "spec.analysis.metrics[0].thresholdRange: request-duration needs a thresholdRange (milliseconds) or a threshold"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"name": "request-duration", "interval": "1x"}])"),
       R"(spec.analysis.metrics[0].interval: invalid duration "1x" (Go syntax: "1m", "30s", "1m30s", "500ms", "1h"))"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"name": "latency"}])"),
       R"(spec.analysis.metrics[0]: "latency" is not a built-in metric (request-success-rate, request-duration): it needs a templateRef or a query)"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"name": "x", "templateRef": {"namespace": "a"}}])"),
       "spec.analysis.metrics[0].templateRef.name: required"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"name": "request-duration", "thresholdRange": {"min": 5, "max": 1}}])"),
       "spec.analysis.metrics[0].thresholdRange: min (5) must not exceed max (1)"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "webhooks": [{"name": "w"}])"), "spec.analysis.webhooks[0].url: required"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "webhooks": [{"name": "w", "url": "loadtester"}])"),
       R"(spec.analysis.webhooks[0].url: must be an absolute URL, got "loadtester")"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "webhooks": [{"name": "w", "url": "http://w/", "type": "later"}])"),
       R"(spec.analysis.webhooks[0].type: must be one of "", rollout, confirm-rollout, pre-rollout, confirm-promotion, post-rollout, event, rollback, confirm-traffic-increase; got "later")"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "webhooks": [{"name": "w", "url": "http://w/", "timeout": "5 s"}])"),
       R"(spec.analysis.webhooks[0].timeout: invalid duration "5 s" (Go syntax: "1m", "30s", "1m30s", "500ms", "1h"))"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "alerts": [{"name": "a", "severity": "loud", "providerRef": {"name": "p"}}])"),
       R"(spec.analysis.alerts[0].severity: must be one of "", info, warn, error; got "loud")"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "alerts": [{"name": "a"}])"), "spec.analysis.alerts[0].providerRef: required"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "sessionAffinity": {"cookieName": "c", "primaryCookieName": "c"})"),
       R"(spec.analysis.sessionAffinity.primaryCookieName: must differ from cookieName, both are "c")"},
      {minimal(R"("interval": "1m", "stepWeight": 10, "sessionAffinity": {"maxAge": 5})"),
       "spec.analysis.sessionAffinity.cookieName: required"},
      {R"({"metadata": {"name": "p"}, "spec": {"service": {"port": 80}, "analysis": {"stepWeight": 5}}})",
       "spec.targetRef: required"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment"}, "service": {"port": 80}, "analysis": {"stepWeight": 5}}})",
       "spec.targetRef.name: required"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "p"}, "service": {"port": 80}, "analysis": {"stepWeight": 5}}})",
       R"(spec.targetRef.kind: must be one of DaemonSet, Deployment, Service, StatefulSet; got "ReplicaSet")"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "analysis": {"stepWeight": 5}}})",
       "spec.service: required"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"name": "x"}, "analysis": {"stepWeight": 5}}})",
       "spec.service.port: required"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 70000}, "analysis": {"stepWeight": 5}}})",
       "spec.service.port: must be between 1 and 65535, got 70000"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 80}}})",
       "spec.analysis: required"},
      {R"({"metadata": {"name": "p"}})", "spec: required"},
      {R"({"spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 80}, "analysis": {"stepWeight": 5}}})",
       "metadata: required"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("provider": "envoy",)"),
       R"(spec.provider: must be one of apisix, appmesh, appmesh:v1beta2, contour, gatewayapi:v1, gatewayapi:v1beta1, gloo, istio, knative, kubernetes, kuma, linkerd, nginx, osm, skipper, smi:v1alpha1, smi:v1alpha2, smi:v1alpha3, traefik; got "envoy")"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("progressDeadlineSeconds": -1,)"),
       "spec.progressDeadlineSeconds: must not be negative, got -1"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("provider": "knative",)"),
       "spec.targetRef: provider knative needs a Knative Service target (apiVersion serving.knative.dev/v1, kind Service)"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "VPA", "name": "x"},)"),
       R"(spec.autoscalerRef.kind: must be one of HorizontalPodAutoscaler, ScaledObject; got "VPA")"},
      {minimal(R"("interval": "1m", "stepWeight": 10)",
               R"("autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "x", "primaryScalerReplicas": {"minReplicas": 0}},)"),
       "spec.autoscalerRef.primaryScalerReplicas.minReplicas: must be at least 1, got 0"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("ingressRef": {"apiVersion": "networking.k8s.io/v1", "kind": "Service", "name": "x"},)"),
       R"(spec.ingressRef.kind: must be Ingress, got "Service")"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("skipAnalysis": "yes",)"), "spec.skipAnalysis: must be a boolean, got a string"},
      {minimal(R"("interval": "1m", "stepWeight": 10)", R"("suspend": 1,)"), "spec.suspend: must be a boolean, got a number"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 80, "mirror": [{"backendRef": {"name": "m"}}]}, "analysis": {"stepWeight": 5}}})",
       "spec.service.mirror[0].backendRef.port: required when kind is Service"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 80, "trafficDistribution": "Anywhere"}, "analysis": {"stepWeight": 5}}})",
       R"(spec.service.trafficDistribution: must be one of PreferClose, PreferSameZone, PreferSameNode; got "Anywhere")"},
      {R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 80, "gatewayRefs": [{"namespace": "x"}]}, "analysis": {"stepWeight": 5}}})",
       "spec.service.gatewayRefs[0].name: required"},
      {minimal() .insert(minimal().size() - 1, R"(,"status": {"phase": "Exploding"})"), R"(status.phase: unknown phase "Exploding")"},
      {minimal().insert(minimal().size() - 1, R"(,"status": {"lastTransitionTime": "yesterday"})"),
       R"(status.lastTransitionTime: must be an RFC 3339 time, got "yesterday")"},
  };
  for (const auto& r : rows) {
    auto d = decode_canary(r.json);
    INFO("expected: " << r.error);
    INFO("got: " << join_errors(d.errors));
    CHECK_FALSE(d.ok());
    CHECK(has_error(d, r.error));
  }
}

// Issue 11: what fails at run time when it can be known at decode time is refused at decode time.
TEST_CASE("webhook URLs, retries, stepWeights, ports and port names are validated at decode time") {
  struct row {
    std::string json;
    std::string error;  // "" = valid
  };
  auto hook = [](const std::string& fields) {
    return minimal(R"("interval": "1m", "stepWeight": 10, "webhooks": [{"name": "w", )" + fields + "}]");
  };
  auto service = [](const std::string& fields) {
    return R"({"metadata": {"name": "p"}, "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}, "service": {"port": 80, )" +
           fields + R"(}, "analysis": {"stepWeight": 5}}})";
  };
  const std::vector<row> rows = {
      {hook(R"("url": "ftp://loadtester/")"), R"(spec.analysis.webhooks[0].url: scheme must be http or https, got "ftp")"},
      {hook(R"("url": "file:///etc/passwd")"), R"(spec.analysis.webhooks[0].url: scheme must be http or https, got "file")"},
      {hook(R"("url": "http://loadtester:99999/")"), R"(spec.analysis.webhooks[0].url: port must be between 1 and 65535, got "99999")"},
      {hook(R"("url": "http://loadtester:0/")"), R"(spec.analysis.webhooks[0].url: port must be between 1 and 65535, got "0")"},
      {hook(R"("url": "http://loadtester:http/")"), R"(spec.analysis.webhooks[0].url: port must be between 1 and 65535, got "http")"},
      {hook(R"("url": "http://loadtester:/")"), R"(spec.analysis.webhooks[0].url: port must be between 1 and 65535, got "-")"},
      {hook(R"("url": "http:///gate")"), R"(spec.analysis.webhooks[0].url: must name a host, got "http:///gate")"},
      {hook(R"("url": "http://[::1/")"), R"(spec.analysis.webhooks[0].url: has an unterminated IPv6 address, got "http://[::1/")"},
      {hook(R"("url": "http://load tester/")"), R"(spec.analysis.webhooks[0].url: has an invalid character in its host, got "http://load tester/")"},
      {hook(R"("url": "http://w/", "retries": 1000000000)"), "spec.analysis.webhooks[0].retries: must be at most 10, got 1000000000"},
      {hook(R"("url": "http://w/", "retries": 11)"), "spec.analysis.webhooks[0].retries: must be at most 10, got 11"},
      {hook(R"("url": "http://w/", "retries": 10)"), ""},
      {hook(R"("url": "HTTPS://user@w.example:8443/gate?x=1")"), ""},
      {hook(R"("url": "http://[::1]:8080/")"), ""},
      {hook(R"("url": "http://flagger-loadtester.test/")"), ""},
      {minimal(R"("interval": "1m", "stepWeights": [10, 50, 150])"), "spec.analysis.stepWeights[2]: must be at most 100, got 150"},
      {minimal(R"("interval": "1m", "stepWeights": [10, 50, 100])"), ""},
      {minimal(R"("interval": "1m", "stepWeights": [-1])"), "spec.analysis.stepWeights[0]: must be at least 1, got -1"},
      {minimal(R"("interval": "1m", "stepWeights": [20, 20])"), "spec.analysis.stepWeights[1]: must be greater than the previous step (20), got 20"},
      {service(R"("portName": "HTTP")"),
       R"(spec.service.portName: must be a DNS-1123 label (lowercase letters, digits and '-', at most 63), got "HTTP")"},
      {service(R"("portName": "-web")"),
       R"(spec.service.portName: must be a DNS-1123 label (lowercase letters, digits and '-', at most 63), got "-web")"},
      {service(R"("portName": "http-web")"), ""},
      {service(R"("targetPort": "my_port")"),
       R"(spec.service.targetPort: a port name must be an IANA service name (at most 15 lowercase letters, digits and single '-', with a letter), got "my_port")"},
      {service(R"("targetPort": "a-very-long-port-name")"),
       R"(spec.service.targetPort: a port name must be an IANA service name (at most 15 lowercase letters, digits and single '-', with a letter), got "a-very-long-port-name")"},
      {service(R"("targetPort": "1234")"),
       R"(spec.service.targetPort: a port name must be an IANA service name (at most 15 lowercase letters, digits and single '-', with a letter), got "1234")"},
      {service(R"("targetPort": "http--x")"),
       R"(spec.service.targetPort: a port name must be an IANA service name (at most 15 lowercase letters, digits and single '-', with a letter), got "http--x")"},
      {service(R"("targetPort": "http")"), ""},
      {service(R"("targetPort": 0)"), "spec.service.targetPort: must be between 1 and 65535, got 0"},
      {service(R"("targetPort": 8080)"), ""},
  };
  for (const auto& r : rows) {
    auto d = decode_canary(r.json);
    INFO("json: " << r.json);
    INFO("expected: " << (r.error.empty() ? "no error" : r.error));
    INFO("got: " << join_errors(d.errors));
    if (r.error.empty()) {
      CHECK(d.ok());
    } else {
      CHECK(has_error(d, r.error));
    }
  }
}

TEST_CASE("joined errors are one line of at most 1 KiB, however many there are") {
  // 10,000 fractional stepWeights once wrote a 630 KB message into the status and an Event.
  std::string weights;
  for (int i = 0; i < 10000; ++i) weights += (i ? ", " : "") + std::to_string(i) + ".5";
  auto d = decode_canary(minimal(R"("interval": "1m", "stepWeights": [)" + weights + "]"));
  CHECK(d.errors.size() >= 10000);
  const std::string joined = join_errors(d.errors);
  CHECK(joined.size() <= max_message_bytes);
  CHECK(joined.size() > max_message_bytes - 64);
  CHECK(joined.ends_with("..."));
  CHECK(joined.starts_with("spec.analysis.stepWeights[0]: must be an integer, got 0.5"));
  CHECK(joined.find('\n') == std::string::npos);
}

TEST_CASE("message helpers: one line, capped at a character boundary, body text without markup, URL hosts") {
  CHECK(one_line("  a\n\tb\r\n  c  ") == "a b c");
  CHECK(one_line("abcdef", 5) == "ab...");
  CHECK(one_line("abcde", 5) == "abcde");
  // "é" is two bytes: a cut never splits it.
  const std::string accented = "aé" + std::string(10, 'x');
  CHECK(one_line(accented, 5) == "a...");
  CHECK(one_line(std::string(5000, 'y')).size() == max_message_bytes);

  const std::string page =
      "<!DOCTYPE html>\n<html><head><title>414 Request-URI Too Large</title><style>body{color:red}</style>"
      "<script>var x = '<b>';</script></head>\n<body><center><h1>414 Request-URI Too Large</h1></center>"
      "<hr><center>nginx &amp; friends</center>\n" +
      std::string(4000, ' ') + "</body></html>";
  const std::string text = body_excerpt(page);
  CHECK(text == "414 Request-URI Too Large 414 Request-URI Too Large nginx & friends");
  CHECK(text.find('<') == std::string::npos);
  CHECK(body_excerpt(std::string(1000, 'z')).size() == max_body_excerpt_bytes);
  CHECK(body_excerpt("approval not granted\n") == "approval not granted");
  CHECK(body_excerpt("<p>unterminated <b") == "unterminated");

  CHECK(url_host("http://flagger-loadtester.test/gate/check") == "flagger-loadtester.test");
  CHECK(url_host("https://user:pw@hooks.example:8443/x?y#z") == "hooks.example:8443");
  CHECK(url_host("loadtester") == "");
}

TEST_CASE("cross-namespace references are rejected only with -no-cross-namespace-refs") {
  const std::string json = minimal(
      R"("interval": "1m", "stepWeight": 10,
         "metrics": [{"name": "e", "templateRef": {"name": "t", "namespace": "other"}}],
         "alerts": [{"name": "a", "providerRef": {"name": "p", "namespace": "other"}}])");
  CHECK(decode_canary(json).ok());
  auto d = decode_canary(json, {.no_cross_namespace_refs = true});
  CHECK(has_error(d,
                  R"(spec.analysis.metrics[0].templateRef.namespace: cross-namespace references are disabled (-no-cross-namespace-refs), got "other")"));
  CHECK(has_error(d,
                  R"(spec.analysis.alerts[0].providerRef.namespace: cross-namespace references are disabled (-no-cross-namespace-refs), got "other")"));
  auto same = decode_canary(
      minimal(R"("interval": "1m", "stepWeight": 10, "metrics": [{"name": "e", "templateRef": {"name": "t", "namespace": "test"}}])"),
      {.no_cross_namespace_refs = true});
  CHECK(same.ok());
}

TEST_CASE("a canary with several problems reports all of them") {
  auto d = decode_canary(
      R"({"metadata": {"name": "p"}, "spec": {"service": {"port": 80},
          "analysis": {"interval": "x", "maxWeight": 150, "stepWeight": 0}}})");
  const auto texts = error_texts(d.errors);
  CHECK(has_error(d, "spec.targetRef: required"));
  CHECK(has_error(d, "spec.analysis.maxWeight: must be at most 100, got 150"));
  CHECK(has_error(d, R"(spec.analysis.interval: invalid duration "x" (Go syntax: "1m", "30s", "1m30s", "500ms", "1h"))"));
  CHECK(has_error(d, "spec.analysis.stepWeight: must be greater than 0 when neither iterations nor stepWeights is set"));
  CHECK(join_errors(d.errors).find("; ") != std::string::npos);
}

TEST_CASE("malformed JSON yields an error, never a crash") {
  CHECK(decode_canary("").errors.at(0).message.starts_with("not valid JSON"));
  CHECK(decode_canary("{").errors.at(0).message.starts_with("not valid JSON"));
  CHECK(decode_canary("[1,2]").errors.at(0).message == "a Canary must be a JSON object, got an array");
  CHECK(decode_canary("null").errors.at(0).message == "a Canary must be a JSON object, got null");
  CHECK(has_error(decode_canary(R"({"metadata": 5, "spec": []})"), "metadata: must be an object, got a number"));
  CHECK(has_error(decode_canary(R"({"metadata": {"name": "x"}, "spec": []})"), "spec: must be an object, got an array"));
}

TEST_CASE("every truncation and byte flip of a valid Canary decodes without crashing") {
  const std::string full = kitchen_sink;
  std::size_t failures = 0;
  for (std::size_t n = 0; n < full.size(); ++n) {
    auto d = decode_canary(std::string_view(full).substr(0, n));
    if (!d.ok()) ++failures;
  }
  CHECK(failures == full.size());  // no prefix of an object is a complete object
  std::mt19937 rng(4);
  for (int i = 0; i < 3000; ++i) {
    std::string mutated = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng() % 256);
    auto d = decode_canary(mutated);
    (void)d;  // only "does not crash"; the ASan/UBSan CI build makes this meaningful
  }
  for (int i = 0; i < 500; ++i) {
    std::string garbage(rng() % 200, '\0');
    for (auto& ch : garbage) ch = "{}[]\",:0123456789.eE+-truefalsnl \\"[rng() % 33];
    auto d = decode_canary(garbage);
    if (d.ok()) CHECK(false);  // garbage is never a valid canary
  }
}

TEST_CASE("Flagger's example Canaries decode completely") {
  auto ref = canaryd::test::shared_reference();
  if (!ref) {
    MESSAGE("../shared/reference is missing: skipping the example manifests");
    return;
  }
  const auto dir = *ref / "flagger" / "examples";
  std::size_t decoded_count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    for (const auto& json : canaryd::test::yaml_file_to_json(entry.path().string())) {
      auto d = decode_canary(json);
      INFO(entry.path().filename().string() << ": " << join_errors(d.errors));
      CHECK(d.ok());
      ++decoded_count;
    }
  }
  CHECK(decoded_count >= 5);

  SUBCASE("istio-canary.yaml") {
    auto docs = canaryd::test::yaml_file_to_json((dir / "istio-canary.yaml").string());
    auto d = decode_canary(docs.at(0));
    REQUIRE(d.ok());
    const canary& c = d.value;
    CHECK(c.id() == "podinfo.test");
    CHECK(c.spec.provider == "istio");
    CHECK(c.progress_deadline_seconds() == 600);
    CHECK(c.spec.autoscaler_ref->kind == "HorizontalPodAutoscaler");
    CHECK(c.spec.autoscaler_ref->api_version == "autoscaling/v2");
    CHECK(c.spec.service.port == 80);
    CHECK(c.spec.service.target_port->int_value == 9898);
    CHECK_FALSE(c.spec.service.target_port->is_string);
    CHECK(c.port_name() == "http");
    CHECK(c.spec.service.port_discovery);
    CHECK(c.spec.service.gateways == std::vector<std::string>{"istio-system/public-gateway", "mesh"});
    CHECK(c.spec.service.hosts == std::vector<std::string>{"app.example.com"});
    CHECK(c.spec.service.traffic_policy_json == R"({"tls":{"mode":"DISABLE"}})");
    CHECK(c.spec.service.match.at(0).uri->prefix == "/");
    CHECK(c.spec.service.match_json == R"([{"uri":{"prefix":"/"}}])");
    CHECK(c.spec.service.rewrite->uri == "/");
    CHECK(c.spec.service.timeout == "30s");
    CHECK_FALSE(c.spec.skip_analysis);
    CHECK(c.analysis_interval() == 15s);
    CHECK(c.analysis_threshold() == 10);
    CHECK(c.spec.analysis->max_weight == 50);
    CHECK(c.spec.analysis->step_weight == 5);
    CHECK(c.spec.analysis->metrics.at(0).range->min == 99);
    CHECK(c.spec.analysis->metrics.at(1).range->max == 500);
    CHECK(c.spec.analysis->metrics.at(1).interval == "30s");
    CHECK(c.spec.analysis->webhooks.at(0).type == webhook_type::pre_rollout);
    CHECK(c.spec.analysis->webhooks.at(0).effective_timeout() == 15s);
    CHECK(c.spec.analysis->webhooks.at(0).metadata.at("type") == "bash");
    CHECK(c.spec.analysis->webhooks.at(1).type == webhook_type::rollout);
    CHECK(c.spec.analysis->webhooks.at(1).metadata.at("cmd") == "hey -z 1m -q 10 -c 2 http://podinfo-canary.test/");
    CHECK(c.strategy() == deployment_strategy::canary);
  }
  SUBCASE("istio-abtest.yaml") {
    auto d = decode_canary(canaryd::test::yaml_file_to_json((dir / "istio-abtest.yaml").string()).at(0));
    REQUIRE(d.ok());
    const canary& c = d.value;
    CHECK(c.spec.analysis->iterations == 10);
    REQUIRE(c.spec.analysis->match.size() == 2);
    CHECK(c.spec.analysis->match[0].headers.at("cookie").regex == "^(.*?;)?(type=insider)(;.*)?$");
    CHECK(c.spec.analysis->match[1].headers.at("user-agent").regex == ".*Firefox.*");
    CHECK(c.strategy() == deployment_strategy::ab_testing);
  }
  SUBCASE("kuma-canary.yaml") {
    auto d = decode_canary(canaryd::test::yaml_file_to_json((dir / "kuma-canary.yaml").string()).at(0));
    REQUIRE(d.ok());
    const canary& c = d.value;
    CHECK(c.metadata.annotations.at("kuma.io/mesh") == "default");
    CHECK(c.spec.provider.empty());
    CHECK(c.progress_deadline_seconds() == 60);
    CHECK(c.spec.service.apex->annotations.at("9898.service.kuma.io/protocol") == "http");
    CHECK(c.spec.service.canary->annotations.at("9898.service.kuma.io/protocol") == "http");
    CHECK(c.spec.service.primary->annotations.at("9898.service.kuma.io/protocol") == "http");
    CHECK(c.spec.analysis->metrics.at(0).threshold == 99);
    CHECK_FALSE(c.spec.analysis->metrics.at(0).range);
    CHECK(c.spec.analysis->webhooks.at(1).type == webhook_type::rollout);
    CHECK(c.spec.analysis->webhooks.at(1).effective_timeout() == 10s);
  }
  SUBCASE("linkerd-canary-steps.yaml") {
    auto d = decode_canary(canaryd::test::yaml_file_to_json((dir / "linkerd-canary-steps.yaml").string()).at(0));
    REQUIRE(d.ok());
    CHECK(d.value.spec.provider == "linkerd");
    CHECK(d.value.spec.analysis->step_weights == std::vector<int>{5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55});
  }
}

TEST_CASE("a MetricTemplate decodes its provider and query") {
  auto d = decode_metric_template(R"json({
    "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate",
    "metadata": {"name": "latency", "namespace": "flagger-system"},
    "spec": {"provider": {"type": "prometheus", "address": "http://prometheus:9090", "secretRef": {"name": "prom-auth"},
                          "insecureSkipVerify": true, "region": "eu-west-1", "headers": {"X-Scope-OrgID": ["tenant-1"]}},
             "query": "histogram_quantile(0.99, sum(rate(x{namespace=\"{{ namespace }}\"}[{{ interval }}])) by (le))"}})json");
  INFO(join_errors(d.errors));
  REQUIRE(d.ok());
  const metric_template& t = d.value;
  CHECK(t.metadata.name == "latency");
  CHECK(t.metadata.namespace_ == "flagger-system");
  CHECK(t.provider.type == "prometheus");
  CHECK(t.provider.address == "http://prometheus:9090");
  CHECK(t.provider.secret_ref == "prom-auth");
  CHECK(t.provider.insecure_skip_verify);
  CHECK(t.provider.region == "eu-west-1");
  CHECK(t.provider.headers.at("X-Scope-OrgID") == std::vector<std::string>{"tenant-1"});
  CHECK(t.query.starts_with("histogram_quantile"));
}

TEST_CASE("a MetricTemplate without a provider type or query is invalid") {
  auto d = decode_metric_template(R"({"metadata": {"name": "t"}, "spec": {"provider": {"type": "oracle"}}})");
  CHECK(error_texts(d.errors) ==
        std::vector<std::string>{
            R"(spec.provider.type: must be one of prometheus, influxdb, datadog, externalmetrics, stackdriver, cloudwatch, newrelic, graphite, dynatrace, keptn, splunk; got "oracle")",
            "spec.query: required"});
  auto e = decode_metric_template(R"({"metadata": {"name": "t"}, "spec": {"query": "up"}})");
  CHECK(error_texts(e.errors) == std::vector<std::string>{"spec.provider: required"});
  CHECK_FALSE(decode_metric_template("{nope").ok());
}

TEST_CASE("an AlertProvider decodes with Flagger's channel and username defaults") {
  auto d = decode_alert_provider(R"({"metadata": {"name": "slack", "namespace": "flagger"},
      "spec": {"type": "slack", "address": "https://hooks.slack.com/x", "proxy": "http://proxy:3128"}})");
  REQUIRE(d.ok());
  CHECK(d.value.type == "slack");
  CHECK(d.value.effective_channel() == "general");
  CHECK(d.value.effective_username() == "flagger");
  CHECK(d.value.proxy == "http://proxy:3128");
  auto s = decode_alert_provider(R"({"metadata": {"name": "teams"},
      "spec": {"type": "msteams", "channel": "ops", "username": "bot", "secretRef": {"name": "teams-url"}}})");
  REQUIRE(s.ok());
  CHECK(s.value.secret_ref == "teams-url");
  CHECK(s.value.effective_channel() == "ops");
  CHECK(s.value.effective_username() == "bot");
  auto bad = decode_alert_provider(R"({"metadata": {"name": "x"}, "spec": {"type": "pager"}})");
  CHECK(error_texts(bad.errors) ==
        std::vector<std::string>{R"(spec.type: must be one of slack, msteams, discord, rocket, gchat; got "pager")",
                                 "spec.address: required unless secretRef is set"});
}

TEST_CASE("alert severities filter as Flagger's docs describe, an empty one meaning info") {
  CHECK(alert_matches("info", alert_severity::info));
  CHECK(alert_matches("info", alert_severity::error));
  CHECK(alert_matches("", alert_severity::info));  // Flagger's [quirk] would drop it
  CHECK_FALSE(alert_matches("warn", alert_severity::info));
  CHECK(alert_matches("warn", alert_severity::warn));
  CHECK(alert_matches("warn", alert_severity::error));
  CHECK_FALSE(alert_matches("error", alert_severity::warn));
  CHECK(alert_matches("error", alert_severity::error));
}
