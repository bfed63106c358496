#include "sim/api/crd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace kubesim::crd {
namespace json = boost::json;

namespace {

std::string_view str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v && v->is_string()) return v->get_string();
  return {};
}

const json::object* obj(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

const json::array* arr(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? v->if_array() : nullptr;
}

bool boolean(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_bool() && v->get_bool();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (auto* a = arr(o, key))
    for (const auto& v : *a)
      if (v.is_string()) out.emplace_back(v.get_string());
  return out;
}

field_error required(std::string field) { return {"FieldValueRequired", std::move(field), "Required value"}; }

field_error invalid_value(std::string field, std::string_view value, std::string_view detail) {
  return {"FieldValueInvalid", std::move(field), fmt::format("Invalid value: \"{}\": {}", value, detail)};
}

bool dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!ok(s.front()) || !ok(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return ok(c) || c == '-'; });
}

json::object* mutable_obj(json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

}  // namespace

void apply_defaults(json::object& crd) {
  auto* spec = mutable_obj(crd, "spec");
  if (!spec) return;
  if (auto* names = mutable_obj(*spec, "names")) {
    auto kind = std::string(str(*names, "kind"));
    if (str(*names, "singular").empty() && !kind.empty()) (*names)["singular"] = lower(kind);
    if (str(*names, "listKind").empty() && !kind.empty()) (*names)["listKind"] = kind + "List";
  }
  if (!obj(*spec, "conversion")) (*spec)["conversion"] = json::object{{"strategy", "None"}};
}

