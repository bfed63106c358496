// The object store's Kubernetes semantics, without HTTP: metadata, conflicts, finalizers,
// garbage collection, watches and history, CRD registration.
#include <doctest/doctest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "sim/api/store.hpp"

namespace json = boost::json;
using namespace kubesim;

namespace {

json::object parse(std::string_view text) { return json::parse(text).as_object(); }

json::object deployment(std::string_view name, std::string_view image = "nginx:1.25") {
  auto o = parse(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","labels":{"app":"x"}},
    "spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},
    "spec":{"containers":[{"name":"c","image":"i"}]}}}})");
  o["metadata"].as_object()["name"] = name;
  o["spec"].as_object()["template"].as_object()["spec"].as_object()["containers"].as_array()[0].as_object()["image"] = image;
  return o;
}

json::object configmap(std::string_view name) {
  auto o = parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"b"}})");
  o["metadata"].as_object()["name"] = name;
  return o;
}

const json::object& meta(const object_ptr& p) { return p->at("metadata").as_object(); }

std::string rv_of(const object_ptr& p) { return std::string(meta_string(*p, "resourceVersion")); }

json::object with_owner(json::object o, const object_ptr& owner) {
  o["metadata"].as_object()["ownerReferences"] = json::array{json::object{
      {"apiVersion", owner->at("apiVersion")}, {"kind", owner->at("kind")},
      {"name", meta(owner).at("name")}, {"uid", meta(owner).at("uid")}}};
  return o;
}

delete_options opts(propagation p) {
  delete_options o;
  o.policy = p;
  return o;
}

struct fixture {
  std::unique_ptr<store> s = make_store();
  const resource_info& deploy = *s->find("apps", "v1", "deployments");
  const resource_info& cm = *s->find("", "v1", "configmaps");
  const resource_info& ns = *s->find("", "v1", "namespaces");
  const resource_info& crds = *s->find("apiextensions.k8s.io", "v1", "customresourcedefinitions");
};

}  // namespace

TEST_CASE("the store starts with the four default namespaces and every built-in resource") {
  fixture f;
  for (auto n : {"default", "kube-system", "kube-public", "kube-node-lease"}) CHECK(f.s->get(f.ns, "", n));
  CHECK(f.s->find_kind("apps/v1", "Deployment") == &f.deploy);
  CHECK(f.s->find("autoscaling", "v2", "horizontalpodautoscalers"));
  CHECK(f.s->find("coordination.k8s.io", "v1", "leases"));
  CHECK(f.s->find("events.k8s.io", "v1", "events"));
  CHECK(f.s->find("networking.k8s.io", "v1", "ingresses"));
  CHECK_FALSE(f.s->find("apps", "v1", "widgets"));
}

TEST_CASE("a created object gets uid, resourceVersion, generation, creationTimestamp and defaults") {
  fixture f;
  auto before = f.s->resource_version();
  auto d = f.s->create(f.deploy, "default", deployment("web"));
  REQUIRE(d);
  auto& m = meta(*d);
  CHECK(m.at("uid").as_string().size() == 36);
  CHECK(m.at("generation").as_int64() == 1);
  CHECK(parse_resource_version(m.at("resourceVersion").as_string()).value() == before + 1);
  CHECK(m.at("creationTimestamp").as_string().size() == 20);
  CHECK(m.at("namespace").as_string() == "default");
  auto& spec = (*d)->at("spec").as_object();
  CHECK(spec.at("replicas").as_int64() == 1);
  CHECK(spec.at("strategy").at("type").as_string() == "RollingUpdate");
  auto& c = spec.at("template").at("spec").at("containers").at(0).as_object();
  CHECK(c.at("imagePullPolicy").as_string() == "IfNotPresent");
  CHECK(c.at("terminationMessagePath").as_string() == "/dev/termination-log");
  // A ConfigMap has no generation.
  auto cm = f.s->create(f.cm, "default", configmap("c"));
  REQUIRE(cm);
  CHECK_FALSE(meta(*cm).contains("generation"));
}

