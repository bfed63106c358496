// Knative Service targets (core/knative.hpp), as pure tables: Flagger's Knative Canary decodes
// without spec.service, initialization and promotion write the primary-revision annotation (and
// spec.traffic), the router reads status.traffic and writes spec.traffic, finalize removes the
// annotation, readiness follows the Revisions' Ready condition, and the built-in metrics query
// the latest created revision.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <string>

#include "core/canary.hpp"
#include "core/knative.hpp"
#include "core/metric_query.hpp"
#include "core/provider.hpp"
#include "core/router.hpp"

using namespace canaryd::core;
namespace json = boost::json;

namespace {

// Flagger's Knative Canary (docs/gitbook/tutorials/knative-progressive-delivery.md), in JSON.
const char* const flagger_canary = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary",
  "metadata":{"name":"podinfo","namespace":"test","uid":"u-1"},
  "spec":{"provider":"knative",
    "targetRef":{"apiVersion":"serving.knative.dev/v1","kind":"Service","name":"podinfo"},
    "progressDeadlineSeconds":60,
    "analysis":{"interval":"15s","threshold":15,"maxWeight":50,"stepWeight":10,
      "metrics":[{"name":"request-success-rate","thresholdRange":{"min":99},"interval":"1m"},
                 {"name":"request-duration","thresholdRange":{"max":500},"interval":"30s"}]}}})";

canary make_canary() {
  auto d = decode_canary(flagger_canary);
  REQUIRE_MESSAGE(d.ok(), join_errors(d.errors));
  return d.value;
}

// A Knative Service as Knative reports it: `annotation` (empty: none), the latest created
// revision, spec.traffic and status.traffic.
std::string ksvc(const std::string& annotation, const std::string& latest, const std::string& spec_traffic,
                 const std::string& status_traffic) {
  std::string meta = R"("metadata":{"name":"podinfo","namespace":"test","resourceVersion":"7")";
  if (!annotation.empty()) meta += R"(,"annotations":{"flagger.app/primary-revision":")" + annotation + R"("})";
  meta += "}";
  std::string spec = R"("spec":{"template":{"spec":{"containers":[{"image":"podinfo"}]}})";
  if (!spec_traffic.empty()) spec += R"(,"traffic":)" + spec_traffic;
  spec += "}";
  return R"({"apiVersion":"serving.knative.dev/v1","kind":"Service",)" + meta + "," + spec +
         R"(,"status":{"latestCreatedRevisionName":")" + latest + R"(","traffic":)" + status_traffic + "}}";
}

json::value traffic(int canary_weight, const std::string& primary, int primary_weight) {
  return json::parse(R"([{"latestRevision":true,"percent":)" + std::to_string(canary_weight) +
                     R"(},{"revisionName":")" + primary + R"(","percent":)" + std::to_string(primary_weight) + "}]");
}

json::value at(const std::string& body, const char* pointer) {
  boost::system::error_code ec;
  auto v = json::parse(body);
  const auto* p = v.find_pointer(pointer, ec);
  return p ? *p : json::value();
}

}  // namespace

TEST_CASE("Flagger's Knative Canary decodes without spec.service; other targets still need it") {
  auto c = make_canary();
  CHECK(c.is_knative_target());
  CHECK_FALSE(provider_error(c, "istio"));
  auto deployment = decode_canary(R"({"metadata":{"name":"a","namespace":"test"},"spec":{"provider":"kubernetes",
    "targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"a"},"analysis":{"interval":"1m"}}})");
  CHECK(join_errors(deployment.errors).find("spec.service: required") != std::string::npos);
}

TEST_CASE("initialization annotates the latest created revision and pins all traffic to it") {
  auto c = make_canary();
  const auto fresh = ksvc("", "podinfo-00001", "", R"([{"revisionName":"podinfo-00001","latestRevision":true,"percent":100}])");
  auto body = knative_initialize_body(c, fresh);
  REQUIRE(body.has_value());
  REQUIRE(body->has_value());
  CHECK(at(**body, "/metadata/annotations/flagger.app~1primary-revision") == "podinfo-00001");
  CHECK(at(**body, "/spec/traffic") == traffic(0, "podinfo-00001", 100));
  CHECK(at(**body, "/metadata/resourceVersion") == "7");  // an update of what was read
  // Already initialized: nothing to write.
  auto again = knative_initialize_body(c, **body);
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());
  // No revision yet: an error naming the Service.
  auto none = knative_initialize_body(c, ksvc("", "", "", "[]"));
  REQUIRE_FALSE(none.has_value());
  CHECK(none.error() == "Knative Service podinfo.test has no latest created revision yet");
}