std::vector<field_error> validate(const json::object& crd, const json::object* old) {
  std::vector<field_error> errs;
  auto* spec = obj(crd, "spec");
  if (!spec) {
    errs.push_back(required("spec.group"));
    errs.push_back(required("spec.names.plural"));
    errs.push_back(required("spec.names.kind"));
    errs.push_back(required("spec.scope"));
    errs.push_back(required("spec.versions"));
    return errs;
  }
  auto group = str(*spec, "group");
  if (group.empty()) errs.push_back(required("spec.group"));
  else if (group.find('.') == std::string_view::npos)
    errs.push_back(invalid_value("spec.group", group, "should be a domain with at least one dot"));
  auto* names = obj(*spec, "names");
  auto plural = names ? str(*names, "plural") : std::string_view{};
  auto kind = names ? str(*names, "kind") : std::string_view{};
  if (plural.empty()) errs.push_back(required("spec.names.plural"));
  else if (!dns_label(plural))
    errs.push_back(invalid_value("spec.names.plural", plural,
                                 "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
                                 "'-', and must start and end with an alphanumeric character"));
  if (kind.empty()) errs.push_back(required("spec.names.kind"));
  if (names) {
    auto singular = str(*names, "singular");
    if (!singular.empty() && !dns_label(singular))
      errs.push_back(invalid_value("spec.names.singular", singular,
                                   "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                                   "or '-', and must start and end with an alphanumeric character"));
  }
  auto scope = str(*spec, "scope");
  if (scope != "Namespaced" && scope != "Cluster")
    errs.push_back({"FieldValueNotSupported", "spec.scope",
                    fmt::format("Unsupported value: \"{}\": supported values: \"Cluster\", \"Namespaced\"", scope)});
  auto* versions = arr(*spec, "versions");
  if (!versions || versions->empty()) {
    errs.push_back(required("spec.versions"));
  } else {
    int storage = 0;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < versions->size(); ++i) {
      auto field = fmt::format("spec.versions[{}]", i);
      const auto* v = (*versions)[i].if_object();
      if (!v) {
        errs.push_back(required(field));
        continue;
      }
      auto name = str(*v, "name");
      if (name.empty()) errs.push_back(required(field + ".name"));
      else if (!dns_label(name))
        errs.push_back(invalid_value(field + ".name", name, "a DNS-1035 label must consist of lower case alphanumeric characters"));
      else if (!seen.insert(std::string(name)).second)
        errs.push_back({"FieldValueDuplicate", field + ".name", fmt::format("Duplicate value: \"{}\"", name)});
      if (boolean(*v, "storage")) ++storage;
      auto* schema = obj(*v, "schema");
      if (schema && !obj(*schema, "openAPIV3Schema"))
        errs.push_back(required(field + ".schema.openAPIV3Schema"));
      if (auto* cols = arr(*v, "additionalPrinterColumns"))
        for (std::size_t c = 0; c < cols->size(); ++c) {
          const auto* col = (*cols)[c].if_object();
          auto cf = fmt::format("{}.additionalPrinterColumns[{}]", field, c);
          if (!col || str(*col, "name").empty()) errs.push_back(required(cf + ".name"));
          if (!col || str(*col, "jsonPath").empty()) errs.push_back(required(cf + ".jsonPath"));
          static const std::set<std::string_view> types = {"integer", "number", "string", "boolean", "date"};
          if (col && !types.contains(str(*col, "type")))
            errs.push_back({"FieldValueNotSupported", cf + ".type",
                            fmt::format("Unsupported value: \"{}\": supported values: \"boolean\", \"date\", "
                                        "\"integer\", \"number\", \"string\"",
                                        str(*col, "type"))});
        }
    }
    if (storage != 1)
      errs.push_back({"FieldValueInvalid", "spec.versions",
                      "Invalid value: []apiextensions.CustomResourceDefinitionVersion(...): must have exactly one "
                      "version marked as storage version"});
  }
  // metadata.name must be <plural>.<group>.
  auto* meta = obj(crd, "metadata");
  auto name = meta ? str(*meta, "name") : std::string_view{};
  if (!plural.empty() && !group.empty() && name != fmt::format("{}.{}", plural, group))
    errs.push_back(invalid_value("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"));
  // Group, names and scope are immutable once established (the real server allows some renames;
  // canaryd never needs them).
  if (old)
    if (auto* os = obj(*old, "spec")) {
      if (str(*os, "group") != group)
        errs.push_back(invalid_value("spec.group", group, "field is immutable"));
      if (str(*os, "scope") != scope)
        errs.push_back(invalid_value("spec.scope", scope, "field is immutable"));
      if (auto* on = obj(*os, "names"); on && str(*on, "plural") != plural)
        errs.push_back(invalid_value("status.acceptedNames.plural", plural, "field is immutable"));
    }
  return errs;
}

std::vector<resource_info> resources_of(const json::object& crd) {
  std::vector<resource_info> out;
  auto* spec = obj(crd, "spec");
  if (!spec) return out;
  auto* names = obj(*spec, "names");
  auto* versions = arr(*spec, "versions");
  if (!names || !versions) return out;
  for (const auto& vv : *versions) {
    const auto* v = vv.if_object();
    if (!v || !boolean(*v, "served")) continue;
    resource_info r;
    r.group = std::string(str(*spec, "group"));
    r.version = std::string(str(*v, "name"));
    r.resource = std::string(str(*names, "plural"));
    r.kind = std::string(str(*names, "kind"));
    r.singular = str(*names, "singular").empty() ? lower(r.kind) : std::string(str(*names, "singular"));
    r.list_kind = str(*names, "listKind").empty() ? r.kind + "List" : std::string(str(*names, "listKind"));
    r.namespaced = str(*spec, "scope") != "Cluster";
    r.short_names = strings(*names, "shortNames");
    r.categories = strings(*names, "categories");
    r.custom = true;
    r.tracks_generation = true;
    r.verbs = {"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"};
    if (auto* sub = obj(*v, "subresources")) {
      r.status_subresource = obj(*sub, "status") != nullptr;
      if (auto* scale = obj(*sub, "scale")) {
        r.scale_subresource = true;
        r.scale_spec_replicas_path = std::string(str(*scale, "specReplicasPath"));
        r.scale_status_replicas_path = std::string(str(*scale, "statusReplicasPath"));
        r.scale_label_selector_path = std::string(str(*scale, "labelSelectorPath"));
      }
    }
    if (auto* cols = arr(*v, "additionalPrinterColumns")) {
      for (const auto& cv : *cols) {
        const auto* c = cv.if_object();
        if (!c) continue;
        printer_column pc;
        pc.name = std::string(str(*c, "name"));
        pc.type = std::string(str(*c, "type"));
        pc.json_path = std::string(str(*c, "jsonPath"));
        pc.description = std::string(str(*c, "description"));
        pc.format = std::string(str(*c, "format"));
        if (auto* p = c->if_contains("priority"); p && p->is_int64()) pc.priority = static_cast<int>(p->as_int64());
        r.columns.push_back(std::move(pc));
      }
    } else {
      // A CRD that lists no columns gets Age (the server's default).
      printer_column age;
      age.name = "Age";
      age.type = "date";
      age.json_path = ".metadata.creationTimestamp";
      r.columns.push_back(std::move(age));
    }
    if (auto* schema = obj(*v, "schema"))
      if (auto* s = schema->if_contains("openAPIV3Schema")) r.schema = *s;
    out.push_back(std::move(r));
  }
  return out;
}

void set_status(json::object& crd, const json::object* old_status, std::string_view now, bool terminating) {
  json::object status;
  auto* spec = obj(crd, "spec");
  if (spec)
    if (auto* names = obj(*spec, "names")) status["acceptedNames"] = *names;
  auto old_condition = [&](std::string_view type) -> const json::object* {
    if (!old_status) return nullptr;
    if (auto* cs = arr(*old_status, "conditions"))
      for (const auto& c : *cs)
        if (c.is_object() && str(c.as_object(), "type") == type) return &c.as_object();
    return nullptr;
  };
  auto condition = [&](std::string_view type, std::string_view status_value, std::string_view reason,
                       std::string_view message) {
    std::string when(now);
    if (auto* o = old_condition(type); o && str(*o, "status") == status_value) when = std::string(str(*o, "lastTransitionTime"));
    return json::object{{"type", type},
                        {"status", status_value},
                        {"lastTransitionTime", when},
                        {"reason", reason},
                        {"message", message}};
  };
  json::array conditions;
  conditions.push_back(condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"));
  conditions.push_back(condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted"));
  if (terminating)
    conditions.push_back(condition("Terminating", "True", "InstanceDeletionInProgress",
                                   "CustomResource deletion is in progress"));
  status["conditions"] = std::move(conditions);
  std::set<std::string> stored;
  json::array stored_versions;
  if (old_status)
    for (const auto& s : strings(*old_status, "storedVersions"))
      if (stored.insert(s).second) stored_versions.emplace_back(s);
  if (spec)
    if (auto* versions = arr(*spec, "versions"))
      for (const auto& v : *versions)
        if (v.is_object() && boolean(v.as_object(), "storage")) {
          auto name = std::string(str(v.as_object(), "name"));
          if (stored.insert(name).second) stored_versions.emplace_back(name);
        }
  status["storedVersions"] = std::move(stored_versions);
  crd["status"] = std::move(status);
}

}  // namespace kubesim::crd