TEST_CASE("create answers AlreadyExists, a missing namespace NotFound, and generateName makes a name") {
  fixture f;
  REQUIRE(f.s->create(f.deploy, "default", deployment("web")));
  auto again = f.s->create(f.deploy, "default", deployment("web"));
  REQUIRE_FALSE(again);
  CHECK(again.error().code == 409);
  CHECK(again.error().reason == "AlreadyExists");
  CHECK(again.error().message == "deployments.apps \"web\" already exists");

  auto missing = f.s->create(f.deploy, "nope", deployment("web"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == 404);
  CHECK(missing.error().message == "namespaces \"nope\" not found");

  auto o = configmap("");
  o["metadata"].as_object().erase("name");
  o["metadata"].as_object()["generateName"] = "gen-";
  auto g = f.s->create(f.cm, "default", o);
  REQUIRE(g);
  auto name = meta_string(**g, "name");
  CHECK(name.size() == 9);
  CHECK(name.substr(0, 4) == "gen-");
}

TEST_CASE("invalid objects get 422 with causes") {
  fixture f;
  auto d = deployment("web");
  d["spec"].as_object()["template"].as_object()["metadata"].as_object()["labels"] = json::object{{"app", "other"}};
  auto r = f.s->create(f.deploy, "default", d);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == 422);
  CHECK(r.error().reason == "Invalid");
  CHECK(r.error().message.find("Deployment.apps \"web\" is invalid: spec.template.metadata.labels") == 0);
  CHECK(r.error().details.at("causes").as_array().size() == 1);

  auto bad = configmap("Bad_Name");
  auto r2 = f.s->create(f.cm, "default", bad);
  REQUIRE_FALSE(r2);
  CHECK(r2.error().code == 422);
  CHECK(r2.error().details.at("causes").at(0).at("field").as_string() == "metadata.name");
}

TEST_CASE("updates: stale resourceVersion conflicts, generation follows spec only, status is separate") {
  fixture f;
  auto d = f.s->create(f.deploy, "default", deployment("web"));
  REQUIRE(d);
  auto stale = **d;
  // A label change: new resourceVersion, same generation.
  auto o = **d;
  o["metadata"].as_object()["labels"].as_object()["tier"] = "a";
  auto u1 = f.s->update(f.deploy, "default", "web", o, false);
  REQUIRE(u1);
  CHECK(meta(*u1).at("generation").as_int64() == 1);
  CHECK(rv_of(*u1) != rv_of(*d));
  // The old resourceVersion is stale now.
  auto c = f.s->update(f.deploy, "default", "web", stale, false);
  REQUIRE_FALSE(c);
  CHECK(c.error().code == 409);
  CHECK(c.error().reason == "Conflict");
  CHECK(c.error().message ==
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your "
        "changes to the latest version and try again");
  // A spec change bumps generation; status written through the main resource is ignored.
  o = **u1;
  o["spec"].as_object()["replicas"] = 3;
  o["status"] = json::object{{"replicas", 7}};
  auto u2 = f.s->update(f.deploy, "default", "web", o, false);
  REQUIRE(u2);
  CHECK(meta(*u2).at("generation").as_int64() == 2);
  CHECK((*u2)->at("status").as_object().empty());
  // The status subresource writes status only.
  o = **u2;
  o["status"] = json::object{{"replicas", 3}};
  o["spec"].as_object()["replicas"] = 9;
  auto u3 = f.s->update(f.deploy, "default", "web", o, true);
  REQUIRE(u3);
  CHECK((*u3)->at("status").at("replicas").as_int64() == 3);
  CHECK((*u3)->at("spec").at("replicas").as_int64() == 3);
  CHECK(meta(*u3).at("generation").as_int64() == 2);
  // An update that changes nothing keeps the resourceVersion.
  auto u4 = f.s->update(f.deploy, "default", "web", **u3, false);
  REQUIRE(u4);
  CHECK(rv_of(*u4) == rv_of(*u3));
  // Missing: 404.
  auto m = f.s->update(f.deploy, "default", "nope", o, false);
  REQUIRE_FALSE(m);
  CHECK(m.error().code == 404);
  CHECK(m.error().message == "deployments.apps \"nope\" not found");
}

