#include "sim/world/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <unordered_set>

namespace kubesim::world {

namespace {

// Guards floor() against 0.9999999999 after many additions of fractional rates.
constexpr double credit_epsilon = 1e-9;

std::uint64_t take_whole(double& credit) {
  double whole = std::floor(credit + credit_epsilon);
  if (whole <= 0) return 0;
  credit -= whole;
  return static_cast<std::uint64_t>(whole);
}

void append_number(std::string& out, double v) {
  char buf[40];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? p : buf);
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? p : buf);
}

void label(std::string& out, std::string_view name, std::string_view value, bool& first) {
  if (!first) out += ',';
  first = false;
  out += name;
  out += "=\"";
  append_label_value(out, value);
  out += '"';
}

std::string fqdn(std::string_view name, std::string_view ns) {
  std::string s(name);
  s.append(".").append(ns).append(".svc.cluster.local");
  return s;
}

// `le_divisor` turns the millisecond bounds into the family's unit (1000 for seconds); a division
// keeps "0.0075" exact where a multiplication by 0.001 would print 0.007500000000000001.
void render_histogram(std::string& out, std::string_view family, const std::string& labels, const histogram& h,
                      double le_divisor) {
  std::uint64_t cumulative = 0;
  std::size_t first = h.lowest == 0 ? 0 : h.lowest - 1;
  for (std::size_t i = first; i < latency_buckets_ms.size(); ++i) {
    cumulative += h.buckets[i];
    out.append(family).append("_bucket{").append(labels).append(",le=\"");
    append_number(out, latency_buckets_ms[i] / le_divisor);
    out.append("\"} ");
    append_number(out, cumulative);
    out += '\n';
  }
  out.append(family).append("_bucket{").append(labels).append(",le=\"+Inf\"} ");
  append_number(out, h.count);
  out += '\n';
  out.append(family).append("_sum{").append(labels).append("} ");
  append_number(out, h.sum);
  out += '\n';
  out.append(family).append("_count{").append(labels).append("} ");
  append_number(out, h.count);
  out += '\n';
}

std::string istio_labels(const istio_key& k) {
  std::string s;
  bool first = true;
  label(s, "reporter", k.reporter, first);
  label(s, "source_workload", k.source_workload, first);
  label(s, "source_workload_namespace", "unknown", first);
  label(s, "destination_workload", k.destination_workload, first);
  label(s, "destination_workload_namespace", k.destination_workload_namespace, first);
  label(s, "destination_service", fqdn(k.destination_service_name, k.destination_service_namespace), first);
  label(s, "destination_service_name", k.destination_service_name, first);
  label(s, "destination_service_namespace", k.destination_service_namespace, first);
  label(s, "request_protocol", "http", first);
  label(s, "response_code", k.response_code, first);
  std::string_view flags = "-";
  if (k.destination_workload == "unknown") flags = k.response_code == "404" ? "NR" : k.response_code == "503" ? "UH" : "DI";
  label(s, "response_flags", flags, first);
  return s;
}

std::string http_labels(const http_key& k) {
  std::string s;
  bool first = true;
  label(s, "kubernetes_namespace", k.namespace_, first);
  label(s, "kubernetes_pod_name", k.pod, first);
  label(s, "method", "GET", first);
  label(s, "path", k.path, first);
  label(s, "status", k.status, first);
  return s;
}

}  // namespace

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void histogram::observe(double value_ms, std::uint64_t n, double unit_divisor) {
  if (n == 0) return;
  count += n;
  sum += value_ms / unit_divisor * static_cast<double>(n);
  auto i = static_cast<std::size_t>(std::lower_bound(latency_buckets_ms.begin(), latency_buckets_ms.end(), value_ms) -
                                    latency_buckets_ms.begin());
  if (i < buckets.size()) buckets[i] += n;
  lowest = std::min(lowest, i);
}

void traffic_counters::count(const traffic_flow& f, const traffic_leg& leg, leg_state& st, std::uint64_t n) {
  const auto& b = leg.behaviour;
  auto& credit = error_credit_[leg.workload_key];
  credit += static_cast<double>(n) * b.error_rate;
  std::uint64_t errors = std::min(take_whole(credit), n);
  std::uint64_t ok = n - errors;
  requests_total_ += n;
  if (st.error_code != b.error_code) {
    st.error_code = b.error_code;
    st.istio_destination[1] = st.istio_source[1] = st.http[1] = st.envoy[1] = nullptr;
  }
  for (std::size_t i = 0; i < 2; ++i) {
    std::uint64_t part = i == 0 ? ok : errors;
    if (part == 0) continue;
    if (!st.istio_destination[i]) {
      std::string code = i == 0 ? "200" : std::to_string(b.error_code);
      istio_key k{"destination", leg.workload, leg.namespace_, leg.service, leg.service_namespace, f.source_workload, code};
      st.istio_destination[i] = &istio_[k];
      k.reporter = "source";
      st.istio_source[i] = &istio_[k];
      st.http[i] = &http_[http_key{leg.namespace_, leg.pod, leg.path.empty() ? f.path : leg.path, code}];
      if (!leg.envoy_cluster.empty()) st.envoy[i] = &envoy_[envoy_key{leg.envoy_cluster, code, leg.workload_key}];
    }
    if (st.envoy[i]) st.envoy[i]->observe(b.latency_ms, part, 1.0);
    st.istio_destination[i]->observe(b.latency_ms, part, 1.0);
    st.istio_source[i]->observe(b.latency_ms, part, 1.0);
    st.http[i]->observe(b.latency_ms, part, 1000.0);
  }
}

