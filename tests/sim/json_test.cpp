// Unit tests of kubesim's pure JSON algorithms (sim/json): patches, schema validation,
// pruning and defaulting, selectors, JSONPath. No io_context, no sockets.
#include "sim/json/json_compare.hpp"
#include "sim/json/json_patch.hpp"
#include "sim/json/jsonpath.hpp"
#include "sim/json/merge_patch.hpp"
#include "sim/json/schema.hpp"
#include "sim/json/selector.hpp"
#include "sim/json/strategic_merge.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include "tests/support/process.hpp"

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace json = boost::json;
using kubesim::json_equal;

namespace {

json::value j(std::string_view s) { return json::parse(s); }

// Compares after parsing both sides, and prints both on failure.
void check_json(const json::value& got, std::string_view want) {
  const json::value w = j(want);
  INFO("got:  " << json::serialize(got));
  INFO("want: " << json::serialize(w));
  CHECK(json_equal(got, w));
}

json::value smp(std::string_view original, std::string_view patch, std::string_view api_version = "apps/v1",
                std::string_view kind = "Deployment") {
  const auto* schema = kubesim::strategic_schema(api_version, kind);
  REQUIRE(schema != nullptr);
  auto r = kubesim::strategic_merge(j(original), j(patch), *schema);
  if (!r) FAIL("strategic merge failed: " << r.error().message);
  return *r;
}


// YAML to JSON the way sigs.k8s.io/yaml reads manifests: plain scalars become null, booleans
// and numbers where they look like them; quoted scalars stay strings.
json::value yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& e : n) a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: break;
  }
  const std::string s = n.Scalar();
  if (n.Tag() == "!") return json::string(s);
  if (s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i); ec == std::errc() && p == s.data() + s.size()) return i;
  double d = 0;
  if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d); ec == std::errc() && p == s.data() + s.size() && !s.empty() &&
      s.find_first_not_of("0123456789.eE+-") == std::string::npos) {
    return d;
  }
  return json::string(s);
}

std::vector<json::value> load_yaml_documents(const std::string& path) {
  std::vector<json::value> out;
  for (const auto& doc : YAML::LoadAllFromFile(path))
    if (doc.IsMap()) out.push_back(yaml_to_json(doc));
  return out;
}

}  // namespace

TEST_SUITE("sim") {

TEST_CASE("json_equal compares numbers by value and objects without order") {
  CHECK(json_equal(j("1"), j("1.0")));
  CHECK(json_equal(j(R"({"a":1,"b":[1,2]})"), j(R"({"b":[1,2.0],"a":1})")));
  CHECK_FALSE(json_equal(j("[1,2]"), j("[2,1]")));
  CHECK_FALSE(json_equal(j("1"), j("\"1\"")));
  CHECK_FALSE(json_equal(j("null"), j("{}")));
  CHECK(std::string(kubesim::json_type_name(j("2.0"))) == "integer");
  CHECK(std::string(kubesim::json_type_name(j("2.5"))) == "number");
}

TEST_CASE("a merge patch follows the RFC 7386 examples") {
  // RFC 7386 appendix A, row by row.
  struct row {
    const char *target, *patch, *result;
  } rows[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", R"(null)", R"(null)"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const auto& r : rows) {
    INFO(std::string(r.target) << " + " << r.patch);
    check_json(kubesim::merge_patch(j(r.target), j(r.patch)), r.result);
  }
}

TEST_CASE("a JSON patch applies every operation of RFC 6902") {
  auto doc = j(R"({"metadata":{"labels":{"app":"x"}},"spec":{"replicas":1,"list":["a","b"]}})");
  auto r = kubesim::apply_json_patch(doc, j(R"([
    {"op":"add","path":"/metadata/labels/a~1b","value":"slash"},
    {"op":"add","path":"/metadata/labels/t~0x","value":"tilde"},
    {"op":"replace","path":"/spec/replicas","value":3},
    {"op":"add","path":"/spec/list/-","value":"c"},
    {"op":"add","path":"/spec/list/0","value":"z"},
    {"op":"remove","path":"/spec/list/1"},
    {"op":"copy","from":"/spec/replicas","path":"/spec/copied"},
    {"op":"move","from":"/metadata/labels/app","path":"/metadata/labels/moved"},
    {"op":"test","path":"/spec/replicas","value":3.0}
  ])"));
  REQUIRE(r.has_value());
  check_json(*r, R"({"metadata":{"labels":{"a/b":"slash","t~x":"tilde","moved":"x"}},
                     "spec":{"replicas":3,"list":["z","b","c"],"copied":3}})");
  // The input is untouched.
  check_json(doc, R"({"metadata":{"labels":{"app":"x"}},"spec":{"replicas":1,"list":["a","b"]}})");
}

