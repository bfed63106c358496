// libFuzzer target: a MetricTemplate's query (or an inline query) rendered as Go's text/template
// with Flagger's functions. The first line of the input is the query; the lines after it are
// templateVariables ("key=value").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/metric_query.hpp"

using namespace canaryd::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  query_vars vars;
  vars.name = "podinfo";
  vars.namespace_ = "test";
  vars.target = "podinfo";
  vars.service = "podinfo-svc";
  vars.ingress = "podinfo.ing";
  vars.route = "podinfo-route";
  vars.interval = "1m";
  std::string_view query = text;
  if (const auto nl = text.find('\n'); nl != std::string_view::npos) {
    query = text.substr(0, nl);
    std::string_view rest = text.substr(nl + 1);
    while (!rest.empty()) {
      const auto end = rest.find('\n');
      const std::string_view line = rest.substr(0, end);
      if (const auto eq = line.find('='); eq != std::string_view::npos) {
        vars.variables[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      }
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
  }
  rendered_query r = render_query(query, vars);
  if (r.ok() != r.error.empty() || (!r.ok() && !r.query.empty())) __builtin_trap();
  (void)collapse_whitespace(r.query);
  return 0;
}
