// Pure pieces of the Kubernetes client: backoff, the token bucket (on a manual clock), the
// async rate limiter, Status decoding, object decoding and resource paths.
#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>
#include <malloc.h>

#include <unordered_map>
#include <chrono>
#include <string>

#include "k8s/api_client.hpp"
#include "k8s/api_error.hpp"
#include "k8s/backoff.hpp"
#include "k8s/http_error.hpp"
#include "k8s/object.hpp"
#include "k8s/rate_limiter.hpp"

namespace asio = boost::asio;
namespace k8s = canaryd::k8s;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

TEST_CASE("backoff doubles from initial to max, with jitter only upwards") {
  k8s::backoff_policy p{100ms, 1000ms, 2.0, 0.0};
  k8s::backoff b(p);
  CHECK(b.next() == 100ms);
  CHECK(b.next() == 200ms);
  CHECK(b.next() == 400ms);
  CHECK(b.next() == 800ms);
  CHECK(b.next() == 1000ms);
  CHECK(b.next() == 1000ms);
  CHECK(b.attempts() == 6);
  b.reset();
  CHECK(b.next() == 100ms);

  double r = 0.5;
  k8s::backoff j({100ms, 1000ms, 2.0, 0.4}, [&] { return r; });
  CHECK(j.next() == 120ms);  // 100 * (1 + 0.4 * 0.5)
  r = 0.999;
  CHECK(j.next() == 279ms);  // 200 * 1.3996
  r = 1.0;
  j.next();
  j.next();
  CHECK(j.next() == 1000ms);  // never beyond max
}

TEST_CASE("token bucket: burst at once, then one token per 1/qps, on a manual clock") {
  using tb = k8s::token_bucket;
  tb::time_point t0{};
  tb bucket(10.0, 3, t0);
  CHECK(bucket.reserve(t0) == tb::duration::zero());
  CHECK(bucket.reserve(t0) == tb::duration::zero());
  CHECK(bucket.reserve(t0) == tb::duration::zero());
  CHECK(std::chrono::duration_cast<ms>(bucket.reserve(t0)) == 100ms);
  CHECK(std::chrono::duration_cast<ms>(bucket.reserve(t0)) == 200ms);
  // 1 s later the debt (2 tokens) is paid and the bucket refilled, but never beyond burst.
  auto t1 = t0 + 1s;
  CHECK(bucket.tokens(t1) == doctest::Approx(3.0));
  t1 += 10s;
  CHECK(bucket.tokens(t1) == doctest::Approx(3.0));
  CHECK(bucket.reserve(t1) == tb::duration::zero());

  SUBCASE("a cancelled reservation gives its token back") {
    tb b2(1.0, 1, t0);
    CHECK(b2.reserve(t0) == tb::duration::zero());
    CHECK(std::chrono::duration_cast<ms>(b2.reserve(t0)) == 1000ms);
    b2.cancel_reservation();
    CHECK(std::chrono::duration_cast<ms>(b2.reserve(t0)) == 1000ms);
  }
  SUBCASE("a 429 pause holds everyone until Retry-After, and never shortens") {
    tb b3(100.0, 10, t0);
    b3.pause_until(t0 + 2s);
    b3.pause_until(t0 + 1s);
    CHECK(std::chrono::duration_cast<ms>(b3.reserve(t0 + 500ms)) == 1500ms);
    CHECK(b3.reserve(t0 + 2s) == tb::duration::zero());
  }
  SUBCASE("qps 0 means unlimited") {
    tb none(0.0, 1, t0);
    for (int i = 0; i < 1000; ++i) REQUIRE(none.reserve(t0) == tb::duration::zero());
  }
}

namespace {
struct limiter_run {
  int granted = 0;
  std::vector<boost::system::error_code> errors;
};

asio::awaitable<void> take(k8s::rate_limiter* l, int n, k8s::token_bucket::time_point deadline, limiter_run* out) {
  for (int i = 0; i < n; ++i) {
    auto ec = co_await l->acquire(deadline);
    if (ec) {
      out->errors.push_back(ec);
    } else {
      ++out->granted;
    }
  }
}
}  // namespace

