// core/metric_answers: each provider's documented answer read as Flagger reads it (which point,
// what counts as no values, which error text), with the bodies the APIs document.
#include <doctest/doctest.h>

#include "core/metric_answers.hpp"

#include <limits>

using namespace canaryd::core;
using outcome = metric_observation::outcome;

namespace {
void check_value(const metric_observation& o, double want) {
  INFO(o.error);
  REQUIRE(o.result == outcome::value);
  CHECK(o.value == doctest::Approx(want));
}
void check_no_values(const metric_observation& o) {
  CHECK(o.result == outcome::no_values);
  CHECK(o.error.find("no values found") != std::string::npos);
}
}  // namespace

TEST_CASE("datadog: the first (oldest) point of the first series; null, empty and errors never pass") {
  check_value(read_datadog_answer(200, R"({"status":"ok","series":[
      {"metric":"http.errors","pointlist":[[1700000000000,0.5],[1700000060000,9.0]]},
      {"metric":"other","pointlist":[[1700000000000,7]]}]})"),
              0.5);
  check_no_values(read_datadog_answer(200, R"({"status":"ok","series":[]})"));
  check_no_values(read_datadog_answer(200, R"({"status":"ok","series":[{"pointlist":[]}]})"));
  check_no_values(read_datadog_answer(200, R"({"series":[{"pointlist":[[1700000000000,null]]}]})"));
  check_no_values(read_datadog_answer(200, R"({"status":"ok"})"));
  auto forbidden = read_datadog_answer(403, R"({"errors": ["Forbidden"]})");
  CHECK(forbidden.result == outcome::query_failed);
  CHECK(forbidden.error == R"(error response: {"errors": ["Forbidden"]})");
  auto junk = read_datadog_answer(200, "<html>");
  CHECK(junk.result == outcome::query_failed);
  CHECK(junk.error == "error unmarshaling result: '<html>'");
}

TEST_CASE("newrelic: results[0].result of exactly one result") {
  check_value(read_newrelic_answer(200, R"({"results":[{"result":1.25}],"metadata":{}})"), 1.25);
  check_no_values(read_newrelic_answer(200, R"({"results":[]})"));
  check_no_values(read_newrelic_answer(200, R"({"results":[{"result":1},{"result":2}]})"));
  check_no_values(read_newrelic_answer(200, R"({"results":[{"result":null}]})"));
  check_no_values(read_newrelic_answer(200, R"({"results":[{"count":3}]})"));
  auto refused = read_newrelic_answer(401, R"({"error": "Invalid query key"})");
  CHECK(refused.result == outcome::query_failed);
  CHECK(refused.error == R"(error response: {"error": "Invalid query key"})");
}

TEST_CASE("dynatrace: the first value of the last data entry of the first result") {
  check_value(read_dynatrace_answer(200, R"({"totalCount":2,"resolution":"Inf","result":[{"metricId":"m","data":[
      {"dimensions":["a"],"timestamps":[1],"values":[7.0]},
      {"dimensions":["b"],"timestamps":[1],"values":[0.75]}]}]})"),
              0.75);
  check_no_values(read_dynatrace_answer(200, R"({"result":[]})"));
  check_no_values(read_dynatrace_answer(200, R"({"result":[{"metricId":"m","data":[]}]})"));
  check_no_values(read_dynatrace_answer(200, R"({"result":[{"data":[{"values":[null]}]}]})"));
  check_no_values(read_dynatrace_answer(200, R"({"result":[{"data":[{"values":[]}]}]})"));
  auto refused = read_dynatrace_answer(401, R"({"error":{"code":401,"message":"Token Authentication failed"}})");
  CHECK(refused.result == outcome::query_failed);
  CHECK(refused.error.find("Token Authentication failed") != std::string::npos);
}

TEST_CASE("graphite: the last non-null datapoint of the last series that has one; numeric strings count") {
  check_value(read_graphite_answer(200, R"([
      {"target":"a","datapoints":[[1.0,1700000000],[2.0,1700000060],[null,1700000120]]},
      {"target":"b","datapoints":[[3.5,1700000000],[null,1700000060]]}])"),
              3.5);
  check_value(read_graphite_answer(200, R"([{"target":"a","datapoints":[["4.5",1700000000]]}])"), 4.5);
  check_no_values(read_graphite_answer(200, "[]"));
  CHECK(read_graphite_answer(200, R"([{"target":"a","datapoints":[[null,1700000000]]}])").result == outcome::no_values);
  CHECK(read_graphite_answer(200, R"([{"target":"a","datapoints":[["many",1700000000]]}])").result ==
        outcome::query_failed);
  CHECK(read_graphite_answer(200, R"([{"target":"a","datapoints":[[1]]}])").result == outcome::query_failed);
  CHECK(read_graphite_answer(500, "boom").error == "error response: boom");
  CHECK(read_graphite_answer(200, R"({"not":"a list"})").result == outcome::query_failed);
}

