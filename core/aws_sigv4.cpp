#include "core/aws_sigv4.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "core/hash.hpp"

namespace canaryd::core {

namespace {

std::string hex_sha256(std::string_view data) {
  auto d = sha256(data);
  return to_hex(d.data(), d.size());
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Trimmed, inner runs of spaces collapsed to one.
std::string header_value(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> canonical_headers(const sigv4_request& r) {
  std::vector<std::pair<std::string, std::string>> hs;
  for (const auto& [k, v] : r.headers) {
    std::string name = lower(k);
    std::string value = header_value(v);
    auto it = std::find_if(hs.begin(), hs.end(), [&](const auto& h) { return h.first == name; });
    if (it != hs.end()) {
      it->second += "," + value;
    } else {
      hs.emplace_back(std::move(name), std::move(value));
    }
  }
  std::sort(hs.begin(), hs.end());
  return hs;
}

}  // namespace

std::string sigv4_uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string amz_date(wall_time t) {
  std::time_t tt = wall_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string amz_day(wall_time t) { return amz_date(t).substr(0, 8); }

std::string sigv4_signed_headers(const sigv4_request& r) {
  std::string out;
  for (const auto& [k, _] : canonical_headers(r)) {
    if (!out.empty()) out += ';';
    out += k;
  }
  return out;
}

std::string sigv4_canonical_request(const sigv4_request& r) {
  // The path: each segment decoded and encoded once (the services other than S3 would encode
  // twice; canaryd signs only "/" paths, where both agree).
  std::string path = r.path.empty() ? "/" : sigv4_uri_encode(decode(r.path), true);
  // The query: pairs decoded, encoded, sorted by name then value.
  std::vector<std::pair<std::string, std::string>> params;
  std::string_view q = r.query;
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    params.emplace_back(sigv4_uri_encode(decode(pair.substr(0, eq))),
                        eq == std::string_view::npos ? "" : sigv4_uri_encode(decode(pair.substr(eq + 1))));
  }
  std::sort(params.begin(), params.end());
  std::string query;
  for (const auto& [k, v] : params) {
    if (!query.empty()) query += '&';
    query += k + "=" + v;
  }
  std::string headers;
  for (const auto& [k, v] : canonical_headers(r)) headers += k + ":" + v + "\n";
  return fmt::format("{}\n{}\n{}\n{}\n{}\n{}", r.method, path, query, headers, sigv4_signed_headers(r),
                     hex_sha256(r.payload));
}

std::string sigv4_string_to_sign(std::string_view date, const sigv4_scope& scope, std::string_view canonical_request) {
  return fmt::format("AWS4-HMAC-SHA256\n{}\n{}\n{}", date, scope.text(), hex_sha256(canonical_request));
}

std::string sigv4_authorization(std::string_view access_key_id, const sigv4_scope& scope, std::string_view signed_headers,
                                std::string_view signature_hex) {
  return fmt::format("AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}", access_key_id, scope.text(),
                     signed_headers, signature_hex);
}

}  // namespace canaryd::core
