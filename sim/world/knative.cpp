#include "sim/world/knative.hpp"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <set>
#include <string>
#include <utility>

#include "k8s/log.hpp"
#include "sim/world/controllers.hpp"

namespace kubesim::world {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = canaryd::log;
using wall = std::chrono::system_clock;

constexpr std::string_view api_version = "serving.knative.dev/v1";
// A drain reconciles at most this many rounds before yielding to the io_context.
constexpr int max_rounds = 64;

const json::object* obj_at(const json::object* o, std::string_view k) {
  if (!o) return nullptr;
  auto* v = o->if_contains(k);
  return v ? v->if_object() : nullptr;
}
const json::array* arr_at(const json::object* o, std::string_view k) {
  if (!o) return nullptr;
  auto* v = o->if_contains(k);
  return v ? v->if_array() : nullptr;
}
std::string str_at(const json::object* o, std::string_view k) {
  if (!o) return {};
  auto* v = o->if_contains(k);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}
std::int64_t int_at(const json::object* o, std::string_view k) {
  if (!o) return 0;
  auto* v = o->if_contains(k);
  if (!v) return 0;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return 0;
}
const json::object* meta(const json::object& o) { return obj_at(&o, "metadata"); }
std::string label(const json::object& o, std::string_view k) { return str_at(obj_at(meta(o), "labels"), k); }

std::string rfc3339(wall::time_point t) {
  const std::time_t tt = wall::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json::object owner_ref(const json::object& owner, std::string_view kind) {
  return json::object{{"apiVersion", api_version},
                      {"kind", kind},
                      {"name", str_at(meta(owner), "name")},
                      {"uid", str_at(meta(owner), "uid")},
                      {"controller", true},
                      {"blockOwnerDeletion", true}};
}

// A condition as Knative writes it; lastTransitionTime kept from `previous` when the status is
// unchanged, so a reconcile that changes nothing writes nothing.
json::object condition(const json::array* previous, std::string_view type, std::string_view status,
                       std::string_view reason = {}, std::string_view message = {}) {
  json::object c{{"type", type}, {"status", status}};
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  std::string when = rfc3339(wall::now());
  if (previous)
    for (const auto& p : *previous)
      if (p.is_object() && str_at(&p.get_object(), "type") == type && str_at(&p.get_object(), "status") == status)
        when = str_at(&p.get_object(), "lastTransitionTime");
  c["lastTransitionTime"] = when;
  return c;
}

std::string ready_status(const json::object& o) {
  if (auto* conds = arr_at(obj_at(&o, "status"), "conditions"))
    for (const auto& c : *conds)
      if (c.is_object() && str_at(&c.get_object(), "type") == "Ready") return str_at(&c.get_object(), "status");
  return "Unknown";
}

// A PodSpec from a RevisionSpec: Knative's own fields dropped, unnamed containers named as
// Knative names them.
json::object pod_spec(const json::object* revision_spec) {
  json::object spec = revision_spec ? *revision_spec : json::object{};
  for (auto k : {"containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds"})
    spec.erase(k);
  if (auto* cs = spec.if_contains("containers"); cs && cs->is_array()) {
    auto& arr = cs->get_array();
    for (std::size_t i = 0; i < arr.size(); ++i)
      if (arr[i].is_object() && str_at(&arr[i].get_object(), "name").empty())
        arr[i].get_object()["name"] = arr.size() == 1 ? std::string("user-container") : "user-container-" + std::to_string(i);
  } else {
    spec["containers"] = json::array{json::object{{"name", "user-container"}, {"image", "kubesim/knative-app"}}};
  }
  return spec;
}

int container_port(const json::object& pod_spec_obj) {
  if (auto* cs = arr_at(&pod_spec_obj, "containers"); cs && !cs->empty() && cs->front().is_object())
    if (auto* ports = arr_at(&cs->front().get_object(), "ports"); ports && !ports->empty() && ports->front().is_object())
      if (auto p = int_at(&ports->front().get_object(), "containerPort"); p > 0) return static_cast<int>(p);
  return 8080;
}

void default_traffic(json::object& o) {
  auto* spec = o.if_contains("spec");
  auto* traffic = spec && spec->is_object() ? spec->as_object().if_contains("traffic") : nullptr;
  if (!traffic || !traffic->is_array()) return;
  for (auto& t : traffic->as_array()) {
    if (!t.is_object() || t.as_object().contains("latestRevision")) continue;
    t.as_object()["latestRevision"] = str_at(&t.as_object(), "revisionName").empty();
  }
}

}  // namespace

class knative_serving::impl : public std::enable_shared_from_this<impl> {
 public:
  impl(asio::any_io_executor ex, store& s) : ex_(std::move(ex)), store_(s) {}

