#include "sim/json/jsonpath.hpp"

#include "sim/json/json_compare.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <optional>

namespace kubesim {
namespace json = boost::json;

struct jsonpath::step {
  enum class kind { field, index, wildcard, recursive_field, filter };
  kind k = kind::field;
  std::string name;         // field, recursive_field
  std::int64_t index = 0;   // index (negative: from the end)
  // filter: @<path> [op literal]
  std::vector<std::string> filter_path;
  std::string op;           // "" means presence
  json::value literal;
};

namespace {

using step = jsonpath::step;

bool is_ident_char(char c) { return c != '.' && c != '[' && c != ']' && c != ' ' && c != '(' && c != ')' && c != '='; }

std::optional<std::string> parse_quoted(std::string_view s, std::size_t& i) {
  const char q = s[i++];
  std::string out;
  while (i < s.size() && s[i] != q) {
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out += s[i++];
  }
  if (i >= s.size()) return std::nullopt;
  ++i;  // closing quote
  return out;
}

void skip_spaces(std::string_view s, std::size_t& i) {
  while (i < s.size() && s[i] == ' ') ++i;
}

// "@.a.b['c']" -> {a, b, c}
std::optional<std::vector<std::string>> parse_relative(std::string_view s, std::size_t& i) {
  std::vector<std::string> out;
  if (i >= s.size() || s[i] != '@') return std::nullopt;
  ++i;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
      std::size_t start = i;
      while (i < s.size() && is_ident_char(s[i]) && s[i] != '!' && s[i] != '<' && s[i] != '>') ++i;
      if (i == start) return std::nullopt;
      out.emplace_back(s.substr(start, i - start));
    } else if (s[i] == '[' && i + 1 < s.size() && (s[i + 1] == '\'' || s[i + 1] == '"')) {
      ++i;
      auto q = parse_quoted(s, i);
      if (!q || i >= s.size() || s[i] != ']') return std::nullopt;
      ++i;
      out.push_back(*q);
    } else {
      break;
    }
  }
  return out;
}

std::optional<step> parse_filter(std::string_view body) {
  std::size_t i = 0;
  skip_spaces(body, i);
  step st;
  st.k = step::kind::filter;
  auto rel = parse_relative(body, i);
  if (!rel) return std::nullopt;
  st.filter_path = std::move(*rel);
  skip_spaces(body, i);
  if (i == body.size()) return st;
  for (std::string_view op : {"==", "!=", "<=", ">=", "<", ">"}) {
    if (body.substr(i, op.size()) == op) {
      st.op = std::string(op);
      i += op.size();
      break;
    }
  }
  if (st.op.empty()) return std::nullopt;
  skip_spaces(body, i);
  if (i >= body.size()) return std::nullopt;
  if (body[i] == '\'' || body[i] == '"') {
    auto q = parse_quoted(body, i);
    if (!q) return std::nullopt;
    st.literal = json::string(*q);
  } else {
    std::size_t start = i;
    while (i < body.size() && body[i] != ' ') ++i;
    boost::system::error_code ec;
    st.literal = json::parse(body.substr(start, i - start), ec);
    if (ec || !(st.literal.is_number() || st.literal.is_bool() || st.literal.is_null())) return std::nullopt;
  }
  skip_spaces(body, i);
  if (i != body.size()) return std::nullopt;
  return st;
}

const json::value* member(const json::value& v, std::string_view name) {
  const auto* o = v.if_object();
  if (o == nullptr) return nullptr;
  auto it = o->find(name);
  return it == o->end() ? nullptr : &it->value();
}

bool compare(const json::value& have, const std::string& op, const json::value& want) {
  if (op == "==") return json_equal(have, want);
  if (op == "!=") return !json_equal(have, want);
  int c = 0;
  if (have.is_number() && want.is_number()) {
    const double a = have.to_number<double>(), b = want.to_number<double>();
    c = a < b ? -1 : (a > b ? 1 : 0);
  } else if (have.is_string() && want.is_string()) {
    c = have.get_string().subview().compare(want.get_string().subview());
  } else {
    return false;
  }
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

bool filter_matches(const step& st, const json::value& item) {
  const json::value* cur = &item;
  for (const auto& p : st.filter_path) {
    cur = member(*cur, p);
    if (cur == nullptr) return false;
  }
  if (st.op.empty()) return true;
  return compare(*cur, st.op, st.literal);
}

void collect_recursive(const json::value& v, std::string_view name, std::vector<const json::value*>& out) {
  if (const auto* o = v.if_object()) {
    if (auto it = o->find(name); it != o->end()) out.push_back(&it->value());
    for (const auto& kv : *o) collect_recursive(kv.value(), name, out);
  } else if (const auto* a = v.if_array()) {
    for (const auto& e : *a) collect_recursive(e, name, out);
  }
}

}  // namespace

