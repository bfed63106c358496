#pragma once
// Test support: run real binaries (kubesim, canaryd, kubectl, prometheus) as child processes.
// Blocking POSIX code, for tests only; never linked into a product binary.
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace canaryd::test {

// Directory of the build's binaries (set by meson through the environment of each test).
std::filesystem::path build_root();
// Source root (for deploy/ and docs/), and ../shared/reference if present.
std::filesystem::path source_root();
std::optional<std::filesystem::path> shared_reference();

// A fresh temporary directory, removed when the object dies (unless KEEP_TEST_DIRS is set).
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct run_result {
  int exit_code = -1;        // -1 if killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs a command to completion (stdin from `input`), with a time limit; env entries are added
// to (or replace those of) the current environment.
run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds limit = std::chrono::seconds(60),
               const std::map<std::string, std::string>& env = {}, const std::string& input = {});

// A long-running child. Its stdout is read line by line through read_line(); its stderr goes to
// a log file (so a test failure can print it).
class child {
 public:
  child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
        std::optional<std::filesystem::path> stderr_file = std::nullopt);
  ~child();  // SIGKILL if still running, then reap
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  int pid() const { return pid_; }
  // Next line of stdout without its newline, or nullopt on EOF or when `limit` passes.
  std::optional<std::string> read_line(std::chrono::milliseconds limit);
  // Reads lines until one contains `needle`; returns it, or nullopt.
  std::optional<std::string> wait_for_line(const std::string& needle, std::chrono::milliseconds limit);
  // All stdout lines read so far.
  const std::vector<std::string>& lines() const { return lines_; }
  void signal(int sig);
  // Waits for exit; returns the exit code (128+signal if signalled) or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds limit);
  bool running();
  std::string stderr_text() const;

 private:
  int pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  std::vector<std::string> lines_;
  std::optional<std::filesystem::path> err_path_;
  std::optional<int> status_;
};

// A free TCP port on 127.0.0.1 (bound and released; racy but fine on a test machine).
int free_port();

// Minimal HTTP GET/POST against 127.0.0.1 for tests (no TLS): status and body.
struct http_reply {
  int status = 0;
  std::string body;
};
std::optional<http_reply> http_call(const std::string& method, const std::string& url,
                                    const std::string& body = {}, std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace canaryd::test
