#pragma once
// Prometheus metrics kept in memory and rendered in the text exposition format (version 0.0.4).
// Families have fixed label names; series are created on first use.
//
// Thread affinity: the io_context thread only; no locks.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace canaryd {

enum class metric_type { counter, gauge, histogram };

class metric_family {
 public:
  metric_family(std::string name, std::string help, metric_type type, std::vector<std::string> labels,
                std::vector<double> buckets = {});
  // Label values in the order of the family's label names; a wrong count is a bug (asserted).
  void set(const std::vector<std::string>& values, double v);
  void add(const std::vector<std::string>& values, double v = 1);
  void observe(const std::vector<std::string>& values, double v);  // histograms
  void remove(const std::vector<std::string>& values);
  void clear();
  double value(const std::vector<std::string>& values) const;  // 0 if absent; a histogram's count
  void render(std::string& out) const;
  const std::string& name() const { return name_; }

 private:
  struct series {
    double value = 0;                 // counter/gauge value; histogram sum
    std::vector<double> bucket_counts;  // cumulative at render time
    double count = 0;
  };
  series& at(const std::vector<std::string>& values);
  std::string name_, help_;
  metric_type type_;
  std::vector<std::string> labels_;
  std::vector<double> buckets_;
  std::map<std::vector<std::string>, series> series_;
};

class metrics_registry {
 public:
  metric_family& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  metric_family& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  // Prometheus' default buckets when `buckets` is empty.
  metric_family& histogram(std::string name, std::string help, std::vector<std::string> labels = {},
                           std::vector<double> buckets = {});
  std::string render() const;
  // Also render the process_* families of Prometheus' Go process collector (CPU seconds, RSS,
  // virtual memory, open and max fds, start time), read from /proc at each render.
  void include_process_metrics(bool on) { process_ = on; }

 private:
  metric_family& add(std::string name, std::string help, metric_type t, std::vector<std::string> labels,
                     std::vector<double> buckets);
  std::vector<std::unique_ptr<metric_family>> families_;
  bool process_ = false;
};

// The process_* families, rendered from /proc/self; families whose source cannot be read are left out.
void render_process_metrics(std::string& out);

}  // namespace canaryd
