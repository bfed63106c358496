#include "core/revision.hpp"

#include <algorithm>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "core/hash.hpp"
#include "core/json_dom.hpp"
#include "core/json_writer.hpp"

namespace canaryd::core {

using detail::dom::array;
using detail::dom::element;
using detail::dom::key_value_pair;
using detail::dom::object;

namespace {

constexpr std::string_view scale_to_zero_key = "flagger.app/scale-to-zero";

// Canonical JSON of a pod template with the DaemonSet normalization of spec.nodeSelector.
void append_template(std::string& out, element tmpl, bool daemonset) {
  object root;
  if (!daemonset || tmpl.get_object().get(root)) {
    detail::append_canonical(out, tmpl);
    return;
  }
  std::vector<std::pair<std::string_view, element>> members;
  for (key_value_pair kv : root) members.emplace_back(kv.key, kv.value);
  std::stable_sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  out += '{';
  bool first = true;
  for (const auto& [key, value] : members) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, key);
    out += ':';
    object spec;
    if (key != "spec" || value.get_object().get(spec)) {
      detail::append_canonical(out, value);
      continue;
    }
    std::vector<std::pair<std::string_view, element>> spec_members;
    for (key_value_pair kv : spec) spec_members.emplace_back(kv.key, kv.value);
    std::stable_sort(spec_members.begin(), spec_members.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    out += '{';
    bool first_spec = true;
    for (const auto& [skey, svalue] : spec_members) {
      std::string text;
      object selector;
      if (skey == "nodeSelector" && !svalue.get_object().get(selector)) {
        std::vector<std::pair<std::string_view, element>> entries;
        for (key_value_pair kv : selector) {
          if (kv.key != scale_to_zero_key) entries.emplace_back(kv.key, kv.value);
        }
        if (entries.empty()) continue;  // absent == empty == only the scale-to-zero key
        std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        text += '{';
        for (std::size_t i = 0; i < entries.size(); ++i) {
          if (i) text += ',';
          append_json_string(text, entries[i].first);
          text += ':';
          detail::append_canonical(text, entries[i].second);
        }
        text += '}';
      } else if (skey == "nodeSelector" && svalue.is_null()) {
        continue;
      } else {
        detail::append_canonical(text, svalue);
      }
      if (!first_spec) out += ',';
      first_spec = false;
      append_json_string(out, skey);
      out += ':';
      out += text;
    }
    out += '}';
  }
  out += '}';
}

// Go encoding/json string escaping (HTML-safe, as json.Marshal does): <, >, & and U+2028/U+2029
// as \u escapes, \b \f \n \r \t short forms (Go 1.22+), other control characters as \u00xx, and
// invalid UTF-8 replaced by U+FFFD.
void append_go_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence; anything malformed is one U+FFFD per byte, as Go does.
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (valid) {
      if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
        valid = false;
      }
    }
    if (!valid) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  out += '"';
}

// json.Marshal of a map[string]string (or map[string][]byte, whose JSON is the same base64
// strings the API server sent): keys sorted bytewise; nil (absent, null or empty) is "null".
bool append_go_string_map(std::string& out, std::optional<element> value, std::vector<field_error>& errors,
                          std::string_view field) {
  object obj;
  if (!value || value->is_null()) {
    out += "null";
    return true;
  }
  if (value->get_object().get(obj)) {
    errors.push_back({std::string(field), fmt::format("must be an object, got {}", detail::type_name(*value))});
    return false;
  }
  std::vector<std::pair<std::string_view, std::string_view>> entries;
  for (key_value_pair kv : obj) {
    std::string_view v;
    if (kv.value.is_null()) {
      v = "";
    } else if (kv.value.get_string().get(v)) {
      errors.push_back({fmt::format("{}.{}", field, kv.key), fmt::format("must be a string, got {}", detail::type_name(kv.value))});
      return false;
    }
    entries.emplace_back(kv.key, v);
  }
  if (entries.empty()) {
    out += "null";
    return true;
  }
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  out += '{';
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ',';
    append_go_json_string(out, entries[i].first);
    out += ':';
    append_go_json_string(out, entries[i].second);
  }
  out += '}';
  return true;
}

