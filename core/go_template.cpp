#include "core/go_template.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "core/go_format.hpp"

// The facts below (token rules, error wording, evaluation order, fmt's padding rules) are Go's
// text/template, text/template/parse, fmt and strconv as documented and tested upstream; the code
// is ours. Comments name the Go function whose behaviour a piece reproduces.
namespace canaryd::core {

namespace {

constexpr std::size_t max_depth = 300;              // parentheses + control nesting + template calls
constexpr std::size_t max_output = 1024 * 1024;     // bytes a render may produce
constexpr std::size_t max_steps = 100'000;          // nodes an execution may walk
// Bytes of values an execution may produce or copy (function results, variable and dot reads).
// Steps alone do not bound the time: one printf with a width of millions, or a variable of a
// megabyte read in a loop, cost milliseconds each (a fuzzer's template took minutes).
constexpr std::size_t max_value_bytes = 8 * max_output;

// ---------------------------------------------------------------------------------------------
// UTF-8 and Go's quoting (unicode/utf8, strconv).

constexpr char32_t rune_error = 0xFFFD;
constexpr char32_t max_rune = 0x10FFFF;

// utf8.DecodeRuneInString: an invalid or truncated sequence decodes as (U+FFFD, 1).
std::pair<char32_t, std::size_t> decode_rune(std::string_view s) {
  if (s.empty()) return {rune_error, 0};
  const auto c0 = static_cast<unsigned char>(s[0]);
  if (c0 < 0x80) return {c0, 1};
  auto cont = [&](std::size_t i) { return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80; };
  auto bits = [&](std::size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(s[i]) & 0x3F); };
  if (c0 >= 0xC2 && c0 <= 0xDF && cont(1)) return {(static_cast<char32_t>(c0 & 0x1F) << 6) | bits(1), 2};
  if (c0 >= 0xE0 && c0 <= 0xEF && cont(1) && cont(2)) {
    const char32_t r = (static_cast<char32_t>(c0 & 0x0F) << 12) | (bits(1) << 6) | bits(2);
    if (r >= 0x800 && (r < 0xD800 || r > 0xDFFF)) return {r, 3};
  }
  if (c0 >= 0xF0 && c0 <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    const char32_t r = (static_cast<char32_t>(c0 & 0x07) << 18) | (bits(1) << 12) | (bits(2) << 6) | bits(3);
    if (r >= 0x10000 && r <= max_rune) return {r, 4};
  }
  return {rune_error, 1};
}

bool valid_rune(char32_t r) { return r <= max_rune && (r < 0xD800 || r > 0xDFFF); }

void append_rune(std::string& out, char32_t r) {
  if (!valid_rune(r)) r = rune_error;
  if (r < 0x80) {
    out += static_cast<char>(r);
  } else if (r < 0x800) {
    out += static_cast<char>(0xC0 | (r >> 6));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else if (r < 0x10000) {
    out += static_cast<char>(0xE0 | (r >> 12));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (r >> 18));
    out += static_cast<char>(0x80 | ((r >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (r & 0x3F));
  }
}

std::size_t rune_count(std::string_view s) {
  std::size_t n = 0;
  while (!s.empty()) {
    s.remove_prefix(decode_rune(s).second);
    ++n;
  }
  return n;
}

// unicode.IsPrint, exact for ASCII and approximate beyond it (spaces, format characters and
// C1 controls are not printable; everything else is).
bool is_print(char32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  if (r <= 0xA0 || r == 0xAD) return false;
  if ((r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) || (r >= 0x205F && r <= 0x206F)) return false;
  if (r == 0x3000 || r == 0xFEFF || (r >= 0xFFF9 && r <= 0xFFFB) || r == 0xFFFE || r == 0xFFFF) return false;
  if (r >= 0xE000 && r <= 0xF8FF) return false;  // private use
  return valid_rune(r);
}

const char lower_hex[] = "0123456789abcdef";
const char upper_hex[] = "0123456789ABCDEF";

// strconv.appendEscapedRune.
void append_escaped_rune(std::string& out, char32_t r, char quote, bool ascii_only) {
  if (r == static_cast<char32_t>(quote) || r == '\\') {
    out += '\\';
    out += static_cast<char>(r);
    return;
  }
  if (ascii_only ? (r < 0x80 && is_print(r)) : is_print(r)) {
    append_rune(out, r);
    return;
  }
  switch (r) {
    case '\a': out += "\\a"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\v': out += "\\v"; return;
    default: break;
  }
  if (r < ' ' || r == 0x7F) {
    out += "\\x";
    out += lower_hex[(r >> 4) & 0xF];
    out += lower_hex[r & 0xF];
    return;
  }
  if (!valid_rune(r)) r = rune_error;
  if (r < 0x10000) {
    out += "\\u";
    for (int s = 12; s >= 0; s -= 4) out += lower_hex[(r >> s) & 0xF];
  } else {
    out += "\\U";
    for (int s = 28; s >= 0; s -= 4) out += lower_hex[(r >> s) & 0xF];
  }
}

// strconv.Quote / QuoteToASCII.
std::string quote_with(std::string_view s, char quote, bool ascii_only) {
  std::string out(1, quote);
  while (!s.empty()) {
    auto [r, width] = decode_rune(s);
    if (width == 1 && r == rune_error) {
      out += "\\x";
      out += lower_hex[static_cast<unsigned char>(s[0]) >> 4];
      out += lower_hex[static_cast<unsigned char>(s[0]) & 0xF];
    } else {
      append_escaped_rune(out, r, quote, ascii_only);
    }
    s.remove_prefix(width);
  }
  out += quote;
  return out;
}

// strconv.QuoteRune / QuoteRuneToASCII.
std::string quote_rune(char32_t r, bool ascii_only) {
  if (!valid_rune(r)) r = rune_error;
  std::string out = "'";
  append_escaped_rune(out, r, '\'', ascii_only);
  return out + "'";
}

// strconv.CanBackquote.
bool can_backquote(std::string_view s) {
  while (!s.empty()) {
    auto [r, width] = decode_rune(s);
    s.remove_prefix(width);
    if (width > 1) {
      if (r == 0xFEFF) return false;
      continue;
    }
    if (r == rune_error) return false;
    if ((r < ' ' && r != '\t') || r == '`' || r == 0x7F) return false;
  }
  return true;
}

// fmt's %#U: "U+0041 'A'" for a printable rune, "U+0007" otherwise.
std::string format_unicode(char32_t r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(r));
  std::string out = buf;
  if (is_print(r)) {
    out += " '";
    append_rune(out, r);
    out += "'";
  }
  return out;
}

// strconv.UnquoteChar: one (possibly escaped) character of a quoted literal.
struct unquoted_char {
  char32_t value = 0;
  bool multibyte = false;  // the value must be written as UTF-8, not as one byte
  std::size_t consumed = 0;
};
std::optional<unquoted_char> unquote_char(std::string_view s, char quote) {
  if (s.empty()) return std::nullopt;
  const auto c = static_cast<unsigned char>(s[0]);
  if (c == static_cast<unsigned char>(quote) && (quote == '\'' || quote == '"')) return std::nullopt;
  if (c >= 0x80) {
    auto [r, w] = decode_rune(s);
    return unquoted_char{r, true, w};
  }
  if (c != '\\') return unquoted_char{c, false, 1};
  if (s.size() <= 1) return std::nullopt;
  const char e = s[1];
  auto hex_value = [](char h) -> int {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
  };
  switch (e) {
    case 'a': return unquoted_char{'\a', false, 2};
    case 'b': return unquoted_char{'\b', false, 2};
    case 'f': return unquoted_char{'\f', false, 2};
    case 'n': return unquoted_char{'\n', false, 2};
    case 'r': return unquoted_char{'\r', false, 2};
    case 't': return unquoted_char{'\t', false, 2};
    case 'v': return unquoted_char{'\v', false, 2};
    case 'x':
    case 'u':
    case 'U': {
      const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
      if (s.size() < 2 + n) return std::nullopt;
      char32_t v = 0;
      for (std::size_t j = 0; j < n; ++j) {
        const int x = hex_value(s[2 + j]);
        if (x < 0) return std::nullopt;
        v = (v << 4) | static_cast<char32_t>(x);
      }
      if (e == 'x') return unquoted_char{v, false, 2 + n};
      if (!valid_rune(v)) return std::nullopt;
      return unquoted_char{v, true, 2 + n};
    }
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
      if (s.size() < 4) return std::nullopt;
      char32_t v = 0;
      for (std::size_t j = 1; j <= 3; ++j) {
        if (s[j] < '0' || s[j] > '7') return std::nullopt;
        v = (v << 3) | static_cast<char32_t>(s[j] - '0');
      }
      if (v > 255) return std::nullopt;
      return unquoted_char{v, false, 4};
    }
    case '\\': return unquoted_char{'\\', false, 2};
    case '\'':
    case '"':
      if (e != quote) return std::nullopt;
      return unquoted_char{static_cast<char32_t>(e), false, 2};
    default: return std::nullopt;
  }
}

// strconv.Unquote for "..." and `...` literals (the lexer has already checked the delimiters).
std::optional<std::string> unquote(std::string_view lit) {
  if (lit.size() < 2) return std::nullopt;
  const char q = lit.front();
  if (lit.back() != q) return std::nullopt;
  std::string_view body = lit.substr(1, lit.size() - 2);
  std::string out;
  if (q == '`') {
    if (body.find('`') != std::string_view::npos) return std::nullopt;
    for (char c : body) {
      if (c != '\r') out += c;
    }
    return out;
  }
  if (q != '"') return std::nullopt;
  if (body.find('\n') != std::string_view::npos) return std::nullopt;
  while (!body.empty()) {
    auto c = unquote_char(body, '"');
    if (!c) return std::nullopt;
    if (c->multibyte) {
      append_rune(out, c->value);
    } else {
      out += static_cast<char>(c->value);
    }
    body.remove_prefix(c->consumed);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Go's number syntax (strconv.ParseUint / ParseInt / ParseFloat with base 0).

char lower(char c) { return static_cast<char>(c | 0x20); }

// strconv.underscoreOK.
bool underscore_ok(std::string_view s) {
  char saw = '^';
  std::size_t i = 0;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  bool hex = false;
  if (s.size() >= 2 && s[0] == '0' && (lower(s[1]) == 'b' || lower(s[1]) == 'o' || lower(s[1]) == 'x')) {
    i = 2;
    saw = '0';
    hex = lower(s[1]) == 'x';
  }
  for (; i < s.size(); ++i) {
    if ((s[i] >= '0' && s[i] <= '9') || (hex && lower(s[i]) >= 'a' && lower(s[i]) <= 'f')) {
      saw = '0';
      continue;
    }
    if (s[i] == '_') {
      if (saw != '0') return false;
      saw = '_';
      continue;
    }
    if (saw == '_') return false;
    saw = '!';
  }
  return saw != '_';
}

std::optional<std::uint64_t> parse_go_uint(std::string_view s0) {
  std::string_view s = s0;
  if (s.empty()) return std::nullopt;
  unsigned base = 10;
  if (s[0] == '0') {
    if (s.size() >= 3 && lower(s[1]) == 'b') {
      base = 2;
      s.remove_prefix(2);
    } else if (s.size() >= 3 && lower(s[1]) == 'o') {
      base = 8;
      s.remove_prefix(2);
    } else if (s.size() >= 3 && lower(s[1]) == 'x') {
      base = 16;
      s.remove_prefix(2);
    } else {
      base = 8;
      s.remove_prefix(1);
    }
  }
  std::uint64_t n = 0;
  bool underscores = false;
  for (char c : s) {
    unsigned d;
    if (c == '_') {
      underscores = true;
      continue;
    }
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (lower(c) >= 'a' && lower(c) <= 'z') {
      d = static_cast<unsigned>(lower(c) - 'a' + 10);
    } else {
      return std::nullopt;
    }
    if (d >= base) return std::nullopt;
    if (n > (UINT64_MAX - d) / base) return std::nullopt;  // out of range
    n = n * base + d;
  }
  if (underscores && !underscore_ok(s0)) return std::nullopt;
  return n;
}

std::optional<std::int64_t> parse_go_int(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool neg = false;
  if (s[0] == '+' || s[0] == '-') {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  auto u = parse_go_uint(s);
  if (!u) return std::nullopt;
  const std::uint64_t cutoff = std::uint64_t(1) << 63;
  if (!neg && *u >= cutoff) return std::nullopt;
  if (neg && *u > cutoff) return std::nullopt;
  return neg ? static_cast<std::int64_t>(0 - *u) : static_cast<std::int64_t>(*u);
}

// strconv.ParseFloat(s, 64): Go's decimal and hexadecimal float syntax (with underscores);
// nullopt on a syntax error or an overflow to infinity.
std::optional<double> parse_go_float(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  bool hex = false;
  if (i + 2 < s.size() && s[i] == '0' && lower(s[i + 1]) == 'x') {
    hex = true;
    i += 2;
  }
  bool underscores = false, saw_dot = false, saw_digits = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      underscores = true;
      continue;
    }
    if (c == '.') {
      if (saw_dot) break;
      saw_dot = true;
      continue;
    }
    if ((c >= '0' && c <= '9') || (hex && lower(c) >= 'a' && lower(c) <= 'f')) {
      saw_digits = true;
      continue;
    }
    break;
  }
  if (!saw_digits) return std::nullopt;
  if (i < s.size() && lower(s[i]) == (hex ? 'p' : 'e')) {
    ++i;
    if (i >= s.size()) return std::nullopt;
    if (s[i] == '+' || s[i] == '-') ++i;
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
    for (; i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'); ++i) {
      if (s[i] == '_') underscores = true;
    }
  } else if (hex) {
    return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  if (underscores && !underscore_ok(s)) return std::nullopt;
  std::string clean;
  for (char c : s) {
    if (c != '_') clean += c;
  }
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  if (std::isinf(v)) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Values: what a template computes with, given Flagger's functions and nil data.

struct value {
  enum class kind : std::uint8_t { invalid, boolean, integer, byte, floating, complex, string, map };
  kind k = kind::invalid;
  bool b = false;
  std::int64_t i = 0;  // integer; byte holds a uint8
  double f = 0, im = 0;
  std::string s;
  const std::map<std::string, std::string>* m = nullptr;

  static value of_bool(bool v) {
    value x;
    x.k = kind::boolean;
    x.b = v;
    return x;
  }
  static value of_int(std::int64_t v) {
    value x;
    x.k = kind::integer;
    x.i = v;
    return x;
  }
  static value of_byte(unsigned char v) {
    value x;
    x.k = kind::byte;
    x.i = v;
    return x;
  }
  static value of_float(double v) {
    value x;
    x.k = kind::floating;
    x.f = v;
    return x;
  }
  static value of_complex(double re, double im) {
    value x;
    x.k = kind::complex;
    x.f = re;
    x.im = im;
    return x;
  }
  static value of_string(std::string v) {
    value x;
    x.k = kind::string;
    x.s = std::move(v);
    return x;
  }
  static value of_map(const std::map<std::string, std::string>* m) {
    value x;
    x.k = kind::map;
    x.m = m;
    return x;
  }
  bool valid() const { return k != kind::invalid; }
};

const char* type_name(const value& v) {
  switch (v.k) {
    case value::kind::boolean: return "bool";
    case value::kind::integer: return "int";
    case value::kind::byte: return "uint8";
    case value::kind::floating: return "float64";
    case value::kind::complex: return "complex128";
    case value::kind::string: return "string";
    case value::kind::map: return "map[string]string";
    case value::kind::invalid: break;
  }
  return "<nil>";
}

// text/template's isTrue (every value we have has a truth value).
bool is_true(const value& v) {
  switch (v.k) {
    case value::kind::invalid: return false;
    case value::kind::boolean: return v.b;
    case value::kind::integer:
    case value::kind::byte: return v.i != 0;
    case value::kind::floating: return v.f != 0;
    case value::kind::complex: return v.f != 0 || v.im != 0;
    case value::kind::string: return !v.s.empty();
    case value::kind::map: return !v.m->empty();
  }
  return false;
}

// A builtin's failure; the engine reports it as Go does: "error calling <name>: <msg>".
struct builtin_error {
  std::string msg;
};

// ---------------------------------------------------------------------------------------------
// fmt: Sprint, Sprintln and Sprintf over our values (fmt/print.go and fmt/format.go).

class printer {
 public:
  std::string buf;

  void sprint(const std::vector<value>& args) {
    bool prev_string = false;
    for (std::size_t n = 0; n < args.size(); ++n) {
      const bool is_string = args[n].k == value::kind::string;
      if (n > 0 && !is_string && !prev_string) buf += ' ';
      print_arg(args[n], 'v');
      prev_string = is_string;
    }
  }

  void sprintln(const std::vector<value>& args) {
    for (std::size_t n = 0; n < args.size(); ++n) {
      if (n > 0) buf += ' ';
      print_arg(args[n], 'v');
    }
    buf += '\n';
  }

  void sprintf(std::string_view format, const std::vector<value>& a);

  void print_arg(const value& arg, char32_t verb) {
    if (!arg.valid()) {
      if (verb == 'T' || verb == 'v') {
        pad("<nil>");
      } else {
        bad_verb(arg, verb);
      }
      return;
    }
    if (verb == 'T') {
      fmt_s(type_name(arg));
      return;
    }
    if (verb == 'p') {
      if (arg.k == value::kind::map) {
        // A map's address: fmt prints 0x and the pointer in hex; ours is as arbitrary as Go's.
        fmt_integer(reinterpret_cast<std::uintptr_t>(arg.m), 16, false, 'v', lower_hex, true);
      } else {
        bad_verb(arg, verb);
      }
      return;
    }
    switch (arg.k) {
      case value::kind::boolean:
        if (verb == 't' || verb == 'v') {
          pad(arg.b ? "true" : "false");
        } else {
          bad_verb(arg, verb);
        }
        return;
      case value::kind::integer:
      case value::kind::byte: print_integer(arg, verb); return;
      case value::kind::floating: print_float(arg, arg.f, verb); return;
      case value::kind::complex: print_complex(arg, verb); return;
      case value::kind::string: print_string(arg, verb); return;
      case value::kind::map: print_map(arg, verb); return;
      case value::kind::invalid: return;
    }
  }

 private:
  struct flags {
    bool plus = false, minus = false, sharp = false, space = false, zero = false;
    bool plus_v = false, sharp_v = false;
    bool wid_present = false, prec_present = false;
    int wid = 0, prec = 0;
  };
  flags f_;

  void write_padding(int n) {
    if (n <= 0) return;
    buf.append(static_cast<std::size_t>(n), f_.zero && !f_.minus ? '0' : ' ');
  }

  void pad(std::string_view s) {
    if (!f_.wid_present || f_.wid == 0) {
      buf += s;
      return;
    }
    const int width = f_.wid - static_cast<int>(rune_count(s));
    if (!f_.minus) {
      write_padding(width);
      buf += s;
    } else {
      buf += s;
      write_padding(width);
    }
  }

  std::string truncate(std::string_view s) const {
    if (!f_.prec_present) return std::string(s);
    std::size_t n = 0, at = 0;
    while (at < s.size()) {
      if (n == static_cast<std::size_t>(f_.prec)) return std::string(s.substr(0, at));
      at += decode_rune(s.substr(at)).second;
      ++n;
    }
    return std::string(s);
  }

  void fmt_s(std::string_view s) { pad(truncate(s)); }

  void fmt_sx(std::string_view s, const char* digits) {
    std::size_t length = s.size();
    if (f_.prec_present && static_cast<std::size_t>(f_.prec) < length) length = static_cast<std::size_t>(f_.prec);
    int width = static_cast<int>(2 * length);
    if (width > 0) {
      if (f_.space) {
        if (f_.sharp) width *= 2;
        width += static_cast<int>(length) - 1;
      } else if (f_.sharp) {
        width += 2;
      }
    } else {
      if (f_.wid_present) write_padding(f_.wid);
      return;
    }
    if (f_.wid_present && f_.wid > width && !f_.minus) write_padding(f_.wid - width);
    const char x = digits == upper_hex ? 'X' : 'x';
    if (f_.sharp) {
      buf += '0';
      buf += x;
    }
    for (std::size_t n = 0; n < length; ++n) {
      if (f_.space && n > 0) {
        buf += ' ';
        if (f_.sharp) {
          buf += '0';
          buf += x;
        }
      }
      const auto c = static_cast<unsigned char>(s[n]);
      buf += digits[c >> 4];
      buf += digits[c & 0xF];
    }
    if (f_.wid_present && f_.wid > width && f_.minus) write_padding(f_.wid - width);
  }

  void fmt_q(std::string_view s) {
    const std::string t = truncate(s);
    if (f_.sharp && can_backquote(t)) {
      pad("`" + t + "`");
    } else {
      pad(quote_with(t, '"', f_.plus));
    }
  }

  // fmt.fmtInteger.
  void fmt_integer(std::uint64_t u, unsigned base, bool is_signed, char32_t verb, const char* digits, bool force_sharp = false) {
    const bool negative = is_signed && static_cast<std::int64_t>(u) < 0;
    if (negative) u = 0 - u;
    const bool sharp = f_.sharp || force_sharp;
    int prec = 0;
    if (f_.prec_present) {
      prec = f_.prec;
      if (prec == 0 && u == 0) {
        const bool old_zero = f_.zero;
        f_.zero = false;
        write_padding(f_.wid);
        f_.zero = old_zero;
        return;
      }
    } else if (f_.zero && !f_.minus && f_.wid_present) {
      prec = f_.wid;
      if (negative || f_.plus || f_.space) --prec;
    }
    std::string b;
    do {
      b += digits[u % base];
      u /= base;
    } while (u > 0);
    while (static_cast<int>(b.size()) < prec) b += '0';
    if (sharp) {
      if (base == 2) {
        b += "b0";
      } else if (base == 8) {
        if (b.back() != '0') b += '0';
      } else if (base == 16) {
        b += digits == upper_hex ? 'X' : 'x';
        b += '0';
      }
    }
    if (verb == 'O') b += "o0";
    if (negative) {
      b += '-';
    } else if (f_.plus) {
      b += '+';
    } else if (f_.space) {
      b += ' ';
    }
    std::reverse(b.begin(), b.end());
    const bool old_zero = f_.zero;
    f_.zero = false;
    pad(b);
    f_.zero = old_zero;
  }

  void fmt_unicode(std::uint64_t u) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%llX", static_cast<unsigned long long>(u));
    std::string digits = hex;
    const std::size_t min = f_.prec_present && f_.prec > 4 ? static_cast<std::size_t>(f_.prec) : 4;
    if (digits.size() < min) digits.insert(0, min - digits.size(), '0');
    std::string out = "U+" + digits;
    if (f_.sharp && u <= max_rune && is_print(static_cast<char32_t>(u))) {
      out += " '";
      append_rune(out, static_cast<char32_t>(u));
      out += "'";
    }
    const bool old_zero = f_.zero;
    f_.zero = false;
    pad(out);
    f_.zero = old_zero;
  }

  void print_integer(const value& arg, char32_t verb) {
    const bool is_signed = arg.k == value::kind::integer;
    const auto u = static_cast<std::uint64_t>(arg.i);
    switch (verb) {
      case 'v':
        if (f_.sharp_v && !is_signed) {
          fmt_integer(u, 16, false, verb, lower_hex, true);
        } else {
          fmt_integer(u, 10, is_signed, verb, lower_hex);
        }
        return;
      case 'd': fmt_integer(u, 10, is_signed, verb, lower_hex); return;
      case 'b': fmt_integer(u, 2, is_signed, verb, lower_hex); return;
      case 'o':
      case 'O': fmt_integer(u, 8, is_signed, verb, lower_hex); return;
      case 'x': fmt_integer(u, 16, is_signed, verb, lower_hex); return;
      case 'X': fmt_integer(u, 16, is_signed, verb, upper_hex); return;
      case 'c': {
        std::string s;
        append_rune(s, u > max_rune ? rune_error : static_cast<char32_t>(u));
        pad(s);
        return;
      }
      case 'q': pad(quote_rune(u > max_rune ? rune_error : static_cast<char32_t>(u), f_.plus)); return;
      case 'U': fmt_unicode(u); return;
      default: bad_verb(arg, verb); return;
    }
  }

  // fmt.fmtFloat: `prec` -1 is the shortest representation.
  void fmt_float(double v, char32_t verb, int prec) {
    if (f_.prec_present) prec = f_.prec;
    std::string num;
    if (std::isnan(v)) {
      num = "+NaN";
    } else if (std::isinf(v)) {
      num = v > 0 ? "+Inf" : "-Inf";
    } else {
      num = format_number(v, verb, prec);
      if (num[0] != '-' && num[0] != '+') num.insert(0, "+");
    }
    if (f_.space && num[0] == '+' && !f_.plus) num[0] = ' ';
    if (num[1] == 'I' || num[1] == 'N') {
      const bool old_zero = f_.zero;
      f_.zero = false;
      if (num[1] == 'N' && !f_.space && !f_.plus) num.erase(0, 1);
      pad(num);
      f_.zero = old_zero;
      return;
    }
    if (f_.plus || num[0] != '+') {
      if (f_.zero && !f_.minus && f_.wid_present && f_.wid > static_cast<int>(num.size())) {
        buf += num[0];
        write_padding(f_.wid - static_cast<int>(num.size()));
        buf.append(num, 1);
        return;
      }
      pad(num);
      return;
    }
    pad(std::string_view(num).substr(1));
  }

  // strconv.FormatFloat(v, verb, prec, 64) (with the sharp flag's effects where C agrees).
  std::string format_number(double v, char32_t verb, int prec) const {
    char spec[16];
    char out[64];
    const bool sharp = f_.sharp;
    auto c_format = [&](char conv, int p) {
      std::snprintf(spec, sizeof spec, sharp ? "%%#.*%c" : "%%.*%c", conv);
      const int n = std::snprintf(nullptr, 0, spec, p, v);
      std::string s(static_cast<std::size_t>(n) + 1, '\0');
      std::snprintf(s.data(), s.size(), spec, p, v);
      s.resize(static_cast<std::size_t>(n));
      return s;
    };
    switch (verb) {
      case 'e':
      case 'E':
      case 'f':
      case 'F': {
        return c_format(static_cast<char>(verb), prec < 0 ? 6 : prec);
      }
      case 'g':
      case 'G':
      case 'v': {
        if (prec < 0 && !sharp) {
          std::string s = format_go_float(v);
          if (verb == 'G') std::replace(s.begin(), s.end(), 'e', 'E');
          return s;
        }
        return c_format(verb == 'G' ? 'G' : 'g', prec < 0 ? 6 : prec);
      }
      case 'x':
      case 'X': {
        std::string s;
        if (prec < 0) {
          std::snprintf(spec, sizeof spec, "%%%c", verb == 'X' ? 'A' : 'a');
          std::snprintf(out, sizeof out, spec, v);
          s = out;
        } else {
          s = c_format(verb == 'X' ? 'A' : 'a', prec);
        }
        // Go writes the binary exponent with at least two digits: 0x1.8p+01.
        const auto p = s.find_first_of("pP");
        if (p != std::string::npos && s.size() == p + 3) s.insert(p + 2, "0");
        return s;
      }
      case 'b': {
        std::uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        const bool neg = bits >> 63;
        int exp = static_cast<int>((bits >> 52) & 0x7FF);
        std::uint64_t mant = bits & ((std::uint64_t(1) << 52) - 1);
        if (exp == 0) {
          ++exp;
        } else {
          mant |= std::uint64_t(1) << 52;
        }
        exp += -1023 - 52;
        std::snprintf(out, sizeof out, "%s%llup%c%d", neg ? "-" : "", static_cast<unsigned long long>(mant),
                      exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return out;
      }
      default: return format_go_float(v);
    }
  }

  void print_float(const value& arg, double v, char32_t verb) {
    switch (verb) {
      case 'v': fmt_float(v, 'g', -1); return;
      case 'b':
      case 'g':
      case 'G':
      case 'x':
      case 'X': fmt_float(v, verb, -1); return;
      case 'f':
      case 'e':
      case 'E':
      case 'F': fmt_float(v, verb, 6); return;
      default: bad_verb(arg, verb); return;
    }
  }

  void print_complex(const value& arg, char32_t verb) {
    switch (verb) {
      case 'v':
      case 'b':
      case 'g':
      case 'G':
      case 'x':
      case 'X':
      case 'f':
      case 'F':
      case 'e':
      case 'E': {
        const bool old_plus = f_.plus;
        buf += '(';
        print_float(arg, arg.f, verb);
        f_.plus = true;
        print_float(arg, arg.im, verb);
        buf += "i)";
        f_.plus = old_plus;
        return;
      }
      default: bad_verb(arg, verb); return;
    }
  }

  void print_string(const value& arg, char32_t verb) {
    switch (verb) {
      case 'v':
        if (f_.sharp_v) {
          fmt_q(arg.s);
        } else {
          fmt_s(arg.s);
        }
        return;
      case 's': fmt_s(arg.s); return;
      case 'x': fmt_sx(arg.s, lower_hex); return;
      case 'X': fmt_sx(arg.s, upper_hex); return;
      case 'q': fmt_q(arg.s); return;
      default: bad_verb(arg, verb); return;
    }
  }

  void print_map(const value& arg, char32_t verb) {
    if (f_.sharp_v) {
      buf += "map[string]string{";
    } else {
      buf += "map[";
    }
    bool first = true;
    for (const auto& [k, v] : *arg.m) {  // std::map is sorted as fmtsort sorts strings
      if (!first) buf += f_.sharp_v ? ", " : " ";
      first = false;
      print_arg(value::of_string(k), verb);
      buf += ':';
      print_arg(value::of_string(v), verb);
    }
    buf += f_.sharp_v ? '}' : ']';
  }

  void bad_verb(const value& arg, char32_t verb) {
    buf += "%!";
    append_rune(buf, verb);
    buf += '(';
    if (arg.valid()) {
      buf += type_name(arg);
      buf += '=';
      print_arg(arg, 'v');
    } else {
      buf += "<nil>";
    }
    buf += ')';
  }

  static bool too_large(long long x) { return x > 1'000'000 || x < -1'000'000; }

  // fmt.parsenum.
  static void parse_num(std::string_view s, std::size_t& i, int& num, bool& isnum) {
    num = 0;
    isnum = false;
    const std::size_t end = s.size();
    if (i >= end) return;
    for (; i < end && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (too_large(num)) {
        num = 0;
        isnum = false;
        i = end;
        return;
      }
      num = num * 10 + (s[i] - '0');
      isnum = true;
    }
  }

  struct arg_cursor {
    std::size_t num = 0;
    bool reordered = false;
    bool good = true;
  };

  // fmt.argNumber: an explicit [n] index.
  static bool arg_number(arg_cursor& c, std::string_view format, std::size_t& i, std::size_t nargs) {
    if (i >= format.size() || format[i] != '[') return false;
    c.reordered = true;
    std::string_view rest = format.substr(i);
    // parseArgNumber
    int index = 0;
    std::size_t wid = 1;
    bool ok = false;
    if (rest.size() >= 3) {
      for (std::size_t j = 1; j < rest.size(); ++j) {
        if (rest[j] == ']') {
          std::size_t k = 1;
          int width = 0;
          bool isnum = false;
          parse_num(rest.substr(0, j), k, width, isnum);
          if (!isnum || k != j) {
            wid = j + 1;
          } else {
            index = width - 1;
            wid = j + 1;
            ok = true;
          }
          break;
        }
      }
    }
    if (ok && index >= 0 && static_cast<std::size_t>(index) < nargs) {
      c.num = static_cast<std::size_t>(index);
      i += wid;
      return true;
    }
    c.good = false;
    i += wid;
    return ok;
  }

  // fmt.intFromArg.
  static bool int_from_arg(const std::vector<value>& a, arg_cursor& c, int& num) {
    num = 0;
    bool is_int = false;
    if (c.num < a.size()) {
      const value& v = a[c.num];
      if (v.k == value::kind::integer || v.k == value::kind::byte) {
        if (!too_large(v.i)) {
          num = static_cast<int>(v.i);
          is_int = true;
        }
      }
      ++c.num;
    }
    return is_int;
  }

};

void printer::sprintf(std::string_view format, const std::vector<value>& a) {
  const std::size_t end = format.size();
  arg_cursor c;
  bool after_index = false;
  for (std::size_t i = 0; i < end;) {
    c.good = true;
    const std::size_t lasti = i;
    while (i < end && format[i] != '%') ++i;
    if (i > lasti) buf.append(format.substr(lasti, i - lasti));
    if (i >= end) break;
    ++i;  // the '%'
    f_ = flags{};
    for (; i < end; ++i) {
      const char ch = format[i];
      if (ch == '#') {
        f_.sharp = true;
      } else if (ch == '0') {
        f_.zero = true;
      } else if (ch == '+') {
        f_.plus = true;
      } else if (ch == '-') {
        f_.minus = true;
      } else if (ch == ' ') {
        f_.space = true;
      } else {
        break;
      }
    }
    after_index = arg_number(c, format, i, a.size());
    if (i < end && format[i] == '*') {
      ++i;
      f_.wid_present = int_from_arg(a, c, f_.wid);
      if (!f_.wid_present) buf += "%!(BADWIDTH)";
      if (f_.wid < 0) {
        f_.wid = -f_.wid;
        f_.minus = true;
        f_.zero = false;
      }
      after_index = false;
    } else {
      parse_num(format, i, f_.wid, f_.wid_present);
      if (after_index && f_.wid_present) c.good = false;
    }
    if (i + 1 < end && format[i] == '.') {
      ++i;
      if (after_index) c.good = false;
      after_index = arg_number(c, format, i, a.size());
      if (i < end && format[i] == '*') {
        ++i;
        f_.prec_present = int_from_arg(a, c, f_.prec);
        if (f_.prec < 0) {
          f_.prec = 0;
          f_.prec_present = false;
        }
        if (!f_.prec_present) buf += "%!(BADPREC)";
        after_index = false;
      } else {
        parse_num(format, i, f_.prec, f_.prec_present);
        if (!f_.prec_present) {
          f_.prec = 0;
          f_.prec_present = true;
        }
      }
    }
    if (!after_index) after_index = arg_number(c, format, i, a.size());
    // canaryd's limit, not Go's: a width or precision past the output limit can only build a
    // value that no render may write, and building it is the cost.
    if (f_.wid_present && static_cast<std::size_t>(f_.wid) > max_output) {
      throw builtin_error{"width " + std::to_string(f_.wid) + " exceeds " + std::to_string(max_output) + " (canaryd's limit)"};
    }
    if (f_.prec_present && static_cast<std::size_t>(f_.prec) > max_output) {
      throw builtin_error{"precision " + std::to_string(f_.prec) + " exceeds " + std::to_string(max_output) + " (canaryd's limit)"};
    }
    if (i >= end) {
      buf += "%!(NOVERB)";
      break;
    }
    auto [verb, size] = decode_rune(format.substr(i));
    i += size;
    if (verb == '%') {
      buf += '%';
    } else if (!c.good) {
      buf += "%!";
      append_rune(buf, verb);
      buf += "(BADINDEX)";
    } else if (c.num >= a.size()) {
      buf += "%!";
      append_rune(buf, verb);
      buf += "(MISSING)";
    } else {
      if (verb == 'v' || verb == 'w') {
        f_.sharp_v = f_.sharp;
        f_.sharp = false;
        f_.plus_v = f_.plus;
        f_.plus = false;
      }
      print_arg(a[c.num], verb);
      ++c.num;
    }
  }
  if (!c.reordered && c.num < a.size()) {
    f_ = flags{};
    buf += "%!(EXTRA ";
    for (std::size_t n = c.num; n < a.size(); ++n) {
      if (n > c.num) buf += ", ";
      if (!a[n].valid()) {
        buf += "<nil>";
      } else {
        buf += type_name(a[n]);
        buf += '=';
        print_arg(a[n], 'v');
      }
    }
    buf += ')';
  }
}

// ---------------------------------------------------------------------------------------------
// The lexer (text/template/parse/lex.go).

enum class tok : std::uint8_t {
  error, boolean, chr, char_constant, complex, assign, declare, eof, field, identifier, left_delim,
  left_paren, number, pipe, raw_string, right_delim, right_paren, space, string, text, variable,
  // keywords
  keyword, block, break_, continue_, dot, define, else_, end, if_, nil, range, template_, with,
};

struct token {
  tok type = tok::eof;
  std::size_t pos = 0;
  std::string val;
  int line = 1;
};

bool is_space(char32_t r) { return r == ' ' || r == '\t' || r == '\r' || r == '\n'; }

// Go allows letters, digits and '_'; we let every printable non-ASCII rune be a letter.
bool is_alnum(char32_t r) {
  return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') ||
         (r >= 0x80 && r != rune_error && is_print(r));
}

constexpr char32_t eof_rune = 0xFFFFFFFF;

class lexer {
 public:
  explicit lexer(std::string_view in) : in_(in) {}

  std::vector<token> run() {
    enum class st { text, inside };
    st state = st::text;
    while (!done_) {
      if (state == st::text) {
        state = lex_text() ? st::inside : st::text;
      } else {
        state = lex_inside_action() ? st::inside : st::text;
      }
    }
    return std::move(out_);
  }

 private:
  std::string_view in_;
  std::size_t pos_ = 0, start_ = 0, width_ = 0;
  int paren_depth_ = 0;
  bool done_ = false;
  std::vector<token> out_;
  std::size_t counted_ = 0;
  int lines_ = 1;

  int line_at(std::size_t p) {
    if (p < counted_) {  // positions only grow, but stay safe
      counted_ = 0;
      lines_ = 1;
    }
    for (; counted_ < p && counted_ < in_.size(); ++counted_) {
      if (in_[counted_] == '\n') ++lines_;
    }
    return lines_;
  }

  char32_t next() {
    if (pos_ >= in_.size()) {
      width_ = 0;
      return eof_rune;
    }
    auto [r, w] = decode_rune(in_.substr(pos_));
    width_ = w;
    pos_ += w;
    return r;
  }
  void backup() { pos_ -= width_; }
  char32_t peek() {
    const char32_t r = next();
    backup();
    return r;
  }
  bool accept(std::string_view valid) {
    const char32_t r = next();
    if (r < 0x80 && valid.find(static_cast<char>(r)) != std::string_view::npos) return true;
    backup();
    return false;
  }
  void accept_run(std::string_view valid) {
    for (;;) {
      const char32_t r = next();
      if (!(r < 0x80 && valid.find(static_cast<char>(r)) != std::string_view::npos)) break;
    }
    backup();
  }

  void emit(tok t) {
    out_.push_back({t, start_, std::string(in_.substr(start_, pos_ - start_)), line_at(start_)});
    start_ = pos_;
  }
  void ignore() { start_ = pos_; }
  void errorf(std::string msg) {
    out_.push_back({tok::error, start_, std::move(msg), line_at(start_)});
    done_ = true;
  }

  static bool has_left_trim_marker(std::string_view s) { return s.size() >= 2 && s[0] == '-' && is_space(static_cast<unsigned char>(s[1])); }
  static bool has_right_trim_marker(std::string_view s) { return s.size() >= 2 && is_space(static_cast<unsigned char>(s[0])) && s[1] == '-'; }
  static std::size_t right_trim_length(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && is_space(static_cast<unsigned char>(s[s.size() - 1 - n]))) ++n;
    return n;
  }
  static std::size_t left_trim_length(std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && is_space(static_cast<unsigned char>(s[n]))) ++n;
    return n;
  }

  // atRightDelim: "}}" or " -}}" (any space before the dash).
  std::pair<bool, bool> at_right_delim() const {
    std::string_view rest = in_.substr(pos_);
    if (has_right_trim_marker(rest) && rest.substr(2).substr(0, 2) == "}}") return {true, true};
    if (rest.substr(0, 2) == "}}") return {true, false};
    return {false, false};
  }

  // lexText; returns true when it ends inside an action.
  bool lex_text() {
    const std::size_t x = in_.find("{{", pos_);
    if (x == std::string_view::npos) {
      pos_ = in_.size();
      if (pos_ > start_) emit(tok::text);
      emit(tok::eof);
      done_ = true;
      return false;
    }
    if (x > pos_) {
      pos_ = x;
      std::size_t trim = 0;
      if (has_left_trim_marker(in_.substr(x + 2))) trim = right_trim_length(in_.substr(start_, pos_ - start_));
      pos_ -= trim;
      if (pos_ > start_) emit(tok::text);
      pos_ += trim;
      ignore();
    }
    return lex_left_delim();
  }

  // lexLeftDelim; returns true when an action follows (false after a comment).
  bool lex_left_delim() {
    pos_ += 2;
    const bool trim = has_left_trim_marker(in_.substr(pos_));
    const std::size_t after_marker = trim ? 2 : 0;
    if (in_.substr(pos_ + after_marker).substr(0, 2) == "/*") {
      pos_ += after_marker;
      ignore();
      lex_comment();
      return false;
    }
    emit(tok::left_delim);
    pos_ += after_marker;
    ignore();
    paren_depth_ = 0;
    return true;
  }

  void lex_comment() {
    pos_ += 2;
    const std::size_t x = in_.find("*/", pos_);
    if (x == std::string_view::npos) {
      errorf("unclosed comment");
      return;
    }
    pos_ = x + 2;
    auto [delim, trim] = at_right_delim();
    if (!delim) {
      errorf("comment ends before closing delimiter");
      return;
    }
    if (trim) pos_ += 2;
    pos_ += 2;
    if (trim) pos_ += left_trim_length(in_.substr(pos_));
    ignore();
  }

  void lex_right_delim() {
    auto [delim, trim] = at_right_delim();
    (void)delim;
    if (trim) {
      pos_ += 2;
      ignore();
    }
    pos_ += 2;
    emit(tok::right_delim);
    if (trim) {
      pos_ += left_trim_length(in_.substr(pos_));
      ignore();
    }
  }

  bool at_terminator() {
    const char32_t r = peek();
    if (is_space(r)) return true;
    switch (r) {
      case eof_rune:
      case '.':
      case ',':
      case '|':
      case ':':
      case ')':
      case '(': return true;
      default: break;
    }
    return in_.substr(pos_).substr(0, 2) == "}}";
  }

  // lexInsideAction; returns false when the action ended (or lexing stopped).
  bool lex_inside_action() {
    auto [delim, trim] = at_right_delim();
    (void)trim;
    if (delim) {
      if (paren_depth_ == 0) {
        lex_right_delim();
        return false;
      }
      errorf("unclosed left paren");
      return false;
    }
    const char32_t r = next();
    if (r == eof_rune) {
      errorf("unclosed action");
      return false;
    }
    if (is_space(r)) {
      backup();
      return lex_space();
    }
    switch (r) {
      case '=': emit(tok::assign); return true;
      case ':':
        if (next() != '=') {
          errorf("expected :=");
          return false;
        }
        emit(tok::declare);
        return true;
      case '|': emit(tok::pipe); return true;
      case '"': lex_quote(); return !done_;
      case '`': lex_raw_quote(); return !done_;
      case '$': lex_variable(); return !done_;
      case '\'': lex_char(); return !done_;
      case '(':
        emit(tok::left_paren);
        ++paren_depth_;
        return true;
      case ')':
        if (--paren_depth_ < 0) {
          errorf("unexpected right paren");
          return false;
        }
        emit(tok::right_paren);
        return true;
      default: break;
    }
    if (r == '.') {
      if (pos_ < in_.size() && (in_[pos_] < '0' || in_[pos_] > '9')) {
        lex_field_or_variable(tok::field);
        return !done_;
      }
    }
    if (r == '.' || r == '+' || r == '-' || (r >= '0' && r <= '9')) {
      backup();
      lex_number();
      return !done_;
    }
    if (is_alnum(r)) {
      backup();
      lex_identifier();
      return !done_;
    }
    if (r < 0x80 && is_print(r)) {
      emit(tok::chr);
      return true;
    }
    errorf("unrecognized character in action: " + format_unicode(r));
    return false;
  }

  bool lex_space() {
    int spaces = 0;
    while (is_space(peek())) {
      next();
      ++spaces;
    }
    std::string_view rest = in_.substr(pos_ - 1);
    if (has_right_trim_marker(rest) && rest.substr(2).substr(0, 2) == "}}") {
      --pos_;  // before the last space
      if (spaces == 1) {
        lex_right_delim();
        return false;
      }
    }
    emit(tok::space);
    return true;
  }

  void lex_identifier() {
    for (;;) {
      const char32_t r = next();
      if (is_alnum(r)) continue;
      backup();
      const std::string_view word = in_.substr(start_, pos_ - start_);
      if (!at_terminator()) {
        errorf("bad character " + format_unicode(r));
        return;
      }
      static const std::pair<std::string_view, tok> keywords[] = {
          {"block", tok::block}, {"break", tok::break_}, {"continue", tok::continue_}, {"define", tok::define},
          {"else", tok::else_},  {"end", tok::end},      {"if", tok::if_},             {"nil", tok::nil},
          {"range", tok::range}, {"template", tok::template_}, {"with", tok::with},
      };
      for (const auto& [kw, t] : keywords) {
        if (word == kw) {
          emit(t);
          return;
        }
      }
      emit(word == "true" || word == "false" ? tok::boolean : tok::identifier);
      return;
    }
  }

  void lex_variable() {
    if (at_terminator()) {
      emit(tok::variable);
      return;
    }
    lex_field_or_variable(tok::variable);
  }

  void lex_field_or_variable(tok t) {
    if (at_terminator()) {
      emit(t == tok::variable ? tok::variable : tok::dot);
      return;
    }
    char32_t r;
    for (;;) {
      r = next();
      if (!is_alnum(r)) {
        backup();
        break;
      }
    }
    if (!at_terminator()) {
      errorf("bad character " + format_unicode(r));
      return;
    }
    emit(t);
  }

  void lex_char() {
    for (;;) {
      const char32_t r = next();
      if (r == '\\') {
        const char32_t e = next();
        if (e != eof_rune && e != '\n') continue;
        errorf("unterminated character constant");
        return;
      }
      if (r == eof_rune || r == '\n') {
        errorf("unterminated character constant");
        return;
      }
      if (r == '\'') break;
    }
    emit(tok::char_constant);
  }

  // scanNumber: a loose scan; the parser checks the syntax.
  bool scan_number() {
    accept("+-");
    std::string_view digits = "0123456789_";
    if (accept("0")) {
      if (accept("xX")) {
        digits = "0123456789abcdefABCDEF_";
      } else if (accept("oO")) {
        digits = "01234567_";
      } else if (accept("bB")) {
        digits = "01_";
      }
    }
    accept_run(digits);
    if (accept(".")) accept_run(digits);
    if (digits.size() == 11 && accept("eE")) {
      accept("+-");
      accept_run("0123456789_");
    }
    if (digits.size() == 23 && accept("pP")) {
      accept("+-");
      accept_run("0123456789_");
    }
    accept("i");
    if (is_alnum(peek())) {
      next();
      return false;
    }
    return true;
  }

  void lex_number() {
    if (!scan_number()) {
      errorf("bad number syntax: " + quote_with(in_.substr(start_, pos_ - start_), '"', false));
      return;
    }
    const char32_t sign = peek();
    if (sign == '+' || sign == '-') {
      if (!scan_number() || in_[pos_ - 1] != 'i') {
        errorf("bad number syntax: " + quote_with(in_.substr(start_, pos_ - start_), '"', false));
        return;
      }
      emit(tok::complex);
      return;
    }
    emit(tok::number);
  }

  void lex_quote() {
    for (;;) {
      const char32_t r = next();
      if (r == '\\') {
        const char32_t e = next();
        if (e != eof_rune && e != '\n') continue;
        errorf("unterminated quoted string");
        return;
      }
      if (r == eof_rune || r == '\n') {
        errorf("unterminated quoted string");
        return;
      }
      if (r == '"') break;
    }
    emit(tok::string);
  }

  void lex_raw_quote() {
    for (;;) {
      const char32_t r = next();
      if (r == eof_rune) {
        errorf("unterminated raw quoted string");
        return;
      }
      if (r == '`') break;
    }
    emit(tok::raw_string);
  }
};

// item.String(), as parse errors show a token.
std::string token_string(const token& t) {
  if (t.type == tok::eof) return "EOF";
  if (t.type == tok::error) return t.val;
  if (t.type > tok::keyword) return "<" + t.val + ">";
  if (rune_count(t.val) > 10) {
    std::size_t at = 0;
    for (int n = 0; n < 10; ++n) at += decode_rune(std::string_view(t.val).substr(at)).second;
    return quote_with(std::string_view(t.val).substr(0, at), '"', false) + "...";
  }
  return quote_with(t.val, '"', false);
}

// ---------------------------------------------------------------------------------------------
// Parse trees (text/template/parse/node.go and parse.go).

enum class nt : std::uint8_t {
  text, action, if_, range, with, template_, break_, continue_, list, else_, end,
  pipe, command, identifier, dot, nil, variable, field, chain, boolean, number, string,
};

struct node {
  nt type = nt::list;
  std::size_t pos = 0;
  std::string text;                // text; identifier name; string value; number source; template name
  std::string quoted;              // string: as written
  std::vector<std::string> ident;  // variable ("$x", fields...), field, chain fields
  std::vector<node*> nodes;        // list items; command args; pipe commands
  std::vector<node*> decl;         // pipe: declared or assigned variables
  bool is_assign = false;
  bool truth = false;              // boolean
  node* pipe = nullptr;            // action, if/range/with, template
  node* list = nullptr;
  node* else_list = nullptr;
  node* base = nullptr;            // chain: the term the fields apply to
  bool is_int = false, is_uint = false, is_float = false, is_complex = false;
  std::int64_t i64 = 0;
  std::uint64_t u64 = 0;
  double f64 = 0, re = 0, im = 0;
};

void write_node(std::string& out, const node* n);

void write_pipe(std::string& out, const node* p) {
  if (!p->decl.empty()) {
    for (std::size_t i = 0; i < p->decl.size(); ++i) {
      if (i > 0) out += ", ";
      write_node(out, p->decl[i]);
    }
    out += " := ";
  }
  for (std::size_t i = 0; i < p->nodes.size(); ++i) {
    if (i > 0) out += " | ";
    write_node(out, p->nodes[i]);
  }
}

// Node.String().
void write_node(std::string& out, const node* n) {
  switch (n->type) {
    case nt::text: out += n->text; return;
    case nt::action:
      out += "{{";
      write_pipe(out, n->pipe);
      out += "}}";
      return;
    case nt::if_:
    case nt::range:
    case nt::with:
      out += n->type == nt::if_ ? "{{if " : n->type == nt::range ? "{{range " : "{{with ";
      write_pipe(out, n->pipe);
      out += "}}";
      write_node(out, n->list);
      if (n->else_list) {
        out += "{{else}}";
        write_node(out, n->else_list);
      }
      out += "{{end}}";
      return;
    case nt::template_:
      out += "{{template " + quote_with(n->text, '"', false);
      if (n->pipe) {
        out += ' ';
        write_pipe(out, n->pipe);
      }
      out += "}}";
      return;
    case nt::break_: out += "{{break}}"; return;
    case nt::continue_: out += "{{continue}}"; return;
    case nt::list:
      for (const node* c : n->nodes) write_node(out, c);
      return;
    case nt::else_: out += "{{else}}"; return;
    case nt::end: out += "{{end}}"; return;
    case nt::pipe: write_pipe(out, n); return;
    case nt::command:
      for (std::size_t i = 0; i < n->nodes.size(); ++i) {
        if (i > 0) out += ' ';
        if (n->nodes[i]->type == nt::pipe) {
          out += '(';
          write_pipe(out, n->nodes[i]);
          out += ')';
        } else {
          write_node(out, n->nodes[i]);
        }
      }
      return;
    case nt::identifier: out += n->text; return;
    case nt::dot: out += '.'; return;
    case nt::nil: out += "nil"; return;
    case nt::variable:
      for (std::size_t i = 0; i < n->ident.size(); ++i) {
        if (i > 0) out += '.';
        out += n->ident[i];
      }
      return;
    case nt::field:
      for (const auto& id : n->ident) out += "." + id;
      return;
    case nt::chain:
      if (n->base->type == nt::pipe) {
        out += '(';
        write_pipe(out, n->base);
        out += ')';
      } else {
        write_node(out, n->base);
      }
      for (const auto& id : n->ident) out += "." + id;
      return;
    case nt::boolean: out += n->truth ? "true" : "false"; return;
    case nt::number: out += n->text; return;
    case nt::string: out += n->quoted; return;
  }
}

std::string node_string(const node* n) {
  std::string s;
  write_node(s, n);
  return s;
}

std::vector<std::string> split_dots(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    out.emplace_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

struct parse_error {
  std::string msg;
};

// One template of the set: its name and root list.
struct tree {
  node* root = nullptr;
};

bool is_empty_tree(const node* n) {
  if (!n) return true;
  switch (n->type) {
    case nt::list:
      for (const node* c : n->nodes) {
        if (!is_empty_tree(c)) return false;
      }
      return true;
    case nt::text:
      for (char c : n->text) {
        if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')) return false;
      }
      return true;
    default: return false;
  }
}

bool is_builtin(std::string_view name) {
  static const std::string_view builtins[] = {"and",     "call", "html",     "index", "slice", "js", "len", "not", "or", "print",
                                              "printf",  "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne"};
  return std::find(std::begin(builtins), std::end(builtins), name) != std::end(builtins);
}

class parser {
 public:
  parser(std::string_view parse_name, std::vector<token> toks, const go_template_funcs& funcs, std::deque<node>& arena,
         std::map<std::string, tree, std::less<>>& set)
      : parse_name_(parse_name), toks_(std::move(toks)), funcs_(funcs), arena_(arena), set_(set) {}

  // Tree.Parse for the top-level template.
  void parse_top(const std::string& name) {
    vars_ = {"$"};
    tree t;
    t.root = new_node(nt::list, peek().pos);
    while (peek().type != tok::eof) {
      if (peek().type == tok::left_delim) {
        const std::size_t delim = p_;
        next();
        if (next_non_space().type == tok::define) {
          parse_definition();
          continue;
        }
        p_ = delim;
      }
      node* n = text_or_action();
      if (n->type == nt::end || n->type == nt::else_) errorf("unexpected " + node_string(n));
      t.root->nodes.push_back(n);
    }
    add(name, t);
  }

 private:
  std::string_view parse_name_;
  std::vector<token> toks_;
  const go_template_funcs& funcs_;
  std::deque<node>& arena_;
  std::map<std::string, tree, std::less<>>& set_;
  std::size_t p_ = 0;    // next token
  std::size_t hwm_ = 0;  // the most recently lexed token (Go's token[0])
  std::vector<std::string> vars_;
  int action_line_ = 0;
  int range_depth_ = 0;
  std::size_t depth_ = 0;

  node* new_node(nt type, std::size_t pos) {
    node& n = arena_.emplace_back();
    n.type = type;
    n.pos = pos;
    return &n;
  }

  const token& at(std::size_t i) const { return toks_[std::min(i, toks_.size() - 1)]; }
  const token& next() {
    const token& t = at(p_);
    hwm_ = std::max(hwm_, p_);
    if (p_ < toks_.size() - 1) ++p_;
    else p_ = toks_.size();  // past an EOF/error token: keep returning it
    return t;
  }
  void backup() {
    if (p_ > 0) --p_;
  }
  const token& peek() {
    hwm_ = std::max(hwm_, std::min(p_, toks_.size() - 1));
    return at(p_);
  }
  const token& next_non_space() {
    for (;;) {
      const token& t = next();
      if (t.type != tok::space) return t;
    }
  }
  // peekNonSpace: the spaces are consumed, the token is not.
  const token& peek_non_space() {
    while (at(p_).type == tok::space) {
      hwm_ = std::max(hwm_, p_);
      ++p_;
    }
    return peek();
  }

  [[noreturn]] void errorf(const std::string& msg) {
    throw parse_error{"template: " + std::string(parse_name_) + ":" + std::to_string(at(hwm_).line) + ": " + msg};
  }

  [[noreturn]] void unexpected(const token& t, std::string_view context) {
    if (t.type == tok::error) {
      std::string extra;
      if (action_line_ != 0 && action_line_ != t.line) {
        extra = " in action started at " + std::string(parse_name_) + ":" + std::to_string(action_line_);
        if (t.val.size() >= 7 && t.val.compare(t.val.size() - 7, 7, " action") == 0) extra = extra.substr(10);
      }
      errorf(t.val + extra);
    }
    errorf("unexpected " + token_string(t) + " in " + std::string(context));
  }

  const token& expect(tok type, std::string_view context) {
    const token& t = next_non_space();
    if (t.type != type) unexpected(t, context);
    return t;
  }

  bool has_function(std::string_view name) const {
    return funcs_.strings.count(name) > 0 || funcs_.maps.count(name) > 0 || is_builtin(name);
  }

  void enter() {
    if (++depth_ > max_depth) errorf("max expression depth exceeded");
  }

  void add(const std::string& name, const tree& t) {
    auto it = set_.find(name);
    if (it == set_.end() || is_empty_tree(it->second.root)) {
      set_[name] = t;
      return;
    }
    if (!is_empty_tree(t.root)) errorf("template: multiple definition of template " + quote_with(name, '"', false));
  }

  void parse_definition() {
    const std::string context = "define clause";
    const token& name = next_non_space();
    if (name.type != tok::string && name.type != tok::raw_string) unexpected(name, context);
    auto unq = unquote(name.val);
    if (!unq) errorf("invalid syntax");
    const std::string tname = *unq;
    expect(tok::right_delim, context);
    // A definition is a new Tree: its own variables and range depth.
    auto saved_vars = std::move(vars_);
    const int saved_range = range_depth_;
    vars_ = {"$"};
    range_depth_ = 0;
    auto [list, end] = item_list();
    if (end->type != nt::end) errorf("unexpected " + node_string(end) + " in " + context);
    vars_ = std::move(saved_vars);
    range_depth_ = saved_range;
    add(tname, tree{list});
  }

  std::pair<node*, node*> item_list() {
    node* list = new_node(nt::list, peek_non_space().pos);
    while (peek_non_space().type != tok::eof) {
      node* n = text_or_action();
      if (n->type == nt::end || n->type == nt::else_) return {list, n};
      list->nodes.push_back(n);
    }
    errorf("unexpected EOF");
  }

  node* text_or_action() {
    const token& t = next_non_space();
    switch (t.type) {
      case tok::text: {
        node* n = new_node(nt::text, t.pos);
        n->text = t.val;
        return n;
      }
      case tok::left_delim: {
        action_line_ = t.line;
        node* n = action();
        action_line_ = 0;
        return n;
      }
      default: unexpected(t, "input");
    }
  }

  node* action() {
    const token& t = next_non_space();
    switch (t.type) {
      case tok::block: return block_control();
      case tok::break_: return break_control(t.pos, nt::break_, "{{break}}");
      case tok::continue_: return break_control(t.pos, nt::continue_, "{{continue}}");
      case tok::else_: return else_control();
      case tok::end: return new_node(nt::end, expect(tok::right_delim, "end").pos);
      case tok::if_: return control(nt::if_, "if");
      case tok::range: return control(nt::range, "range");
      case tok::template_: return template_control();
      case tok::with: return control(nt::with, "with");
      default: break;
    }
    backup();
    const std::size_t pos = peek().pos;
    node* a = new_node(nt::action, pos);
    a->pipe = pipeline("command", tok::right_delim);
    return a;
  }

  node* break_control(std::size_t pos, nt type, std::string_view what) {
    const token& t = next_non_space();
    if (t.type != tok::right_delim) unexpected(t, what);
    if (range_depth_ == 0) errorf(std::string(what) + " outside {{range}}");
    return new_node(type, pos);
  }

  node* else_control() {
    const token& peeked = peek_non_space();
    if (peeked.type == tok::if_ || peeked.type == tok::with) return new_node(nt::else_, peeked.pos);
    return new_node(nt::else_, expect(tok::right_delim, "else").pos);
  }

  node* block_control() {
    const std::string context = "block clause";
    const token& t = next_non_space();
    const std::size_t pos = t.pos;
    const std::string name = template_name(t, context);
    node* pipe = pipeline(context, tok::right_delim);
    auto saved_vars = std::move(vars_);
    const int saved_range = range_depth_;
    vars_ = {"$"};
    range_depth_ = 0;
    auto [list, end] = item_list();
    if (end->type != nt::end) errorf("unexpected " + node_string(end) + " in " + context);
    vars_ = std::move(saved_vars);
    range_depth_ = saved_range;
    add(name, tree{list});
    node* n = new_node(nt::template_, pos);
    n->text = name;
    n->pipe = pipe;
    return n;
  }

  node* template_control() {
    const std::string context = "template clause";
    const token& t = next_non_space();
    const std::size_t pos = t.pos;
    const std::string name = template_name(t, context);
    node* pipe = nullptr;
    if (next_non_space().type != tok::right_delim) {
      backup();
      pipe = pipeline(context, tok::right_delim);
    }
    node* n = new_node(nt::template_, pos);
    n->text = name;
    n->pipe = pipe;
    return n;
  }

  std::string template_name(const token& t, std::string_view context) {
    if (t.type != tok::string && t.type != tok::raw_string) unexpected(t, context);
    auto unq = unquote(t.val);
    if (!unq) errorf("invalid syntax");
    return *unq;
  }

  // parseControl.
  node* control(nt type, std::string_view context) {
    enter();
    const std::size_t nvars = vars_.size();
    node* pipe = pipeline(context, tok::right_delim);
    if (type == nt::range) ++range_depth_;
    auto [list, next_node] = item_list();
    if (type == nt::range) --range_depth_;
    node* else_list = nullptr;
    if (next_node->type == nt::else_) {
      if (type == nt::if_ && peek().type == tok::if_) {
        next();
        else_list = new_node(nt::list, next_node->pos);
        else_list->nodes.push_back(control(nt::if_, "if"));
      } else if (type == nt::with && peek().type == tok::with) {
        next();
        else_list = new_node(nt::list, next_node->pos);
        else_list->nodes.push_back(control(nt::with, "with"));
      } else {
        auto [elist, end] = item_list();
        if (end->type != nt::end) errorf("expected end; found " + node_string(end));
        else_list = elist;
      }
    }
    vars_.resize(nvars);
    --depth_;
    node* n = new_node(type, pipe->pos);
    n->pipe = pipe;
    n->list = list;
    n->else_list = else_list;
    return n;
  }

  node* new_variable(std::size_t pos, std::string_view ident) {
    node* v = new_node(nt::variable, pos);
    v->ident = split_dots(ident);
    return v;
  }

  node* pipeline(std::string_view context, tok end) {
    const std::size_t pipe_pos = peek_non_space().pos;
    node* pipe = new_node(nt::pipe, pipe_pos);
    for (;;) {  // decls:
      const token& v = peek_non_space();
      if (v.type != tok::variable) break;
      const std::size_t vpos = p_;
      next();
      const token& nx = peek_non_space();
      if (nx.type == tok::assign || nx.type == tok::declare) {
        pipe->is_assign = nx.type == tok::assign;
        next_non_space();
        pipe->decl.push_back(new_variable(v.pos, v.val));
        vars_.push_back(v.val);
        break;
      }
      if (nx.type == tok::chr && nx.val == ",") {
        next_non_space();
        pipe->decl.push_back(new_variable(v.pos, v.val));
        vars_.push_back(v.val);
        if (context == "range" && pipe->decl.size() < 2) {
          const tok t = peek_non_space().type;
          if (t == tok::variable || t == tok::right_delim || t == tok::right_paren) continue;  // goto decls
          errorf("range can only initialize variables");
        }
        errorf("too many declarations in " + std::string(context));
      }
      p_ = vpos;  // backup2 / backup3: the variable is an operand
      break;
    }
    for (;;) {
      const token& t = next_non_space();
      if (t.type == end) {
        check_pipeline(pipe, context);
        return pipe;
      }
      switch (t.type) {
        case tok::boolean:
        case tok::char_constant:
        case tok::complex:
        case tok::dot:
        case tok::field:
        case tok::identifier:
        case tok::number:
        case tok::nil:
        case tok::raw_string:
        case tok::string:
        case tok::variable:
        case tok::left_paren:
          backup();
          pipe->nodes.push_back(command());
          break;
        default: unexpected(t, context);
      }
    }
  }

  void check_pipeline(node* pipe, std::string_view context) {
    if (pipe->nodes.empty()) errorf("missing value for " + std::string(context));
    for (std::size_t i = 1; i < pipe->nodes.size(); ++i) {
      switch (pipe->nodes[i]->nodes[0]->type) {
        case nt::boolean:
        case nt::dot:
        case nt::nil:
        case nt::number:
        case nt::string: errorf("non executable command in pipeline stage " + std::to_string(i + 1));
        default: break;
      }
    }
  }

  node* command() {
    node* cmd = new_node(nt::command, peek_non_space().pos);
    for (;;) {
      peek_non_space();
      if (node* operand_node = operand()) cmd->nodes.push_back(operand_node);
      const token& t = next();
      if (t.type == tok::space) continue;
      if (t.type == tok::right_delim || t.type == tok::right_paren) {
        backup();
      } else if (t.type != tok::pipe) {
        unexpected(t, "operand");
      }
      break;
    }
    if (cmd->nodes.empty()) errorf("empty command");
    return cmd;
  }

  node* operand() {
    node* n = term();
    if (!n) return nullptr;
    if (peek().type == tok::field) {
      node* chain = new_node(nt::chain, peek().pos);
      chain->base = n;
      while (peek().type == tok::field) chain->ident.push_back(next().val.substr(1));
      switch (n->type) {
        case nt::field: {
          node* f = new_node(nt::field, chain->pos);
          f->ident = n->ident;
          f->ident.insert(f->ident.end(), chain->ident.begin(), chain->ident.end());
          return f;
        }
        case nt::variable: {
          node* v = new_node(nt::variable, chain->pos);
          v->ident = n->ident;
          v->ident.insert(v->ident.end(), chain->ident.begin(), chain->ident.end());
          return v;
        }
        case nt::boolean:
        case nt::string:
        case nt::number:
        case nt::nil:
        case nt::dot: errorf("unexpected . after term " + quote_with(node_string(n), '"', false));
        default: return chain;
      }
    }
    return n;
  }

  node* term() {
    const token& t = next_non_space();
    switch (t.type) {
      case tok::identifier: {
        if (!has_function(t.val)) errorf("function " + quote_with(t.val, '"', false) + " not defined");
        node* n = new_node(nt::identifier, t.pos);
        n->text = t.val;
        return n;
      }
      case tok::dot: return new_node(nt::dot, t.pos);
      case tok::nil: return new_node(nt::nil, t.pos);
      case tok::variable: {
        node* v = new_variable(t.pos, t.val);
        if (std::find(vars_.begin(), vars_.end(), v->ident[0]) == vars_.end()) {
          errorf("undefined variable " + quote_with(v->ident[0], '"', false));
        }
        return v;
      }
      case tok::field: {
        node* f = new_node(nt::field, t.pos);
        f->ident = split_dots(std::string_view(t.val).substr(1));
        return f;
      }
      case tok::boolean: {
        node* b = new_node(nt::boolean, t.pos);
        b->truth = t.val == "true";
        return b;
      }
      case tok::char_constant:
      case tok::complex:
      case tok::number: return number(t);
      case tok::left_paren: {
        enter();
        node* p = pipeline("parenthesized pipeline", tok::right_paren);
        --depth_;
        return p;
      }
      case tok::string:
      case tok::raw_string: {
        auto unq = unquote(t.val);
        if (!unq) errorf("invalid syntax");
        node* s = new_node(nt::string, t.pos);
        s->quoted = t.val;
        s->text = std::move(*unq);
        return s;
      }
      default: backup(); return nullptr;
    }
  }

  static void simplify_complex(node* n) {
    n->is_float = n->im == 0;
    if (n->is_float) {
      n->f64 = n->re;
      n->is_int = std::trunc(n->f64) == n->f64 && std::fabs(n->f64) < 9.2e18;
      if (n->is_int) n->i64 = static_cast<std::int64_t>(n->f64);
      n->is_uint = n->f64 >= 0 && std::trunc(n->f64) == n->f64 && n->f64 < 1.8e19;
      if (n->is_uint) n->u64 = static_cast<std::uint64_t>(n->f64);
    }
  }

  // newNumber.
  node* number(const token& t) {
    node* n = new_node(nt::number, t.pos);
    n->text = t.val;
    const std::string_view text = t.val;
    if (t.type == tok::char_constant) {
      auto c = unquote_char(text.substr(1), '\'');
      if (!c) errorf("invalid syntax");
      if (text.substr(1 + c->consumed) != "'") errorf("malformed character constant: " + t.val);
      n->i64 = c->value;
      n->u64 = c->value;
      n->f64 = c->value;
      n->is_int = n->is_uint = n->is_float = true;
      return n;
    }
    if (t.type == tok::complex) {
      // "re+imi": split at the sign that starts the imaginary part.
      std::size_t split = std::string_view::npos;
      for (std::size_t i = 1; i < text.size(); ++i) {
        if ((text[i] == '+' || text[i] == '-') && lower(text[i - 1]) != 'e' && lower(text[i - 1]) != 'p') split = i;
      }
      std::optional<double> re, im;
      if (split != std::string_view::npos && text.back() == 'i') {
        re = parse_go_float(text.substr(0, split));
        im = parse_go_float(text.substr(split, text.size() - split - 1));
      }
      if (!re || !im) errorf("illegal number syntax: " + quote_with(text, '"', false));
      n->is_complex = true;
      n->re = *re;
      n->im = *im;
      simplify_complex(n);
      return n;
    }
    if (!text.empty() && text.back() == 'i') {
      if (auto f = parse_go_float(text.substr(0, text.size() - 1))) {
        n->is_complex = true;
        n->re = 0;
        n->im = *f;
        simplify_complex(n);
        return n;
      }
    }
    auto u = parse_go_uint(text);
    if (u) {
      n->is_uint = true;
      n->u64 = *u;
    }
    auto i = parse_go_int(text);
    if (i) {
      n->is_int = true;
      n->i64 = *i;
      if (*i == 0) {
        n->is_uint = true;
        n->u64 = u ? *u : 0;
      }
    }
    if (n->is_int) {
      n->is_float = true;
      n->f64 = static_cast<double>(n->i64);
    } else if (n->is_uint) {
      n->is_float = true;
      n->f64 = static_cast<double>(n->u64);
    } else if (auto f = parse_go_float(text)) {
      if (text.find_first_of(".eEpP") == std::string_view::npos) errorf("integer overflow: " + quote_with(text, '"', false));
      n->is_float = true;
      n->f64 = *f;
      if (std::trunc(*f) == *f && std::fabs(*f) < 9.2e18) {
        n->is_int = true;
        n->i64 = static_cast<std::int64_t>(*f);
      }
      if (*f >= 0 && std::trunc(*f) == *f && *f < 1.8e19) {
        n->is_uint = true;
        n->u64 = static_cast<std::uint64_t>(*f);
      }
    }
    if (!n->is_int && !n->is_uint && !n->is_float) errorf("illegal number syntax: " + quote_with(text, '"', false));
    return n;
  }
};

// ---------------------------------------------------------------------------------------------
// Execution (text/template/exec.go and funcs.go), with nil data and missingkey=error.

struct exec_error {
  std::string msg;
};

enum class flow { normal, break_, continue_ };

enum class ptype : std::uint8_t { none, reflect_value, any, string };

struct signature {
  std::size_t fixed = 0;
  bool variadic = false;
  ptype fixed_types[2] = {ptype::reflect_value, ptype::reflect_value};
  ptype variadic_type = ptype::reflect_value;
  ptype param(std::size_t i) const { return i < fixed ? fixed_types[i] : variadic_type; }
};

signature builtin_signature(std::string_view name) {
  signature s;
  if (name == "and" || name == "or" || name == "call" || name == "index" || name == "slice" || name == "eq") {
    s.fixed = 1;
    s.variadic = true;
  } else if (name == "not" || name == "len") {
    s.fixed = 1;
  } else if (name == "ne" || name == "lt" || name == "le" || name == "gt" || name == "ge") {
    s.fixed = 2;
  } else if (name == "printf") {
    s.fixed = 1;
    s.variadic = true;
    s.fixed_types[0] = ptype::string;
    s.variadic_type = ptype::any;
  } else {  // print, println, html, js, urlquery
    s.variadic = true;
    s.variadic_type = ptype::any;
  }
  return s;
}

// funcs.go's basicKind.
enum class basic { invalid, boolean, complex, integer, floating, string, uinteger };
basic basic_kind(const value& v) {
  switch (v.k) {
    case value::kind::boolean: return basic::boolean;
    case value::kind::integer: return basic::integer;
    case value::kind::byte: return basic::uinteger;
    case value::kind::floating: return basic::floating;
    case value::kind::complex: return basic::complex;
    case value::kind::string: return basic::string;
    default: return basic::invalid;
  }
}

std::string sprint_value(const value& v, char32_t verb = 'v') {
  printer p;
  p.print_arg(v, verb);
  return p.buf;
}

bool builtin_eq(const value& a, const std::vector<value>& others) {
  if (others.empty()) throw builtin_error{"missing argument for comparison"};
  const basic k1 = basic_kind(a);
  for (const value& b : others) {
    const basic k2 = basic_kind(b);
    bool truth = false;
    if (k1 != k2) {
      if (k1 == basic::integer && k2 == basic::uinteger) {
        truth = a.i >= 0 && a.i == b.i;
      } else if (k1 == basic::uinteger && k2 == basic::integer) {
        truth = b.i >= 0 && a.i == b.i;
      } else if (a.valid() && b.valid()) {
        throw builtin_error{std::string("incompatible types for comparison: ") + type_name(a) + " and " + type_name(b)};
      }
    } else {
      switch (k1) {
        case basic::boolean: truth = a.b == b.b; break;
        case basic::complex: truth = a.f == b.f && a.im == b.im; break;
        case basic::floating: truth = a.f == b.f; break;
        case basic::integer:
        case basic::uinteger: truth = a.i == b.i; break;
        case basic::string: truth = a.s == b.s; break;
        case basic::invalid:
          // Both maps (not comparable) or both nil (equal), or a map and a nil.
          if (a.valid() && b.valid()) {
            throw builtin_error{"non-comparable type " + sprint_value(b, 's') + ": " + type_name(b)};
          }
          truth = a.valid() == b.valid();
          break;
      }
    }
    if (truth) return true;
  }
  return false;
}

bool builtin_lt(const value& a, const value& b) {
  const basic k1 = basic_kind(a);
  if (k1 == basic::invalid) throw builtin_error{"invalid type for comparison"};
  const basic k2 = basic_kind(b);
  if (k2 == basic::invalid) throw builtin_error{"invalid type for comparison"};
  if (k1 != k2) {
    if (k1 == basic::integer && k2 == basic::uinteger) return a.i < 0 || a.i < b.i;
    if (k1 == basic::uinteger && k2 == basic::integer) return b.i >= 0 && a.i < b.i;
    throw builtin_error{std::string("incompatible types for comparison: ") + type_name(a) + " and " + type_name(b)};
  }
  switch (k1) {
    case basic::boolean:
    case basic::complex: throw builtin_error{"invalid type for comparison"};
    case basic::floating: return a.f < b.f;
    case basic::integer:
    case basic::uinteger: return a.i < b.i;
    case basic::string: return a.s < b.s;
    case basic::invalid: break;
  }
  return false;
}

// funcs.go's indexArg.
std::int64_t index_arg(const value& index, std::size_t cap) {
  std::int64_t x;
  if (index.k == value::kind::integer || index.k == value::kind::byte) {
    x = index.i;
  } else if (!index.valid()) {
    throw builtin_error{"cannot index slice/array with nil"};
  } else {
    throw builtin_error{std::string("cannot index slice/array with type ") + type_name(index)};
  }
  if (x < 0 || static_cast<std::uint64_t>(x) > cap) throw builtin_error{"index out of range: " + std::to_string(x)};
  return x;
}

value builtin_index(value item, const std::vector<value>& indexes) {
  if (!item.valid()) throw builtin_error{"index of untyped nil"};
  for (const value& index : indexes) {
    if (item.k == value::kind::string) {
      const auto x = static_cast<std::size_t>(index_arg(index, item.s.size()));
      if (x >= item.s.size()) throw builtin_error{"reflect: string index out of range"};
      item = value::of_byte(static_cast<unsigned char>(item.s[x]));
    } else if (item.k == value::kind::map) {
      if (!index.valid()) throw builtin_error{"value is nil; should be of type string"};
      if (index.k != value::kind::string) {
        throw builtin_error{std::string("value has type ") + type_name(index) + "; should be string"};
      }
      auto it = item.m->find(index.s);
      item = value::of_string(it == item.m->end() ? std::string() : it->second);
    } else {
      throw builtin_error{std::string("can't index item of type ") + type_name(item)};
    }
  }
  return item;
}

value builtin_slice(const value& item, const std::vector<value>& indexes) {
  if (!item.valid()) throw builtin_error{"slice of untyped nil"};
  if (indexes.size() > 3) throw builtin_error{"too many slice indexes: " + std::to_string(indexes.size())};
  if (item.k != value::kind::string) throw builtin_error{std::string("can't slice item of type ") + type_name(item)};
  if (indexes.size() == 3) throw builtin_error{"cannot 3-index slice a string"};
  std::int64_t idx[2] = {0, static_cast<std::int64_t>(item.s.size())};
  for (std::size_t n = 0; n < indexes.size(); ++n) idx[n] = index_arg(indexes[n], item.s.size());
  if (idx[0] > idx[1]) throw builtin_error{"invalid slice index: " + std::to_string(idx[0]) + " > " + std::to_string(idx[1])};
  return value::of_string(item.s.substr(static_cast<std::size_t>(idx[0]), static_cast<std::size_t>(idx[1] - idx[0])));
}

// evalArgs: fmt.Sprint after turning nil into "<no value>"; one string stays as it is.
std::string eval_args(std::vector<value> args) {
  if (args.size() == 1 && args[0].k == value::kind::string) return args[0].s;
  for (value& a : args) {
    if (!a.valid()) a = value::of_string("<no value>");
  }
  printer p;
  p.sprint(args);
  return p.buf;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '\0': out += "\xEF\xBF\xBD"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string js_escape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '\\': out += "\\\\"; continue;
        case '\'': out += "\\'"; continue;
        case '"': out += "\\\""; continue;
        case '<': out += "\\u003C"; continue;
        case '>': out += "\\u003E"; continue;
        case '&': out += "\\u0026"; continue;
        case '=': out += "\\u003D"; continue;
        default: break;
      }
      if (c < ' ') {
        out += "\\u00";
        out += upper_hex[c >> 4];
        out += upper_hex[c & 0xF];
      } else {
        out += static_cast<char>(c);
      }
      continue;
    }
    auto [r, size] = decode_rune(s.substr(i));
    if (is_print(r)) {
      out.append(s.substr(i, size));
    } else {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(r));
      out += buf;
    }
    i += size - 1;
  }
  return out;
}