TEST_CASE("a finalizer holds a delete until it is removed") {
  fixture f;
  auto o = configmap("held");
  o["metadata"].as_object()["finalizers"] = json::array{"example.com/hold"};
  REQUIRE(f.s->create(f.cm, "default", o));
  bool deleted = true;
  auto r = f.s->remove(f.cm, "default", "held", delete_options{}, &deleted);
  REQUIRE(r);
  CHECK_FALSE(deleted);
  CHECK(meta(*r).contains("deletionTimestamp"));
  auto still = f.s->get(f.cm, "default", "held");
  REQUIRE(still);
  // No new finalizers while deleting.
  auto add = **still;
  add["metadata"].as_object()["finalizers"].as_array().push_back("example.com/other");
  auto bad = f.s->update(f.cm, "default", "held", add, false);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == 422);
  auto clear = **still;
  clear["metadata"].as_object().erase("finalizers");
  REQUIRE(f.s->update(f.cm, "default", "held", clear, false));
  CHECK_FALSE(f.s->get(f.cm, "default", "held"));
}

TEST_CASE("deleting an owner deletes its dependents in background and foreground, orphan keeps them") {
  fixture f;
  for (auto policy : {propagation::background, propagation::foreground, propagation::orphan}) {
    CAPTURE(static_cast<int>(policy));
    auto owner = f.s->create(f.deploy, "default", deployment("owner"));
    REQUIRE(owner);
    REQUIRE(f.s->create(f.cm, "default", with_owner(configmap("dep1"), *owner)));
    auto dep2 = f.s->create(f.cm, "default", with_owner(configmap("dep2"), *owner));
    REQUIRE(dep2);
    // A grandchild goes with its parent.
    REQUIRE(f.s->create(f.cm, "default", with_owner(configmap("grandchild"), *dep2)));
    bool deleted = false;
    REQUIRE(f.s->remove(f.deploy, "default", "owner", opts(policy), &deleted));
    CHECK(deleted);
    CHECK_FALSE(f.s->get(f.deploy, "default", "owner"));
    if (policy == propagation::orphan) {
      auto d1 = f.s->get(f.cm, "default", "dep1");
      REQUIRE(d1);
      CHECK_FALSE(meta(*d1).contains("ownerReferences"));
      CHECK(f.s->get(f.cm, "default", "grandchild"));
      for (auto n : {"grandchild", "dep1", "dep2"}) REQUIRE(f.s->remove(f.cm, "default", n));
    } else {
      CHECK_FALSE(f.s->get(f.cm, "default", "dep1"));
      CHECK_FALSE(f.s->get(f.cm, "default", "dep2"));
      CHECK_FALSE(f.s->get(f.cm, "default", "grandchild"));
    }
  }
}

TEST_CASE("foreground deletion waits for a dependent held by a finalizer") {
  fixture f;
  auto owner = f.s->create(f.deploy, "default", deployment("owner"));
  REQUIRE(owner);
  auto dep = with_owner(configmap("dep"), *owner);
  dep["metadata"].as_object()["finalizers"] = json::array{"example.com/hold"};
  REQUIRE(f.s->create(f.cm, "default", dep));
  bool deleted = true;
  auto r = f.s->remove(f.deploy, "default", "owner", opts(propagation::foreground), &deleted);
  REQUIRE(r);
  CHECK_FALSE(deleted);
  auto o = f.s->get(f.deploy, "default", "owner");
  REQUIRE(o);
  CHECK(meta(*o).at("finalizers").as_array().at(0).as_string() == "foregroundDeletion");
  auto held = f.s->get(f.cm, "default", "dep");
  REQUIRE(held);
  CHECK(meta(*held).contains("deletionTimestamp"));
  auto clear = **held;
  clear["metadata"].as_object().erase("finalizers");
  REQUIRE(f.s->update(f.cm, "default", "dep", clear, false));
  CHECK_FALSE(f.s->get(f.cm, "default", "dep"));
  CHECK_FALSE(f.s->get(f.deploy, "default", "owner"));
}

