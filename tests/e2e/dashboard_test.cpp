// deploy/dashboards/canaryd.json asks only for metrics canaryd exports: every metric name in
// its PromQL expressions is a family that a running canaryd's /metrics declares (or a
// histogram's _bucket/_sum/_count of one).
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cctype>
#include <regex>
#include <set>
#include <sstream>

#include "tests/e2e/harness.hpp"

namespace json = boost::json;
using namespace canaryd::test;
using namespace std::chrono_literals;

namespace {

// The metric names an expression uses: identifiers left once label matchers, strings, range and
// offset durations, `by`/`without`/`on`/`ignoring` label lists, function calls and keywords
// are taken out.
std::set<std::string> metric_names(std::string e) {
  e = std::regex_replace(e, std::regex(R"(\{[^}]*\})"), " ");
  e = std::regex_replace(e, std::regex(R"("[^"]*")"), " ");
  e = std::regex_replace(e, std::regex(R"(\[[^\]]*\])"), " ");
  e = std::regex_replace(e, std::regex(R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))"), " ");
  e = std::regex_replace(e, std::regex(R"(\b[a-zA-Z_][a-zA-Z0-9_]*\s*\()"), " (");
  static const std::set<std::string> keywords{"and", "or", "unless", "offset", "bool", "inf", "nan"};
  std::set<std::string> out;
  std::regex ident(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
  for (std::sregex_iterator it(e.begin(), e.end(), ident), end; it != end; ++it) {
    // Skip the exponent or suffix of a number ("1e3", "0.99").
    if (it->position() > 0 && (std::isdigit(static_cast<unsigned char>(e[it->position() - 1])) || e[it->position() - 1] == '.'))
      continue;
    if (!keywords.count(it->str())) out.insert(it->str());
  }
  return out;
}

void collect_exprs(const json::value& v, std::vector<std::string>& out) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.as_object()) {
      if (k == "expr" && child.is_string()) out.emplace_back(child.as_string());
      else collect_exprs(child, out);
    }
  } else if (v.is_array()) {
    for (const auto& child : v.as_array()) collect_exprs(child, out);
  }
}

}  // namespace

TEST_CASE("the expression scanner finds metric names and nothing else") {
  CHECK(metric_names(R"(histogram_quantile(0.99, sum by (le) (rate(flagger_canary_duration_seconds_bucket{job=~"$job"}[5m]))))") ==
        std::set<std::string>{"flagger_canary_duration_seconds_bucket"});
  CHECK(metric_names(R"(process_open_fds{job="a"} / process_max_fds and on (pod) up offset 1m)") ==
        std::set<std::string>{"process_open_fds", "process_max_fds", "up"});
}

TEST_CASE("deploy/dashboards/canaryd.json references only metric names canaryd exports") {
  kubesim_instance sim;
  setup_cluster(sim);
  auto d = start_canaryd(sim);
  auto r = http_call("GET", "http://127.0.0.1:" + std::to_string(d.port) + "/metrics", {}, 5s);
  REQUIRE(r);
  std::set<std::string> exported;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("# TYPE ")) continue;
    std::istringstream w(line.substr(7));
    std::string name, type;
    w >> name >> type;
    exported.insert(name);
    if (type == "histogram")
      for (auto suffix : {"_bucket", "_sum", "_count"}) exported.insert(name + suffix);
  }
  REQUIRE(exported.count("flagger_info") == 1);
  REQUIRE(exported.count("process_resident_memory_bytes") == 1);

  auto dash = json::parse(read_text(source_root() / "deploy" / "dashboards" / "canaryd.json"));
  std::vector<std::string> exprs;
  collect_exprs(dash, exprs);
  REQUIRE(exprs.size() >= 10);
  std::set<std::string> used;
  for (const auto& e : exprs) {
    CAPTURE(e);
    auto names = metric_names(e);
    CHECK(!names.empty());
    for (const auto& n : names) {
      CAPTURE(n);
      CHECK(exported.count(n) == 1);
      used.insert(n);
    }
  }
  // The dashboard covers canaryd's own families, not only Flagger's.
  for (auto n : {"canaryd_canary_tasks", "canaryd_timer_lag_seconds_bucket", "process_cpu_seconds_total"})
    CHECK(used.count(n) == 1);
  // No counter is exported without _total (promtool's rule).
  std::istringstream again(r->body);
  for (std::string line; std::getline(again, line);) {
    if (!line.starts_with("# TYPE ") || !line.ends_with(" counter")) continue;
    CAPTURE(line);
    CHECK(line.find("_total counter") != std::string::npos);
  }
}