TEST_CASE("a failing JSON patch test operation is 422 Invalid with the server's fixed message") {
  auto r = kubesim::apply_json_patch(j(R"({"spec":{"replicas":1}})"),
                                     j(R"([{"op":"test","path":"/spec/replicas","value":2},
                                           {"op":"replace","path":"/spec/replicas","value":5}])"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 422);
  CHECK(r.error().reason == "Invalid");
  CHECK(r.error().message == "the server rejected our request due to an error in our request");
  CHECK(r.error().detail == "testing value /spec/replicas failed: test failed");
}

TEST_CASE("JSON patch paths that do not resolve are 422, malformed patch bodies are 400") {
  const auto doc = j(R"({"spec":{"list":[1,2]}})");
  for (const char* p : {
           R"([{"op":"remove","path":"/spec/missing"}])",
           R"([{"op":"replace","path":"/nope/x","value":1}])",
           R"([{"op":"add","path":"/a/b/c","value":1}])",
           R"([{"op":"add","path":"/spec/list/5","value":1}])",
           R"([{"op":"remove","path":"/spec/list/2"}])",
           R"([{"op":"move","from":"/spec","path":"/spec/list/0"}])",
           R"([{"op":"copy","from":"/nothing","path":"/x"}])",
           R"([{"op":"frobnicate","path":"/spec"}])",
           R"([{"op":"add","value":1}])",
           R"([{"op":"add","path":"spec","value":1}])",
           R"([{"op":"add","path":"/spec/~2","value":1}])",
       }) {
    INFO(std::string(p));
    auto r = kubesim::apply_json_patch(doc, j(p));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 422);
    CHECK_FALSE(r.error().detail.empty());
  }
  for (const char* p : {R"({"op":"add"})", R"(["add"])", R"("x")"}) {
    INFO(std::string(p));
    auto r = kubesim::apply_json_patch(doc, j(p));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == 400);
    CHECK(r.error().reason == "BadRequest");
  }
}

TEST_CASE("JSON patch keeps evanphx quirks: negative indices and null tests of missing members") {
  auto r = kubesim::apply_json_patch(j(R"({"l":[1,2,3]})"), j(R"([{"op":"remove","path":"/l/-1"},
                                                                   {"op":"test","path":"/absent","value":null}])"));
  REQUIRE(r.has_value());
  check_json(*r, R"({"l":[1,2]})");
}

TEST_CASE("a JSON patch with more than 10000 operations is 413") {
  json::array ops;
  for (int i = 0; i < 10001; ++i) ops.push_back(j(R"({"op":"test","path":"","value":{}})"));
  auto r = kubesim::apply_json_patch(j("{}"), ops);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 413);
}

TEST_CASE("kubectl set image merges the container by name and keeps its other fields") {
  const char* deploy = R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"podinfo"},
    "spec":{"template":{"metadata":{"labels":{"app":"podinfo"}},"spec":{"containers":[
      {"name":"podinfod","image":"podinfo:6.0.0","ports":[{"name":"http","containerPort":9898}]},
      {"name":"sidecar","image":"envoy:1"}]}}}})";
  // What kubectl 1.2x sends for `kubectl set image deploy/podinfo podinfod=podinfo:6.0.1`.
  auto out = smp(deploy, R"({"spec":{"template":{"spec":{"containers":[{"image":"podinfo:6.0.1","name":"podinfod"}]}}}})");
  check_json(out.at("spec").at("template").at("spec").at("containers"), R"([
      {"name":"podinfod","image":"podinfo:6.0.1","ports":[{"name":"http","containerPort":9898}]},
      {"name":"sidecar","image":"envoy:1"}])");
}

TEST_CASE("kubectl apply's patch with $setElementOrder and last-applied annotation merges and orders") {
  const char* live = R"({"metadata":{"name":"p","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}",
                                                               "deployment.kubernetes.io/revision":"1"}},
    "spec":{"replicas":1,"template":{"spec":{"containers":[
      {"name":"a","image":"a:1","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}]},
      {"name":"b","image":"b:1"}]}}}})";
  // kubectl apply after changing a's image, removing env Y, adding container c before b.
  const char* patch = R"({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":1}"}},
    "spec":{"template":{"spec":{
      "$setElementOrder/containers":[{"name":"a"},{"name":"c"},{"name":"b"}],
      "containers":[{"$setElementOrder/env":[{"name":"X"}],"image":"a:2","name":"a",
                     "env":[{"$patch":"delete","name":"Y"}]},
                    {"image":"c:1","name":"c"}]}}}})";
  auto out = smp(live, patch);
  check_json(out, R"({"metadata":{"name":"p","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"new\":1}",
                                                            "deployment.kubernetes.io/revision":"1"}},
    "spec":{"replicas":1,"template":{"spec":{"containers":[
      {"name":"a","image":"a:2","env":[{"name":"X","value":"1"}]},
      {"name":"c","image":"c:1"},
      {"name":"b","image":"b:1"}]}}}})");
}

