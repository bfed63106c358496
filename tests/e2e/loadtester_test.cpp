// The real canary-loadtester binary on 127.0.0.1, driven over HTTP the way Flagger's webhooks
// drive Flagger's load tester: gates, rollback gates, blocking and background commands,
// timeouts, bad requests, flags and SIGTERM.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.hpp"
#include "tests/support/process.hpp"

using namespace canaryd::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Flagger's CanaryWebhookPayload.
std::string payload(const std::string& name, const std::string& ns,
                    const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
  std::string s = "{\"name\":" + quoted(name) + ",\"namespace\":" + quoted(ns) +
                  ",\"phase\":\"Progressing\",\"checksum\":\"abc\"";
  if (!metadata.empty()) {
    s += ",\"metadata\":{";
    for (std::size_t i = 0; i < metadata.size(); ++i) {
      if (i) s += ",";
      s += quoted(metadata[i].first) + ":" + quoted(metadata[i].second);
    }
    s += "}";
  }
  return s + "}";
}

// True once /proc says the process is gone or a zombie (killed, waiting for a reaper that may
// not be ours).
bool process_gone(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return true;
  std::string stat;
  std::getline(in, stat);
  auto rp = stat.rfind(')');
  return rp == std::string::npos || rp + 2 >= stat.size() || stat[rp + 2] == 'Z';
}

template <class F>
bool eventually(F f, std::chrono::milliseconds limit) {
  auto deadline = clock_type::now() + limit;
  while (clock_type::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return f();
}

}  // namespace

TEST_CASE("gates are closed by default and open, check and close per canary name and namespace") {
  loadtester lt;
  auto podinfo = payload("podinfo", "test");
  auto other = payload("podinfo", "prod");  // same name, other namespace: another gate

  CHECK(lt.post("/healthz", "").status == 200);

  auto r = lt.post("/gate/check", podinfo);
  CHECK(r.status == 403);
  CHECK(r.body == "Forbidden");
  CHECK(lt.post("/gate/check", other).status == 403);

  CHECK(lt.post("/gate/open", podinfo).status == 202);
  r = lt.post("/gate/check", podinfo);
  CHECK(r.status == 200);
  CHECK(r.body == "Approved");
  CHECK(lt.post("/gate/check", other).status == 403);
  // The rollback gate of the same canary is separate.
  CHECK(lt.post("/rollback/check", podinfo).status == 403);

  CHECK(lt.post("/gate/open", other).status == 202);
  CHECK(lt.post("/gate/close", podinfo).status == 202);
  CHECK(lt.post("/gate/check", podinfo).status == 403);
  CHECK(lt.post("/gate/check", other).status == 200);

  SUBCASE("approve always answers 200 and halt always 403, whatever the gates") {
    r = lt.post("/gate/approve", podinfo);
    CHECK(r.status == 200);
    CHECK(r.body == "OK");
    r = lt.post("/gate/halt", other);
    CHECK(r.status == 403);
    CHECK(r.body == "Forbidden");
  }
  SUBCASE("rollback is closed by default, opens and closes per canary") {
    CHECK(lt.post("/rollback/check", other).status == 403);
    CHECK(lt.post("/rollback/open", podinfo).status == 202);
    r = lt.post("/rollback/check", podinfo);
    CHECK(r.status == 200);
    CHECK(r.body == "Approved");
    CHECK(lt.post("/rollback/check", other).status == 403);
    CHECK(lt.post("/gate/check", podinfo).status == 403);  // the confirm gate did not open
    CHECK(lt.post("/rollback/close", podinfo).status == 202);
    CHECK(lt.post("/rollback/check", podinfo).status == 403);
  }
  SUBCASE("a gate request that is not a payload is answered 400 and changes nothing") {
    CHECK(lt.post("/gate/open", "{not json").status == 400);
    CHECK(lt.post("/gate/close", "").status == 400);
    CHECK(lt.post("/gate/check", other).status == 200);
  }
}

TEST_CASE("a bash task answers 200 when the command exits 0 and 500 with its output when it does not") {
  loadtester lt;
  auto r = lt.post("/", payload("podinfo", "test", {{"type", "bash"}, {"cmd", "echo hello; exit 0"}}));
  CHECK(r.status == 200);
  CHECK(r.body == "");  // only returnCmdOutput echoes the output

  r = lt.post("/", payload("podinfo", "test",
                           {{"type", "bash"}, {"cmd", "echo hello $((6*7))"}, {"returnCmdOutput", "true"}}));
  CHECK(r.status == 200);
  CHECK(r.body == "hello 42\n");

  r = lt.post("/", payload("podinfo", "test", {{"type", "bash"}, {"cmd", "echo broken >&2; exit 3"}}));
  CHECK(r.status == 500);
  CHECK(r.body.find("broken") != std::string::npos);
  CHECK(r.body.find("exit status 3") != std::string::npos);

  // logCmdOutput logs the output.
  r = lt.post("/", payload("podinfo", "test", {{"type", "bash"}, {"cmd", "echo marker-$((40+2))"}, {"logCmdOutput", "true"}}));
  CHECK(r.status == 200);
  CHECK(lt.proc->wait_for_line("marker-42", 5s));
}