TEST_CASE("the async rate limiter paces coroutines and refuses waits past the deadline") {
  asio::io_context io;
  k8s::rate_limiter l(io.get_executor(), 500.0, 5);  // 2 ms per token after a burst of 5
  limiter_run r;
  const auto start = std::chrono::steady_clock::now();
  asio::co_spawn(io, take(&l, 15, start + 10s, &r), [](std::exception_ptr e) { REQUIRE(!e); });
  io.run();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(r.granted == 15);
  CHECK(took >= 18ms);  // 10 tokens beyond the burst at 2 ms each (minus rounding)
  CHECK(took < 2s);
  // Up to 10 waited (fewer if the machine was slow enough for tokens to refill meanwhile).
  CHECK(l.throttled() >= 1);
  CHECK(l.throttled() <= 10);

  // Deadline: one token per second, burst 1. The second acquire would wait ~1 s; with a
  // deadline 100 ms ahead it fails at once and gives its reservation back.
  k8s::rate_limiter slow(io.get_executor(), 1.0, 1);
  limiter_run late;
  io.restart();
  const auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(io, take(&slow, 2, t0 + 100ms, &late), [](std::exception_ptr e) { REQUIRE(!e); });
  io.run();
  CHECK(std::chrono::steady_clock::now() - t0 < 90ms);
  CHECK(late.granted == 1);
  REQUIRE(late.errors.size() == 1);
  CHECK(late.errors[0] == canaryd::http::errc::timeout);
  CHECK(slow.bucket().tokens(std::chrono::steady_clock::now()) > -0.5);
}

TEST_CASE("a Status body decodes to a typed error; the reason wins over the HTTP code") {
  auto nf = k8s::decode_status(404, R"({"kind":"Status","apiVersion":"v1","status":"Failure","message":"configmaps \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"configmaps"},"code":404})");
  CHECK(k8s::is_not_found(nf));
  CHECK(nf.http_status == 404);
  CHECK(nf.reason == "NotFound");
  CHECK(nf.message == "configmaps \"x\" not found");

  auto exists = k8s::decode_status(409, R"({"kind":"Status","reason":"AlreadyExists","message":"x exists","code":409})");
  CHECK(k8s::is_already_exists(exists));
  CHECK_FALSE(k8s::is_conflict(exists));
  auto conflict = k8s::decode_status(409, R"({"kind":"Status","reason":"Conflict","message":"the object has been modified","code":409})");
  CHECK(k8s::is_conflict(conflict));
  auto expired = k8s::decode_status(410, R"({"kind":"Status","reason":"Expired","message":"too old","code":410})");
  CHECK(k8s::is_gone(expired));
  auto invalid = k8s::decode_status(422, R"({"kind":"Status","reason":"Invalid","message":"spec.x: Required","code":422})");
  CHECK(k8s::is_invalid(invalid));
  auto throttled = k8s::decode_status(429, R"({"kind":"Status","reason":"TooManyRequests","message":"slow down","details":{"retryAfterSeconds":3},"code":429})");
  CHECK(k8s::is_too_many_requests(throttled));
  CHECK(throttled.retry_after_seconds == 3);
  CHECK(k8s::is_retryable(throttled));
  auto header_wins = k8s::decode_status(429, R"({"kind":"Status","details":{"retryAfterSeconds":3}})", " 7 ");
  CHECK(header_wins.retry_after_seconds == 7);
  auto timeout = k8s::decode_status(504, R"({"kind":"Status","reason":"Timeout","code":504})");
  CHECK(k8s::is_timeout(timeout));
  auto forbidden = k8s::decode_status(403, R"({"kind":"Status","reason":"Forbidden","message":"no","code":403})");
  CHECK(k8s::is_forbidden(forbidden));
  CHECK_FALSE(k8s::is_retryable(forbidden));

  SUBCASE("no Status: the HTTP code decides and the body is kept, shortened to one line") {
    auto plain = k8s::decode_status(401, "Unauthorized\nmore");
    CHECK(k8s::is_unauthorized(plain));
    CHECK(plain.message == "Unauthorized");
    auto html = k8s::decode_status(502, "<html>bad gateway</html>");
    CHECK(html.code == k8s::api_errc::unexpected_status);
    CHECK(k8s::is_retryable(html));
    auto unavailable = k8s::decode_status(503, "");
    CHECK(unavailable.code == k8s::api_errc::service_unavailable);
  }
  SUBCASE("what() is one line with the request, code, reason and message") {
    nf.request = "GET https://h/api/v1/namespaces/d/configmaps/x";
    CHECK(nf.what() == "GET https://h/api/v1/namespaces/d/configmaps/x: 404 NotFound: configmaps \"x\" not found");
    auto t = k8s::transport_error(make_error_code(canaryd::http::errc::connect_failed));
    t.request = "GET https://h/api";
    CHECK(t.what() == "GET https://h/api: connection failed");
    CHECK(t.is_transport());
    CHECK(k8s::is_retryable(t));
  }
  SUBCASE("a watch ERROR event's object") {
    auto gone = k8s::decode_status_object(R"J({"kind":"Status","status":"Failure","message":"too old resource version: 5 (10)","reason":"Expired","code":410})J");
    CHECK(k8s::is_gone(gone));
    CHECK(gone.http_status == 410);
    CHECK(k8s::decode_status_object("{}").code == k8s::api_errc::bad_response);
  }
}