TEST_CASE("promotion moves the annotation to the latest created revision") {
  auto c = make_canary();
  const auto mid = ksvc("podinfo-00001", "podinfo-00002", json::serialize(traffic(50, "podinfo-00001", 50)),
                        R"([{"revisionName":"podinfo-00002","latestRevision":true,"percent":50},{"revisionName":"podinfo-00001","latestRevision":false,"percent":50}])");
  auto body = knative_promote_body(c, mid);
  REQUIRE(body.has_value());
  REQUIRE(body->has_value());
  CHECK(at(**body, "/metadata/annotations/flagger.app~1primary-revision") == "podinfo-00002");
  CHECK(at(**body, "/spec/traffic") == traffic(50, "podinfo-00001", 50));  // the router rewrites it next
  auto again = knative_promote_body(c, **body);
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());
}

TEST_CASE("the router reads status.traffic, writes spec.traffic and finalize removes only the annotation") {
  auto c = make_canary();
  auto rules = make_route_provider(*parse_provider("knative"));
  REQUIRE(rules != nullptr);
  auto objs = rules->objects(c);
  REQUIRE(objs.size() == 1);
  CHECK((objs[0].kind == knative_service_kind));
  CHECK(objs[0].name == "podinfo");
  CHECK(objs[0].holds_routes);
  // The user's Knative Service is never created.
  auto create = rules->create_body(c, objs[0]);
  REQUIRE_FALSE(create.has_value());
  CHECK(create.error().find("services.serving.knative.dev \"podinfo\" not found") != std::string::npos);

  // Right after initialization the latest revision is the primary revision: the primary's entry
  // is the one without latestRevision (Flagger would read 0/0 here).
  const auto init = ksvc("podinfo-00001", "podinfo-00001", json::serialize(traffic(0, "podinfo-00001", 100)),
                         R"([{"revisionName":"podinfo-00001","latestRevision":true,"percent":0},{"revisionName":"podinfo-00001","latestRevision":false,"percent":100}])");
  auto r = rules->read_routes(c, init);
  REQUIRE(r.has_value());
  CHECK((*r == traffic_routes{100, 0, false}));
  // Reconcile: the annotation is there, nothing to write.
  auto rec = rules->reconcile_body(c, objs[0], init);
  REQUIRE(rec.has_value());
  CHECK_FALSE(rec->has_value());

  // SetRoutes 80/20 on a new revision.
  const auto progressing = ksvc("podinfo-00001", "podinfo-00002", json::serialize(traffic(0, "podinfo-00001", 100)),
                                R"([{"revisionName":"podinfo-00001","latestRevision":true,"percent":0},{"revisionName":"podinfo-00001","latestRevision":false,"percent":100}])");
  auto set = rules->routes_body(c, progressing, traffic_routes{80, 20, false}, {});
  REQUIRE(set.has_value());
  REQUIRE(set->has_value());
  CHECK(at(**set, "/spec/traffic") == traffic(20, "podinfo-00001", 80));
  auto same = rules->routes_body(c, **set, traffic_routes{80, 20, false}, {});
  REQUIRE(same.has_value());
  CHECK_FALSE(same->has_value());

  // Right after promotion only the latest revision's entry names the new primary: Flagger's pick.
  const auto promoted = ksvc("podinfo-00002", "podinfo-00002", json::serialize(traffic(50, "podinfo-00001", 50)),
                             R"([{"revisionName":"podinfo-00002","latestRevision":true,"percent":50},{"revisionName":"podinfo-00001","latestRevision":false,"percent":50}])");
  auto rp = rules->read_routes(c, promoted);
  REQUIRE(rp.has_value());
  CHECK((*rp == traffic_routes{50, 50, false}));

  // Errors as Flagger words them.
  auto no_annotation = rules->read_routes(c, ksvc("", "podinfo-00001", "", "[]"));
  REQUIRE_FALSE(no_annotation.has_value());
  CHECK(no_annotation.error() == "Knative Service podinfo.test annotation not found");
  auto invalid = rules->read_routes(c, ksvc("podinfo-00001", "podinfo-00001", "", R"([{"revisionName":"x","latestRevision":false,"percent":100}])"));
  REQUIRE_FALSE(invalid.has_value());
  CHECK(invalid.error() == "Knative Service podinfo.test traffic spec invalid");

  // Finalize: the annotation goes, spec.traffic stays.
  auto fin = rules->finalize_body(c, objs[0], init);
  REQUIRE(fin.has_value());
  REQUIRE(fin->body.has_value());
  CHECK(at(*fin->body, "/metadata/annotations/flagger.app~1primary-revision").is_null());
  CHECK(at(*fin->body, "/spec/traffic") == traffic(0, "podinfo-00001", 100));
  auto twice = rules->finalize_body(c, objs[0], *fin->body);
  REQUIRE(twice.has_value());
  CHECK_FALSE(twice->body.has_value());
}