std::optional<element> member(object o, std::string_view key) {
  element e;
  if (o.at_key(key).get(e)) return std::nullopt;
  return e;
}

std::string string_member(object o, std::string_view key) {
  std::string_view s;
  element e;
  if (o.at_key(key).get(e) || e.get_string().get(s)) return {};
  return std::string(s);
}

bool bool_member(object o, std::string_view key) {
  bool b = false;
  element e;
  if (o.at_key(key).get(e) || e.get_bool().get(b)) return false;
  return b;
}

class ref_collector {
 public:
  void add(config_ref::kind_t kind, std::string name, bool optional) {
    if (name.empty()) return;
    config_ref ref{kind, std::move(name), optional};
    auto& slot = refs_[ref.key()];
    if (slot.name.empty()) {
      slot = std::move(ref);
    } else {
      slot.optional = slot.optional && optional;
    }
  }

  void volumes(std::optional<element> e) {
    array list;
    if (!e || e->get_array().get(list)) return;
    for (element v : list) {
      object vol;
      if (v.get_object().get(vol)) continue;
      object src;
      if (auto cm = member(vol, "configMap"); cm && !cm->get_object().get(src)) {
        add(config_ref::kind_t::config_map, string_member(src, "name"), bool_member(src, "optional"));
      }
      if (auto sec = member(vol, "secret"); sec && !sec->get_object().get(src)) {
        add(config_ref::kind_t::secret, string_member(src, "secretName"), bool_member(src, "optional"));
      }
      object projected;
      array sources;
      if (auto p = member(vol, "projected"); p && !p->get_object().get(projected)) {
        if (auto s = member(projected, "sources"); s && !s->get_array().get(sources)) {
          for (element source : sources) {
            object so;
            if (source.get_object().get(so)) continue;
            if (auto cm = member(so, "configMap"); cm && !cm->get_object().get(src)) {
              add(config_ref::kind_t::config_map, string_member(src, "name"), bool_member(src, "optional"));
            }
            if (auto sec = member(so, "secret"); sec && !sec->get_object().get(src)) {
              add(config_ref::kind_t::secret, string_member(src, "name"), bool_member(src, "optional"));
            }
          }
        }
      }
    }
  }

  void containers(std::optional<element> e) {
    array list;
    if (!e || e->get_array().get(list)) return;
    for (element c : list) {
      object container;
      if (c.get_object().get(container)) continue;
      array env;
      if (auto ev = member(container, "env"); ev && !ev->get_array().get(env)) {
        for (element item : env) {
          object var, value_from, ref;
          if (item.get_object().get(var)) continue;
          auto vf = member(var, "valueFrom");
          if (!vf || vf->get_object().get(value_from)) continue;
          if (auto r = member(value_from, "configMapKeyRef"); r && !r->get_object().get(ref)) {
            add(config_ref::kind_t::config_map, string_member(ref, "name"), bool_member(ref, "optional"));
          } else if (auto s = member(value_from, "secretKeyRef"); s && !s->get_object().get(ref)) {
            add(config_ref::kind_t::secret, string_member(ref, "name"), bool_member(ref, "optional"));
          }
        }
      }
      array env_from;
      if (auto ef = member(container, "envFrom"); ef && !ef->get_array().get(env_from)) {
        for (element item : env_from) {
          object source, ref;
          if (item.get_object().get(source)) continue;
          if (auto r = member(source, "configMapRef"); r && !r->get_object().get(ref)) {
            add(config_ref::kind_t::config_map, string_member(ref, "name"), bool_member(ref, "optional"));
          } else if (auto s = member(source, "secretRef"); s && !s->get_object().get(ref)) {
            add(config_ref::kind_t::secret, string_member(ref, "name"), bool_member(ref, "optional"));
          }
        }
      }
    }
  }