TEST_CASE("api_result::value() on an error throws an api_exception carrying the Status") {
  k8s::api_result<int> r = k8s::decode_status(404, R"({"kind":"Status","reason":"NotFound","code":404})");
  try {
    (void)r.value();
    FAIL("no throw");
  } catch (const k8s::api_exception& e) {
    CHECK(k8s::is_not_found(e.error()));
  }
}

TEST_CASE("objects: identity decoded, managedFields dropped, text minified and padded") {
  auto o = k8s::object::parse(R"({
    "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": "test", "uid": "u-1", "resourceVersion": "42",
                 "generation": 3, "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                 "labels": {"app": "podinfo"}},
    "spec": {"analysis": {"threshold": 5, "stepWeight": 10.5}, "emoji": "\u00e9\n"}
  })");
  REQUIRE(o.has_value());
  CHECK(o->key() == "test/podinfo");
  CHECK(o->namespace_name() == "test");
  CHECK(o->name() == "podinfo");
  CHECK(o->uid() == "u-1");
  CHECK(o->resource_version() == "42");
  CHECK(o->generation() == 3);
  CHECK(o->kind() == "Canary");
  CHECK_FALSE(o->being_deleted());
  CHECK(o->json().find("managedFields") == std::string_view::npos);
  CHECK(o->json().find(' ') == std::string_view::npos);
  auto v = o->to_value();
  CHECK(v.at("metadata").at("labels").at("app").as_string() == "podinfo");
  CHECK(v.at("spec").at("analysis").at("threshold").to_number<int>() == 5);
  CHECK(v.at("spec").at("emoji").as_string() == "\xc3\xa9\n");

  k8s::object copy = *o;  // copies keep the padding promise
  CHECK(copy.json() == o->json());

  auto cluster = k8s::object::parse(R"({"kind":"Namespace","metadata":{"name":"prod","deletionTimestamp":"2024-01-01T00:00:00Z"}})");
  REQUIRE(cluster.has_value());
  CHECK(cluster->key() == "prod");
  CHECK(cluster->namespace_name().empty());
  CHECK(cluster->being_deleted());

  CHECK_FALSE(k8s::object::parse("[1,2]").has_value());
  CHECK_FALSE(k8s::object::parse("{broken").has_value());
}

