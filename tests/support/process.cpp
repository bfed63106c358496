#include "tests/support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace canaryd::test {
namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

fs::path build_root() {
  if (const char* p = std::getenv("CANARYD_BUILD_ROOT")) return p;
  return fs::current_path();
}

fs::path source_root() {
  if (const char* p = std::getenv("CANARYD_SOURCE_ROOT")) return p;
  return fs::current_path();
}

std::optional<fs::path> shared_reference() {
  auto p = source_root() / ".." / "shared" / "reference";
  if (fs::exists(p / "flagger" / "crd.yaml")) return fs::canonical(p);
  return std::nullopt;
}

temp_dir::temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "canaryd-test-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  if (std::getenv("KEEP_TEST_DIRS")) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> all;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    auto eq = s.find('=');
    if (eq == std::string::npos) continue;
    all[s.substr(0, eq)] = s.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) all[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : all) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

int spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
          int in_fd, int out_fd, int err_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in_fd >= 0) posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A new process group, so a child's own children can be signalled with it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  auto args = argv;
  auto envs = merged_env(env);
  auto cargs = c_strings(args);
  auto cenv = c_strings(envs);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, cargs[0], &fa, &attr, cargs.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

}  // namespace

run_result run(const std::vector<std::string>& argv, std::chrono::milliseconds limit,
               const std::map<std::string, std::string>& env, const std::string& input) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  int pid = spawn(argv, env, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  run_result r;
  std::size_t written = 0;
  if (input.empty()) {
    ::close(in[1]);
    in[1] = -1;
  } else {
    ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  auto deadline = clock::now() + limit;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out[0], POLLIN, 0};
    if (err_open) fds[n++] = {err[0], POLLIN, 0};
    if (in[1] >= 0) fds[n++] = {in[1], POLLOUT, 0};
    int pr = ::poll(fds, n, static_cast<int>(std::min<long long>(left, 100)));
    if (pr < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in[1]) {
        auto w = ::write(in[1], input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 || written == input.size()) {
          ::close(in[1]);
          in[1] = -1;
        }
        continue;
      }
      auto got = ::read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        if (fds[i].fd == out[0]) out_open = false;
        else err_open = false;
        continue;
      }
      (fds[i].fd == out[0] ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
    }
  }
  if (in[1] >= 0) ::close(in[1]);
  ::close(out[0]);
  ::close(err[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.exit_code = r.timed_out ? -1 : decode_status(st);
  return r;
}

child::child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
             std::optional<fs::path> stderr_file)
    : err_path_(std::move(stderr_file)) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  // A test reads stdout only while it waits for a line; with the default 64 KiB pipe a chatty
  // child (canaryd logging dozens of canaries at 1 s intervals) blocks on its log writes in
  // between and stops working. 1 MiB (the usual pipe-max-size) holds minutes of such logs;
  // failure only leaves the default size.
  (void)::fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
  int err_fd = -1;
  if (err_path_) {
    err_fd = ::open(err_path_->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) throw std::runtime_error("cannot open " + err_path_->string());
  }
  pid_ = spawn(argv, env, -1, out[1], err_fd);
  ::close(out[1]);
  if (err_fd >= 0) ::close(err_fd);
  out_fd_ = out[0];
}

child::~child() {
  if (running()) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(5));
  }
  if (out_fd_ >= 0) ::close(out_fd_);
}

std::optional<std::string> child::read_line(std::chrono::milliseconds limit) {
  auto deadline = clock::now() + limit;
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      lines_.push_back(line);
      return line;
    }
    if (out_fd_ < 0) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd p{out_fd_, POLLIN, 0};
    int pr = ::poll(&p, 1, static_cast<int>(left));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return std::nullopt;
    char tmp[8192];
    auto got = ::read(out_fd_, tmp, sizeof tmp);
    if (got <= 0) {
      ::close(out_fd_);
      out_fd_ = -1;
      if (!buf_.empty()) {
        std::string line = std::move(buf_);
        buf_.clear();
        lines_.push_back(line);
        return line;
      }
      return std::nullopt;
    }
    buf_.append(tmp, static_cast<std::size_t>(got));
  }
}

std::optional<std::string> child::wait_for_line(const std::string& needle, std::chrono::milliseconds limit) {
  auto deadline = clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto line = read_line(left);
    if (!line) return std::nullopt;
    if (line->find(needle) != std::string::npos) return line;
  }
}

void child::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> child::wait(std::chrono::milliseconds limit) {
  if (status_) return status_;
  auto deadline = clock::now() + limit;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = decode_status(st);
      return status_;
    }
    if (r < 0) return std::nullopt;
    if (clock::now() >= deadline) return std::nullopt;
    ::usleep(5000);
  }
}

bool child::running() {
  if (status_ || pid_ <= 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(st);
    return false;
  }
  return r == 0;
}

std::string child::stderr_text() const {
  if (!err_path_) return {};
  std::ifstream in(*err_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::optional<http_reply> http_call(const std::string& method, const std::string& url, const std::string& body,
                                    std::chrono::milliseconds limit) {
  // url: http://127.0.0.1:PORT/path
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) return std::nullopt;
  auto rest = url.substr(prefix.size());
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  std::string host = hostport.substr(0, colon);
  int port = std::stoi(hostport.substr(colon + 1));
  if (host == "localhost") host = "127.0.0.1";

  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + hostport +
                    "\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string raw;
  auto deadline = clock::now() + limit;
  char buf[8192];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    auto got = ::read(fd, buf, sizeof buf);
    if (got <= 0) break;
    raw.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fd);
  auto sp = raw.find(' ');
  auto hdr_end = raw.find("\r\n\r\n");
  if (sp == std::string::npos || hdr_end == std::string::npos) return std::nullopt;
  http_reply r;
  r.status = std::atoi(raw.c_str() + sp + 1);
  std::string head = raw.substr(0, hdr_end);
  std::string payload = raw.substr(hdr_end + 4);
  // De-chunk if needed.
  std::string lower = head;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    std::string out;
    std::size_t pos = 0;
    while (pos < payload.size()) {
      auto eol = payload.find("\r\n", pos);
      if (eol == std::string::npos) break;
      auto n = std::stoul(payload.substr(pos, eol - pos), nullptr, 16);
      if (n == 0) break;
      out += payload.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    payload = out;
  }
  r.body = payload;
  return r;
}

}  // namespace canaryd::test