TEST_CASE("a cmd task runs in the background, is answered 202 at once and is not started twice while running") {
  loadtester lt;
  auto out = lt.dir.path() / "out.txt";
  std::string cmd = "sleep 1; echo ran >> " + out.string();
  auto body = payload("podinfo", "test", {{"cmd", cmd}});  // type defaults to cmd

  auto t0 = clock_type::now();
  auto r = lt.post("/", body);
  CHECK(r.status == 202);
  CHECK(clock_type::now() - t0 < 800ms);
  // The same command for the same canary while the first still runs: skipped.
  CHECK(lt.post("/", body).status == 202);
  CHECK(lt.proc->wait_for_line("is already running", 5s));
  // The same command for another canary is another task.
  CHECK(lt.post("/", payload("podinfo", "prod", {{"type", "cmd"}, {"cmd", cmd}})).status == 202);

  CHECK(eventually([&] { return read_file(out) == "ran\nran\n"; }, 5s));
  std::this_thread::sleep_for(300ms);
  CHECK(read_file(out) == "ran\nran\n");

  // Once finished, the same command runs again.
  CHECK(lt.post("/", body).status == 202);
  CHECK(eventually([&] { return read_file(out) == "ran\nran\nran\n"; }, 5s));
}

TEST_CASE("a command still running at -timeout is killed with everything it started") {
  loadtester lt({"-timeout", "1s"});
  auto pidfile = lt.dir.path() / "pid";

  SUBCASE("a blocking bash task answers 500 once its command is killed") {
    auto t0 = clock_type::now();
    auto r = lt.post("/", payload("podinfo", "test", {{"type", "bash"}, {"cmd", "sleep 30 & echo $! > " + pidfile.string() + "; wait"}}));
    auto took = clock_type::now() - t0;
    CHECK(r.status == 500);
    CHECK(r.body.find("signal: killed") != std::string::npos);
    CHECK(took >= 900ms);
    CHECK(took < 5s);
  }
  SUBCASE("a background cmd task") {
    auto r = lt.post("/", payload("podinfo", "test", {{"cmd", "sleep 30 & echo $! > " + pidfile.string() + "; wait"}}));
    CHECK(r.status == 202);
    CHECK(lt.proc->wait_for_line("command failed", 5s));
  }
  // The grandchild (sleep 30) went with the shell: the whole process group was killed.
  REQUIRE(eventually([&] { return !read_file(pidfile).empty(); }, 2s));
  int pid = std::stoi(read_file(pidfile));
  CHECK(eventually([&] { return process_gone(pid); }, 3s));
}

TEST_CASE("bad task requests are answered 400 with Flagger's messages") {
  loadtester lt;
  CHECK(lt.post("/", "{\"name\": ").status == 400);
  CHECK(lt.post("/", "[1,2]").status == 400);
  CHECK(lt.post("/", "{\"name\":\"podinfo\",\"namespace\":\"test\",\"metadata\":{\"cmd\":42}}").status == 400);
  auto r = lt.post("/", payload("podinfo", "test"));
  CHECK(r.status == 400);
  CHECK(r.body == "metadata not found in payload");
  r = lt.post("/", payload("podinfo", "test", {{"type", "cmd"}}));
  CHECK(r.status == 400);
  CHECK(r.body == "cmd not found in metadata");
  r = lt.post("/", payload("podinfo", "test", {{"type", "bash"}}));
  CHECK(r.status == 400);
  r = lt.post("/", payload("podinfo", "test", {{"type", "ngrinder"}, {"cmd", "x"}}));
  CHECK(r.status == 400);
  CHECK(r.body == "unknown task type ngrinder");
  // Still serving.
  CHECK(lt.post("/healthz", "").status == 200);
}

TEST_CASE("-namespace-regexp refuses tasks from other namespaces with 403") {
  loadtester lt({"-namespace-regexp", "^test$"});
  CHECK(lt.post("/", payload("podinfo", "prod", {{"type", "bash"}, {"cmd", "true"}})).status == 403);
  CHECK(lt.post("/", payload("podinfo", "test", {{"type", "bash"}, {"cmd", "true"}})).status == 200);
}

TEST_CASE("SIGTERM ends the load tester with exit code 0, killing a running command") {
  loadtester lt;
  auto pidfile = lt.dir.path() / "pid";
  CHECK(lt.post("/", payload("podinfo", "test", {{"cmd", "echo $$ > " + pidfile.string() + "; sleep 30"}})).status == 202);
  REQUIRE(eventually([&] { return !read_file(pidfile).empty(); }, 3s));
  int pid = std::stoi(read_file(pidfile));
  lt.proc->signal(SIGTERM);
  auto code = lt.proc->wait(5s);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(eventually([&] { return process_gone(pid); }, 3s));
}

TEST_CASE("an unknown flag or a bad value ends canary-loadtester with exit code 2 and a clear message") {
  auto r = run({loadtester_path(), "-no-such-flag"}, 10s);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("flag provided but not defined: -no-such-flag") != std::string::npos);
  r = run({loadtester_path(), "--timeout", "soon"}, 10s);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("-timeout") != std::string::npos);
  r = run({loadtester_path(), "-port=70000"}, 10s);
  CHECK(r.exit_code == 2);
  r = run({loadtester_path(), "-help"}, 10s);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("-listen-address") != std::string::npos);
}