TEST_CASE("influxdb: the _value of the first record of the annotated CSV; errors, nulls and strings never pass") {
  const char* good =
      "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,double,string\r\n"
      "#group,false,false,true,true,false,true\r\n"
      "#default,_result,,,,,\r\n"
      ",result,table,_start,_stop,_value,deployment\r\n"
      ",,0,2026-12-06T12:00:00Z,2026-12-06T12:05:00Z,0.5,podinfo\r\n"
      ",,1,2026-12-06T12:00:00Z,2026-12-06T12:05:00Z,9,other\r\n"
      "\r\n";
  check_value(read_influxdb_answer(200, good), 0.5);
  // A long _value is a value too; a quoted field may hold commas.
  check_value(read_influxdb_answer(200,
                                   "#datatype,string,long,long,string\n#group,false,false,false,true\n#default,_result,,,\n"
                                   ",result,table,_value,tag\n,,0,42,\"a,b\"\n"),
              42);
  check_no_values(read_influxdb_answer(200, ""));
  check_no_values(read_influxdb_answer(200,
                                       "#datatype,string,long,double\n#group,false,false,false\n#default,_result,,\n"
                                       ",result,table,_value\n,,0,\n"));
  auto text = read_influxdb_answer(200,
                                   "#datatype,string,long,string\n#group,false,false,false\n#default,_result,,\n"
                                   ",result,table,_value\n,,0,hello\n");
  CHECK(text.result == outcome::query_failed);
  CHECK(text.error == "invalid response: _value hello is a string");
  auto error_table = read_influxdb_answer(200, "#datatype,string,string\n#group,true,true\n#default,,\n"
                                               ",error,reference\n,failed to execute query: bucket not found,897\n");
  CHECK(error_table.result == outcome::query_failed);
  CHECK(error_table.error == "query error: failed to execute query: bucket not found");
  auto refused = read_influxdb_answer(401, R"({"code":"unauthorized","message":"unauthorized access"})");
  CHECK(refused.result == outcome::query_failed);
  CHECK(refused.error == "error accessing influxdb query api: unauthorized access");
}

TEST_CASE("cloudwatch: Values[0] of the first result, CloudWatch answering newest first") {
  check_value(read_cloudwatch_answer(R"({"MetricDataResults":[
      {"Id":"e1","Label":"errors","Timestamps":[1700000060,1700000000],"Values":[0.5,9.0],"StatusCode":"Complete"},
      {"Id":"m1","Values":[3.0]}],"Messages":[]})"),
              0.5);
  check_no_values(read_cloudwatch_answer(R"({"MetricDataResults":[{"Id":"e1","Timestamps":[],"Values":[]}]})"));
  check_no_values(read_cloudwatch_answer(R"({"MetricDataResults":[]})"));
  check_no_values(read_cloudwatch_answer(R"({"Messages":[]})"));
  auto junk = read_cloudwatch_answer("<xml/>");
  CHECK(junk.result == outcome::query_failed);
  CHECK(junk.error == "error requesting cloudwatch: bad answer '<xml/>'");
}

TEST_CASE("stackdriver: the first value of the first point of the first series; int64Value as its number") {
  check_value(read_stackdriver_answer(R"({"timeSeriesDescriptor":{},"timeSeriesData":[
      {"labelValues":[],"pointData":[{"values":[{"doubleValue":0.25}],"timeInterval":{}},
                                     {"values":[{"doubleValue":8}]}]}]})"),
              0.25);
  check_value(read_stackdriver_answer(R"({"timeSeriesData":[{"pointData":[{"values":[{"int64Value":"42"}]}]}]})"), 42);
  check_no_values(read_stackdriver_answer(R"({"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":"NaN"}]}]}]})"));
  check_no_values(read_stackdriver_answer(R"({"timeSeriesDescriptor":{}})"));
  check_no_values(read_stackdriver_answer(R"({"timeSeriesData":[{"pointData":[]}]})"));
  check_no_values(read_stackdriver_answer(R"({"timeSeriesData":[{"pointData":[{"values":[{"stringValue":"x"}]}]}]})"));
  CHECK(read_stackdriver_answer("nope").result == outcome::query_failed);
}

TEST_CASE("a NaN or infinite value is no values, whichever provider reads it") {
  auto nan = observed_value(std::numeric_limits<double>::quiet_NaN());
  CHECK(nan.result == outcome::no_values);
  CHECK(nan.error == "value is nan: no values found");
  CHECK(observed_value(std::numeric_limits<double>::infinity()).result == outcome::no_values);
  check_value(observed_value(-0.0), 0);
  CHECK(read_graphite_answer(200, R"([{"target":"a","datapoints":[["NaN",1700000000]]}])").result == outcome::no_values);
}