TEST_CASE("strategic merge list keys follow the Go types of each kind") {
  SUBCASE("container ports merge by containerPort, volumeMounts by mountPath, volumes by name") {
    auto out = smp(R"({"spec":{"template":{"spec":{"volumes":[{"name":"v1","emptyDir":{}}],
        "containers":[{"name":"c","ports":[{"containerPort":80,"name":"http"}],"volumeMounts":[{"mountPath":"/a","name":"v1"}]}]}}}})",
                   R"({"spec":{"template":{"spec":{"volumes":[{"name":"v2","emptyDir":{}}],
        "containers":[{"name":"c","ports":[{"containerPort":80,"protocol":"TCP"},{"containerPort":81}],
                        "volumeMounts":[{"mountPath":"/b","name":"v2"}]}]}}}})");
    auto& spec = out.at("spec").at("template").at("spec");
    check_json(spec.at("volumes"), R"([{"name":"v2","emptyDir":{}},{"name":"v1","emptyDir":{}}])");
    check_json(spec.at("containers").at(0).at("ports"),
               R"([{"containerPort":80,"name":"http","protocol":"TCP"},{"containerPort":81}])");
    check_json(spec.at("containers").at(0).at("volumeMounts"),
               R"([{"mountPath":"/b","name":"v2"},{"mountPath":"/a","name":"v1"}])");
  }
  SUBCASE("service ports merge by port") {
    auto out = smp(R"({"spec":{"ports":[{"port":80,"targetPort":8080,"name":"http"}]}})",
                   R"({"spec":{"ports":[{"port":80,"targetPort":9090}]}})", "v1", "Service");
    check_json(out.at("spec").at("ports"), R"([{"port":80,"targetPort":9090,"name":"http"}])");
  }
  SUBCASE("tolerations, args and envFrom are replaced") {
    auto out = smp(R"({"spec":{"template":{"spec":{"tolerations":[{"key":"a"}],
        "containers":[{"name":"c","args":["x","y"],"envFrom":[{"configMapRef":{"name":"a"}}]}]}}}})",
                   R"({"spec":{"template":{"spec":{"tolerations":[{"key":"b"}],
        "containers":[{"name":"c","args":["z"],"envFrom":[{"secretRef":{"name":"s"}}]}]}}}})");
    auto& spec = out.at("spec").at("template").at("spec");
    check_json(spec.at("tolerations"), R"([{"key":"b"}])");
    check_json(spec.at("containers").at(0).at("args"), R"(["z"])");
    check_json(spec.at("containers").at(0).at("envFrom"), R"([{"secretRef":{"name":"s"}}])");
  }
  SUBCASE("finalizers merge as a set and ownerReferences by uid") {
    auto out = smp(R"({"metadata":{"finalizers":["a","b"],"ownerReferences":[{"uid":"1","name":"x"}]}})",
                   R"({"metadata":{"finalizers":["b","c"],"ownerReferences":[{"uid":"2","name":"y"}]}})", "v1", "ConfigMap");
    check_json(out.at("metadata").at("finalizers"), R"(["a","b","c"])");
    check_json(out.at("metadata").at("ownerReferences"), R"([{"uid":"2","name":"y"},{"uid":"1","name":"x"}])");
  }
  SUBCASE("status conditions merge by type") {
    auto out = smp(R"({"status":{"conditions":[{"type":"Available","status":"False"},{"type":"Progressing","status":"True"}]}})",
                   R"({"status":{"conditions":[{"type":"Available","status":"True"}]}})");
    check_json(out.at("status").at("conditions"),
               R"([{"type":"Available","status":"True"},{"type":"Progressing","status":"True"}])");
  }
}

