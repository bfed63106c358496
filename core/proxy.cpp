#include "core/proxy.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <vector>

namespace canaryd::core {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into ::ffff:0:0/96), or nullopt.
std::optional<std::array<std::uint8_t, 16>> parse_ip(std::string_view s) {
  std::array<std::uint8_t, 16> out{};
  if (s.find(':') == std::string_view::npos) {
    out[10] = out[11] = 0xff;
    for (int i = 0; i < 4; ++i) {
      auto dot = s.find('.');
      if ((i < 3) == (dot == std::string_view::npos)) return std::nullopt;
      auto part = s.substr(0, dot);
      unsigned v = 0;
      auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
      if (ec != std::errc{} || p != part.data() + part.size() || part.empty() || v > 255) return std::nullopt;
      out[12 + i] = static_cast<std::uint8_t>(v);
      s = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    }
    return out;
  }
  // IPv6: groups of hex, one "::" allowed.
  std::vector<std::uint16_t> head, tail;
  bool gap = false;
  auto* cur = &head;
  if (s.starts_with("::")) {
    gap = true;
    cur = &tail;
    s.remove_prefix(2);
  }
  while (!s.empty()) {
    auto colon = s.find(':');
    auto part = s.substr(0, colon);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v, 16);
    if (ec != std::errc{} || p != part.data() + part.size() || part.empty() || v > 0xffff) return std::nullopt;
    cur->push_back(static_cast<std::uint16_t>(v));
    if (colon == std::string_view::npos) break;
    s.remove_prefix(colon + 1);
    if (s.starts_with(":")) {
      if (gap) return std::nullopt;
      gap = true;
      cur = &tail;
      s.remove_prefix(1);
    }
  }
  if (head.size() + tail.size() > 8 || (!gap && head.size() != 8)) return std::nullopt;
  std::vector<std::uint16_t> all = head;
  all.resize(8 - tail.size(), 0);
  all.insert(all.end(), tail.begin(), tail.end());
  for (int i = 0; i < 8; ++i) {
    out[2 * i] = static_cast<std::uint8_t>(all[i] >> 8);
    out[2 * i + 1] = static_cast<std::uint8_t>(all[i] & 0xff);
  }
  return out;
}

bool is_loopback(const std::array<std::uint8_t, 16>& ip) {
  const bool v4 = std::all_of(ip.begin(), ip.begin() + 10, [](auto b) { return b == 0; }) && ip[10] == 0xff && ip[11] == 0xff;
  if (v4) return ip[12] == 127;
  return std::all_of(ip.begin(), ip.begin() + 15, [](auto b) { return b == 0; }) && ip[15] == 1;
}

// "host:port" or "[v6]:port" or a bare host: (host, port).
std::pair<std::string, std::string> split_host_port(std::string_view s) {
  if (s.starts_with("[")) {
    auto close = s.find(']');
    if (close == std::string_view::npos) return {std::string(s), {}};
    std::string host(s.substr(1, close - 1));
    auto rest = s.substr(close + 1);
    return {host, rest.starts_with(":") ? std::string(rest.substr(1)) : std::string()};
  }
  if (std::count(s.begin(), s.end(), ':') == 1) {
    auto c = s.find(':');
    return {std::string(s.substr(0, c)), std::string(s.substr(c + 1))};
  }
  return {std::string(s), {}};
}

// Whether NO_PROXY (and the loopback rule) lets host:port use the proxy; httpproxy's useProxy.
bool use_proxy(std::string_view no_proxy, const std::string& host, std::string_view port) {
  if (host == "localhost") return false;
  const auto ip = parse_ip(host);
  if (ip && is_loopback(*ip)) return false;
  std::string_view list = no_proxy;
  while (!list.empty()) {
    auto comma = list.find(',');
    auto entry = lower(trim(list.substr(0, comma)));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (entry.empty()) continue;
    if (entry == "*") return false;
    if (auto slash = entry.find('/'); slash != std::string::npos) {  // CIDR
      auto net = parse_ip(entry.substr(0, slash));
      int bits = 0;
      auto len = std::string_view(entry).substr(slash + 1);
      auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
      if (!net || !ip || ec != std::errc{} || p != len.data() + len.size()) continue;
      if (entry.find(':') == std::string::npos) bits += 96;  // an IPv4 block within the mapped range
      if (bits < 0 || bits > 128) continue;
      bool in = true;
      for (int b = 0; b < bits && in; ++b) {
        const int byte = b / 8, mask = 0x80 >> (b % 8);
        in = ((*ip)[byte] & mask) == ((*net)[byte] & mask);
      }
      if (in) return false;
      continue;
    }
    auto [phost, pport] = split_host_port(entry);
    if (auto pip = parse_ip(phost)) {
      if (ip && *ip == *pip && (pport.empty() || pport == port)) return false;
      continue;
    }
    if (phost.empty()) continue;
    if (phost.starts_with("*.")) phost.erase(0, 1);
    bool match_host = false;
    if (phost.front() != '.') {
      match_host = true;
      phost.insert(phost.begin(), '.');
    }
    const std::string h = lower(host);
    if ((h.ends_with(phost) || (match_host && h == phost.substr(1))) && (pport.empty() || pport == port)) return false;
  }
  return true;
}

std::string first_set(const std::function<std::optional<std::string>(std::string_view)>& getenv, std::string_view upper,
                      std::string_view lower_name) {
  if (auto v = getenv(upper); v && !v->empty()) return *v;
  if (auto v = getenv(lower_name); v && !v->empty()) return *v;
  return {};
}

}  // namespace

proxy_environment proxy_environment_from(const std::function<std::optional<std::string>(std::string_view)>& getenv) {
  return {first_set(getenv, "HTTP_PROXY", "http_proxy"), first_set(getenv, "HTTPS_PROXY", "https_proxy"),
          first_set(getenv, "NO_PROXY", "no_proxy")};
}

std::string proxy_for(const proxy_environment& env, std::string_view scheme, std::string_view host,
                      std::string_view port) {
  const std::string s = lower(scheme);
  std::string proxy = s == "https" ? env.https_proxy : s == "http" ? env.http_proxy : std::string();
  if (proxy.empty()) return {};
  if (port.empty()) port = s == "https" ? "443" : "80";
  if (!use_proxy(env.no_proxy, lower(host), port)) return {};
  if (proxy.find("://") == std::string::npos) proxy = "http://" + proxy;
  return proxy;
}

}  // namespace canaryd::core