std::string url_query_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += upper_hex[c >> 4];
      out += upper_hex[c & 0xF];
    }
  }
  return out;
}

class template_engine {
 public:
  template_engine(std::string_view parse_name, std::string_view text, const go_template_funcs& funcs,
                  const std::map<std::string, tree, std::less<>>& set)
      : parse_name_(parse_name), text_(text), funcs_(funcs), set_(set) {}

  std::string run(const std::string& name) {
    auto it = set_.find(name);
    tmpl_ = name;
    if (it == set_.end() || !it->second.root) errorf(quote_with(name, '"', false) + " is an incomplete or empty template");
    vars_.push_back({"$", value{}});
    walk(value{}, it->second.root);
    return std::move(out_);
  }

 private:
  std::string_view parse_name_;
  std::string_view text_;
  const go_template_funcs& funcs_;
  const std::map<std::string, tree, std::less<>>& set_;
  std::string tmpl_;
  const node* at_ = nullptr;
  std::vector<std::pair<std::string, value>> vars_;
  std::string out_;
  std::size_t depth_ = 0;
  std::size_t steps_ = 0;
  std::size_t value_bytes_ = 0;

  void at(const node* n) { at_ = n; }

  [[noreturn]] void errorf(const std::string& msg) {
    if (!at_) throw exec_error{"template: " + tmpl_ + ": " + msg};
    // Tree.ErrorContext: line and byte offset within the line, both of the node's position.
    const std::size_t pos = std::min(at_->pos, text_.size());
    const std::string_view before = text_.substr(0, pos);
    const std::size_t nl = before.rfind('\n');
    const std::size_t col = nl == std::string_view::npos ? pos : pos - (nl + 1);
    const auto line = 1 + std::count(before.begin(), before.end(), '\n');
    throw exec_error{"template: " + std::string(parse_name_) + ":" + std::to_string(line) + ":" + std::to_string(col) +
                     ": executing " + quote_with(tmpl_, '"', false) + " at <" + node_string(at_) + ">: " + msg};
  }