TEST_CASE("strategic merge directives: $patch replace and delete, $retainKeys, $deleteFromPrimitiveList") {
  SUBCASE("$patch: replace on a map replaces it") {
    auto out = smp(R"({"metadata":{"labels":{"a":"1","b":"2"}}})", R"({"metadata":{"labels":{"$patch":"replace","c":"3"}}})");
    check_json(out, R"({"metadata":{"labels":{"c":"3"}}})");
  }
  SUBCASE("$patch: delete on a map empties it") {
    auto out = smp(R"({"spec":{"strategy":{"type":"Recreate"}}})", R"({"spec":{"strategy":{"$patch":"delete"}}})");
    check_json(out, R"({"spec":{"strategy":{}}})");
  }
  SUBCASE("a $patch: replace element replaces a merge list") {
    auto out = smp(R"({"spec":{"template":{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}}})",
                   R"({"spec":{"template":{"spec":{"containers":[{"name":"c"},{"$patch":"replace"}]}}}})");
    check_json(out, R"({"spec":{"template":{"spec":{"containers":[{"name":"c"}]}}}})");
  }
  SUBCASE("$retainKeys clears the members it does not name") {
    auto out = smp(R"({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}})",
                   R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})");
    check_json(out, R"({"spec":{"strategy":{"type":"Recreate"}}})");
  }
  SUBCASE("$deleteFromPrimitiveList removes finalizers") {
    auto out = smp(R"({"metadata":{"finalizers":["a","b","c"]}})",
                   R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}})");
    check_json(out, R"({"metadata":{"finalizers":["a","c"]}})");
  }
  SUBCASE("null deletes and nulls inside new members vanish") {
    auto out = smp(R"({"metadata":{"labels":{"a":"1"}},"spec":{"x":1}})",
                   R"({"metadata":{"labels":{"a":null}},"spec":{"x":null,"y":{"z":null,"w":1}}})");
    check_json(out, R"({"metadata":{"labels":{}},"spec":{"y":{"w":1}}})");
  }
  SUBCASE("$setElementOrder alone reorders a list") {
    auto out = smp(R"({"spec":{"template":{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}}})",
                   R"({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"b"},{"name":"a"}]}}}})");
    check_json(out, R"({"spec":{"template":{"spec":{"containers":[{"name":"b"},{"name":"a"}]}}}})");
  }
}

