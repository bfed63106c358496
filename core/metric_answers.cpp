#include "core/metric_answers.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace canaryd::core {

namespace json = boost::json;

metric_observation observed_value(double v) {
  if (!std::isfinite(v)) return observed_no_values(fmt::format("value is {}: no values found", v));
  metric_observation o;
  o.result = metric_observation::outcome::value;
  o.value = v;
  return o;
}

metric_observation observed_no_values(std::string error) {
  metric_observation o;
  o.result = metric_observation::outcome::no_values;
  o.error = std::move(error);
  return o;
}

metric_observation observed_failure(std::string error) {
  metric_observation o;
  o.result = metric_observation::outcome::query_failed;
  o.error = std::move(error);
  return o;
}

namespace {

metric_observation value(double v) { return observed_value(v); }
metric_observation no_values(std::string e) { return observed_no_values(std::move(e)); }
metric_observation failed(std::string e) { return observed_failure(std::move(e)); }

// A datapoint's value: a number, a numeric string, or null (nullopt).
std::optional<double> point_value(const json::value& v, bool& bad) {
  if (v.is_null()) return std::nullopt;
  if (v.is_number()) return v.to_number<double>();
  if (v.is_string()) {
    std::string s(v.as_string());
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end) bad = true;
    return d;
  }
  bad = true;
  return std::nullopt;
}

// RFC 4180 rows of `text` (quoted fields may hold commas, quotes and line breaks).
std::vector<std::vector<std::string>> parse_csv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  bool any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\r') {
      continue;
    } else if (c == '\n') {
      if (any || !field.empty()) row.push_back(std::move(field));
      rows.push_back(std::move(row));
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

metric_observation read_datadog_answer(int status, std::string_view body) {
  if (status != 200) return failed(fmt::format("error response: {}", body));
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return failed(fmt::format("error unmarshaling result: '{}'", body));
  const json::value* series = doc.as_object().if_contains("series");
  const json::array* list = series ? series->if_array() : nullptr;
  auto none = [&] { return no_values(fmt::format("invalid response: {}: no values found", body)); };
  if (!list || list->empty() || !(*list)[0].is_object()) return none();
  const json::value* pl = (*list)[0].as_object().if_contains("pointlist");
  if (!pl || !pl->is_array() || pl->as_array().empty()) return none();
  const json::array* point = pl->as_array()[0].if_array();
  if (!point || point->size() < 2 || !(*point)[1].is_number()) return none();
  return value((*point)[1].to_number<double>());
}

metric_observation read_newrelic_answer(int status, std::string_view body) {
  if (status != 200) return failed(fmt::format("error response: {}", body));
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return failed(fmt::format("error unmarshaling result: '{}'", body));
  const json::value* results = doc.as_object().if_contains("results");
  auto none = [&] { return no_values(fmt::format("invalid response: {}: no values found", body)); };
  if (!results || !results->is_array() || results->as_array().size() != 1) return none();
  const json::object* first = results->as_array()[0].if_object();
  const json::value* v = first ? first->if_contains("result") : nullptr;
  if (!v || !v->is_number()) return none();
  return value(v->to_number<double>());
}

metric_observation read_dynatrace_answer(int status, std::string_view body) {
  if (status != 200) return failed(fmt::format("error response: {}", body));
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return failed(fmt::format("error unmarshaling result: '{}'", body));
  auto none = [&] { return no_values(fmt::format("invalid response: {}: no values found", body)); };
  const json::value* result = doc.as_object().if_contains("result");
  if (!result || !result->is_array() || result->as_array().empty() || !result->as_array()[0].is_object()) return none();
  const json::value* data = result->as_array()[0].as_object().if_contains("data");
  if (!data || !data->is_array() || data->as_array().empty()) return none();
  const json::object* last = data->as_array().back().if_object();
  const json::value* values = last ? last->if_contains("values") : nullptr;
  if (!values || !values->is_array() || values->as_array().empty()) return none();
  const json::value& v = values->as_array()[0];
  if (!v.is_number()) return none();
  return value(v.to_number<double>());
}

metric_observation read_graphite_answer(int status, std::string_view body) {
  if (status >= 400) return failed(fmt::format("error response: {}", body));
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_array()) return failed(fmt::format("error unmarshaling result: '{}'", body));
  std::optional<double> last;
  for (const auto& series : doc.as_array()) {
    const json::object* s = series.if_object();
    const json::value* points = s ? s->if_contains("datapoints") : nullptr;
    if (!points || !points->is_array()) continue;
    for (const auto& p : points->as_array()) {
      const json::array* pair = p.if_array();
      if (!pair || pair->size() != 2) return failed(fmt::format("error unmarshaling result: '{}'", body));
      bool bad = false;
      auto v = point_value((*pair)[0], bad);
      if (bad) return failed(fmt::format("error unmarshaling result: '{}'", body));
      if (v) last = v;
    }
  }
  if (!last) return no_values("no values found");
  return value(*last);
}

