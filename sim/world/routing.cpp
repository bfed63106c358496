#include "sim/world/routing.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace kubesim::world {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool iprefix(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

std::string_view cookie_name(std::string_view pair) { return trim(pair.substr(0, pair.find('='))); }

}  // namespace

void read_set_cookie(std::string_view value, std::vector<std::string>& set, std::vector<std::string>& deleted) {
  auto semi = value.find(';');
  auto pair = trim(value.substr(0, semi));
  if (pair.empty() || pair.find('=') == std::string_view::npos || cookie_name(pair).empty()) return;
  bool gone = false;
  std::string_view rest = semi == std::string_view::npos ? std::string_view{} : value.substr(semi + 1);
  while (!rest.empty()) {
    auto next = rest.find(';');
    auto attr = trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next + 1);
    if (iprefix(attr, "max-age=")) {
      auto n = trim(attr.substr(8));
      gone = !n.empty() && (n.front() == '-' || std::all_of(n.begin(), n.end(), [](char c) { return c == '0'; }));
    }
  }
  (gone ? deleted : set).emplace_back(pair);
}

std::string apply_cookies(std::string_view header, const std::vector<std::string>& set,
                          const std::vector<std::string>& deleted) {
  std::vector<std::string> jar;
  while (!header.empty()) {
    auto semi = header.find(';');
    auto pair = trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    if (!pair.empty()) jar.emplace_back(pair);
  }
  for (const auto& d : deleted)
    std::erase_if(jar, [&](const std::string& c) { return cookie_name(c) == cookie_name(d); });
  for (const auto& s : set) {
    auto it = std::find_if(jar.begin(), jar.end(), [&](const std::string& c) { return cookie_name(c) == cookie_name(s); });
    if (it != jar.end()) *it = s;
    else jar.push_back(s);
  }
  std::string out;
  for (const auto& c : jar) {
    if (!out.empty()) out += "; ";
    out += c;
  }
  return out;
}

}  // namespace kubesim::world
