#include "core/knative.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <chrono>
#include <utility>

namespace canaryd::core {

namespace {

namespace json = boost::json;

template <class T>
service_result<T> fail(std::string message) {
  return service_result<T>(boost::system::in_place_error, std::move(message));
}

std::optional<json::value> parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v;
}

const json::object* obj_at(const json::object* o, std::string_view k) {
  if (!o) return nullptr;
  const auto* v = o->if_contains(k);
  return v ? v->if_object() : nullptr;
}

std::string str_at(const json::object* o, std::string_view k) {
  if (!o) return {};
  const auto* v = o->if_contains(k);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string ksvc_id(const canary& c) { return c.spec.target_ref.name + "." + c.metadata.namespace_; }

// spec.traffic as Flagger writes it: the latest revision gets the canary's share, the primary
// revision the primary's.
json::array traffic_block(const std::string& primary_revision, int primary, int canary_weight) {
  return json::array{json::object{{"latestRevision", true}, {"percent", canary_weight}},
                     json::object{{"revisionName", primary_revision}, {"percent", primary}}};
}

json::object& metadata_of(json::object& o) {
  auto& m = o["metadata"];
  if (!m.is_object()) m.emplace_object();
  return m.as_object();
}

void set_annotation(json::object& o, std::string_view key, const std::string& value) {
  auto& meta = metadata_of(o);
  auto& a = meta["annotations"];
  if (!a.is_object()) a.emplace_object();
  a.as_object()[key] = value;
}

// spec.traffic as Knative's webhook stores it: an entry without latestRevision gets
// `latestRevision: revisionName == ""` (TrafficTarget.SetDefaults). Comparing in this form keeps a
// real cluster's defaulted copy of what canaryd wrote from looking like a change.
json::value defaulted(const json::value& traffic) {
  json::value out = traffic;
  if (!out.is_array()) return out;
  for (auto& e : out.as_array()) {
    if (!e.is_object()) continue;
    auto& eo = e.as_object();
    if (eo.contains("latestRevision")) continue;
    const auto* rn = eo.if_contains("revisionName");
    eo["latestRevision"] = !rn || (rn->is_string() && rn->get_string().empty());
  }
  return out;
}

// Sets spec.traffic; true when it changed (after Knative's defaulting).
bool set_traffic(json::object& o, json::array traffic) {
  auto& spec = o["spec"];
  if (!spec.is_object()) spec.emplace_object();
  auto& t = spec.as_object()["traffic"];
  if (defaulted(t) == defaulted(traffic)) return false;
  t = std::move(traffic);
  return true;
}

}  // namespace

knative_service_state read_knative_service(std::string_view ksvc_json) {
  knative_service_state s;
  auto v = parse(ksvc_json);
  if (!v) {
    s.parse_error = "the Knative Service is not a JSON object";
    return s;
  }
  const json::object& o = v->as_object();
  const json::object* meta = obj_at(&o, "metadata");
  if (const auto* a = obj_at(meta, "annotations")) {
    if (const auto* p = a->if_contains(knative_primary_revision_annotation); p && p->is_string())
      s.primary_revision = std::string(p->get_string());
  }
  const json::object* status = obj_at(&o, "status");
  s.latest_created = str_at(status, "latestCreatedRevisionName");
  if (const auto* t = status ? status->if_contains("traffic") : nullptr; t && t->is_array()) {
    for (const auto& e : t->get_array()) {
      if (!e.is_object()) continue;
      const auto& eo = e.get_object();
      knative_traffic_target tt;
      tt.revision_name = str_at(&eo, "revisionName");
      if (const auto* lr = eo.if_contains("latestRevision"); lr && lr->is_bool()) tt.latest_revision = lr->get_bool();
      if (const auto* p = eo.if_contains("percent"); p && p->is_number()) tt.percent = p->to_number<long long>();
      s.status_traffic.push_back(std::move(tt));
    }
  }
  return s;
}

knative_revision_state read_knative_revision(std::string_view revision_json) {
  knative_revision_state r;
  auto v = parse(revision_json);
  if (!v) {
    r.parse_error = "the Knative Revision is not a JSON object";
    return r;
  }
  const json::object* status = obj_at(&v->as_object(), "status");
  const auto* conds = status ? status->if_contains("conditions") : nullptr;
  if (conds && conds->is_array()) {
    for (const auto& c : conds->get_array()) {
      if (!c.is_object() || str_at(&c.get_object(), "type") != "Ready") continue;
      r.ready = str_at(&c.get_object(), "status");
      r.reason = str_at(&c.get_object(), "reason");
      r.message = str_at(&c.get_object(), "message");
    }
  }
  return r;
}

readiness knative_revision_readiness(const canary& c, const std::string& revision, const knative_revision_state* rev,
                                     wall_time now) {
  const std::string& ns = c.metadata.namespace_;
  if (rev == nullptr) {
    return readiness::waiting(fmt::format("Knative Revision {}.{} get query error: revisions.serving.knative.dev \"{}\" not found",
                                          revision, ns, revision));
  }
  if (rev->parse_error) return readiness::waiting(*rev->parse_error);
  if (rev->ready == "True") return readiness::ready();
  std::string why = fmt::format("Knative Revision {}.{} is not ready", revision, ns);
  if (!rev->reason.empty()) why += ": " + rev->reason;
  if (!rev->message.empty()) why += ": " + rev->message;
  if (rev->ready == "False") return readiness::failed(why);
  const int deadline = c.progress_deadline_seconds();
  if (c.status.last_transition_time && *c.status.last_transition_time + std::chrono::seconds(deadline) < now) {
    return readiness::failed(fmt::format("{}: exceeded its progressDeadlineSeconds: {}", why, deadline));
  }
  return readiness::waiting(why);
}

service_result<traffic_routes> knative_read_routes(const canary& c, std::string_view ksvc_json) {
  const auto s = read_knative_service(ksvc_json);
  if (s.parse_error) return fail<traffic_routes>(*s.parse_error);
  if (!s.primary_revision) return fail<traffic_routes>(fmt::format("Knative Service {} annotation not found", ksvc_id(c)));
  const knative_traffic_target* canary_entry = nullptr;
  const knative_traffic_target* primary_entry = nullptr;  // naming the primary, not the latest
  const knative_traffic_target* first_naming = nullptr;   // Flagger's pick
  for (const auto& t : s.status_traffic) {
    const bool latest = t.latest_revision.value_or(false);
    if (latest && !canary_entry) canary_entry = &t;
    if (t.revision_name != *s.primary_revision) continue;
    if (!first_naming) first_naming = &t;
    if (!latest && !primary_entry) primary_entry = &t;
  }
  // Right after a promotion (the annotation moved to the latest revision, spec.traffic not yet
  // rewritten) only the latest revision's entry names the primary: Flagger's pick then.
  if (!primary_entry) primary_entry = first_naming;
  if (!canary_entry || !primary_entry) {
    return fail<traffic_routes>(fmt::format("Knative Service {} traffic spec invalid", ksvc_id(c)));
  }
  if (!primary_entry->percent) {
    return fail<traffic_routes>(fmt::format("Knative Service {} primary revision traffic percent does not exist", ksvc_id(c)));
  }
  if (!canary_entry->percent) {
    return fail<traffic_routes>(fmt::format("Knative Service {} canary revision traffic percent does not exist", ksvc_id(c)));
  }
  return traffic_routes{static_cast<int>(*primary_entry->percent), static_cast<int>(*canary_entry->percent), false};
}

service_result<std::optional<std::string>> knative_initialize_body(const canary& c, std::string_view ksvc_json) {
  using out = std::optional<std::string>;
  auto v = parse(ksvc_json);
  if (!v) return fail<out>("the Knative Service is not a JSON object");
  const auto s = read_knative_service(ksvc_json);
  if (s.latest_created.empty()) {
    return fail<out>(fmt::format("Knative Service {} has no latest created revision yet", ksvc_id(c)));
  }
  json::object& o = v->as_object();
  const bool annotated = s.primary_revision == s.latest_created;
  set_annotation(o, knative_primary_revision_annotation, s.latest_created);
  const bool traffic_changed = set_traffic(o, traffic_block(s.latest_created, 100, 0));
  if (annotated && !traffic_changed) return out();
  return out(json::serialize(o));
}

service_result<std::optional<std::string>> knative_promote_body(const canary& c, std::string_view ksvc_json) {
  using out = std::optional<std::string>;
  auto v = parse(ksvc_json);
  if (!v) return fail<out>("the Knative Service is not a JSON object");
  const auto s = read_knative_service(ksvc_json);
  if (s.latest_created.empty()) {
    return fail<out>(fmt::format("Knative Service {} has no latest created revision yet", ksvc_id(c)));
  }
  if (s.primary_revision == s.latest_created) return out();
  set_annotation(v->as_object(), knative_primary_revision_annotation, s.latest_created);
  return out(json::serialize(v->as_object()));
}

namespace {

class knative_provider final : public route_provider {
 public:
  std::string_view display_name() const override { return "Knative"; }
  std::vector<object_kind> kinds() const override { return {knative_service_kind}; }
  std::vector<owned_object> objects(const canary& c) const override {
    return {owned_object{knative_service_kind, c.spec.target_ref.name, true}};
  }
  // The Knative Service is the user's: a missing one is an error, never created.
  service_result<std::string> create_body(const canary& c, const owned_object&) const override {
    return fail<std::string>(fmt::format("Knative Service {} get query error: services.serving.knative.dev \"{}\" not found",
                                         ksvc_id(c), c.spec.target_ref.name));
  }
  // KnativeRouter.Reconcile: the annotation, when missing, names the latest created revision.
  write_result reconcile_body(const canary&, const owned_object&, std::string_view existing) const override {
    using out = std::optional<std::string>;
    const auto s = read_knative_service(existing);
    if (s.parse_error) return fail<out>(*s.parse_error);
    if (s.primary_revision || s.latest_created.empty()) return out();
    auto v = parse(existing);
    set_annotation(v->as_object(), knative_primary_revision_annotation, s.latest_created);
    return out(json::serialize(v->as_object()));
  }
  service_result<traffic_routes> read_routes(const canary& c, std::string_view existing) const override {
    return knative_read_routes(c, existing);
  }
  write_result routes_body(const canary& c, std::string_view existing, const traffic_routes& routes,
                           const session_cookies&) const override {
    using out = std::optional<std::string>;
    const auto s = read_knative_service(existing);
    if (s.parse_error) return fail<out>(*s.parse_error);
    if (!s.primary_revision) return fail<out>(fmt::format("Knative Service {} annotation not found", ksvc_id(c)));
    auto v = parse(existing);
    if (!set_traffic(v->as_object(), traffic_block(*s.primary_revision, routes.primary, routes.canary))) return out();
    return out(json::serialize(v->as_object()));
  }
  // KnativeRouter.Finalize: the annotation goes; spec.traffic stays as it is.
  service_result<finalize_write> finalize_body(const canary&, const owned_object&, std::string_view existing) const override {
    auto v = parse(existing);
    if (!v) return fail<finalize_write>("the Knative Service is not a JSON object");
    auto& meta = metadata_of(v->as_object());
    auto* a = meta.if_contains("annotations");
    if (!a || !a->is_object() || !a->as_object().contains(knative_primary_revision_annotation)) return finalize_write{};
    a->as_object().erase(knative_primary_revision_annotation);
    return finalize_write{json::serialize(v->as_object()), ""};
  }
};

}  // namespace

std::unique_ptr<route_provider> make_knative_provider() { return std::make_unique<knative_provider>(); }

}  // namespace canaryd::core
