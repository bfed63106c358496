// Pure pieces of kubesim's API layer: ages as kubectl prints them, Kubernetes version ordering,
// discovery documents, table cells, and YAML request bodies.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "sim/api/discovery.hpp"
#include "sim/api/table.hpp"
#include "sim/api/yaml_json.hpp"

namespace json = boost::json;
using namespace kubesim;
using std::chrono::seconds;

TEST_CASE("ages read like Kubernetes' HumanDuration") {
  CHECK(table::human_duration(seconds(-5)) == "<invalid>");
  CHECK(table::human_duration(seconds(0)) == "0s");
  CHECK(table::human_duration(seconds(119)) == "119s");
  CHECK(table::human_duration(seconds(125)) == "2m5s");
  CHECK(table::human_duration(seconds(600)) == "10m");
  CHECK(table::human_duration(seconds(3 * 3600 + 60)) == "3h1m");
  CHECK(table::human_duration(seconds(30 * 3600)) == "30h");
  CHECK(table::human_duration(seconds(3 * 86400 + 3600)) == "3d1h");
  CHECK(table::human_duration(seconds(100 * 86400)) == "100d");
  CHECK(table::human_duration(seconds(3 * 365 * 86400 + 86400)) == "3y1d");
}

TEST_CASE("versions sort GA first, then beta, then alpha, higher numbers first") {
  std::vector<std::string> v = {"v1alpha1", "v1beta1", "v2", "v1", "v1beta2", "foo", "v10alpha3"};
  std::sort(v.begin(), v.end(), discovery::version_before);
  CHECK(v == std::vector<std::string>{"v2", "v1", "v1beta2", "v1beta1", "v10alpha3", "v1alpha1", "foo"});
}

TEST_CASE("discovery lists resources with subresources, and groups with their preferred version") {
  resource_info deploy;
  deploy.group = "apps";
  deploy.version = "v1";
  deploy.resource = "deployments";
  deploy.kind = "Deployment";
  deploy.status_subresource = deploy.scale_subresource = true;
  deploy.short_names = {"deploy"};
  resource_info w1 = deploy, w2 = deploy;
  w1.group = w2.group = "example.com";
  w1.version = "v1beta1";
  w2.version = "v1";
  std::vector<const resource_info*> all = {&deploy, &w1, &w2};
  auto list = discovery::resource_list(all, "apps", "v1");
  auto text = json::serialize(list);
  CHECK(text.find(R"("name":"deployments/status")") != std::string::npos);
  CHECK(text.find(R"("name":"deployments/scale")") != std::string::npos);
  CHECK(list.at("groupVersion").as_string() == "apps/v1");
  CHECK(discovery::resource_list(all, "apps", "v2").empty());
  auto g = discovery::group(all, "example.com");
  CHECK(g.at("preferredVersion").at("version").as_string() == "v1");
  CHECK(discovery::group(all, "nope").empty());
}

TEST_CASE("tables: built-in Deployment cells and CRD printer columns") {
  auto now = std::chrono::system_clock::from_time_t(1'700'000'100);
  auto d = json::parse(R"({"metadata":{"name":"web","creationTimestamp":"2023-11-14T22:13:20Z"},
    "spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
      "template":{"spec":{"containers":[{"name":"a","image":"nginx"},{"name":"b","image":"envoy"}]}}},
    "status":{"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}})").as_object();
  resource_info deploy;
  deploy.group = "apps";
  deploy.resource = "deployments";
  auto cells = table::cells(deploy, d, now);
  CHECK(json::serialize(cells) == R"(["web","2/3",3,2,"100s","a,b","nginx,envoy","app=web"])");
  CHECK(table::column_definitions(deploy).size() == cells.size());

  resource_info canary;
  canary.custom = true;
  canary.columns = {{"Status", "string", ".status.phase", "", "", 0},
                    {"Weight", "integer", ".status.canaryWeight", "", "", 0},
                    {"Steps", "string", ".spec.analysis.stepWeights", "", "", 1},
                    {"Promoted", "string", R"(.status.conditions[?(@.type=="Promoted")].status)", "", "", 1},
                    {"Age", "date", ".metadata.creationTimestamp", "", "", 0}};
  auto c = json::parse(R"({"metadata":{"name":"c","creationTimestamp":"2023-11-14T22:13:20Z"},
    "spec":{"analysis":{"stepWeights":[10,20]}},
    "status":{"phase":"Progressing","canaryWeight":10,"conditions":[{"type":"Promoted","status":"False"}]}})").as_object();
  CHECK(json::serialize(table::cells(canary, c, now)) == R"(["c","Progressing",10,"[10,20]","False","100s"])");
  auto empty = json::parse(R"({"metadata":{"name":"e"}})").as_object();
  CHECK(json::serialize(table::cells(canary, empty, now)) == R"(["e",null,null,null,null,null])");
  auto t = table::make(canary, {std::make_shared<const json::object>(c)}, table::include_object::metadata, true, now, {});
  CHECK(t.at("rows").at(0).at("object").at("kind").as_string() == "PartialObjectMetadata");
  CHECK(t.at("columnDefinitions").as_array().size() == 6);
}

TEST_CASE("YAML bodies convert to JSON with Kubernetes' scalar rules and bad YAML is an error") {
  auto v = yaml_to_json("a: 1\nb: \"1\"\nc: true\nd: ~\ne: 1.5\nf: [x, 'y']\ng: yes\nh: 0x1f\ni: text\n");
  REQUIRE(v.has_value());
  CHECK(json::serialize(*v) == R"({"a":1,"b":"1","c":true,"d":null,"e":1.5E0,"f":["x","y"],"g":true,"h":31,"i":"text"})");
  CHECK_FALSE(yaml_to_json("a: [1,\n").has_value());
  CHECK_FALSE(yaml_to_json("a: 1\n---\nb: 2\n").has_value());
  CHECK(yaml_to_json("").value().is_null());
}
