#include "tests/support/kubesim.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <stdexcept>

namespace canaryd::test {

std::string json_field(const std::string& line, const std::string& key) {
  auto k = "\"" + key + "\":\"";
  auto p = line.find(k);
  if (p == std::string::npos) return {};
  p += k.size();
  auto e = line.find('"', p);
  return line.substr(p, e - p);
}

kubesim_instance::kubesim_instance(kubesim_options o) {
  kubeconfig_ = dir_.path() / "kubeconfig";
  std::vector<std::string> argv{(build_root() / "sim" / "kubesim").string(), "--listen", "127.0.0.1:0",
                                "--kubeconfig-out", kubeconfig_.string()};
  if (o.tls) argv.push_back("--tls");
  if (o.prometheus) argv.push_back("--prometheus");
  for (auto& a : o.extra_args) argv.push_back(a);
  proc_ = std::make_unique<child>(argv, std::map<std::string, std::string>{}, dir_.path() / "kubesim.log");
  auto limit = o.prometheus ? std::chrono::seconds(60) : std::chrono::seconds(20);
  auto line = proc_->wait_for_line("\"ready\"", limit);
  if (!line) {
    throw std::runtime_error("kubesim did not become ready; its log:\n" + proc_->stderr_text());
  }
  api_ = json_field(*line, "api");
  metrics_ = json_field(*line, "metrics");
  prometheus_ = json_field(*line, "prometheus");
}

kubesim_instance::~kubesim_instance() {
  if (proc_ && proc_->running()) {
    proc_->signal(SIGTERM);
    if (!proc_->wait(std::chrono::seconds(10))) proc_->signal(SIGKILL);
  }
}

run_result kubesim_instance::kubectl(const std::vector<std::string>& args, const std::string& input,
                                     std::chrono::milliseconds limit) const {
  std::vector<std::string> argv{"kubectl", "--kubeconfig", kubeconfig_.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, limit, {{"HOME", (dir_.path() / "home").string()}, {"KUBECONFIG", kubeconfig_.string()}}, input);
}

std::string kubesim_instance::kubectl_ok(const std::vector<std::string>& args, const std::string& input) const {
  auto r = kubectl(args, input);
  std::string cmd = "kubectl";
  for (auto& a : args) cmd += " " + a;
  INFO(cmd);
  INFO("stderr: " << r.err);
  INFO("stdout: " << r.out);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

}  // namespace canaryd::test
