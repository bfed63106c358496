#include "sim/json/schema.hpp"

#include "sim/json/json_compare.hpp"

#include <boost/json/serialize.hpp>

#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <regex>

namespace kubesim {
namespace json = boost::json;

namespace {

const json::object* as_schema(const json::value* v) { return v == nullptr ? nullptr : v->if_object(); }

const json::value* get(const json::object* s, std::string_view key) {
  if (s == nullptr) return nullptr;
  auto it = s->find(key);
  return it == s->end() ? nullptr : &it->value();
}

bool flag(const json::object* s, std::string_view key) {
  const json::value* v = get(s, key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

const json::object* property(const json::object* s, std::string_view name) {
  const json::value* props = get(s, "properties");
  if (props == nullptr || !props->is_object()) return nullptr;
  auto it = props->get_object().find(name);
  return it == props->get_object().end() ? nullptr : it->value().if_object();
}


// additionalProperties: absent, false, true (no schema), or a schema.
struct additional {
  bool present = false;
  const json::object* schema = nullptr;
};

additional additional_properties(const json::object* s) {
  const json::value* a = get(s, "additionalProperties");
  if (a == nullptr) return {};
  if (a->is_bool()) return {a->get_bool(), nullptr};
  if (a->is_object()) return {true, &a->get_object()};
  return {};
}

const json::object* items_schema(const json::object* s) {
  const json::value* i = get(s, "items");
  if (i == nullptr) return nullptr;
  if (i->is_object()) return &i->get_object();
  if (i->is_array() && !i->get_array().empty()) return i->get_array().front().if_object();
  return nullptr;
}

bool is_meta_field(std::string_view k) { return k == "apiVersion" || k == "kind" || k == "metadata"; }

// ---- pruning (apiextensions-apiserver/pkg/apiserver/schema/pruning) ----

void prune_node(json::value& x, const json::object* s, bool root);

void skip_prune(json::value& x, const json::object* s) {
  if (s == nullptr) return;
  if (auto* o = x.if_object()) {
    const bool embedded = flag(s, "x-kubernetes-embedded-resource");
    const additional add = additional_properties(s);
    for (auto& kv : *o) {
      if (embedded && is_meta_field(kv.key())) continue;
      if (const auto* p = property(s, kv.key())) {
        prune_node(kv.value(), p, false);
      } else if (add.present) {
        prune_node(kv.value(), add.schema, false);
      }
    }
  } else if (auto* a = x.if_array()) {
    const json::object* is = items_schema(s);
    for (auto& e : *a) skip_prune(e, is);
  }
}

void prune_node(json::value& x, const json::object* s, bool root) {
  if (s != nullptr && flag(s, "x-kubernetes-preserve-unknown-fields")) {
    skip_prune(x, s);
    return;
  }
  if (auto* o = x.if_object()) {
    if (s == nullptr) {
      o->clear();
      return;
    }
    // The resource root is pruned as an embedded resource (PruneWithOptions(isResourceRoot)):
    // its apiVersion, kind and metadata are never the schema's to drop.
    const bool embedded = root || flag(s, "x-kubernetes-embedded-resource");
    const additional add = additional_properties(s);
    for (auto it = o->begin(); it != o->end();) {
      const std::string_view k = it->key();
      if (embedded && ((k == "apiVersion" || k == "kind") ? it->value().is_string()
                                                          : (k == "metadata" && it->value().is_object()))) {
        ++it;
        continue;
      }
      if (const auto* p = property(s, k)) {
        prune_node(it->value(), p, false);
      } else if (add.present) {
        prune_node(it->value(), add.schema, false);
      } else {
        it = o->erase(it);
        continue;
      }
      ++it;
    }
    return;
  }
  if (auto* a = x.if_array()) {
    const json::object* is = s == nullptr ? nullptr : items_schema(s);
    for (auto& e : *a) prune_node(e, is, false);
  }
}

// ---- defaulting (apiextensions-apiserver/pkg/apiserver/schema/defaulting) ----

bool non_nullable_null(const json::value& v, const json::object* s) {
  return v.is_null() && s != nullptr && !flag(s, "nullable");
}

void default_node(json::value& x, const json::object* s) {
  if (s == nullptr) return;
  if (auto* o = x.if_object()) {
    if (const json::value* props = get(s, "properties"); props != nullptr && props->is_object()) {
      for (const auto& kv : props->get_object()) {
        const json::object* p = kv.value().if_object();
        const json::value* d = get(p, "default");
        if (d == nullptr) continue;
        auto it = o->find(kv.key());
        if (it == o->end()) {
          o->emplace(kv.key(), *d);
        } else if (non_nullable_null(it->value(), p)) {
          it->value() = *d;
        }
      }
    }
    const additional add = additional_properties(s);
    for (auto it = o->begin(); it != o->end();) {
      const json::object* p = property(s, it->key());
      if (p == nullptr && add.present) p = add.schema;
      if (p == nullptr) {
        ++it;
        continue;
      }
      if (non_nullable_null(it->value(), p)) {
        if (const json::value* d = get(p, "default")) {
          it->value() = *d;
        } else {
          it = o->erase(it);  // PruneNonNullableNullsWithoutDefaults
          continue;
        }
      }
      default_node(it->value(), p);
      ++it;
    }
    return;
  }
  if (auto* a = x.if_array()) {
    const json::object* is = items_schema(s);
    for (auto& e : *a) {
      if (non_nullable_null(e, is)) {
        if (const json::value* d = get(is, "default")) e = *d;
      }
      default_node(e, is);
    }
  }
}

// ---- validation (k8s.io/kube-openapi/pkg/validation) ----

// Go's %v for a float64, as kube-openapi prints bounds: 100, 0.5, 1e+21.
std::string go_float(double d) {
  if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 1e21) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(d));
    return std::string(buf, r.ptr);
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// How field.Error prints a bad value: strings quoted, numbers and booleans plain.
std::string bad_value(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string: return json::serialize(v);
    case json::kind::double_: return go_float(v.get_double());
    case json::kind::null: return "null";
    case json::kind::object: return "map[string]interface {}{...}";
    case json::kind::array: return "[]interface {}{...}";
    default: return json::serialize(v);
  }
}

std::size_t rune_count(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

const std::regex* compiled(const std::string& pattern) {
  // One thread (the io_context's); the cache only grows with the distinct patterns of the CRDs.
  thread_local std::map<std::string, std::unique_ptr<std::regex>, std::less<>> cache;
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    std::unique_ptr<std::regex> re;
    try {
      re = std::make_unique<std::regex>(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      re = nullptr;  // a real server would have refused the CRD; here the pattern checks nothing
    }
    it = cache.emplace(pattern, std::move(re)).first;
  }
  return it->second.get();
}

std::optional<double> number(const json::object* s, std::string_view key) {
  const json::value* v = get(s, key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}

std::optional<std::int64_t> count(const json::object* s, std::string_view key) {
  const json::value* v = get(s, key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return static_cast<std::int64_t>(v->to_number<double>());
}

class validator {
 public:
  std::vector<schema_error> errors;

  void node(const json::value& x, const json::object* s, const std::string& path) {
    if (s == nullptr) return;
    if (x.is_null()) {
      if (flag(s, "nullable")) return;
    }
    if (!type_ok(x, s, path)) return;
    if (!x.is_null()) {
      enum_check(x, s, path);
      if (x.is_string()) string_checks(x.get_string(), s, path);
      if (x.is_number()) number_checks(x, s, path);
      if (x.is_array()) array_checks(x.get_array(), s, path);
      if (x.is_object()) object_checks(x.get_object(), s, path);
    }
    combinators(x, s, path);
  }

 private:
  static std::string child(const std::string& path, std::string_view name) {
    return path.empty() ? std::string(name) : path + "." + std::string(name);
  }
  static std::string shown(const std::string& path) { return path.empty() ? std::string(".") : path; }

  void add(std::string reason, const std::string& path, std::string message) {
    errors.push_back({std::move(reason), path.empty() ? std::string("<nil>") : path, std::move(message)});
  }
  void invalid(const std::string& path, const std::string& value, const std::string& detail) {
    add("FieldValueInvalid", path, "Invalid value: " + value + ": " + detail);
  }

  bool type_ok(const json::value& x, const json::object* s, const std::string& path) {
    std::vector<std::string> types;
    if (flag(s, "x-kubernetes-int-or-string")) {
      types = {"integer", "string"};
    } else if (const json::value* t = get(s, "type"); t != nullptr && t->is_string() && !t->get_string().empty()) {
      types = {std::string(t->get_string())};
    }
    if (types.empty()) return true;
    const std::string actual = json_type_name(x);
    for (const auto& t : types) {
      if (t == actual) return true;
      if (t == "number" && actual == "integer") return true;
    }
    std::string want;
    for (std::size_t i = 0; i < types.size(); ++i) want += (i ? "," : "") + types[i];
    const std::string quoted = "\"" + actual + "\"";
    add("FieldValueTypeInvalid", path,
        "Invalid value: " + quoted + ": " + shown(path) + " in body must be of type " + want + ": " + quoted);
    return false;
  }

  void enum_check(const json::value& x, const json::object* s, const std::string& path) {
    const json::value* e = get(s, "enum");
    if (e == nullptr || !e->is_array() || e->get_array().empty()) return;
    for (const auto& allowed : e->get_array())
      if (json_equal(allowed, x)) return;
    std::string supported;
    for (const auto& allowed : e->get_array()) {
      if (!supported.empty()) supported += ", ";
      supported += allowed.is_string() ? json::serialize(allowed) : "\"" + json::serialize(allowed) + "\"";
    }
    add("FieldValueNotSupported", path, "Unsupported value: " + bad_value(x) + ": supported values: " + supported);
  }

  void string_checks(const json::string& v, const json::object* s, const std::string& path) {
    const std::size_t n = rune_count(v);
    if (auto max = count(s, "maxLength"); max && static_cast<std::int64_t>(n) > *max) {
      add("FieldValueTooLong", path, "Too long: may not be longer than " + std::to_string(*max));
    }
    if (auto min = count(s, "minLength"); min && static_cast<std::int64_t>(n) < *min) {
      invalid(path, bad_value(json::value(v)), shown(path) + " in body should be at least " + std::to_string(*min) + " chars long");
    }
    if (const json::value* p = get(s, "pattern"); p != nullptr && p->is_string()) {
      const std::string pattern(p->get_string());
      if (const std::regex* re = compiled(pattern); re != nullptr && !std::regex_search(v.begin(), v.end(), *re)) {
        invalid(path, bad_value(json::value(v)), shown(path) + " in body should match '" + pattern + "'");
      }
    }
  }

  void number_checks(const json::value& x, const json::object* s, const std::string& path) {
    const double d = x.to_number<double>();
    if (auto m = number(s, "multipleOf"); m && *m > 0) {
      const double q = d / *m;
      if (std::fabs(q - std::round(q)) > 1e-9) {
        invalid(path, bad_value(x), shown(path) + " in body should be a multiple of " + go_float(*m));
      }
    }
    if (auto max = number(s, "maximum")) {
      const bool exclusive = flag(s, "exclusiveMaximum");
      if (exclusive ? d >= *max : d > *max) {
        invalid(path, bad_value(x),
                shown(path) + " in body should be less than " + (exclusive ? "" : "or equal to ") + go_float(*max));
      }
    }
    if (auto min = number(s, "minimum")) {
      const bool exclusive = flag(s, "exclusiveMinimum");
      if (exclusive ? d <= *min : d < *min) {
        invalid(path, bad_value(x),
                shown(path) + " in body should be greater than " + (exclusive ? "" : "or equal to ") + go_float(*min));
      }
    }
  }

  void array_checks(const json::array& a, const json::object* s, const std::string& path) {
    const auto n = static_cast<std::int64_t>(a.size());
    if (auto max = count(s, "maxItems"); max && n > *max) {
      add("FieldValueTooMany", path, "Too many: " + std::to_string(n) + ": must have at most " + std::to_string(*max) + " items");
    }
    if (auto min = count(s, "minItems"); min && n < *min) {
      invalid(path, std::to_string(n), shown(path) + " in body should have at least " + std::to_string(*min) + " items");
    }
    if (flag(s, "uniqueItems")) {
      bool dup = false;
      for (std::size_t i = 0; i < a.size() && !dup; ++i)
        for (std::size_t k = i + 1; k < a.size() && !dup; ++k) dup = json_equal(a[i], a[k]);
      if (dup) invalid(path, "\"\"", shown(path) + " in body shouldn't contain duplicates");
    }
    const json::object* is = items_schema(s);
    for (std::size_t i = 0; i < a.size(); ++i) node(a[i], is, path + "[" + std::to_string(i) + "]");
  }

  void object_checks(const json::object& o, const json::object* s, const std::string& path) {
    const auto n = static_cast<std::int64_t>(o.size());
    if (auto max = count(s, "maxProperties"); max && n > *max) {
      add("FieldValueTooMany", path,
          "Too many: " + std::to_string(n) + ": must have at most " + std::to_string(*max) + " items");
    }
    if (auto min = count(s, "minProperties"); min && n < *min) {
      invalid(path, std::to_string(n), shown(path) + " in body should have at least " + std::to_string(*min) + " properties");
    }
    if (const json::value* req = get(s, "required"); req != nullptr && req->is_array()) {
      for (const auto& r : req->get_array()) {
        const json::string* name = r.if_string();
        if (name != nullptr && !o.contains(*name)) add("FieldValueRequired", child(path, *name), "Required value");
      }
    }
    const bool embedded = flag(s, "x-kubernetes-embedded-resource");
    if (embedded) {
      for (std::string_view k : {"apiVersion", "kind"}) {
        auto it = o.find(k);
        if (it == o.end() || !it->value().is_string() || it->value().get_string().empty()) {
          add("FieldValueRequired", child(path, k), "Required value: must not be empty");
        }
      }
    }
    const additional add_props = additional_properties(s);
    const bool preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    for (const auto& kv : o) {
      if (embedded && is_meta_field(kv.key())) continue;
      if (const auto* p = property(s, kv.key())) {
        node(kv.value(), p, child(path, kv.key()));
      } else if (add_props.schema != nullptr) {
        node(kv.value(), add_props.schema, child(path, kv.key()));
      } else if (const json::value* a = get(s, "additionalProperties");
                 a != nullptr && a->is_bool() && !a->get_bool() && !preserve) {
        invalid(path, json::serialize(json::value(kv.key())),
                shown(path) + "." + std::string(kv.key()) + " in body is a forbidden property");
      }
    }
  }

  // Validates `x` against one alternative, collecting its errors apart.
  std::vector<schema_error> alternative(const json::value& x, const json::object* s, const std::string& path) {
    validator sub;
    sub.node(x, s, path);
    return std::move(sub.errors);
  }

  void combinators(const json::value& x, const json::object* s, const std::string& path) {
    const std::string quoted = "\"" + shown(path) + "\"";
    if (const json::value* all = get(s, "allOf"); all != nullptr && all->is_array()) {
      for (const auto& alt : all->get_array()) {
        auto errs = alternative(x, alt.if_object(), path);
        errors.insert(errors.end(), errs.begin(), errs.end());
      }
    }
    if (const json::value* any = get(s, "anyOf"); any != nullptr && any->is_array() && !any->get_array().empty()) {
      std::optional<std::vector<schema_error>> best;
      bool ok = false;
      for (const auto& alt : any->get_array()) {
        auto errs = alternative(x, alt.if_object(), path);
        if (errs.empty()) {
          ok = true;
          break;
        }
        if (!best || errs.size() < best->size()) best = std::move(errs);
      }
      if (!ok) {
        add("FieldValueInvalid", "", "Invalid value: \"\": " + quoted + " must validate at least one schema (anyOf)");
        if (best) errors.insert(errors.end(), best->begin(), best->end());
      }
    }
    if (const json::value* one = get(s, "oneOf"); one != nullptr && one->is_array() && !one->get_array().empty()) {
      std::optional<std::vector<schema_error>> best;
      int valid = 0;
      for (const auto& alt : one->get_array()) {
        auto errs = alternative(x, alt.if_object(), path);
        if (errs.empty()) {
          ++valid;
        } else if (!best || errs.size() < best->size()) {
          best = std::move(errs);
        }
      }
      if (valid != 1) {
        const std::string found = valid == 0 ? "Found none valid" : "Found " + std::to_string(valid) + " valid alternatives";
        add("FieldValueInvalid", "",
            "Invalid value: \"\": " + quoted + " must validate one and only one schema (oneOf). " + found);
        if (valid == 0 && best) errors.insert(errors.end(), best->begin(), best->end());
      }
    }
    if (const json::object* no = as_schema(get(s, "not")); no != nullptr) {
      if (alternative(x, no, path).empty()) {
        add("FieldValueInvalid", "", "Invalid value: \"\": " + quoted + " must not validate the schema (not)");
      }
    }
  }
};

}  // namespace

void prune(const json::value& schema, json::value& object) { prune_node(object, schema.if_object(), true); }

void apply_defaults(const json::value& schema, json::value& object) { default_node(object, schema.if_object()); }

std::vector<schema_error> validate(const json::value& schema, const json::value& object) {
  validator v;
  const json::object* s = schema.if_object();
  if (s == nullptr) return {};
  // The root's apiVersion, kind and metadata are the apiserver's own business (ObjectMeta
  // validation); the schema only sees the rest.
  if (const auto* o = object.if_object()) {
    json::object rest;
    for (const auto& kv : *o)
      if (!is_meta_field(kv.key())) rest.emplace(kv.key(), kv.value());
    v.node(json::value(std::move(rest)), s, "");
    // `required` may list meta fields (some CRDs require metadata); those are always present.
    std::erase_if(v.errors, [](const schema_error& e) {
      return e.reason == "FieldValueRequired" && is_meta_field(e.field);
    });
    return std::move(v.errors);
  }
  v.node(object, s, "");
  return std::move(v.errors);
}

std::string invalid_message(std::string_view qualified_kind, std::string_view name, const std::vector<schema_error>& errors) {
  std::string out = std::string(qualified_kind) + " " + json::serialize(json::value(json::string_view(name.data(), name.size()))) +
                    " is invalid: ";
  if (errors.size() == 1) return out + errors.front().text();
  out += "[";
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) out += ", ";
    out += errors[i].text();
  }
  return out + "]";
}

}  // namespace kubesim
