#include "sim/json/json_patch.hpp"

#include "sim/json/json_compare.hpp"

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

namespace kubesim {
namespace json = boost::json;

namespace {

using tokens = std::vector<std::string>;

// RFC 6901: "" is the whole document, otherwise "/"-separated reference tokens.
bool parse_pointer(std::string_view p, tokens& out, std::string& err) {
  out.clear();
  if (p.empty()) return true;
  if (p.front() != '/') {
    err = "JSON pointer must be empty or start with a \"/\": \"" + std::string(p) + "\"";
    return false;
  }
  p.remove_prefix(1);
  std::string cur;
  for (std::size_t i = 0;; ++i) {
    if (i == p.size() || p[i] == '/') {
      out.push_back(std::move(cur));
      cur.clear();
      if (i == p.size()) break;
      continue;
    }
    if (p[i] == '~') {
      if (i + 1 < p.size() && p[i + 1] == '0') {
        cur += '~';
      } else if (i + 1 < p.size() && p[i + 1] == '1') {
        cur += '/';
      } else {
        err = "invalid escape in JSON pointer: \"/" + std::string(p) + "\"";
        return false;
      }
      ++i;
      continue;
    }
    cur += p[i];
  }
  return true;
}

// An array index token: digits with an optional leading '-' (negative counts from the end).
bool parse_index(std::string_view s, std::int64_t& out) {
  if (s.empty()) return false;
  auto first = s.data();
  auto last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last;
}

// Resolves all tokens; null if absent.
json::value* resolve(json::value& doc, const tokens& t) {
  json::value* cur = &doc;
  for (const auto& tok : t) {
    if (auto* o = cur->if_object()) {
      auto it = o->find(tok);
      if (it == o->end()) return nullptr;
      cur = &it->value();
    } else if (auto* a = cur->if_array()) {
      std::int64_t idx = 0;
      if (!parse_index(tok, idx)) return nullptr;
      if (idx < 0) idx += static_cast<std::int64_t>(a->size());
      if (idx < 0 || idx >= static_cast<std::int64_t>(a->size())) return nullptr;
      cur = &(*a)[static_cast<std::size_t>(idx)];
    } else {
      return nullptr;
    }
  }
  return cur;
}

// The container that holds the last token; null if a parent is missing or not a container.
json::value* parent_of(json::value& doc, const tokens& t) {
  if (t.empty()) return nullptr;
  tokens parent(t.begin(), t.end() - 1);
  json::value* p = resolve(doc, parent);
  if (p == nullptr || !(p->is_object() || p->is_array())) return nullptr;
  return p;
}

// Each operation either succeeds or fills `err` and returns false.
bool do_add(json::value& doc, const tokens& path, const std::string& raw, json::value v, std::string& err) {
  if (path.empty()) {
    doc = std::move(v);
    return true;
  }
  json::value* parent = parent_of(doc, path);
  if (parent == nullptr) {
    err = "add operation does not apply: doc is missing path: \"" + raw + "\": missing value";
    return false;
  }
  const std::string& key = path.back();
  if (auto* o = parent->if_object()) {
    (*o)[key] = std::move(v);
    return true;
  }
  auto& a = parent->get_array();
  if (key == "-") {
    a.push_back(std::move(v));
    return true;
  }
  std::int64_t idx = 0;
  if (!parse_index(key, idx)) {
    err = "add operation does not apply: doc is missing path: \"" + raw + "\": missing value";
    return false;
  }
  const auto n = static_cast<std::int64_t>(a.size());
  if (idx < 0) {
    if (idx < -n) {
      err = "Unable to access invalid index: " + std::to_string(idx) + ": invalid index referenced";
      return false;
    }
    idx += n;
  }
  if (idx > n) {
    err = "Unable to access invalid index: " + std::to_string(idx) + ": invalid index referenced";
    return false;
  }
  a.insert(a.begin() + idx, std::move(v));
  return true;
}

bool do_remove(json::value& doc, const tokens& path, const std::string& raw, json::value* removed, std::string& err) {
  json::value* parent = parent_of(doc, path);
  if (parent == nullptr) {
    err = "remove operation does not apply: doc is missing path: \"" + raw + "\": missing value";
    return false;
  }
  const std::string& key = path.back();
  if (auto* o = parent->if_object()) {
    auto it = o->find(key);
    if (it == o->end()) {
      err = "error in remove for path: '" + raw + "': Unable to remove nonexistent key: " + key + ": missing value";
      return false;
    }
    if (removed != nullptr) *removed = std::move(it->value());
    o->erase(it);
    return true;
  }
  auto& a = parent->get_array();
  std::int64_t idx = 0;
  const auto n = static_cast<std::int64_t>(a.size());
  if (!parse_index(key, idx) || idx >= n || idx < -n) {
    err = "error in remove for path: '" + raw + "': Unable to access invalid index: " + key + ": invalid index referenced";
    return false;
  }
  if (idx < 0) idx += n;
  if (removed != nullptr) *removed = std::move(a[static_cast<std::size_t>(idx)]);
  a.erase(a.begin() + idx);
  return true;
}

bool do_replace(json::value& doc, const tokens& path, const std::string& raw, json::value v, std::string& err) {
  if (path.empty()) {
    doc = std::move(v);
    return true;
  }
  json::value* target = resolve(doc, path);
  if (target == nullptr) {
    err = "replace operation does not apply: doc is missing key: " + raw + ": missing value";
    return false;
  }
  *target = std::move(v);
  return true;
}

bool is_prefix(const tokens& a, const tokens& b) {
  if (a.size() >= b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

const json::string* string_member(const json::object& op, std::string_view key) {
  auto it = op.find(key);
  if (it == op.end()) return nullptr;
  return it->value().if_string();
}

}  // namespace

patch_result<json::value> apply_json_patch(const json::value& document, const json::value& patch) {
  const auto* ops = patch.if_array();
  if (ops == nullptr) {
    return bad_request(std::string("json: cannot unmarshal ") + json_type_name(patch) +
                       " into Go value of type jsonpatch.Patch");
  }
  for (const auto& op : *ops) {
    if (!op.is_object()) {
      return bad_request(std::string("json: cannot unmarshal ") + json_type_name(op) +
                         " into Go value of type jsonpatch.Operation");
    }
  }
  if (ops->size() > max_json_patch_operations) {
    std::string m = "The allowed maximum operations in a JSON patch is " + std::to_string(max_json_patch_operations) +
                    ", got " + std::to_string(ops->size());
    return patch_error{413, "RequestEntityTooLarge", "Request entity too large: " + m, m};
  }

  json::value doc = document;
  tokens path, from;
  std::string err;
  for (const auto& opv : *ops) {
    const auto& op = opv.get_object();
    const json::string* kind = string_member(op, "op");
    const std::string kind_s = kind != nullptr ? std::string(*kind) : std::string("unknown");
    const json::string* path_s = string_member(op, "path");
    if (path_s == nullptr) return unprocessable("operation missing path field: missing value");
    const std::string raw(*path_s);
    if (!parse_pointer(raw, path, err)) return unprocessable(err);

    auto value_of = [&]() -> json::value {
      auto it = op.find("value");
      return it == op.end() ? json::value() : it->value();
    };

    if (kind_s == "add") {
      if (!op.contains("value")) return unprocessable("add operation missing value: missing value");
      if (!do_add(doc, path, raw, value_of(), err)) return unprocessable(err);
    } else if (kind_s == "remove") {
      if (path.empty()) return unprocessable("remove operation does not apply: doc is missing path: \"\": missing value");
      if (!do_remove(doc, path, raw, nullptr, err)) return unprocessable(err);
    } else if (kind_s == "replace") {
      if (!op.contains("value")) return unprocessable("replace operation missing value: missing value");
      if (!do_replace(doc, path, raw, value_of(), err)) return unprocessable(err);
    } else if (kind_s == "move" || kind_s == "copy") {
      const json::string* from_s = string_member(op, "from");
      if (from_s == nullptr) return unprocessable(kind_s + " operation missing from field: missing value");
      const std::string raw_from(*from_s);
      if (!parse_pointer(raw_from, from, err)) return unprocessable(err);
      json::value moved;
      if (kind_s == "move") {
        if (from == path) continue;
        if (is_prefix(from, path)) {
          return unprocessable("move operation does not apply: \"" + raw_from + "\" is a prefix of \"" + raw + "\"");
        }
        if (from.empty() || resolve(doc, from) == nullptr) {
          return unprocessable("move operation does not apply: doc is missing from path: " + raw_from + ": missing value");
        }
        if (!do_remove(doc, from, raw_from, &moved, err)) return unprocessable(err);
      } else {
        json::value* src = resolve(doc, from);
        if (src == nullptr) {
          return unprocessable("copy operation does not apply: doc is missing from path: " + raw_from + ": missing value");
        }
        moved = *src;
      }
      if (!do_add(doc, path, raw, std::move(moved), err)) return unprocessable(err);
    } else if (kind_s == "test") {
      json::value* target = resolve(doc, path);
      json::value expected = value_of();
      if (target == nullptr) {
        if (expected.is_null()) continue;  // evanphx v4: a missing member tests equal to null
        return unprocessable("testing value " + raw + " failed: test failed");
      }
      if (!json_equal(*target, expected)) return unprocessable("testing value " + raw + " failed: test failed");
    } else {
      return unprocessable("Unexpected kind: " + kind_s);
    }
  }
  return doc;
}

}  // namespace kubesim