boost::system::result<jsonpath, jsonpath_error> jsonpath::parse(std::string_view expression) {
  std::string_view s = expression;
  auto fail = [&](std::string why) { return jsonpath_error{"unrecognized JSONPath " + std::string(expression) + ": " + why}; };
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (!s.empty() && s.front() == '{') {
    if (s.back() != '}') return fail("unclosed action");
    s = s.substr(1, s.size() - 2);
  }
  if (!s.empty() && s.front() == '$') s.remove_prefix(1);
  // "status.phase" without the leading dot, as some columns are written.
  std::string dotted;
  if (!s.empty() && s.front() != '.' && s.front() != '[') {
    dotted = "." + std::string(s);
    s = dotted;
  }

  auto steps = std::make_shared<std::vector<step>>();
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
      bool recursive = false;
      if (i < s.size() && s[i] == '.') {
        recursive = true;
        ++i;
      }
      if (i < s.size() && s[i] == '[') continue;  // ".[0]" and "..[*]" read as "[0]"
      std::size_t start = i;
      while (i < s.size() && is_ident_char(s[i])) ++i;
      std::string name(s.substr(start, i - start));
      if (name.empty()) {
        if (i == s.size() && !recursive && steps->empty()) break;  // "." alone: the root
        return fail("empty field name");
      }
      step st;
      if (name == "*") {
        st.k = step::kind::wildcard;
      } else {
        st.k = recursive ? step::kind::recursive_field : step::kind::field;
        st.name = std::move(name);
      }
      steps->push_back(std::move(st));
      continue;
    }
    if (s[i] == '[') {
      ++i;
      if (i >= s.size()) return fail("unterminated [");
      if (s[i] == '?') {
        ++i;
        if (i >= s.size() || s[i] != '(') return fail("a filter must look like [?(...)]");
        auto close = s.find(")]", i);
        if (close == std::string_view::npos) return fail("unterminated filter");
        auto st = parse_filter(s.substr(i + 1, close - i - 1));
        if (!st) return fail("unsupported filter");
        steps->push_back(std::move(*st));
        i = close + 2;
        continue;
      }
      if (s[i] == '\'' || s[i] == '"') {
        auto q = parse_quoted(s, i);
        if (!q || i >= s.size() || s[i] != ']') return fail("unterminated quoted member");
        ++i;
        step st;
        st.name = std::move(*q);
        steps->push_back(std::move(st));
        continue;
      }
      if (s[i] == '*') {
        if (i + 1 >= s.size() || s[i + 1] != ']') return fail("unterminated [*");
        i += 2;
        step st;
        st.k = step::kind::wildcard;
        steps->push_back(std::move(st));
        continue;
      }
      auto close = s.find(']', i);
      if (close == std::string_view::npos) return fail("unterminated [");
      std::string_view num = s.substr(i, close - i);
      std::int64_t n = 0;
      auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
      if (ec != std::errc() || p != num.data() + num.size() || num.empty()) return fail("unsupported subscript [" + std::string(num) + "]");
      step st;
      st.k = step::kind::index;
      st.index = n;
      steps->push_back(std::move(st));
      i = close + 1;
      continue;
    }
    return fail("unexpected character '" + std::string(1, s[i]) + "'");
  }
  jsonpath out;
  out.expression_ = std::string(expression);
  out.steps_ = std::move(steps);
  return out;
}

std::vector<const json::value*> jsonpath::find(const json::value& root) const {
  std::vector<const json::value*> cur{&root}, next;
  if (!steps_) return cur;
  for (const auto& st : *steps_) {
    next.clear();
    for (const json::value* v : cur) {
      switch (st.k) {
        case step::kind::field:
          if (const auto* m = member(*v, st.name)) next.push_back(m);
          break;
        case step::kind::recursive_field:
          collect_recursive(*v, st.name, next);
          break;
        case step::kind::index:
          if (const auto* a = v->if_array()) {
            std::int64_t idx = st.index < 0 ? st.index + static_cast<std::int64_t>(a->size()) : st.index;
            if (idx >= 0 && idx < static_cast<std::int64_t>(a->size())) next.push_back(&(*a)[static_cast<std::size_t>(idx)]);
          }
          break;
        case step::kind::wildcard:
          if (const auto* a = v->if_array()) {
            for (const auto& e : *a) next.push_back(&e);
          } else if (const auto* o = v->if_object()) {
            for (const auto& kv : *o) next.push_back(&kv.value());
          }
          break;
        case step::kind::filter:
          if (const auto* a = v->if_array()) {
            for (const auto& e : *a)
              if (filter_matches(st, e)) next.push_back(&e);
          } else if (const auto* o = v->if_object()) {
            for (const auto& kv : *o)
              if (filter_matches(st, kv.value())) next.push_back(&kv.value());
          }
          break;
      }
    }
    cur.swap(next);
    if (cur.empty()) break;
  }
  return cur;
}

std::string jsonpath_text(const json::value& v) {
  if (const auto* s = v.if_string()) return std::string(*s);
  return json::serialize(v);
}

}  // namespace kubesim