  std::vector<config_ref> take() {
    std::vector<config_ref> out;
    for (auto& [key, ref] : refs_) out.push_back(std::move(ref));
    return out;
  }

 private:
  std::map<std::string, config_ref> refs_;  // sorted by key
};

}  // namespace

decoded<std::string> pod_template_revision(std::string_view template_json, const revision_options& options) {
  decoded<std::string> out;
  detail::dom::parser parser;
  element doc;
  if (!detail::parse_document(parser, template_json, doc, out.errors)) return out;
  std::string text;
  append_template(text, doc, options.daemonset);
  out.value = to_hex(fnv1a64(text));
  return out;
}

bool is_canaryd_revision(std::string_view revision) {
  return revision.size() == 16 &&
         std::all_of(revision.begin(), revision.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

decoded<std::string> config_checksum(std::string_view object_json) {
  decoded<std::string> out;
  detail::dom::parser parser;
  element doc;
  if (!detail::parse_document(parser, object_json, doc, out.errors)) return out;
  object root;
  if (doc.get_object().get(root)) {
    out.errors.push_back({"", fmt::format("a ConfigMap or Secret must be a JSON object, got {}", detail::type_name(doc))});
    return out;
  }
  std::string text;
  if (!append_go_string_map(text, member(root, "data"), out.errors, "data")) return out;
  if (auto binary = member(root, "binaryData")) {
    std::string extra;
    if (!append_go_string_map(extra, binary, out.errors, "binaryData")) return out;
    if (extra != "null") {
      text += '\n';
      text += extra;
    }
  }
  const auto digest = sha256(text);
  out.value = to_hex(digest.data(), 8);
  return out;
}

bool is_tracked_config(std::string_view object_json) {
  detail::dom::parser parser;
  element doc;
  std::vector<field_error> ignored;
  object root;
  if (!detail::parse_document(parser, object_json, doc, ignored) || doc.get_object().get(root)) return false;
  object meta, annotations;
  if (auto m = member(root, "metadata"); m && !m->get_object().get(meta)) {
    if (auto a = member(meta, "annotations"); a && !a->get_object().get(annotations)) {
      if (string_member(annotations, "flagger.app/config-tracking").starts_with("disable")) return false;
    }
  }
  if (string_member(root, "kind") == "Secret") {
    const std::string type = string_member(root, "type");
    return type.empty() || type == "Opaque" || type == "kubernetes.io/basic-auth" || type == "kubernetes.io/ssh-auth" ||
           type == "kubernetes.io/tls";
  }
  return true;
}

std::string config_ref::key() const {
  return (kind == kind_t::config_map ? "configmap/" : "secret/") + name;
}

decoded<std::vector<config_ref>> find_config_refs(std::string_view pod_template_json) {
  decoded<std::vector<config_ref>> out;
  detail::dom::parser parser;
  element doc;
  if (!detail::parse_document(parser, pod_template_json, doc, out.errors)) return out;
  object root, spec;
  if (doc.get_object().get(root)) {
    out.errors.push_back({"", fmt::format("a pod template must be a JSON object, got {}", detail::type_name(doc))});
    return out;
  }
  auto s = member(root, "spec");
  if (!s || s->get_object().get(spec)) return out;
  ref_collector refs;
  refs.volumes(member(spec, "volumes"));
  refs.containers(member(spec, "containers"));
  refs.containers(member(spec, "initContainers"));
  out.value = refs.take();
  return out;
}

std::string webhook_checksum(const canary_status& status) {
  std::string text = "{\"lastAppliedSpec\":";
  append_json_string(text, status.last_applied_spec);
  text += ",\"trackedConfigs\":";
  if (!status.tracked_configs) {
    text += "null";
  } else {
    text += '{';
    bool first = true;
    for (const auto& [key, value] : *status.tracked_configs) {
      if (!first) text += ',';
      first = false;
      append_json_string(text, key);
      text += ':';
      append_json_string(text, value);
    }
    text += '}';
  }
  text += '}';
  return to_hex(fnv1a64(text));
}

}  // namespace canaryd::core