void traffic_counters::advance(const traffic_plan& plan, double seconds) {
  if (seconds <= 0) return;
  for (const auto& f : plan.flows) {
    for (const auto& leg : f.legs) {
      auto& st = legs_[leg.key];
      st.credit += leg.rps * seconds;
      std::uint64_t n = take_whole(st.credit);
      if (n > 0) count(f, leg, st, n);
    }
    for (const auto& u : f.unrouted) {
      auto& st = legs_[u.key];
      st.credit += u.rps * seconds;
      std::uint64_t n = take_whole(st.credit);
      if (n == 0) continue;
      requests_total_ += n;
      if (!st.istio_source[1])
        st.istio_source[1] = &istio_[istio_key{"source", "unknown", "unknown", f.service, f.namespace_, f.source_workload,
                                               std::to_string(u.code)}];
      st.istio_source[1]->observe(0, n, 1.0);
    }
  }
}

void traffic_counters::retain(const traffic_plan& plan) {
  std::unordered_set<std::string> live;
  for (const auto& f : plan.flows) {
    for (const auto& l : f.legs) live.insert(l.key);
    for (const auto& u : f.unrouted) live.insert(u.key);
  }
  std::erase_if(legs_, [&](const auto& kv) { return !live.contains(kv.first); });
  for (auto& [k, st] : legs_) {
    st.istio_destination = {};
    st.istio_source = {};
    st.http = {};
    st.envoy = {};
  }
  std::erase_if(envoy_, [&](const auto& kv) { return !plan.workloads.contains(kv.first.workload_key); });
  std::unordered_set<std::string> pods(plan.pods.begin(), plan.pods.end());
  std::erase_if(http_, [&](const auto& kv) { return !pods.contains(kv.first.namespace_ + "/" + kv.first.pod); });
  std::erase_if(istio_, [&](const auto& kv) {
    const auto& k = kv.first;
    return k.destination_workload != "unknown" &&
           !plan.workloads.contains(k.destination_workload_namespace + "/" + k.destination_workload);
  });
  std::erase_if(error_credit_, [&](const auto& kv) { return !plan.workloads.contains(kv.first); });
}

void traffic_counters::render(std::string& out) const {
  out += "# HELP istio_requests_total Requests (simulated by kubesim's traffic emulator).\n";
  out += "# TYPE istio_requests_total counter\n";
  for (const auto& [k, h] : istio_) {
    out.append("istio_requests_total{").append(istio_labels(k)).append("} ");
    append_number(out, h.count);
    out += '\n';
  }
  out += "# HELP istio_request_duration_milliseconds Request duration (simulated by kubesim).\n";
  out += "# TYPE istio_request_duration_milliseconds histogram\n";
  for (const auto& [k, h] : istio_) {
    if (k.reporter != "destination") continue;
    render_histogram(out, "istio_request_duration_milliseconds", istio_labels(k), h, 1.0);
  }
  out += "# HELP http_request_duration_seconds Request duration as the app reports it (simulated by kubesim).\n";
  out += "# TYPE http_request_duration_seconds histogram\n";
  for (const auto& [k, h] : http_) render_histogram(out, "http_request_duration_seconds", http_labels(k), h, 1000.0);
  if (envoy_.empty()) return;
  // One series per (cluster, code): workloads of one cluster (a revision's pods) add up.
  std::map<std::pair<std::string, std::string>, histogram> by_code;
  std::map<std::string, histogram> by_cluster;
  auto merge = [](histogram& into, const histogram& h) {
    into.count += h.count;
    into.sum += h.sum;
    for (std::size_t i = 0; i < h.buckets.size(); ++i) into.buckets[i] += h.buckets[i];
    into.lowest = std::min(into.lowest, h.lowest);
  };
  for (const auto& [k, h] : envoy_) {
    merge(by_code[{k.cluster, k.response_code}], h);
    merge(by_cluster[k.cluster], h);
  }
  out += "# HELP envoy_cluster_upstream_rq Upstream requests per cluster and code (simulated by kubesim).\n";
  out += "# TYPE envoy_cluster_upstream_rq counter\n";
  for (const auto& [k, h] : by_code) {
    out += "envoy_cluster_upstream_rq{envoy_cluster_name=\"";
    append_label_value(out, k.first);
    out += "\",envoy_response_code=\"";
    append_label_value(out, k.second);
    out += "\"} ";
    append_number(out, h.count);
    out += '\n';
  }
  out += "# HELP envoy_cluster_upstream_rq_time Upstream request time in milliseconds (simulated by kubesim).\n";
  out += "# TYPE envoy_cluster_upstream_rq_time histogram\n";
  for (const auto& [cluster, h] : by_cluster) {
    std::string labels = "envoy_cluster_name=\"";
    append_label_value(labels, cluster);
    labels += '"';
    render_histogram(out, "envoy_cluster_upstream_rq_time", labels, h, 1.0);
  }
}

std::uint64_t traffic_counters::envoy_requests(const std::string& cluster, const std::string& code) const {
  std::uint64_t n = 0;
  for (const auto& [k, h] : envoy_)
    if (k.cluster == cluster && (code.empty() || k.response_code == code)) n += h.count;
  return n;
}

std::uint64_t traffic_counters::requests(const std::string& reporter, const std::string& ns, const std::string& workload,
                                         const std::string& code) const {
  std::uint64_t n = 0;
  for (const auto& [k, h] : istio_)
    if (k.reporter == reporter && k.destination_workload_namespace == ns && k.destination_workload == workload &&
        (code.empty() || k.response_code == code))
      n += h.count;
  return n;
}

std::uint64_t traffic_counters::pod_requests(const std::string& ns, const std::string& pod, const std::string& status) const {
  std::uint64_t n = 0;
  for (const auto& [k, h] : http_)
    if (k.namespace_ == ns && k.pod == pod && (status.empty() || k.status == status)) n += h.count;
  return n;
}

}  // namespace kubesim::world
