#include "sim/api/yaml_json.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <regex>
#include <stdexcept>

namespace kubesim {
namespace json = boost::json;

namespace {

constexpr int max_depth = 200;  // a body nested deeper is refused rather than recursed into

json::value scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  // yaml-cpp tags quoted and block scalars "!" and plain ones "?"; an explicit tag wins.
  if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return json::value(s);
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  static const char* truthy[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
  static const char* falsy[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"};
  for (auto* t : truthy)
    if (s == t) return true;
  for (auto* f : falsy)
    if (s == f) return false;
  static const std::regex int_re("[-+]?(0|[1-9][0-9_]*)");
  static const std::regex hex_re("0x[0-9a-fA-F_]+");
  static const std::regex float_re("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (std::regex_match(s, int_re)) {
    std::string digits;
    for (char c : s)
      if (c != '_' && c != '+') digits += c;
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc() && p == digits.data() + digits.size()) return v;
    std::uint64_t u = 0;
    auto [p2, ec2] = std::from_chars(digits.data(), digits.data() + digits.size(), u);
    if (ec2 == std::errc() && p2 == digits.data() + digits.size()) return u;
    return std::strtod(digits.c_str(), nullptr);
  }
  if (std::regex_match(s, hex_re)) {
    std::string digits;
    for (char c : s.substr(2))
      if (c != '_') digits += c;
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, 16);
    if (ec == std::errc() && p == digits.data() + digits.size()) return v;
    return json::value(s);
  }
  if (std::regex_match(s, float_re)) return std::strtod(s.c_str(), nullptr);
  return json::value(s);
}

json::value convert(const YAML::Node& n, int depth) {
  if (depth > max_depth) throw std::runtime_error("yaml: document nested too deeply");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar(n);
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& item : n) a.push_back(convert(item, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) throw std::runtime_error("yaml: only scalar map keys can be converted to JSON");
        o[kv.first.Scalar()] = convert(kv.second, depth + 1);
      }
      return o;
    }
  }
  return nullptr;
}

}  // namespace

boost::system::result<json::value, yaml_error> yaml_to_json(std::string_view text) {
  try {
    auto docs = YAML::LoadAll(std::string(text));
    std::vector<YAML::Node> present;
    for (auto& d : docs)
      if (!d.IsNull()) present.push_back(d);
    if (present.size() > 1) return yaml_error{"yaml: the body holds more than one document"};
    if (present.empty()) return json::value(nullptr);
    return convert(present.front(), 0);
  } catch (const std::exception& e) {
    return yaml_error{e.what()};
  }
}

void throw_exception_from_error(const yaml_error& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

}  // namespace kubesim
