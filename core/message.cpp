#include "core/message.hpp"

#include <array>
#include <cctype>
#include <utility>

namespace canaryd::core {

namespace {

bool is_space_or_control(unsigned char ch) { return ch < 0x20 || ch == 0x7f || ch == ' '; }

// The longest prefix of `s` of at most `n` bytes that does not end inside a UTF-8 sequence.
std::size_t utf8_cut(std::string_view s, std::size_t n) {
  if (n >= s.size()) return s.size();
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return n;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::string one_line(std::string_view text, std::size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max + 8));
  bool space = false;
  for (char ch : text) {
    if (is_space_or_control(static_cast<unsigned char>(ch))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
    // Enough read to know it will be cut: stop early on huge inputs.
    if (out.size() > max + 4) break;
  }
  if (out.size() <= max) return out;
  constexpr std::string_view ellipsis = "...";
  const std::size_t keep = utf8_cut(out, max > ellipsis.size() ? max - ellipsis.size() : 0);
  out.resize(keep);
  out += ellipsis.substr(0, std::min(ellipsis.size(), max));
  return out;
}

std::string body_excerpt(std::string_view body, std::size_t max) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 6> entities{{
      {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "}}};
  std::string text;
  for (std::size_t i = 0; i < body.size() && text.size() <= 4 * max + 64;) {
    const char ch = body[i];
    if (ch == '<') {
      const std::string_view rest = body.substr(i + 1);
      // Drop what a browser would not show.
      for (std::string_view hidden : {std::string_view("script"), std::string_view("style")}) {
        if (starts_with_ci(rest, hidden)) {
          std::size_t end = i + 1;
          for (; end < body.size(); ++end) {
            if (body[end] == '<' && end + 1 < body.size() && body[end + 1] == '/' &&
                starts_with_ci(body.substr(end + 2), hidden))
              break;
          }
          i = end;
          break;
        }
      }
      const std::size_t close = body.find('>', i + 1);
      if (close == std::string_view::npos) break;  // an unterminated tag: the rest is markup
      text += ' ';
      i = close + 1;
      continue;
    }
    if (ch == '&') {
      bool decoded = false;
      for (const auto& [entity, value] : entities) {
        if (body.substr(i, entity.size()) == entity) {
          text += value;
          i += entity.size();
          decoded = true;
          break;
        }
      }
      if (decoded) continue;
    }
    text += ch;
    ++i;
  }
  return one_line(text, max);
}

std::string url_host(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  std::string_view rest = url.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  return std::string(rest);
}

}  // namespace canaryd::core