  void start() {
    std::weak_ptr<impl> weak = weak_from_this();
    store_.on_change([weak](const change& c) {
      if (auto self = weak.lock()) self->observe(c);
    });
    // Knative's defaulting webhook, for what a client writes of traffic: each spec.traffic entry
    // of a Service or Route without latestRevision gets latestRevision = (revisionName == ""),
    // the only value the CRD's description allows ("must be true if RevisionName is empty; it
    // must be false when RevisionName is non-empty").
    for (const char* resource : {"services", "routes"}) store_.on_admission(std::string(knative::group), resource, default_traffic);
    if (const auto* r = store_.find(knative::group, "v1", "services")) {
      if (auto all = store_.list(*r, "", list_options{}))
        for (const auto& o : all->items) mark(str_at(meta(*o), "namespace"), str_at(meta(*o), "name"));
    }
  }
  void stop() { stopped_ = true; }

 private:
  void observe(const change& c) {
    if (stopped_ || !c.resource || !c.object) return;
    const auto& r = *c.resource;
    const json::object& o = *c.object;
    const std::string ns = str_at(meta(o), "namespace");
    if (r.group == knative::group) {
      if (r.resource == "services") mark(ns, str_at(meta(o), "name"));
      else if (auto s = label(o, knative::service_label); !s.empty()) mark(ns, s);
      return;
    }
    if ((r.group == "apps" && r.resource == "deployments") || (r.group.empty() && r.resource == "services")) {
      if (auto s = label(o, knative::service_label); !s.empty()) mark(ns, s);
    }
  }

  void mark(const std::string& ns, const std::string& name) {
    if (name.empty()) return;
    dirty_.insert(ns + "/" + name);
    if (scheduled_) return;
    scheduled_ = true;
    asio::post(ex_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->drain();
    });
  }

