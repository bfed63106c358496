#include "core/external_metrics.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <vector>

namespace canaryd::core {

namespace json = boost::json;

namespace {

constexpr std::string_view expected_format = "<namespace>/<metricName>?labelSelector=<urlencoded label selectors>";

using query_result = boost::system::result<external_metrics_query, std::string>;

query_result fail(std::string message) {
  return query_result(boost::system::in_place_error, "error parsing metric query: " + std::move(message));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's url.PathUnescape / QueryUnescape: %XX decoded ('+' is a space in a query only); a bad
// escape is nullopt.
std::optional<std::string> unescape(std::string_view s, bool query) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (query && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\r\n\v\f";
  auto a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return {};
  auto b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

// Go's url.PathEscape-like encoding of one path segment (what client-go's URL carries).
std::string escape_segment(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("-._~:@!$&'()*+,;=").find(static_cast<char>(c)) != std::string_view::npos;
    if (keep) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// Go's url.QueryEscape.
std::string escape_query(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

query_result parse_external_metrics_query(std::string_view raw) {
  // canaryd trims surrounding whitespace first: a `query: |` block ends in a line break, which
  // Go's url.Parse refuses as a control character (Flagger then fails every check of it).
  const std::string_view query = trim(raw);
  auto malformed = [&] {
    return fail(fmt::format("malformed query string, expected {}, got {}", expected_format, query));
  };
  for (unsigned char c : query)
    if (c < 0x20 || c == 0x7f) return malformed();
  std::string_view rest = query;
  if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);  // a fragment
  std::string_view raw_path = rest, raw_query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    raw_path = rest.substr(0, q);
    raw_query = rest.substr(q + 1);
  }
  auto path = unescape(raw_path, false);
  if (!path) return malformed();
  std::string_view p = *path;
  if (p.starts_with('/')) p.remove_prefix(1);
  std::vector<std::string_view> parts;
  for (;;) {
    auto at = p.find('/');
    parts.push_back(p.substr(0, at));
    if (at == std::string_view::npos) break;
    p.remove_prefix(at + 1);
  }
  if (parts.size() > 2) {
    return fail(fmt::format("malformed query string, too many slashes, expected {}, got {}", expected_format, query));
  }
  external_metrics_query out;
  if (parts.size() == 1) {
    out.metric = std::string(parts[0]);
  } else {
    if (!parts[0].empty()) out.namespace_ = std::string(parts[0]);
    out.metric = std::string(parts[1]);
  }
  if (out.metric.empty()) return fail("metric name cannot be empty");
  // url.Values.Get("labelSelector"): the first value; pairs that do not decode are skipped.
  while (!raw_query.empty()) {
    auto amp = raw_query.find('&');
    std::string_view pair = raw_query.substr(0, amp);
    raw_query = amp == std::string_view::npos ? std::string_view{} : raw_query.substr(amp + 1);
    auto eq = pair.find('=');
    auto key = unescape(pair.substr(0, eq), true);
    auto value = unescape(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value || *key != "labelSelector") continue;
    out.label_selector = std::string(trim(*value));
    break;
  }
  return out;
}

std::string external_metrics_target(const external_metrics_query& q) {
  std::string out = fmt::format("/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{}", escape_segment(q.namespace_),
                                escape_segment(q.metric));
  if (!q.label_selector.empty()) out += "?labelSelector=" + escape_query(q.label_selector);
  return out;
}

std::optional<double> parse_quantity(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::size_t i = 0;
  bool negative = false;
  if (s[i] == '+' || s[i] == '-') negative = s[i++] == '-';
  // <digits> | <digits>.<digits> | <digits>. | .<digits>
  const std::size_t start = i;
  std::size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  std::string number(s.substr(start, i - start));
  if (number.back() == '.') number.pop_back();
  if (number.front() == '.') number.insert(number.begin(), '0');
  double mantissa = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), mantissa);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  const std::string_view suffix = s.substr(i);
  double scale = 1;
  static constexpr std::pair<std::string_view, int> binary[] = {{"Ki", 10}, {"Mi", 20}, {"Gi", 30},
                                                                {"Ti", 40}, {"Pi", 50}, {"Ei", 60}};
  static constexpr std::pair<std::string_view, int> decimal[] = {{"n", -9}, {"u", -6}, {"m", -3}, {"", 0}, {"k", 3},
                                                                 {"M", 6},  {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  bool known = false;
  for (const auto& [name, e] : binary) {
    if (suffix == name) scale = std::ldexp(1.0, e), known = true;
  }
  for (const auto& [name, e] : decimal) {
    if (suffix == name) scale = std::pow(10.0, e), known = true;
  }
  if (!known && suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    // A decimal exponent: e<signed integer>.
    std::string_view exp = suffix.substr(1);
    std::size_t j = 0;
    if (exp[0] == '+' || exp[0] == '-') ++j;
    if (j == exp.size()) return std::nullopt;
    for (std::size_t k = j; k < exp.size(); ++k)
      if (exp[k] < '0' || exp[k] > '9') return std::nullopt;
    long e = 0;
    auto from = exp.data() + (exp[0] == '+' ? 1 : 0);
    auto [p, ec2] = std::from_chars(from, exp.data() + exp.size(), e);
    if (ec2 != std::errc() || p != exp.data() + exp.size()) return std::nullopt;
    scale = std::pow(10.0, static_cast<double>(e));
    known = true;
  }
  if (!known) return std::nullopt;
  double v = mantissa * scale;
  return negative ? -v : v;
}

metric_observation read_external_metrics_answer(std::string_view body) {
  metric_observation o;
  auto failed = [&](std::string why) {
    o.result = metric_observation::outcome::query_failed;
    o.error = "error querying external metrics API: " + std::move(why);
    return o;
  };
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return failed(fmt::format("the answer is not JSON: {}", body.substr(0, 200)));
  const json::value* items = doc.as_object().if_contains("items");
  if (items && items->is_null()) items = nullptr;
  if (items && !items->is_array()) return failed("items is not a list");
  if (!items || items->as_array().empty()) {
    o.result = metric_observation::outcome::no_values;
    o.error = "no external metrics found: no values found";
    return o;
  }
  const json::value& first = items->as_array()[0];
  const json::value* v = first.is_object() ? first.as_object().if_contains("value") : nullptr;
  // Quantity's UnmarshalJSON: a JSON string, or the bare text of a number.
  std::string text;
  if (v && v->is_string()) {
    text = std::string(trim(v->as_string()));
  } else if (v && v->is_number()) {
    text = json::serialize(*v);
  } else {
    return failed("the first item has no value");
  }
  auto q = parse_quantity(text);
  if (!q) return failed(fmt::format("quantities must match the regular expression '{}': {}",
                                    "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$", text));
  o.result = metric_observation::outcome::value;
  o.value = *q;
  return o;
}

}  // namespace canaryd::core
