#pragma once
// Test support: a kubesim process and a kubectl bound to it (fresh HOME, so kubectl's
// discovery cache never leaks between instances).
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace canaryd::test {

struct kubesim_options {
  bool tls = false;
  bool prometheus = false;
  std::vector<std::string> extra_args;
};

class kubesim_instance {
 public:
  explicit kubesim_instance(kubesim_options o = {});
  ~kubesim_instance();

  const std::string& api_url() const { return api_; }
  const std::string& metrics_url() const { return metrics_; }        // "" unless served
  const std::string& prometheus_url() const { return prometheus_; }  // "" unless --prometheus
  const std::filesystem::path& kubeconfig() const { return kubeconfig_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  child& process() { return *proc_; }
  std::string log() const { return proc_->stderr_text(); }

  // Runs kubectl against this kubesim; `input` is fed on stdin (for `apply -f -`).
  run_result kubectl(const std::vector<std::string>& args, const std::string& input = {},
                     std::chrono::milliseconds limit = std::chrono::seconds(60)) const;
  // kubectl that must succeed: a failure fails the calling test with kubectl's stderr.
  std::string kubectl_ok(const std::vector<std::string>& args, const std::string& input = {}) const;

 private:
  temp_dir dir_;
  std::filesystem::path kubeconfig_;
  std::string api_, metrics_, prometheus_;
  std::unique_ptr<child> proc_;
};

// The value of a top-level string field in a one-line JSON object (test-grade parsing).
std::string json_field(const std::string& line, const std::string& key);

}  // namespace canaryd::test