TEST_CASE("strategic merge errors are classified like kube-apiserver's") {
  const auto* schema = kubesim::strategic_schema("apps/v1", "Deployment");
  REQUIRE(schema != nullptr);
  auto run = [&](const char* original, const char* patch) {
    return kubesim::strategic_merge(j(original), j(patch), *schema);
  };
  auto r = run(R"({})", R"([1])");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 400);
  r = run(R"({"metadata":{"finalizers":["a"]}})", R"({"metadata":{"$deleteFromPrimitiveList":["a"]}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 400);
  CHECK(r.error().message == "invalid patch format of primitive list");
  r = run(R"({"spec":{"strategy":{}}})", R"({"spec":{"strategy":{"$retainKeys":"type"}}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 400);
  r = run(R"({"spec":{"template":{"spec":{"containers":[{"name":"a"}]}}}})",
          R"({"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 500);
  CHECK(r.error().message.find("does not contain declared merge key: name") != std::string::npos);
  r = run(R"({"spec":{"template":{"spec":{"containers":[[1]]}}}})", R"({"spec":{"template":{"spec":{"containers":[[2]]}}}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 422);
  r = run(R"({"metadata":{"labels":{"a":"b"}}})", R"({"metadata":{"labels":{"$patch":"bogus"}}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == 500);
}

TEST_CASE("custom resources have no strategic merge schema") {
  CHECK(kubesim::strategic_schema("flagger.app/v1beta1", "Canary") == nullptr);
  CHECK(kubesim::strategic_schema("apps/v1", "Deployment") != nullptr);
}

TEST_CASE("label selector strings parse and match like kubectl's -l") {
  auto labels = j(R"({"app":"podinfo","tier":"web","version":"2"})").as_object();
  struct row {
    const char* selector;
    bool match;
  } rows[] = {
      {"", true},
      {"app=podinfo", true},
      {"app==podinfo", true},
      {"app = podinfo", true},
      {"app!=podinfo", false},
      {"app!=other", true},
      {"missing!=x", true},
      {"app in (podinfo, other)", true},
      {"app in (a,b)", false},
      {"app notin (a,b)", true},
      {"missing notin (a)", true},
      {"tier", true},
      {"!tier", false},
      {"!missing", true},
      {"app=podinfo,tier=web", true},
      {"app=podinfo,tier=db", false},
      {"version>1", true},
      {"version<2", false},
      {"app in (podinfo),!missing,tier", true},
      {"example.com/team", false},
      {"app=", false},
      {"in=in", false},
  };
  for (const auto& r : rows) {
    INFO(std::string(r.selector));
    auto sel = kubesim::parse_label_selector(r.selector);
    REQUIRE(sel.has_value());
    CHECK(sel->matches(&labels) == r.match);
  }
  CHECK(kubesim::parse_label_selector("tier in (b,a),app=x")->to_string() == "app=x,tier in (a,b)");
  CHECK(kubesim::parse_label_selector("!a,b")->to_string() == "!a,b");
}

TEST_CASE("bad label selectors fail with the apiserver's wording") {
  struct row {
    const char *selector, *message;
  } rows[] = {
      {"app in a", "unable to parse requirement: found 'a' expected: '('"},
      {"app in (a", "unable to parse requirement: found '', expected: ',' or ')'"},
      {"app=a b", "found 'b', expected: ',' or 'end of string'"},
      {"app,", "found '', expected: identifier after ','"},
      {"=x", "found '=', expected: !, identifier, or 'end of string'"},
      {"app x", "unable to parse requirement: found 'x', expected: in, notin, =, ==, !=, gt, lt"},
      {"a$b=c", "unable to parse requirement: key: Invalid value: \"a$b\": name part must consist of alphanumeric characters"},
      {"app=a$", "unable to parse requirement: values[0]: Invalid value: \"a$\": a valid label must be an empty string"},
      {"Example.com/x=y", "prefix part a lowercase RFC 1123 subdomain"},
      {"version>abc", "the value must be an integer"},
      {"a>=1", "unable to parse requirement: found '=', expected: identifier"},
      {"a=(", "unable to parse requirement: found '(', expected: identifier"},
  };
  for (const auto& r : rows) {
    INFO(std::string(r.selector));
    auto sel = kubesim::parse_label_selector(r.selector);
    REQUIRE_FALSE(sel.has_value());
    INFO(sel.error().message);
    CHECK(sel.error().message.find(r.message) != std::string::npos);
  }
}

TEST_CASE("LabelSelector objects select with matchLabels and matchExpressions") {
  auto pod = j(R"({"metadata":{"labels":{"app":"podinfo","track":"canary"}}})").as_object();
  auto sel = kubesim::label_selector_from_object(j(R"({"matchLabels":{"app":"podinfo"},
      "matchExpressions":[{"key":"track","operator":"In","values":["canary","primary"]},
                          {"key":"legacy","operator":"DoesNotExist"}]})"));
  REQUIRE(sel.has_value());
  CHECK(sel->matches_object(pod));
  CHECK(sel->to_string() == "app=podinfo,!legacy,track in (canary,primary)");
  auto none = kubesim::label_selector_from_object(j("null"));
  REQUIRE(none.has_value());
  CHECK_FALSE(none->matches_object(pod));
  auto all = kubesim::label_selector_from_object(j("{}"));
  REQUIRE(all.has_value());
  CHECK(all->matches_object(j("{}").as_object()));
  auto bad = kubesim::label_selector_from_object(j(R"({"matchExpressions":[{"key":"a","operator":"Equals","values":["b"]}]})"));
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().message == "\"Equals\" is not a valid label selector operator");
  auto empty_in = kubesim::label_selector_from_object(j(R"({"matchExpressions":[{"key":"a","operator":"In"}]})"));
  REQUIRE_FALSE(empty_in.has_value());
  auto svc = kubesim::label_selector_from_map(j(R"({"app":"podinfo"})").as_object());
  CHECK(svc.matches_object(pod));
  CHECK_FALSE(svc.matches_object(j(R"({"metadata":{"labels":{"app":"other"}}})").as_object()));
}

TEST_CASE("field selectors support metadata.name and metadata.namespace, and refuse other fields") {
  auto obj = j(R"({"metadata":{"name":"podinfo","namespace":"test"},"status":{"phase":"Running"}})").as_object();
  auto by_name = kubesim::parse_field_selector("metadata.name=podinfo");
  REQUIRE(by_name.has_value());
  CHECK(by_name->matches(obj));
  auto both = kubesim::parse_field_selector("metadata.name==podinfo,metadata.namespace!=test");
  REQUIRE(both.has_value());
  CHECK_FALSE(both->matches(obj));
  auto escaped = kubesim::parse_field_selector(R"(metadata.name=a\,b)");
  REQUIRE(escaped.has_value());
  CHECK(escaped->requirements().at(0).value == "a,b");
  auto unsupported = kubesim::parse_field_selector("spec.replicas=1");
  REQUIRE_FALSE(unsupported.has_value());
  CHECK(unsupported.error().message == "field label not supported: spec.replicas");
  auto pods = kubesim::parse_field_selector("status.phase=Running", {"status.phase"});
  REQUIRE(pods.has_value());
  CHECK(pods->matches(obj));
  auto garbage = kubesim::parse_field_selector("metadata.name");
  REQUIRE_FALSE(garbage.has_value());
  CHECK(garbage.error().message == "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
  CHECK(kubesim::parse_field_selector("").has_value());
}

TEST_CASE("JSONPath finds what printer columns and kubectl -o jsonpath ask for") {
  const auto canary = j(R"({"metadata":{"name":"podinfo","creationTimestamp":"2024-01-01T00:00:00Z",
                                         "labels":{"app.kubernetes.io/name":"podinfo"}},
    "spec":{"analysis":{"maxWeight":50}},
    "status":{"phase":"Succeeded","canaryWeight":0,
              "conditions":[{"type":"Promoted","status":"True"},{"type":"Ready","status":"False"}]}})");
  auto texts = [&](std::string_view expr) {
    auto p = kubesim::jsonpath::parse(expr);
    REQUIRE(p.has_value());
    std::vector<std::string> out;
    for (const auto* v : p->find(canary)) out.push_back(kubesim::jsonpath_text(*v));
    return out;
  };
  using v = std::vector<std::string>;
  CHECK(texts(".status.phase") == v{"Succeeded"});
  CHECK(texts("{.spec.analysis.maxWeight}") == v{"50"});
  CHECK(texts("$.status.canaryWeight") == v{"0"});
  CHECK(texts(".status.conditions[?(@.type==\"Promoted\")].status") == v{"True"});
  CHECK(texts(".status.conditions[?(@.type=='Ready')].status") == v{"False"});
  CHECK(texts(".status.conditions[?(@.status!=\"True\")].type") == v{"Ready"});
  CHECK(texts(".status.conditions[?(@.type)].type") == v{"Promoted", "Ready"});
  CHECK(texts(".metadata.creationTimestamp") == v{"2024-01-01T00:00:00Z"});
  CHECK(texts(".metadata.labels['app.kubernetes.io/name']") == v{"podinfo"});
  CHECK(texts(".status.conditions[0].type") == v{"Promoted"});
  CHECK(texts(".status.conditions[-1].type") == v{"Ready"});
  CHECK(texts(".status.conditions[*].type") == v{"Promoted", "Ready"});
  CHECK(texts("..type") == v{"Promoted", "Ready"});
  CHECK(texts("status.phase") == v{"Succeeded"});
  CHECK(texts(".spec.analysis") == v{R"({"maxWeight":50})"});
  CHECK(texts(".status.missing").empty());
  CHECK(texts(".status.conditions[5]").empty());
  CHECK(texts(".spec.analysis[?(@>10)]") == v{"50"});
  for (const char* bad : {".a[", ".a[x]", ".a[?(@.b==)]", "{.a", ".a.."}) {
    INFO(std::string(bad));
    CHECK_FALSE(kubesim::jsonpath::parse(bad).has_value());
  }
}

TEST_CASE("schema validation reports kube-openapi's messages") {
  const auto schema = j(R"({"type":"object","required":["spec"],"properties":{
    "spec":{"type":"object","required":["targetRef"],"properties":{
      "targetRef":{"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":5}}},
      "maxWeight":{"type":"number","maximum":100,"minimum":0},
      "step":{"type":"integer","exclusiveMinimum":true,"minimum":0},
      "provider":{"type":"string","enum":["istio","linkerd"]},
      "name":{"type":"string","pattern":"^[a-z]+$"},
      "port":{"x-kubernetes-int-or-string":true},
      "hosts":{"type":"array","maxItems":2,"minItems":1,"items":{"type":"string"}},
      "maybe":{"type":"string","nullable":true},
      "labels":{"type":"object","additionalProperties":{"type":"string"}}}}}})");
  auto errors_of = [&](std::string_view spec) {
    json::value obj = j(R"({"apiVersion":"x/v1","kind":"X","metadata":{"name":"a"}})");
    obj.as_object()["spec"] = j(spec);
    std::vector<std::string> out;
    for (const auto& e : kubesim::validate(schema, obj)) out.push_back(e.text());
    return out;
  };
  using v = std::vector<std::string>;
  CHECK(errors_of(R"({"targetRef":{"name":"x"},"maxWeight":50,"step":1,"provider":"istio","name":"abc","port":"http",
                      "hosts":["a"],"maybe":null,"labels":{"a":"b"}})")
            .empty());
  CHECK(errors_of(R"({})") == v{"spec.targetRef: Required value"});
  CHECK(errors_of(R"({"targetRef":{},"maxWeight":101})") ==
        v{"spec.maxWeight: Invalid value: 101: spec.maxWeight in body should be less than or equal to 100"});
  CHECK(errors_of(R"({"targetRef":{},"maxWeight":-0.5})") ==
        v{"spec.maxWeight: Invalid value: -0.5: spec.maxWeight in body should be greater than or equal to 0"});
  CHECK(errors_of(R"({"targetRef":{},"step":0})") ==
        v{"spec.step: Invalid value: 0: spec.step in body should be greater than 0"});
  CHECK(errors_of(R"({"targetRef":{},"step":1.5})") ==
        v{"spec.step: Invalid value: \"number\": spec.step in body must be of type integer: \"number\""});
  CHECK(errors_of(R"({"targetRef":{},"step":2.0})").empty());
  CHECK(errors_of(R"({"targetRef":{},"maxWeight":"50"})") ==
        v{"spec.maxWeight: Invalid value: \"string\": spec.maxWeight in body must be of type number: \"string\""});
  CHECK(errors_of(R"({"targetRef":{},"provider":"nginx"})") ==
        v{"spec.provider: Unsupported value: \"nginx\": supported values: \"istio\", \"linkerd\""});
  CHECK(errors_of(R"({"targetRef":{},"name":"ABC"})") ==
        v{"spec.name: Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'"});
  CHECK(errors_of(R"({"targetRef":{"name":""}})") ==
        v{"spec.targetRef.name: Invalid value: \"\": spec.targetRef.name in body should be at least 1 chars long"});
  CHECK(errors_of(R"({"targetRef":{"name":"toolong"}})") == v{"spec.targetRef.name: Too long: may not be longer than 5"});
  CHECK(errors_of(R"({"targetRef":{},"port":true})") ==
        v{"spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""});
  CHECK(errors_of(R"({"targetRef":{},"port":8080})").empty());
  CHECK(errors_of(R"({"targetRef":{},"hosts":["a","b","c"]})") == v{"spec.hosts: Too many: 3: must have at most 2 items"});
  CHECK(errors_of(R"({"targetRef":{},"hosts":[]})") ==
        v{"spec.hosts: Invalid value: 0: spec.hosts in body should have at least 1 items"});
  CHECK(errors_of(R"({"targetRef":{},"hosts":[1]})") ==
        v{"spec.hosts[0]: Invalid value: \"integer\": spec.hosts[0] in body must be of type string: \"integer\""});
  CHECK(errors_of(R"({"targetRef":{},"labels":{"a":1}})") ==
        v{"spec.labels.a: Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\""});
  CHECK(errors_of(R"({"targetRef":null})") ==
        v{"spec.targetRef: Invalid value: \"null\": spec.targetRef in body must be of type object: \"null\""});

  auto errs = kubesim::validate(schema, j(R"({"metadata":{"name":"a"},"spec":{"maxWeight":200}})"));
  REQUIRE(errs.size() == 2);
  CHECK(kubesim::invalid_message("Canary.flagger.app", "podinfo", errs) ==
        "Canary.flagger.app \"podinfo\" is invalid: [spec.targetRef: Required value, spec.maxWeight: Invalid value: 200: "
        "spec.maxWeight in body should be less than or equal to 100]");
  CHECK(errs[0].reason == "FieldValueRequired");
  CHECK(errs[1].reason == "FieldValueInvalid");
  CHECK(errs[1].field == "spec.maxWeight");
}

TEST_CASE("pruning drops undeclared fields except under preserve-unknown-fields and root metadata") {
  const auto schema = j(R"({"type":"object","properties":{
    "spec":{"type":"object","properties":{"a":{"type":"string"},
      "free":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"typed":{"type":"object","properties":{"x":{"type":"string"}}}}},
      "map":{"type":"object","additionalProperties":{"type":"object","properties":{"v":{"type":"string"}}}},
      "list":{"type":"array","items":{"type":"object","properties":{"n":{"type":"string"}}}},
      "embedded":{"type":"object","x-kubernetes-embedded-resource":true,"properties":{"spec":{"type":"object"}}}}},
    "status":{"type":"object","properties":{"phase":{"type":"string"}}}}})");
  json::value obj = j(R"({"apiVersion":"x/v1","kind":"X","metadata":{"name":"a","labels":{"k":"v"}},"extra":1,
    "spec":{"a":"x","b":"dropped","free":{"anything":{"goes":1},"typed":{"x":"1","y":"dropped"}},
            "map":{"k1":{"v":"1","w":"dropped"}},"list":[{"n":"1","m":"dropped"}],
            "embedded":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"spec":{},"junk":1}},
    "status":{"phase":"Succeeded","invented":"by canaryd"}})");
  kubesim::prune(schema, obj);
  check_json(obj, R"({"apiVersion":"x/v1","kind":"X","metadata":{"name":"a","labels":{"k":"v"}},
    "spec":{"a":"x","free":{"anything":{"goes":1},"typed":{"x":"1"}},
            "map":{"k1":{"v":"1"}},"list":[{"n":"1"}],
            "embedded":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"spec":{}}},
    "status":{"phase":"Succeeded"}})");
}