TEST_CASE("watches replay history, start with ADDED from zero, and get 410 after compaction") {
  fixture f;
  REQUIRE(f.s->create(f.cm, "default", configmap("a")));
  auto rv = f.s->resource_version();
  std::vector<std::pair<event_type, std::string>> seen;
  auto cb = [&](const change& c) { seen.emplace_back(c.type, std::string(meta_string(*c.object, "name"))); };

  auto from_zero = f.s->watch(f.cm, "default", 0, cb);
  REQUIRE(from_zero);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].first == event_type::added);
  seen.clear();
  from_zero->reset();

  REQUIRE(f.s->create(f.cm, "default", configmap("b")));
  REQUIRE(f.s->remove(f.cm, "default", "a"));
  auto resumed = f.s->watch(f.cm, "", rv, cb);
  REQUIRE(resumed);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == std::pair{event_type::added, std::string("b")});
  CHECK(seen[1] == std::pair{event_type::deleted, std::string("a")});
  // Live events follow.
  REQUIRE(f.s->create(f.cm, "kube-system", configmap("c")));
  REQUIRE(seen.size() == 3);
  CHECK(seen[2].second == "c");
  resumed->reset();
  REQUIRE(f.s->create(f.cm, "kube-system", configmap("d")));
  CHECK(seen.size() == 3);

  f.s->compact();
  auto old = f.s->watch(f.cm, "", rv, cb);
  REQUIRE_FALSE(old);
  CHECK(old.error().code == 410);
  CHECK(old.error().reason == "Expired");
  CHECK(f.s->watch(f.cm, "", f.s->resource_version(), cb));
}

TEST_CASE("history is bounded per resource") {
  store_options o;
  o.history_limit = 3;
  auto s = make_store(o);
  auto& cm = *s->find("", "v1", "configmaps");
  auto start = s->resource_version();
  for (int i = 0; i < 5; ++i) REQUIRE(s->create(cm, "default", configmap("c" + std::to_string(i))));
  auto cb = [](const change&) {};
  CHECK_FALSE(s->watch(cm, "", start, cb));
  CHECK(s->watch(cm, "", start + 2, cb));
}

TEST_CASE("list pages with limit and continue in namespace/name order") {
  fixture f;
  for (auto n : {"e", "c", "a", "d", "b"}) REQUIRE(f.s->create(f.cm, "default", configmap(n)));
  REQUIRE(f.s->create(f.cm, "kube-system", configmap("z")));
  list_options o;
  o.limit = 2;
  auto p1 = f.s->list(f.cm, "default", o);
  REQUIRE(p1.has_value());
  REQUIRE(p1->items.size() == 2);
  CHECK(meta_string(*p1->items[0], "name") == "a");
  CHECK(p1->remaining_item_count.value() == 3);
  std::vector<std::string> names;
  for (auto& i : p1->items) names.emplace_back(meta_string(*i, "name"));
  o.continue_token = p1->continue_token;
  while (!o.continue_token.empty()) {
    auto p = f.s->list(f.cm, "default", o);
    REQUIRE(p.has_value());
    for (auto& i : p->items) names.emplace_back(meta_string(*i, "name"));
    o.continue_token = p->continue_token;
  }
  CHECK(names == std::vector<std::string>{"a", "b", "c", "d", "e"});
  // The second page's count, across all namespaces, and after a delete.
  list_options every;
  every.limit = 2;
  auto a1 = f.s->list(f.cm, "", every);
  REQUIRE(a1.has_value());
  CHECK(a1->remaining_item_count.value() == 4);
  every.continue_token = a1->continue_token;
  auto a2 = f.s->list(f.cm, "", every);
  REQUIRE(a2.has_value());
  CHECK(a2->remaining_item_count.value() == 2);
  REQUIRE(f.s->remove(f.cm, "kube-system", "z", propagation::background));
  list_options two;
  two.limit = 2;
  auto p2 = f.s->list(f.cm, "default", two);
  REQUIRE(p2.has_value());
  CHECK(p2->remaining_item_count.value() == 3);
  list_options four;
  four.limit = 4;
  auto a3 = f.s->list(f.cm, "", four);
  REQUIRE(a3.has_value());
  CHECK(a3->remaining_item_count.value() == 1);
  auto all = f.s->list(f.cm, "", {});
  REQUIRE(all.has_value());
  CHECK(all->items.size() == 5);
  list_options bad;
  bad.continue_token = "garbage!";
  auto b = f.s->list(f.cm, "", bad);
  REQUIRE_FALSE(b.has_value());
  CHECK(b.error().code == 400);
}

