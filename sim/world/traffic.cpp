#include "sim/world/traffic.hpp"

#include <array>
#include <charconv>
#include <cstdlib>

#include "k8s/log.hpp"

namespace kubesim::world {

namespace log = canaryd::log;

namespace {

constexpr std::string_view istio_group = "networking.istio.io";
// Served versions of the Istio kinds, newest first; one object listed under several versions
// is counted once (by uid) by the planner.
constexpr std::array<std::string_view, 3> istio_versions = {"v1", "v1beta1", "v1alpha3"};
constexpr std::string_view gateway_group = "gateway.networking.k8s.io";
constexpr std::array<std::string_view, 2> gateway_versions = {"v1", "v1beta1"};

constexpr std::string_view knative_group = "serving.knative.dev";

bool routing_relevant(const resource_info& r) {
  if (r.group == knative_group) return r.resource == "services";
  if (r.group == istio_group) return r.resource == "virtualservices" || r.resource == "destinationrules";
  if (r.group == gateway_group)
    return r.resource == "gateways" || r.resource == "httproutes" || r.resource == "referencegrants";
  if (r.group.empty()) return r.resource == "services" || r.resource == "pods" || r.resource == "namespaces";
  if (r.group == "apps")
    return r.resource == "deployments" || r.resource == "replicasets" || r.resource == "statefulsets" ||
           r.resource == "daemonsets";
  return r.group == "apiextensions.k8s.io" && r.resource == "customresourcedefinitions";
}

void list_into(const store& s, std::string_view group, std::string_view version, std::string_view resource,
               std::vector<object_ptr>& out) {
  const resource_info* r = s.find(group, version, resource);
  if (!r) return;
  auto l = s.list(*r, "", list_options{});
  if (!l) {
    log::warn("traffic: cannot list", {{"group", r->group}, {"resource", r->resource}, {"error", l.error().message}});
    return;
  }
  out.insert(out.end(), l->items.begin(), l->items.end());
}

}  // namespace

std::shared_ptr<traffic_world> traffic_world::create(store& s, double default_rps) {
  auto w = std::make_shared<traffic_world>(s, default_rps);
  // Objects that exist already (none when kubesim starts) are counted once here.
  for (const auto* r : s.resources()) {
    auto l = s.list(*r, "", list_options{});
    if (l && !l->items.empty()) w->objects_by_resource_[r->group + "/" + r->resource] += static_cast<std::int64_t>(l->items.size());
  }
  std::weak_ptr<traffic_world> weak = w;
  s.on_change([weak](const change& c) {
    if (auto self = weak.lock()) self->on_change(c);
  });
  return w;
}

void traffic_world::on_change(const change& c) {
  if (!c.resource) return;
  auto key = c.resource->group + "/" + c.resource->resource;
  if (c.type == event_type::added) ++objects_by_resource_[key];
  if (c.type == event_type::deleted) {
    auto& n = objects_by_resource_[key];
    if (n > 0) --n;
  }
  if (routing_relevant(*c.resource)) dirty_ = true;
  const bool entry = (c.resource->group.empty() && c.resource->resource == "services") ||
                     (c.resource->group == gateway_group && c.resource->resource == "gateways") ||
                     (c.resource->group == knative_group && c.resource->resource == "services");
  if (entry && c.object) {
    const auto* meta = c.object->if_contains("metadata");
    const auto* m = meta ? meta->if_object() : nullptr;
    std::string key = (c.resource->group == knative_group ? "ksvc" : c.resource->resource) + ":";
    if (m) {
      const auto* ns = m->if_contains("namespace");
      const auto* name = m->if_contains("name");
      if (ns && ns->is_string()) key += std::string(ns->get_string());
      key += '/';
      if (name && name->is_string()) key += std::string(name->get_string());
    }
    // A Service or Gateway asks for traffic with kubesim.dev/rps above 0 (or unreadable: the plan reports it).
    const auto* ann = m ? m->if_contains("annotations") : nullptr;
    const auto* rps = ann && ann->is_object() ? ann->get_object().if_contains(annotations::rps) : nullptr;
    bool asks = rps != nullptr;
    if (rps && rps->is_string()) {
      const std::string text(rps->get_string());
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (!text.empty() && end && *end == '\0' && v <= 0) asks = false;
    }
    if (asks && c.type != event_type::deleted)
      rps_services_.insert(key);
    else
      rps_services_.erase(key);
  }
}

void traffic_world::rebuild() {
  cluster_objects objs;
  objs.default_rps = default_rps_;
  list_into(store_, "", "v1", "services", objs.services);
  list_into(store_, "", "v1", "pods", objs.pods);
  list_into(store_, "apps", "v1", "replicasets", objs.replica_sets);
  list_into(store_, "apps", "v1", "deployments", objs.deployments);
  list_into(store_, "apps", "v1", "statefulsets", objs.stateful_sets);
  list_into(store_, "apps", "v1", "daemonsets", objs.daemon_sets);
  for (auto v : istio_versions) {
    list_into(store_, istio_group, v, "virtualservices", objs.virtual_services);
    list_into(store_, istio_group, v, "destinationrules", objs.destination_rules);
  }
  for (auto v : gateway_versions) {
    list_into(store_, gateway_group, v, "gateways", objs.gateways);
    list_into(store_, gateway_group, v, "httproutes", objs.http_routes);
    list_into(store_, gateway_group, v, "referencegrants", objs.reference_grants);
  }
  list_into(store_, "", "v1", "namespaces", objs.namespaces);
  list_into(store_, knative_group, "v1", "services", objs.knative_services);
  plan_ = plan_traffic(objs);
  counters_.retain(plan_);
  ++rebuilds_;
  // Log each problem once while it persists (a plan is rebuilt on every routing change).
  std::set<std::string> now(plan_.problems.begin(), plan_.problems.end());
  for (const auto& p : now)
    if (!logged_problems_.contains(p)) log::warn("traffic: " + p);
  logged_problems_ = std::move(now);
  log::debug("traffic: plan rebuilt", {{"flows", plan_.flows.size()}, {"pods", plan_.pods.size()}});
}

void traffic_world::tick(double seconds) {
  if (dirty_ && (default_rps_ > 0 || !rps_services_.empty() || !plan_.flows.empty())) {
    dirty_ = false;
    rebuild();
  }
  counters_.advance(plan_, seconds);
  ++ticks_;
  simulated_seconds_ += seconds;
}

std::string traffic_world::metrics_text() const {
  std::string out;
  out.reserve(4096);
  counters_.render(out);
  auto number = [&out](auto v) {
    char buf[40];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc() ? p : buf);
    out += '\n';
  };
  out += "# HELP kubesim_objects Objects held by kubesim's store.\n# TYPE kubesim_objects gauge\nkubesim_objects ";
  number(static_cast<std::uint64_t>(store_.object_count()));
  out += "# HELP kubesim_resource_objects Objects per resource (counted from the store's changes).\n";
  out += "# TYPE kubesim_resource_objects gauge\n";
  for (const auto& [k, n] : objects_by_resource_) {
    auto slash = k.find('/');
    out += "kubesim_resource_objects{group=\"";
    append_label_value(out, std::string_view(k).substr(0, slash));
    out += "\",resource=\"";
    append_label_value(out, std::string_view(k).substr(slash + 1));
    out += "\"} ";
    number(n);
  }
  out += "# HELP kubesim_resource_version The store's latest resourceVersion.\n# TYPE kubesim_resource_version gauge\n";
  out += "kubesim_resource_version ";
  number(store_.resource_version());
  out += "# HELP kubesim_traffic_flows Request flows (service x request class) being simulated.\n";
  out += "# TYPE kubesim_traffic_flows gauge\nkubesim_traffic_flows ";
  number(static_cast<std::uint64_t>(plan_.flows.size()));
  out += "# HELP kubesim_traffic_requests_total Simulated requests, routed or not.\n";
  out += "# TYPE kubesim_traffic_requests_total counter\nkubesim_traffic_requests_total ";
  number(counters_.requests_total());
  out += "# HELP kubesim_traffic_plan_rebuilds_total Traffic plans rebuilt after routing changes.\n";
  out += "# TYPE kubesim_traffic_plan_rebuilds_total counter\nkubesim_traffic_plan_rebuilds_total ";
  number(rebuilds_);
  out += "# HELP kubesim_traffic_seconds_total Simulated traffic time.\n";
  out += "# TYPE kubesim_traffic_seconds_total counter\nkubesim_traffic_seconds_total ";
  number(simulated_seconds_);
  return out;
}

}  // namespace kubesim::world
