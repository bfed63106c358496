// libFuzzer target: a Canary as the API server hands it to canaryd (JSON), decoded, validated,
// and turned into the metric queries an analysis step would run.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/canary.hpp"
#include "core/metric_check.hpp"
#include "core/metric_query.hpp"

using namespace canaryd::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  decoded<canary> d = decode_canary(text);
  if (!d.ok()) return 0;
  (void)validate(d.value);
  if (!d.value.spec.analysis) return 0;
  for (const metric_query& q : metric_queries(*d.value.spec.analysis)) {
    const canary_metric& m = d.value.spec.analysis->metrics[q.metric];
    query_vars vars = make_query_vars(d.value, m);
    if (q.kind == metric_query_kind::inline_query) {
      (void)render_query(m.query, vars);
    } else if (q.kind != metric_query_kind::template_query) {
      (void)builtin_observer_query(d.value.spec.provider, q.kind, vars);
    }
  }
  return 0;
}