  void drain() {
    scheduled_ = false;
    if (stopped_) return;
    for (int round = 0; round < max_rounds && !dirty_.empty(); ++round) {
      auto keys = std::move(dirty_);
      dirty_.clear();
      for (const auto& k : keys) {
        auto slash = k.find('/');
        try {
          reconcile(k.substr(0, slash), k.substr(slash + 1));
        } catch (const std::exception& e) {
          log::error("knative: reconcile failed", {{"service", k}, {"error", e.what()}});
        }
      }
    }
    if (!dirty_.empty() && !scheduled_) {
      scheduled_ = true;
      asio::post(ex_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->drain();
      });
    }
  }

  object_ptr get(const resource_info* r, const std::string& ns, const std::string& name) {
    if (!r) return nullptr;
    auto g = store_.get(*r, ns, name);
    return g ? *g : nullptr;
  }

  void warn(std::string_view what, const api_error& e) {
    log::warn("knative: " + std::string(what), {{"error", e.message}});
  }

  // Creates `desired`, or updates the stored object's spec when it differs. Returns the stored object.
  object_ptr apply_spec(const resource_info* r, const std::string& ns, const std::string& name, json::object desired) {
    auto existing = get(r, ns, name);
    if (!existing) {
      auto c = store_.create(*r, ns, std::move(desired));
      if (!c) {
        warn("create " + r->resource + " " + ns + "/" + name, c.error());
        return nullptr;
      }
      return *c;
    }
    const json::value* want = desired.if_contains("spec");
    const json::value* have = existing->if_contains("spec");
    if (want && (!have || *have != *want)) {
      json::object next = *existing;
      next["spec"] = *want;
      auto u = store_.update(*r, ns, name, std::move(next), false);
      if (!u) {
        warn("update " + r->resource + " " + ns + "/" + name, u.error());
        return existing;
      }
      return *u;
    }
    return existing;
  }

  object_ptr set_status(const resource_info* r, const object_ptr& o, json::object status) {
    const json::value* have = o->if_contains("status");
    if (have && have->is_object() && have->get_object() == status) return o;
    json::object next = *o;
    next["status"] = std::move(status);
    auto u = store_.update(*r, str_at(meta(*o), "namespace"), str_at(meta(*o), "name"), std::move(next), true);
    if (!u) {
      warn("status of " + r->resource + " " + str_at(meta(*o), "name"), u.error());
      return o;
    }
    return *u;
  }

  void reconcile(const std::string& ns, const std::string& name) {
    const resource_info* ksvc_r = store_.find(knative::group, "v1", "services");
    const resource_info* cfg_r = store_.find(knative::group, "v1", "configurations");
    const resource_info* rev_r = store_.find(knative::group, "v1", "revisions");
    const resource_info* route_r = store_.find(knative::group, "v1", "routes");
    const resource_info* deploy_r = store_.find("apps", "v1", "deployments");
    const resource_info* svc_r = store_.find("", "v1", "services");
    if (!ksvc_r || !cfg_r || !rev_r || !route_r) return;
    auto ksvc = get(ksvc_r, ns, name);
    if (!ksvc) return;  // its Configuration, Route and Revisions go with it (ownerReferences)
    if (meta(*ksvc)->contains("deletionTimestamp")) return;
    const json::object* kspec = obj_at(ksvc.get(), "spec");
    const json::object* ktemplate = obj_at(kspec, "template");

    // Configuration <name>: the Service's template.
    json::object cfg_desired{
        {"apiVersion", api_version},
        {"kind", "Configuration"},
        {"metadata",
         {{"name", name},
          {"namespace", ns},
          {"labels", {{knative::service_label, name}}},
          {"ownerReferences", json::array{owner_ref(*ksvc, "Service")}}}},
        {"spec", {{"template", ktemplate ? json::value(*ktemplate) : json::value(json::object{})}}}};
    auto cfg = apply_spec(cfg_r, ns, name, std::move(cfg_desired));
    if (!cfg) return;

    // The Revision of the Configuration's current generation.
    const std::int64_t generation = std::max<std::int64_t>(1, int_at(meta(*cfg), "generation"));
    const json::object* ctemplate = obj_at(obj_at(cfg.get(), "spec"), "template");
    std::string rev_name = str_at(obj_at(ctemplate, "metadata"), "name");
    if (rev_name.empty()) {
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "-%05lld", static_cast<long long>(generation));
      rev_name = name + suffix;
    }
    if (!get(rev_r, ns, rev_name)) {
      json::object labels;
      if (auto* l = obj_at(obj_at(ctemplate, "metadata"), "labels")) labels = *l;
      labels[knative::configuration_label] = name;
      labels[knative::generation_label] = std::to_string(generation);
      labels[knative::service_label] = name;
      json::object md{{"name", rev_name},
                      {"namespace", ns},
                      {"labels", std::move(labels)},
                      {"ownerReferences", json::array{owner_ref(*cfg, "Configuration")}}};
      if (auto* a = obj_at(obj_at(ctemplate, "metadata"), "annotations")) md["annotations"] = *a;
      json::object rev{{"apiVersion", api_version},
                       {"kind", "Revision"},
                       {"metadata", std::move(md)},
                       {"spec", obj_at(ctemplate, "spec") ? json::value(*obj_at(ctemplate, "spec")) : json::value(json::object{})}};
      auto c = store_.create(*rev_r, ns, std::move(rev));
      if (!c) warn("create revision " + ns + "/" + rev_name, c.error());
    }

    // Every Revision of the Configuration: its Deployment, private Service and status.
    list_options lo;
    lo.match = [&name](const json::object& o) { return label(o, knative::configuration_label) == name; };
    auto revs = store_.list(*rev_r, ns, lo);
    std::string latest_ready;
    std::int64_t latest_ready_gen = -1;
    std::string created_status = "Unknown";
    std::string created_reason, created_message;
    std::set<std::string> existing_revisions;
    if (revs) {
      for (const auto& rv : revs->items) {
        auto r = reconcile_revision(rev_r, deploy_r, svc_r, rv);
        const std::string rn = str_at(meta(*r), "name");
        existing_revisions.insert(rn);
        const std::string st = ready_status(*r);
        const std::int64_t g = std::stoll("0" + label(*r, knative::generation_label));
        if (st == "True" && g > latest_ready_gen) {
          latest_ready_gen = g;
          latest_ready = rn;
        }
        if (rn == rev_name) {
          created_status = st;
          if (auto* conds = arr_at(obj_at(r.get(), "status"), "conditions"))
            for (const auto& c : *conds)
              if (c.is_object() && str_at(&c.get_object(), "type") == "Ready") {
                created_reason = str_at(&c.get_object(), "reason");
                created_message = str_at(&c.get_object(), "message");
              }
        }
      }
    }

    // Configuration status.
    const json::array* cfg_conds = arr_at(obj_at(cfg.get(), "status"), "conditions");
    json::object cfg_status{{"observedGeneration", generation},
                            {"latestCreatedRevisionName", rev_name}};
    if (!latest_ready.empty()) cfg_status["latestReadyRevisionName"] = latest_ready;
    if (created_status == "True") {
      cfg_status["conditions"] = json::array{condition(cfg_conds, "Ready", "True")};
    } else if (created_status == "False") {
      cfg_status["conditions"] = json::array{condition(
          cfg_conds, "Ready", "False", "RevisionFailed",
          "Revision \"" + rev_name + "\" failed with message: " + created_message + ".")};
    } else {
      cfg_status["conditions"] = json::array{condition(cfg_conds, "Ready", "Unknown")};
    }
    cfg = set_status(cfg_r, cfg, std::move(cfg_status));

    // Route <name>: the Service's traffic, or everything to the latest ready revision.
    json::array traffic;
    if (auto* t = arr_at(kspec, "traffic"); t && !t->empty()) traffic = *t;
    else traffic.push_back(json::object{{"latestRevision", true}, {"percent", 100}});
    json::object route_desired{
        {"apiVersion", api_version},
        {"kind", "Route"},
        {"metadata",
         {{"name", name},
          {"namespace", ns},
          {"labels", {{knative::service_label, name}}},
          {"ownerReferences", json::array{owner_ref(*ksvc, "Service")}}}},
        {"spec", {{"traffic", traffic}}}};
    auto route = apply_spec(route_r, ns, name, std::move(route_desired));
    if (!route) return;
    const json::object* old_route_status = obj_at(route.get(), "status");
    const json::array* route_conds = arr_at(old_route_status, "conditions");
    json::array resolved;
    std::string route_problem, route_reason;
    for (const auto& tv : traffic) {
      if (!tv.is_object()) continue;
      const auto& t = tv.get_object();
      std::string rn = str_at(&t, "revisionName");
      const json::value* lr = t.if_contains("latestRevision");
      const bool latest = rn.empty() && (!lr || (lr->is_bool() && lr->get_bool()));
      if (latest) {
        rn = latest_ready;
        if (rn.empty()) {
          route_reason = "RevisionMissing";
          route_problem = "Configuration \"" + name + "\" does not have any ready Revision.";
          break;
        }
      } else if (!existing_revisions.contains(rn)) {
        route_reason = "RevisionMissing";
        route_problem = "Revision \"" + rn + "\" referenced in traffic not found.";
        break;
      }
      json::object e{{"revisionName", rn}, {"latestRevision", latest}, {"percent", int_at(&t, "percent")}};
      if (auto tag = str_at(&t, "tag"); !tag.empty()) e["tag"] = tag;
      resolved.push_back(std::move(e));
    }
    const std::string url = "http://" + name + "." + ns + ".example.com";
    json::object route_status{{"observedGeneration", int_at(meta(*route), "generation")}, {"url", url},
                              {"address", {{"url", "http://" + name + "." + ns + ".svc.cluster.local"}}}};
    if (route_problem.empty()) {
      route_status["traffic"] = std::move(resolved);
      route_status["conditions"] = json::array{condition(route_conds, "AllTrafficAssigned", "True"),
                                               condition(route_conds, "Ready", "True")};
    } else {
      if (auto* old = arr_at(old_route_status, "traffic")) route_status["traffic"] = *old;
      route_status["conditions"] = json::array{condition(route_conds, "AllTrafficAssigned", "False", route_reason, route_problem),
                                               condition(route_conds, "Ready", "False", route_reason, route_problem)};
    }
    route = set_status(route_r, route, std::move(route_status));

    // The Service's status: its Configuration's and Route's.
    const json::object* rs = obj_at(route.get(), "status");
    const json::object* cs = obj_at(cfg.get(), "status");
    const json::array* ksvc_conds = arr_at(obj_at(ksvc.get(), "status"), "conditions");
    const std::string cfg_ready = ready_status(*cfg);
    const std::string route_ready = ready_status(*route);
    const std::string all = cfg_ready == "False" || route_ready == "False" ? "False"
                            : cfg_ready == "True" && route_ready == "True" ? "True"
                                                                           : "Unknown";
    json::object ks{{"observedGeneration", int_at(meta(*ksvc), "generation")},
                    {"latestCreatedRevisionName", str_at(cs, "latestCreatedRevisionName")},
                    {"url", url},
                    {"address", {{"url", "http://" + name + "." + ns + ".svc.cluster.local"}}},
                    {"conditions", json::array{condition(ksvc_conds, "ConfigurationsReady", cfg_ready),
                                               condition(ksvc_conds, "Ready", all),
                                               condition(ksvc_conds, "RoutesReady", route_ready)}}};
    if (auto lr = str_at(cs, "latestReadyRevisionName"); !lr.empty()) ks["latestReadyRevisionName"] = lr;
    if (auto* t = arr_at(rs, "traffic")) ks["traffic"] = *t;
    set_status(ksvc_r, ksvc, std::move(ks));
  }

  // A Revision's Deployment and private Service (created once: revisions are immutable) and its
  // status from the Deployment's.
  object_ptr reconcile_revision(const resource_info* rev_r, const resource_info* deploy_r, const resource_info* svc_r,
                                const object_ptr& rev) {
    const std::string ns = str_at(meta(*rev), "namespace");
    const std::string rn = str_at(meta(*rev), "name");
    json::object pod_labels;
    if (auto* l = obj_at(meta(*rev), "labels")) pod_labels = *l;
    pod_labels[knative::revision_label] = rn;
    pod_labels["app"] = rn;
    json::object owner_labels{{knative::revision_label, rn},
                              {knative::service_label, label(*rev, knative::service_label)},
                              {knative::configuration_label, label(*rev, knative::configuration_label)}};
    json::object spec = pod_spec(obj_at(rev.get(), "spec"));
    const int port = container_port(spec);
    long long deadline = 600;
    if (auto a = str_at(obj_at(meta(*rev), "annotations"), knative::progress_deadline_annotation); !a.empty()) {
      std::chrono::nanoseconds d{};
      if (parse_go_duration(a, d)) deadline = std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(d).count());
    }
    const std::string deploy_name = rn + "-deployment";
    auto deploy = get(deploy_r, ns, deploy_name);
    if (!deploy && deploy_r) {
      json::object tmeta{{"labels", pod_labels}};
      if (auto* a = obj_at(meta(*rev), "annotations")) tmeta["annotations"] = *a;
      json::object d{{"apiVersion", "apps/v1"},
                     {"kind", "Deployment"},
                     {"metadata",
                      {{"name", deploy_name},
                       {"namespace", ns},
                       {"labels", owner_labels},
                       {"ownerReferences", json::array{owner_ref(*rev, "Revision")}}}},
                     {"spec",
                      {{"replicas", 1},
                       {"progressDeadlineSeconds", deadline},
                       {"selector", {{"matchLabels", {{knative::revision_label, rn}}}}},
                       {"template", {{"metadata", std::move(tmeta)}, {"spec", spec}}}}}};
      auto c = store_.create(*deploy_r, ns, std::move(d));
      if (c) deploy = *c;
      else warn("create deployment " + ns + "/" + deploy_name, c.error());
    }
    if (svc_r && !get(svc_r, ns, rn + "-private")) {
      json::object labels = owner_labels;
      labels[knative::service_type_label] = "Private";
      json::object s{{"apiVersion", "v1"},
                     {"kind", "Service"},
                     {"metadata",
                      {{"name", rn + "-private"},
                       {"namespace", ns},
                       {"labels", std::move(labels)},
                       {"ownerReferences", json::array{owner_ref(*rev, "Revision")}}}},
                     {"spec",
                      {{"selector", {{knative::revision_label, rn}}},
                       {"ports", json::array{json::object{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", port}}}}}}};
      auto c = store_.create(*svc_r, ns, std::move(s));
      if (!c) warn("create service " + ns + "/" + rn + "-private", c.error());
    }
    // Status from the Deployment.
    const json::object* ds = deploy ? obj_at(deploy.get(), "status") : nullptr;
    bool deadline_exceeded = false;
    if (auto* conds = arr_at(ds, "conditions"))
      for (const auto& c : *conds)
        if (c.is_object() && str_at(&c.get_object(), "type") == "Progressing" &&
            str_at(&c.get_object(), "reason") == "ProgressDeadlineExceeded")
          deadline_exceeded = true;
    const std::int64_t available = int_at(ds, "availableReplicas");
    const json::array* prev = arr_at(obj_at(rev.get(), "status"), "conditions");
    json::array conds;
    if (available > 0) {
      conds = {condition(prev, "ContainerHealthy", "True"), condition(prev, "Ready", "True"),
               condition(prev, "ResourcesAvailable", "True")};
    } else if (deadline_exceeded) {
      const std::string msg = "Initial scale was never achieved";
      conds = {condition(prev, "ContainerHealthy", "Unknown"),
               condition(prev, "Ready", "False", "ProgressDeadlineExceeded", msg),
               condition(prev, "ResourcesAvailable", "False", "ProgressDeadlineExceeded", msg)};
    } else {
      conds = {condition(prev, "ContainerHealthy", "Unknown"), condition(prev, "Ready", "Unknown", "Deploying"),
               condition(prev, "ResourcesAvailable", "Unknown", "Deploying")};
    }
    json::object status{{"observedGeneration", int_at(meta(*rev), "generation")},
                        {"actualReplicas", available},
                        {"desiredReplicas", 1},
                        {"conditions", std::move(conds)}};
    return set_status(rev_r, rev, std::move(status));
  }

  asio::any_io_executor ex_;
  store& store_;
  std::set<std::string> dirty_;
  bool scheduled_ = false;
  bool stopped_ = false;
};

knative_serving::knative_serving(asio::any_io_executor ex, store& s) : impl_(std::make_shared<impl>(std::move(ex), s)) {
  impl_->start();
}

knative_serving::~knative_serving() { impl_->stop(); }

}  // namespace kubesim::world
