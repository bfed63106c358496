#include "core/duration.hpp"

#include <cmath>
#include <cstdint>

#include <fmt/format.h>

namespace canaryd {

std::optional<duration> parse_go_duration(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  bool negative = false;
  if (s.front() == '-' || s.front() == '+') {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return duration{0};
  if (s.empty()) return std::nullopt;
  long double total_ns = 0;
  while (!s.empty()) {
    // number: digits [. digits]
    std::size_t i = 0;
    long double whole = 0, frac = 0, scale = 1;
    bool digits = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      whole = whole * 10 + (s[i] - '0');
      ++i;
      digits = true;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        frac = frac * 10 + (s[i] - '0');
        scale *= 10;
        ++i;
        digits = true;
      }
    }
    if (!digits) return std::nullopt;
    std::size_t u = i;
    while (u < s.size() && !(s[u] >= '0' && s[u] <= '9') && s[u] != '.') ++u;
    auto unit = s.substr(i, u - i);
    long double ns_per = 0;
    if (unit == "ns") ns_per = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") ns_per = 1e3;
    else if (unit == "ms") ns_per = 1e6;
    else if (unit == "s") ns_per = 1e9;
    else if (unit == "m") ns_per = 60e9;
    else if (unit == "h") ns_per = 3600e9;
    else return std::nullopt;  // a missing or unknown unit
    total_ns += (whole + frac / scale) * ns_per;
    if (total_ns > 9.2e18L) return std::nullopt;  // overflows Go's int64 nanoseconds
    s.remove_prefix(u);
  }
  auto ms = static_cast<std::int64_t>(total_ns / 1e6L);
  return duration{negative ? -ms : ms};
}

std::string format_go_duration(duration d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string sign = ms < 0 ? "-" : "";
  if (ms < 0) ms = -ms;
  if (ms < 1000) return fmt::format("{}{}ms", sign, ms);
  std::int64_t h = ms / 3'600'000, m = (ms / 60'000) % 60, s = (ms / 1000) % 60, rem = ms % 1000;
  std::string secs = rem ? fmt::format("{}.{:03}", s, rem) : fmt::format("{}", s);
  while (rem && secs.back() == '0') secs.pop_back();
  if (h) return fmt::format("{}{}h{}m{}s", sign, h, m, secs);
  if (m) return fmt::format("{}{}m{}s", sign, m, secs);
  return fmt::format("{}{}s", sign, secs);
}

}  // namespace canaryd