TEST_CASE("a CRD registers its resource, sets its status, and deleting it removes its objects") {
  fixture f;
  auto crd = parse(R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "metadata":{"name":"widgets.example.com"},
    "spec":{"group":"example.com","scope":"Namespaced",
      "names":{"plural":"widgets","kind":"Widget","shortNames":["wd"]},
      "versions":[{"name":"v1","served":true,"storage":true,"subresources":{"status":{}},
        "additionalPrinterColumns":[{"name":"Size","type":"integer","jsonPath":".spec.size"}],
        "schema":{"openAPIV3Schema":{"type":"object"}}}]}})");
  auto c = f.s->create(f.crds, "", crd);
  REQUIRE(c);
  auto& status = (*c)->at("status").as_object();
  CHECK(status.at("acceptedNames").at("singular").as_string() == "widget");
  CHECK(status.at("acceptedNames").at("listKind").as_string() == "WidgetList");
  CHECK(status.at("conditions").at(1).at("type").as_string() == "Established");
  auto* w = f.s->find("example.com", "v1", "widgets");
  REQUIRE(w);
  CHECK(w->custom);
  CHECK(w->status_subresource);
  CHECK(w->columns.size() == 1);
  CHECK(w->short_names == std::vector<std::string>{"wd"});
  auto obj = parse(R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1"},"spec":{"size":1},"status":{"x":1}})");
  auto made = f.s->create(*w, "default", obj);
  REQUIRE(made);
  CHECK_FALSE((*made)->contains("status"));  // the status subresource drops status on create
  CHECK(meta(*made).at("generation").as_int64() == 1);

  bool deleted = false;
  REQUIRE(f.s->remove(f.crds, "", "widgets.example.com", delete_options{}, &deleted));
  CHECK(deleted);
  CHECK_FALSE(f.s->find("example.com", "v1", "widgets"));
  // Recreated: empty.
  REQUIRE(f.s->create(f.crds, "", crd));
  auto* w2 = f.s->find("example.com", "v1", "widgets");
  REQUIRE(w2);
  auto l = f.s->list(*w2, "", {});
  REQUIRE(l.has_value());
  CHECK(l->items.empty());
}

TEST_CASE("a CRD whose name is not plural.group is invalid") {
  fixture f;
  auto crd = parse(R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
    "metadata":{"name":"wrong.example.com"},
    "spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"widgets","kind":"Widget"},
      "versions":[{"name":"v1","served":true,"storage":true}]}})");
  auto c = f.s->create(f.crds, "", crd);
  REQUIRE_FALSE(c);
  CHECK(c.error().code == 422);
  CHECK(c.error().message.find("CustomResourceDefinition.apiextensions.k8s.io \"wrong.example.com\" is invalid") == 0);
}

TEST_CASE("deleting a namespace deletes its content, and new content is refused meanwhile") {
  fixture f;
  auto nso = parse(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}})");
  auto made = f.s->create(f.ns, "", nso);
  REQUIRE(made);
  CHECK((*made)->at("status").at("phase").as_string() == "Active");
  auto held = configmap("held");
  held["metadata"].as_object()["finalizers"] = json::array{"example.com/hold"};
  REQUIRE(f.s->create(f.cm, "team", held));
  REQUIRE(f.s->create(f.cm, "team", configmap("free")));
  REQUIRE(f.s->remove(f.ns, "", "team"));
  CHECK_FALSE(f.s->get(f.cm, "team", "free"));
  auto t = f.s->get(f.ns, "", "team");
  REQUIRE(t);
  CHECK((*t)->at("status").at("phase").as_string() == "Terminating");
  auto refused = f.s->create(f.cm, "team", configmap("new"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == 403);
  auto h = f.s->get(f.cm, "team", "held");
  REQUIRE(h);
  auto clear = **h;
  clear["metadata"].as_object().erase("finalizers");
  REQUIRE(f.s->update(f.cm, "team", "held", clear, false));
  CHECK_FALSE(f.s->get(f.ns, "", "team"));
  auto protect = f.s->remove(f.ns, "", "default");
  REQUIRE_FALSE(protect);
  CHECK(protect.error().code == 403);
}

TEST_CASE("on_change callbacks may write; nested changes arrive after, in order") {
  fixture f;
  std::vector<std::uint64_t> rvs;
  f.s->on_change([&](const change& c) {
    rvs.push_back(c.resource_version);
    if (c.type == event_type::added && meta_string(*c.object, "name") == "a")
      REQUIRE(f.s->create(f.cm, "default", configmap("b")));
  });
  REQUIRE(f.s->create(f.cm, "default", configmap("a")));
  REQUIRE(rvs.size() == 2);
  CHECK(rvs[0] < rvs[1]);
  CHECK(f.s->get(f.cm, "default", "b"));
}