TEST_CASE("resource paths: core, grouped, cluster-scoped, all namespaces, subresources") {
  k8s::resource cm{"", "v1", "configmaps", true};
  k8s::resource deploy{"apps", "v1", "deployments", true};
  k8s::resource ns{"", "v1", "namespaces", false};
  k8s::resource crd{"apiextensions.k8s.io", "v1", "customresourcedefinitions", false};
  CHECK(cm.path("default", "x") == "/api/v1/namespaces/default/configmaps/x");
  CHECK(cm.path("") == "/api/v1/configmaps");
  CHECK(deploy.path("prod", "web", "status") == "/apis/apps/v1/namespaces/prod/deployments/web/status");
  CHECK(deploy.api_version() == "apps/v1");
  CHECK(ns.path("ignored", "prod") == "/api/v1/namespaces/prod");
  CHECK(crd.path({}, "canaries.flagger.app") == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/canaries.flagger.app");
  CHECK(cm.path("default", "a b") == "/api/v1/namespaces/default/configmaps/a%20b");
  CHECK(k8s::content_type(k8s::patch_type::strategic) == "application/strategic-merge-patch+json");
  CHECK(k8s::content_type(k8s::patch_type::json) == "application/json-patch+json");
  CHECK(k8s::content_type(k8s::patch_type::merge) == "application/merge-patch+json");
}

TEST_CASE("10,000 Canary objects as the cache stores them take a small part of the 300 MiB budget") {
  // A realistic Canary as the API server returns it (spec from Flagger's istio example, a status
  // mid-analysis, and managedFields that the client drops).
  const std::string canary_template = R"({"apiVersion":"flagger.app/v1beta1","kind":"Canary","metadata":{
    "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"flagger.app/v1beta1\",\"kind\":\"Canary\",\"metadata\":{\"annotations\":{},\"name\":\"podinfo\",\"namespace\":\"test\"},\"spec\":{\"analysis\":{\"interval\":\"1m\",\"maxWeight\":50,\"stepWeight\":10,\"threshold\":5}}}"},
    "creationTimestamp":"2024-05-01T10:00:00Z","generation":1,"name":"NAME","namespace":"NS","resourceVersion":"RV",
    "uid":"6b1e2d6c-2f0e-4a57-9f6b-1b0c3c1f8e2a",
    "managedFields":[{"apiVersion":"flagger.app/v1beta1","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{}},"f:spec":{"f:analysis":{"f:interval":{},"f:maxWeight":{},"f:metrics":{},"f:stepWeight":{},"f:threshold":{},"f:webhooks":{}},"f:autoscalerRef":{},"f:progressDeadlineSeconds":{},"f:service":{"f:gateways":{},"f:hosts":{},"f:port":{},"f:retries":{},"f:targetPort":{},"f:trafficPolicy":{}},"f:targetRef":{}}},"manager":"kubectl-client-side-apply","operation":"Update","time":"2024-05-01T10:00:00Z"}]},
    "spec":{"targetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"podinfo"},"progressDeadlineSeconds":60,
    "autoscalerRef":{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","name":"podinfo"},
    "service":{"port":9898,"targetPort":9898,"gateways":["public-gateway.istio-system.svc.cluster.local"],"hosts":["app.example.com"],
    "trafficPolicy":{"tls":{"mode":"DISABLE"}},"retries":{"attempts":3,"perTryTimeout":"1s","retryOn":"gateway-error,connect-failure,refused-stream"}},
    "analysis":{"interval":"1m","threshold":5,"maxWeight":50,"stepWeight":10,"metrics":[
      {"name":"request-success-rate","thresholdRange":{"min":99},"interval":"1m"},
      {"name":"request-duration","thresholdRange":{"max":500},"interval":"30s"}],
    "webhooks":[{"name":"acceptance-test","type":"pre-rollout","url":"http://flagger-loadtester.test/","timeout":"30s","metadata":{"type":"bash","cmd":"curl -sd 'test' http://podinfo-canary:9898/token | grep token"}},
      {"name":"load-test","url":"http://flagger-loadtester.test/","timeout":"5s","metadata":{"cmd":"hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"}}]}},
    "status":{"phase":"Progressing","canaryWeight":20,"failedChecks":0,"iterations":0,"lastAppliedSpec":"5f8b9c7d6","lastTransitionTime":"2024-05-01T10:05:00Z",
    "conditions":[{"type":"Promoted","status":"Unknown","reason":"Progressing","message":"Advance podinfo.test canary weight 20","lastUpdateTime":"2024-05-01T10:05:00Z","lastTransitionTime":"2024-05-01T10:01:00Z"}],
    "trackedConfigs":{"configmap/podinfo-config-env":"6f7b8a9c","secret/podinfo-secret-env":"1a2b3c4d"}}})";
  auto make = [&](int i) {
    std::string s = canary_template;
    s.replace(s.find("\"NAME\""), 6, "\"podinfo-" + std::to_string(i) + "\"");
    s.replace(s.find("\"NS\""), 4, "\"team-" + std::to_string(i % 100) + "\"");
    s.replace(s.find("\"RV\""), 4, "\"" + std::to_string(100000 + i) + "\"");
    return s;
  };
  const auto one = k8s::object::parse(make(0));
  REQUIRE(one.has_value());
  CHECK(make(0).size() > 2500);
  CHECK(one->json().find("managedFields") == std::string_view::npos);

  const auto heap_before = mallinfo2().uordblks;
  std::unordered_map<std::string, k8s::object_ptr> store;
  for (int i = 0; i < 10'000; ++i) {
    auto o = k8s::object::parse(make(i));
    REQUIRE(o.has_value());
    auto p = std::make_shared<const k8s::object>(std::move(*o));
    store.emplace(p->key(), std::move(p));
  }
  const auto heap_after = mallinfo2().uordblks;
  const double mib = static_cast<double>(heap_after - heap_before) / (1024.0 * 1024.0);
  MESSAGE("10,000 canaries (" << make(0).size() << " bytes of JSON each, " << one->json().size()
                              << " stored) use " << mib << " MiB of heap");
  CHECK(store.size() == 10'000);
  CHECK(mib < 60.0);
}