metric_observation read_influxdb_answer(int status, std::string_view body) {
  if (status / 100 != 2) {
    // {"code":"...","message":"..."}, as the client reports it.
    boost::system::error_code ec;
    json::value doc = json::parse(body, ec);
    std::string message(body);
    if (!ec && doc.is_object()) {
      if (auto* m = doc.as_object().if_contains("message"); m && m->is_string()) message = std::string(m->as_string());
    }
    return failed(fmt::format("error accessing influxdb query api: {}", message));
  }
  std::vector<std::string> datatypes;
  std::vector<std::string> defaults;
  std::vector<std::string> header;
  for (auto& row : parse_csv(body)) {
    if (row.empty()) {  // a blank line ends a table
      datatypes.clear();
      defaults.clear();
      header.clear();
      continue;
    }
    if (row[0] == "#datatype") {
      datatypes = row;
      continue;
    }
    if (row[0] == "#default") {
      defaults = row;
      continue;
    }
    if (!row[0].empty() && row[0][0] == '#') continue;
    if (header.empty()) {
      header = row;
      continue;
    }
    // An error table (",error,reference"): the query failed after the answer began.
    if (auto e = std::find(header.begin(), header.end(), "error"); e != header.end()) {
      const auto col = static_cast<std::size_t>(e - header.begin());
      return failed(fmt::format("query error: {}", col < row.size() ? row[col] : ""));
    }
    auto at = std::find(header.begin(), header.end(), "_value");
    if (at == header.end()) continue;
    const std::size_t col = static_cast<std::size_t>(at - header.begin());
    std::string text = col < row.size() ? row[col] : "";
    if (text.empty() && col < defaults.size()) text = defaults[col];
    const std::string type = col < datatypes.size() ? datatypes[col] : "";
    if (text.empty()) return no_values(fmt::format("invalid response: _value is null: no values found"));
    if (type == "double" || type == "long" || type == "unsignedLong") {
      char* end = nullptr;
      double v = std::strtod(text.c_str(), &end);
      if (end != text.c_str() + text.size()) return failed(fmt::format("invalid response: _value {}", text));
      return value(v);
    }
    return failed(fmt::format("invalid response: _value {} is a {}", text, type.empty() ? "string" : type));
  }
  return no_values("no records: no values found");
}

metric_observation read_cloudwatch_answer(std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return failed(fmt::format("error requesting cloudwatch: bad answer '{}'", body));
  auto none = [&] { return no_values(fmt::format("invalid response: {}: no values found", body)); };
  const json::value* results = doc.as_object().if_contains("MetricDataResults");
  if (!results || !results->is_array() || results->as_array().empty() || !results->as_array()[0].is_object())
    return none();
  const json::value* values = results->as_array()[0].as_object().if_contains("Values");
  if (!values || !values->is_array() || values->as_array().empty() || !values->as_array()[0].is_number())
    return none();
  return value(values->as_array()[0].to_number<double>());
}

metric_observation read_stackdriver_answer(std::string_view body) {
  boost::system::error_code ec;
  json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return failed(fmt::format("error requesting stackdriver: bad answer '{}'", body));
  auto none = [&] { return no_values(fmt::format("invalid response: {}: no values found", body)); };
  const json::value* series = doc.as_object().if_contains("timeSeriesData");
  if (!series || !series->is_array() || series->as_array().empty() || !series->as_array()[0].is_object())
    return none();
  const json::value* points = series->as_array()[0].as_object().if_contains("pointData");
  if (!points || !points->is_array() || points->as_array().empty() || !points->as_array()[0].is_object())
    return none();
  const json::value* values = points->as_array()[0].as_object().if_contains("values");
  if (!values || !values->is_array() || values->as_array().empty() || !values->as_array()[0].is_object())
    return none();
  const json::object& v = values->as_array()[0].as_object();
  if (auto* d = v.if_contains("doubleValue")) {
    if (d->is_number()) return value(d->to_number<double>());
    if (d->is_string()) return value(std::strtod(std::string(d->as_string()).c_str(), nullptr));  // "NaN"
  }
  if (auto* i = v.if_contains("int64Value"); i && i->is_string()) {
    return value(std::strtod(std::string(i->as_string()).c_str(), nullptr));
  }
  return none();
}

}  // namespace canaryd::core