  // One of canaryd's own limits was passed; reported without a position (no one node is at fault).
  [[noreturn]] void over_limit(const std::string& what) {
    throw exec_error{"template: " + tmpl_ + ": " + what + " (canaryd's limit)"};
  }

  void write(std::string_view s) {
    if (out_.size() + s.size() > max_output) over_limit("output exceeds " + std::to_string(max_output) + " bytes");
    out_ += s;
  }

  void step() {
    if (++steps_ > max_steps) over_limit("execution exceeds " + std::to_string(max_steps) + " steps");
  }

  // Counts the bytes of a value produced or copied against max_value_bytes; no single value may
  // be larger than the output limit (so an escaping function's input is at most that).
  void charge(const value& v) {
    if (v.s.size() > max_output) over_limit("a value exceeds " + std::to_string(max_output) + " bytes");
    value_bytes_ += v.s.size();
    if (value_bytes_ > max_value_bytes) over_limit("execution exceeds " + std::to_string(max_value_bytes) + " bytes of values");
  }

  value var_value(const std::string& name) {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it) {
      if (it->first == name) {
        charge(it->second);
        return it->second;
      }
    }
    errorf("undefined variable: " + name);
  }

  void set_var(const std::string& name, const value& v) {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it) {
      if (it->first == name) {
        it->second = v;
        return;
      }
    }
    errorf("undefined variable: " + name);
  }

  flow walk(const value& dot, const node* n) {
    step();
    at(n);
    switch (n->type) {
      case nt::action: {
        value v = eval_pipeline(dot, n->pipe);
        if (n->pipe->decl.empty()) print_value(n, v);
        return flow::normal;
      }
      case nt::break_: return flow::break_;
      case nt::continue_: return flow::continue_;
      case nt::if_:
      case nt::with: return walk_if_or_with(n->type, dot, n);
      case nt::list:
        for (const node* c : n->nodes) {
          const flow f = walk(dot, c);
          if (f != flow::normal) return f;
        }
        return flow::normal;
      case nt::range: return walk_range(dot, n);
      case nt::template_: walk_template(dot, n); return flow::normal;
      case nt::text: write(n->text); return flow::normal;
      default: errorf("unknown node: " + node_string(n));
    }
  }

  // Nesting depth of the execution (control structures, parentheses, template calls).
  void enter() {
    if (++depth_ > max_depth) errorf("exceeded maximum template depth (" + std::to_string(max_depth) + ")");
  }

  flow walk_if_or_with(nt type, const value& dot, const node* n) {
    enter();
    const std::size_t mark = vars_.size();
    value v = eval_pipeline(dot, n->pipe);
    flow f = flow::normal;
    if (is_true(v)) {
      f = walk(type == nt::with ? v : dot, n->list);
    } else if (n->else_list) {
      f = walk(dot, n->else_list);
    }
    vars_.resize(mark);
    --depth_;
    return f;
  }

  flow walk_range(const value& dot, const node* r) {
    at(r);
    enter();
    const std::size_t outer_mark = vars_.size();
    value v = eval_pipeline(dot, r->pipe);
    const std::size_t mark = vars_.size();
    const auto& decl = r->pipe->decl;
    bool stop = false;
    auto one_iteration = [&](const value& index, const value& elem) {
      if (!decl.empty()) {
        if (r->pipe->is_assign) {
          set_var(decl[0]->ident[0], decl.size() > 1 ? index : elem);
        } else {
          vars_[vars_.size() - 1].second = elem;
        }
      }
      if (decl.size() > 1) {
        if (r->pipe->is_assign) {
          set_var(decl[1]->ident[0], elem);
        } else {
          vars_[vars_.size() - 2].second = index;
        }
      }
      const flow f = walk(elem, r->list);
      vars_.resize(mark);
      if (f == flow::break_) stop = true;
    };
    bool ran = false;
    switch (v.k) {
      case value::kind::map:
        for (const auto& [k, e] : *v.m) {
          ran = true;
          one_iteration(value::of_string(k), value::of_string(e));
          if (stop) break;
        }
        break;
      case value::kind::integer:
      case value::kind::byte:
        if (decl.size() > 1) errorf("can't use " + sprint_value(v) + " to iterate over more than one variable");
        for (std::int64_t i = 0; i < v.i; ++i) {
          ran = true;
          one_iteration(value{}, v.k == value::kind::byte ? value::of_byte(static_cast<unsigned char>(i)) : value::of_int(i));
          if (stop) break;
        }
        break;
      case value::kind::invalid: break;
      default: errorf("range can't iterate over " + sprint_value(v));
    }
    flow f = flow::normal;
    if (!ran && r->else_list) f = walk(dot, r->else_list);
    vars_.resize(outer_mark);
    --depth_;
    return f;
  }

  void walk_template(const value& dot, const node* t) {
    at(t);
    auto it = set_.find(t->text);
    if (it == set_.end() || !it->second.root) errorf("template " + quote_with(t->text, '"', false) + " not defined");
    enter();
    value new_dot = eval_pipeline(dot, t->pipe);
    auto saved_vars = std::move(vars_);
    const std::string saved_tmpl = tmpl_;
    vars_ = {{"$", new_dot}};
    tmpl_ = t->text;
    walk(new_dot, it->second.root);
    --depth_;
    tmpl_ = saved_tmpl;
    vars_ = std::move(saved_vars);
  }

  value eval_pipeline(const value& dot, const node* pipe) {
    if (!pipe) return value{};
    at(pipe);
    std::optional<value> v;
    for (const node* cmd : pipe->nodes) v = eval_command(dot, cmd, v);
    for (const node* var : pipe->decl) {
      if (pipe->is_assign) {
        set_var(var->ident[0], *v);
      } else {
        vars_.push_back({var->ident[0], *v});
      }
    }
    return *v;
  }

  void not_a_function(const std::vector<node*>& args, const std::optional<value>& final) {
    if (args.size() > 1 || final) errorf("can't give argument to non-function " + node_string(args[0]));
  }

  value eval_command(const value& dot, const node* cmd, const std::optional<value>& final) {
    step();
    const node* first = cmd->nodes[0];
    switch (first->type) {
      case nt::field: return eval_field_node(dot, first, cmd->nodes, final);
      case nt::chain: return eval_chain_node(dot, first, cmd->nodes, final);
      case nt::identifier: return eval_function(dot, first, cmd, cmd->nodes, final);
      case nt::pipe: {
        not_a_function(cmd->nodes, final);
        enter();
        value v = eval_pipeline(dot, first);
        --depth_;
        return v;
      }
      case nt::variable: return eval_variable_node(dot, first, cmd->nodes, final);
      default: break;
    }
    at(first);
    not_a_function(cmd->nodes, final);
    switch (first->type) {
      case nt::boolean: return value::of_bool(first->truth);
      case nt::dot: charge(dot); return dot;
      case nt::nil: errorf("nil is not a command");
      case nt::number: return ideal_constant(first);
      case nt::string: return value::of_string(first->text);
      default: errorf("can't evaluate command " + quote_with(node_string(first), '"', false));
    }
  }

  value ideal_constant(const node* c) {
    at(c);
    const std::string& t = c->text;
    const bool hex_int = t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') && t.find_first_of("pP") == std::string::npos;
    const bool rune_int = !t.empty() && t[0] == '\'';
    if (c->is_complex) return value::of_complex(c->re, c->im);
    if (c->is_float && !hex_int && !rune_int && t.find_first_of(".eEpP") != std::string::npos) return value::of_float(c->f64);
    if (c->is_int) return value::of_int(c->i64);
    if (c->is_uint) errorf(t + " overflows int");
    return value{};
  }

  value eval_field_node(const value& dot, const node* field, const std::vector<node*>& args, const std::optional<value>& final) {
    at(field);
    return eval_field_chain(dot, dot, field, field->ident, 0, args, final);
  }

  value eval_chain_node(const value& dot, const node* chain, const std::vector<node*>& args, const std::optional<value>& final) {
    at(chain);
    if (chain->base->type == nt::nil) errorf("indirection through explicit nil in " + node_string(chain));
    value pipe = eval_arg(dot, ptype::none, chain->base);
    return eval_field_chain(dot, pipe, chain, chain->ident, 0, args, final);
  }

  value eval_variable_node(const value& dot, const node* var, const std::vector<node*>& args, const std::optional<value>& final) {
    at(var);
    value v = var_value(var->ident[0]);
    if (var->ident.size() == 1) {
      not_a_function(args, final);
      return v;
    }
    return eval_field_chain(dot, v, var, var->ident, 1, args, final);
  }

  value eval_field_chain(const value& /*dot*/, value receiver, const node* n, const std::vector<std::string>& ident, std::size_t from,
                         const std::vector<node*>& args, const std::optional<value>& final) {
    static const std::vector<node*> no_args;
    for (std::size_t i = from; i + 1 < ident.size(); ++i) receiver = eval_field(ident[i], n, no_args, std::nullopt, receiver);
    return eval_field(ident.back(), n, args, final, receiver);
  }

  // evalField: our receivers have no methods, so only a map's keys can be fields.
  value eval_field(const std::string& name, const node* n, const std::vector<node*>& args, const std::optional<value>& final,
                   const value& receiver) {
    (void)n;
    if (!receiver.valid()) errorf("nil data; no entry for key " + quote_with(name, '"', false));
    const bool has_args = args.size() > 1 || final.has_value();
    if (receiver.k == value::kind::map) {
      if (has_args) errorf(name + " is not a method but has arguments");
      auto it = receiver.m->find(name);
      if (it == receiver.m->end()) errorf("map has no entry for key " + quote_with(name, '"', false));
      return value::of_string(it->second);
    }
    errorf("can't evaluate field " + name + " in type " + type_name(receiver));
  }

  value eval_function(const value& dot, const node* id, const node* cmd, const std::vector<node*>& args,
                      const std::optional<value>& final) {
    at(id);
    return eval_call(dot, id->text, cmd, args, final);
  }

  value validate(const value& v, ptype t) {
    if (!v.valid()) {
      if (t == ptype::string) errorf("invalid value; expected string");
      return v;
    }
    if (t == ptype::string && v.k != value::kind::string) errorf(std::string("wrong type for value; expected string; got ") + type_name(v));
    return v;
  }

  value eval_arg(const value& dot, ptype t, const node* n) {
    at(n);
    switch (n->type) {
      case nt::dot: charge(dot); return validate(dot, t);
      case nt::nil:
        if (t == ptype::string) errorf("cannot assign nil to string");
        return value{};
      case nt::field: return validate(eval_field_node(dot, n, {const_cast<node*>(n)}, std::nullopt), t);
      case nt::variable: return validate(eval_variable_node(dot, n, {}, std::nullopt), t);
      case nt::pipe: return validate(eval_pipeline(dot, n), t);
      case nt::identifier: return validate(eval_function(dot, n, n, {}, std::nullopt), t);
      case nt::chain: return validate(eval_chain_node(dot, n, {}, std::nullopt), t);
      default: break;
    }
    if (t == ptype::string) {
      at(n);
      if (n->type == nt::string) return value::of_string(n->text);
      errorf("expected string; found " + node_string(n));
    }
    // evalEmptyInterface (a reflect.Value parameter evaluates constants the same way).
    at(n);
    switch (n->type) {
      case nt::boolean: return value::of_bool(n->truth);
      case nt::number: return ideal_constant(n);
      case nt::string: return value::of_string(n->text);
      default: errorf("can't handle assignment of " + node_string(n) + " to empty interface argument");
    }
  }

  value eval_call(const value& dot, const std::string& name, const node* node_for_errors, const std::vector<node*>& all_args,
                  const std::optional<value>& final) {
    std::vector<const node*> args;
    for (std::size_t i = 1; i < all_args.size(); ++i) args.push_back(all_args[i]);
    const std::size_t num_in = args.size() + (final ? 1 : 0);

    // Flagger's functions: niladic.
    if (auto s = funcs_.strings.find(name); s != funcs_.strings.end()) {
      if (num_in != 0) errorf("wrong number of args for " + name + ": want 0 got " + std::to_string(num_in));
      value v = value::of_string(s->second);
      charge(v);
      return v;
    }
    if (auto m = funcs_.maps.find(name); m != funcs_.maps.end()) {
      if (num_in != 0) errorf("wrong number of args for " + name + ": want 0 got " + std::to_string(num_in));
      return value::of_map(&m->second);
    }

    const signature sig = builtin_signature(name);
    if (sig.variadic) {
      if (num_in < sig.fixed) {
        errorf("wrong number of args for " + name + ": want at least " + std::to_string(sig.fixed) + " got " + std::to_string(args.size()));
      }
    } else if (num_in != sig.fixed) {
      errorf("wrong number of args for " + name + ": want " + std::to_string(sig.fixed) + " got " + std::to_string(num_in));
    }

    if (name == "and" || name == "or") {
      value v;
      for (const node* a : args) {
        v = eval_arg(dot, ptype::reflect_value, a);
        if (is_true(v) == (name == "or")) return v;
      }
      if (final) v = *final;
      return v;
    }

    std::vector<value> argv;
    std::size_t i = 0;
    const std::size_t num_fixed = sig.variadic ? sig.fixed : args.size();
    for (; i < num_fixed && i < args.size(); ++i) argv.push_back(eval_arg(dot, sig.param(i), args[i]));
    if (sig.variadic) {
      for (; i < args.size(); ++i) argv.push_back(eval_arg(dot, sig.variadic_type, args[i]));
    }
    if (final) {
      const ptype t = sig.variadic ? (num_in - 1 < sig.fixed ? sig.param(num_in - 1) : sig.variadic_type) : sig.param(sig.fixed - 1);
      argv.push_back(validate(*final, t));
    }
    try {
      value v = call_builtin(name, argv, args, final);
      charge(v);
      return v;
    } catch (const builtin_error& e) {
      at(node_for_errors);
      errorf("error calling " + name + ": " + e.msg);
    }
  }

  value call_builtin(const std::string& name, std::vector<value>& argv, const std::vector<const node*>& args,
                     const std::optional<value>& final) {
    if (name == "not") return value::of_bool(!is_true(argv[0]));
    if (name == "len") {
      const value& v = argv[0];
      if (v.k == value::kind::string) return value::of_int(static_cast<std::int64_t>(v.s.size()));
      if (v.k == value::kind::map) return value::of_int(static_cast<std::int64_t>(v.m->size()));
      if (!v.valid()) throw builtin_error{"reflect: call of reflect.Value.Type on zero Value"};
      throw builtin_error{std::string("len of type ") + type_name(v)};
    }
    if (name == "index") return builtin_index(argv[0], std::vector<value>(argv.begin() + 1, argv.end()));
    if (name == "slice") return builtin_slice(argv[0], std::vector<value>(argv.begin() + 1, argv.end()));
    if (name == "call") {
      // No value we have is a function.
      if (!argv[0].valid()) throw builtin_error{"call of nil"};
      std::string callee;
      if (!args.empty()) {
        callee = node_string(args[0]);
      } else if (final && final->k == value::kind::string) {
        callee = final->s;
      } else if (final) {
        callee = std::string("<") + type_name(*final) + " Value>";
      }
      throw builtin_error{"non-function " + callee + " of type " + type_name(argv[0])};
    }
    if (name == "print" || name == "println" || name == "printf") {
      printer p;
      if (name == "print") {
        p.sprint(argv);
      } else if (name == "println") {
        p.sprintln(argv);
      } else {
        const std::string format = argv[0].s;
        argv.erase(argv.begin());
        p.sprintf(format, argv);
      }
      return value::of_string(std::move(p.buf));
    }
    if (name == "html") return value::of_string(html_escape(eval_args(argv)));
    if (name == "js") return value::of_string(js_escape(eval_args(argv)));
    if (name == "urlquery") return value::of_string(url_query_escape(eval_args(argv)));
    if (name == "eq") return value::of_bool(builtin_eq(argv[0], std::vector<value>(argv.begin() + 1, argv.end())));
    if (name == "ne") return value::of_bool(!builtin_eq(argv[0], {argv[1]}));
    if (name == "lt") return value::of_bool(builtin_lt(argv[0], argv[1]));
    if (name == "le") return value::of_bool(builtin_lt(argv[0], argv[1]) || builtin_eq(argv[0], {argv[1]}));
    if (name == "gt") {
      const bool le = builtin_lt(argv[0], argv[1]) || builtin_eq(argv[0], {argv[1]});
      return value::of_bool(!le);
    }
    if (name == "ge") return value::of_bool(!builtin_lt(argv[0], argv[1]));
    throw builtin_error{"unknown function " + name};  // unreachable: the parser checked the name
  }

  void print_value(const node* n, const value& v) {
    at(n);
    if (!v.valid()) {
      write("<no value>");
      return;
    }
    write(sprint_value(v));
  }
};

}  // namespace

std::string go_quote(std::string_view s) { return quote_with(s, '"', false); }

go_template_result execute_go_template(std::string_view name, std::string_view text, const go_template_funcs& funcs) {
  go_template_result r;
  std::deque<node> arena;
  std::map<std::string, tree, std::less<>> set;
  const std::string top(name);
  try {
    parser p(name, lexer(text).run(), funcs, arena, set);
    p.parse_top(top);
  } catch (const parse_error& e) {
    r.error = e.msg;
    r.parse_failed = true;
    return r;
  }
  try {
    template_engine engine(name, text, funcs, set);
    r.output = engine.run(top);
  } catch (const exec_error& e) {
    r.output.clear();
    r.error = e.msg;
  }
  return r;
}

}  // namespace canaryd::core
