#include "tests/support/prometheus.hpp"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cctype>
#include <cstdio>

#include "tests/support/process.hpp"

namespace canaryd::test {

namespace json = boost::json;

std::map<std::string, double> prom_query(const std::string& prom, const std::string& promql, const std::string& label) {
  auto reply = http_call("GET", prom + "/api/v1/query?query=" + [&] {
    std::string enc;
    for (unsigned char c : promql) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') enc += static_cast<char>(c);
      else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        enc += buf;
      }
    }
    return enc;
  }());
  std::map<std::string, double> out;
  REQUIRE_MESSAGE(reply, "Prometheus did not answer " << promql);
  INFO(reply->body);
  REQUIRE(reply->status == 200);
  auto v = json::parse(reply->body);
  for (const auto& s : v.at("data").at("result").as_array()) {
    std::string key;
    if (!label.empty())
      if (const auto* l = s.at("metric").as_object().if_contains(label)) key = std::string(l->as_string());
    out[key] = std::stod(std::string(s.at("value").as_array()[1].as_string()));
  }
  return out;
}

}  // namespace canaryd::test
