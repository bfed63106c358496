#include "core/prometheus_answer.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

namespace canaryd::core {

namespace {

namespace json = boost::json;
using outcome = metric_observation::outcome;

metric_observation failed(outcome o, std::string error) {
  metric_observation r;
  r.result = o;
  r.error = std::move(error);
  return r;
}

// The sample's value: Prometheus writes it as a string ("0.95", "NaN", "+Inf").
std::optional<double> sample_value(const json::value& pair) {
  const auto* arr = pair.if_array();
  if (!arr || arr->size() < 2 || !(*arr)[1].is_string()) return std::nullopt;
  const json::string& s = (*arr)[1].as_string();
  std::string text(s.data(), s.size());
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  return v;
}

}  // namespace

metric_observation read_prometheus_answer(int http_status, std::string_view body) {
  if (http_status >= 400) return failed(outcome::query_failed, fmt::format("error response: {}", body));
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  const json::object* root = ec ? nullptr : doc.if_object();
  const json::object* data = nullptr;
  if (root) {
    if (auto it = root->find("data"); it != root->end()) data = it->value().if_object();
  }
  if (!data) return failed(outcome::query_failed, fmt::format("error unmarshaling result: '{}'", body));
  std::string_view type;
  if (auto it = data->find("resultType"); it != data->end() && it->value().is_string()) type = it->value().as_string();
  const json::value* result = data->if_contains("result");
  if (type == "matrix") return failed(outcome::query_failed, "query returned multiple values");
  std::optional<double> value;
  if (type == "scalar" && result) {
    value = sample_value(*result);
  } else if (result && result->is_array() && !result->as_array().empty()) {
    if (const auto* first = result->as_array()[0].if_object()) {
      if (const json::value* v = first->if_contains("value")) value = sample_value(*v);
    }
  }
  if (!value || std::isnan(*value)) return failed(outcome::no_values, "no values found");
  metric_observation o;
  o.result = outcome::value;
  o.value = *value;
  return o;
}

}  // namespace canaryd::core
