#include "daemon/metrics_registry.hpp"

#include <cassert>
#include <cmath>
#include <fmt/format.h>

namespace canaryd {
namespace {

void append_value(std::string& out, double v) {
  if (std::isnan(v)) out += "NaN";
  else if (std::isinf(v)) out += v > 0 ? "+Inf" : "-Inf";
  else fmt::format_to(std::back_inserter(out), "{}", v);
}

void append_escaped_label(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
}

void append_labels(std::string& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out.push_back(',');
    first = false;
    out += names[i];
    out += "=\"";
    append_escaped_label(out, values[i]);
    out.push_back('"');
  }
  if (!extra_name.empty()) {
    if (!first) out.push_back(',');
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out.push_back('"');
  }
  out.push_back('}');
}

}  // namespace

metric_family::metric_family(std::string name, std::string help, metric_type type, std::vector<std::string> labels,
                             std::vector<double> buckets)
    : name_(std::move(name)), help_(std::move(help)), type_(type), labels_(std::move(labels)), buckets_(std::move(buckets)) {}

metric_family::series& metric_family::at(const std::vector<std::string>& values) {
  assert(values.size() == labels_.size());
  auto& s = series_[values];
  if (type_ == metric_type::histogram && s.bucket_counts.empty()) s.bucket_counts.assign(buckets_.size(), 0);
  return s;
}

void metric_family::set(const std::vector<std::string>& values, double v) { at(values).value = v; }
void metric_family::add(const std::vector<std::string>& values, double v) { at(values).value += v; }

void metric_family::observe(const std::vector<std::string>& values, double v) {
  assert(type_ == metric_type::histogram);
  auto& s = at(values);
  s.value += v;
  s.count += 1;
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    if (v <= buckets_[i]) s.bucket_counts[i] += 1;
}

void metric_family::remove(const std::vector<std::string>& values) { series_.erase(values); }
void metric_family::clear() { series_.clear(); }

double metric_family::value(const std::vector<std::string>& values) const {
  auto it = series_.find(values);
  if (it == series_.end()) return 0;
  return type_ == metric_type::histogram ? it->second.count : it->second.value;
}

void metric_family::render(std::string& out) const {
  std::string_view type = type_ == metric_type::counter ? "counter" : type_ == metric_type::gauge ? "gauge" : "histogram";
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name_, help_, name_, type);
  for (const auto& [values, s] : series_) {
    if (type_ != metric_type::histogram) {
      out += name_;
      append_labels(out, labels_, values);
      out.push_back(' ');
      append_value(out, s.value);
      out.push_back('\n');
      continue;
    }
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      out += name_;
      out += "_bucket";
      std::string le;
      append_value(le, buckets_[i]);
      append_labels(out, labels_, values, "le", le);
      out.push_back(' ');
      append_value(out, s.bucket_counts[i]);
      out.push_back('\n');
    }
    out += name_;
    out += "_bucket";
    append_labels(out, labels_, values, "le", "+Inf");
    out.push_back(' ');
    append_value(out, s.count);
    out.push_back('\n');
    out += name_;
    out += "_sum";
    append_labels(out, labels_, values);
    out.push_back(' ');
    append_value(out, s.value);
    out.push_back('\n');
    out += name_;
    out += "_count";
    append_labels(out, labels_, values);
    out.push_back(' ');
    append_value(out, s.count);
    out.push_back('\n');
  }
}

metric_family& metrics_registry::add(std::string name, std::string help, metric_type t, std::vector<std::string> labels,
                                     std::vector<double> buckets) {
  families_.push_back(std::make_unique<metric_family>(std::move(name), std::move(help), t, std::move(labels), std::move(buckets)));
  return *families_.back();
}

metric_family& metrics_registry::counter(std::string name, std::string help, std::vector<std::string> labels) {
  return add(std::move(name), std::move(help), metric_type::counter, std::move(labels), {});
}

metric_family& metrics_registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  return add(std::move(name), std::move(help), metric_type::gauge, std::move(labels), {});
}

metric_family& metrics_registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                                           std::vector<double> buckets) {
  if (buckets.empty()) buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return add(std::move(name), std::move(help), metric_type::histogram, std::move(labels), std::move(buckets));
}

std::string metrics_registry::render() const {
  std::string out;
  for (const auto& f : families_) f->render(out);
  return out;
}

}  // namespace canaryd
