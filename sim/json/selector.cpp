#include "sim/json/selector.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <optional>
#include <cstdint>

namespace kubesim {
namespace json = boost::json;

namespace {

// ---- validation of label keys and values (k8s.io/apimachinery/pkg/util/validation) ----

bool is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool is_qualified_name_part(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*
bool is_dns1123_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (label.empty() || !lower_alnum(label.front()) || !lower_alnum(label.back())) return false;
    if (!std::all_of(label.begin(), label.end(), [&](char c) { return lower_alnum(c) || c == '-'; })) return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

constexpr std::string_view qualified_name_fmt =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

std::vector<std::string> qualified_name_errors(std::string_view key) {
  std::vector<std::string> errs;
  std::string_view name = key;
  auto slash = key.find('/');
  if (slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) {
      errs.push_back("a qualified name " + std::string(qualified_name_fmt) +
                     " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
      return errs;
    }
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) {
      errs.push_back("prefix part must be non-empty");
    } else if (!is_dns1123_subdomain(prefix)) {
      errs.push_back(
          "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
          "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
          "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
    }
  }
  if (name.empty()) {
    errs.push_back("name part must be non-empty");
  } else if (name.size() > 63) {
    errs.push_back("name part must be no more than 63 characters");
  }
  if (!name.empty() && !is_qualified_name_part(name)) errs.push_back("name part " + std::string(qualified_name_fmt));
  return errs;
}

std::vector<std::string> label_value_errors(std::string_view v) {
  std::vector<std::string> errs;
  if (v.size() > 63) errs.push_back("must be no more than 63 characters");
  if (!v.empty() && !is_qualified_name_part(v)) {
    errs.push_back(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
  }
  return errs;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::string go_quote(std::string_view s) { return json::serialize(json::string_view(s.data(), s.size())); }

bool parse_int64(std::string_view s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// NewRequirement(): validates and normalizes (sorted, unique values). Returns the error text.
std::optional<std::string> make_requirement(std::string key, selector_op op, std::vector<std::string> values,
                                            label_requirement& out) {
  std::vector<std::string> errs;
  if (auto ke = qualified_name_errors(key); !ke.empty()) {
    errs.push_back("key: Invalid value: " + go_quote(key) + ": " + join(ke, "; "));
  }
  switch (op) {
    case selector_op::in:
    case selector_op::not_in:
      if (values.empty()) errs.push_back("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty");
      break;
    case selector_op::equals:
    case selector_op::double_equals:
    case selector_op::not_equals:
      if (values.size() != 1) errs.push_back("values: Invalid value: []string{}: exact-match compatibility requires one single value");
      break;
    case selector_op::exists:
    case selector_op::does_not_exist:
      if (!values.empty()) errs.push_back("values: Invalid value: []string{}: values set must be empty for exists and does not exist");
      break;
    case selector_op::greater_than:
    case selector_op::less_than: {
      std::int64_t n = 0;
      if (values.size() != 1) {
        errs.push_back("values: Invalid value: []string{}: for 'Gt', 'Lt' operators, exactly one value is required");
      } else if (!parse_int64(values[0], n)) {
        errs.push_back("values[0]: Invalid value: " + go_quote(values[0]) +
                       ": for 'Gt', 'Lt' operators, the value must be an integer");
      }
      break;
    }
  }
  if (op != selector_op::greater_than && op != selector_op::less_than) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (auto ve = label_value_errors(values[i]); !ve.empty()) {
        errs.push_back("values[" + std::to_string(i) + "]: Invalid value: " + go_quote(values[i]) + ": " + join(ve, "; "));
      }
    }
  }
  if (!errs.empty()) return errs.size() == 1 ? errs[0] : "[" + join(errs, ", ") + "]";
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  out = label_requirement{std::move(key), op, std::move(values)};
  return std::nullopt;
}

// ---- the lexer and parser of k8s.io/apimachinery/pkg/labels/selector.go ----

enum class tok { error, eos, closed_par, comma, does_not_exist, double_equals, equals, greater_than, identifier, in,
                 less_than, not_equals, not_in, open_par };

struct token {
  tok t;
  std::string lit;
};

bool is_whitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_special(char c) { return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<'; }

std::optional<tok> keyword(std::string_view s) {
  if (s == ")") return tok::closed_par;
  if (s == ",") return tok::comma;
  if (s == "!") return tok::does_not_exist;
  if (s == "==") return tok::double_equals;
  if (s == "=") return tok::equals;
  if (s == ">") return tok::greater_than;
  if (s == "in") return tok::in;
  if (s == "<") return tok::less_than;
  if (s == "!=") return tok::not_equals;
  if (s == "notin") return tok::not_in;
  if (s == "(") return tok::open_par;
  return std::nullopt;
}

std::vector<token> lex(std::string_view s) {
  std::vector<token> out;
  std::size_t i = 0;
  for (;;) {
    while (i < s.size() && is_whitespace(s[i])) ++i;
    if (i >= s.size()) {
      out.push_back({tok::eos, ""});
      return out;
    }
    if (is_special(s[i])) {
      std::string buf;
      std::optional<token> last;
      while (i < s.size() && is_special(s[i])) {
        buf += s[i];
        if (auto k = keyword(buf)) {
          last = token{*k, buf};
          ++i;
        } else if (last) {
          break;
        } else {
          ++i;
        }
      }
      if (!last) {
        out.push_back({tok::error, "error expected: keyword found '" + buf + "'"});
        out.push_back({tok::eos, ""});
        return out;
      }
      out.push_back(*last);
      continue;
    }
    std::size_t start = i;
    while (i < s.size() && !is_whitespace(s[i]) && !is_special(s[i])) ++i;
    std::string word(s.substr(start, i - start));
    if (auto k = keyword(word)) {
      out.push_back({*k, word});
    } else {
      out.push_back({tok::identifier, word});
    }
  }
}

class parser {
 public:
  explicit parser(std::vector<token> t) : toks_(std::move(t)) {}

  selector_result<std::vector<label_requirement>> parse() {
    std::vector<label_requirement> reqs;
    for (;;) {
      token t = lookahead(true);
      if (t.t == tok::identifier || t.t == tok::does_not_exist) {
        label_requirement r;
        if (auto err = parse_requirement(r)) return selector_error{"unable to parse requirement: " + *err};
        reqs.push_back(std::move(r));
        token n = consume(true);
        if (n.t == tok::eos) return reqs;
        if (n.t == tok::comma) {
          token n2 = lookahead(true);
          if (n2.t != tok::identifier && n2.t != tok::does_not_exist) {
            return selector_error{"found '" + n2.lit + "', expected: identifier after ','"};
          }
          continue;
        }
        return selector_error{"found '" + n.lit + "', expected: ',' or 'end of string'"};
      }
      if (t.t == tok::eos) return reqs;
      return selector_error{"found '" + t.lit + "', expected: !, identifier, or 'end of string'"};
    }
  }

 private:
  // In value context, "in" and "notin" are plain identifiers.
  token adjust(token t, bool values) const {
    if (values && (t.t == tok::in || t.t == tok::not_in)) t.t = tok::identifier;
    return t;
  }
  token lookahead(bool values) const { return adjust(toks_[std::min(pos_, toks_.size() - 1)], values); }
  token consume(bool values) {
    token t = lookahead(values);
    if (pos_ < toks_.size() - 1) ++pos_;
    return t;
  }

  std::optional<std::string> parse_requirement(label_requirement& out) {
    // parseKeyAndInferOperator()
    std::optional<selector_op> op;
    token t = consume(true);
    if (t.t == tok::does_not_exist) {
      op = selector_op::does_not_exist;
      t = consume(true);
    }
    if (t.t != tok::identifier) return "found '" + t.lit + "', expected: identifier";
    std::string key = t.lit;
    if (auto ke = qualified_name_errors(key); !ke.empty()) {
      return "key: Invalid value: " + go_quote(key) + ": " + join(ke, "; ");
    }
    token la = lookahead(true);
    if (la.t == tok::eos || la.t == tok::comma) {
      if (!op) op = selector_op::exists;
      return make_requirement(std::move(key), *op, {}, out);
    }
    // parseOperator()
    token o = consume(false);
    switch (o.t) {
      case tok::in: op = selector_op::in; break;
      case tok::equals: op = selector_op::equals; break;
      case tok::double_equals: op = selector_op::double_equals; break;
      case tok::greater_than: op = selector_op::greater_than; break;
      case tok::less_than: op = selector_op::less_than; break;
      case tok::not_in: op = selector_op::not_in; break;
      case tok::not_equals: op = selector_op::not_equals; break;
      default: return "found '" + o.lit + "', expected: in, notin, =, ==, !=, gt, lt";
    }
    std::vector<std::string> values;
    if (*op == selector_op::in || *op == selector_op::not_in) {
      if (auto err = parse_values(values)) return err;
    } else {
      if (auto err = parse_exact_value(values)) return err;
    }
    return make_requirement(std::move(key), *op, std::move(values), out);
  }

  std::optional<std::string> parse_values(std::vector<std::string>& out) {
    token t = consume(true);
    if (t.t != tok::open_par) return "found '" + t.lit + "' expected: '('";
    token la = lookahead(true);
    if (la.t == tok::identifier || la.t == tok::comma) {
      if (auto err = parse_identifiers(out)) return err;
      token c = consume(true);
      if (c.t != tok::closed_par) return "found '" + c.lit + "', expected: ')'";
      return std::nullopt;
    }
    if (la.t == tok::closed_par) {
      consume(true);
      out.push_back("");
      return std::nullopt;
    }
    return "found '" + la.lit + "', expected: ',', ')' or identifier";
  }

  std::optional<std::string> parse_identifiers(std::vector<std::string>& out) {
    for (;;) {
      token t = consume(true);
      if (t.t == tok::identifier) {
        out.push_back(t.lit);
        token la = lookahead(true);
        if (la.t == tok::comma) continue;
        if (la.t == tok::closed_par) return std::nullopt;
        return "found '" + la.lit + "', expected: ',' or ')'";
      }
      if (t.t == tok::comma) {
        if (out.empty()) out.push_back("");
        token la = lookahead(true);
        if (la.t == tok::closed_par) {
          out.push_back("");
          return std::nullopt;
        }
        if (la.t == tok::comma) {
          consume(true);
          out.push_back("");
        }
        continue;
      }
      return "found '" + t.lit + "', expected: ',', or identifier";
    }
  }

  std::optional<std::string> parse_exact_value(std::vector<std::string>& out) {
    token la = lookahead(true);
    if (la.t == tok::eos || la.t == tok::comma) {
      out.push_back("");
      return std::nullopt;
    }
    token t = consume(true);
    if (t.t == tok::identifier) {
      out.push_back(t.lit);
      return std::nullopt;
    }
    return "found '" + t.lit + "', expected: identifier";
  }

  std::vector<token> toks_;
  std::size_t pos_ = 0;
};

const json::object* labels_of(const json::object& object) {
  auto m = object.find("metadata");
  if (m == object.end() || !m->value().is_object()) return nullptr;
  auto l = m->value().get_object().find("labels");
  if (l == m->value().get_object().end()) return nullptr;
  return l->value().if_object();
}

void sort_by_key(std::vector<label_requirement>& reqs) {
  std::stable_sort(reqs.begin(), reqs.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
}

}  // namespace

bool label_requirement::matches(const json::object* labels) const {
  const json::string* v = nullptr;
  if (labels != nullptr) {
    auto it = labels->find(key);
    if (it != labels->end()) v = it->value().if_string();
  }
  auto in_values = [&] { return v != nullptr && std::binary_search(values.begin(), values.end(), std::string_view(*v)); };
  switch (op) {
    case selector_op::exists: return v != nullptr;
    case selector_op::does_not_exist: return v == nullptr;
    case selector_op::equals:
    case selector_op::double_equals:
    case selector_op::in: return in_values();
    case selector_op::not_equals:
    case selector_op::not_in: return !in_values();
    case selector_op::greater_than:
    case selector_op::less_than: {
      std::int64_t have = 0, want = 0;
      if (v == nullptr || values.size() != 1 || !parse_int64(*v, have) || !parse_int64(values[0], want)) return false;
      return op == selector_op::greater_than ? have > want : have < want;
    }
  }
  return false;
}

std::string label_requirement::to_string() const {
  auto list = [&] { return "(" + join(values, ",") + ")"; };
  const std::string first = values.empty() ? std::string() : values.front();
  switch (op) {
    case selector_op::exists: return key;
    case selector_op::does_not_exist: return "!" + key;
    case selector_op::equals: return key + "=" + first;
    case selector_op::double_equals: return key + "==" + first;
    case selector_op::not_equals: return key + "!=" + first;
    case selector_op::in: return key + " in " + list();
    case selector_op::not_in: return key + " notin " + list();
    case selector_op::greater_than: return key + ">" + first;
    case selector_op::less_than: return key + "<" + first;
  }
  return key;
}

label_selector label_selector::nothing() {
  label_selector s;
  s.nothing_ = true;
  return s;
}

bool label_selector::matches(const json::object* labels) const {
  if (nothing_) return false;
  for (const auto& r : requirements_)
    if (!r.matches(labels)) return false;
  return true;
}

bool label_selector::matches_object(const json::object& object) const { return matches(labels_of(object)); }

std::string label_selector::to_string() const {
  std::string out;
  for (std::size_t i = 0; i < requirements_.size(); ++i) {
    if (i > 0) out += ',';
    out += requirements_[i].to_string();
  }
  return out;
}

selector_result<label_selector> parse_label_selector(std::string_view s) {
  auto toks = lex(s);
  for (const auto& t : toks)
    if (t.t == tok::error) return selector_error{"unable to parse requirement: " + t.lit};
  parser p(std::move(toks));
  auto reqs = p.parse();
  if (!reqs) return reqs.error();
  label_selector out;
  out.requirements_ = std::move(*reqs);
  sort_by_key(out.requirements_);
  return out;
}

selector_result<label_selector> label_selector_from_object(const json::value& v) {
  if (v.is_null()) return label_selector::nothing();
  const auto* o = v.if_object();
  if (o == nullptr) return selector_error{"a label selector must be an object"};
  label_selector out;
  if (auto ml = o->find("matchLabels"); ml != o->end() && !ml->value().is_null()) {
    const auto* m = ml->value().if_object();
    if (m == nullptr) return selector_error{"matchLabels must be an object"};
    for (const auto& kv : *m) {
      const auto* s = kv.value().if_string();
      if (s == nullptr) return selector_error{"matchLabels values must be strings"};
      label_requirement r;
      if (auto err = make_requirement(std::string(kv.key()), selector_op::equals, {std::string(*s)}, r)) {
        return selector_error{*err};
      }
      out.requirements_.push_back(std::move(r));
    }
  }
  if (auto me = o->find("matchExpressions"); me != o->end() && !me->value().is_null()) {
    const auto* list = me->value().if_array();
    if (list == nullptr) return selector_error{"matchExpressions must be a list"};
    for (const auto& e : *list) {
      const auto* eo = e.if_object();
      if (eo == nullptr) return selector_error{"a matchExpressions entry must be an object"};
      auto str = [&](std::string_view k) -> std::string {
        auto it = eo->find(k);
        if (it == eo->end() || !it->value().is_string()) return {};
        return std::string(it->value().get_string());
      };
      const std::string oper = str("operator");
      selector_op op;
      if (oper == "In") {
        op = selector_op::in;
      } else if (oper == "NotIn") {
        op = selector_op::not_in;
      } else if (oper == "Exists") {
        op = selector_op::exists;
      } else if (oper == "DoesNotExist") {
        op = selector_op::does_not_exist;
      } else {
        return selector_error{go_quote(oper) + " is not a valid label selector operator"};
      }
      std::vector<std::string> values;
      if (auto vs = eo->find("values"); vs != eo->end() && vs->value().is_array()) {
        for (const auto& x : vs->value().get_array())
          if (const auto* s = x.if_string()) values.emplace_back(*s);
      }
      label_requirement r;
      if (auto err = make_requirement(str("key"), op, std::move(values), r)) return selector_error{*err};
      out.requirements_.push_back(std::move(r));
    }
  }
  sort_by_key(out.requirements_);
  return out;
}

label_selector label_selector_from_map(const json::object& m) {
  label_selector out;
  for (const auto& kv : m) {
    const auto* s = kv.value().if_string();
    std::vector<std::string> values{s != nullptr ? std::string(*s) : std::string()};
    out.requirements_.push_back(label_requirement{std::string(kv.key()), selector_op::equals, std::move(values)});
  }
  sort_by_key(out.requirements_);
  return out;
}

// ---- field selectors (k8s.io/apimachinery/pkg/fields/selector.go) ----

std::string field_value(const json::object& object, std::string_view dotted_path) {
  const json::value* cur = nullptr;
  const json::object* o = &object;
  std::size_t start = 0;
  for (;;) {
    auto dot = dotted_path.find('.', start);
    std::string_view part = dotted_path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (o == nullptr) return {};
    auto it = o->find(part);
    if (it == o->end()) return {};
    cur = &it->value();
    if (dot == std::string_view::npos) break;
    o = cur->if_object();
    start = dot + 1;
  }
  if (cur == nullptr || cur->is_null()) return {};
  if (const auto* s = cur->if_string()) return std::string(*s);
  return json::serialize(*cur);
}

bool field_selector::matches(const json::object& object) const {
  for (const auto& r : requirements_) {
    const bool eq = field_value(object, r.field) == r.value;
    if (eq != r.equal) return false;
  }
  return true;
}

selector_result<field_selector> parse_field_selector(std::string_view s, const std::vector<std::string>& extra_fields) {
  // splitTerms(): ',' separates terms unless escaped.
  std::vector<std::string> terms;
  std::string cur;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      cur += s[i];
      cur += s[++i];
      continue;
    }
    if (s[i] == ',') {
      terms.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur += s[i];
  }
  terms.push_back(std::move(cur));
  std::sort(terms.begin(), terms.end());

  field_selector out;
  for (const auto& term : terms) {
    if (term.empty()) continue;
    // splitTerm(): the first unescaped "!=", "==" or "=".
    std::optional<std::size_t> at;
    std::size_t op_len = 0;
    bool equal = true;
    for (std::size_t i = 0; i < term.size() && !at; ++i) {
      if (term[i] == '\\') {
        ++i;
        continue;
      }
      for (std::string_view op : {"!=", "==", "="}) {
        if (std::string_view(term).substr(i, op.size()) == op) {
          at = i;
          op_len = op.size();
          equal = op != "!=";
          break;
        }
      }
    }
    if (!at) {
      return selector_error{"invalid selector: '" + std::string(s) + "'; can't understand '" + term + "'"};
    }
    std::string field = term.substr(0, *at);
    std::string raw = term.substr(*at + op_len);
    std::string value;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '\\') {
        value += raw[i];
        continue;
      }
      if (i + 1 >= raw.size()) return selector_error{"invalid field selector: unterminated escape sequence"};
      char c = raw[++i];
      if (c != '\\' && c != ',' && c != '=') {
        return selector_error{"invalid field selector: invalid escape sequence: \\" + std::string(1, c)};
      }
      value += c;
    }
    const bool supported = field == "metadata.name" || field == "metadata.namespace" ||
                           std::find(extra_fields.begin(), extra_fields.end(), field) != extra_fields.end();
    if (!supported) return selector_error{"field label not supported: " + field};
    out.requirements_.push_back(field_requirement{std::move(field), equal, std::move(value)});
  }
  return out;
}

}  // namespace kubesim