TEST_CASE("spec.traffic as Knative's webhook defaults it is not rewritten") {
  // On a cluster, Knative's webhook stores each entry with latestRevision spelled out
  // (TrafficTarget.SetDefaults: revisionName == ""). What canaryd wrote, read back so, is no change.
  auto c = make_canary();
  auto rules = make_route_provider(*parse_provider("knative"));
  REQUIRE(rules != nullptr);
  const std::string defaulted_traffic =
      R"([{"latestRevision":true,"percent":20},{"revisionName":"podinfo-00001","latestRevision":false,"percent":80}])";
  const auto status =
      R"([{"revisionName":"podinfo-00002","latestRevision":true,"percent":20},{"revisionName":"podinfo-00001","latestRevision":false,"percent":80}])";
  const auto stored = ksvc("podinfo-00001", "podinfo-00002", defaulted_traffic, status);
  auto same = rules->routes_body(c, stored, traffic_routes{80, 20, false}, {});
  REQUIRE(same.has_value());
  CHECK_FALSE(same->has_value());
  // A different weight is still written, in Flagger's form.
  auto next = rules->routes_body(c, stored, traffic_routes{70, 30, false}, {});
  REQUIRE(next.has_value());
  REQUIRE(next->has_value());
  CHECK(at(**next, "/spec/traffic") == traffic(30, "podinfo-00001", 70));
  // latestRevision false on the first entry is a different route, not a default.
  const auto pinned = ksvc("podinfo-00001", "podinfo-00002",
                           R"([{"latestRevision":false,"percent":20},{"revisionName":"podinfo-00001","percent":80}])", status);
  auto fixed = rules->routes_body(c, pinned, traffic_routes{80, 20, false}, {});
  REQUIRE(fixed.has_value());
  CHECK(fixed->has_value());
  // Initialization on a defaulted, already initialized Service writes nothing.
  const auto init = ksvc("podinfo-00001", "podinfo-00001",
                         R"([{"latestRevision":true,"percent":0},{"revisionName":"podinfo-00001","latestRevision":false,"percent":100}])",
                         R"([{"revisionName":"podinfo-00001","latestRevision":true,"percent":0},{"revisionName":"podinfo-00001","latestRevision":false,"percent":100}])");
  auto again = knative_initialize_body(c, init);
  REQUIRE(again.has_value());
  CHECK_FALSE(again->has_value());
}

TEST_CASE("readiness follows the Revision's Ready condition; a failed or overdue revision is not retriable") {
  auto c = make_canary();
  const wall_time now = wall_clock::now();
  auto rev = [](const std::string& status, const std::string& reason = "") {
    return read_knative_revision(R"({"status":{"conditions":[{"type":"Ready","status":")" + status +
                                 R"(","reason":")" + reason + R"("}]}})");
  };
  auto ready = rev("True");
  CHECK(knative_revision_readiness(c, "podinfo-00002", &ready, now).is_ready());
  auto deploying = rev("Unknown", "Deploying");
  auto w = knative_revision_readiness(c, "podinfo-00002", &deploying, now);
  CHECK(w.value == readiness::state::waiting);
  CHECK(w.message == "Knative Revision podinfo-00002.test is not ready: Deploying");
  auto gone = rev("False", "ProgressDeadlineExceeded");
  auto f = knative_revision_readiness(c, "podinfo-00002", &gone, now);
  CHECK(f.value == readiness::state::failed);
  CHECK(f.message == "Knative Revision podinfo-00002.test is not ready: ProgressDeadlineExceeded");
  auto missing = knative_revision_readiness(c, "podinfo-00009", nullptr, now);
  CHECK(missing.value == readiness::state::waiting);
  CHECK(missing.message.find("Knative Revision podinfo-00009.test get query error") == 0);
  // Not ready 61 s after the last transition, with progressDeadlineSeconds 60: failed.
  c.status.last_transition_time = now - std::chrono::seconds(61);
  auto late = knative_revision_readiness(c, "podinfo-00002", &deploying, now);
  CHECK(late.value == readiness::state::failed);
  CHECK(late.message.find("exceeded its progressDeadlineSeconds: 60") != std::string::npos);
}

TEST_CASE("the built-in metrics query Envoy's cluster of the latest created revision") {
  auto c = make_canary();
  c.status.last_applied_spec = "podinfo-00002";
  const auto& m = c.spec.analysis->metrics.at(0);
  auto vars = make_query_vars(c, m);
  CHECK(vars.route == "podinfo-00002");
}
