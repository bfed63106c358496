#include "daemon/metrics_registry.hpp"

#include <unistd.h>

#include <cassert>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

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
  if (process_) render_process_metrics(out);
  return out;
}

namespace {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help, double v) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} ", name, help, name, type, name);
  append_value(out, v);
  out.push_back('\n');
}

std::string read_all(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void render_process_metrics(std::string& out) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // /proc/self/stat: fields after the parenthesised command; utime, stime (14, 15), starttime (22),
  // vsize (23), rss (24), counted from 1 as in proc(5).
  std::string stat = read_all("/proc/self/stat");
  if (auto close = stat.rfind(')'); close != std::string::npos && ticks > 0) {
    std::istringstream in(stat.substr(close + 2));
    std::vector<std::string> f{"", "", ""};  // fields 1 and 2 are before; index 3 is the state
    for (std::string w; in >> w;) f.push_back(w);
    if (f.size() > 24) {
      double utime = std::stod(f[14]), stime = std::stod(f[15]), start = std::stod(f[22]);
      family(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
             (utime + stime) / ticks);
      family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", std::stod(f[23]));
      family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", std::stod(f[24]) * page);
      // The boot time (btime in /proc/stat) plus the start in ticks since boot: seconds since the epoch.
      std::istringstream sys(read_all("/proc/stat"));
      for (std::string k; sys >> k;) {
        if (k != "btime") continue;
        double btime = 0;
        sys >> btime;
        family(out, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
               btime + start / ticks);
        break;
      }
    }
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++fds;
  if (!ec) family(out, "process_open_fds", "gauge", "Number of open file descriptors.", static_cast<double>(fds));
  std::istringstream limits(read_all("/proc/self/limits"));
  for (std::string l; std::getline(limits, l);) {
    if (!l.starts_with("Max open files")) continue;
    std::istringstream w(l.substr(14));
    std::string soft;
    w >> soft;
    if (soft == "unlimited") break;
    family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.", std::stod(soft));
    break;
  }
}

}  // namespace canaryd
