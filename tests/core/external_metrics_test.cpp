// core/external_metrics against Flagger's externalmetrics provider (its query grammar, from
// externalmetrics_test.go's cases) and Kubernetes' Quantity grammar and ExternalMetricValueList.
#include <doctest/doctest.h>

#include "core/external_metrics.hpp"

#include <ostream>

namespace canaryd::core {
// For doctest's messages (boost's result prints its value).
std::ostream& operator<<(std::ostream& os, const external_metrics_query& q) {
  return os << q.namespace_ << "/" << q.metric << "?labelSelector=" << q.label_selector;
}
}  // namespace canaryd::core

using namespace canaryd::core;
using outcome = metric_observation::outcome;

TEST_CASE("a query names namespace, metric and label selector; the namespace defaults to default") {
  auto q = parse_external_metrics_query("default/myMetric?labelSelector=label1%3Dvalue1");
  REQUIRE(q);
  CHECK(q->namespace_ == "default");
  CHECK(q->metric == "myMetric");
  CHECK(q->label_selector == "label1=value1");
  CHECK(external_metrics_target(*q) ==
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/myMetric?labelSelector=label1%3Dvalue1");

  auto bare = parse_external_metrics_query("demo/errors");
  REQUIRE(bare);
  CHECK(*bare == external_metrics_query{"demo", "errors", ""});
  CHECK(external_metrics_target(*bare) == "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/errors");

  CHECK(*parse_external_metrics_query("/metric_only") == external_metrics_query{"default", "metric_only", ""});
  CHECK(*parse_external_metrics_query("myMetric") == external_metrics_query{"default", "myMetric", ""});
  // '+' is a space in a query; several selectors; other parameters ignored; the first value wins.
  auto sel = parse_external_metrics_query("ns/m?x=1&labelSelector=app+in+(a,b),tier!%3Dweb&labelSelector=z");
  REQUIRE(sel);
  CHECK(sel->label_selector == "app in (a,b),tier!=web");
  CHECK(external_metrics_target(*sel) ==
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/m?labelSelector=app+in+%28a%2Cb%29%2Ctier%21%3Dweb");
  // A YAML block scalar's trailing line break is trimmed (Go's url.Parse would refuse it).
  CHECK(*parse_external_metrics_query("  demo/errors\n") == external_metrics_query{"demo", "errors", ""});
  // Percent-escapes in the path are decoded, and encoded again in the target.
  auto esc = parse_external_metrics_query("demo/a%20b");
  REQUIRE(esc);
  CHECK(esc->metric == "a b");
  CHECK(external_metrics_target(*esc) == "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/a%20b");
}

TEST_CASE("a query without a metric name, with too many slashes or a bad escape fails with Flagger's text") {
  for (const char* q : {"namespaceonly/", "/", ""}) {
    auto r = parse_external_metrics_query(q);
    INFO(q);
    REQUIRE(!r);
    CHECK(r.error() == "error parsing metric query: metric name cannot be empty");
  }
  auto slashes = parse_external_metrics_query("a/b/c");
  REQUIRE(!slashes);
  CHECK(slashes.error() ==
        "error parsing metric query: malformed query string, too many slashes, expected "
        "<namespace>/<metricName>?labelSelector=<urlencoded label selectors>, got a/b/c");
  auto bad = parse_external_metrics_query("demo/a%zz");
  REQUIRE(!bad);
  CHECK(bad.error() ==
        "error parsing metric query: malformed query string, expected "
        "<namespace>/<metricName>?labelSelector=<urlencoded label selectors>, got demo/a%zz");
  CHECK(!parse_external_metrics_query("demo/a\nb"));
}

TEST_CASE("quantities read as Kubernetes writes them: decimal SI, binary SI and exponents") {
  struct row {
    const char* text;
    double want;
  };
  for (const row& r : {row{"0", 0}, row{"1", 1}, row{"1.1111", 1.1111}, row{"1500m", 1.5}, row{"-250m", -0.25},
                       row{"+3", 3}, row{"2k", 2000}, row{"1.5M", 1.5e6}, row{"7G", 7e9}, row{"1T", 1e12},
                       row{"1P", 1e15}, row{"2E", 2e18}, row{"5n", 5e-9}, row{"5u", 5e-6}, row{"1Ki", 1024},
                       row{"1.5Mi", 1.5 * 1048576}, row{"1Gi", 1073741824.0}, row{"1e3", 1000}, row{"2.5E-2", 0.025},
                       row{"1e+2", 100}, row{".5", 0.5}, row{"5.", 5}, row{"11111e-4", 1.1111}}) {
    INFO(r.text);
    auto q = parse_quantity(r.text);
    REQUIRE(q);
    CHECK(*q == doctest::Approx(r.want).epsilon(1e-12));
  }
  for (const char* bad : {"", "m", "abc", "1.2.3", "1 k", "1K", "1kk", "1e", "1e+", "1ex", "--1", ".", "NaN", "Inf", "0x10"}) {
    INFO(bad);
    CHECK(!parse_quantity(bad));
  }
}

TEST_CASE("the first item's value is the metric; no items is no values; anything else fails the query") {
  auto v = read_external_metrics_answer(
      R"({"kind":"ExternalMetricValueList","apiVersion":"external.metrics.k8s.io/v1beta1","metadata":{},"items":[
        {"metricName":"errors","metricLabels":{"app":"podinfo"},"timestamp":"2026-12-06T12:00:00Z","value":"1500m"},
        {"metricName":"errors","metricLabels":{"app":"other"},"timestamp":"2026-12-06T12:00:00Z","value":"9"}]})");
  CHECK(v.result == outcome::value);
  CHECK(v.value == doctest::Approx(1.5));
  // Quantity also unmarshals from a bare JSON number.
  auto n = read_external_metrics_answer(R"({"items":[{"metricName":"m","value":42}]})");
  CHECK(n.result == outcome::value);
  CHECK(n.value == 42);

  for (const char* empty : {R"({"kind":"ExternalMetricValueList","items":[]})", R"({"items":null})", R"({"metadata":{}})"}) {
    auto e = read_external_metrics_answer(empty);
    INFO(empty);
    CHECK(e.result == outcome::no_values);
    CHECK(e.error == "no external metrics found: no values found");
  }
  auto junk = read_external_metrics_answer("<html>");
  CHECK(junk.result == outcome::query_failed);
  CHECK(junk.error.rfind("error querying external metrics API: ", 0) == 0);
  auto bad_value = read_external_metrics_answer(R"({"items":[{"metricName":"m","value":"lots"}]})");
  CHECK(bad_value.result == outcome::query_failed);
  CHECK(bad_value.error.find("lots") != std::string::npos);
  auto no_value = read_external_metrics_answer(R"({"items":[{"metricName":"m"}]})");
  CHECK(no_value.result == outcome::query_failed);
  CHECK(read_external_metrics_answer(R"({"items":{}})").result == outcome::query_failed);
}
