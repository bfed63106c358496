#include "tests/core/yaml_to_json.hpp"

#include <regex>

#include <yaml-cpp/yaml.h>

#include "core/json_writer.hpp"

namespace canaryd::test {

namespace {

void append(std::string& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out += "null";
      return;
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& item : node) {
        if (!first) out += ',';
        first = false;
        append(out, item);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : node) {
        if (!first) out += ',';
        first = false;
        core::append_json_string(out, kv.first.Scalar());
        out += ':';
        append(out, kv.second);
      }
      out += '}';
      return;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (node.Tag() != "?") {  // quoted or explicitly tagged: a string
        core::append_json_string(out, s);
        return;
      }
      static const std::regex integer(R"([-+]?(0|[1-9][0-9]*))");
      static const std::regex real(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
      if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) {
        out += "null";
      } else if (s == "true" || s == "True" || s == "TRUE") {
        out += "true";
      } else if (s == "false" || s == "False" || s == "FALSE") {
        out += "false";
      } else if (std::regex_match(s, integer) || std::regex_match(s, real)) {
        std::string n = s.front() == '+' ? s.substr(1) : s;
        const bool neg = !n.empty() && n.front() == '-';
        if (n[neg ? 1 : 0] == '.') n.insert(neg ? 1 : 0, "0");  // ".5" is not JSON
        if (n.find('.') != std::string::npos && (n.back() == '.' || n[n.find('.') + 1] == 'e' || n[n.find('.') + 1] == 'E')) {
          n.insert(n.find('.') + 1, "0");  // neither is "5." or "5.e3"
        }
        out += n;
      } else {
        core::append_json_string(out, s);
      }
      return;
    }
  }
}

}  // namespace

std::vector<std::string> yaml_to_json(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& doc : YAML::LoadAll(yaml)) {
    if (!doc || doc.IsNull()) continue;
    std::string json;
    append(json, doc);
    out.push_back(std::move(json));
  }
  return out;
}

std::vector<std::string> yaml_file_to_json(const std::string& path) {
  std::vector<std::string> out;
  for (const auto& doc : YAML::LoadAllFromFile(path)) {
    if (!doc || doc.IsNull()) continue;
    std::string json;
    append(json, doc);
    out.push_back(std::move(json));
  }
  return out;
}

}  // namespace canaryd::test