TEST_CASE("defaults are applied to missing and null fields, and nulls without defaults vanish") {
  const auto schema = j(R"({"type":"object","properties":{"spec":{"type":"object","properties":{
      "replicas":{"type":"integer","default":1},
      "mode":{"type":"string","default":"auto"},
      "opt":{"type":"string"},
      "nullable":{"type":"string","nullable":true},
      "nested":{"type":"object","default":{},"properties":{"x":{"type":"integer","default":7}}},
      "items":{"type":"array","items":{"type":"object","properties":{"w":{"type":"integer","default":3}}}}}}}})");
  json::value obj = j(R"({"spec":{"mode":null,"opt":null,"nullable":null,"items":[{},{"w":5}]}})");
  kubesim::apply_defaults(schema, obj);
  check_json(obj, R"({"spec":{"replicas":1,"mode":"auto","nullable":null,"nested":{"x":7},"items":[{"w":3},{"w":5}]}})");
}

TEST_CASE("Flagger's CRDs validate Flagger's examples and prune what the schema lacks") {
  auto ref = canaryd::test::shared_reference();
  if (!ref) {
    MESSAGE("skipped: ../shared/reference is missing");
    return;
  }
  json::value canary_schema;
  for (const auto& crd : load_yaml_documents((*ref / "flagger" / "crd.yaml").string())) {
    if (crd.at("spec").at("names").at("kind") == "Canary") {
      canary_schema = crd.at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema");
    }
  }
  REQUIRE(canary_schema.is_object());

  int examples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(*ref / "flagger" / "examples")) {
    for (auto obj : load_yaml_documents(entry.path().string())) {
      if (obj.at("kind") != "Canary") continue;
      ++examples;
      INFO(entry.path().string());
      const json::value before = obj;
      kubesim::prune(canary_schema, obj);
      kubesim::apply_defaults(canary_schema, obj);
      auto errs = kubesim::validate(canary_schema, obj);
      for (const auto& e : errs) INFO(e.text());
      CHECK(errs.empty());
      INFO("after:  " << json::serialize(obj));
      INFO("before: " << json::serialize(before));
      CHECK(json_equal(obj, before));  // every field of the examples is declared
    }
  }
  CHECK(examples >= 4);

  json::value canary = load_yaml_documents((*ref / "flagger" / "examples" / "istio-canary.yaml").string()).at(0);
  auto& spec = canary.as_object()["spec"].as_object();
  spec["invented"] = "dropped";
  canary.as_object()["status"] = j(R"({"phase":"Progressing","canaryWeight":10,"myOwnField":"dropped"})");
  kubesim::prune(canary_schema, canary);
  CHECK_FALSE(canary.at("spec").as_object().contains("invented"));
  check_json(canary.at("status"), R"({"phase":"Progressing","canaryWeight":10})");

  auto invalid = canary;
  invalid.as_object()["spec"].as_object().erase("targetRef");
  invalid.as_object()["spec"].as_object()["provider"] = "bogus";
  invalid.as_object()["status"].as_object()["phase"] = "Dancing";
  std::vector<std::string> texts;
  for (const auto& e : kubesim::validate(canary_schema, invalid)) texts.push_back(e.text());
  CHECK(std::find(texts.begin(), texts.end(), "spec.targetRef: Required value") != texts.end());
  CHECK(std::count_if(texts.begin(), texts.end(), [](const std::string& t) {
          return t.rfind("spec.provider: Unsupported value: \"bogus\": supported values: \"apisix\", ", 0) == 0;
        }) == 1);
  CHECK(std::count_if(texts.begin(), texts.end(), [](const std::string& t) {
          return t.rfind("status.phase: Unsupported value: \"Dancing\"", 0) == 0;
        }) == 1);

  // Header matches: oneOf(not anyOf(exact, prefix, regex), exact, prefix, regex).
  auto with_header = [&](std::string_view header) {
    auto c = canary;
    c.as_object()["spec"].as_object()["service"].as_object()["match"] =
        j(std::string(R"([{"headers":{"x-canary":)") + std::string(header) + "}}]");
    return kubesim::validate(canary_schema, c);
  };
  CHECK(with_header(R"({"exact":"insider"})").empty());
  CHECK(with_header(R"({})").empty());
  auto both = with_header(R"({"exact":"a","prefix":"b"})");
  REQUIRE_FALSE(both.empty());
  CHECK(both[0].text() ==
        "<nil>: Invalid value: \"\": \"spec.service.match[0].headers.x-canary\" must validate one and only one "
        "schema (oneOf). Found 2 valid alternatives");
}

}  // TEST_SUITE
